//! Scheduler operations: `sched.h` (`HYPERVISOR_sched_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::{DomId, GuestHandle};

/// `SCHEDOP_yield`: voluntarily yield the CPU.
pub const SCHEDOP_yield: u32 = 0;
/// `SCHEDOP_block`: block until an event arrives (atomically unmasks events).
pub const SCHEDOP_block: u32 = 1;
/// `SCHEDOP_shutdown`: arg is a `sched_shutdown`.
pub const SCHEDOP_shutdown: u32 = 2;
/// `SCHEDOP_poll`: arg is a `sched_poll`.
pub const SCHEDOP_poll: u32 = 3;
/// `SCHEDOP_remote_shutdown`: arg is a `sched_remote_shutdown`.
pub const SCHEDOP_remote_shutdown: u32 = 4;
/// `SCHEDOP_shutdown_code`: latch a reason for a later shutdown.
pub const SCHEDOP_shutdown_code: u32 = 5;
/// `SCHEDOP_watchdog`: arg is a `sched_watchdog`.
pub const SCHEDOP_watchdog: u32 = 6;
/// `SCHEDOP_pin_override`: arg is a `sched_pin_override` (hardware domain only).
pub const SCHEDOP_pin_override: u32 = 7;

/// `SHUTDOWN_poweroff`: exited normally.
pub const SHUTDOWN_poweroff: u32 = 0;
/// `SHUTDOWN_reboot`.
pub const SHUTDOWN_reboot: u32 = 1;
/// `SHUTDOWN_suspend`: PV guests pass the start-info MFN in `rdx`.
pub const SHUTDOWN_suspend: u32 = 2;
/// `SHUTDOWN_crash`.
pub const SHUTDOWN_crash: u32 = 3;
/// `SHUTDOWN_watchdog`: watchdog expired.
pub const SHUTDOWN_watchdog: u32 = 4;
/// `SHUTDOWN_soft_reset`.
pub const SHUTDOWN_soft_reset: u32 = 5;
/// `SHUTDOWN_MAX`: highest valid reason.
pub const SHUTDOWN_MAX: u32 = 5;

/// `struct sched_shutdown` / `sched_shutdown_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedShutdown {
    /// `SHUTDOWN_*`.
    pub reason: u32,
}
assert_layout!(SchedShutdown, 4, reason @ 0);

/// `struct sched_poll` / `sched_poll_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedPoll {
    /// `XEN_GUEST_HANDLE(evtchn_port_t)`: ports to wait on.
    pub ports: GuestHandle,
    /// Number of ports.
    pub nr_ports: u32,
    /// Explicit padding.
    pub _pad0: u32,
    /// Absolute system-time timeout (0: none).
    pub timeout: u64,
}
assert_layout!(SchedPoll, 24, ports @ 0, nr_ports @ 8, timeout @ 16);

/// `struct sched_remote_shutdown` / `sched_remote_shutdown_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedRemoteShutdown {
    /// Remote domain.
    pub domain_id: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// `SHUTDOWN_*`.
    pub reason: u32,
}
assert_layout!(SchedRemoteShutdown, 8, domain_id @ 0, reason @ 4);

/// `struct sched_watchdog` / `sched_watchdog_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedWatchdog {
    /// Watchdog id (0: create).
    pub id: u32,
    /// Timeout in seconds (0: destroy).
    pub timeout: u32,
}
assert_layout!(SchedWatchdog, 8, id @ 0, timeout @ 4);

/// `struct sched_pin_override` / `sched_pin_override_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct SchedPinOverride {
    /// Physical CPU, negative to undo.
    pub pcpu: i32,
}
assert_layout!(SchedPinOverride, 4, pcpu @ 0);
