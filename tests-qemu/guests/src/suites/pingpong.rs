//! `pingpong`: two domains exchange events over an interdomain event channel. Run by dom0 and
//! by a boot-time domU (domain 1) at the same time; the role follows `SIF_INITDOMAIN`.
//!
//! - dom0 binds `VIRQ_DOM_EXC`, offers a port to domain 1 (`alloc_unbound`) and waits until
//!   the port is connected; it then sends and waits for the echo [`ROUND_TRIPS`] times, and
//!   finally waits for `VIRQ_DOM_EXC`, which the hypervisor raises when domain 1 shuts down,
//!   and checks that its port went back to unbound (offered to the dead peer) as Xen's
//!   `evtchn_close` leaves it (not with `peer_stays` on dom0's command line: the domU then
//!   goes on with other suites).
//! - the domU finds the port offered to it by trying to bind each of dom0's low ports (the
//!   others are refused with `-EINVAL`), takes the event the binding raised on its new port,
//!   signals dom0 that it is ready, echoes every ping, and returns (pvtest then powers the
//!   domU off).
//!
//! Every wait is bounded; the details carry only counts and return codes.

use xen_abi::errno::Errno;
use xen_abi::event_channel::{EVTCHNSTAT_interdomain, EVTCHNSTAT_unbound};
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::xen::{SIF_INITDOMAIN, StartInfo, VIRQ_DOM_EXC};

use crate::events as ev;
use crate::hypercall as hc;
use crate::verdict::{Rc, Suite};

/// Round trips of the ping-pong.
pub const ROUND_TRIPS: u32 = 100;
/// The peer's domain id.
const PEER: u16 = 1;
/// Longest wait for the other side, in ns of system time.
const PATIENCE_NS: u64 = 20_000_000_000;
/// Highest dom0 port the domU tries.
const MAX_PORT: u32 = 64;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = ev::map_shared_info(si);
    let cb = ev::register_callback();
    if rc != 0 || cb != 0 {
        s.check(
            "setup",
            false,
            format_args!("map={} callback={}", Rc(rc), Rc(cb)),
        );
        return;
    }
    ev::drain();
    if si.flags & SIF_INITDOMAIN != 0 {
        // `peer_stays`: the domU goes on with other suites instead of powering off.
        let peer_stays = si
            .cmd_line_bytes()
            .split(|b| b.is_ascii_whitespace())
            .any(|w| w == b"peer_stays");
        dom0(s, peer_stays);
    } else {
        domu(s);
    }
}

fn yield_cpu() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hc::hypercall3(xen_abi::hypercall::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
}

/// Unmasks events and waits (bounded) until an upcall reported `port`; masks them again.
fn wait_port(port: u32) -> bool {
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    ev::set_upcall_mask(0);
    let mut seen = false;
    while !seen && ev::now_ns() < deadline {
        ev::poke();
        seen = ev::seen(port);
    }
    ev::set_upcall_mask(1);
    seen
}

fn dom0(s: &mut Suite, peer_stays: bool) {
    let (rc, exc) = ev::bind_virq(VIRQ_DOM_EXC, 0);
    s.expect_rc("bind_virq_dom_exc", rc, 0);
    ev::unmask(exc);
    let (rc, port) = ev::alloc_unbound(PEER);
    s.expect_rc("alloc_unbound_for_peer", rc, 0);
    if rc != 0 {
        return;
    }
    ev::unmask(port);
    // Wait for the domU to bind.
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let (mut rc, mut st) = ev::status(port);
    while !(rc == 0 && st.status == EVTCHNSTAT_interdomain) && ev::now_ns() < deadline {
        yield_cpu();
        (rc, st) = ev::status(port);
    }
    let connected = rc == 0 && st.status == EVTCHNSTAT_interdomain;
    s.check(
        "connected",
        connected && st.u[0] & 0xffff == u32::from(PEER),
        format_args!("status={} remote_dom={}", st.status, st.u[0] & 0xffff),
    );
    if !connected {
        return;
    }
    // The domU says "ready" once it has drained the event binding raised on its side (Xen
    // raises a newly bound port once, conservatively); only then do the pings start, so no
    // ping can be mistaken for that event or swallowed with it.
    let ready = wait_port(port);
    s.check("peer_ready", ready, format_args!("ready={ready}"));
    if !ready {
        return;
    }
    let mut trips = 0;
    for _ in 0..ROUND_TRIPS {
        ev::reset();
        if ev::send(port) != 0 || !wait_port(port) {
            // Not a verdict (addresses and timing vary): what the event state looked like.
            crate::console::println!(
                "PINGPONG stuck: port={port} pending={} masked={} upcall_pending={} mask={} upcalls={}",
                ev::port_pending(port),
                ev::port_masked(port),
                ev::upcall_pending(),
                ev::upcall_mask(),
                ev::upcalls()
            );
            break;
        }
        trips += 1;
    }
    s.expect_eq("round_trips", "n", trips, ROUND_TRIPS);
    if peer_stays {
        ev::close(port);
        ev::close(exc);
        return;
    }
    // The domU powers off after its last echo: the hypervisor tells dom0.
    let exited = ev::seen(exc) || wait_port(exc);
    s.check("virq_dom_exc", exited, format_args!("raised={exited}"));
    // Its ports are closed with it: ours is unbound again, offered to the dead domain.
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let (mut rc, mut st) = ev::status(port);
    while st.status != EVTCHNSTAT_unbound && ev::now_ns() < deadline {
        yield_cpu();
        (rc, st) = ev::status(port);
    }
    s.check(
        "port_after_peer_exit",
        rc == 0 && st.status == EVTCHNSTAT_unbound && st.u[0] & 0xffff == u32::from(PEER),
        format_args!(
            "rc={} status={} remote_dom={}",
            Rc(rc),
            st.status,
            st.u[0] & 0xffff
        ),
    );
    // Sending on an unbound port is accepted and goes nowhere.
    s.expect_rc("send_after_peer_exit", ev::send(port), 0);
    ev::close(port);
    ev::close(exc);
}

fn domu(s: &mut Suite) {
    // Find the port dom0 offers to us: binding any other is -EINVAL.
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let mut bound = None;
    let mut refused = 0;
    while bound.is_none() && ev::now_ns() < deadline {
        for p in 1..MAX_PORT {
            match ev::bind_interdomain(0, p) {
                (0, local) => {
                    bound = Some(local);
                    break;
                }
                (rc, _) if rc == Rc::err(Errno::EINVAL) => refused += 1,
                _ => {}
            }
        }
        yield_cpu();
    }
    s.check(
        "bound_to_dom0",
        bound.is_some(),
        format_args!("bound={} refusals_seen={}", bound.is_some(), refused > 0),
    );
    let Some(local) = bound else {
        return;
    };
    let (rc, st) = ev::status(local);
    s.check(
        "status_interdomain",
        rc == 0 && st.status == EVTCHNSTAT_interdomain && st.u[0] & 0xffff == 0,
        format_args!(
            "rc={} status={} remote_dom={}",
            Rc(rc),
            st.status,
            st.u[0] & 0xffff
        ),
    );
    ev::unmask(local);
    // Binding raised our new port once (as Xen does): take that event, then tell dom0 we are
    // ready for its pings.
    ev::drain();
    ev::send(local);
    let mut echoes = 0;
    let mut send_errors = 0;
    for _ in 0..ROUND_TRIPS {
        if !wait_port(local) {
            break;
        }
        ev::reset();
        if ev::send(local) != 0 {
            send_errors += 1;
        }
        echoes += 1;
    }
    s.check(
        "echoes",
        echoes == ROUND_TRIPS && send_errors == 0,
        format_args!("n={echoes} send_errors={send_errors}"),
    );
}
