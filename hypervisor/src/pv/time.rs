//! Guest time: system time since boot, the per-vCPU `vcpu_time_info`, the wall clock in
//! `shared_info`, and the guest timers (single-shot and periodic) that raise `VIRQ_TIMER`.

use super::clock::{TimeScale, unix_seconds};
use crate::domain::Vcpu;
use core::sync::atomic::{AtomicU32, Ordering};
use spin::Once;
use xenolith_arch::cpu::rdtsc;

struct Clock {
    boot_tsc: u64,
    scale: TimeScale,
    /// Wall-clock seconds and nanoseconds at system time 0.
    wc_sec: u64,
    wc_nsec: u32,
}

static CLOCK: Once<Clock> = Once::new();

/// Starts system time now, with the TSC at `tsc_khz` and the RTC's reading as wall time.
pub fn init(tsc_khz: u64) {
    CLOCK.call_once(|| {
        let boot_tsc = rdtsc();
        let t = xenolith_arch::rtc::read(None);
        let wc_sec = unix_seconds(t.year, t.month, t.day, t.hour, t.min, t.sec);
        Clock {
            boot_tsc,
            scale: TimeScale::new(tsc_khz * 1000),
            wc_sec,
            wc_nsec: 0,
        }
    });
}

fn clock() -> &'static Clock {
    CLOCK
        .get()
        .expect("pv::time::init runs at boot, before any guest")
}

/// System time: nanoseconds since boot (Xen's `NOW()`).
pub fn now() -> u64 {
    let c = clock();
    c.scale.scale(rdtsc().wrapping_sub(c.boot_tsc))
}

/// Offsets in `vcpu_info` of `struct vcpu_time_info`.
const TIME: u64 = 32;

/// Publishes `vcpu_time_info` for `v` (version odd while writing, as the guest's seqlock
/// expects).
pub fn update_vcpu_time(v: &Vcpu) {
    let c = clock();
    let base = v.pv.vcpu_info + TIME;
    if v.pv.vcpu_info == 0 {
        return;
    }
    let tsc = rdtsc();
    let system_time = c.scale.scale(tsc.wrapping_sub(c.boot_tsc));
    // SAFETY: `vcpu_info` is the direct-map address of this vCPU's vcpu_info (in the
    // domain's shared_info or a registered page), 64 bytes, time info at offset 32.
    unsafe {
        let version = &*(base as *const AtomicU32);
        let v0 = version.load(Ordering::Relaxed) | 1;
        version.store(v0, Ordering::SeqCst);
        ((base + 8) as *mut u64).write_volatile(tsc);
        ((base + 16) as *mut u64).write_volatile(system_time);
        ((base + 24) as *mut u32).write_volatile(c.scale.mul_frac);
        ((base + 28) as *mut i8).write_volatile(c.scale.shift);
        version.store(v0.wrapping_add(1), Ordering::SeqCst);
    }
}

/// Publishes the wall clock in a `shared_info` page at `shared_info` (direct-map address).
pub fn update_wallclock(shared_info: u64) {
    let c = clock();
    // SAFETY: the domain's shared_info page, direct-mapped; wc fields at 3072..3088.
    unsafe {
        let version = &*((shared_info + 3072) as *const AtomicU32);
        let v0 = version.load(Ordering::Relaxed) | 1;
        version.store(v0, Ordering::SeqCst);
        ((shared_info + 3076) as *mut u32).write_volatile(c.wc_sec as u32);
        ((shared_info + 3080) as *mut u32).write_volatile(c.wc_nsec);
        ((shared_info + 3084) as *mut u32).write_volatile((c.wc_sec >> 32) as u32);
        version.store(v0.wrapping_add(1), Ordering::SeqCst);
    }
}

/// Re-programs this CPU's timer after `v`'s timers changed (the CPU's timer serves every vCPU
/// queued on it: see `sched::rearm_timer`).
pub fn arm(_v: &Vcpu) {
    crate::sched::rearm_timer();
}

/// Fires `v`'s due timers as `VIRQ_TIMER` (the caller re-arms the CPU's timer). Returns true
/// if an event was raised.
pub fn fire_due(v: &mut Vcpu) -> bool {
    let t = now();
    let mut fire = false;
    if v.pv.timer_deadline <= t {
        v.pv.timer_deadline = u64::MAX;
        fire = true;
    }
    if v.pv.periodic_next <= t {
        let p = v.pv.periodic_period.max(1);
        v.pv.periodic_next = t + p - (t - v.pv.periodic_next) % p;
        fire = true;
    }
    if fire {
        super::events::send_virq(v, xen_abi::xen::VIRQ_TIMER);
    }
    fire
}
