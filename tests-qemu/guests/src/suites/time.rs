//! `time`: the PV clock in `vcpu_info`, the wall clock in `shared_info`, the guest timers
//! (`set_timer_op`, the single-shot and periodic vCPU timers) raising `VIRQ_TIMER`, event
//! delivery through the event callback, `SCHEDOP_block`/`SCHEDOP_poll`, IPI and loopback
//! interdomain channels, `EVTCHNOP_unmask`, and the runstate hypercalls.
//!
//! Every expected value is what Xen 4.17 does for a 64-bit PV dom0 (checked against the real
//! hypervisor by `tests-qemu/tests/pv_guests.rs`). Details carry no raw times: only return
//! codes, port numbers, flags and booleans (with generous tolerances where time is involved).

use xen_abi::errno::Errno;
use xen_abi::event_channel::{EVTCHNSTAT_interdomain, EVTCHNSTAT_ipi, EVTCHNSTAT_virq};
use xen_abi::hypercall as nr;
use xen_abi::sched::{SCHEDOP_block, SCHEDOP_poll, SchedPoll};
use xen_abi::vcpu::{
    RUNSTATE_blocked, RUNSTATE_running, VCPU_SSHOTTMR_future, VCPUOP_get_runstate_info,
    VCPUOP_register_runstate_memory_area, VCPUOP_set_periodic_timer, VCPUOP_set_singleshot_timer,
    VCPUOP_stop_periodic_timer, VCPUOP_stop_singleshot_timer, VcpuRegisterRunstateMemoryArea,
    VcpuRunstateInfo, VcpuSetPeriodicTimer, VcpuSetSingleshotTimer,
};
use xen_abi::xen::{GuestHandle, StartInfo, VIRQ_TIMER};

use crate::events as ev;
use crate::hypercall as hc;
use crate::verdict::{Rc, Suite};

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const EEXIST: i64 = Rc::err(Errno::EEXIST);

/// One millisecond in ns.
const MS: u64 = 1_000_000;
/// How long to wait for an upcall that must come.
const WAIT_YES: u64 = 300 * MS;
/// How long to watch for an upcall that must not come.
const WAIT_NO: u64 = 30 * MS;
/// How far ahead a timer that gets cancelled right away is armed (long enough that a slow
/// host cannot let it expire between the two hypercalls).
const CANCELLED: u64 = 20 * MS;
/// Tolerance when comparing the guest's clock with a deadline Xen's clock enforced.
const SLACK: u64 = MS / 2;
/// 2020-01-01T00:00:00Z.
const YEAR_2020: u64 = 1_577_836_800;
/// 2100-01-01T00:00:00Z.
const YEAR_2100: u64 = 4_102_444_800;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = ev::map_shared_info(si);
    s.expect_rc("shared_info.map_writable", rc, 0);
    if rc != 0 {
        s.skip("rest", format_args!("shared_info not mapped"));
        return;
    }
    clock(s);
    wallclock(s);
    let rc = ev::register_callback();
    s.expect_rc("callback_op.register_event", rc, 0);
    let Some(port) = timer_port(s) else {
        s.skip("timers", format_args!("no VIRQ_TIMER port"));
        return;
    };
    let timers_ok = timers(s, port, rc == 0);
    block_and_poll(s, port, timers_ok);
    channels(s, port);
    runstate(s);
    let rc = ev::close(port);
    s.expect_rc("evtchn.close_virq", rc, 0);
    ev::set_upcall_mask(1);
}

/// `set_timer_op(deadline)` (absolute system time; 0 cancels).
fn set_timer_op(deadline: u64) -> i64 {
    // SAFETY: set_timer_op takes a plain value.
    unsafe { hc::hypercall3(nr::set_timer_op, deadline, 0, 0) }
}

/// `vcpu_op(cmd, vcpu, arg)` on a local structure (or none).
fn vcpu_op<T>(cmd: u32, vcpu: u32, arg: Option<&mut T>) -> i64 {
    let p = arg.map_or(core::ptr::null_mut(), |a| (a as *mut T).cast());
    // SAFETY: `arg` is the structure `cmd` takes (the callers pick the pairing) or null.
    unsafe { hc::vcpu_op(cmd, vcpu, p) }
}

/// `SCHEDOP_block`.
fn block() -> i64 {
    // SAFETY: SCHEDOP_block takes no argument.
    unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_block), 0, 0) }
}

/// `SCHEDOP_poll` on `ports` with an absolute `timeout` (0: none).
fn poll(ports: &[u32], nr_ports: u32, timeout: u64) -> i64 {
    let mut p = SchedPoll {
        ports: GuestHandle::from_ptr(ports.as_ptr()),
        nr_ports,
        _pad0: 0,
        timeout,
    };
    // SAFETY: Xen reads the sched_poll and up to nr_ports ports; callers keep nr_ports within
    // `ports` unless Xen must refuse the count before reading.
    unsafe {
        hc::hypercall3(
            nr::sched_op,
            u64::from(SCHEDOP_poll),
            (&raw mut p) as u64,
            0,
        )
    }
}

fn clock(s: &mut Suite) {
    let (t, stable) = ev::read_time();
    s.check(
        "vcpu_time.version_even",
        stable && t.version & 1 == 0 && t.version != 0,
        format_args!("even={} nonzero={}", t.version & 1 == 0, t.version != 0),
    );
    // Xen's set_time_scale() normalises the multiplier into [2^31, 2^32).
    let mul_ok = t.tsc_to_system_mul >= 0x8000_0000;
    let shift_ok = (-32..=32).contains(&t.tsc_shift);
    s.check(
        "vcpu_time.scale",
        mul_ok && shift_ok,
        format_args!("mul_normalised={mul_ok} shift_in_range={shift_ok}"),
    );
    s.check(
        "vcpu_time.system_time",
        t.system_time > 0,
        format_args!("positive={}", t.system_time > 0),
    );

    let mut prev = ev::now_ns();
    let mut monotonic = true;
    for _ in 0..2000 {
        let now = ev::now_ns();
        monotonic &= now >= prev;
        prev = now;
    }
    s.check(
        "system_time.monotonic",
        monotonic,
        format_args!("monotonic={monotonic}"),
    );

    let (t0, tsc0) = (ev::now_ns(), ev::rdtsc());
    for _ in 0..50 {
        ev::poke();
    }
    let (t1, tsc1) = (ev::now_ns(), ev::rdtsc());
    let elapsed = t1.saturating_sub(t0);
    // The TSC rate the scale implies: between 100 MHz and 20 GHz.
    let ticks = u128::from(tsc1.wrapping_sub(tsc0));
    let rate_ok = elapsed > 0
        && ticks * 1_000_000_000 >= u128::from(elapsed) * 100_000_000
        && ticks * 1_000_000_000 <= u128::from(elapsed) * 20_000_000_000;
    s.check(
        "system_time.advances",
        elapsed > 0 && rate_ok,
        format_args!("advanced={} rate_plausible={rate_ok}", elapsed > 0),
    );
}

fn wallclock(s: &mut Suite) {
    let sh = ev::shared_info();
    // SAFETY: shared_info is mapped; volatile because Xen updates the wall clock.
    let (v1, sec, sec_hi, nsec, v2) = unsafe {
        (
            core::ptr::read_volatile(&raw const (*sh).wc_version),
            core::ptr::read_volatile(&raw const (*sh).wc_sec),
            core::ptr::read_volatile(&raw const (*sh).wc_sec_hi),
            core::ptr::read_volatile(&raw const (*sh).wc_nsec),
            core::ptr::read_volatile(&raw const (*sh).wc_version),
        )
    };
    s.check(
        "wallclock.version_even",
        v1 == v2 && v1 & 1 == 0,
        format_args!("even={}", v1 & 1 == 0),
    );
    let secs = (u64::from(sec_hi) << 32) | u64::from(sec);
    let secs = secs + ev::now_ns() / 1_000_000_000;
    let plausible = (YEAR_2020..YEAR_2100).contains(&secs);
    s.check(
        "wallclock.plausible",
        plausible && nsec < 1_000_000_000,
        format_args!("after_2020={plausible} nsec_ok={}", nsec < 1_000_000_000),
    );
}

/// Binds VIRQ_TIMER and checks the binding; returns the port.
fn timer_port(s: &mut Suite) -> Option<u32> {
    let (rc, port) = ev::bind_virq(VIRQ_TIMER, 0);
    s.check(
        "evtchn.bind_virq_timer",
        rc == 0 && port != 0,
        format_args!("rc={} port={port}", Rc(rc)),
    );
    if rc != 0 {
        return None;
    }
    let (rc, st) = ev::status(port);
    s.check(
        "evtchn.status_virq",
        rc == 0 && st.status == EVTCHNSTAT_virq && st.vcpu == 0 && st.virq() == VIRQ_TIMER,
        format_args!(
            "rc={} status={} vcpu={} virq={}",
            Rc(rc),
            st.status,
            st.vcpu,
            st.virq()
        ),
    );
    let (rc, _) = ev::bind_virq(VIRQ_TIMER, 0);
    s.expect_rc("evtchn.bind_virq_twice", rc, EEXIST);
    let (rc, _) = ev::bind_virq(VIRQ_TIMER, 1);
    s.expect_rc("evtchn.bind_virq_no_such_vcpu", rc, ENOENT);
    let (rc, _) = ev::bind_virq(24, 0);
    s.expect_rc("evtchn.bind_virq_bad_virq", rc, EINVAL);
    s.expect_eq(
        "evtchn.new_port_mask",
        "masked",
        ev::port_masked(port),
        false,
    );
    ev::set_port_mask(port, false);
    Some(port)
}

/// What the first upcall since the last reset saw, as far as `port` is concerned.
struct Seen {
    upcall: ev::Upcall,
    sel_bit: bool,
    port_bit: bool,
}

impl Seen {
    fn of(port: u32) -> Self {
        let upcall = ev::first();
        Seen {
            upcall,
            sel_bit: upcall.sel & (1 << (port / 64)) != 0,
            port_bit: port < 64 && upcall.ports0 & (1 << port) != 0,
        }
    }

    /// Xen's delivery: upcall pending, the port's selector and pending bits, events masked
    /// in the handler and unmasked in the interrupted context.
    fn ok(&self) -> bool {
        let u = &self.upcall;
        u.pending == 1 && self.sel_bit && self.port_bit && u.mask == 1 && u.saved_mask == 0
    }
}

impl core::fmt::Display for Seen {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let u = &self.upcall;
        write!(
            f,
            "pending={} sel_bit={} port_bit={} mask={} saved_mask={}",
            u.pending, self.sel_bit, self.port_bit, u.mask, u.saved_mask
        )
    }
}

/// The timer checks; returns whether a one-shot timer upcall arrived (the blocking checks
/// rely on it).
fn timers(s: &mut Suite, port: u32, callback_ok: bool) -> bool {
    if !callback_ok {
        s.skip("timers", format_args!("no event callback"));
        return false;
    }
    // Xen gives every PV vCPU a 10 ms periodic timer until the guest stops it.
    ev::drain();
    let got = ev::wait_upcalls(1, WAIT_YES);
    s.check(
        "timer.default_periodic",
        got && ev::seen(port),
        format_args!("upcall={got} port_bit={}", ev::seen(port)),
    );
    let rc = vcpu_op::<()>(VCPUOP_stop_periodic_timer, 0, None);
    s.expect_rc("vcpu_op.stop_periodic_timer", rc, 0);
    ev::drain();
    let got = ev::wait_upcalls(1, WAIT_NO);
    s.expect_eq("timer.periodic_stopped", "upcall", got, false);

    let mut p = VcpuSetPeriodicTimer { period_ns: MS / 10 };
    let rc = vcpu_op(VCPUOP_set_periodic_timer, 0, Some(&mut p));
    s.expect_rc("vcpu_op.set_periodic_timer_too_short", rc, EINVAL);
    let mut p = VcpuSetPeriodicTimer { period_ns: 5 * MS };
    let rc = vcpu_op(VCPUOP_set_periodic_timer, 0, Some(&mut p));
    ev::reset();
    let got = rc == 0 && ev::wait_upcalls(3, WAIT_YES);
    s.check(
        "vcpu_op.set_periodic_timer",
        rc == 0 && got,
        format_args!("rc={} three_upcalls={got}", Rc(rc)),
    );
    let rc = vcpu_op::<()>(VCPUOP_stop_periodic_timer, 0, None);
    ev::drain();
    let got = ev::wait_upcalls(1, WAIT_NO);
    s.check(
        "vcpu_op.stop_periodic_timer_again",
        rc == 0 && !got,
        format_args!("rc={} upcall={got}", Rc(rc)),
    );

    // set_timer_op: one upcall at the deadline, then nothing.
    let deadline = ev::now_ns() + MS;
    let rc = set_timer_op(deadline);
    let got = rc == 0 && ev::wait_upcalls(1, WAIT_YES);
    let seen = Seen::of(port);
    let on_time = seen.upcall.time_ns + SLACK >= deadline;
    s.check(
        "set_timer_op.upcall",
        rc == 0 && got && seen.ok() && on_time,
        format_args!("rc={} upcall={got} {seen} on_time={on_time}", Rc(rc)),
    );
    let oneshot_ok = rc == 0 && got;
    let more = ev::wait_upcalls(2, WAIT_NO);
    s.expect_eq("set_timer_op.fires_once", "second_upcall", more, false);

    ev::drain();
    let rc1 = set_timer_op(ev::now_ns() + CANCELLED);
    let rc2 = set_timer_op(0);
    let got = ev::wait_upcalls(1, CANCELLED + WAIT_NO);
    s.check(
        "set_timer_op.cancel",
        rc1 == 0 && rc2 == 0 && !got,
        format_args!("rc={} rc_cancel={} upcall={got}", Rc(rc1), Rc(rc2)),
    );

    ev::drain();
    let rc = set_timer_op(ev::now_ns().saturating_sub(MS).max(1));
    let got = ev::wait_upcalls(1, WAIT_YES);
    s.check(
        "set_timer_op.past_deadline",
        rc == 0 && got,
        format_args!("rc={} upcall={got}", Rc(rc)),
    );

    ev::drain();
    let deadline = ev::now_ns() + MS;
    let mut t = VcpuSetSingleshotTimer {
        timeout_abs_ns: deadline,
        flags: 0,
        _pad0: 0,
    };
    let rc = vcpu_op(VCPUOP_set_singleshot_timer, 0, Some(&mut t));
    let got = rc == 0 && ev::wait_upcalls(1, WAIT_YES);
    let on_time = ev::first().time_ns + SLACK >= deadline;
    s.check(
        "vcpu_op.set_singleshot_timer",
        rc == 0 && got && ev::seen(port) && on_time,
        format_args!(
            "rc={} upcall={got} port_bit={} on_time={on_time}",
            Rc(rc),
            ev::seen(port)
        ),
    );

    let mut t = VcpuSetSingleshotTimer {
        timeout_abs_ns: ev::now_ns().saturating_sub(MS).max(1),
        flags: VCPU_SSHOTTMR_future,
        _pad0: 0,
    };
    // Xen 4.17 ignores VCPU_SSHOTTMR_future: a timeout in the past fires at once instead of
    // failing with -ETIME.
    ev::drain();
    let rc = vcpu_op(VCPUOP_set_singleshot_timer, 0, Some(&mut t));
    let got = ev::wait_upcalls(1, WAIT_YES);
    s.check(
        "vcpu_op.set_singleshot_timer_future_past",
        rc == 0 && got && ev::seen(port),
        format_args!("rc={} upcall={got} port_bit={}", Rc(rc), ev::seen(port)),
    );

    ev::drain();
    let mut t = VcpuSetSingleshotTimer {
        timeout_abs_ns: ev::now_ns() + CANCELLED,
        flags: VCPU_SSHOTTMR_future,
        _pad0: 0,
    };
    let rc1 = vcpu_op(VCPUOP_set_singleshot_timer, 0, Some(&mut t));
    let rc2 = vcpu_op::<()>(VCPUOP_stop_singleshot_timer, 0, None);
    let got = ev::wait_upcalls(1, CANCELLED + WAIT_NO);
    s.check(
        "vcpu_op.stop_singleshot_timer",
        rc1 == 0 && rc2 == 0 && !got,
        format_args!("rc={} rc_stop={} upcall={got}", Rc(rc1), Rc(rc2)),
    );

    let mut t = VcpuSetSingleshotTimer {
        timeout_abs_ns: ev::now_ns() + MS,
        flags: 0,
        _pad0: 0,
    };
    let rc = vcpu_op(VCPUOP_set_singleshot_timer, 1, Some(&mut t));
    s.expect_rc("vcpu_op.set_singleshot_timer_no_such_vcpu", rc, ENOENT);
    ev::drain();
    oneshot_ok
}

fn block_and_poll(s: &mut Suite, port: u32, timers_ok: bool) {
    if timers_ok {
        // SCHEDOP_block enables event delivery and sleeps until the timer's event arrives; it
        // leaves events enabled.
        ev::drain();
        let deadline = ev::now_ns() + 2 * MS;
        let rc0 = set_timer_op(deadline);
        let mut rc = 0;
        for _ in 0..10 {
            if ev::upcalls() > 0 {
                break;
            }
            rc = block();
        }
        let mask_after = ev::upcall_mask();
        ev::set_upcall_mask(1);
        let got = ev::upcalls() > 0;
        let woke_late = ev::now_ns() + SLACK >= deadline;
        s.check(
            "sched_op.block_until_timer",
            rc0 == 0 && rc == 0 && got && woke_late && mask_after == 0,
            format_args!(
                "rc={} upcall={got} after_deadline={woke_late} mask_after={mask_after}",
                Rc(rc)
            ),
        );
    } else {
        s.skip(
            "sched_op.block_until_timer",
            format_args!("no timer upcall"),
        );
    }

    // SCHEDOP_poll on masked ports: no upcall, just a wake-up.
    ev::set_port_mask(port, true);
    ev::clear_port_pending(port);
    let (rc, unbound) = ev::alloc_unbound_self();
    if rc == 0 {
        ev::set_port_mask(unbound, true);
        let deadline = ev::now_ns() + 2 * MS;
        let rc = poll(&[unbound], 1, deadline);
        let late = ev::now_ns() + SLACK >= deadline;
        let pending = ev::port_pending(unbound);
        s.check(
            "sched_op.poll_timeout",
            rc == 0 && late && !pending,
            format_args!("rc={} after_timeout={late} pending={pending}", Rc(rc)),
        );
    } else {
        s.skip(
            "sched_op.poll_timeout",
            format_args!("alloc_unbound rc={}", Rc(rc)),
        );
    }

    ev::reset();
    let start = ev::now_ns();
    let rc0 = set_timer_op(start + MS);
    let rc = poll(&[port], 1, start + 10_000 * MS);
    let early = ev::now_ns() < start + 5_000 * MS;
    let pending = ev::port_pending(port);
    s.check(
        "sched_op.poll_wakes_on_event",
        rc0 == 0 && rc == 0 && early && pending && ev::upcalls() == 0,
        format_args!(
            "rc={} before_timeout={early} pending={pending} upcalls={}",
            Rc(rc),
            ev::upcalls()
        ),
    );
    // Already pending: returns at once.
    let start = ev::now_ns();
    let rc = poll(&[port], 1, start + 10_000 * MS);
    let early = ev::now_ns() < start + 5_000 * MS;
    s.check(
        "sched_op.poll_already_pending",
        rc == 0 && early,
        format_args!("rc={} immediate={early}", Rc(rc)),
    );
    ev::clear_port_pending(port);
    ev::set_port_mask(port, false);

    let rc = poll(&[5000], 1, ev::now_ns() + MS);
    s.expect_rc("sched_op.poll_bad_port", rc, EINVAL);
    let rc = poll(&[port], 200, ev::now_ns() + MS);
    s.expect_rc("sched_op.poll_too_many_ports", rc, EINVAL);
    if unbound != 0 {
        let _ = ev::close(unbound);
    }
    ev::drain();
}

fn channels(s: &mut Suite, virq_port: u32) {
    // An IPI to vCPU 0 itself.
    let (rc, ipi) = ev::bind_ipi(0);
    s.check(
        "evtchn.bind_ipi",
        rc == 0 && ipi != 0,
        format_args!("rc={} port={ipi}", Rc(rc)),
    );
    if rc == 0 {
        let (rc, st) = ev::status(ipi);
        s.check(
            "evtchn.status_ipi",
            rc == 0 && st.status == EVTCHNSTAT_ipi && st.vcpu == 0,
            format_args!("rc={} status={} vcpu={}", Rc(rc), st.status, st.vcpu),
        );
        ev::set_port_mask(ipi, false);
        ev::drain();
        let rc = ev::send(ipi);
        let got = rc == 0 && ev::wait_upcalls(1, WAIT_YES);
        let seen = Seen::of(ipi);
        s.check(
            "evtchn.send_ipi",
            rc == 0 && got && seen.ok(),
            format_args!("rc={} upcall={got} {seen}", Rc(rc)),
        );
    } else {
        s.skip("evtchn.status_ipi", format_args!("no port"));
        s.skip("evtchn.send_ipi", format_args!("no port"));
    }

    // A loopback interdomain channel: alloc_unbound to ourselves, then bind to it.
    let (rc, a) = ev::alloc_unbound_self();
    let (rc2, b) = if rc == 0 {
        ev::bind_interdomain_self(a)
    } else {
        (rc, 0)
    };
    s.check(
        "evtchn.bind_interdomain_self",
        rc == 0 && rc2 == 0 && b != 0 && b != a,
        format_args!("rc={} local_port={b} remote_port={a}", Rc(rc2)),
    );
    if rc == 0 && rc2 == 0 {
        let (rc, st) = ev::status(b);
        let (dom, rport) = st.interdomain();
        s.check(
            "evtchn.status_interdomain",
            rc == 0 && st.status == EVTCHNSTAT_interdomain && dom == 0 && rport == a,
            format_args!("rc={} status={} dom={dom} port={rport}", Rc(rc), st.status),
        );
        ev::set_port_mask(a, false);
        ev::set_port_mask(b, false);
        ev::drain();
        let rc = ev::send(b);
        let got = rc == 0 && ev::wait_upcalls(1, WAIT_YES);
        let seen = Seen::of(a);
        s.check(
            "evtchn.send_interdomain",
            rc == 0 && got && seen.ok() && !ev::seen(b),
            format_args!("rc={} upcall={got} {seen}", Rc(rc)),
        );
        ev::drain();
        let rc = ev::send(a);
        let got = rc == 0 && ev::wait_upcalls(1, WAIT_YES);
        s.check(
            "evtchn.send_interdomain_reverse",
            rc == 0 && got && ev::seen(b) && !ev::seen(a),
            format_args!("rc={} upcall={got} port_bit={}", Rc(rc), ev::seen(b)),
        );

        // A masked port collects the event without an upcall; EVTCHNOP_unmask delivers it.
        ev::set_port_mask(a, true);
        ev::drain();
        let rc = ev::send(b);
        let pending = ev::port_pending(a);
        let upcall_pending = ev::upcall_pending();
        let got = ev::wait_upcalls(1, WAIT_NO);
        s.check(
            "evtchn.send_masked",
            rc == 0 && pending && upcall_pending == 0 && !got,
            format_args!(
                "rc={} pending={pending} upcall_pending={upcall_pending} upcall={got}",
                Rc(rc)
            ),
        );
        ev::reset();
        let rc = ev::unmask(a);
        let masked = ev::port_masked(a);
        let upcall_pending = ev::upcall_pending();
        let got = ev::wait_upcalls(1, WAIT_YES);
        s.check(
            "evtchn.unmask_delivers",
            rc == 0 && !masked && upcall_pending == 1 && got && ev::seen(a),
            format_args!(
                "rc={} masked={masked} upcall_pending={upcall_pending} upcall={got} port_bit={}",
                Rc(rc),
                ev::seen(a)
            ),
        );
        let rc_a = ev::close(a);
        let (rc, st) = ev::status(b);
        s.check(
            "evtchn.close_peer",
            rc_a == 0 && rc == 0 && st.status == xen_abi::event_channel::EVTCHNSTAT_unbound,
            format_args!("rc={} status_other_end={}", Rc(rc_a), st.status),
        );
        let _ = ev::close(b);
    } else {
        for check in [
            "evtchn.status_interdomain",
            "evtchn.send_interdomain",
            "evtchn.send_interdomain_reverse",
            "evtchn.send_masked",
            "evtchn.unmask_delivers",
            "evtchn.close_peer",
        ] {
            s.skip(check, format_args!("no channel"));
        }
    }

    let (rc, unbound) = ev::alloc_unbound_self();
    if rc == 0 {
        let rc = ev::send(unbound);
        s.expect_rc("evtchn.send_unbound", rc, 0);
        let _ = ev::close(unbound);
    } else {
        s.skip("evtchn.send_unbound", format_args!("no port"));
    }
    let rc = ev::send(virq_port);
    s.expect_rc("evtchn.send_virq_port", rc, EINVAL);
    let rc = ev::send(5000);
    s.expect_rc("evtchn.send_bad_port", rc, EINVAL);
    let rc = ev::unmask(5000);
    s.expect_rc("evtchn.unmask_bad_port", rc, EINVAL);
    if ipi != 0 {
        let rc = ev::close(ipi);
        s.expect_rc("evtchn.close_ipi", rc, 0);
    }
    ev::drain();
}

/// The runstate area registered with Xen (it keeps writing it until unregistered).
static mut RUNSTATE: VcpuRunstateInfo = VcpuRunstateInfo {
    state: -1,
    _pad0: 0,
    state_entry_time: 0,
    time: [0; 4],
};

fn read_area() -> VcpuRunstateInfo {
    // SAFETY: RUNSTATE is only written by Xen (and read here); volatile for that reason.
    unsafe { core::ptr::read_volatile(&raw const RUNSTATE) }
}

fn runstate(s: &mut Suite) {
    let mut info = VcpuRunstateInfo {
        state: -1,
        ..VcpuRunstateInfo::default()
    };
    let rc = vcpu_op(VCPUOP_get_runstate_info, 0, Some(&mut info));
    let now = ev::now_ns();
    let running = info.time[RUNSTATE_running as usize] > 0;
    let blocked = info.time[RUNSTATE_blocked as usize] > 0;
    let entry_ok = info.state_entry_time > 0 && info.state_entry_time <= now + SLACK;
    s.check(
        "vcpu_op.get_runstate_info",
        rc == 0 && info.state == RUNSTATE_running && running && blocked && entry_ok,
        format_args!(
            "rc={} state={} running_time={running} blocked_time={blocked} entry_ok={entry_ok}",
            Rc(rc),
            info.state
        ),
    );
    let rc = vcpu_op(VCPUOP_get_runstate_info, 1, Some(&mut info));
    s.expect_rc("vcpu_op.get_runstate_info_no_such_vcpu", rc, ENOENT);

    let mut area = VcpuRegisterRunstateMemoryArea {
        addr: GuestHandle::from_ptr(&raw const RUNSTATE),
    };
    let rc = vcpu_op(VCPUOP_register_runstate_memory_area, 0, Some(&mut area));
    let r = read_area();
    s.check(
        "vcpu_op.register_runstate_area",
        rc == 0 && r.state == RUNSTATE_running && r.time[0] > 0,
        format_args!(
            "rc={} state={} running_time={}",
            Rc(rc),
            r.state,
            r.time[0] > 0
        ),
    );
    if rc == 0 {
        let before = r.time[RUNSTATE_blocked as usize];
        ev::drain();
        // Long enough that a loaded host still blocks before it fires.
        let rc0 = set_timer_op(ev::now_ns() + 20 * MS);
        for _ in 0..10 {
            if ev::upcalls() > 0 {
                break;
            }
            block();
        }
        ev::set_upcall_mask(1);
        let r = read_area();
        let grew = r.time[RUNSTATE_blocked as usize] > before;
        s.check(
            "runstate_area.updated",
            rc0 == 0 && grew && r.state == RUNSTATE_running,
            format_args!("blocked_time_grew={grew} state={}", r.state),
        );
        let mut area = VcpuRegisterRunstateMemoryArea {
            addr: GuestHandle::NULL,
        };
        let rc = vcpu_op(VCPUOP_register_runstate_memory_area, 0, Some(&mut area));
        s.expect_rc("vcpu_op.register_runstate_area_null", rc, 0);
    } else {
        s.skip("runstate_area.updated", format_args!("not registered"));
        s.skip(
            "vcpu_op.register_runstate_area_null",
            format_args!("not registered"),
        );
    }
    ev::drain();
}
