//! [`PhysMemory`] over the machine's memory: through the boot identity map before the
//! hypervisor's own page tables are live, through the direct map after.

use xenolith_arch::layout::phys_to_virt;
use xenolith_boot::PhysMemory;

/// Reads physical memory below 4 GiB through the boot loader-era identity map.
pub struct IdentityMemory;

impl PhysMemory for IdentityMemory {
    fn read_bytes(&self, paddr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = paddr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > 1 << 32 || paddr == 0 {
            return false;
        }
        // SAFETY: the boot page tables identity-map all of [0, 4 GiB) (boot/src/entry.rs),
        // and only plain RAM/firmware tables are read through this (boot info, ACPI).
        unsafe { core::ptr::copy_nonoverlapping(paddr as *const u8, buf.as_mut_ptr(), buf.len()) };
        true
    }
}

/// Reads physical memory through the direct map, limited to what it maps.
pub struct DirectMemory {
    /// End (exclusive) of the physical range the direct map covers.
    pub limit: u64,
}

impl PhysMemory for DirectMemory {
    fn read_bytes(&self, paddr: u64, buf: &mut [u8]) -> bool {
        let Some(end) = paddr.checked_add(buf.len() as u64) else {
            return false;
        };
        if end > self.limit || paddr == 0 {
            return false;
        }
        // SAFETY: [0, limit) is mapped by the direct map (mm::paging builds it so).
        unsafe {
            core::ptr::copy_nonoverlapping(
                phys_to_virt(paddr) as *const u8,
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        true
    }
}
