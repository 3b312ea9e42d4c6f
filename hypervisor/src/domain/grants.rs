//! Grant tables of the hypervisor's domains: each domain's [`DomainGrants`] (its grant table
//! and maptrack, created by the builder), the [`GrantHost`] the grant-table core
//! (`crate::gnttab`) runs on here ([`Host`]: the domain registry, the frame table under the
//! PV-MMU lock, the PV page tables, the direct map), and the grant side of a domain's death.
//!
//! # Locks
//!
//! The core takes at most one maptrack lock and one table lock, in that order, and calls the
//! host with a table lock held; [`Host`]'s methods take the PV-MMU lock
//! (`mm::frametable::lock()`) and nothing else, so the order is maptrack → table → PV-MMU.
//! Every lock here is taken the way `frametable::lock()` is: spinning while answering TLB
//! shootdowns, since a holder may be waiting for this CPU's acknowledgement.
//!
//! # A domain's death (`domain::teardown`)
//!
//! A stopped domU's frames are freed wholesale. Before that, [`relinquish`]:
//!
//! 1. drops the references its L1 entries hold on other domains' frames (its grant mappings:
//!    the only foreign frames a PV domain's page tables can map), then releases its maptrack
//!    (`gnttab::ops::release::release_mappings`), so the granters can revoke their grants;
//! 2. with its grant table locked (so no new pin can appear), keeps every frame another domain
//!    still has pinned (`GrantTable::frames_still_mapped`): such a frame is taken out of the
//!    domain's memory with exactly the references the pins will drop (one general reference
//!    per pin, plus a writable type reference per writable pin), and is freed by the last
//!    unmap; the table frames are kept too;
//! 3. frees the rest, and destroys the table if nothing is pinned. Otherwise the table lives on
//!    (the mappers unmap through it) until [`reap`] finds it unpinned.
//!
//! A pin whose mapping the mapper's guest overwrote by hand (its references already dropped
//! with the entry) is counted anyway: the frame is then never freed, a leak, never a frame
//! freed under a mapping.

use crate::gnttab::{GrantTable, GrantTableConfig, Maptrack};
use spin::Mutex;

/// A domain's grant state.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub struct DomainGrants {
    /// The grant table; `None` once destroyed (the domain is dead and nothing it granted is
    /// pinned any more).
    table: Mutex<Option<GrantTable>>,
    /// The domain's mappings of other domains' grants, by handle.
    maptrack: Mutex<Maptrack>,
}

impl DomainGrants {
    /// The grant state of a new domain `id` with `nr_vcpus` vCPUs: a version-1 table with its
    /// first frame shared with the domain, and an empty maptrack. `-EINVAL` for limits Xen
    /// refuses (no grant frames), `-ENOMEM` without memory for the first frame.
    #[cfg(target_os = "none")]
    pub fn new(
        id: super::DomId,
        nr_vcpus: u32,
        config: GrantTableConfig,
    ) -> Result<Self, xen_abi::errno::Errno> {
        let table = GrantTable::new(id, config, &Host::new(0))?;
        Ok(Self {
            table: Mutex::new(Some(table)),
            maptrack: Mutex::new(Maptrack::new(nr_vcpus, config.max_maptrack_frames)),
        })
    }
}

/// The limits a new domain gets: the boot command line's (`gnttab_max_frames=`,
/// `gnttab_max_maptrack_frames=`, `gnttab=max-ver:`), as Xen's toolstack defaults them.
pub fn config_from(o: &crate::options::Gnttab) -> GrantTableConfig {
    GrantTableConfig {
        max_grant_frames: o.max_frames,
        max_maptrack_frames: o.max_maptrack_frames,
        max_version: o.max_version,
    }
}

#[cfg(target_os = "none")]
pub use machine::*;

#[cfg(target_os = "none")]
mod machine {
    use crate::domain::{Domain, Vcpu, registry};
    use crate::gnttab::directmap::{DirectMapMemory, copy_frame_bytes};
    use crate::gnttab::ops::release::release_mappings;
    use crate::gnttab::{GrantHost, GrantMemory, GrantTable, Loc, Maptrack, PageRef, StealError};
    use crate::mm::{frames, frametable, m2p};
    use crate::printk;
    use crate::pvmm::{self, FrameEnv, L1Slot, Mfn, PageInfo, PageType};
    use alloc::vec::Vec;
    use core::cell::Cell;
    use core::ops::{Deref, DerefMut};
    use core::sync::atomic::{AtomicBool, Ordering};
    use spin::{Mutex, MutexGuard};
    use xen_abi::DomId;
    use xen_abi::grant_table::{
        GNTMAP_contains_pte, GNTST_bad_page, GNTST_general_error, GNTST_okay,
    };
    use xen_abi::xen::DOMID_IO;
    use xenolith_arch::cpu::{msr, rdmsr};
    use xenolith_arch::layout::phys_to_virt;

    /// Takes `m`, answering TLB shootdowns while it waits (see the module documentation).
    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        loop {
            if let Some(g) = m.try_lock() {
                return g;
            }
            crate::sched::service_flush();
            core::hint::spin_loop();
        }
    }

    /// A locked grant table (Xen's grant-table write lock).
    pub struct TableGuard(MutexGuard<'static, Option<GrantTable>>);

    impl Deref for TableGuard {
        type Target = GrantTable;
        fn deref(&self) -> &GrantTable {
            // Only built around a present table (see `Host::grant_table`).
            self.0.as_ref().unwrap_or_else(|| unreachable!())
        }
    }

    impl DerefMut for TableGuard {
        fn deref_mut(&mut self) -> &mut GrantTable {
            self.0.as_mut().unwrap_or_else(|| unreachable!())
        }
    }

    /// A locked maptrack table.
    pub struct MaptrackGuard(MutexGuard<'static, Maptrack>);

    impl Deref for MaptrackGuard {
        type Target = Maptrack;
        fn deref(&self) -> &Maptrack {
            &self.0
        }
    }

    impl DerefMut for MaptrackGuard {
        fn deref_mut(&mut self) -> &mut Maptrack {
            &mut self.0
        }
    }

    /// `EFER.NXE`: grant mappings are no-execute when the CPU can express it.
    fn nx_enabled() -> bool {
        // SAFETY: reading EFER has no side effects.
        unsafe { rdmsr(msr::EFER) & (1 << 11) != 0 }
    }

    /// The grant-table core's view of the machine, for one hypercall (or one teardown).
    pub struct Host {
        /// The calling vCPU's current L4, where linear host-mapping addresses are looked up
        /// (0: none, e.g. at teardown).
        l4: Mfn,
        /// A domain the core asked to crash; the caller does it once no lock is held.
        crash: Cell<Option<DomId>>,
        nx: bool,
    }

    impl Host {
        /// A host whose linear addresses are looked up under the L4 `l4`.
        pub fn new(l4: Mfn) -> Self {
            Self {
                l4,
                crash: Cell::new(None),
                nx: nx_enabled(),
            }
        }

        /// The host for a hypercall of `v` (hypercalls come from guest kernel mode, whose
        /// tables are loaded).
        pub fn for_vcpu(v: &Vcpu) -> Self {
            Self::new(v.pv.guest_table)
        }

        /// The domain the core asked to crash, if any (Xen's `domain_crash` from unmap).
        pub fn take_crash(&self) -> Option<DomId> {
            self.crash.take()
        }

        /// The L1 entry a host mapping's address names: the machine address of the entry
        /// (`GNTMAP_contains_pte`) or a linear address in the caller's address space.
        fn slot(&self, env: &frametable::Env<'_>, addr: u64, map_flags: u32) -> Option<L1Slot> {
            if map_flags & GNTMAP_contains_pte != 0 {
                L1Slot::from_maddr(addr)
            } else if crate::guest_mem::range_ok(addr, 1) {
                pvmm::find_l1e(env, self.l4, addr)
            } else {
                None
            }
        }
    }

    impl GrantMemory for Host {
        fn load_u16(&self, at: Loc) -> u16 {
            DirectMapMemory.load_u16(at)
        }
        fn load_u32(&self, at: Loc) -> u32 {
            DirectMapMemory.load_u32(at)
        }
        fn load_u64(&self, at: Loc) -> u64 {
            DirectMapMemory.load_u64(at)
        }
        fn store_u16(&self, at: Loc, val: u16) {
            DirectMapMemory.store_u16(at, val)
        }
        fn store_u32(&self, at: Loc, val: u32) {
            DirectMapMemory.store_u32(at, val)
        }
        fn store_u64(&self, at: Loc, val: u64) {
            DirectMapMemory.store_u64(at, val)
        }
        fn cmpxchg_u32(&self, at: Loc, expected: u32, new: u32) -> u32 {
            DirectMapMemory.cmpxchg_u32(at, expected, new)
        }
        fn and_u16(&self, at: Loc, mask: u16) {
            DirectMapMemory.and_u16(at, mask)
        }
        fn or_u16(&self, at: Loc, bits: u16) {
            DirectMapMemory.or_u16(at, bits)
        }
        fn zero_frame(&self, mfn: Mfn) {
            DirectMapMemory.zero_frame(mfn)
        }
    }

    impl GrantHost for Host {
        type Table<'a> = TableGuard;
        type Maptrack<'a> = MaptrackGuard;

        fn domain_exists(&self, dom: DomId) -> bool {
            registry::get(dom).is_some()
        }

        fn is_dying(&self, dom: DomId) -> bool {
            registry::get(dom).is_none_or(|d| d.relinquished.load(Ordering::Acquire))
        }

        fn grant_table(&self, dom: DomId) -> Option<TableGuard> {
            let d = registry::get(dom)?;
            let g = lock(&d.grants.table);
            g.is_some().then(|| TableGuard(g))
        }

        fn maptrack(&self, dom: DomId) -> Option<MaptrackGuard> {
            Some(MaptrackGuard(lock(&registry::get(dom)?.grants.maptrack)))
        }

        fn crash_domain(&self, dom: DomId) {
            self.crash.set(Some(dom));
        }

        fn get_paged_frame(&self, dom: DomId, gfn: u64, _readonly: bool) -> Result<Mfn, i16> {
            // PV: the guest frame number is the machine frame, which must be the domain's.
            let mut env = frametable::lock();
            pvmm::get_page(&mut env, gfn, dom)
                .map(|()| gfn)
                .map_err(|_| GNTST_bad_page)
        }

        fn get_page_owner_and_reference(&self, mfn: Mfn) -> PageRef {
            let mut env = frametable::lock();
            if env.page(mfn).is_none() {
                return PageRef::Invalid;
            }
            match pvmm::get_page_owner_and_reference(&mut env, mfn) {
                Some(owner) => PageRef::Owned(owner),
                None => PageRef::Unowned,
            }
        }

        fn get_page(&self, mfn: Mfn, dom: DomId) -> bool {
            pvmm::get_page(&mut frametable::lock(), mfn, dom).is_ok()
        }

        fn put_page(&self, mfn: Mfn) {
            pvmm::put_page(&mut frametable::lock(), mfn);
        }

        fn get_page_type_writable(&self, mfn: Mfn) -> bool {
            pvmm::get_page_type(&mut frametable::lock(), mfn, PageType::Writable).is_ok()
        }

        fn put_page_type(&self, mfn: Mfn) {
            pvmm::put_page_type(&mut frametable::lock(), mfn);
        }

        fn is_iomem_page(&self, mfn: Mfn) -> bool {
            frametable::lock()
                .page(mfn)
                .is_none_or(|p| p.owner == DOMID_IO)
        }

        fn iomem_access_permitted(&self, dom: DomId, mfn: Mfn) -> bool {
            frametable::lock().iomem_access_permitted(dom, mfn)
        }

        fn create_host_mapping(
            &self,
            mapper: DomId,
            addr: u64,
            mfn: Mfn,
            map_flags: u32,
            cache_flags: u16,
        ) -> i16 {
            let mut env = frametable::lock();
            let Some(slot) = self.slot(&env, addr, map_flags) else {
                return GNTST_general_error;
            };
            let pte = crate::gnttab::pte::grant_pte(mfn, map_flags, cache_flags, self.nx);
            match pvmm::write_grant_l1e(&mut env, mapper, slot, pte) {
                Ok(old) => {
                    if old & 1 != 0 {
                        // Nothing may still reach the old frame once its references go.
                        self.flush_tlb(mapper);
                    }
                    pvmm::release_l1e(&mut env, old, mapper);
                    GNTST_okay
                }
                Err(_) => GNTST_general_error,
            }
        }

        fn replace_host_mapping(
            &self,
            mapper: DomId,
            addr: u64,
            mfn: Mfn,
            new_addr: u64,
            map_flags: u32,
        ) -> i16 {
            let mut env = frametable::lock();
            let Some(slot) = self.slot(&env, addr, map_flags) else {
                return GNTST_general_error;
            };
            // unmap_and_replace: the entry at `new_addr` moves into the grant's place.
            let mut stolen = None;
            if new_addr != 0 {
                if map_flags & GNTMAP_contains_pte != 0 {
                    return GNTST_general_error;
                }
                let Some(from) = self.slot(&env, new_addr, 0) else {
                    return GNTST_general_error;
                };
                match pvmm::steal_l1e(&mut env, mapper, from) {
                    Ok(v) => stolen = Some((from, v)),
                    Err(_) => return GNTST_general_error,
                }
            }
            let new = stolen.map_or(0, |(_, v)| v);
            let matches = |pte| crate::gnttab::pte::grant_pte_matches(pte, mfn, map_flags);
            match pvmm::replace_grant_l1e(&mut env, mapper, slot, new, matches) {
                Ok(_) => GNTST_okay,
                Err(_) => {
                    if let Some((from, v)) = stolen {
                        pvmm::unsteal_l1e(&mut env, mapper, from, v);
                    }
                    GNTST_general_error
                }
            }
        }

        fn flush_tlb(&self, dom: DomId) {
            let mut cpus = crate::sched::other_cpus_of(dom);
            cpus.set(crate::sched::this_cpu());
            crate::sched::flush_cpus(&cpus);
        }

        fn copy_bytes(
            &self,
            dest: Mfn,
            dest_offset: usize,
            src: Mfn,
            src_offset: usize,
            len: usize,
        ) {
            copy_frame_bytes(dest, dest_offset, src, src_offset, len);
        }

        fn clean_cache(&self, mfn: Mfn, _offset: usize, _len: usize) {
            // x86 writes the whole page back (Xen's `clean_dcache_va_range` flushes by order).
            let base = phys_to_virt(mfn << 12);
            for line in (0..4096u64).step_by(64) {
                // SAFETY: the frame is referenced by the caller and mapped by the direct map;
                // `clflush` only writes the line back and invalidates it.
                unsafe {
                    core::arch::asm!("clflush [{}]", in(reg) base + line, options(nostack));
                }
            }
            // SAFETY: a fence orders the flushes before what follows.
            unsafe { core::arch::asm!("mfence", options(nostack)) };
        }

        fn alloc_table_frame(&self, dom: DomId) -> Option<Mfn> {
            let pa = frames::alloc(0)?;
            // SAFETY: a fresh frame, mapped by the direct map, not yet visible to anyone.
            unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, 4096) };
            let mfn = pa >> 12;
            let mut env = frametable::lock();
            if let Some(p) = env.page_mut(mfn) {
                *p = PageInfo::xen_shared(dom, true);
            }
            m2p::set(mfn, m2p::INVALID_M2P_ENTRY);
            Some(mfn)
        }

        fn unshare_table_frame(&self, dom: DomId, mfn: Mfn) -> bool {
            let mut env = frametable::lock();
            match env.page_mut(mfn) {
                // Only the allocation reference: the guest maps it nowhere.
                Some(p)
                    if p.owner == dom
                        && p.count_info & (pvmm::PGC_ALLOCATED | pvmm::PGC_COUNT_MASK)
                            == pvmm::PGC_ALLOCATED | 1 =>
                {
                    *p = PageInfo::FREE;
                    true
                }
                _ => false,
            }
        }

        fn reshare_table_frame(&self, dom: DomId, mfn: Mfn) {
            if let Some(p) = frametable::lock().page_mut(mfn) {
                *p = PageInfo::xen_shared(dom, true);
            }
        }

        fn free_table_frame(&self, mfn: Mfn) {
            if let Some(p) = frametable::lock().page_mut(mfn) {
                *p = PageInfo::FREE;
            }
            frames::free(mfn << 12, 0);
        }

        // ---- GNTTABOP_transfer (PV: machine frames, the M2P as physmap) ----------------------

        fn steal_page(&self, dom: DomId, gmfn: u64) -> Result<Mfn, StealError> {
            let d = registry::get(dom).ok_or(StealError::Failed)?;
            let mut env = frametable::lock();
            let Some(p) = env.page_mut(gmfn) else {
                return Err(StealError::BadPage);
            };
            // Xen's `steal_page`: the domain's, not special, and nothing but the allocation
            // reference (so nothing maps it and it has no type).
            let only_allocated = p.count_info & (pvmm::PGC_ALLOCATED | pvmm::PGC_COUNT_MASK)
                == pvmm::PGC_ALLOCATED | 1;
            if p.owner != dom || p.is_special() || !only_allocated || p.type_count() != 0 {
                return Err(StealError::BadPage);
            }
            *p = PageInfo::FREE;
            m2p::set(gmfn, m2p::INVALID_M2P_ENTRY);
            d.transferred.fetch_sub(1, Ordering::AcqRel);
            Ok(gmfn)
        }

        fn free_stolen_page(&self, mfn: Mfn) {
            frames::free(mfn << 12, 0);
        }

        fn reserve_page(&self, dom: DomId) -> bool {
            let Some(d) = registry::get(dom) else {
                return false;
            };
            if d.relinquished.load(Ordering::Acquire) {
                return false;
            }
            let max = i64::try_from(d.max_pages).unwrap_or(i64::MAX);
            let base = i64::try_from(d.tot_pages).unwrap_or(i64::MAX);
            d.transferred
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                    (base.saturating_add(t) < max).then_some(t + 1)
                })
                .is_ok()
        }

        fn unreserve_page(&self, dom: DomId) {
            if let Some(d) = registry::get(dom) {
                d.transferred.fetch_sub(1, Ordering::AcqRel);
            }
        }

        fn assign_page(&self, dom: DomId, mfn: Mfn) -> bool {
            let Some(d) = registry::get(dom) else {
                return false;
            };
            // Checked under the PV-MMU lock, which the teardown's scan of the domain's frames
            // also holds: the frame is either seen and freed by it, or refused here.
            let mut env = frametable::lock();
            if d.relinquished.load(Ordering::Acquire) {
                return false;
            }
            match env.page_mut(mfn) {
                Some(p) => {
                    *p = PageInfo::assigned(dom);
                    true
                }
                None => false,
            }
        }

        fn physmap_add(&self, _dom: DomId, gfn: u64, mfn: Mfn) -> bool {
            m2p::set(mfn, gfn);
            true
        }
    }

    /// Tables of dead domains kept for their mappers (see [`reap`]).
    static KEPT_TABLES: AtomicBool = AtomicBool::new(false);

    /// What [`relinquish`] did.
    pub struct Relinquished {
        /// Frames returned to the free pool.
        pub freed: u64,
        /// Frames other domains still map (or copy) through the domain's grants, kept.
        pub still_mapped: usize,
        /// Mappings of other domains' grants the domain held, released.
        pub foreign_mappings: usize,
        /// The grant table lives on until those mappings are gone.
        pub table_kept: bool,
    }

    /// The grant-aware part of giving a dead domU's memory back (see the module
    /// documentation): releases its mappings of others' grants, keeps what others still map
    /// of its memory, frees the rest and, if possible, its grant table.
    pub fn relinquish(d: &Domain) -> Relinquished {
        let host = Host::new(0);
        let foreign_mappings = {
            let mut env = frametable::lock();
            frametable::release_foreign_mappings(&mut env, d.id)
        };
        release_mappings(&host, d.id);

        let mut table = lock(&d.grants.table);
        // Frames still pinned by others, with the references their pins hold.
        let mut pinned: Vec<(Mfn, u64, u64)> = Vec::new();
        let mut keep: Vec<Mfn> = Vec::new();
        if let Some(t) = table.as_ref() {
            for (_, a) in t.active_grants() {
                let (general, writable) = a.held_references();
                match pinned.iter_mut().find(|(m, _, _)| *m == a.mfn) {
                    Some(e) => {
                        e.1 += general;
                        e.2 += writable;
                    }
                    None => pinned.push((a.mfn, general, writable)),
                }
            }
            keep.extend(t.shared_frames());
            keep.extend(t.status_frames());
        }
        keep.extend(pinned.iter().map(|p| p.0));
        keep.sort_unstable();
        let freed = {
            let mut env = frametable::lock();
            for &(mfn, general, writable) in &pinned {
                frametable::keep_for_foreign_mappings(&mut env, mfn, d.id, general, writable);
            }
            frametable::release_domain_frames(&mut env, d.id, &keep)
        };
        let unpinned = table.as_ref().is_some_and(|t| !t.has_active_grants());
        let dead = if unpinned { table.take() } else { None };
        let table_kept = table.is_some();
        drop(table);
        if let Some(t) = dead {
            destroy(&host, t);
        }
        if table_kept {
            KEPT_TABLES.store(true, Ordering::Release);
        }
        Relinquished {
            freed,
            still_mapped: pinned.len(),
            foreign_mappings,
            table_kept,
        }
    }

    fn destroy(host: &Host, t: GrantTable) {
        if let Err(t) = t.destroy(host) {
            // Cannot happen: only unpinned tables are destroyed.
            printk!("d{}: grant table still pinned, kept\n", t.owner());
        }
    }

    /// Destroys the grant tables of dead domains that nothing maps any more (the last mapper
    /// unmapped, or died). Cheap when there are none.
    pub fn reap() {
        if !KEPT_TABLES.load(Ordering::Acquire) {
            return;
        }
        let host = Host::new(0);
        let mut remaining = false;
        for d in registry::all() {
            if !d.relinquished.load(Ordering::Acquire) {
                continue;
            }
            let mut table = lock(&d.grants.table);
            let unpinned = table.as_ref().map(|t| !t.has_active_grants());
            remaining |= unpinned == Some(false);
            let dead = if unpinned == Some(true) {
                table.take()
            } else {
                None
            };
            drop(table);
            if let Some(t) = dead {
                let frames = t.nr_grant_frames() + t.nr_status_frames();
                destroy(&host, t);
                printk!(
                    "{}: last foreign mapping gone: grant table ({frames} frames) released\n",
                    d.label()
                );
            }
        }
        if !remaining {
            KEPT_TABLES.store(false, Ordering::Release);
        }
    }

    /// The `g` debug key: each domain's grant table in Xen's `gnttab_usage_print` format.
    pub fn dump_all() {
        printk!("gnttab_usage_print_all [ key 'g' pressed\n");
        for d in registry::all() {
            dump(d);
        }
        printk!("gnttab_usage_print_all ] done\n");
    }

    fn dump(d: &Domain) {
        let maptrack = {
            let mt = lock(&d.grants.maptrack);
            (mt.nr_frames(), mt.max_frames())
        };
        let table = lock(&d.grants.table);
        let Some(t) = table.as_ref() else {
            printk!("grant-table for remote d{} (destroyed)\n", d.id);
            return;
        };
        printk!("      -------- active --------       -------- shared --------\n");
        printk!("[ref] localdom mfn      pin          localdom gmfn     flags\n");
        printk!(
            "grant-table for remote d{} (v{})\n  {} frames ({} max), {} maptrack frames ({} max)\n",
            d.id,
            t.version().number(),
            t.nr_grant_frames(),
            t.max_grant_frames(),
            maptrack.0,
            maptrack.1
        );
        let host = Host::new(0);
        let mut any = false;
        for (r, a) in t.active_grants() {
            any = true;
            let hdr = t.header(&host, r);
            let status = host.load_u16(t.status_loc(r));
            printk!(
                "[0x{r:03x}]  {:5} 0x{:05x} 0x{:08x}      {:5} 0x{:06x} 0x{:02x}\n",
                a.domid,
                a.mfn,
                a.pin,
                hdr.domid,
                t.full_page_frame(&host, r),
                status
            );
        }
        if !any {
            printk!("no active grant table entries\n");
        }
    }
}
