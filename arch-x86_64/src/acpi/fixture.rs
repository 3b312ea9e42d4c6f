//! Test fixtures: a fake machine's physical memory and builders producing ACPI tables with
//! correct checksums, so each test only spells out what it is about.

use alloc::vec;
use alloc::vec::Vec;

use xenolith_boot::{PhysMemory, SliceMemory};

use super::gas::GAS_LEN;
use super::rsdp::checksum;

/// Physical memory made of disjoint RAM regions; reads outside them fail like unmapped memory.
pub struct Machine {
    /// `(base, contents)` of each region.
    pub regions: Vec<(u64, Vec<u8>)>,
}

impl Machine {
    /// Where firmware of a 2 GiB PC keeps its ACPI tables (ACPI reclaim memory near top of RAM).
    pub const ACPI_BASE: u64 = 0x7fee_0000;
    /// Size of that region.
    pub const ACPI_SIZE: u64 = 0x2_0000;

    /// The low 1 MiB (BDA, EBDA, BIOS area) and the ACPI region, all zero.
    pub fn pc() -> Self {
        Self {
            regions: vec![
                (0, vec![0; 0x10_0000]),
                (Self::ACPI_BASE, vec![0; Self::ACPI_SIZE as usize]),
            ],
        }
    }

    /// Writes `bytes` at `paddr`; panics if they do not fit one region (a broken test).
    pub fn write(&mut self, paddr: u64, bytes: &[u8]) {
        let (base, mem) = self
            .regions
            .iter_mut()
            .find(|(base, mem)| {
                paddr >= *base && paddr - *base + bytes.len() as u64 <= mem.len() as u64
            })
            .expect("fixture write outside the machine's memory");
        let off = (paddr - *base) as usize;
        mem[off..off + bytes.len()].copy_from_slice(bytes);
    }

    /// Reads `len` bytes at `paddr`; panics if they are not all in one region.
    pub fn read(&self, paddr: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        assert!(
            self.read_bytes(paddr, &mut v),
            "fixture read outside memory"
        );
        v
    }
}

impl PhysMemory for Machine {
    fn read_bytes(&self, paddr: u64, buf: &mut [u8]) -> bool {
        self.regions
            .iter()
            .any(|(base, bytes)| SliceMemory { base: *base, bytes }.read_bytes(paddr, buf))
    }
}

/// Sets `bytes[at]` so that all of `bytes` sums to zero.
pub fn set_checksum(bytes: &mut [u8], at: usize) {
    bytes[at] = 0;
    bytes[at] = 0u8.wrapping_sub(checksum(bytes));
}

/// A system description table with a fixed fake OEM identity and a correct checksum.
pub fn sdt(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(36 + body.len());
    t.extend_from_slice(signature);
    t.extend_from_slice(&(36 + body.len() as u32).to_le_bytes());
    t.push(revision);
    t.push(0); // checksum
    t.extend_from_slice(b"XENOLT");
    t.extend_from_slice(b"XENOLITH");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"XLTH");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    set_checksum(&mut t, 9);
    t
}

/// An ACPI 1.0 RSDP.
pub fn rsdp_v1(rsdt: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(20);
    r.extend_from_slice(b"RSD PTR ");
    r.push(0);
    r.extend_from_slice(b"XENOLT");
    r.push(0); // revision
    r.extend_from_slice(&rsdt.to_le_bytes());
    set_checksum(&mut r, 8);
    r
}

/// An ACPI 2.0+ RSDP.
pub fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut r = rsdp_v1(rsdt);
    r[15] = 2;
    set_checksum(&mut r, 8);
    r.extend_from_slice(&36u32.to_le_bytes());
    r.extend_from_slice(&xsdt.to_le_bytes());
    r.extend_from_slice(&[0; 4]); // extended checksum, reserved
    set_checksum(&mut r, 32);
    r
}

/// An RSDT listing `tables`.
pub fn rsdt(tables: &[u32]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|a| a.to_le_bytes()).collect();
    sdt(b"RSDT", 1, &body)
}

/// An XSDT listing `tables`.
pub fn xsdt(tables: &[u64]) -> Vec<u8> {
    let body: Vec<u8> = tables.iter().flat_map(|a| a.to_le_bytes()).collect();
    sdt(b"XSDT", 1, &body)
}

/// The 12 bytes of a Generic Address Structure.
pub fn gas_bytes(space: u8, width: u8, offset: u8, access: u8, address: u64) -> [u8; GAS_LEN] {
    let mut g = [0; GAS_LEN];
    g[..4].copy_from_slice(&[space, width, offset, access]);
    g[4..].copy_from_slice(&address.to_le_bytes());
    g
}

/// An HPET table with event timer block id `id` and MMIO base `base`.
pub fn hpet(id: u32, base: u64) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(&gas_bytes(0, 64, 0, 0, base));
    body.push(0); // HPET number
    body.extend_from_slice(&0x80u16.to_le_bytes());
    body.push(0); // page protection
    sdt(b"HPET", 1, &body)
}

/// Builds a MADT entry by entry.
pub struct MadtBuilder {
    body: Vec<u8>,
}

impl MadtBuilder {
    /// Header fields: local APIC address and flags.
    pub fn new(local_apic: u32, flags: u32) -> Self {
        let mut body = Vec::new();
        body.extend_from_slice(&local_apic.to_le_bytes());
        body.extend_from_slice(&flags.to_le_bytes());
        Self { body }
    }

    /// Appends raw entry bytes (for malformed or unknown entries).
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.body.extend_from_slice(bytes);
        self
    }

    /// Type 0.
    pub fn local_apic(self, uid: u8, apic_id: u8, flags: u32) -> Self {
        let f = flags.to_le_bytes();
        self.raw(&[0, 8, uid, apic_id, f[0], f[1], f[2], f[3]])
    }

    /// Type 1.
    pub fn io_apic(self, id: u8, address: u32, gsi_base: u32) -> Self {
        let mut e = vec![1, 12, id, 0];
        e.extend_from_slice(&address.to_le_bytes());
        e.extend_from_slice(&gsi_base.to_le_bytes());
        self.raw(&e)
    }

    /// Type 2.
    pub fn iso(self, bus: u8, source: u8, gsi: u32, flags: u16) -> Self {
        let mut e = vec![2, 10, bus, source];
        e.extend_from_slice(&gsi.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        self.raw(&e)
    }

    /// Type 3.
    pub fn nmi_source(self, flags: u16, gsi: u32) -> Self {
        let mut e = vec![3, 8];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&gsi.to_le_bytes());
        self.raw(&e)
    }

    /// Type 4.
    pub fn local_apic_nmi(self, uid: u8, flags: u16, lint: u8) -> Self {
        let f = flags.to_le_bytes();
        self.raw(&[4, 6, uid, f[0], f[1], lint])
    }

    /// Type 5.
    pub fn lapic_override(self, address: u64) -> Self {
        let mut e = vec![5, 12, 0, 0];
        e.extend_from_slice(&address.to_le_bytes());
        self.raw(&e)
    }

    /// Type 9.
    pub fn x2apic(self, x2apic_id: u32, flags: u32, uid: u32) -> Self {
        let mut e = vec![9, 16, 0, 0];
        e.extend_from_slice(&x2apic_id.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        self.raw(&e)
    }

    /// Type 0xA.
    pub fn x2apic_nmi(self, flags: u16, uid: u32, lint: u8) -> Self {
        let mut e = vec![0xa, 12];
        e.extend_from_slice(&flags.to_le_bytes());
        e.extend_from_slice(&uid.to_le_bytes());
        e.extend_from_slice(&[lint, 0, 0, 0]);
        self.raw(&e)
    }

    /// The finished table.
    pub fn build(&self) -> Vec<u8> {
        sdt(b"APIC", 5, &self.body)
    }
}

/// Builds a FADT by patching fields of a template.
pub struct FadtBuilder {
    table: Vec<u8>,
}

impl FadtBuilder {
    fn template(revision: u8, len: usize) -> Self {
        let table = sdt(b"FACP", revision, &vec![0; len - 36]);
        Self { table }
            .u32(36, 0x7fee_9000) // FIRMWARE_CTRL
            .u32(40, 0x7fee_8000) // DSDT
            .bytes(46, &9u16.to_le_bytes()) // SCI_INT
            .u32(48, 0xb2) // SMI_CMD
            .bytes(52, &[0xf0, 0xf1]) // ACPI_ENABLE/DISABLE
            .u32(56, 0x400) // PM1a_EVT_BLK
            .u32(64, 0x404) // PM1a_CNT_BLK
            .u32(76, 0x408) // PM_TMR_BLK
            .bytes(88, &[4, 2, 0, 4]) // PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
            .bytes(108, &[0x32, 0x03, 0x00]) // CENTURY, IAPC_BOOT_ARCH
    }

    /// An ACPI 1.0 FADT (116 bytes). IAPC_BOOT_ARCH bytes are set to check they are ignored.
    pub fn v1() -> Self {
        Self::template(1, 116)
    }

    /// An ACPI 6 FADT (276 bytes) whose X_ blocks differ from the legacy ports so tests can
    /// tell which was used.
    pub fn v6() -> Self {
        Self::template(6, 276)
            .flags((1 << 8) | (1 << 10)) // TMR_VAL_EXT | RESET_REG_SUP
            .bytes(116, &gas_bytes(1, 8, 0, 1, 0xcf9)) // RESET_REG
            .bytes(128, &[6]) // RESET_VALUE
            .bytes(131, &[5]) // minor version
            .bytes(140, &0x1_2345_6000u64.to_le_bytes()) // X_DSDT
            .bytes(148, &gas_bytes(1, 32, 0, 2, 0x600)) // X_PM1a_EVT_BLK
            .bytes(172, &gas_bytes(1, 0, 0, 2, 0x604)) // X_PM1a_CNT_BLK, width left 0
            .bytes(208, &gas_bytes(1, 32, 0, 3, 0x608)) // X_PM_TMR_BLK
    }

    /// Writes `bytes` at `offset`.
    pub fn bytes(mut self, offset: u32, bytes: &[u8]) -> Self {
        let o = offset as usize;
        self.table[o..o + bytes.len()].copy_from_slice(bytes);
        self
    }

    /// Writes a `u32` at `offset`.
    pub fn u32(self, offset: u32, v: u32) -> Self {
        self.bytes(offset, &v.to_le_bytes())
    }

    /// Sets the flags field.
    pub fn flags(self, flags: u32) -> Self {
        self.u32(112, flags)
    }

    /// Cuts the table to `len` bytes.
    pub fn truncate(mut self, len: u32) -> Self {
        self.table.truncate(len as usize);
        self
    }

    /// The finished table, length and checksum fixed up.
    pub fn build(&self) -> Vec<u8> {
        let mut t = self.table.clone();
        let len = t.len() as u32;
        t[4..8].copy_from_slice(&len.to_le_bytes());
        set_checksum(&mut t, 9);
        t
    }
}
