//! Event channels: `event_channel.h` (`HYPERVISOR_event_channel_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

/// `evtchn_port_t`.
pub type EvtchnPort = u32;

/// `EVTCHNOP_bind_interdomain`.
pub const EVTCHNOP_bind_interdomain: u32 = 0;
/// `EVTCHNOP_bind_virq`.
pub const EVTCHNOP_bind_virq: u32 = 1;
/// `EVTCHNOP_bind_pirq`.
pub const EVTCHNOP_bind_pirq: u32 = 2;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_close: u32 = 3;
/// `EVTCHNOP_send`.
pub const EVTCHNOP_send: u32 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_status: u32 = 5;
/// `EVTCHNOP_alloc_unbound`.
pub const EVTCHNOP_alloc_unbound: u32 = 6;
/// `EVTCHNOP_bind_ipi`.
pub const EVTCHNOP_bind_ipi: u32 = 7;
/// `EVTCHNOP_bind_vcpu`.
pub const EVTCHNOP_bind_vcpu: u32 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_unmask: u32 = 9;
/// `EVTCHNOP_reset`.
pub const EVTCHNOP_reset: u32 = 10;
/// `EVTCHNOP_init_control`: switch to the FIFO ABI.
pub const EVTCHNOP_init_control: u32 = 11;
/// `EVTCHNOP_expand_array`: add a FIFO event-array page.
pub const EVTCHNOP_expand_array: u32 = 12;
/// `EVTCHNOP_set_priority`.
pub const EVTCHNOP_set_priority: u32 = 13;
/// `EVTCHNOP_reset_cont`: Xen-internal continuation of reset (`__XEN__` only).
pub const EVTCHNOP_reset_cont: u32 = 14;

/// `struct evtchn_alloc_unbound`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnAllocUnbound {
    /// IN: domain to allocate in (DOMID_SELF unless privileged).
    pub dom: DomId,
    /// IN: domain allowed to bind.
    pub remote_dom: DomId,
    /// OUT: allocated port.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnAllocUnbound, 8, dom @ 0, remote_dom @ 2, port @ 4);

/// `struct evtchn_bind_interdomain`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    /// IN.
    pub remote_dom: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// IN.
    pub remote_port: EvtchnPort,
    /// OUT.
    pub local_port: EvtchnPort,
}
assert_layout!(EvtchnBindInterdomain, 12, remote_dom @ 0, remote_port @ 4, local_port @ 8);

/// `struct evtchn_bind_virq`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindVirq {
    /// IN: `VIRQ_*`.
    pub virq: u32,
    /// IN.
    pub vcpu: u32,
    /// OUT.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnBindVirq, 12, virq @ 0, vcpu @ 4, port @ 8);

/// `BIND_PIRQ__WILL_SHARE`: `evtchn_bind_pirq.flags`.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

/// `struct evtchn_bind_pirq`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindPirq {
    /// IN.
    pub pirq: u32,
    /// IN: `BIND_PIRQ__*`.
    pub flags: u32,
    /// OUT.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnBindPirq, 12, pirq @ 0, flags @ 4, port @ 8);

/// `struct evtchn_bind_ipi`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindIpi {
    /// IN.
    pub vcpu: u32,
    /// OUT.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnBindIpi, 8, vcpu @ 0, port @ 4);

/// `struct evtchn_close`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnClose {
    /// IN.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnClose, 4, port @ 0);

/// `struct evtchn_send`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnSend {
    /// IN.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnSend, 4, port @ 0);

/// `EVTCHNSTAT_closed`: channel not in use.
pub const EVTCHNSTAT_closed: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for an interdomain connection.
pub const EVTCHNSTAT_unbound: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to a remote domain.
pub const EVTCHNSTAT_interdomain: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to a physical IRQ.
pub const EVTCHNSTAT_pirq: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to a virtual IRQ.
pub const EVTCHNSTAT_virq: u32 = 4;
/// `EVTCHNSTAT_ipi`: bound to a virtual IPI.
pub const EVTCHNSTAT_ipi: u32 = 5;

/// `struct evtchn_status`. The OUT union `u` is kept raw; see the accessors.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnStatus {
    /// IN.
    pub dom: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// IN.
    pub port: EvtchnPort,
    /// OUT: `EVTCHNSTAT_*`.
    pub status: u32,
    /// OUT: vCPU the channel notifies.
    pub vcpu: u32,
    /// OUT: `union { unbound; interdomain; pirq; virq; }`, raw.
    pub u: [u32; 2],
}
assert_layout!(EvtchnStatus, 24, dom @ 0, port @ 4, status @ 8, vcpu @ 12, u @ 16);

impl EvtchnStatus {
    fn u_u16_at0(&self) -> u16 {
        let b = self.u[0].to_ne_bytes();
        u16::from_ne_bytes([b[0], b[1]])
    }

    fn set_u_u16_at0(&mut self, v: u16) {
        let mut b = self.u[0].to_ne_bytes();
        b[..2].copy_from_slice(&v.to_ne_bytes());
        self.u[0] = u32::from_ne_bytes(b);
    }

    /// `u.unbound.dom`.
    pub fn unbound_dom(&self) -> DomId {
        self.u_u16_at0()
    }

    /// Set `u.unbound.dom`.
    pub fn set_unbound(&mut self, dom: DomId) {
        self.set_u_u16_at0(dom);
    }

    /// `u.interdomain` as `(dom, port)`.
    pub fn interdomain(&self) -> (DomId, EvtchnPort) {
        (self.u_u16_at0(), self.u[1])
    }

    /// Set `u.interdomain` (its `_pad` is written as 0).
    pub fn set_interdomain(&mut self, dom: DomId, port: EvtchnPort) {
        self.u[0] = 0;
        self.set_u_u16_at0(dom);
        self.u[1] = port;
    }

    /// `u.pirq`.
    pub const fn pirq(&self) -> u32 {
        self.u[0]
    }

    /// `u.virq`.
    pub const fn virq(&self) -> u32 {
        self.u[0]
    }
}

/// `struct evtchn_bind_vcpu`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnBindVcpu {
    /// IN.
    pub port: EvtchnPort,
    /// IN.
    pub vcpu: u32,
}
assert_layout!(EvtchnBindVcpu, 8, port @ 0, vcpu @ 4);

/// `struct evtchn_unmask`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnUnmask {
    /// IN.
    pub port: EvtchnPort,
}
assert_layout!(EvtchnUnmask, 4, port @ 0);

/// `struct evtchn_reset`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnReset {
    /// IN.
    pub dom: DomId,
}
assert_layout!(EvtchnReset, 2, dom @ 0);

/// `struct evtchn_init_control`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnInitControl {
    /// IN: GFN of the page holding the control block.
    pub control_gfn: u64,
    /// IN: offset of the control block in that page.
    pub offset: u32,
    /// IN.
    pub vcpu: u32,
    /// OUT: `EVTCHN_FIFO_LINK_BITS` supported.
    pub link_bits: u8,
    /// Padding.
    pub _pad: [u8; 7],
}
assert_layout!(EvtchnInitControl, 24, control_gfn @ 0, offset @ 8, vcpu @ 12, link_bits @ 16);

/// `struct evtchn_expand_array`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnExpandArray {
    /// IN: GFN of the new event-array page.
    pub array_gfn: u64,
}
assert_layout!(EvtchnExpandArray, 8, array_gfn @ 0);

/// `struct evtchn_set_priority`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnSetPriority {
    /// IN.
    pub port: EvtchnPort,
    /// IN: 0 (highest) .. 15 (lowest).
    pub priority: u32,
}
assert_layout!(EvtchnSetPriority, 8, port @ 0, priority @ 4);

/// `struct evtchn_op`: argument of the pre-0x00030202
/// `HYPERVISOR_event_channel_op_compat`; `u` is the largest member's bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnOp {
    /// `EVTCHNOP_*`.
    pub cmd: u32,
    /// Union of the op structures (max `evtchn_status`, 24 bytes, 4-aligned).
    pub u: [u32; 6],
}
assert_layout!(EvtchnOp, 28, cmd @ 0, u @ 4);

// ---------------------------------------------------------------------------
// 2-level ABI.

/// `EVTCHN_2L_NR_CHANNELS`: `sizeof(xen_ulong_t)^2 * 64` = 4096 on x86_64.
pub const EVTCHN_2L_NR_CHANNELS: u32 = 8 * 8 * 64;

// ---------------------------------------------------------------------------
// FIFO ABI.

/// `EVTCHN_FIFO_PRIORITY_MAX`.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`.
pub const EVTCHN_FIFO_MAX_QUEUES: usize = EVTCHN_FIFO_PRIORITY_MIN as usize + 1;

/// `event_word_t`.
pub type EventWord = u32;

/// `EVTCHN_FIFO_PENDING`: bit number in an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`.
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`.
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_BITS`.
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_LINK_MASK`.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_NR_CHANNELS`.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_fifo_control_block`: per-vCPU FIFO queue heads.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct EvtchnFifoControlBlock {
    /// Bitmap of queues with events ready.
    pub ready: u32,
    /// Reserved.
    pub _rsvd: u32,
    /// Head port of each priority queue.
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES],
}
assert_layout!(EvtchnFifoControlBlock, 72, ready @ 0, _rsvd @ 4, head @ 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_union() {
        let mut s = EvtchnStatus {
            status: EVTCHNSTAT_interdomain,
            ..Default::default()
        };
        s.set_interdomain(7, 42);
        assert_eq!(s.interdomain(), (7, 42));
        assert_eq!(&s.as_bytes()[16..18], &7u16.to_ne_bytes());
        assert_eq!(&s.as_bytes()[18..20], &[0, 0]);
        assert_eq!(&s.as_bytes()[20..24], &42u32.to_ne_bytes());

        let mut s = EvtchnStatus::default();
        s.set_unbound(3);
        assert_eq!(s.unbound_dom(), 3);
        s.u[0] = 9;
        assert_eq!((s.pirq(), s.virq()), (9, 9));
    }

    #[test]
    fn fifo_constants() {
        assert_eq!(EVTCHN_FIFO_NR_CHANNELS, 131072);
        assert_eq!(EVTCHN_FIFO_LINK_MASK, 0x1ffff);
        assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);
    }
}
