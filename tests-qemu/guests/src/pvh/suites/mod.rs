//! The suites, in the order `suites=all` (or no `suites=`) runs them. Each takes the boot
//! information and reports one verdict per check; every expectation is what Xen 4.17 does for
//! a PVH dom0 (measured on it, see `tests-qemu/tests/pvh.rs`).

mod cpuid;
mod evtchn;
mod hvmparam;
mod hypercall;
mod memory;
mod shinfo;
mod start;
mod timer;

use crate::hypercall::XenLeaves;
use crate::start_info::Boot;
use crate::verdict::Suite;

/// What every suite may look at.
pub struct Env {
    /// The start info.
    pub boot: Boot,
    /// Xen's CPUID leaves.
    pub leaves: XenLeaves,
}

/// A suite's entry point.
pub type RunFn = fn(&mut Suite, &Env);

/// All suites, in order (later ones map shared_info and set the callback themselves when run
/// alone).
pub const SUITES: [(&str, RunFn); 8] = [
    ("start", start::run),
    ("cpuid", cpuid::run),
    ("hypercall", hypercall::run),
    ("hvmparam", hvmparam::run),
    ("shinfo", shinfo::run),
    ("evtchn", evtchn::run),
    ("timer", timer::run),
    ("memory", memory::run),
];

/// `a` followed by `b` in `buf`, as a str (for check names built at run time).
pub fn join<'a>(buf: &'a mut [u8], a: &str, b: &str) -> &'a str {
    let n = a.len() + b.len();
    buf[..a.len()].copy_from_slice(a.as_bytes());
    buf[a.len()..n].copy_from_slice(b.as_bytes());
    core::str::from_utf8(&buf[..n]).unwrap_or("?")
}
