//! The suites, in the order `suites=all` (or no `suites=`) runs them. Each takes the boot
//! information and reports one verdict per check; every dom0 expectation is what Xen 4.17 does
//! for a PVH dom0 (measured on it, see `tests-qemu/tests/pvh.rs`). Where a domU's view differs
//! (start_info, its domain id) the check expects the domU's values when [`Env::domu`];
//! `domu` holds the domU-only checks, `smp` (only when named) brings up vCPU 1, and `triple`
//! ends the domain on purpose.

mod cpuid;
mod domu;
mod evtchn;
mod hvmparam;
mod hypercall;
mod memory;
mod shinfo;
mod smp;
mod start;
mod timer;
mod triple;

use crate::hypercall::XenLeaves;
use crate::start_info::Boot;
use crate::verdict::Suite;

/// What every suite may look at.
pub struct Env {
    /// The start info.
    pub boot: Boot,
    /// Xen's CPUID leaves.
    pub leaves: XenLeaves,
    /// Running as a domU ([`crate::role`]).
    pub domu: bool,
}

/// A suite's entry point.
pub type RunFn = fn(&mut Suite, &Env);

/// Which guests `suites=all` runs a suite in (a suite named on the command line always runs).
#[derive(Clone, Copy)]
pub enum Scope {
    /// dom0 and domU.
    All,
    /// A domU only (on dom0 the suite would only report that it is not a domU).
    DomU,
    /// Only when named (it does not come back).
    Named,
}

/// All suites, in order (later ones map shared_info and set the callback themselves when run
/// alone).
pub const SUITES: [(&str, Scope, RunFn); 11] = [
    ("start", Scope::All, start::run),
    ("cpuid", Scope::All, cpuid::run),
    ("hypercall", Scope::All, hypercall::run),
    ("hvmparam", Scope::All, hvmparam::run),
    ("shinfo", Scope::All, shinfo::run),
    ("evtchn", Scope::All, evtchn::run),
    ("timer", Scope::All, timer::run),
    ("memory", Scope::All, memory::run),
    ("domu", Scope::DomU, domu::run),
    ("smp", Scope::Named, smp::run),
    ("triple", Scope::Named, triple::run),
];

/// `a` followed by `b` in `buf`, as a str (for check names built at run time).
pub fn join<'a>(buf: &'a mut [u8], a: &str, b: &str) -> &'a str {
    let n = a.len() + b.len();
    buf[..a.len()].copy_from_slice(a.as_bytes());
    buf[a.len()..n].copy_from_slice(b.as_bytes());
    core::str::from_utf8(&buf[..n]).unwrap_or("?")
}
