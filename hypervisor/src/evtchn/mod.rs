//! Event-channel ports: the per-domain port table and its state machine (Xen's
//! `xen/common/event_channel.c`), and the 2-level delivery ABI; FIFO comes with the
//! multi-domain work.

pub mod two_level;

use alloc::vec::Vec;
use xen_abi::errno::Errno;

/// Ports become valid in buckets, as in Xen (`EVTCHNS_PER_BUCKET`: a page of 64-byte
/// `struct evtchn`); a port beyond the allocated buckets is invalid (`-EINVAL`).
pub const PORTS_PER_BUCKET: u32 = 64;
/// Ports of the 2-level ABI for a 64-bit guest (`EVTCHN_2L_NR_CHANNELS`).
pub const NR_PORTS_2L: u32 = 4096;

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
        remote: u16,
    },
    /// `ECS_VIRQ`.
    Virq {
        /// The virtual IRQ.
        virq: u32,
    },
    /// `ECS_IPI`: an event a domain sends itself, to `notify_vcpu`.
    Ipi,
    /// `ECS_INTERDOMAIN`: connected to `port` of domain `dom` (possibly this domain).
    Interdomain {
        /// The remote domain.
        dom: u16,
        /// The remote port.
        port: u32,
    },
}

/// Whether a VIRQ is global (bound on vCPU 0 only) or per-vCPU (Xen's `virq_is_global`).
pub fn virq_is_global(virq: u32) -> bool {
    use xen_abi::xen::{VIRQ_DEBUG, VIRQ_TIMER, VIRQ_XENOPROF, VIRQ_XENPMU};
    !matches!(virq, VIRQ_TIMER | VIRQ_DEBUG | VIRQ_XENOPROF | VIRQ_XENPMU)
}

/// `EVTCHNSTAT_*` values reported by `EVTCHNOP_status`.
pub mod stat {
    /// Closed (free or reserved).
    pub const CLOSED: u32 = 0;
    /// Unbound.
    pub const UNBOUND: u32 = 1;
    /// Connected to another port.
    pub const INTERDOMAIN: u32 = 2;
    /// Bound to a VIRQ.
    pub const VIRQ: u32 = 4;
    /// An IPI port.
    pub const IPI: u32 = 5;
}

/// One port.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// State.
    pub state: PortState,
    /// vCPU notified (`notify_vcpu_id`).
    pub notify_vcpu: u32,
}

/// A domain's ports, and each vCPU's VIRQ bindings (`virq_to_evtchn`).
pub struct PortTable {
    ports: Vec<Port>,
    virqs: Vec<[u32; xen_abi::xen::NR_VIRQS as usize]>,
}

impl Default for PortTable {
    fn default() -> Self {
        Self::new(1)
    }
}

impl PortTable {
    /// A table for `nr_vcpus` vCPUs with the first bucket valid and port 0 reserved.
    pub fn new(nr_vcpus: u32) -> Self {
        let mut ports =
            alloc::vec![Port { state: PortState::Free, notify_vcpu: 0 }; PORTS_PER_BUCKET as usize];
        ports[0].state = PortState::Reserved;
        let virqs = alloc::vec![[0; xen_abi::xen::NR_VIRQS as usize]; nr_vcpus as usize];
        Self { ports, virqs }
    }

    /// The port bound to `virq` on `vcpu`, if any.
    pub fn virq_port(&self, vcpu: u32, virq: u32) -> Option<u32> {
        let p = *self.virqs.get(vcpu as usize)?.get(virq as usize)?;
        (p != 0).then_some(p)
    }

    /// `EVTCHNOP_bind_virq`.
    pub fn bind_virq(&mut self, virq: u32, vcpu: u32) -> Result<u32, Errno> {
        if virq >= xen_abi::xen::NR_VIRQS || (virq_is_global(virq) && vcpu != 0) {
            return Err(Errno::EINVAL);
        }
        if vcpu as usize >= self.virqs.len() {
            return Err(Errno::ENOENT);
        }
        if self.virqs[vcpu as usize][virq as usize] != 0 {
            return Err(Errno::EEXIST);
        }
        let port = self.alloc(PortState::Virq { virq })?;
        self.ports[port as usize].notify_vcpu = vcpu;
        self.virqs[vcpu as usize][virq as usize] = port;
        Ok(port)
    }

    /// `EVTCHNOP_bind_ipi`.
    pub fn bind_ipi(&mut self, vcpu: u32) -> Result<u32, Errno> {
        if vcpu as usize >= self.virqs.len() {
            return Err(Errno::ENOENT);
        }
        let port = self.alloc(PortState::Ipi)?;
        self.ports[port as usize].notify_vcpu = vcpu;
        Ok(port)
    }

    /// `EVTCHNOP_bind_interdomain` with both ends in this domain (`self_id`): connects a new
    /// port to `remote_port`, which must be unbound and offered to this domain.
    pub fn bind_loopback(&mut self, self_id: u16, remote_port: u32) -> Result<u32, Errno> {
        match self.get(remote_port).map(|p| p.state) {
            Some(PortState::Unbound { remote }) if remote == self_id => {}
            _ => return Err(Errno::EINVAL),
        }
        let local = self.alloc(PortState::Interdomain {
            dom: self_id,
            port: remote_port,
        })?;
        self.ports[remote_port as usize].state = PortState::Interdomain {
            dom: self_id,
            port: local,
        };
        Ok(local)
    }

    /// The port an event sent on `port` is delivered to, with the vCPU to notify
    /// (`EVTCHNOP_send`): `Ok(None)` for an unbound port (nothing happens).
    pub fn send_target(&self, self_id: u16, port: u32) -> Result<Option<(u32, u32)>, Errno> {
        let p = self.get(port).ok_or(Errno::EINVAL)?;
        match p.state {
            PortState::Ipi => Ok(Some((port, p.notify_vcpu))),
            PortState::Interdomain { dom, port: rport } if dom == self_id => {
                Ok(Some((rport, self.ports[rport as usize].notify_vcpu)))
            }
            PortState::Unbound { .. } => Ok(None),
            _ => Err(Errno::EINVAL),
        }
    }

    /// Xen's `port_is_valid`.
    pub fn valid(&self, port: u32) -> bool {
        (port as usize) < self.ports.len()
    }

    /// The vCPU a valid port notifies (`notify_vcpu_id`).
    pub fn notify_vcpu(&self, port: u32) -> Option<u32> {
        self.get(port).map(|p| p.notify_vcpu)
    }

    /// The port, if valid.
    pub fn get(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    /// Allocates the lowest free port, growing by a bucket when needed (`get_free_port`).
    pub fn alloc(&mut self, state: PortState) -> Result<u32, Errno> {
        if let Some(p) = self.ports.iter().position(|p| p.state == PortState::Free) {
            self.ports[p] = Port {
                state,
                notify_vcpu: 0,
            };
            return Ok(p as u32);
        }
        let n = self.ports.len() as u32;
        if n >= NR_PORTS_2L {
            return Err(Errno::ENOSPC);
        }
        self.ports.extend((0..PORTS_PER_BUCKET).map(|_| Port {
            state: PortState::Free,
            notify_vcpu: 0,
        }));
        self.ports[n as usize] = Port {
            state,
            notify_vcpu: 0,
        };
        Ok(n)
    }

    /// `EVTCHNOP_close` for a local port. A loopback peer goes back to unbound, offered to
    /// this domain again, as Xen's `evtchn_close` leaves it.
    pub fn close(&mut self, self_id: u16, port: u32) -> Result<(), Errno> {
        let p = *self.ports.get(port as usize).ok_or(Errno::EINVAL)?;
        match p.state {
            PortState::Free | PortState::Reserved => return Err(Errno::EINVAL),
            PortState::Virq { virq } => {
                if let Some(v) = self.virqs.get_mut(p.notify_vcpu as usize) {
                    v[virq as usize] = 0;
                }
            }
            PortState::Interdomain { dom, port: rport } if dom == self_id => {
                self.ports[rport as usize].state = PortState::Unbound { remote: self_id };
            }
            _ => {}
        }
        self.ports[port as usize] = Port {
            state: PortState::Free,
            notify_vcpu: 0,
        };
        Ok(())
    }

    /// The remote port of an interdomain port (the second word of `evtchn_status.u`).
    pub fn interdomain_peer(&self, port: u32) -> Option<u32> {
        match self.get(port)?.state {
            PortState::Interdomain { port, .. } => Some(port),
            _ => None,
        }
    }

    /// `EVTCHNOP_status`: (status, vcpu, first union word).
    pub fn status(&self, port: u32) -> Result<(u32, u32, u32), Errno> {
        let p = self.get(port).ok_or(Errno::EINVAL)?;
        Ok(match p.state {
            PortState::Free | PortState::Reserved => (stat::CLOSED, p.notify_vcpu, 0),
            PortState::Unbound { remote } => (stat::UNBOUND, p.notify_vcpu, u32::from(remote)),
            PortState::Virq { virq } => (stat::VIRQ, p.notify_vcpu, virq),
            PortState::Ipi => (stat::IPI, p.notify_vcpu, 0),
            // The union's interdomain view is { domid_t dom; evtchn_port_t port; }: the port
            // lives in the second word (`interdomain_peer`).
            PortState::Interdomain { dom, .. } => {
                (stat::INTERDOMAIN, p.notify_vcpu, u32::from(dom))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_reserved_and_allocation_is_lowest_first() {
        let mut t = PortTable::new(1);
        assert_eq!(t.status(0), Ok((stat::CLOSED, 0, 0)));
        assert_eq!(t.close(0, 0), Err(Errno::EINVAL));
        assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Ok(1));
        assert_eq!(t.alloc(PortState::Unbound { remote: 3 }), Ok(2));
        assert_eq!(t.status(2), Ok((stat::UNBOUND, 0, 3)));
        assert_eq!(t.close(0, 1), Ok(()));
        assert_eq!(t.status(1), Ok((stat::CLOSED, 0, 0)));
        assert_eq!(t.close(0, 1), Err(Errno::EINVAL));
        assert_eq!(t.alloc(PortState::Virq { virq: 0 }), Ok(1));
    }

    #[test]
    fn validity_follows_buckets() {
        let mut t = PortTable::new(1);
        assert!(t.valid(63) && !t.valid(64));
        assert_eq!(t.status(4000), Err(Errno::EINVAL));
        for _ in 1..64 {
            t.alloc(PortState::Unbound { remote: 0 }).unwrap();
        }
        assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Ok(64));
        assert!(t.valid(127) && !t.valid(128));
    }

    #[test]
    fn table_is_bounded() {
        let mut t = PortTable::new(1);
        for _ in 1..NR_PORTS_2L {
            t.alloc(PortState::Unbound { remote: 0 }).unwrap();
        }
        assert_eq!(
            t.alloc(PortState::Unbound { remote: 0 }),
            Err(Errno::ENOSPC)
        );
    }

    #[test]
    fn virq_bindings_follow_xen_rules() {
        use xen_abi::xen::{VIRQ_CONSOLE, VIRQ_TIMER};
        let mut t = PortTable::new(2);
        let p = t.bind_virq(VIRQ_TIMER, 1).unwrap();
        assert_eq!(t.virq_port(1, VIRQ_TIMER), Some(p));
        assert_eq!(t.bind_virq(VIRQ_TIMER, 1), Err(Errno::EEXIST));
        assert_eq!(
            t.bind_virq(VIRQ_CONSOLE, 1),
            Err(Errno::EINVAL),
            "global VIRQs on vCPU 0 only"
        );
        assert_eq!(t.bind_virq(VIRQ_TIMER, 2), Err(Errno::ENOENT));
        assert_eq!(t.bind_virq(24, 0), Err(Errno::EINVAL));
        assert_eq!(t.status(p), Ok((stat::VIRQ, 1, VIRQ_TIMER)));
        t.close(0, p).unwrap();
        assert_eq!(t.virq_port(1, VIRQ_TIMER), None);
        assert!(t.bind_virq(VIRQ_TIMER, 1).is_ok(), "rebinding after close");
    }

    #[test]
    fn loopback_interdomain_and_ipi_send_targets() {
        let mut t = PortTable::new(1);
        let a = t.alloc(PortState::Unbound { remote: 0 }).unwrap();
        assert_eq!(
            t.send_target(0, a),
            Ok(None),
            "sending on an unbound port does nothing"
        );
        assert_eq!(t.bind_loopback(0, 9), Err(Errno::EINVAL));
        let b = t.bind_loopback(0, a).unwrap();
        assert_eq!(t.send_target(0, b), Ok(Some((a, 0))));
        assert_eq!(t.send_target(0, a), Ok(Some((b, 0))));
        assert_eq!(t.status(b), Ok((stat::INTERDOMAIN, 0, 0)));
        assert_eq!(t.interdomain_peer(b), Some(a));
        assert_eq!(
            t.bind_loopback(0, a),
            Err(Errno::EINVAL),
            "already connected"
        );
        t.close(0, b).unwrap();
        assert_eq!(
            t.status(a).unwrap().0,
            stat::UNBOUND,
            "the peer is offered again"
        );
        let i = t.bind_ipi(0).unwrap();
        assert_eq!(t.send_target(0, i), Ok(Some((i, 0))));
        assert_eq!(t.bind_ipi(3), Err(Errno::ENOENT));
        assert_eq!(t.send_target(0, 4000), Err(Errno::EINVAL));
    }
}
