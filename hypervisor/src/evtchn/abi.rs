//! The interface both event ABIs implement (Xen's `struct evtchn_port_ops`), and the per-domain
//! choice between them.
//!
//! A domain starts with the 2-level ABI and may switch to FIFO once, with
//! `EVTCHNOP_init_control`; `EVTCHNOP_reset` switches it back. The port table owns the choice
//! ([`Abi`]) and calls it under its lock, so every ABI operation of a domain is serialised by
//! that lock (Xen's `event_lock` plus, for FIFO, its per-queue locks).

use super::fifo::Fifo;
use super::guest::{EventMemory, VcpuInfo};
use super::two_level::TwoLevel;
use alloc::boxed::Box;
use xen_abi::errno::Errno;
use xen_abi::event_channel::EVTCHN_FIFO_PRIORITY_DEFAULT;

/// What the caller must do after an event was raised or unmasked. Nothing here has happened
/// yet: the port table cannot reach the scheduler.
#[must_use = "kick the vCPU and wake the pollers"]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Notify {
    /// The vCPU whose `evtchn_upcall_pending` went from 0 to 1: kick it so it takes the upcall
    /// (Xen's `vcpu_mark_events_pending` → `vcpu_kick`).
    pub kick: Option<u32>,
    /// The port that became pending: wake the domain's vCPUs polling it or polling any port
    /// (Xen's `evtchn_check_pollers`).
    pub poll: Option<u32>,
}

impl Notify {
    /// Nothing to do.
    pub const NONE: Self = Self {
        kick: None,
        poll: None,
    };
}

/// Hypervisor-side state the FIFO ABI keeps per port (Xen's `evtchn->priority`,
/// `fifo_lastq` and `pending`); the 2-level ABI ignores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FifoPortState {
    /// Queue priority, 0 (highest) to 15 (lowest).
    pub priority: u8,
    /// The queue the port was last linked on: `(vcpu, priority)`. Linking it elsewhere must
    /// invalidate that queue's tail if the port is still it.
    pub(crate) last_queue: (u32, u8),
    /// Raised while its event-array page was missing; replayed when the page is added.
    pub(crate) deferred: bool,
}

impl FifoPortState {
    /// A fresh port: default priority, never queued, nothing deferred.
    pub const INITIAL: Self = Self {
        priority: EVTCHN_FIFO_PRIORITY_DEFAULT as u8,
        last_queue: (0, 0),
        deferred: false,
    };
}

impl Default for FifoPortState {
    fn default() -> Self {
        Self::INITIAL
    }
}

/// The operations an event ABI provides (Xen's `evtchn_port_ops`). Callers go through the
/// port table, which checks that a port is in use before raising it (`evtchn_usable`).
pub trait EventAbi {
    /// Ports this ABI can address (`max_evtchns`).
    fn max_ports(&self) -> u32;
    /// A port is being bound (`evtchn_port_init`).
    fn init_port(&mut self, port: u32, st: &mut FifoPortState);
    /// Marks `port` pending for `vcpu` and queues or signals it (`set_pending`).
    fn set_pending(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify;
    /// Clears `port`'s pending state (`clear_pending`), as when the port is closed.
    fn clear_pending(&mut self, mem: &dyn EventMemory, port: u32);
    /// Clears `port`'s mask and re-raises it on `vcpu` if pending (`unmask`).
    fn unmask(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify;
    /// Whether `port` is pending (`is_pending`).
    fn is_pending(&self, mem: &dyn EventMemory, port: u32) -> bool;
    /// Whether `port` is masked (`is_masked`).
    fn is_masked(&self, mem: &dyn EventMemory, port: u32) -> bool;
    /// Whether a free `port` may not be reused yet (`is_busy`: still linked on a FIFO queue).
    fn is_busy(&self, port: u32) -> bool;
    /// `EVTCHNOP_set_priority` on a port in use (`set_priority`).
    fn set_priority(&mut self, st: &mut FifoPortState, priority: u32) -> Result<(), Errno>;
}

/// Xen's `vcpu_mark_events_pending`: raises `vcpu`'s upcall flag; returns whether it must be
/// kicked. A vCPU without a `vcpu_info` cannot be told.
pub(crate) fn mark_events_pending(mem: &dyn EventMemory, vcpu: u32) -> bool {
    mem.vcpu_info(vcpu)
        .and_then(VcpuInfo::new)
        .is_some_and(|vi| vi.mark_events_pending())
}

/// The ABI a domain currently uses.
pub enum Abi {
    /// The 2-level bitmaps in `shared_info` (the initial ABI).
    TwoLevel(TwoLevel),
    /// FIFO queues, after `EVTCHNOP_init_control`.
    Fifo(Box<Fifo>),
}

impl Abi {
    /// The FIFO state, if the domain switched to FIFO.
    pub fn fifo(&self) -> Option<&Fifo> {
        match self {
            Abi::Fifo(f) => Some(f),
            Abi::TwoLevel(_) => None,
        }
    }

    /// As [`Abi::fifo`], mutable.
    pub fn fifo_mut(&mut self) -> Option<&mut Fifo> {
        match self {
            Abi::Fifo(f) => Some(f),
            Abi::TwoLevel(_) => None,
        }
    }

    fn get(&self) -> &dyn EventAbi {
        match self {
            Abi::TwoLevel(t) => t,
            Abi::Fifo(f) => &**f,
        }
    }

    fn get_mut(&mut self) -> &mut dyn EventAbi {
        match self {
            Abi::TwoLevel(t) => t,
            Abi::Fifo(f) => &mut **f,
        }
    }
}

impl EventAbi for Abi {
    fn max_ports(&self) -> u32 {
        self.get().max_ports()
    }

    fn init_port(&mut self, port: u32, st: &mut FifoPortState) {
        self.get_mut().init_port(port, st);
    }

    fn set_pending(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        self.get_mut().set_pending(mem, port, st, vcpu)
    }

    fn clear_pending(&mut self, mem: &dyn EventMemory, port: u32) {
        self.get_mut().clear_pending(mem, port);
    }

    fn unmask(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        self.get_mut().unmask(mem, port, st, vcpu)
    }

    fn is_pending(&self, mem: &dyn EventMemory, port: u32) -> bool {
        self.get().is_pending(mem, port)
    }

    fn is_masked(&self, mem: &dyn EventMemory, port: u32) -> bool {
        self.get().is_masked(mem, port)
    }

    fn is_busy(&self, port: u32) -> bool {
        self.get().is_busy(port)
    }

    fn set_priority(&mut self, st: &mut FifoPortState, priority: u32) -> Result<(), Errno> {
        self.get_mut().set_priority(st, priority)
    }
}
