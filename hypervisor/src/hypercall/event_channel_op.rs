//! `HYPERVISOR_event_channel_op` (Xen's `do_event_channel_op`): the port-table operations.

use super::Ctx;
use crate::evtchn::PortState;
use crate::guest_mem::{copy_from_guest, copy_to_guest};
use xen_abi::errno::Errno;

use xen_abi::event_channel::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_bind_interdomain, EVTCHNOP_bind_ipi, EVTCHNOP_bind_virq,
    EVTCHNOP_close, EVTCHNOP_send, EVTCHNOP_status, EVTCHNOP_unmask,
};
use xen_abi::xen::DOMID_SELF;

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes([b[off], b[off + 1]])
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

/// `event_channel_op(cmd, arg)`.
pub fn do_event_channel_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    let resolve = |dom: u16| {
        if dom == DOMID_SELF {
            Ok(d.id)
        } else if dom == d.id {
            Ok(dom)
        } else {
            Err(Errno::ESRCH)
        }
    };
    match a[0] as u32 {
        EVTCHNOP_alloc_unbound => {
            // struct evtchn_alloc_unbound { domid_t dom, remote_dom; evtchn_port_t port; }
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, a[1])?;
            resolve(u16_at(&b, 0))?;
            let remote = match u16_at(&b, 2) {
                DOMID_SELF => d.id,
                r => r,
            };
            let port = d.evtchn.lock().alloc(PortState::Unbound { remote })?;
            copy_to_guest(a[1] + 4, &port.to_le_bytes())?;
            Ok(0)
        }
        EVTCHNOP_status => {
            // struct evtchn_status { domid_t dom; evtchn_port_t port; uint32_t status, vcpu;
            //                        union { ... } u; } (port at 4, status at 8, vcpu at 12, u at 16)
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, a[1])?;
            resolve(u16_at(&b, 0))?;
            let port = u32_at(&b, 4);
            let (status, vcpu, word, peer) = {
                let t = d.evtchn.lock();
                let (s, v, w) = t.status(port)?;
                (s, v, w, t.interdomain_peer(port).unwrap_or(0))
            };
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&status.to_le_bytes());
            out[4..8].copy_from_slice(&vcpu.to_le_bytes());
            out[8..12].copy_from_slice(&word.to_le_bytes());
            out[12..].copy_from_slice(&peer.to_le_bytes());
            copy_to_guest(a[1] + 8, &out)?;
            Ok(0)
        }
        EVTCHNOP_close => {
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let port = u32_at(&b, 0);
            d.evtchn.lock().close(d.id, port)?;
            // SAFETY: as for unmask; a closed port must not stay pending.
            unsafe { crate::pv::events::shared(ctx.vcpu).clear_pending(port) };
            Ok(0)
        }
        EVTCHNOP_bind_virq => {
            // struct evtchn_bind_virq { uint32_t virq, vcpu; evtchn_port_t port; }
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, a[1])?;
            let port = d.evtchn.lock().bind_virq(u32_at(&b, 0), u32_at(&b, 4))?;
            copy_to_guest(a[1] + 8, &port.to_le_bytes())?;
            Ok(0)
        }
        EVTCHNOP_bind_ipi => {
            // struct evtchn_bind_ipi { uint32_t vcpu; evtchn_port_t port; }
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let port = d.evtchn.lock().bind_ipi(u32_at(&b, 0))?;
            copy_to_guest(a[1] + 4, &port.to_le_bytes())?;
            Ok(0)
        }
        EVTCHNOP_bind_interdomain => {
            // struct evtchn_bind_interdomain { domid_t remote_dom; evtchn_port_t remote_port,
            //                                  local_port; } (remote_port at 4, local at 8)
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, a[1])?;
            resolve(u16_at(&b, 0))?;
            let port = d.evtchn.lock().bind_loopback(d.id, u32_at(&b, 4))?;
            copy_to_guest(a[1] + 8, &port.to_le_bytes())?;
            Ok(0)
        }
        EVTCHNOP_send => {
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let port = u32_at(&b, 0);
            if d.console.is_some_and(|c| c.port == port) {
                // The domU's console: the hypervisor is the backend at the other end.
                crate::console::ring::service(d);
                return Ok(0);
            }
            let target = d.evtchn.lock().send_target(d.id, port)?;
            if let Some((port, vcpu)) = target {
                match d.vcpus.get(vcpu as usize) {
                    Some(v) if v.id != ctx.vcpu.id => crate::pv::events::set_pending(v, port),
                    _ => crate::pv::events::set_pending(ctx.vcpu, port),
                };
            }
            Ok(0)
        }
        EVTCHNOP_unmask => {
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let port = u32_at(&b, 0);
            let notify = d.evtchn.lock().notify_vcpu(port).ok_or(Errno::EINVAL)?;
            match d.vcpus.get(notify as usize) {
                Some(v) if v.id != ctx.vcpu.id => crate::pv::events::unmask(v, port),
                _ => crate::pv::events::unmask(ctx.vcpu, port),
            }
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
