//! System description table headers, validated table access, and the root tables (RSDT/XSDT)
//! that list every other table.

use alloc::vec::Vec;
use core::fmt;

use xenolith_boot::PhysMemory;

use super::AcpiError;
use super::rsdp::checksum;

/// Size of the common header every system description table starts with.
pub const SDT_HEADER_LEN: u32 = 36;

/// Largest table length accepted. The tables parsed here are a few KiB even on big servers; the
/// cap bounds the work a corrupt length field can cause (the checksum reads the whole table).
pub const MAX_TABLE_LEN: u32 = 1 << 20;

/// Most entries taken from the RSDT/XSDT; the rest are dropped and
/// [`TableList::truncated`] is set. Real machines have tens of tables.
pub const MAX_TABLES: usize = 256;

/// A four-character table signature such as `APIC`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 4]);

impl Signature {
    /// Root System Description Table (32-bit entries).
    pub const RSDT: Self = Self(*b"RSDT");
    /// Extended System Description Table (64-bit entries).
    pub const XSDT: Self = Self(*b"XSDT");
    /// Multiple APIC Description Table.
    pub const MADT: Self = Self(*b"APIC");
    /// Fixed ACPI Description Table.
    pub const FADT: Self = Self(*b"FACP");
    /// High Precision Event Timer table.
    pub const HPET: Self = Self(*b"HPET");
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Signatures come from firmware: escape anything unprintable rather than trust it.
        for &b in &self.0 {
            if b.is_ascii_graphic() || b == b' ' {
                write!(f, "{}", b as char)?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// The common header of a system description table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SdtHeader {
    /// Table signature.
    pub signature: Signature,
    /// Length of the whole table, header included.
    pub length: u32,
    /// Table revision (its meaning depends on the table).
    pub revision: u8,
    /// OEM identifier.
    pub oem_id: [u8; 6],
    /// OEM table identifier.
    pub oem_table_id: [u8; 8],
    /// OEM revision.
    pub oem_revision: u32,
    /// Vendor of the tool that built the table.
    pub creator_id: [u8; 4],
    /// Revision of that tool.
    pub creator_revision: u32,
}

impl SdtHeader {
    /// Decodes the 36 header bytes.
    pub fn from_bytes(b: &[u8; SDT_HEADER_LEN as usize]) -> Self {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let mut oem_id = [0; 6];
        oem_id.copy_from_slice(&b[10..16]);
        let mut oem_table_id = [0; 8];
        oem_table_id.copy_from_slice(&b[16..24]);
        Self {
            signature: Signature([b[0], b[1], b[2], b[3]]),
            length: u32_at(4),
            revision: b[8],
            oem_id,
            oem_table_id,
            oem_revision: u32_at(24),
            creator_id: [b[28], b[29], b[30], b[31]],
            creator_revision: u32_at(32),
        }
    }
}

/// A table whose signature, length and checksum have been validated, read field by field
/// through [`PhysMemory`] with every access bounds-checked against the table length.
///
/// Fields are read from memory on demand instead of copying the table to the heap, so a large
/// (or corrupt) length costs no allocation.
pub(crate) struct Table<'a> {
    mem: &'a dyn PhysMemory,
    paddr: u64,
    header: SdtHeader,
}

impl<'a> Table<'a> {
    /// Loads the table at `paddr`, checking that its signature is `signature`, that its length
    /// is sane and lies in readable memory, and that its checksum is zero.
    pub(crate) fn load(
        mem: &'a dyn PhysMemory,
        paddr: u64,
        signature: Signature,
    ) -> Result<Self, AcpiError> {
        let mut raw = [0u8; SDT_HEADER_LEN as usize];
        if !mem.read_bytes(paddr, &mut raw) {
            return Err(AcpiError::Unreadable { paddr });
        }
        let header = SdtHeader::from_bytes(&raw);
        if header.signature != signature {
            return Err(AcpiError::BadSignature {
                paddr,
                expected: signature,
                found: header.signature,
            });
        }
        let length = header.length;
        if !(SDT_HEADER_LEN..=MAX_TABLE_LEN).contains(&length)
            || paddr.checked_add(u64::from(length)).is_none()
        {
            return Err(AcpiError::BadLength {
                paddr,
                signature,
                length,
            });
        }
        // Checksum the whole table in chunks: bounded stack use, no allocation.
        let mut sum = 0u8;
        let mut buf = [0u8; 256];
        let mut off = 0u32;
        while off < length {
            let n = (length - off).min(buf.len() as u32) as usize;
            let at = paddr + u64::from(off);
            if !mem.read_bytes(at, &mut buf[..n]) {
                return Err(AcpiError::Unreadable { paddr: at });
            }
            sum = sum.wrapping_add(checksum(&buf[..n]));
            off += n as u32;
        }
        if sum != 0 {
            return Err(AcpiError::BadChecksum { paddr, signature });
        }
        Ok(Self { mem, paddr, header })
    }

    /// The validated header.
    pub(crate) fn header(&self) -> &SdtHeader {
        &self.header
    }

    /// Physical address of the table.
    pub(crate) fn paddr(&self) -> u64 {
        self.paddr
    }

    /// Table length in bytes.
    pub(crate) fn len(&self) -> u32 {
        self.header.length
    }

    /// Whether `size` bytes at `offset` lie within the table.
    pub(crate) fn contains(&self, offset: u32, size: u32) -> bool {
        offset
            .checked_add(size)
            .is_some_and(|end| end <= self.len())
    }

    /// Reads `buf.len()` bytes at `offset`; an error if they are not all within the table.
    pub(crate) fn read(&self, offset: u32, buf: &mut [u8]) -> Result<(), AcpiError> {
        let size = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        if !self.contains(offset, size) {
            return Err(AcpiError::Truncated {
                paddr: self.paddr,
                signature: self.header.signature,
                offset,
            });
        }
        let at = self.paddr + u64::from(offset);
        if self.mem.read_bytes(at, buf) {
            Ok(())
        } else {
            Err(AcpiError::Unreadable { paddr: at })
        }
    }

    /// Reads `N` bytes at `offset`, which must lie within the table.
    pub(crate) fn bytes<const N: usize>(&self, offset: u32) -> Result<[u8; N], AcpiError> {
        let mut b = [0u8; N];
        self.read(offset, &mut b)?;
        Ok(b)
    }

    /// Reads `N` bytes at `offset`, or `None` if the table is too short to have them: for
    /// fields added by later revisions of a table.
    pub(crate) fn opt_bytes<const N: usize>(
        &self,
        offset: u32,
    ) -> Result<Option<[u8; N]>, AcpiError> {
        if self.contains(offset, N as u32) {
            self.bytes(offset).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Reads a `u8`.
    pub(crate) fn u8(&self, offset: u32) -> Result<u8, AcpiError> {
        self.bytes::<1>(offset).map(|b| b[0])
    }

    /// Reads a little-endian `u16`.
    pub(crate) fn u16(&self, offset: u32) -> Result<u16, AcpiError> {
        self.bytes(offset).map(u16::from_le_bytes)
    }

    /// Reads a little-endian `u32`.
    pub(crate) fn u32(&self, offset: u32) -> Result<u32, AcpiError> {
        self.bytes(offset).map(u32::from_le_bytes)
    }

    /// Reads a little-endian `u64`.
    pub(crate) fn u64(&self, offset: u32) -> Result<u64, AcpiError> {
        self.bytes(offset).map(u64::from_le_bytes)
    }
}

/// Which root table a [`TableList`] came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// The RSDT: 32-bit table addresses.
    Rsdt,
    /// The XSDT: 64-bit table addresses.
    Xsdt,
}

/// One table listed by the root table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableEntry {
    /// Signature read from the table's header.
    pub signature: Signature,
    /// Physical address of the table.
    pub address: u64,
}

/// The tables listed by the RSDT or XSDT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableList {
    /// Which root table was used.
    pub kind: RootKind,
    /// Physical address of the root table.
    pub address: u64,
    /// Header of the root table (OEM ids are worth logging).
    pub header: SdtHeader,
    /// Listed tables, in root-table order. Null pointers and tables whose header cannot be
    /// read are left out (and counted in `skipped`); the tables themselves are validated only
    /// when parsed.
    pub entries: Vec<TableEntry>,
    /// Entries left out because they were null or unreadable.
    pub skipped: u32,
    /// More than [`MAX_TABLES`] entries were listed; only the first ones were kept.
    pub truncated: bool,
}

impl TableList {
    /// Address of the first table with `signature`.
    pub fn find(&self, signature: Signature) -> Option<u64> {
        self.find_all(signature).next()
    }

    /// Addresses of every table with `signature` (SSDTs, for instance, come in numbers).
    pub fn find_all(&self, signature: Signature) -> impl Iterator<Item = u64> + '_ {
        self.entries
            .iter()
            .filter(move |e| e.signature == signature)
            .map(|e| e.address)
    }

    /// Parses the RSDT or XSDT at `paddr` and reads the signature of every table it lists.
    pub(crate) fn parse(
        mem: &dyn PhysMemory,
        kind: RootKind,
        paddr: u64,
    ) -> Result<Self, AcpiError> {
        let (signature, entry_size) = match kind {
            RootKind::Rsdt => (Signature::RSDT, 4),
            RootKind::Xsdt => (Signature::XSDT, 8),
        };
        let table = Table::load(mem, paddr, signature)?;
        let count = ((table.len() - SDT_HEADER_LEN) / entry_size) as usize;
        let mut entries = Vec::with_capacity(count.min(MAX_TABLES));
        let mut skipped = 0;
        for i in 0..count.min(MAX_TABLES) {
            let offset = SDT_HEADER_LEN + i as u32 * entry_size;
            let address = match kind {
                RootKind::Rsdt => u64::from(table.u32(offset)?),
                RootKind::Xsdt => table.u64(offset)?,
            };
            let mut sig = [0u8; 4];
            if address == 0 || !mem.read_bytes(address, &mut sig) {
                skipped += 1;
                continue;
            }
            entries.push(TableEntry {
                signature: Signature(sig),
                address,
            });
        }
        Ok(Self {
            kind,
            address: paddr,
            header: *table.header(),
            entries,
            skipped,
            truncated: count > MAX_TABLES,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Machine, sdt, set_checksum};
    use super::*;
    use alloc::format;
    use alloc::vec;

    const BASE: u64 = Machine::ACPI_BASE;

    #[test]
    fn loads_valid_table_and_reads_fields() {
        let mut m = Machine::pc();
        m.write(BASE, &sdt(b"TEST", 1, &[1, 2, 3, 4, 5, 6, 7, 8, 9]));
        let t = Table::load(&m, BASE, Signature(*b"TEST")).unwrap();
        assert_eq!(t.len(), 45);
        assert_eq!(&t.header().oem_id, b"XENOLT");
        assert_eq!(t.u8(36).unwrap(), 1);
        assert_eq!(t.u16(36).unwrap(), 0x0201);
        assert_eq!(t.u32(37).unwrap(), 0x0504_0302);
        assert_eq!(t.u64(37).unwrap(), 0x0908_0706_0504_0302);
        // One byte past the end is out of bounds even though memory continues.
        assert!(matches!(
            t.u64(38),
            Err(AcpiError::Truncated { offset: 38, .. })
        ));
        assert_eq!(t.opt_bytes::<2>(44).unwrap(), None);
        assert_eq!(t.opt_bytes::<1>(44).unwrap(), Some([9]));
        assert!(!t.contains(u32::MAX, 2));
    }

    #[test]
    fn rejects_bad_tables() {
        let mut m = Machine::pc();
        let good = sdt(b"TEST", 1, &[0; 16]);
        let sig = Signature(*b"TEST");

        m.write(BASE, &good);
        assert!(matches!(
            Table::load(&m, BASE, Signature(*b"FOOO")),
            Err(AcpiError::BadSignature { found, .. }) if found == sig
        ));

        let mut bad = good.clone();
        bad[40] ^= 0x10;
        m.write(BASE, &bad);
        assert_eq!(
            Table::load(&m, BASE, sig).err(),
            Some(AcpiError::BadChecksum {
                paddr: BASE,
                signature: sig
            })
        );

        // Length shorter than a header, and absurdly large (checksums fixed so only the length
        // is at fault).
        for length in [35u32, MAX_TABLE_LEN + 1] {
            let mut bad = good.clone();
            bad[4..8].copy_from_slice(&length.to_le_bytes());
            set_checksum(&mut bad, 9);
            m.write(BASE, &bad);
            assert_eq!(
                Table::load(&m, BASE, sig).err(),
                Some(AcpiError::BadLength {
                    paddr: BASE,
                    signature: sig,
                    length
                })
            );
        }

        // Length pointing past the end of readable memory.
        let end = Machine::ACPI_BASE + Machine::ACPI_SIZE;
        let mut bad = good.clone();
        bad[4..8].copy_from_slice(&0x1000u32.to_le_bytes());
        m.write(end - 52, &bad);
        assert!(matches!(
            Table::load(&m, end - 52, sig),
            Err(AcpiError::Unreadable { .. })
        ));

        // Header itself unreadable.
        assert_eq!(
            Table::load(&m, 0xdead_0000, sig).err(),
            Some(AcpiError::Unreadable { paddr: 0xdead_0000 })
        );
        // Length that would wrap the address space.
        let mut top = Machine {
            regions: vec![(u64::MAX - 0xfff, vec![0; 0xfff])],
        };
        let mut wrap = good.clone();
        wrap[4..8].copy_from_slice(&0x2000u32.to_le_bytes());
        set_checksum(&mut wrap, 9);
        top.write(u64::MAX - 0xfff, &wrap);
        assert!(matches!(
            Table::load(&top, u64::MAX - 0xfff, sig),
            Err(AcpiError::BadLength { .. })
        ));
    }

    #[test]
    fn signature_display_escapes() {
        assert_eq!(format!("{}", Signature::MADT), "APIC");
        assert_eq!(
            format!("{:?}", Signature([b'A', 0, 0xff, b' '])),
            "\"A\\x00\\xff \""
        );
    }

    #[test]
    fn rsdt_and_xsdt_listing() {
        let mut m = Machine::pc();
        m.write(BASE + 0x1000, &sdt(b"APIC", 1, &[]));
        m.write(BASE + 0x2000, &sdt(b"FACP", 1, &[]));
        m.write(BASE + 0x3000, &sdt(b"SSDT", 1, &[]));
        m.write(BASE + 0x4000, &sdt(b"SSDT", 1, &[]));
        let addrs =
            [0x1000u64, 0x2000, 0, 0x3000, 0x4000].map(|o| if o == 0 { 0 } else { BASE + o });

        let rsdt_body: Vec<u8> = addrs
            .iter()
            .flat_map(|&a| (a as u32).to_le_bytes())
            .collect();
        m.write(BASE, &sdt(b"RSDT", 1, &rsdt_body));
        let l = TableList::parse(&m, RootKind::Rsdt, BASE).unwrap();
        assert_eq!(l.kind, RootKind::Rsdt);
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.skipped, 1, "null entry skipped");
        assert!(!l.truncated);
        assert_eq!(l.find(Signature::MADT), Some(BASE + 0x1000));
        assert_eq!(l.find(Signature::HPET), None);
        assert_eq!(
            l.find_all(Signature(*b"SSDT")).collect::<Vec<_>>(),
            [BASE + 0x3000, BASE + 0x4000]
        );

        let mut xsdt_body: Vec<u8> = addrs.iter().flat_map(|&a| a.to_le_bytes()).collect();
        // An entry pointing at unreadable memory is skipped, not fatal.
        xsdt_body.extend_from_slice(&0xdead_beef_0000u64.to_le_bytes());
        // A trailing partial entry is ignored.
        xsdt_body.extend_from_slice(&[0xaa; 4]);
        m.write(BASE + 0x800, &sdt(b"XSDT", 1, &xsdt_body));
        let l = TableList::parse(&m, RootKind::Xsdt, BASE + 0x800).unwrap();
        assert_eq!(l.kind, RootKind::Xsdt);
        assert_eq!(l.entries.len(), 4);
        assert_eq!(l.skipped, 2);
        assert_eq!(l.find(Signature::FADT), Some(BASE + 0x2000));
    }

    #[test]
    fn root_entry_count_is_capped() {
        let mut m = Machine::pc();
        m.write(BASE + 0x8000, &sdt(b"SSDT", 1, &[]));
        let body: Vec<u8> = (0..MAX_TABLES + 10)
            .flat_map(|_| (BASE as u32 + 0x8000).to_le_bytes())
            .collect();
        m.write(BASE, &sdt(b"RSDT", 1, &body));
        let l = TableList::parse(&m, RootKind::Rsdt, BASE).unwrap();
        assert_eq!(l.entries.len(), MAX_TABLES);
        assert!(l.truncated);
    }
}
