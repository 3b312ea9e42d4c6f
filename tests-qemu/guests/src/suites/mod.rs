//! The suites, by name. To add one: write `suites/<name>.rs` with a
//! `pub fn run(s: &mut Suite, si: &StartInfo)` and list it in [`SUITES`].

use crate::verdict::Suite;
use xen_abi::xen::StartInfo;

pub mod basic;
pub mod conin;
pub mod domu;
pub mod emul;
pub mod fifo;
pub mod grants;
pub mod hostile;
pub mod misc;
pub mod mmu;
pub mod pingpong;
pub mod sched;
pub mod smp;
pub mod time;
pub mod traps;
pub mod watch;

/// A suite: its name (as in `suites=` and the verdict lines) and its body.
pub type SuiteFn = fn(&mut Suite, &StartInfo);

/// Every suite, in the order they run. `smp` comes last: it leaves vCPU 1 down, and with one
/// vCPU (as the others run) it only prints a SKIP. `fifo` switches the domain to the FIFO
/// event-channel ABI for good, so it comes after every suite that uses 2-level events.
pub const SUITES: &[(&str, SuiteFn)] = &[
    ("basic", basic::run),
    ("traps", traps::run),
    ("emul", emul::run),
    ("time", time::run),
    ("mmu", mmu::run),
    ("misc", misc::run),
    ("gnttab", grants::run_local),
    ("fifo", fifo::run),
    ("smp", smp::run),
];

/// Suites that need another domain or someone at the console; they run only when named in
/// `suites=` (not in `all`).
pub const ON_REQUEST: &[(&str, SuiteFn)] = &[
    ("domu", domu::run),
    ("pingpong", pingpong::run),
    ("grants", grants::run_pair),
    ("conin", conin::run),
    ("watch", watch::run),
    ("bench", crate::bench::run),
    ("hostile", hostile::run),
    ("sched", sched::run),
];
