//! Giving a stopped domU's memory back to the free pool (Xen's `domain_relinquish_resources`
//! and `domain_destroy`, run when the last of its vCPUs has left its CPU).
//!
//! A domU's page tables map its own frames, its `shared_info` and grant-table frames, and
//! other domains' frames only through grant mappings; other domains reach its frames only
//! through its grants. So once none of its vCPUs runs (every CPU that ran it has switched to
//! the hypervisor's page tables and flushed its TLB on the way into the idle loop), its own
//! grant mappings are released, the frames others still map through its grants are kept for
//! them, and all the rest is freed together, whatever the type counts say
//! (`grants::relinquish`). Its `Domain` stays in the registry with `vcpu_info` pointers
//! cleared, so a late event for it is dropped; its grant table stays until nothing maps its
//! frames any more (`grants::reap`).

use super::Domain;
use crate::printk;
use core::sync::atomic::Ordering;

/// Frees `d`'s memory if `d` is a stopped domU none of whose vCPUs runs any more, once.
pub fn relinquish_if_done(d: &Domain) {
    if d.privileged
        || !d.stopped.load(Ordering::Acquire)
        || d.vcpus.iter().any(|v| v.running.load(Ordering::Acquire))
        || d.relinquished.swap(true, Ordering::AcqRel)
    {
        return;
    }
    crate::console::ring::flush(d.id);
    crate::xenstore::ring::detach(d.id);
    // Close its ports first (Xen's `evtchn_destroy`): peers in other domains become unbound.
    if let Some(d) = super::registry::get(d.id) {
        let pages = crate::evtchn::ops::destroy(d, &super::registry::get);
        crate::hypercall::event_channel_op::release_pages(pages);
    }
    for id in 0..d.vcpus.len() as u32 {
        if let Some(v) = d.vcpu_ptr(id) {
            // SAFETY: the domain is stopped and none of its vCPUs runs (checked above), so no
            // CPU uses their state; clearing `vcpu_info` makes later event deliveries no-ops.
            unsafe {
                (*v).pv.vcpu_info = 0;
                (*v).pv.vcpu_info_mfn = 0;
            }
        }
    }
    let r = super::grants::relinquish(d);
    printk!(
        "{}: {} ({}): {} pages returned to the free pool\n",
        d.label(),
        d.name,
        d.inner.lock().state,
        r.freed
    );
    if r.foreign_mappings != 0 {
        printk!(
            "{}: {} mapping(s) of other domains' grants released\n",
            d.label(),
            r.foreign_mappings
        );
    }
    if r.still_mapped != 0 || r.table_kept {
        printk!(
            "{}: {} frame(s) still mapped by other domains through grants, kept until unmapped\n",
            d.label(),
            r.still_mapped
        );
    }
    // Its death may have unpinned the last grant of another dead domain.
    super::grants::reap();
}
