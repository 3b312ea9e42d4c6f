//! The `GNTTABOP_*` operations, one module each. Every function handles one element of a
//! hypercall's array (or the whole of a single-element op); copying the elements from and to
//! guest memory, the count checks, preemption and continuations belong to the hypercall layer
//! (see the table in [`super`]).

pub mod acquire;
pub mod cache_flush;
pub mod copy;
pub mod map;
pub mod release;
pub mod setup;
pub mod swap;
pub mod transfer;
pub mod unmap;

use super::host::GrantHost;
use xen_abi::DomId;
use xen_abi::xen::DOMID_SELF;

/// `rcu_lock_domain_by_any_id`: `DOMID_SELF` names the caller; any other id must exist.
pub(crate) fn resolve_any_id(host: &impl GrantHost, caller: DomId, dom: DomId) -> Option<DomId> {
    if dom == DOMID_SELF {
        Some(caller)
    } else {
        host.domain_exists(dom).then_some(dom)
    }
}

/// `gnttab_host_mapping_get_page_type`: a writable host mapping takes a writable type reference,
/// except a foreign mapping of an HVM-style domain's frame (its p2m, not its type, governs).
pub(crate) fn host_mapping_takes_type(
    host: &impl GrantHost,
    readonly: bool,
    ld: DomId,
    rd: DomId,
) -> bool {
    !readonly && (ld == rd || !host.paging_external(rd))
}
