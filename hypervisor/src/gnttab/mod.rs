//! Grant tables (`HYPERVISOR_grant_table_op`), as Xen 4.17's `xen/common/grant_table.c` with
//! the x86 PV parts of `arch/x86/pv/grant_table.c` and `asm/grant_table.h`.
//!
//! A domain *grants* another access to one of its frames by writing an entry into its grant
//! table, a set of frames it shares with the hypervisor; the grantee names the entry by
//! (granting domain, grant reference) to map the frame into its page tables or to have the
//! hypervisor copy to or from it. While the grantee uses the frame the entry is *pinned*: the
//! hypervisor sets `GTF_reading`/`GTF_writing` in it, the granter sees them and cannot revoke
//! the grant until the pins are gone.
//!
//! # Structure
//!
//! | module | concern | Xen |
//! | --- | --- | --- |
//! | [`layout`] | sizes, limits, defaults | `INITIAL_NR_GRANT_FRAMES`, `SHGNT_PER_PAGE_*`, `MAPTRACK_PER_PAGE` |
//! | [`memory`] | [`GrantMemory`]: atomic words of guest-shared frames | `ACCESS_ONCE`, `guest_cmpxchg`, `gnttab_clear_flags` |
//! | [`flags`] | the pin/revoke protocol on shared flags | `_set_status_v1/v2`, `reduce_status_for_pin`, `gnttab_prepare_for_transfer` |
//! | [`active`] | [`ActiveEntry`] and pin counters | `struct active_grant_entry`, `GNTPIN_*` |
//! | [`table`] | [`GrantTable`]: version, frames, active entries | `struct grant_table`, `gnttab_grow_table`, `grant_table_init/destroy` |
//! | [`maptrack`] | [`Maptrack`]: handles of a domain's foreign mappings | `struct grant_mapping`, `get/put_maptrack_handle` |
//! | [`host`] | [`GrantHost`]: domains, frame references, PV page tables, table frames | `get_page*`, `create/replace_grant_host_mapping`, ... |
//! | [`pte`] | the L1 entries of PV grant mappings | `grant_to_pte_flags` |
//! | [`ops`] | one module per `GNTTABOP_*` | `map_grant_ref`, `unmap_common`, `gnttab_copy`, ... |
//!
//! In the hypervisor the hypercall layer is `hypercall::grant_table_op` and the host is
//! `domain::grants::Host` (which also owns each domain's table and maptrack and the grant side
//! of a domain's death).
//!
//! # What the hypercall layer calls
//!
//! `HYPERVISOR_grant_table_op(cmd, uop, count)`: the hypercall layer keeps Xen's frame around
//! these functions: `count` negative as `int` is `-EINVAL`; only `GNTTABOP_cache_flush` may
//! carry bits above [`layout::CMD_MASK`], else `-EINVAL`; the array must be
//! accessible (`-EFAULT`); elements are copied in and their status copied out one at a time,
//! with a preemption check between elements (continuing with the rest of the array). `ld` is
//! the calling domain, `vcpu` its calling vCPU.
//!
//! | `GNTTABOP_` | call | hypercall layer's part |
//! | --- | --- | --- |
//! | `map_grant_ref` (0) | [`ops::map::map_grant_ref`]`(host, ld, vcpu, &mut op)` per element | copy the whole element back |
//! | `unmap_grant_ref` (1) | [`ops::unmap::unmap_grant_refs`]`(host, ld, &mut ops)`, or per element [`unmap_grant_ref`](ops::unmap::unmap_grant_ref), then [`GrantHost::flush_tlb`]`(ld)`, then [`complete_unmap`](ops::unmap::complete_unmap) for every pending result (batches of [`UNMAP_BATCH`](ops::unmap::UNMAP_BATCH)) | copy `status` back; on a fault still flush and complete what was done |
//! | `setup_table` (2) | [`ops::setup::setup_table`]`(host, ld, op.dom, op.nr_frames)` | `count != 1`: `-EINVAL`; frame list not writable for `nr_frames`: `-EFAULT`; write the frames (a fault: `GNTST_bad_virt_addr`, stop); copy `status` back |
//! | `dump_table` (3) | — | `-ENOSYS`, as in Xen 4.17 |
//! | `transfer` (4) | [`ops::transfer::transfer`]`(host, ld, &mut op)` per element | copy `status` back |
//! | `copy` (5) | `let b = `[`CopyBatch::new`](ops::copy::CopyBatch::new)`()`, [`b.copy_one(host, ld, &mut op)`](ops::copy::CopyBatch::copy_one) per element, [`b.finish(host)`](ops::copy::CopyBatch::finish) before returning (also when preempted) | copy `status` back |
//! | `query_size` (6) | [`ops::setup::query_size`]`(host, ld, op.dom)` | `count != 1`: `-EINVAL`; copy the element back |
//! | `unmap_and_replace` (7) | as unmap, with [`unmap_and_replace`](ops::unmap::unmap_and_replace) | as unmap |
//! | `set_version` (8) | [`ops::setup::set_version`]`(host, ld, op.version)` | write `version` back always; return the result |
//! | `get_status_frames` (9) | [`ops::setup::get_status_frames`]`(host, ld, op.dom, op.nr_frames)` | `count != 1`: `-EINVAL`; list not writable: `-EFAULT`; as setup_table |
//! | `get_version` (10) | [`ops::setup::get_version`]`(host, ld, op.dom)` | write `version` back; return the errno |
//! | `swap_grant_ref` (11) | [`ops::swap::swap_grant_ref`]`(host, ld, a, b)` per element | copy `status` back |
//! | `cache_flush` (12) | [`ops::cache_flush::cache_flush`]`(host, ld, &op, &mut cur_ref)` per element until `Done` (then `cur_ref = 0`); `Again` means preempt-check and call again | `cur_ref` lives in the command above [`layout::CONTINUATION_ARG_SHIFT`] across continuations; errors end the hypercall |
//!
//! Status codes are Xen's exactly. Note that Xen reports most refusals of a grant (wrong
//! grantee, wrong type, `GTF_readonly` against a writable request, pinned by someone else) as
//! `GNTST_general_error`, not `GNTST_permission_denied`, which only its XSM hooks return
//! (here: [`GrantHost::may_control`] for the table-level ops). Maptrack exhaustion is
//! `GNTST_no_space` (Xen 4.16 and later; `GNTST_no_device_space` before).
//!
//! Domain lifecycle:
//!
//! * creation: [`GrantTable::new`] with the domain's [`GrantTableConfig`] (`max_grant_frames=`,
//!   `max_maptrack_frames=`, `gnttab=max-ver:`) and [`Maptrack::new`]; both go behind the locks
//!   [`GrantHost::grant_table`] and [`GrantHost::maptrack`] hand out;
//! * death: [`ops::release::release_mappings`] once the domain is dying (its own mappings of
//!   others' grants); its page-table teardown drops the PV host mappings' references (in
//!   Xenolith, which frees a dead domain's memory wholesale, that is
//!   `pvmm::release_foreign_l1es` on its L1 tables, done first);
//! * destruction: [`GrantTable::destroy`], which refuses while
//!   [`GrantTable::frames_still_mapped`] is non-empty: other domains still map this domain's
//!   frames (each mapping holds general references, so those frames are not freed either), and
//!   will unpin through this table.
//!
//! # What the PV page-table side implements
//!
//! [`GrantHost::create_host_mapping`] and [`GrantHost::replace_host_mapping`] are Xen's
//! `create_grant_pv_mapping` / `replace_grant_pv_mapping`: write (or clear) one L1 entry of the
//! mapper, found by machine address (`GNTMAP_contains_pte`, Linux's gntdev) or by linear
//! address (kernel mappings of backends), using [`pte::grant_pte`] + `adjust_guest_l1e`, under
//! the page lock of that L1 table. The grant code has already taken the references the new
//! entry holds (a general one, plus a writable type one if RW); the page tables must not take
//! them again but must drop them as usual when the entry goes away other than through
//! `replace_host_mapping` (the mapper's page tables being destroyed). `replace_host_mapping`
//! checks the entry ([`pte::grant_pte_matches`]) and clears it without dropping references
//! (the grant code drops them after the TLB flush). Today `pvmm` refuses `_PAGE_GNTTAB` in
//! guest-written entries, which stays right: only these two hooks may write such entries.
//!
//! # Concurrency
//!
//! Guest-shared words are only touched through [`GrantMemory`], atomically, with Xen's CAS
//! loops (at most five attempts against a guest that keeps changing the entry). Hypervisor
//! state is simpler than Xen's: one lock per grant table (instead of a per-table rwlock plus a
//! spinlock per active entry) and one per maptrack table (instead of per-vCPU free-list locks).
//! Operations hold at most one table lock at a time and drop it before taking frame
//! references and page-table locks, as Xen does; the lock order is maptrack, then grant table,
//! then the host's own locks.
//!
//! # Xen behaviours not reproduced
//!
//! * Transitive grants are refused by copy (`gnttab=transitive=0` behaviour; map refuses them
//!   in Xen too).
//! * No IOMMU: `gnttab_need_iommu_mapping` is false, device mappings get the machine address.
//! * Maptrack stealing starts at the next vCPU instead of a random one.
//! * `GNTTABOP_cache_flush` drops the reference Xen leaks for frames of domains without a table.
//! * Xen's `XENMEM_acquire_resource`/`add_to_physmap` access to grant frames (HVM) is not here.

pub mod active;
#[cfg(target_os = "none")]
pub mod directmap;
pub mod flags;
pub mod host;
pub mod layout;
pub mod maptrack;
pub mod memory;
pub mod ops;
pub mod pte;
pub mod table;

#[cfg(test)]
mod tests;

pub use active::ActiveEntry;
pub use host::{GrantHost, PageRef, StealError};
pub use maptrack::{Mapping, Maptrack};
pub use memory::{GrantMemory, Loc};
pub use table::{GrantTable, GrantTableConfig, GrantVersion};
