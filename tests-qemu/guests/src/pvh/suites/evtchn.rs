//! `evtchn`: event-channel upcalls through the callback vector: a loopback interdomain
//! channel (`alloc_unbound` + `bind_interdomain` to `DOMID_SELF`) and an IPI channel, each
//! sent to and seen at the IDT vector with `evtchn_upcall_pending` and the port's bit set.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::events::{ensure_upcalls, evtchn_op, poll_upcall, shared, upcalls};
use crate::suites::{Env, join};
use crate::verdict::{Rc, Suite};
use xen_abi::event_channel::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_ipi, EVTCHNOP_close,
    EVTCHNOP_send, EVTCHNOP_unmask, EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnBindIpi,
    EvtchnClose, EvtchnSend, EvtchnUnmask,
};
use xen_abi::xen::DOMID_SELF;

/// Interrupt windows to wait for an upcall that should be immediate.
const SPINS: u32 = 1_000_000;

pub fn run(s: &mut Suite, _env: &Env) {
    if !ensure_upcalls() {
        s.skip("setup", format_args!("no shared_info or callback vector"));
        return;
    }
    let mut alloc = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    // SAFETY: the structure EVTCHNOP_alloc_unbound takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_alloc_unbound, &mut alloc) };
    s.check(
        "alloc_unbound",
        rc == 0,
        format_args!("rc={} port={}", Rc(rc), alloc.port),
    );
    let mut bind = EvtchnBindInterdomain {
        remote_dom: DOMID_SELF,
        _pad0: 0,
        remote_port: alloc.port,
        local_port: 0,
    };
    // SAFETY: the structure EVTCHNOP_bind_interdomain takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_bind_interdomain, &mut bind) };
    s.check(
        "bind_interdomain_self",
        rc == 0,
        format_args!("rc={} local_port={}", Rc(rc), bind.local_port),
    );
    send_and_see(s, "interdomain", bind.local_port, alloc.port);

    let mut ipi = EvtchnBindIpi { vcpu: 0, port: 0 };
    // SAFETY: the structure EVTCHNOP_bind_ipi takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_bind_ipi, &mut ipi) };
    s.check(
        "bind_ipi",
        rc == 0,
        format_args!("rc={} port={}", Rc(rc), ipi.port),
    );
    send_and_see(s, "ipi", ipi.port, ipi.port);

    let mut rcs = [0i64; 3];
    for (rc, port) in rcs.iter_mut().zip([bind.local_port, alloc.port, ipi.port]) {
        let mut close = EvtchnClose { port };
        // SAFETY: the structure EVTCHNOP_close takes.
        *rc = unsafe { evtchn_op(EVTCHNOP_close, &mut close) };
    }
    s.check(
        "close",
        rcs == [0; 3],
        format_args!("rc={},{},{}", Rc(rcs[0]), Rc(rcs[1]), Rc(rcs[2])),
    );
}

/// Whether `port`'s mask bit is set in shared_info.
fn masked(port: u32) -> bool {
    // SAFETY: shared_info is mapped; the mask words are shared atomics.
    let word = unsafe {
        AtomicU64::from_ptr((&raw mut (*shared()).evtchn_mask[port as usize / 64]).cast())
    };
    word.load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// Unmasks `to` (reporting its initial mask), sends on `from`, and waits for the upcall.
fn send_and_see(s: &mut Suite, what: &str, from: u32, to: u32) {
    let mut key = [0u8; 32];
    let initial_mask = masked(to);
    let mut unmask = EvtchnUnmask { port: to };
    // SAFETY: the structure EVTCHNOP_unmask takes.
    let rc_unmask = unsafe { evtchn_op(EVTCHNOP_unmask, &mut unmask) };
    let before = upcalls();
    let mut send = EvtchnSend { port: from };
    // SAFETY: the structure EVTCHNOP_send takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_send, &mut send) };
    let seen = poll_upcall(before, SPINS);
    let ok = rc == 0 && rc_unmask == 0 && seen.is_some_and(|u| u.pending == 1 && u.saw_port(to));
    s.check(
        join(&mut key, what, ".upcall"),
        ok,
        format_args!(
            "initial_mask={} unmask={} send={} upcall={} pending={} port_bit={}",
            u8::from(initial_mask),
            Rc(rc_unmask),
            Rc(rc),
            seen.is_some(),
            seen.map_or(0, |u| u.pending),
            seen.is_some_and(|u| u.saw_port(to)),
        ),
    );
    // After the handler cleared everything, no second upcall may follow.
    let again = poll_upcall(upcalls(), 10_000).is_some();
    s.check(
        join(&mut key, what, ".cleared"),
        !again,
        format_args!("again={again}"),
    );
}
