//! `HYPERVISOR_event_channel_op` (Xen's `do_event_channel_op`): copies the guest structure in
//! and out, resolves the domains an operation names (`DOMID_SELF`, -ESRCH, XSM's default
//! -EPERM), and runs the operation on the port tables (`evtchn`), then wakes whoever the event
//! concerns (`pv::events::notify`).

use super::Ctx;
use crate::domain::{Domain, registry};
use crate::evtchn::{GuestMem, PortState, ops};
use crate::guest_mem::{read_guest, write_guest};
use crate::mm::frametable;
use crate::pv::events::notify;
use crate::pvmm::{self, PageType};
use xen_abi::errno::Errno;
use xen_abi::event_channel::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_ipi, EVTCHNOP_bind_pirq,
    EVTCHNOP_bind_vcpu, EVTCHNOP_bind_virq, EVTCHNOP_close, EVTCHNOP_expand_array,
    EVTCHNOP_init_control, EVTCHNOP_reset, EVTCHNOP_reset_cont, EVTCHNOP_send,
    EVTCHNOP_set_priority, EVTCHNOP_status, EVTCHNOP_unmask, EvtchnAllocUnbound,
    EvtchnBindInterdomain, EvtchnBindIpi, EvtchnBindPirq, EvtchnBindVcpu, EvtchnBindVirq,
    EvtchnClose, EvtchnExpandArray, EvtchnInitControl, EvtchnReset, EvtchnSend, EvtchnSetPriority,
    EvtchnStatus, EvtchnUnmask,
};
use xen_abi::xen::DOMID_SELF;

/// The registry as the event-channel code looks domains up.
fn lookup(id: u16) -> Option<&'static Domain> {
    registry::get(id)
}

/// The domain an operation names: the caller itself (`DOMID_SELF` or its own id), or, for the
/// control domain only, another live domain (Xen's `rcu_lock_domain_by_any_id` then XSM's
/// `XSM_TARGET`: -ESRCH first, then -EPERM).
fn target(caller: &'static Domain, dom: u16) -> Result<&'static Domain, Errno> {
    if dom == DOMID_SELF || dom == caller.id {
        return Ok(caller);
    }
    let d = registry::get_live(dom).ok_or(Errno::ESRCH)?;
    if caller.privileged {
        Ok(d)
    } else {
        Err(Errno::EPERM)
    }
}

/// Takes a writable type reference on the caller's frame `gfn` (a PV guest's frame numbers
/// are machine frames) and returns its page, as Xen's `map_guest_page` for FIFO pages.
fn map_writable(dom: u16, gfn: u64) -> Result<GuestMem, Errno> {
    // A PV guest's gfn is a machine frame; an HVM guest's goes through its nested tables.
    let gfn = crate::domain::registry::get(dom)
        .and_then(|d| crate::hvm::machine_frame(d, gfn))
        .ok_or(Errno::EINVAL)?;
    let mut env = frametable::lock();
    pvmm::get_page_and_type(&mut env, gfn, dom, PageType::Writable).map_err(|_| Errno::EINVAL)?;
    let va = xenolith_arch::layout::phys_to_virt(gfn << 12);
    // SAFETY: the frame is the domain's RAM and is held writable (so never a page table)
    // until the page is handed back and `release_pages` drops the reference.
    match unsafe { GuestMem::from_raw(va as *mut u8, 4096, gfn) } {
        Some(m) => Ok(m),
        None => {
            pvmm::put_page_and_type(&mut env, gfn);
            Err(Errno::EINVAL)
        }
    }
}

/// Drops the references of FIFO pages the port table gave back.
pub fn release_pages(pages: alloc::vec::Vec<GuestMem>) {
    if pages.is_empty() {
        return;
    }
    let mut env = frametable::lock();
    for p in pages {
        pvmm::put_page_and_type(&mut env, p.frame());
    }
}

/// `event_channel_op(cmd, arg)`.
pub fn do_event_channel_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let me: &'static Domain = ctx.vcpu.domain_static();
    let arg = a[1];
    match a[0] as u32 {
        EVTCHNOP_alloc_unbound => {
            let mut op: EvtchnAllocUnbound = read_guest(arg)?;
            let d = target(me, op.dom)?;
            op.port = d.evtchn.lock().alloc_unbound(d.id, op.remote_dom)?;
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_bind_interdomain => {
            let mut op: EvtchnBindInterdomain = read_guest(arg)?;
            let remote = if op.remote_dom == DOMID_SELF {
                me
            } else {
                registry::get_live(op.remote_dom).ok_or(Errno::ESRCH)?
            };
            let (port, n) = ops::bind_interdomain(me, remote, op.remote_port)?;
            op.local_port = port;
            write_guest(arg, &op)?;
            notify(me, n);
            Ok(0)
        }
        EVTCHNOP_bind_virq => {
            let mut op: EvtchnBindVirq = read_guest(arg)?;
            op.port = me.evtchn.lock().bind_virq(op.virq, op.vcpu)?;
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_bind_ipi => {
            let mut op: EvtchnBindIpi = read_guest(arg)?;
            op.port = me.evtchn.lock().bind_ipi(op.vcpu)?;
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_bind_pirq => {
            let mut op: EvtchnBindPirq = read_guest(arg)?;
            // Xen's order: the PIRQ range, the domain's access to it, then it must be mapped
            // (PHYSDEVOP_map_pirq) and not bound yet.
            if op.pirq >= crate::pirq::NR_PIRQS {
                return Err(Errno::EINVAL);
            }
            if !me.privileged {
                return Err(Errno::EPERM);
            }
            crate::pirq::with(me.id, |t| t.check_bind(op.pirq))?;
            op.port = me.evtchn.lock().alloc(PortState::Pirq { pirq: op.pirq })?;
            crate::pirq::with(me.id, |t| t.set_port(op.pirq, op.port));
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_close => {
            let op: EvtchnClose = read_guest(arg)?;
            let pirq = match me.evtchn.lock().get(op.port).map(|p| p.state) {
                Some(PortState::Pirq { pirq }) => Some(pirq),
                _ => None,
            };
            ops::close(me, op.port, &lookup)?;
            if let Some(pirq) = pirq {
                crate::pirq::with(me.id, |t| t.set_port(pirq, 0));
            }
            Ok(0)
        }
        EVTCHNOP_send => {
            let op: EvtchnSend = read_guest(arg)?;
            if me.console.is_some_and(|c| c.port == op.port) {
                // The domU's console: the hypervisor is the backend at the other end.
                crate::console::ring::service(me);
                return Ok(0);
            }
            if crate::xenstore::ring::service(me, op.port) {
                // The domU's xenstore ring: served by the hypervisor's store.
                return Ok(0);
            }
            let delivered = ops::send(me, op.port, &lookup)?;
            if let Some(d) = lookup(delivered.dom) {
                notify(d, delivered.notify);
            }
            Ok(0)
        }
        EVTCHNOP_status => {
            let mut op: EvtchnStatus = read_guest(arg)?;
            let d = target(me, op.dom)?;
            d.evtchn.lock().fill_status(&mut op)?;
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_bind_vcpu => {
            let op: EvtchnBindVcpu = read_guest(arg)?;
            me.evtchn.lock().bind_vcpu(op.port, op.vcpu)?;
            Ok(0)
        }
        EVTCHNOP_unmask => {
            let op: EvtchnUnmask = read_guest(arg)?;
            let n = me.evtchn.lock().unmask(me, op.port)?;
            notify(me, n);
            Ok(0)
        }
        cmd @ (EVTCHNOP_reset | EVTCHNOP_reset_cont) => {
            let op: EvtchnReset = read_guest(arg)?;
            let d = target(me, op.dom)?;
            // Xen resets only the caller's own domain or one it paused; no domain is paused
            // here, so only the caller's.
            if d.id != me.id {
                return Err(Errno::EINVAL);
            }
            let pages = ops::reset(d, cmd == EVTCHNOP_reset_cont, &lookup, || false)?;
            release_pages(pages);
            Ok(0)
        }
        EVTCHNOP_init_control => {
            let mut op: EvtchnInitControl = read_guest(arg)?;
            let id = me.id;
            op.link_bits = me
                .evtchn
                .lock()
                .init_control(me, op.vcpu, op.offset, || map_writable(id, op.control_gfn))?;
            write_guest(arg, &op)?;
            Ok(0)
        }
        EVTCHNOP_expand_array => {
            let op: EvtchnExpandArray = read_guest(arg)?;
            let id = me.id;
            let notes = me
                .evtchn
                .lock()
                .expand_array(me, || map_writable(id, op.array_gfn))?;
            for n in notes {
                notify(me, n);
            }
            Ok(0)
        }
        EVTCHNOP_set_priority => {
            let op: EvtchnSetPriority = read_guest(arg)?;
            me.evtchn.lock().set_priority(op.port, op.priority)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
