//! Event-channel ports: the per-domain port table and its state machine (Xen's
//! `xen/common/event_channel.c`). Delivery ABIs (2-level, FIFO) come with the multi-domain work.

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
}

/// `EVTCHNSTAT_*` values reported by `EVTCHNOP_status`.
pub mod stat {
    /// Closed (free or reserved).
    pub const CLOSED: u32 = 0;
    /// Unbound.
    pub const UNBOUND: u32 = 1;
    /// Bound to a VIRQ.
    pub const VIRQ: u32 = 4;
}

/// One port.
#[derive(Clone, Copy, Debug)]
pub struct Port {
    /// State.
    pub state: PortState,
    /// vCPU notified (`notify_vcpu_id`).
    pub notify_vcpu: u32,
}

/// A domain's ports.
pub struct PortTable {
    ports: Vec<Port>,
}

impl Default for PortTable {
    fn default() -> Self {
        Self::new()
    }
}

impl PortTable {
    /// A table with the first bucket valid and port 0 reserved.
    pub fn new() -> Self {
        let mut ports = alloc::vec![Port { state: PortState::Free, notify_vcpu: 0 }; PORTS_PER_BUCKET as usize];
        ports[0].state = PortState::Reserved;
        Self { ports }
    }

    /// Xen's `port_is_valid`.
    pub fn valid(&self, port: u32) -> bool {
        (port as usize) < self.ports.len()
    }

    /// The port, if valid.
    pub fn get(&self, port: u32) -> Option<&Port> {
        self.ports.get(port as usize)
    }

    /// Allocates the lowest free port, growing by a bucket when needed (`get_free_port`).
    pub fn alloc(&mut self, state: PortState) -> Result<u32, Errno> {
        if let Some(p) = self.ports.iter().position(|p| p.state == PortState::Free) {
            self.ports[p] = Port { state, notify_vcpu: 0 };
            return Ok(p as u32);
        }
        let n = self.ports.len() as u32;
        if n >= NR_PORTS_2L {
            return Err(Errno::ENOSPC);
        }
        self.ports.extend((0..PORTS_PER_BUCKET).map(|_| Port { state: PortState::Free, notify_vcpu: 0 }));
        self.ports[n as usize] = Port { state, notify_vcpu: 0 };
        Ok(n)
    }

    /// `EVTCHNOP_close` for a local port.
    pub fn close(&mut self, port: u32) -> Result<(), Errno> {
        let p = self.ports.get_mut(port as usize).ok_or(Errno::EINVAL)?;
        match p.state {
            PortState::Free | PortState::Reserved => Err(Errno::EINVAL),
            _ => {
                p.state = PortState::Free;
                p.notify_vcpu = 0;
                Ok(())
            }
        }
    }

    /// `EVTCHNOP_status`: (status, vcpu, union word).
    pub fn status(&self, port: u32) -> Result<(u32, u32, u32), Errno> {
        let p = self.get(port).ok_or(Errno::EINVAL)?;
        Ok(match p.state {
            PortState::Free | PortState::Reserved => (stat::CLOSED, p.notify_vcpu, 0),
            PortState::Unbound { remote } => (stat::UNBOUND, p.notify_vcpu, u32::from(remote)),
            PortState::Virq { virq } => (stat::VIRQ, p.notify_vcpu, virq),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_zero_is_reserved_and_allocation_is_lowest_first() {
        let mut t = PortTable::new();
        assert_eq!(t.status(0), Ok((stat::CLOSED, 0, 0)));
        assert_eq!(t.close(0), Err(Errno::EINVAL));
        assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Ok(1));
        assert_eq!(t.alloc(PortState::Unbound { remote: 3 }), Ok(2));
        assert_eq!(t.status(2), Ok((stat::UNBOUND, 0, 3)));
        assert_eq!(t.close(1), Ok(()));
        assert_eq!(t.status(1), Ok((stat::CLOSED, 0, 0)));
        assert_eq!(t.close(1), Err(Errno::EINVAL));
        assert_eq!(t.alloc(PortState::Virq { virq: 0 }), Ok(1));
    }

    #[test]
    fn validity_follows_buckets() {
        let mut t = PortTable::new();
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
        let mut t = PortTable::new();
        for _ in 1..NR_PORTS_2L {
            t.alloc(PortState::Unbound { remote: 0 }).unwrap();
        }
        assert_eq!(t.alloc(PortState::Unbound { remote: 0 }), Err(Errno::ENOSPC));
    }
}
