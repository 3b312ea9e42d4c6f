//! PVH/HVM start of day: `arch-x86/hvm/start_info.h` (pointer in `%ebx`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_HVM_START_MAGIC_VALUE`: "xEn3" with the 0x80 bit of the "E" set.
pub const XEN_HVM_START_MAGIC_VALUE: u32 = 0x336e_c578;

/// `XEN_HVM_MEMMAP_TYPE_RAM`.
pub const XEN_HVM_MEMMAP_TYPE_RAM: u32 = 1;
/// `XEN_HVM_MEMMAP_TYPE_RESERVED`.
pub const XEN_HVM_MEMMAP_TYPE_RESERVED: u32 = 2;
/// `XEN_HVM_MEMMAP_TYPE_ACPI`.
pub const XEN_HVM_MEMMAP_TYPE_ACPI: u32 = 3;
/// `XEN_HVM_MEMMAP_TYPE_NVS`.
pub const XEN_HVM_MEMMAP_TYPE_NVS: u32 = 4;
/// `XEN_HVM_MEMMAP_TYPE_UNUSABLE`.
pub const XEN_HVM_MEMMAP_TYPE_UNUSABLE: u32 = 5;
/// `XEN_HVM_MEMMAP_TYPE_DISABLED`.
pub const XEN_HVM_MEMMAP_TYPE_DISABLED: u32 = 6;
/// `XEN_HVM_MEMMAP_TYPE_PMEM`.
pub const XEN_HVM_MEMMAP_TYPE_PMEM: u32 = 7;

/// `struct hvm_start_info` (version 1 layout; version 0 ends at `memmap_paddr`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HvmStartInfo {
    /// [`XEN_HVM_START_MAGIC_VALUE`].
    pub magic: u32,
    /// Structure version (1).
    pub version: u32,
    /// `SIF_*`.
    pub flags: u32,
    /// Number of `hvm_modlist_entry` at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP.
    pub rsdp_paddr: u64,
    /// Physical address of the `hvm_memmap_table_entry` array (v1).
    pub memmap_paddr: u64,
    /// Entries in the memory map, 0 if none (v1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}
assert_layout!(HvmStartInfo, 56, magic @ 0, version @ 4, flags @ 8, nr_modules @ 12,
    modlist_paddr @ 16, cmdline_paddr @ 24, rsdp_paddr @ 32, memmap_paddr @ 40,
    memmap_entries @ 48, reserved @ 52);

/// `struct hvm_modlist_entry`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HvmModlistEntry {
    /// Physical address of the module.
    pub paddr: u64,
    /// Size in bytes.
    pub size: u64,
    /// Physical address of its command line.
    pub cmdline_paddr: u64,
    /// Reserved.
    pub reserved: u64,
}
assert_layout!(HvmModlistEntry, 32, paddr @ 0, size @ 8, cmdline_paddr @ 16, reserved @ 24);

/// `struct hvm_memmap_table_entry`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct HvmMemmapTableEntry {
    /// Base address.
    pub addr: u64,
    /// Size in bytes.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*`.
    pub type_: u32,
    /// Must be zero.
    pub reserved: u32,
}
assert_layout!(HvmMemmapTableEntry, 24, addr @ 0, size @ 8, type_ @ 16, reserved @ 20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_spells_xen3() {
        // "xEn3" little-endian, with 0x80 set on the 'E'.
        assert_eq!(
            XEN_HVM_START_MAGIC_VALUE.to_le_bytes(),
            [b'x', b'E' | 0x80, b'n', b'3']
        );
    }
}
