//! Event channels (Xen's `xen/common/event_channel.c`, `event_2l.c` and `event_fifo.c`): each
//! domain's port table and its state machine, connections between domains, and the two
//! delivery ABIs behind one interface.
//!
//! # Modules
//!
//! - [`table`]: a domain's [`PortTable`]: ports, VIRQ bindings, the domain's ABI, and every
//!   operation that needs only that domain.
//! - [`interdomain`]: bind, close and send across a [`Pair`] of locked tables.
//! - [`ops`]: the locking protocol for those (which tables, in which order, retry).
//! - [`abi`]: the [`EventAbi`] interface and the per-domain choice [`Abi`];
//!   [`two_level`] and [`fifo`] implement it.
//! - [`guest`]: [`GuestMem`], the only way this code touches guest memory (atomic,
//!   bounds-checked), and [`EventMemory`], how it reaches `shared_info` and `vcpu_info`.
//!
//! Everything here is pure logic, host-tested; the hypervisor provides the memory.
//!
//! # Lock order
//!
//! A domain's `PortTable` sits behind one lock (Xen's `event_lock`); every ABI operation of
//! the domain runs under it. An operation on a connection between two domains holds both
//! tables, **locked lower domain id first** ([`ops::lock_pair`]); a domain is never locked
//! twice. Nothing else may be locked after a port-table lock except the second table. (Xen
//! orders its two `event_lock`s by `struct domain` address; any fixed order will do, and the
//! domain id is one every CPU agrees on.) A path that raises events from interrupt context
//! (the timer's `VIRQ_TIMER`) must not interrupt a holder of the same table lock on its CPU:
//! take the lock with interrupts off there, or defer the raise.
//!
//! # What the hypercall layer calls
//!
//! `t` is the caller's `d.evtchn.lock()`, `mem` the domain as [`EventMemory`], `d`/`rd`
//! domains implementing [`EvtchnDomain`], `lookup` the domain registry (`registry::get`).
//! Every call returns the errno Xen 4.17 returns; the caller copies the guest structure in and
//! out, resolves `DOMID_SELF`, answers -ESRCH for a domain that does not exist and -EPERM for
//! one it may not act on (XSM's dummy policy).
//!
//! | op | call |
//! |---|---|
//! | `alloc_unbound` | `target.lock().alloc_unbound(caller_id, remote_dom)` (`remote_dom` may be `DOMID_SELF`) |
//! | `bind_interdomain` | [`ops::bind_interdomain`]`(d, rd, remote_port)` → `(local_port, Notify)` |
//! | `bind_virq` | `t.bind_virq(virq, vcpu)` |
//! | `bind_ipi` | `t.bind_ipi(vcpu)` |
//! | `close` | [`ops::close`]`(d, port, &lookup)` |
//! | `send` | [`ops::send`]`(d, port, &lookup)` → [`Delivered`] (notify in `Delivered::dom`) |
//! | `status` | `t.fill_status(&mut evtchn_status)` or `t.port_status(port)` |
//! | `bind_vcpu` | `t.bind_vcpu(port, vcpu)` |
//! | `unmask` | `t.unmask(mem, port)` → `Notify` |
//! | `reset`, `reset_cont` | [`ops::reset`]`(target, cmd == reset_cont, &lookup, preempt)` → FIFO pages to release; -ERESTART: create the `reset_cont` continuation |
//! | `init_control` | `t.init_control(mem, vcpu, offset, \|\| map_writable(gfn))` → `link_bits` |
//! | `expand_array` | `t.expand_array(mem, \|\| map_writable(gfn))` → `Vec<Notify>` |
//! | `set_priority` | `t.set_priority(port, priority)` |
//!
//! For delivery (`pv/events.rs`): `t.raise(mem, port, vcpu)` (Xen's `evtchn_port_set_pending`),
//! `t.send_virq(mem, vcpu, virq)` (per-vCPU and global VIRQs), `t.is_pending(mem, port)` (for
//! `SCHEDOP_poll`). A [`Notify`] says what to do after dropping the lock: kick `kick`'s vCPU,
//! and wake the domain's vCPUs polling `poll` (or any port). Domain teardown calls
//! [`ops::destroy`] before freeing the domain's frames.
//!
//! # Guest memory in the hypervisor
//!
//! `EventMemory for Domain` returns `GuestMem::from_raw(direct-map address, len, mfn)` for the
//! `shared_info` frame (4096) and each vCPU's `vcpu_info` (64; `None` while it has none). The
//! `map_writable` closures of `init_control`/`expand_array` translate the GFN, take a general
//! and a writable type reference on the frame (Xen's `map_guest_page`: -EINVAL if it is not the
//! domain's RAM or cannot be writable) and return its direct-map page with the MFN as the
//! frame token. The table keeps those pages until `reset` or `destroy` hands them back; the
//! caller then drops the references.
//!
//! # Deliberate differences from Xen
//!
//! - All FIFO queue updates of a domain are serialised by its table lock instead of per-queue
//!   locks, so Xen's bounded retry to lock the old and new queue is not needed and its "lost
//!   event (too many queue changes)" case cannot happen.
//! - A FIFO event raised while its event-array page is missing is replayed once when the page
//!   arrives and forgotten when the port is closed; Xen keeps the flag, which can only cause a
//!   spurious event on a later re-binding.
//! - PIRQ ports exist as a state (status, `bind_vcpu`, close) but binding them, and moving the
//!   physical IRQ with `bind_vcpu`, belong to the physdev code.

pub mod abi;
pub mod fifo;
pub mod guest;
pub mod interdomain;
pub mod ops;
pub mod table;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) mod testutil;
pub mod two_level;

pub use abi::{Abi, EventAbi, FifoPortState, Notify};
pub use guest::{EventMemory, GuestMem, NoMemory};
pub use interdomain::{Delivered, Pair, PairError, Side};
pub use ops::EvtchnDomain;
pub use table::PortTable;
use xen_abi::DomId;

/// Ports become valid in buckets, as in Xen (`EVTCHNS_PER_BUCKET`: a page of 64-byte
/// `struct evtchn`); a port beyond the allocated buckets is invalid (`-EINVAL`).
pub const PORTS_PER_BUCKET: u32 = 64;
/// Ports of the 2-level ABI for a 64-bit guest (`EVTCHN_2L_NR_CHANNELS`).
pub const NR_PORTS_2L: u32 = xen_abi::event_channel::EVTCHN_2L_NR_CHANNELS;
/// Ports of the FIFO ABI (`EVTCHN_FIFO_NR_CHANNELS`).
pub const NR_PORTS_FIFO: u32 = xen_abi::event_channel::EVTCHN_FIFO_NR_CHANNELS;

/// A port's state (`ECS_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    /// `ECS_FREE`.
    Free,
    /// `ECS_RESERVED`: port 0, never allocated.
    Reserved,
    /// `ECS_UNBOUND`: waiting for `remote` to bind.
    Unbound {
        /// The domain allowed to bind.
        remote: DomId,
    },
    /// `ECS_INTERDOMAIN`: connected to `port` of domain `dom` (possibly this domain).
    Interdomain {
        /// The remote domain.
        dom: DomId,
        /// The remote port.
        port: u32,
    },
    /// `ECS_PIRQ`: bound to a physical IRQ.
    Pirq {
        /// The PIRQ.
        pirq: u32,
    },
    /// `ECS_VIRQ`.
    Virq {
        /// The virtual IRQ.
        virq: u32,
    },
    /// `ECS_IPI`: an event a domain sends itself, to `notify_vcpu`.
    Ipi,
}

impl PortState {
    /// Whether events may be raised, cleared or unmasked on the port (Xen's `evtchn_usable`:
    /// neither free nor reserved).
    pub fn usable(self) -> bool {
        !matches!(self, PortState::Free | PortState::Reserved)
    }
}

/// Whether a VIRQ is global (bound on vCPU 0 only) or per-vCPU (Xen's `virq_is_global`).
pub fn virq_is_global(virq: u32) -> bool {
    use xen_abi::xen::{VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU};
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// `EVTCHNSTAT_*` values reported by `EVTCHNOP_status`.
pub mod stat {
    /// Closed (free or reserved).
    pub const CLOSED: u32 = xen_abi::event_channel::EVTCHNSTAT_closed;
    /// Unbound.
    pub const UNBOUND: u32 = xen_abi::event_channel::EVTCHNSTAT_unbound;
    /// Connected to another port.
    pub const INTERDOMAIN: u32 = xen_abi::event_channel::EVTCHNSTAT_interdomain;
    /// Bound to a physical IRQ.
    pub const PIRQ: u32 = xen_abi::event_channel::EVTCHNSTAT_pirq;
    /// Bound to a VIRQ.
    pub const VIRQ: u32 = xen_abi::event_channel::EVTCHNSTAT_virq;
    /// An IPI port.
    pub const IPI: u32 = xen_abi::event_channel::EVTCHNSTAT_ipi;
}

/// One port.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// State.
    pub state: PortState,
    /// vCPU notified (`notify_vcpu_id`).
    pub notify_vcpu: u32,
    /// What the FIFO ABI keeps about the port (priority and queue bookkeeping).
    pub fifo: FifoPortState,
}

impl Port {
    /// A port never used.
    pub const FREE: Port = Port {
        state: PortState::Free,
        notify_vcpu: 0,
        fifo: FifoPortState::INITIAL,
    };
}

/// `EVTCHNOP_status` of one port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortStatus {
    /// `EVTCHNSTAT_*`.
    pub status: u32,
    /// The vCPU the port notifies.
    pub vcpu: u32,
    /// The union member for the state.
    pub detail: StatusDetail,
}

/// The `evtchn_status.u` member a state fills in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusDetail {
    /// Closed or IPI: the union is not written.
    None,
    /// `u.unbound.dom`.
    Unbound {
        /// The domain allowed to bind.
        dom: DomId,
    },
    /// `u.interdomain`.
    Interdomain {
        /// The remote domain.
        dom: DomId,
        /// The remote port.
        port: u32,
    },
    /// `u.pirq`.
    Pirq(u32),
    /// `u.virq`.
    Virq(u32),
}
