//! `shinfo`: shared_info mapped over a guest page with `XENMEM_add_to_physmap`, and the PV
//! clock in it.

use crate::events::{map_shared_info, shared, vcpu0};
use crate::pvclock::{now, snapshot};
use crate::suites::Env;
use crate::verdict::Suite;

pub fn run(s: &mut Suite, _env: &Env) {
    let rc = map_shared_info();
    s.expect_rc("add_to_physmap", rc, 0);
    if rc != 0 {
        return;
    }
    // SAFETY: shared_info is mapped at `shared()`; no reference is created.
    let time = unsafe { &raw const (*vcpu0()).time };
    let t = snapshot(time);
    s.check(
        "time.version_even",
        t.version & 1 == 0,
        format_args!("even={}", t.version & 1 == 0),
    );
    s.check(
        "time.scale_set",
        t.tsc_to_system_mul != 0,
        format_args!("mul_nonzero={}", t.tsc_to_system_mul != 0),
    );
    let t1 = now(time);
    for _ in 0..100_000 {
        core::hint::spin_loop();
    }
    let t2 = now(time);
    s.check(
        "time.advances",
        t1 != 0 && t2 > t1,
        format_args!("nonzero={} advances={}", t1 != 0, t2 > t1),
    );
    // SAFETY: as above.
    let wc_version = unsafe { (&raw const (*shared()).wc_version).read_volatile() };
    s.check(
        "wallclock.version_even",
        wc_version & 1 == 0,
        format_args!("even={}", wc_version & 1 == 0),
    );
}
