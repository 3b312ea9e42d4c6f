//! The PV memory view: the guest's initial mapping (pfn `n` at `VIRT_BASE + n * 4 KiB`, as Xen's
//! dom0 builder lays it out), the P2M list Xen puts at `start_info.mfn_list`, the read-only M2P
//! table at `MACH2PHYS_VIRT_START`, and walks of the guest's own (read-only) page tables.

use core::ptr;

use xen_abi::arch_x86::MACH2PHYS_VIRT_START;
use xen_abi::xen::StartInfo;

// x86 page-table entry bits.
/// Present.
pub const _PAGE_PRESENT: u64 = 1 << 0;
/// Writable.
pub const _PAGE_RW: u64 = 1 << 1;
/// Accessed.
pub const _PAGE_ACCESSED: u64 = 1 << 5;
/// Superpage (in L2/L3 entries).
pub const _PAGE_PSE: u64 = 1 << 7;
/// The frame-number bits of an entry (bits 12..=51).
pub const PTE_MFN_MASK: u64 = 0x000f_ffff_ffff_f000;

/// `XEN_ELFNOTE_VIRT_BASE`: where pfn 0 is mapped (see `pvtest.ld`).
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
/// Page size.
pub const PAGE_SIZE: u64 = 4096;

/// The pfn backing `va` in the initial mapping.
pub fn va_to_pfn(va: u64) -> u64 {
    (va - VIRT_BASE) / PAGE_SIZE
}

/// The virtual address of `pfn` in the initial mapping.
pub fn pfn_to_va(pfn: u64) -> u64 {
    VIRT_BASE + pfn * PAGE_SIZE
}

/// The guest's P2M entries (`start_info.mfn_list`, `nr_pages` of them).
pub fn p2m(si: &StartInfo) -> &[u64] {
    // SAFETY: Xen maps the P2M list (nr_pages entries) read-write in the initial mapping and
    // nothing else writes it while the guest runs.
    unsafe { core::slice::from_raw_parts(si.mfn_list as *const u64, si.nr_pages as usize) }
}

/// `machine_to_phys_mapping[mfn]`, read from the read-only M2P every PV guest has mapped.
pub fn m2p(mfn: u64) -> u64 {
    let entry = (MACH2PHYS_VIRT_START + mfn * 8) as *const u64;
    // SAFETY: Xen maps the M2P read-only into every 64-bit PV guest for all valid MFNs; callers
    // only pass MFNs of the guest's own frames.
    unsafe { ptr::read_volatile(entry) }
}

/// The virtual address of one of the guest's own frames within the initial mapping, if its pfn
/// is in range.
pub fn mfn_to_va(si: &StartInfo, mfn: u64) -> Option<u64> {
    let pfn = m2p(mfn);
    (pfn < si.nr_pages).then(|| pfn_to_va(pfn))
}

/// A level-1 page-table entry found by [`walk`].
#[derive(Clone, Copy)]
pub struct L1Entry {
    /// Machine address of the entry (what `mmu_update` takes).
    pub maddr: u64,
    /// Its current value.
    pub value: u64,
}

/// Why a walk stopped.
#[derive(Clone, Copy)]
pub enum WalkError {
    /// Level (4..=1) whose entry is not present.
    NotPresent(u8),
    /// Level whose entry maps a superpage.
    Superpage(u8),
    /// Level whose table's frame is outside the initial mapping.
    Unmapped(u8),
}

/// Walks the guest's page tables (from `start_info.pt_base`) down to the L1 entry for `va`.
pub fn walk(si: &StartInfo, va: u64) -> Result<L1Entry, WalkError> {
    let mut table_va = si.pt_base;
    let mut table_mfn = p2m(si)[va_to_pfn(si.pt_base) as usize];
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * (u32::from(level) - 1);
        let index = (va >> shift) & 0x1ff;
        let entry_ptr = (table_va + index * 8) as *const u64;
        // SAFETY: the page tables of the initial mapping are mapped read-only at table_va
        // (pt_base, or found through the M2P within the initial mapping).
        let entry = unsafe { ptr::read_volatile(entry_ptr) };
        if level == 1 {
            return Ok(L1Entry {
                maddr: table_mfn * PAGE_SIZE + index * 8,
                value: entry,
            });
        }
        if entry & _PAGE_PRESENT == 0 {
            return Err(WalkError::NotPresent(level));
        }
        if level < 4 && entry & _PAGE_PSE != 0 {
            return Err(WalkError::Superpage(level));
        }
        table_mfn = (entry & PTE_MFN_MASK) / PAGE_SIZE;
        table_va = mfn_to_va(si, table_mfn).ok_or(WalkError::Unmapped(level - 1))?;
    }
    unreachable!("the loop returns at level 1")
}

impl core::fmt::Display for WalkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WalkError::NotPresent(l) => write!(f, "L{l} entry not present"),
            WalkError::Superpage(l) => write!(f, "L{l} entry maps a superpage"),
            WalkError::Unmapped(l) => write!(f, "L{l} table outside the initial mapping"),
        }
    }
}

/// One page of the guest image whose mapping the checks may change (and restore).
#[repr(C, align(4096))]
pub struct ScratchPage(pub [u8; 4096]);

/// The scratch page: only accessed through raw pointers and volatile reads, since its mapping
/// changes behind the compiler's back.
pub static mut SCRATCH: ScratchPage = ScratchPage([0; 4096]);

/// The scratch page's virtual address.
pub fn scratch_va() -> u64 {
    (&raw const SCRATCH) as u64
}

/// Reads the `u64` at byte `offset` of the scratch page's current mapping.
pub fn scratch_read_u64(offset: usize) -> u64 {
    assert!(offset + 8 <= 4096);
    // SAFETY: the scratch page's VA is always mapped (to itself or to a frame the checks mapped
    // there read-only); volatile because the mapping changes via hypercalls.
    unsafe { ptr::read_volatile((scratch_va() as usize + offset) as *const u64) }
}

/// Reads the byte at `offset` of the scratch page's current mapping.
pub fn scratch_read_u8(offset: usize) -> u8 {
    assert!(offset < 4096);
    // SAFETY: as for scratch_read_u64.
    unsafe { ptr::read_volatile((scratch_va() as usize + offset) as *const u8) }
}

/// Writes the `u64` at byte `offset` of the scratch page (only while it maps its own frame).
pub fn scratch_write_u64(offset: usize, value: u64) {
    assert!(offset + 8 <= 4096);
    // SAFETY: only called while the scratch VA maps the scratch frame itself (writable).
    unsafe { ptr::write_volatile((scratch_va() as usize + offset) as *mut u64, value) }
}
