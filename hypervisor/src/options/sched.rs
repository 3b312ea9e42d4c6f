//! `sched=`: the scheduler, by name, with the fallback of `scheduler_init` in Xen 4.17's
//! `xen/common/sched/core.c`.
//!
//! Xenolith implements `credit` (Xen's credit1, the default here) and a round-robin policy
//! named `rr` (no Xen scheduler has that name). Every other name, Xen's `credit2`, `null`,
//! `rtds` and `arinc653` included, is treated as Xen treats a scheduler that is not built in:
//! `Could not find scheduler: <name>`, then the default is used.

use core::fmt;

/// A scheduler Xenolith implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sched {
    /// `credit`: Xen's credit1 (weights, caps, boost); see docs/scheduler.md.
    Credit,
    /// `rr`: round-robin over a CPU's ready vCPUs, ignoring weights and caps.
    RoundRobin,
}

impl Sched {
    /// The default when `sched=` is absent or names no scheduler Xenolith has. (Xen 4.17's own
    /// default is `credit2`, which Xenolith does not implement.)
    pub const DEFAULT: Sched = Sched::Credit;

    const ALL: [Sched; 2] = [Sched::Credit, Sched::RoundRobin];

    /// The name used on the command line (Xen's `opt_name`).
    pub fn opt_name(self) -> &'static str {
        match self {
            Sched::Credit => "credit",
            Sched::RoundRobin => "rr",
        }
    }

    /// The descriptive name, as in Xen's `Using scheduler: <name> (<opt_name>)` line.
    pub fn name(self) -> &'static str {
        match self {
            Sched::Credit => "SMP Credit Scheduler",
            Sched::RoundRobin => "Round-robin Scheduler",
        }
    }

    /// Looks a scheduler up by exact (`strcmp`) name, as `scheduler_init` does.
    pub fn from_opt_name(name: &str) -> Option<Sched> {
        Sched::ALL.into_iter().find(|s| s.opt_name() == name)
    }
}

impl Default for Sched {
    fn default() -> Self {
        Sched::DEFAULT
    }
}

impl fmt::Display for Sched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.opt_name())
    }
}
