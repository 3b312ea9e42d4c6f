//! The locking protocol around [`super::interdomain`]: which tables to lock, in which order,
//! and the retry when a port turns out to be connected to a domain that was not locked.
//!
//! **Lock order**: a CPU holds at most two port-table locks, and when it holds two, it took the
//! one of the lower domain id first ([`lock_pair`]). The same domain is locked once. Code that
//! holds a port-table lock must not take any other domain's table lock except through these
//! functions.

use super::PortState;
use super::abi::Notify;
use super::guest::{EventMemory, GuestMem};
use super::interdomain::{self, Delivered, Pair, PairError, Side};
use super::table::PortTable;
use alloc::vec::Vec;
use spin::{Mutex, MutexGuard};
use xen_abi::DomId;
use xen_abi::errno::Errno;

/// A domain as the event-channel code needs it: its id, its locked port table and its guest
/// memory. The hypervisor implements it for `Domain`; the tests for a fake.
pub trait EvtchnDomain: EventMemory {
    /// The domain id.
    fn domid(&self) -> DomId;
    /// The port table and its lock (Xen's `event_lock`).
    fn ports(&self) -> &Mutex<PortTable>;
}

/// One or two locked tables, taken in the lock order.
pub enum Locked<'d, D: EvtchnDomain> {
    /// `local` and the peer are the same domain.
    One(&'d D, MutexGuard<'d, PortTable>),
    /// Two domains.
    Two {
        /// The caller's domain and its guard.
        local: (&'d D, MutexGuard<'d, PortTable>),
        /// The other domain and its guard.
        remote: (&'d D, MutexGuard<'d, PortTable>),
    },
}

impl<'d, D: EvtchnDomain> Locked<'d, D> {
    /// The pair view the [`interdomain`] operations take.
    pub fn pair(&mut self) -> Pair<'_> {
        match self {
            Locked::One(d, g) => Pair::Same(Side {
                id: d.domid(),
                table: g,
                mem: *d,
            }),
            Locked::Two { local, remote } => Pair::Two {
                local: Side {
                    id: local.0.domid(),
                    table: &mut local.1,
                    mem: local.0,
                },
                remote: Side {
                    id: remote.0.domid(),
                    table: &mut remote.1,
                    mem: remote.0,
                },
            },
        }
    }
}

/// Locks `local`'s table and `remote`'s, lower domain id first; once if they are the same
/// domain.
pub fn lock_pair<'d, D: EvtchnDomain>(local: &'d D, remote: &'d D) -> Locked<'d, D> {
    if local.domid() == remote.domid() {
        return Locked::One(local, local.ports().lock());
    }
    let (l, r) = if local.domid() < remote.domid() {
        let l = local.ports().lock();
        (l, remote.ports().lock())
    } else {
        let r = remote.ports().lock();
        (local.ports().lock(), r)
    };
    Locked::Two {
        local: (local, l),
        remote: (remote, r),
    }
}

/// `EVTCHNOP_bind_interdomain` from `local` to `remote_port` of `remote` (which may be `local`
/// itself). The caller resolved `DOMID_SELF` and answered -ESRCH for a missing domain.
/// Returns the new local port and what `local` must do (the conservative notification).
pub fn bind_interdomain<D: EvtchnDomain>(
    local: &D,
    remote: &D,
    remote_port: u32,
) -> Result<(u32, Notify), Errno> {
    interdomain::bind_interdomain(&mut lock_pair(local, remote).pair(), remote_port)
}

/// Runs `op` on `port` of `d` with the tables it needs: first `d`'s alone (or with the peer
/// the port was connected to when last looked at), then, if the port is connected to another
/// domain, both. A second change of peer is -EINVAL (the port was closed and re-bound).
fn with_peer<'d, D: EvtchnDomain, R>(
    d: &'d D,
    lookup: &impl Fn(DomId) -> Option<&'d D>,
    mut op: impl FnMut(&mut Pair<'_>) -> Result<R, PairError>,
    peer_gone: impl FnOnce(&mut PortTable) -> Result<R, Errno>,
) -> Result<R, Errno> {
    let mut peer = d;
    for _ in 0..2 {
        // The locks are released before anything below takes them again.
        let result = op(&mut lock_pair(d, peer).pair());
        match result {
            Ok(r) => return Ok(r),
            Err(PairError::Errno(e)) => return Err(e),
            Err(PairError::PeerNotLocked(dom)) if peer.domid() == d.domid() => match lookup(dom) {
                Some(p) => peer = p,
                // Domains close their ports before they go away; if one did not, act as if
                // it had.
                None => return peer_gone(&mut d.ports().lock()),
            },
            Err(PairError::PeerNotLocked(_)) => break,
        }
    }
    Err(Errno::EINVAL)
}

/// `EVTCHNOP_close` of `port` of `d` (also used by reset and destroy). `lookup` finds the other
/// domain of an interdomain port.
pub fn close<'d, D: EvtchnDomain>(
    d: &'d D,
    port: u32,
    lookup: &impl Fn(DomId) -> Option<&'d D>,
) -> Result<(), Errno> {
    with_peer(
        d,
        lookup,
        |pair| interdomain::close(pair, port),
        |t| t.close_detached(d, d.domid(), port),
    )
}

/// `EVTCHNOP_send` on `port` of `d`. Returns the domain the event went to and what it must
/// do there.
pub fn send<'d, D: EvtchnDomain>(
    d: &'d D,
    port: u32,
    lookup: &impl Fn(DomId) -> Option<&'d D>,
) -> Result<Delivered, Errno> {
    with_peer(
        d,
        lookup,
        |pair| interdomain::send(pair, port),
        |_| {
            Ok(Delivered {
                dom: d.domid(),
                notify: Notify::NONE,
            })
        },
    )
}

/// `EVTCHNOP_reset` (`resuming`: `EVTCHNOP_reset_cont`) of `d`: closes every port, then a FIFO
/// domain goes back to 2-level and its FIFO pages are returned for release. `preempt` is asked
/// every 64 ports; when it says yes the reset stops with -ERESTART and resumes where it left
/// off when called again with `resuming`. -EBUSY if a reset is already in progress; -EAGAIN if
/// ports were bound while it ran. Whether the caller may reset `d` (-EINVAL unless it is the
/// caller's domain or paused by it, -ESRCH, XSM) is the caller's to check.
pub fn reset<'d, D: EvtchnDomain>(
    d: &'d D,
    resuming: bool,
    lookup: &impl Fn(DomId) -> Option<&'d D>,
    mut preempt: impl FnMut() -> bool,
) -> Result<Vec<GuestMem>, Errno> {
    let mut port = d.ports().lock().reset_start(resuming)?;
    loop {
        {
            let t = d.ports().lock();
            if !t.valid(port) || !t.has_active() {
                break;
            }
        }
        // Closing a closed port fails; that is expected here.
        let _ = close(d, port, lookup);
        if port.is_multiple_of(64) && preempt() {
            d.ports().lock().reset_suspend(port);
            return Err(Errno::ERESTART);
        }
        port += 1;
    }
    d.ports().lock().reset_finish()
}

/// Xen's `evtchn_destroy` for a dying domain: closes every port from the highest down, so
/// peers in other domains become unbound, and drops the FIFO state. Returns the FIFO pages for
/// release; must run before the domain's frames are freed.
pub fn destroy<'d, D: EvtchnDomain>(
    d: &'d D,
    lookup: &impl Fn(DomId) -> Option<&'d D>,
) -> Vec<GuestMem> {
    let top = d.ports().lock().valid_ports();
    for port in (1..top).rev() {
        let in_use = d
            .ports()
            .lock()
            .get(port)
            .is_some_and(|p| !matches!(p.state, PortState::Free | PortState::Reserved));
        if in_use {
            let _ = close(d, port, lookup);
        }
    }
    d.ports().lock().back_to_two_level()
}
