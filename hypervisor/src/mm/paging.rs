//! The hypervisor's own page tables: built once at boot with W^X, then extended by `ioremap`.
//!
//! Layout (see `xenolith_arch::layout`): the image at `XEN_VIRT_START` with per-section
//! permissions, the direct map of RAM (and the low 4 GiB) at `DIRECTMAP_VIRT_START`, MMIO in the
//! vmap area. The L3 tables of all hypervisor L4 slots are created up front, because PV guest
//! L4s will share those slots by copying the L4 entries.

use super::frames;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;
use xenolith_arch::layout::{
    DIRECTMAP_VIRT_START, HYPERVISOR_L4_FIRST, HYPERVISOR_L4_LAST, VMAP_VIRT_START,
    image_virt_to_phys, phys_to_virt,
};
use xenolith_arch::paging::{MapError, Mapper, PAGE_SIZE, Pte, TableAccess};

unsafe extern "C" {
    static __xenolith_text_start: u8;
    static __xenolith_text_end: u8;
    static __xenolith_rodata_start: u8;
    static __xenolith_rodata_end: u8;
    static __xenolith_data_start: u8;
    static __xenolith_image_end: u8;
}

/// Physical address of the hypervisor's L4 (below 4 GiB: APs load it from 32-bit code).
static ROOT: AtomicU64 = AtomicU64::new(0);
/// End of the physical range covered by the direct map.
static DIRECT_LIMIT: AtomicU64 = AtomicU64::new(0);
/// Serialises changes to the hypervisor's tables after boot.
static LOCK: Mutex<u64> = Mutex::new(VMAP_VIRT_START);

/// Page-table frames during construction: below 4 GiB, reached through the identity map.
struct BootTables;

impl TableAccess for BootTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let pa = frames::alloc_below(0, 1 << 32)?;
        // SAFETY: the frame is ours, below 4 GiB, identity-mapped by the boot tables.
        unsafe { core::ptr::write_bytes(pa as *mut u8, 0, PAGE_SIZE as usize) };
        Some(pa)
    }
    fn table_ptr(&self, pa: u64) -> *mut [u64; 512] {
        pa as *mut [u64; 512]
    }
}

/// Page-table frames once the direct map is live.
struct DirectTables;

impl TableAccess for DirectTables {
    fn alloc_table(&mut self) -> Option<u64> {
        let pa = frames::alloc(0)?;
        // SAFETY: the frame is ours and mapped by the direct map.
        unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, PAGE_SIZE as usize) };
        Some(pa)
    }
    fn table_ptr(&self, pa: u64) -> *mut [u64; 512] {
        phys_to_virt(pa) as *mut [u64; 512]
    }
}

/// The address of a linker-script symbol.
macro_rules! sym {
    ($s:ident) => {
        core::ptr::addr_of!($s) as u64
    };
}

/// What `build_and_switch` reports.
pub struct PagingReport {
    /// Physical address of the root table.
    pub root: u64,
    /// Leaf mappings audited.
    pub leaves: u64,
    /// Leaves that were writable and executable (must be 0).
    pub wx_violations: u64,
}

/// Builds the hypervisor's page tables and switches to them. `direct_ranges` are the physical
/// ranges to put in the direct map (besides the low 4 GiB, always mapped).
pub fn build_and_switch(
    direct_ranges: &[(u64, u64)],
    nx: bool,
    page1g: bool,
) -> Result<PagingReport, MapError> {
    let nx_bit = if nx { Pte::NX } else { Pte::empty() };
    let mut access = BootTables;
    let root = access.alloc_table().ok_or(MapError::NoMemory)?;
    let mut m = Mapper::new(root, &mut access);
    for slot in HYPERVISOR_L4_FIRST..=HYPERVISOR_L4_LAST {
        m.ensure_l3(slot)?;
    }

    let text = (sym!(__xenolith_text_start), sym!(__xenolith_text_end));
    let rodata = (sym!(__xenolith_rodata_start), sym!(__xenolith_rodata_end));
    let data = (sym!(__xenolith_data_start), sym!(__xenolith_image_end));
    let sections = [
        (text, Pte::GLOBAL),
        (rodata, Pte::GLOBAL | nx_bit),
        (data, Pte::GLOBAL | Pte::RW | nx_bit),
    ];
    for ((start, end), flags) in sections {
        m.map_range(start, image_virt_to_phys(start), end - start, flags, false)?;
    }

    let dm_flags = Pte::GLOBAL | Pte::RW | nx_bit;
    let gib = 1u64 << 30;
    m.map_range(DIRECTMAP_VIRT_START, 0, 4 * gib, dm_flags, page1g)?;
    let mut limit = 4 * gib;
    for &(s, e) in direct_ranges {
        let (s, e) = (s.max(4 * gib) & !0x1f_ffff, (e + 0x1f_ffff) & !0x1f_ffff);
        if s < e {
            m.map_range(DIRECTMAP_VIRT_START + s, s, e - s, dm_flags, page1g)?;
            limit = limit.max(e);
        }
    }

    let (mut leaves, mut wx_violations) = (0, 0);
    m.for_each_leaf(|_, _, _, f| {
        leaves += 1;
        if f.contains(Pte::RW) && !f.contains(Pte::NX) {
            wx_violations += 1;
        }
    });

    // SAFETY: the new tables map the image (code, stack, data) at the same virtual addresses
    // as the boot tables, so execution continues; the boot identity map is dropped, and
    // callers switch to direct-map addresses for physical memory (`relocate_vga` etc.).
    unsafe { xenolith_arch::cpu::write_cr3(root) };
    ROOT.store(root, Ordering::Release);
    DIRECT_LIMIT.store(limit, Ordering::Release);
    Ok(PagingReport {
        root,
        leaves,
        wx_violations,
    })
}

/// Physical address of the hypervisor L4.
pub fn root() -> u64 {
    ROOT.load(Ordering::Acquire)
}

/// End of the physical range the direct map covers.
pub fn direct_map_limit() -> u64 {
    DIRECT_LIMIT.load(Ordering::Acquire)
}

/// Maps `len` bytes of MMIO at physical `pa` uncached in the vmap area; returns the virtual
/// address corresponding to `pa`.
pub fn ioremap(pa: u64, len: u64) -> Result<u64, MapError> {
    let base = pa & !(PAGE_SIZE - 1);
    let size = (pa + len - base).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    let mut next = LOCK.lock();
    let va = *next;
    let mut access = DirectTables;
    let mut m = Mapper::new(root(), &mut access);
    let flags = Pte::GLOBAL | Pte::RW | Pte::PCD | Pte::PWT | Pte::NX;
    m.map_range(va, base, size, flags, false)?;
    // Leave an unmapped guard page between mappings.
    *next = va + size + PAGE_SIZE;
    Ok(va + (pa - base))
}

/// Maps `[pa, pa + len)` at the same virtual address (executable), for the AP trampoline.
pub fn map_identity(pa: u64, len: u64) -> Result<(), MapError> {
    let _g = LOCK.lock();
    let mut access = DirectTables;
    Mapper::new(root(), &mut access).map_range(pa, pa, len, Pte::RW, false)
}

/// Removes every mapping below the hypervisor range (L4 slots 0-255) again.
pub fn drop_low_mappings() {
    let _g = LOCK.lock();
    let l4 = phys_to_virt(root()) as *mut u64;
    for slot in 0..HYPERVISOR_L4_FIRST {
        // SAFETY: the root table is live and owned by the hypervisor; low slots hold only the
        // temporary identity mapping at this point.
        unsafe { l4.add(slot).write_volatile(0) };
    }
    // SAFETY: reloading CR3 with the same root flushes the dropped non-global entries.
    unsafe { xenolith_arch::cpu::write_cr3(root()) };
}

/// Maps the frame at `pa` read-only and executable in the vmap area (for generated code such as
/// the per-CPU SYSCALL stubs, written through the direct map before this); returns its address.
pub fn map_code_page(pa: u64) -> Result<u64, MapError> {
    let mut next = LOCK.lock();
    let va = *next;
    let mut access = DirectTables;
    Mapper::new(root(), &mut access).map(
        va,
        pa,
        xenolith_arch::paging::PageSize::Size4K,
        Pte::GLOBAL,
    )?;
    *next = va + 2 * PAGE_SIZE;
    Ok(va)
}

/// Maps one page of `size` at `va` (in the hypervisor range) to `pa` with `flags`.
pub fn map_hypervisor(
    va: u64,
    pa: u64,
    size: xenolith_arch::paging::PageSize,
    flags: Pte,
) -> Result<(), MapError> {
    let _g = LOCK.lock();
    let mut access = DirectTables;
    Mapper::new(root(), &mut access).map(va, pa, size, flags)
}
