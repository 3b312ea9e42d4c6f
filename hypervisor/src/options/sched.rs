//! `sched=`: the scheduler names of Xen 4.17 `xen/common/sched/` (each scheduler's `opt_name`)
//! and the fallback of `scheduler_init` in `xen/common/sched/core.c`.

use core::fmt;

/// A scheduler Xen knows by name. Xenolith may implement fewer; this records the choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sched {
    /// `credit`: the original credit scheduler.
    Credit,
    /// `credit2`: Xen's default since 4.12.
    Credit2,
    /// `arinc653`: ARINC 653 static cyclic scheduler.
    Arinc653,
    /// `rtds`: real-time deferrable server scheduler.
    Rtds,
    /// `null`: one vCPU per pCPU, no scheduling.
    Null,
}

impl Sched {
    /// Xen's default: `CONFIG_SCHED_DEFAULT` is `credit2` in the default Kconfig
    /// (`xen/common/sched/Kconfig`, `default SCHED_CREDIT2_DEFAULT`).
    pub const XEN_DEFAULT: Sched = Sched::Credit2;

    const ALL: [Sched; 5] = [
        Sched::Credit,
        Sched::Credit2,
        Sched::Arinc653,
        Sched::Rtds,
        Sched::Null,
    ];

    /// The name used on the command line (Xen's `opt_name`).
    pub fn opt_name(self) -> &'static str {
        match self {
            Sched::Credit => "credit",
            Sched::Credit2 => "credit2",
            Sched::Arinc653 => "arinc653",
            Sched::Rtds => "rtds",
            Sched::Null => "null",
        }
    }

    /// Xen's descriptive name, as in its `Using scheduler: <name> (<opt_name>)` line.
    pub fn name(self) -> &'static str {
        match self {
            Sched::Credit => "SMP Credit Scheduler",
            Sched::Credit2 => "SMP Credit Scheduler rev2",
            Sched::Arinc653 => "ARINC 653 Scheduler",
            Sched::Rtds => "SMP RTDS Scheduler",
            Sched::Null => "null Scheduler",
        }
    }

    /// Looks a scheduler up by exact (`strcmp`) name, as `scheduler_init` does.
    pub fn from_opt_name(name: &str) -> Option<Sched> {
        Sched::ALL.into_iter().find(|s| s.opt_name() == name)
    }
}

impl Default for Sched {
    fn default() -> Self {
        Sched::XEN_DEFAULT
    }
}

impl fmt::Display for Sched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.opt_name())
    }
}
