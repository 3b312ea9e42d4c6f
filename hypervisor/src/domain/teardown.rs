//! Giving a stopped domU's memory back to the free pool (Xen's `domain_relinquish_resources`
//! and `domain_destroy`, run when the last of its vCPUs has left its CPU).
//!
//! A domU's page tables map only its own frames and its `shared_info`, and no other domain
//! maps its frames, so once none of its vCPUs runs (every CPU that ran it has switched to the
//! hypervisor's page tables and flushed its TLB on the way into the idle loop) all of its
//! frames can be freed together, whatever their type counts say. Its `Domain` stays in the
//! registry with `vcpu_info` pointers cleared, so a late event for it is dropped.

use super::Domain;
use crate::mm::frametable;
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
    let freed = {
        let mut env = frametable::lock();
        frametable::release_domain_frames(&mut env, d.id)
    };
    printk!(
        "{}: {} ({}): {freed} pages returned to the free pool\n",
        d.label(),
        d.name,
        d.inner.lock().state
    );
}
