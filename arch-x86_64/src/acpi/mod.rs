//! ACPI table discovery and parsing: the RSDP, the root table (RSDT/XSDT), and the tables the
//! hypervisor itself needs before dom0 runs its own ACPI stack: MADT (CPUs, I/O APICs), FADT
//! (PM timer, reset, SCI) and HPET.
//!
//! Everything here is pure: tables are read through [`PhysMemory`] at physical addresses, every
//! signature, length and checksum is validated, every offset bounds-checked, and bad firmware
//! data produces an [`AcpiError`] instead of a panic. Counts are capped ([`sdt::MAX_TABLES`],
//! [`madt::MAX_MADT_ENTRIES`]) so corrupt tables cannot make parsing unbounded.

use alloc::vec::Vec;
use core::fmt;

use xenolith_boot::PhysMemory;

pub mod fadt;
pub mod gas;
pub mod hpet;
pub mod madt;
pub mod rsdp;
pub mod s5;
pub mod sdt;

#[cfg(test)]
mod fixture;
#[cfg(test)]
mod tests;

pub use fadt::{Fadt, PmTimer};
pub use gas::{AddressSpace, GenericAddress};
pub use hpet::Hpet;
pub use madt::{IntiFlags, Madt, MadtEntry};
pub use rsdp::{Rsdp, find_rsdp, parse_rsdp_bytes, read_rsdp};
pub use sdt::{RootKind, SdtHeader, Signature, TableEntry, TableList};

use sdt::Table;

/// Why an ACPI structure was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiError {
    /// The RSDP is shorter than its revision requires.
    RsdpTruncated,
    /// The bytes do not start with `"RSD PTR "`.
    RsdpSignature,
    /// The RSDP's ACPI 1.0 or extended checksum is wrong.
    RsdpChecksum,
    /// The v2 RSDP's length field is implausible.
    RsdpLength {
        /// The length field.
        length: u32,
    },
    /// The RSDP gives neither an XSDT nor an RSDT address.
    NoRootTable,
    /// Physical memory at `paddr` could not be read.
    Unreadable {
        /// First address that could not be read.
        paddr: u64,
    },
    /// A table does not have the expected signature.
    BadSignature {
        /// Table address.
        paddr: u64,
        /// Signature wanted.
        expected: Signature,
        /// Signature found.
        found: Signature,
    },
    /// A table's length is shorter than its header, larger than [`sdt::MAX_TABLE_LEN`], or
    /// wraps the address space.
    BadLength {
        /// Table address.
        paddr: u64,
        /// Table signature.
        signature: Signature,
        /// The length field.
        length: u32,
    },
    /// A table's bytes do not sum to zero.
    BadChecksum {
        /// Table address.
        paddr: u64,
        /// Table signature.
        signature: Signature,
    },
    /// A required field lies beyond the table's length.
    Truncated {
        /// Table address.
        paddr: u64,
        /// Table signature.
        signature: Signature,
        /// Offset of the missing field.
        offset: u32,
    },
    /// A variable-length entry (e.g. in the MADT) has an impossible length.
    MalformedEntry {
        /// Table address.
        paddr: u64,
        /// Table signature.
        signature: Signature,
        /// Offset of the entry in the table.
        offset: u32,
    },
}

impl fmt::Display for AcpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RsdpTruncated => write!(f, "RSDP truncated"),
            Self::RsdpSignature => write!(f, "RSDP signature missing"),
            Self::RsdpChecksum => write!(f, "RSDP checksum mismatch"),
            Self::RsdpLength { length } => write!(f, "RSDP length {length} invalid"),
            Self::NoRootTable => write!(f, "RSDP has no RSDT or XSDT address"),
            Self::Unreadable { paddr } => write!(f, "cannot read memory at {paddr:#x}"),
            Self::BadSignature {
                paddr,
                expected,
                found,
            } => write!(
                f,
                "table at {paddr:#x}: expected {expected}, found {found:?}"
            ),
            Self::BadLength {
                paddr,
                signature,
                length,
            } => write!(f, "{signature} at {paddr:#x}: bad length {length:#x}"),
            Self::BadChecksum { paddr, signature } => {
                write!(f, "{signature} at {paddr:#x}: checksum mismatch")
            }
            Self::Truncated {
                paddr,
                signature,
                offset,
            } => write!(
                f,
                "{signature} at {paddr:#x}: too short for field at {offset:#x}"
            ),
            Self::MalformedEntry {
                paddr,
                signature,
                offset,
            } => write!(
                f,
                "{signature} at {paddr:#x}: malformed entry at {offset:#x}"
            ),
        }
    }
}

/// A listed table that was present but rejected; parsing carried on without it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableError {
    /// Signature of the table as listed.
    pub signature: Signature,
    /// Its physical address.
    pub address: u64,
    /// Why it was rejected.
    pub error: AcpiError,
}

/// The ACPI tables the hypervisor uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiTables {
    /// RSDP revision: 0 for ACPI 1.0, 2 for ACPI 2.0+.
    pub revision: u8,
    /// The tables listed by the root table actually used.
    pub root: TableList,
    /// The first valid MADT, if any.
    pub madt: Option<Madt>,
    /// The first valid FADT, if any.
    pub fadt: Option<Fadt>,
    /// The first valid HPET table, if any.
    pub hpet: Option<Hpet>,
    /// Tables that were listed but rejected (including an XSDT abandoned for the RSDT), so the
    /// boot log can say why a table is missing. One broken table should not cost the others:
    /// a bad HPET table must not prevent bringing up CPUs from a good MADT.
    pub errors: Vec<TableError>,
}

/// Parses the ACPI tables from the RSDP at physical address `rsdp_paddr`.
pub fn parse(mem: &dyn PhysMemory, rsdp_paddr: u64) -> Result<AcpiTables, AcpiError> {
    parse_with_rsdp(mem, &read_rsdp(mem, rsdp_paddr)?)
}

/// Parses the ACPI tables from a copy of the RSDP (as handed over in a multiboot2 ACPI tag);
/// the tables themselves are still read from `mem`.
pub fn parse_from_rsdp_copy(
    mem: &dyn PhysMemory,
    rsdp_bytes: &[u8],
) -> Result<AcpiTables, AcpiError> {
    parse_with_rsdp(mem, &parse_rsdp_bytes(rsdp_bytes)?)
}

/// Parses the ACPI tables reachable from a validated RSDP.
///
/// The XSDT is preferred when present (revision >= 2, non-zero address). If it is invalid but
/// an RSDT exists, the RSDT is used instead and the XSDT's error recorded in
/// [`AcpiTables::errors`]: firmware with a broken XSDT and a good RSDT exists, and losing all of
/// ACPI (hence SMP) over it would be worse than using the 32-bit table.
pub fn parse_with_rsdp(mem: &dyn PhysMemory, rsdp: &Rsdp) -> Result<AcpiTables, AcpiError> {
    let mut errors = Vec::new();
    let rsdt = u64::from(rsdp.rsdt_address);
    let root = match rsdp.xsdt_address {
        Some(xsdt) => match TableList::parse(mem, RootKind::Xsdt, xsdt) {
            Ok(list) => list,
            Err(error) if rsdt != 0 => {
                errors.push(TableError {
                    signature: Signature::XSDT,
                    address: xsdt,
                    error,
                });
                // If the RSDT is bad too, report the XSDT's error: it was the table to use.
                TableList::parse(mem, RootKind::Rsdt, rsdt).map_err(|_| error)?
            }
            Err(error) => return Err(error),
        },
        None if rsdt != 0 => TableList::parse(mem, RootKind::Rsdt, rsdt)?,
        None => return Err(AcpiError::NoRootTable),
    };

    let madt = first_valid(mem, &root, Signature::MADT, &mut errors, Madt::parse);
    let fadt = first_valid(mem, &root, Signature::FADT, &mut errors, Fadt::parse);
    let hpet = first_valid(mem, &root, Signature::HPET, &mut errors, Hpet::parse);
    Ok(AcpiTables {
        revision: rsdp.revision,
        root,
        madt,
        fadt,
        hpet,
        errors,
    })
}

/// Parses the first listed table with `signature` that validates, recording the failures of
/// any before it.
fn first_valid<T>(
    mem: &dyn PhysMemory,
    root: &TableList,
    signature: Signature,
    errors: &mut Vec<TableError>,
    parse: fn(&Table<'_>) -> Result<T, AcpiError>,
) -> Option<T> {
    for address in root.find_all(signature) {
        match Table::load(mem, address, signature).and_then(|t| parse(&t)) {
            Ok(v) => return Some(v),
            Err(error) => errors.push(TableError {
                signature,
                address,
                error,
            }),
        }
    }
    None
}
