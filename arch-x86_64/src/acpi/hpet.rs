//! The HPET description table: where the High Precision Event Timer block is and what its
//! counter can do (IA-PC HPET specification 1.0a, section 3.2.4).

use super::AcpiError;
use super::gas::{GAS_LEN, GenericAddress};
use super::sdt::{SDT_HEADER_LEN, Table};

/// Length of the HPET table.
pub const HPET_TABLE_LEN: u32 = 56;

/// A parsed HPET table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hpet {
    /// Hardware revision id of the timer block.
    pub hardware_rev_id: u8,
    /// Number of comparators (timers) in the block.
    pub comparator_count: u8,
    /// The main counter is 64 bits wide.
    pub counter_64bit: bool,
    /// The block can take over the legacy PIT/RTC interrupt routing.
    pub legacy_replacement: bool,
    /// PCI vendor id of the timer block.
    pub pci_vendor_id: u16,
    /// Register block address (system memory on every real machine).
    pub base_address: GenericAddress,
    /// HPET sequence number (which block this is).
    pub hpet_number: u8,
    /// Minimum main-counter ticks for periodic mode without losing interrupts.
    pub minimum_tick: u16,
    /// Page protection and OEM attributes (low nibble: 0 none, 1 4 KiB, 2 64 KiB).
    pub page_protection: u8,
}

impl Hpet {
    /// Parses a validated HPET table; shorter than [`HPET_TABLE_LEN`] is an error.
    pub(crate) fn parse(t: &Table<'_>) -> Result<Self, AcpiError> {
        let id = t.u32(SDT_HEADER_LEN)?;
        let base_address = GenericAddress::from_bytes(&t.bytes::<GAS_LEN>(40)?);
        Ok(Self {
            hardware_rev_id: id as u8,
            comparator_count: ((id >> 8) & 0x1f) as u8 + 1,
            counter_64bit: id & (1 << 13) != 0,
            legacy_replacement: id & (1 << 15) != 0,
            pci_vendor_id: (id >> 16) as u16,
            base_address,
            hpet_number: t.u8(52)?,
            minimum_tick: t.u16(53)?,
            page_protection: t.u8(55)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Machine, hpet, sdt};
    use super::super::sdt::Signature;
    use super::*;

    const BASE: u64 = Machine::ACPI_BASE + 0x6000;

    fn parse_at(m: &Machine) -> Result<Hpet, AcpiError> {
        Hpet::parse(&Table::load(m, BASE, Signature::HPET)?)
    }

    #[test]
    fn parses_hpet() {
        let mut m = Machine::pc();
        m.write(BASE, &hpet(0x8086_a201, 0xfed0_0000));
        let h = parse_at(&m).unwrap();
        assert_eq!(h.hardware_rev_id, 1);
        assert_eq!(h.comparator_count, 3);
        assert!(h.counter_64bit);
        assert!(h.legacy_replacement);
        assert_eq!(h.pci_vendor_id, 0x8086);
        assert_eq!(h.base_address.mmio_address(), Some(0xfed0_0000));
        assert_eq!(h.hpet_number, 0);
        assert_eq!(h.minimum_tick, 0x80);
        assert_eq!(h.page_protection, 0);
    }

    #[test]
    fn short_hpet_rejected() {
        let mut m = Machine::pc();
        m.write(BASE, &sdt(b"HPET", 1, &[0; 16]));
        assert!(matches!(parse_at(&m), Err(AcpiError::Truncated { .. })));
    }
}
