//! What the grant-table code needs from the rest of the hypervisor, as one trait so the same
//! code runs on the frame table, the domain list and the PV page tables in the hypervisor, and
//! on a fake in host tests.

use super::maptrack::Maptrack;
use super::memory::GrantMemory;
use super::table::GrantTable;
use crate::pvmm::Mfn;
use core::ops::DerefMut;
use xen_abi::DomId;

/// Result of `page_get_owner_and_reference` on a machine frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageRef {
    /// No frame-table entry (`!mfn_valid`): MMIO or beyond RAM. No reference taken.
    Invalid,
    /// A frame-table entry with a zero count (free or hypervisor-private), or a count that
    /// cannot take another reference. No reference taken.
    Unowned,
    /// A general reference was taken; the frame belongs to this domain (`DOMID_IO` for I/O
    /// frames, `DOMID_XEN` for hypervisor frames shared with guests).
    Owned(DomId),
}

/// Why a frame cannot be taken from a domain for `GNTTABOP_transfer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StealError {
    /// Not a valid frame of the domain, or it has other references (`steal_page` -EINVAL):
    /// `GNTST_bad_page`.
    BadPage,
    /// Anything else (the domain cannot give frames away, the physmap update failed):
    /// `GNTST_general_error`.
    Failed,
}

/// Everything outside the grant tables themselves.
///
/// All methods take `&self`: they are called while a grant-table guard obtained from
/// [`GrantHost::grant_table`] is alive, so an implementation uses its own locks (the PV-MMU
/// lock for frame references and page tables, the domain list for lookups).
///
/// # Locks
///
/// The grant code holds at most one [`GrantHost::Maptrack`] guard and one
/// [`GrantHost::Table`] guard at a time, always taking a maptrack guard before a table guard,
/// and never takes a guard while the host is inside one of its own methods. Frame-reference
/// and page-table methods are called with a table guard held, so the host must never take a
/// grant-table or maptrack lock while holding the locks those methods take.
///
/// # References
///
/// Reference counts follow Xen's `count_info`/`type_info` (see `pvmm`): a *general*
/// reference keeps a frame from being freed; a *writable type* reference keeps it from
/// becoming a page table or descriptor page. Each reference the grant code takes is dropped
/// by it later, except those it hands over to a PV host mapping (see
/// [`GrantHost::create_host_mapping`]).
pub trait GrantHost: GrantMemory {
    /// Exclusive access to a domain's grant table (Xen's grant-table lock).
    type Table<'a>: DerefMut<Target = GrantTable>
    where
        Self: 'a;
    /// Exclusive access to a domain's maptrack table.
    type Maptrack<'a>: DerefMut<Target = Maptrack>
    where
        Self: 'a;

    // ---- Domains ---------------------------------------------------------------------------

    /// `rcu_lock_domain_by_id(dom)` succeeds: `dom` names an existing domain (not
    /// `DOMID_SELF`, not a reserved id). Dying domains still exist.
    fn domain_exists(&self, dom: DomId) -> bool;

    /// `d->is_dying`.
    fn is_dying(&self, dom: DomId) -> bool;

    /// Locks `dom`'s grant table; `None` if the domain does not exist.
    fn grant_table(&self, dom: DomId) -> Option<Self::Table<'_>>;

    /// Locks `dom`'s maptrack table; `None` if the domain does not exist.
    fn maptrack(&self, dom: DomId) -> Option<Self::Maptrack<'_>>;

    /// XSM's `XSM_TARGET` check for setup_table, query_size, get_status_frames and
    /// get_version on another domain: Xen's dummy policy allows a domain itself, the control
    /// domain (dom0) and the target's device model.
    fn may_control(&self, caller: DomId, target: DomId) -> bool {
        caller == target || caller == 0
    }

    /// `paging_mode_external(d)`: an HVM-style domain. PV-only hosts keep the default.
    fn paging_external(&self, _dom: DomId) -> bool {
        false
    }

    /// `domain_crash(d)`: unmap found a mapping of a domain that no longer exists.
    fn crash_domain(&self, dom: DomId);

    // ---- Frames and references ---------------------------------------------------------------

    /// `get_paged_frame`: the machine frame behind `dom`'s guest frame `gfn`, with a general
    /// reference taken. For a PV domain `gfn` is a machine frame number that must belong to
    /// `dom` (`get_page(page, dom)`). Errors: `GNTST_bad_page` (or `GNTST_eagain` for paged-out
    /// memory). `readonly` is the access the caller will make (unsharing, for hosts that share).
    fn get_paged_frame(&self, dom: DomId, gfn: u64, readonly: bool) -> Result<Mfn, i16>;

    /// `page_get_owner_and_reference`.
    fn get_page_owner_and_reference(&self, mfn: Mfn) -> PageRef;

    /// `get_page(page, dom)`: takes a general reference if the frame belongs to `dom`.
    fn get_page(&self, mfn: Mfn, dom: DomId) -> bool;

    /// `put_page`: drops a general reference (the last one frees the frame).
    fn put_page(&self, mfn: Mfn);

    /// `get_page_type(page, PGT_writable_page)`; the caller holds a general reference.
    fn get_page_type_writable(&self, mfn: Mfn) -> bool;

    /// `put_page_type` of a writable type reference.
    fn put_page_type(&self, mfn: Mfn);

    /// `is_iomem_page`: no frame-table entry, or owned by `DOMID_IO`. Grant mappings of such
    /// frames hold no references.
    fn is_iomem_page(&self, mfn: Mfn) -> bool;

    /// `iomem_access_permitted(dom, mfn, mfn)`.
    fn iomem_access_permitted(&self, dom: DomId, mfn: Mfn) -> bool;

    /// `paging_mark_dirty`: log-dirty tracking of a frame written through a grant.
    fn mark_dirty(&self, _dom: DomId, _mfn: Mfn) {}

    // ---- Host mappings (PV page tables) --------------------------------------------------------

    /// `create_grant_host_mapping` (`create_grant_pv_mapping`) for `GNTMAP_host_map`: make
    /// `mapper`'s page tables map `mfn`.
    ///
    /// * With `GNTMAP_contains_pte`, `addr` is the machine address of the L1 entry to write
    ///   (8-byte aligned, in an L1 page table of `mapper`); otherwise it is a linear address in
    ///   `mapper`'s current address space whose L1 entry is written.
    /// * The entry is [`super::pte::grant_pte`] (`_PAGE_GNTTAB`, RW unless
    ///   `GNTMAP_readonly`, USER with `GNTMAP_application_map`, the `GNTMAP_guest_avail` bits,
    ///   the `cache_flags` memory type), then `adjust_guest_l1e`.
    /// * The references behind the new entry are already taken by the grant code (a general
    ///   reference, plus a writable type reference for writable mappings): the page tables must
    ///   not take them again, and own them from now on. Tearing the entry down any other way
    ///   than [`GrantHost::replace_host_mapping`] (page-table destruction of a dying domain)
    ///   drops them as for any other mapping (`put_page_from_l1e`).
    /// * The entry it overwrites is released normally (`put_page_from_l1e`).
    ///
    /// Returns `GNTST_okay`, or `GNTST_general_error` if the address does not name a writable
    /// L1 entry of `mapper`.
    fn create_host_mapping(
        &self,
        mapper: DomId,
        addr: u64,
        mfn: Mfn,
        map_flags: u32,
        cache_flags: u16,
    ) -> i16;

    /// `replace_grant_host_mapping` (`replace_grant_pv_mapping`): remove the mapping of `mfn`
    /// created at `addr` with `map_flags`. The current entry must map `mfn` with the present
    /// and RW bits `map_flags` implies ([`super::pte::grant_pte_matches`]).
    ///
    /// With `new_addr == 0` the entry is cleared. Otherwise (`GNTTABOP_unmap_and_replace`,
    /// not with `GNTMAP_contains_pte`) the L1 entry at linear address `new_addr` is moved
    /// into its place and `new_addr` is cleared.
    ///
    /// The references the removed entry held are *not* dropped here: the grant code drops them
    /// after the TLB flush. Returns `GNTST_okay` or a negative status.
    fn replace_host_mapping(
        &self,
        mapper: DomId,
        addr: u64,
        mfn: Mfn,
        new_addr: u64,
        map_flags: u32,
    ) -> i16;

    /// `gnttab_flush_tlb`: flush the TLBs of every CPU that may hold `dom`'s translations.
    fn flush_tlb(&self, dom: DomId);

    // ---- Data ----------------------------------------------------------------------------------

    /// `memcpy` between two frames; ranges are within their frames.
    fn copy_bytes(&self, dest: Mfn, dest_offset: usize, src: Mfn, src_offset: usize, len: usize);

    /// Write back the cache lines of `len` bytes at `offset` in `mfn` (`GNTTABOP_cache_flush`
    /// with `GNTTAB_CACHE_CLEAN`; x86 flushes the whole page).
    fn clean_cache(&self, _mfn: Mfn, _offset: usize, _len: usize) {}

    // ---- Grant-table frames ---------------------------------------------------------------------

    /// Allocates a zeroed frame for `dom`'s shared or status entries and shares it with `dom`
    /// read-write (`alloc_xenheap_page` + `share_xen_page_with_guest`). `None` when out of
    /// memory.
    fn alloc_table_frame(&self, dom: DomId) -> Option<Mfn>;

    /// Takes a status frame back from `dom` when it switches to version 1
    /// (`put_page_alloc_ref` + the reference check of `gnttab_unpopulate_status_frames`).
    /// Fails, changing nothing, while `dom` still references the frame (e.g. maps it).
    fn unshare_table_frame(&self, dom: DomId, mfn: Mfn) -> bool;

    /// Undoes [`GrantHost::unshare_table_frame`] when a later frame of the same batch failed.
    fn reshare_table_frame(&self, dom: DomId, mfn: Mfn);

    /// Frees a table frame: one just unshared, one whose sharing failed to complete, or any
    /// frame of a destroyed table (whose domain no longer has page tables).
    fn free_table_frame(&self, mfn: Mfn);

    // ---- GNTTABOP_transfer ------------------------------------------------------------------------
    //
    // Transfer moves a frame between domains' memory. The defaults refuse, which makes every
    // transfer fail with `GNTST_general_error` before any grant state is touched; a host that
    // supports it overrides all of them.

    /// Takes `dom`'s frame `gmfn` away from it for a transfer: `mfn_valid`, then `steal_page`
    /// (only the allocation reference may remain; the frame leaves the domain's memory
    /// accounting and page list), then removal from its physmap (PV: the M2P entry). The TLB
    /// flush that follows is done by the caller. On `Ok` the frame is owned by nobody and has
    /// no references.
    fn steal_page(&self, _dom: DomId, _gmfn: u64) -> Result<Mfn, StealError> {
        Err(StealError::Failed)
    }

    /// Frees a stolen frame that could not be delivered (`free_domheap_page`).
    fn free_stolen_page(&self, _mfn: Mfn) {}

    /// A frame below `1 << max_bits` bytes with `mfn`'s contents, for a recipient that can only
    /// name such frames (`alloc_domheap_page(MEMF_bits)` + copy, the old frame freed). `None`
    /// when no such frame is available (`GNTST_address_too_big`).
    fn relocate_for_transfer(&self, _dom: DomId, _mfn: Mfn, _max_bits: u32) -> Option<Mfn> {
        None
    }

    /// Reserves room for one more frame in `dom` (`domain_adjust_tot_pages(+1)`); fails if the
    /// domain is dying or at `max_pages`.
    fn reserve_page(&self, _dom: DomId) -> bool {
        false
    }

    /// Cancels [`GrantHost::reserve_page`].
    fn unreserve_page(&self, _dom: DomId) {}

    /// Assigns the reserved stolen frame to `dom` (`assign_pages(.., MEMF_no_refcount)`);
    /// fails if `dom` started dying.
    fn assign_page(&self, _dom: DomId, _mfn: Mfn) -> bool {
        false
    }

    /// `guest_physmap_add_page`: PV records `gfn` for `mfn` in the M2P.
    fn physmap_add(&self, _dom: DomId, _gfn: u64, _mfn: Mfn) -> bool {
        false
    }
}
