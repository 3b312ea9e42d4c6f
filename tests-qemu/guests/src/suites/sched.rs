//! `sched`: how much CPU this domain gets while others compete for it (run on request, by
//! several domains at once; tests-qemu/tests/sched.rs compares their reports).
//!
//! Every domain uses the same window of system time (`sched_from=` to `sched_to=`, in ms of
//! Xen system time, which all domains share), so the reports cover the same stretch:
//!
//! * `sched_role=spin` (the default): busy from the suite's start to the window's end; over the
//!   window it counts work chunks and reads its running time (`VCPUOP_get_runstate_info`),
//!   and reports both: `sched.spin` with `chunks=<n> running_ns=<t> window_ns=<w>`.
//! * `sched_role=block`: `SCHEDOP_block` with a one-shot timer at the window's end and the
//!   periodic timer stopped (other events may still wake it; it blocks again), then reports how much it ran meanwhile: `sched.block` with
//!   `running_ns=<t> blocked_ns=<b> window_ns=<w>`.
//!
//! Checks that the window is still ahead when the suite starts (else the run proves nothing)
//! and that the numbers are plausible; the proportions between domains are the test's.

use xen_abi::hypercall as nr;
use xen_abi::sched::SCHEDOP_block;
use xen_abi::vcpu::{
    RUNSTATE_blocked, RUNSTATE_running, VCPUOP_get_runstate_info, VCPUOP_stop_periodic_timer,
    VcpuRunstateInfo,
};
use xen_abi::xen::{StartInfo, VIRQ_TIMER};

use crate::events as ev;
use crate::hypercall as hc;
use crate::verdict::{Rc, Suite};

const MS: u64 = 1_000_000;

/// What this domain does in the window.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Spin,
    Block,
}

/// The suite's settings from the command line.
struct Args {
    role: Role,
    from: u64,
    to: u64,
}

fn parse_args(cmdline: &[u8]) -> Option<Args> {
    let mut args = Args {
        role: Role::Spin,
        from: 0,
        to: 0,
    };
    let num = |v: &[u8]| core::str::from_utf8(v).ok()?.parse::<u64>().ok();
    for word in cmdline.split(|b| b.is_ascii_whitespace()) {
        if let Some(v) = word.strip_prefix(b"sched_role=") {
            args.role = match v {
                b"spin" => Role::Spin,
                b"block" => Role::Block,
                _ => return None,
            };
        } else if let Some(v) = word.strip_prefix(b"sched_from=") {
            args.from = num(v)? * MS;
        } else if let Some(v) = word.strip_prefix(b"sched_to=") {
            args.to = num(v)? * MS;
        }
    }
    (args.to > args.from).then_some(args)
}

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let Some(args) = parse_args(si.cmd_line_bytes()) else {
        s.check(
            "args",
            false,
            format_args!("need sched_from=<ms> sched_to=<ms> (from < to), sched_role=spin|block"),
        );
        return;
    };
    let rc = ev::map_shared_info(si);
    s.expect_rc("shared_info.map", rc, 0);
    if rc != 0 {
        return;
    }
    let start = ev::now_ns();
    s.check(
        "window_ahead",
        start < args.from,
        format_args!("start_ms={} from_ms={}", start / MS, args.from / MS),
    );
    match args.role {
        Role::Spin => spin(s, &args),
        Role::Block => block(s, &args),
    }
}

/// `VCPUOP_get_runstate_info` for vCPU 0.
fn runstate() -> (i64, VcpuRunstateInfo) {
    let mut info = VcpuRunstateInfo::default();
    // SAFETY: Xen writes one vcpu_runstate_info into the local structure.
    let rc = unsafe { hc::vcpu_op(VCPUOP_get_runstate_info, 0, (&raw mut info).cast::<u8>()) };
    (rc, info)
}

/// A chunk of work the compiler cannot drop.
fn chunk(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..256 {
        x = core::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

fn spin(s: &mut Suite, args: &Args) {
    let mut x = 1;
    while ev::now_ns() < args.from {
        x = chunk(x);
    }
    let (rc0, r0) = runstate();
    let t0 = ev::now_ns();
    let mut chunks: u64 = 0;
    loop {
        x = chunk(x);
        chunks += 1;
        if ev::now_ns() >= args.to {
            break;
        }
    }
    let (rc1, r1) = runstate();
    let t1 = ev::now_ns();
    core::hint::black_box(x);
    let running =
        r1.time[RUNSTATE_running as usize].saturating_sub(r0.time[RUNSTATE_running as usize]);
    let window = t1 - t0;
    // The guest's clock and the runstate accounting may disagree a little over a long window
    // (seen once: 1.06 ms over 6 s, under load in CI-like runs): 1 % slack.
    s.check(
        "spin",
        rc0 == 0 && rc1 == 0 && chunks > 0 && running > 0 && running <= window + window / 100 + MS,
        format_args!(
            "chunks={chunks} running_ns={running} window_ns={window} rc={}",
            Rc(rc0 | rc1)
        ),
    );
}

fn block(s: &mut Suite, args: &Args) {
    let rc = ev::register_callback();
    s.expect_rc("callback_op.register_event", rc, 0);
    let (rc, port) = ev::bind_virq(VIRQ_TIMER, 0);
    s.expect_rc("evtchn.bind_virq_timer", rc, 0);
    if rc != 0 {
        return;
    }
    // Only the one-shot timer may wake it: no 10 ms periodic tick (Linux stops it too).
    // SAFETY: VCPUOP_stop_periodic_timer takes no argument.
    let rc = unsafe { hc::vcpu_op(VCPUOP_stop_periodic_timer, 0, core::ptr::null_mut()) };
    s.expect_rc("vcpu_op.stop_periodic_timer", rc, 0);
    ev::drain();
    let (rc0, r0) = runstate();
    let t0 = ev::now_ns();
    // SAFETY: set_timer_op takes a plain value (absolute system time).
    let rc_timer = unsafe { hc::hypercall3(nr::set_timer_op, args.to, 0, 0) };
    // Other events (a console, a domain's exit) may wake it early: block again until the
    // timer's time has come.
    let mut blocks = 0;
    while ev::now_ns() < args.to && blocks < 10_000 {
        // SAFETY: SCHEDOP_block takes no argument; it enables events and sleeps until one is due.
        unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_block), 0, 0) };
        ev::set_upcall_mask(1);
        blocks += 1;
    }
    ev::set_upcall_mask(1);
    let (rc1, r1) = runstate();
    let t1 = ev::now_ns();
    let _ = ev::close(port);
    let running =
        r1.time[RUNSTATE_running as usize].saturating_sub(r0.time[RUNSTATE_running as usize]);
    let blocked =
        r1.time[RUNSTATE_blocked as usize].saturating_sub(r0.time[RUNSTATE_blocked as usize]);
    let window = t1 - t0;
    s.check(
        "block",
        rc0 == 0
            && rc1 == 0
            && rc_timer == 0
            && ev::upcalls() > 0
            && t1 >= args.to
            && blocked > window / 2,
        format_args!(
            "running_ns={running} blocked_ns={blocked} window_ns={window} blocks={blocks} rc={}",
            Rc(rc0 | rc1 | rc_timer)
        ),
    );
}
