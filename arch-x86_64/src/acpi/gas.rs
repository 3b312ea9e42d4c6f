//! The ACPI Generic Address Structure (GAS): a register location in some address space, used by
//! the FADT (PM blocks, reset register) and the HPET table.

/// Size of a Generic Address Structure in a table.
pub const GAS_LEN: usize = 12;

/// Address space a [`GenericAddress`] lives in (ACPI 6.5 table 5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpace {
    /// Physical memory (MMIO).
    SystemMemory,
    /// x86 I/O ports.
    SystemIo,
    /// PCI configuration space (segment 0, bus 0).
    PciConfig,
    /// Embedded controller.
    EmbeddedController,
    /// SMBus.
    SmBus,
    /// Functional fixed hardware (e.g. MSRs).
    FunctionalFixed,
    /// Any other space id (reserved or OEM defined).
    Other(u8),
}

impl From<u8> for AddressSpace {
    fn from(id: u8) -> Self {
        match id {
            0 => Self::SystemMemory,
            1 => Self::SystemIo,
            2 => Self::PciConfig,
            3 => Self::EmbeddedController,
            4 => Self::SmBus,
            0x7f => Self::FunctionalFixed,
            other => Self::Other(other),
        }
    }
}

/// A decoded Generic Address Structure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GenericAddress {
    /// Where `address` points.
    pub space: AddressSpace,
    /// Register width in bits (0 when the firmware did not say).
    pub bit_width: u8,
    /// Offset of the register's bits within the access.
    pub bit_offset: u8,
    /// Access size: 0 undefined, 1 byte, 2 word, 3 dword, 4 qword.
    pub access_size: u8,
    /// Address in `space`.
    pub address: u64,
}

impl GenericAddress {
    /// Decodes the 12 bytes of a GAS as laid out in ACPI tables.
    pub fn from_bytes(b: &[u8; GAS_LEN]) -> Self {
        Self {
            space: AddressSpace::from(b[0]),
            bit_width: b[1],
            bit_offset: b[2],
            access_size: b[3],
            address: u64::from_le_bytes([b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11]]),
        }
    }

    /// An I/O port register: how the legacy 32-bit FADT block fields are represented, so that
    /// callers see one shape whichever field the firmware filled in.
    pub fn io(port: u64, bit_width: u8) -> Self {
        Self {
            space: AddressSpace::SystemIo,
            bit_width,
            bit_offset: 0,
            access_size: 0,
            address: port,
        }
    }

    /// The I/O port, when this register is in I/O space and the address fits a port number.
    pub fn io_port(&self) -> Option<u16> {
        match self.space {
            AddressSpace::SystemIo => u16::try_from(self.address).ok(),
            _ => None,
        }
    }

    /// The physical address, when this register is memory mapped.
    pub fn mmio_address(&self) -> Option<u64> {
        (self.space == AddressSpace::SystemMemory).then_some(self.address)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode() {
        let g = GenericAddress::from_bytes(&[1, 8, 0, 1, 0xf9, 0x0c, 0, 0, 0, 0, 0, 0]);
        assert_eq!(g.space, AddressSpace::SystemIo);
        assert_eq!(g.io_port(), Some(0xcf9));
        assert_eq!(g.mmio_address(), None);

        let g = GenericAddress::from_bytes(&[0, 64, 0, 0, 0, 0, 0xd0, 0xfe, 0, 0, 0, 0]);
        assert_eq!(g.mmio_address(), Some(0xfed0_0000));
        assert_eq!(g.io_port(), None);

        let g = GenericAddress::from_bytes(&[1, 8, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0]);
        assert_eq!(g.io_port(), None, "port beyond 0xffff");
        assert_eq!(AddressSpace::from(0x7f), AddressSpace::FunctionalFixed);
        assert_eq!(AddressSpace::from(0x42), AddressSpace::Other(0x42));
    }
}
