//! `timer`: `VIRQ_TIMER` bound to a port, `VCPUOP_set_singleshot_timer` a few ms ahead, then
//! `sti; hlt` until the upcall for that port arrives, no earlier than the deadline.

use crate::events::{ensure_upcalls, evtchn_op, halt_for_upcall, upcalls, vcpu_op, vcpu0};
use crate::pvclock::now;
use crate::suites::Env;
use crate::verdict::{Rc, Suite};
use xen_abi::event_channel::{
    EVTCHNOP_bind_virq, EVTCHNOP_close, EVTCHNOP_unmask, EvtchnBindVirq, EvtchnClose, EvtchnUnmask,
};
use xen_abi::vcpu::{
    VCPUOP_set_singleshot_timer, VCPUOP_stop_periodic_timer, VcpuSetSingleshotTimer,
};
use xen_abi::xen::VIRQ_TIMER;

/// How far ahead the timer is set.
const DELAY_NS: u64 = 5_000_000;
/// Upcalls (of other ports) tolerated while waiting.
const MAX_UPCALLS: u32 = 100;

pub fn run(s: &mut Suite, _env: &Env) {
    if !ensure_upcalls() {
        s.skip("setup", format_args!("no shared_info or callback vector"));
        return;
    }
    // SAFETY: VCPUOP_stop_periodic_timer takes no argument (a null pointer is never read).
    let rc = unsafe { vcpu_op(VCPUOP_stop_periodic_timer, 0, &mut ()) };
    s.expect_rc("stop_periodic", rc, 0);
    let mut bind = EvtchnBindVirq {
        virq: VIRQ_TIMER,
        vcpu: 0,
        port: 0,
    };
    // SAFETY: the structure EVTCHNOP_bind_virq takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_bind_virq, &mut bind) };
    s.check(
        "bind_virq_timer",
        rc == 0,
        format_args!("rc={} port={}", Rc(rc), bind.port),
    );
    if rc != 0 {
        return;
    }
    let mut unmask = EvtchnUnmask { port: bind.port };
    // SAFETY: the structure EVTCHNOP_unmask takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_unmask, &mut unmask) };
    s.expect_rc("unmask", rc, 0);

    // SAFETY: shared_info is mapped; no reference is created.
    let time = unsafe { &raw const (*vcpu0()).time };
    let deadline = now(time) + DELAY_NS;
    let mut timer = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline,
        flags: 0,
        _pad0: 0,
    };
    // SAFETY: the structure VCPUOP_set_singleshot_timer takes.
    let rc = unsafe { vcpu_op(VCPUOP_set_singleshot_timer, 0, &mut timer) };
    let mut fired = None;
    if rc == 0 {
        for _ in 0..MAX_UPCALLS {
            let u = halt_for_upcall(upcalls());
            if u.saw_port(bind.port) {
                fired = Some((u, now(time)));
                break;
            }
        }
    }
    s.check(
        "singleshot.upcall",
        rc == 0 && fired.is_some_and(|(u, t)| u.pending == 1 && t >= deadline),
        format_args!(
            "rc={} upcall={} pending={} on_time={}",
            Rc(rc),
            fired.is_some(),
            fired.map_or(0, |(u, _)| u.pending),
            fired.is_some_and(|(_, t)| t >= deadline)
        ),
    );
    let mut close = EvtchnClose { port: bind.port };
    // SAFETY: the structure EVTCHNOP_close takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_close, &mut close) };
    s.expect_rc("close", rc, 0);
}
