//! What the page-type rules need from the rest of the hypervisor, as a trait so the rules run
//! on the frame table and the direct map in the hypervisor and on a fake in host tests.

use super::{DomId, Mfn, PageInfo};

/// Per-domain facts the rules consult.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainPolicy {
    /// The domain has I/O resources: `iomem_caps` or `ioport_caps` non-empty, or a passed-through
    /// device (`has_arch_pdevs`). Such a domain may set the cache-attribute bits (PAT/PCD/PWT)
    /// in L1 entries (`l1_disallow_mask`). Dom0 has them.
    pub has_io_resources: bool,
    /// `is_hardware_domain` (for `mmio-relax=1`).
    pub hardware_domain: bool,
    /// `VM_ASSIST(d, m2p_strict)`: the read-only M2P is in kernel page tables only.
    pub m2p_strict: bool,
    /// `paging_mode_external`: an HVM-style domain. Foreign writable mappings of its frames
    /// take no writable type reference.
    pub paging_external: bool,
}

/// `opt_mmio_relax` (`mmio-relax=` command-line option).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MmioRelax {
    /// Default: MMIO mapped cacheable is forced to UC.
    #[default]
    Off,
    /// `mmio-relax`: the hardware domain's MMIO mappings keep their memory type.
    HardwareDomain,
    /// `mmio-relax=all`: every domain's.
    All,
}

/// The frame table, guest memory and policy the page-type rules operate on.
///
/// # Single-threaded model
///
/// Everything takes `&mut self`: the caller holds whatever lock serialises PV MMU operations
/// on these frames. Xen instead updates `count_info`/`type_info` with `cmpxchg` and relies on
/// `page_lock`; the counting code is confined to the `refs` module so that [`PageInfo`]'s
/// counters can become atomics there later.
pub trait FrameEnv {
    /// The frame-table entry of `mfn`, or `None` if `mfn` has none (`!mfn_valid`): beyond the
    /// frame table, or a hole in it. Such frames can only be MMIO.
    fn page(&self, mfn: Mfn) -> Option<&PageInfo>;

    /// Mutable access to the frame-table entry of `mfn`; `None` exactly when [`Self::page`] is.
    fn page_mut(&mut self, mfn: Mfn) -> Option<&mut PageInfo>;

    /// Reads 64-bit word `index` (0..512) of frame `mfn` (a page-table entry or a segment
    /// descriptor). Called only for frames that have a frame-table entry.
    fn read_entry(&self, mfn: Mfn, index: usize) -> u64;

    /// Writes 64-bit word `index` (0..512) of frame `mfn`.
    fn write_entry(&mut self, mfn: Mfn, index: usize, val: u64);

    /// The hypervisor's entry for L4 slot `slot` (256..=271) of the guest L4 `l4` owned by
    /// `dom` (`init_xen_l4_slots`): slot 258 maps `l4` itself (linear page table), 260 the
    /// domain's per-domain area, 261- the hypervisor and direct map; slot 256 (the read-only
    /// M2P) is the M2P entry if `ro_mpt`, else empty.
    fn xen_l4_slot(&self, l4: Mfn, dom: DomId, slot: usize, ro_mpt: bool) -> u64;

    /// Policy facts about `dom` (defaults for `DOMID_IO`/`DOMID_XEN`).
    fn policy(&self, dom: DomId) -> DomainPolicy;

    /// `iomem_access_permitted(dom, mfn, mfn)`.
    fn iomem_access_permitted(&self, dom: DomId, mfn: Mfn) -> bool;

    /// `mmio_ro_ranges` contains `mfn` (MMIO that must stay read-only, e.g. MSI-X tables).
    fn is_mmio_ro(&self, _mfn: Mfn) -> bool {
        false
    }

    /// `xsm_priv_mapping(XSM_TARGET, src, target)` succeeds: `src` may map `target`'s frames
    /// on behalf of another domain (a control domain, or `target`'s device model).
    fn priv_mapping_allowed(&self, _src: DomId, _target: DomId) -> bool {
        false
    }

    /// `opt_pv_linear_pt` (`pv-linear-pt=`, default true): linear page tables allowed.
    fn opt_pv_linear_pt(&self) -> bool {
        true
    }

    /// `opt_mmio_relax`.
    fn opt_mmio_relax(&self) -> MmioRelax {
        MmioRelax::Off
    }

    /// `boot_cpu_has(X86_FEATURE_XEN_SELFSNOOP)`: caches snoop WC writes, so non-coherent
    /// mappings need no tracking.
    fn cpu_self_snoop(&self) -> bool {
        true
    }

    /// Write back and invalidate the cache lines of `mfn` (`cache_flush` of the page).
    fn flush_cache(&mut self, _mfn: Mfn) {}

    /// `mfn` (owned by `owner`) is changing type: no CPU may keep a stale TLB entry for it
    /// (Xen flushes `d->dirty_cpumask`, filtered by the TLB clock).
    fn flush_tlb_for_type_change(&mut self, _mfn: Mfn, _owner: DomId) {}

    /// The last general reference to `mfn` was dropped: the frame goes back to the allocator
    /// (`free_domheap_page`).
    fn page_released(&mut self, _mfn: Mfn) {}
}
