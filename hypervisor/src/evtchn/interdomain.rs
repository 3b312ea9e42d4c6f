//! Operations on a connection between two ports, possibly of two domains (Xen's
//! `evtchn_bind_interdomain`, `evtchn_close` and `evtchn_send`).
//!
//! They take a [`Pair`]: the caller's domain and, when the other end is in another domain, that
//! domain too, each with its table locked. **Lock order**: when two tables are held, the one of
//! the lower domain id was locked first, so two CPUs connecting, closing or sending across the
//! same two domains in opposite directions cannot deadlock. (Xen's `evtchn_bind_interdomain`
//! and `evtchn_close` take the two `event_lock`s in one fixed order too; theirs compares
//! `struct domain` addresses although the comment says "smaller id".) [`super::ops`] takes the
//! locks in that order.
//!
//! Close and send may find that the port is connected to a domain whose table the caller did
//! not lock ([`PairError::PeerNotLocked`]): the caller then locks both and calls again. If the
//! port's peer changed once more in between, the port was closed and re-bound meanwhile, and
//! the second call fails with -EINVAL, as Xen's `evtchn_close` does in that race.

use super::PortState;
use super::abi::Notify;
use super::guest::EventMemory;
use super::table::PortTable;
use xen_abi::DomId;
use xen_abi::errno::Errno;

/// One locked domain: its id, its table and its guest memory.
pub struct Side<'a> {
    /// The domain id.
    pub id: DomId,
    /// Its port table, locked by the caller.
    pub table: &'a mut PortTable,
    /// Its `shared_info` and `vcpu_info`s.
    pub mem: &'a dyn EventMemory,
}

/// The tables an operation may touch.
pub enum Pair<'a> {
    /// Only the caller's domain: loopback connections, and every port that is not connected to
    /// another domain.
    Same(Side<'a>),
    /// The caller's domain and another one, both locked (lower domain id first).
    Two {
        /// The caller's domain.
        local: Side<'a>,
        /// The other domain.
        remote: Side<'a>,
    },
}

impl<'a> Pair<'a> {
    /// The caller's side.
    pub fn local(&mut self) -> &mut Side<'a> {
        match self {
            Pair::Same(s) | Pair::Two { local: s, .. } => s,
        }
    }
}

/// Why a two-domain operation could not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairError {
    /// The hypercall fails with this errno.
    Errno(Errno),
    /// The port is connected to this domain, whose table is not in the pair: lock both (lower
    /// id first) and call again.
    PeerNotLocked(DomId),
}

impl From<Errno> for PairError {
    fn from(e: Errno) -> Self {
        PairError::Errno(e)
    }
}

impl PairError {
    /// The errno for a caller that will not retry: a peer it did not lock counts as a port
    /// that changed under it (-EINVAL).
    pub fn errno(self) -> Errno {
        match self {
            PairError::Errno(e) => e,
            PairError::PeerNotLocked(_) => Errno::EINVAL,
        }
    }
}

/// `EVTCHNOP_bind_interdomain`: connects a new port of the local domain to `remote_port` of
/// the pair's remote domain (`Same`: of the local domain itself). The remote port must be
/// unbound and offered to the local domain, else -EINVAL; -ENOSPC (checked first) when the
/// local domain has no free port. Returns the local port and the notification for the local
/// domain: Xen conservatively raises the new port, since events sent to the remote port while
/// it was unbound were dropped.
///
/// The remote domain's existence (-ESRCH) and `DOMID_SELF` are the caller's to resolve.
pub fn bind_interdomain(pair: &mut Pair<'_>, remote_port: u32) -> Result<(u32, Notify), Errno> {
    let lport = connect(pair, remote_port)?;
    let local = pair.local();
    let vcpu = local.table.notify_vcpu(lport).unwrap_or(0);
    Ok((lport, local.table.raise(local.mem, lport, vcpu)))
}

/// The state change of [`bind_interdomain`], without its notification.
pub(crate) fn connect(pair: &mut Pair<'_>, remote_port: u32) -> Result<u32, Errno> {
    let (local, mut remote) = match pair {
        Pair::Same(s) => (s, None),
        Pair::Two { local, remote } => (local, Some(remote)),
    };
    let lport = local.table.find_free()?;
    let remote_id = remote.as_ref().map_or(local.id, |r| r.id);
    let rtable: &PortTable = match &remote {
        Some(r) => r.table,
        None => local.table,
    };
    match rtable.get(remote_port).map(|p| p.state) {
        Some(PortState::Unbound { remote }) if remote == local.id => {}
        _ => return Err(Errno::EINVAL),
    }
    local.table.install(
        lport,
        PortState::Interdomain {
            dom: remote_id,
            port: remote_port,
        },
        0,
    );
    let peer_state = PortState::Interdomain {
        dom: local.id,
        port: lport,
    };
    match &mut remote {
        Some(r) => r.table.set_state(remote_port, peer_state),
        None => local.table.set_state(remote_port, peer_state),
    }
    Ok(lport)
}

/// `EVTCHNOP_close` of `port` of the local domain. -EINVAL for an invalid, free or reserved
/// port. A VIRQ port loses its binding; an interdomain port's peer goes back to unbound,
/// offered to the closing domain again (so it can re-bind); the port itself is freed with its
/// pending state cleared.
pub fn close(pair: &mut Pair<'_>, port: u32) -> Result<(), PairError> {
    let state = pair
        .local()
        .table
        .get(port)
        .map(|p| p.state)
        .ok_or(Errno::EINVAL)?;
    match state {
        PortState::Free | PortState::Reserved => return Err(Errno::EINVAL.into()),
        PortState::Unbound { .. } | PortState::Ipi | PortState::Pirq { .. } => {}
        PortState::Virq { virq } => pair.local().table.unbind_virq(port, virq),
        PortState::Interdomain { dom, port: rport } => {
            let local_id = pair.local().id;
            let peer = peer_side(pair, dom)?;
            let back = PortState::Interdomain {
                dom: local_id,
                port,
            };
            // Both ends always point at each other (Xen BUG()s otherwise); never rewrite a
            // port that belongs to some other connection.
            if peer.table.get(rport).map(|p| p.state) == Some(back) {
                peer.table
                    .set_state(rport, PortState::Unbound { remote: local_id });
            } else {
                debug_assert!(false, "interdomain port {port} and its peer disagree");
            }
        }
    }
    let local = pair.local();
    local.table.free(local.mem, port);
    Ok(())
}

/// An event sent on a port: the domain it was raised in and what that domain must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The domain the event went to (the local one for IPIs, loopback and dropped events).
    pub dom: DomId,
    /// What to do in that domain.
    pub notify: Notify,
}

/// `EVTCHNOP_send` on `port` of the local domain: an IPI port raises itself on its vCPU; an
/// interdomain port raises its peer on the peer's notify vCPU; an unbound port drops the event;
/// anything else (and an invalid port) is -EINVAL.
pub fn send(pair: &mut Pair<'_>, port: u32) -> Result<Delivered, PairError> {
    let local = pair.local();
    let (local_id, p) = (local.id, *local.table.get(port).ok_or(Errno::EINVAL)?);
    match p.state {
        PortState::Ipi => {
            let notify = local.table.raise(local.mem, port, p.notify_vcpu);
            Ok(Delivered {
                dom: local_id,
                notify,
            })
        }
        PortState::Unbound { .. } => Ok(Delivered {
            dom: local_id,
            notify: Notify::NONE,
        }),
        PortState::Interdomain { dom, port: rport } => {
            let peer = peer_side(pair, dom)?;
            let vcpu = peer.table.notify_vcpu(rport).unwrap_or(0);
            let notify = peer.table.raise(peer.mem, rport, vcpu);
            Ok(Delivered { dom, notify })
        }
        _ => Err(Errno::EINVAL.into()),
    }
}

/// The side of domain `dom` (the peer of a local port): the local side for a loopback
/// connection, the remote side if it is `dom`.
fn peer_side<'p, 'a>(pair: &'p mut Pair<'a>, dom: DomId) -> Result<&'p mut Side<'a>, PairError> {
    match pair {
        Pair::Same(s) if s.id == dom => Ok(s),
        Pair::Two { local, .. } if local.id == dom => Ok(local),
        Pair::Two { remote, .. } if remote.id == dom => Ok(remote),
        _ => Err(PairError::PeerNotLocked(dom)),
    }
}
