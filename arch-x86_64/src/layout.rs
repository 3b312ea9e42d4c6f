//! The hypervisor's virtual memory layout: Xen's x86_64 layout (`xen/arch/x86/include/asm/config.h`)
//! inside the PV-reserved range, L4 slots 256-271, so PV guests see what they expect there.
//!
//! ```text
//! 0xffff800000000000 - 0xffff803fffffffff  read-only M2P, guest-readable (slot 256)
//! 0xffff820000000000 - 0xffff827fffffffff  per-domain mappings: GDT/LDT (slot 260)
//! 0xffff828000000000 - 0xffff82bfffffffff  read-write M2P (slot 261)
//! 0xffff82c000000000 - 0xffff82cfffffffff  vmap / ioremap / fixmap (slot 261)
//! 0xffff82d040000000 - 0xffff82d07fffffff  hypervisor text, data, bss (slot 261)
//! 0xffff82e000000000 - 0xffff82ffffffffff  frame table (slot 261)
//! 0xffff830000000000 - 0xffff87ffffffffff  direct map of RAM (slots 262-271)
//! ```

/// Start of the range reserved for the hypervisor in every PV guest's address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End (exclusive) of the hypervisor range.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// First L4 slot of the hypervisor range.
pub const HYPERVISOR_L4_FIRST: usize = 256;
/// Last L4 slot (inclusive) of the hypervisor range.
pub const HYPERVISOR_L4_LAST: usize = 271;
/// The read-only machine-to-phys table PV guests read (`MACH2PHYS_VIRT_START`).
pub const RO_MPT_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the read-only M2P.
pub const RO_MPT_VIRT_END: u64 = 0xffff_8040_0000_0000;
/// Per-domain mappings (GDT/LDT shadow areas).
pub const PERDOMAIN_VIRT_START: u64 = 0xffff_8200_0000_0000;
/// The writable M2P the hypervisor maintains.
pub const RDWR_MPT_VIRT_START: u64 = 0xffff_8280_0000_0000;
/// Start of the vmap/ioremap area (MMIO and temporary mappings).
pub const VMAP_VIRT_START: u64 = 0xffff_82c0_0000_0000;
/// The hypervisor image.
pub const XEN_VIRT_START: u64 = 0xffff_82d0_4000_0000;
/// The frame table (`struct page_info` array).
pub const FRAMETABLE_VIRT_START: u64 = 0xffff_82e0_0000_0000;
/// Direct map of all RAM.
pub const DIRECTMAP_VIRT_START: u64 = 0xffff_8300_0000_0000;
/// End of the direct map (5 TiB).
pub const DIRECTMAP_VIRT_END: u64 = 0xffff_8800_0000_0000;
/// Physical address where the loaders put the image (see `hypervisor/xenolith.ld`).
pub const IMAGE_LOAD_BASE: u64 = 0x20_0000;

/// The L4 slot of a virtual address.
pub const fn l4_slot(va: u64) -> usize {
    ((va >> 39) & 511) as usize
}

/// Direct-map virtual address of a physical address.
pub const fn phys_to_virt(pa: u64) -> u64 {
    DIRECTMAP_VIRT_START + pa
}

/// Physical address of a direct-map virtual address, if it is one.
pub const fn virt_to_phys_direct(va: u64) -> Option<u64> {
    if va >= DIRECTMAP_VIRT_START && va < DIRECTMAP_VIRT_END {
        Some(va - DIRECTMAP_VIRT_START)
    } else {
        None
    }
}

/// Physical address of a symbol in the hypervisor image.
pub const fn image_virt_to_phys(va: u64) -> u64 {
    va - XEN_VIRT_START + IMAGE_LOAD_BASE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_xen_layout() {
        assert_eq!(l4_slot(HYPERVISOR_VIRT_START), HYPERVISOR_L4_FIRST);
        assert_eq!(l4_slot(HYPERVISOR_VIRT_END - 1), HYPERVISOR_L4_LAST);
        assert_eq!(l4_slot(XEN_VIRT_START), 261);
        assert_eq!(l4_slot(DIRECTMAP_VIRT_START), 262);
        assert_eq!((XEN_VIRT_START >> 30) & 511, 321);
        assert_eq!(phys_to_virt(0x1000), 0xffff_8300_0000_1000);
        assert_eq!(virt_to_phys_direct(0xffff_8300_0000_1000), Some(0x1000));
        assert_eq!(virt_to_phys_direct(XEN_VIRT_START), None);
        assert_eq!(image_virt_to_phys(XEN_VIRT_START + 0x3000), 0x20_3000);
    }
}
