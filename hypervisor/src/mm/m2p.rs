//! The machine-to-phys table (M2P): for every machine frame, the guest frame number its owner
//! uses for it. The hypervisor writes it at `RDWR_MPT_VIRT_START`; PV guests read the same
//! frames, read-only, at `RO_MPT_VIRT_START` (`machine_to_phys_mapping` in their ABI).

use super::{frames, paging};
use core::sync::atomic::{AtomicU64, Ordering};
use xenolith_arch::layout::{RDWR_MPT_VIRT_START, RO_MPT_VIRT_START, phys_to_virt};
use xenolith_arch::paging::{MapError, PageSize, Pte};

/// `INVALID_M2P_ENTRY`: the frame has no guest frame number.
pub const INVALID_M2P_ENTRY: u64 = !0;

static MAX_PAGE: AtomicU64 = AtomicU64::new(0);

/// One past the highest machine frame of RAM (Xen's `max_page`).
pub fn max_page() -> u64 {
    MAX_PAGE.load(Ordering::Relaxed)
}

/// Allocates and maps the M2P for frames `[0, max_page)`, every entry invalid.
pub fn init(max_page: u64) -> Result<(), MapError> {
    const BLOCK: u64 = 2 << 20;
    let bytes = (max_page * 8).div_ceil(BLOCK) * BLOCK;
    let mut off = 0;
    while off < bytes {
        let pa = frames::alloc(9).ok_or(MapError::NoMemory)?;
        // SAFETY: a fresh 2 MiB block, reachable through the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0xff, BLOCK as usize) };
        paging::map_hypervisor(
            RDWR_MPT_VIRT_START + off,
            pa,
            PageSize::Size2M,
            Pte::GLOBAL | Pte::RW | Pte::NX,
        )?;
        paging::map_hypervisor(
            RO_MPT_VIRT_START + off,
            pa,
            PageSize::Size2M,
            Pte::GLOBAL | Pte::USER | Pte::NX,
        )?;
        off += BLOCK;
    }
    MAX_PAGE.store(max_page, Ordering::Relaxed);
    Ok(())
}

/// Records that machine frame `mfn` is guest frame `pfn` of its owner.
pub fn set(mfn: u64, pfn: u64) {
    if mfn < max_page() {
        // SAFETY: the RW M2P covers [0, max_page) (see `init`).
        unsafe { ((RDWR_MPT_VIRT_START + mfn * 8) as *mut u64).write_volatile(pfn) };
    }
}

/// The guest frame number recorded for `mfn`.
pub fn get(mfn: u64) -> u64 {
    if mfn < max_page() {
        // SAFETY: as in `set`.
        unsafe { ((RDWR_MPT_VIRT_START + mfn * 8) as *const u64).read_volatile() }
    } else {
        INVALID_M2P_ENTRY
    }
}
