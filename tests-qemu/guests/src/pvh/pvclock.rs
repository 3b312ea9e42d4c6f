//! The Xen PV clock: `vcpu_info[0].time` in shared_info gives system time (ns since boot) at a
//! TSC stamp, and how to scale later TSC deltas; a reader retries while `version` is odd or
//! changes.

use core::arch::x86_64::_rdtsc;
use core::sync::atomic::{Ordering, fence};

use xen_abi::xen::VcpuTimeInfo;

/// A consistent copy of `time` (retrying while the hypervisor updates it).
pub fn snapshot(time: *const VcpuTimeInfo) -> VcpuTimeInfo {
    loop {
        // SAFETY: `time` points into the mapped shared_info page; fields are read volatile.
        let v1 = unsafe { (&raw const (*time).version).read_volatile() };
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        let copy = unsafe { time.read_volatile() };
        fence(Ordering::SeqCst);
        // SAFETY: as above.
        let v2 = unsafe { (&raw const (*time).version).read_volatile() };
        if v1 == v2 && v1 & 1 == 0 {
            return copy;
        }
    }
}

/// System time now, in ns.
pub fn now(time: *const VcpuTimeInfo) -> u64 {
    let t = snapshot(time);
    // SAFETY: RDTSC has no side effects.
    let tsc = unsafe { _rdtsc() };
    let mut delta = tsc.wrapping_sub(t.tsc_timestamp);
    if t.tsc_shift >= 0 {
        delta <<= t.tsc_shift;
    } else {
        delta >>= -t.tsc_shift;
    }
    let scaled = ((u128::from(delta) * u128::from(t.tsc_to_system_mul)) >> 32) as u64;
    t.system_time.wrapping_add(scaled)
}
