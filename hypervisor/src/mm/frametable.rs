//! The frame table: one [`PageInfo`] per machine frame at `FRAMETABLE_VIRT_START`, and the
//! [`FrameEnv`] the PV page-type rules run on.
//!
//! RAM frames start unowned (free or hypervisor-private: no guest can take a reference on
//! them); frames below `max_page` that are not RAM belong to `DOMID_IO`, as Xen's
//! `assign_io_page` arranges, so the hardware domain can map firmware and MMIO ranges.

use super::{frames, paging};
use crate::pvmm::{DOMID_IO, DomId, DomainPolicy, FrameEnv, Mfn, PageInfo};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::{Mutex, MutexGuard};
use xenolith_arch::layout::{FRAMETABLE_VIRT_START, phys_to_virt};
use xenolith_arch::paging::{MapError, PageSize, Pte};
use xenolith_boot::{MemoryKind, MemoryRegion};

static NR_FRAMES: AtomicU64 = AtomicU64::new(0);
/// Serialises PV MMU operations (the single-threaded model of `pvmm`).
static PV_MMU: Mutex<()> = Mutex::new(());

/// Creates the frame table for frames `[0, max_page)` from the memory map.
pub fn init(max_page: u64, map: &[MemoryRegion]) -> Result<(), MapError> {
    const BLOCK: u64 = 2 << 20;
    let bytes = (max_page * core::mem::size_of::<PageInfo>() as u64).div_ceil(BLOCK) * BLOCK;
    let mut off = 0;
    while off < bytes {
        let pa = frames::alloc(9).ok_or(MapError::NoMemory)?;
        paging::map_hypervisor(
            FRAMETABLE_VIRT_START + off,
            pa,
            PageSize::Size2M,
            Pte::GLOBAL | Pte::RW | Pte::NX,
        )?;
        off += BLOCK;
    }
    let table = FRAMETABLE_VIRT_START as *mut PageInfo;
    for mfn in 0..max_page {
        let pa = mfn << 12;
        let ram = map
            .iter()
            .any(|r| r.kind == MemoryKind::Usable && r.base <= pa && pa + 4096 <= r.end());
        let info = if ram { PageInfo::FREE } else { PageInfo::io() };
        // SAFETY: the table was just mapped for [0, max_page).
        unsafe { table.add(mfn as usize).write(info) };
    }
    NR_FRAMES.store(max_page, Ordering::Release);
    Ok(())
}

/// Exclusive access to the frame table for a PV MMU operation.
pub struct Env<'a> {
    _guard: MutexGuard<'a, ()>,
}

/// Takes the PV MMU lock. While it waits, the CPU does the TLB flushes asked of it: the
/// holder may be waiting for them (a type change shoots down the owner's other CPUs).
pub fn lock() -> Env<'static> {
    loop {
        if let Some(guard) = PV_MMU.try_lock() {
            return Env { _guard: guard };
        }
        crate::sched::service_flush();
        core::hint::spin_loop();
    }
}

/// Frees every frame allocated to `dom` (a domain none of whose vCPUs runs) and forgets its
/// M2P entries, whatever their counts say, except the frames in `keep` (sorted): its grant
/// table frames and the frames other domains still map through its grants (see
/// `domain::grants::relinquish`). Returns how many were freed.
pub fn release_domain_frames(env: &mut Env<'_>, dom: DomId, keep: &[Mfn]) -> u64 {
    let mut freed = 0;
    for mfn in 0..NR_FRAMES.load(Ordering::Acquire) {
        let Some(p) = env.page_mut(mfn) else {
            continue;
        };
        if p.owner != dom || p.count_info & crate::pvmm::PGC_ALLOCATED == 0 {
            continue;
        }
        if keep.binary_search(&mfn).is_ok() {
            continue;
        }
        *p = PageInfo::FREE;
        super::m2p::set(mfn, u64::MAX);
        frames::free(mfn << 12, 0);
        freed += 1;
    }
    freed
}

/// Drops the references the L1 entries of `dom` (a domain none of whose vCPUs runs) hold on
/// other domains' frames, its grant mappings, and clears those entries
/// (`pvmm::release_foreign_l1es` on each of its L1 tables). Returns how many there were.
pub fn release_foreign_mappings(env: &mut Env<'_>, dom: DomId) -> usize {
    let mut n = 0;
    for mfn in 0..NR_FRAMES.load(Ordering::Acquire) {
        if env.page(mfn).is_some_and(|p| p.owner == dom) {
            n += crate::pvmm::release_foreign_l1es(env, dom, mfn);
        }
    }
    n
}

/// Takes frame `mfn` of the dying `dom` out of its memory but keeps it allocated for the
/// mappings other domains hold: it is left with exactly `general` references and, if
/// `writable` is non-zero, a writable type with that many type references (what the mappings
/// will drop), no allocation reference and no M2P entry. The last `put_page` frees it
/// (`FrameEnv::page_released`).
pub fn keep_for_foreign_mappings(
    env: &mut Env<'_>,
    mfn: Mfn,
    dom: DomId,
    general: u64,
    writable: u64,
) {
    let Some(p) = env.page_mut(mfn) else {
        return;
    };
    if p.owner != dom || general == 0 {
        return;
    }
    *p = PageInfo {
        count_info: general,
        type_info: if writable == 0 {
            0
        } else {
            crate::pvmm::PageType::Writable.bits() | crate::pvmm::PGT_VALIDATED | writable
        },
        owner: dom,
        ..PageInfo::FREE
    };
    super::m2p::set(mfn, u64::MAX);
}

fn slot(mfn: Mfn) -> Option<*mut PageInfo> {
    (mfn < NR_FRAMES.load(Ordering::Acquire))
        .then(|| (FRAMETABLE_VIRT_START as *mut PageInfo).wrapping_add(mfn as usize))
}

impl FrameEnv for Env<'_> {
    fn page(&self, mfn: Mfn) -> Option<&PageInfo> {
        // SAFETY: `slot` only yields entries of the mapped table; the lock held by `self`
        // serialises all access.
        slot(mfn).map(|p| unsafe { &*p })
    }

    fn page_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo> {
        // SAFETY: as in `page`, and `&mut self` makes the borrow unique.
        slot(mfn).map(|p| unsafe { &mut *p })
    }

    fn read_entry(&self, mfn: Mfn, index: usize) -> u64 {
        // SAFETY: called for frames with a frame-table entry (RAM or I/O below max_page),
        // all covered by the direct map; index < 512.
        unsafe {
            (phys_to_virt(mfn << 12) as *const u64)
                .add(index & 511)
                .read_volatile()
        }
    }

    fn write_entry(&mut self, mfn: Mfn, index: usize, val: u64) {
        // SAFETY: as in `read_entry`; the rules only write validated page-table frames.
        unsafe {
            (phys_to_virt(mfn << 12) as *mut u64)
                .add(index & 511)
                .write_volatile(val)
        }
    }

    fn xen_l4_slot(&self, _l4: Mfn, _dom: DomId, slot: usize, ro_mpt: bool) -> u64 {
        if slot == xenolith_arch::layout::HYPERVISOR_L4_FIRST && !ro_mpt {
            return 0;
        }
        // Guest L4s share the hypervisor's L3s: the slot holds what the idle table holds.
        // SAFETY: the hypervisor L4 is live; slot is 256..=271.
        unsafe {
            (phys_to_virt(paging::root()) as *const u64)
                .add(slot & 511)
                .read_volatile()
        }
    }

    fn policy(&self, dom: DomId) -> DomainPolicy {
        DomainPolicy {
            has_io_resources: dom == 0,
            hardware_domain: dom == 0,
            ..DomainPolicy::default()
        }
    }

    fn iomem_access_permitted(&self, dom: DomId, mfn: Mfn) -> bool {
        // The hardware domain may map I/O frames, except the interrupt controllers the
        // hypervisor drives (Xen's dom0_setup_permissions: IO-APIC and local APIC pages).
        let hypervisor_mmio = mfn == 0xfec00 || mfn == 0xfee00;
        dom == 0 && !hypervisor_mmio && self.page(mfn).is_none_or(|p| p.owner == DOMID_IO)
    }

    fn flush_tlb_for_type_change(&mut self, _mfn: Mfn, owner: DomId) {
        // Every CPU that may cache the owner's translations, this one included. (Xen filters
        // this by the TLB clock; without it, each type change of a domain running on several
        // CPUs costs a shootdown.)
        let mut cpus = crate::sched::other_cpus_of(owner);
        cpus.set(crate::sched::this_cpu());
        crate::sched::flush_cpus(&cpus);
    }

    fn page_released(&mut self, mfn: Mfn) {
        if let Some(p) = self.page_mut(mfn) {
            *p = PageInfo::FREE;
        }
        frames::free(mfn << 12, 0);
    }
}
