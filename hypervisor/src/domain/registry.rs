//! Every domain the hypervisor has built, by id (Xen's `domain_list`/`rcu_lock_domain_by_id`).
//!
//! Domains are never freed in this version: a domain that shut down or crashed gives its
//! memory back (see `teardown`) but its `Domain` stays here, dead, so a stale id found in an
//! event channel or a grant is still answered (with "no such domain" semantics by state).

use super::{DomId, Domain};
use alloc::vec::Vec;
use spin::Mutex;

static DOMAINS: Mutex<Vec<&'static Domain>> = Mutex::new(Vec::new());

/// Records a newly built domain.
pub fn insert(d: &'static Domain) {
    DOMAINS.lock().push(d);
}

/// The domain with id `id`, if one was built (dead or alive).
pub fn get(id: DomId) -> Option<&'static Domain> {
    DOMAINS.lock().iter().copied().find(|d| d.id == id)
}

/// The domain with id `id` if it is still alive (not shut down, crashed or dying).
pub fn get_live(id: DomId) -> Option<&'static Domain> {
    get(id).filter(|d| !d.stopped.load(core::sync::atomic::Ordering::Acquire))
}

/// All domains, in creation order.
pub fn all() -> Vec<&'static Domain> {
    DOMAINS.lock().clone()
}
