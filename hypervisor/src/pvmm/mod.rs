//! The PV MMU's page-type system, as Xen 4.17's `xen/arch/x86/mm.c`.
//!
//! A 64-bit PV guest builds its own page tables out of its own frames and asks the hypervisor
//! to install them (`mmu_update`, `mmuext_op`, `update_va_mapping`, or a trapped write to a
//! read-only L1). Safety rests on two reference counts per machine frame, kept in [`PageInfo`]
//! exactly as Xen keeps them in `struct page_info`:
//!
//! * the **general count** (`count_info & PGC_count_mask`): every use of the frame — its
//!   allocation to a domain (`PGC_allocated`), every present PTE that maps it, every pin or
//!   base pointer. A frame cannot be freed while this is non-zero.
//! * the **type count** (`type_info & PGT_count_mask`) of the frame's current *type*
//!   ([`PageType`]): L1/L2/L3/L4 page table, segment-descriptor (GDT/LDT) page, or writable
//!   page. The types are mutually exclusive, so a frame that is (or is referenced as) a page
//!   table can never also be mapped writable: the guest can only change its page tables
//!   through the hypervisor. The type can only change while the type count is zero.
//!
//! When a page-table type count goes 0→1 the frame is *validated* (`promote_lN_table`): every
//! entry is checked against the rules below and takes a general (and, for tables and writable
//! mappings, a type) reference on the frame it points to, recursively. When it drops 1→0 the
//! frame is *devalidated* (`demote_lN_table`), releasing all of those references.
//!
//! # Where each rule lives
//!
//! | module | Xen |
//! | --- | --- |
//! | [`PageInfo`], `PGT_*`/`PGC_*` | `arch/x86/include/asm/mm.h` |
//! | [`get_page`], [`put_page`], [`get_page_type`], [`put_page_type`] | `mm.c`: `page_get_owner_and_reference`, `get_page`, `put_page`, `_get_page_type`, `_put_page_type`, `_put_final_page_type` |
//! | entry rules and table (de)validation (private `tables` module) | `mm.c`: `get_page_from_l1e`..`l4e`, `put_page_from_l1e`..`l4e`, `get_lN_linear_pagetable`, `promote_l1_table`..`promote_l4_table`, `demote_*`, `init_xen_l4_slots`; `pv/mm.h`: `adjust_guest_l1e`..`l4e` |
//! | [`mod_entry`], [`mmu_pt_update`], [`update_va_mapping_l1`], [`ptwr_emulated_update`] | `mm.c`: `mod_l1_entry`..`mod_l4_entry`, `do_mmu_update`, `__do_update_va_mapping`; `pv/mm.h`: `update_intpte`; `pv/ro-page-fault.c`: `ptwr_emulated_update` |
//! | [`pin_table`], [`unpin_table`], [`new_baseptr`], [`new_user_baseptr`] | `mm.c`: `do_mmuext_op`, `new_guest_cr3`, `vcpu_destroy_pagetables` |
//! | [`check_descriptor`], [`update_descriptor`], [`get_gdt_frames`] | `pv/descriptor-tables.c` |
//! | [`write_grant_l1e`], [`replace_grant_l1e`], [`steal_l1e`], [`find_l1e`] | `pv/grant_table.c`: `create_grant_pv_mapping`, `replace_grant_pv_mapping`, `steal_linear_address`; `mm.c`: `map_guest_l1e` |
//!
//! # The errors a guest sees (Xen 4.17)
//!
//! * A frame already used as another type (type count non-zero) cannot take a new type:
//!   `_get_page_type` returns **-EINVAL**; so pinning a mapped-writable frame as a table, or
//!   an L2 entry pointing at an L2 that is not a legal linear mapping, fails with -EINVAL.
//! * An L1 entry that cannot take its reference (`get_page_from_l1e`'s `could_not_pin`):
//!   writable mapping of a page-table or descriptor frame, mapping another domain's frame,
//!   mapping a hypervisor frame (owned by `DOMID_XEN`, or not allocated at all): **-EBUSY**.
//! * An L2..L4 entry whose target is not the domain's (`get_page_from_mfn`): **-EINVAL**.
//! * Disallowed flag bits in any entry, an L4 update to a hypervisor slot: **-EINVAL**.
//! * MMIO the domain has no `iomem` permission for: **-EPERM** (-EINVAL for `INVALID_MFN`).
//! * A non-write-back mapping of a Xen-heap (special) page: **-EACCES**.
//!
//! # What is modelled, and what is simplified
//!
//! * 64-bit PV guests only: no PAE/compat (`PGT_pae_xen_l2`, the 32-bit L3 and L4 rules).
//! * **Single-threaded.** The functions take `&mut impl FrameEnv`: the caller serialises all
//!   operations on the frames involved (e.g. one MMU lock). Xen updates `count_info` and
//!   `type_info` with `cmpxchg` loops, waits for a concurrent validation
//!   (`!PGT_validated` with a non-zero count), and uses `page_lock` to serialise PTE updates;
//!   here every read-modify-write of a counter is a helper in the private `refs` module, so
//!   that they can become `AtomicU64` compare-exchange loops later without touching the rules.
//!   `page_lock` is modelled by its precondition and its extra type reference, without the
//!   lock bit. The one state that only a race can reach (a non-zero type count on a frame not
//!   yet validated) is refused with -EINVAL instead of waited for.
//! * Who may name which `pg_owner`/`pt_owner` (`get_pg_owner`, `xsm_mmu_update`,
//!   `is_pv_domain`) is the hypercall layer's check: the functions here trust the
//!   [`MmuCtx`] and owner arguments they are given.
//! * **Not preemptible.** Validation and devalidation run to completion; Xen's `-ERESTART`
//!   continuations, `PGT_partial`, `nr_validated_ptes` and `old_guest_table` are not needed.
//!   Xen defers the release of a failed partial validation (and of a replaced L2..L4 entry) to
//!   `put_old_guest_table`; this model releases at once, which leaves every count in the same
//!   final state. After a failed validation the frame's `type_info` is reset to 0, as Xen does
//!   when the first entry fails.
//! * Not modelled: shadow/HVM paging modes (only the `paging_mode_external` test in the L1
//!   rules, via [`DomainPolicy`]), L1TF shadowing of not-present entries (`pv_l1tf_check_*`),
//!   the IOMMU map/unmap on writable-type transitions, XSM (only `xsm_priv_mapping`, via
//!   [`FrameEnv::priv_mapping_allowed`]), superpages (PSE is always a disallowed bit), the LDT
//!   shadow mappings and `MMU_MACHPHYS_UPDATE`. Grant mappings (`_PAGE_GNTTAB` entries) are
//!   written only by the grant-table hooks of the private `grant` module; guests cannot set
//!   that bit, and such entries are released like any other when overwritten or devalidated.
//!   TLB and cache flushes are requested through [`FrameEnv`] hooks.

mod desc;
mod env;
mod grant;
mod mmuext;
mod page;
mod refs;
mod tables;
mod update;

#[cfg(test)]
mod tests;

pub use desc::{
    DESC_GATE_TYPE_CALL64, SEGMENT_DPL, SEGMENT_P, SEGMENT_S, SEGMENT_TYPE, check_descriptor,
    get_gdt_frames, put_gdt_frames, update_descriptor,
};
pub use env::{DomainPolicy, FrameEnv, MmioRelax};
pub use grant::{
    L1Slot, find_l1e, get_page_owner_and_reference, release_foreign_l1es, release_l1e,
    replace_grant_l1e, steal_l1e, unsteal_l1e, write_grant_l1e,
};
pub use mmuext::{new_baseptr, new_user_baseptr, pin_table, release_baseptr, unpin_table};
pub use page::{
    Level, PGC_ALLOCATED, PGC_COUNT_MASK, PGC_EXTRA, PGC_XEN_HEAP, PGT_COUNT_MASK, PGT_LOCKED,
    PGT_NON_COHERENT, PGT_PARTIAL, PGT_PINNED, PGT_TYPE_MASK, PGT_VALIDATED, PageInfo, PageType,
};
pub use refs::{
    get_page, get_page_and_type, get_page_type, put_page, put_page_and_type, put_page_type,
};
pub use tables::{
    BASE_DISALLOW_MASK, FASTPATH_FLAG_WHITELIST, L1_DISALLOW_MASK, PAGE_AVAIL, PAGE_AVAIL_HIGH,
    PAGE_CACHE_ATTRS, PAGE_GNTTAB, PAGE_GUEST_KERNEL, PAGE_PAT, PAGE_WC, adjust_guest_l1e,
    adjust_guest_l2e, adjust_guest_l3e, adjust_guest_l4e, entry_mfn, is_guest_l4_slot,
    l1_disallow_mask,
};
pub use update::{
    MmuCtx, Ptwr, mmu_pt_update, mod_entry, ptwr_emulated_update, update_va_mapping_l1,
};

/// A machine frame number.
pub type Mfn = u64;

/// A domain id (`domid_t`), and the reserved ids and `mmu_update` commands the rules use.
/// `DOMID_INVALID` stands for the owner of frames that belong to nobody (`NULL` in Xen).
pub use xen_abi::DomId;
pub use xen_abi::xen::{
    DOMID_COW, DOMID_INVALID, DOMID_IO, DOMID_SELF, DOMID_XEN, MMU_MACHPHYS_UPDATE,
    MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE, MMU_PT_UPDATE_PRESERVE_AD,
};

/// Entries in one page table (and descriptors in one descriptor page).
pub const ENTRIES_PER_TABLE: usize = 512;

/// First L4 slot reserved for the hypervisor (`ROOT_PAGETABLE_FIRST_XEN_SLOT`, 256).
pub const ROOT_PAGETABLE_FIRST_XEN_SLOT: usize = xenolith_arch::layout::HYPERVISOR_L4_FIRST;
/// Last L4 slot reserved for the hypervisor (`ROOT_PAGETABLE_LAST_XEN_SLOT`, 271).
pub const ROOT_PAGETABLE_LAST_XEN_SLOT: usize = xenolith_arch::layout::HYPERVISOR_L4_LAST;
/// L4 slot of the read-only M2P (`l4_table_offset(RO_MPT_VIRT_START)`, 256).
pub const RO_MPT_SLOT: usize =
    xenolith_arch::layout::l4_slot(xenolith_arch::layout::RO_MPT_VIRT_START);
