//! `HYPERVISOR_sched_op` (Xen's `do_sched_op`, `xen/common/sched/core.c`).

use super::Ctx;
use crate::guest_mem::read_guest;
use alloc::vec::Vec;
use xen_abi::errno::Errno;

use xen_abi::sched::{
    SCHEDOP_block, SCHEDOP_poll, SCHEDOP_remote_shutdown, SCHEDOP_shutdown, SCHEDOP_shutdown_code,
    SCHEDOP_yield,
};

/// `sched_op(cmd, arg)`.
pub fn do_sched_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    // `cmd` is an `int` in Xen.
    match a[0] as u32 {
        SCHEDOP_yield => {
            ctx.regs.rax = 0;
            crate::sched::yield_now(ctx.vcpu, ctx.regs);
            Ok(0)
        }
        SCHEDOP_block => {
            // vcpu_block_enable_events: unmask, then sleep until an upcall is due. Timers
            // raise the guest's events meanwhile; delivery happens on the way back in.
            crate::domain::set_upcall_mask(ctx.vcpu, 0);
            ctx.regs.rax = 0;
            crate::sched::block(ctx.vcpu, ctx.regs, Vec::new(), u64::MAX);
            Ok(0)
        }
        SCHEDOP_poll => {
            // struct sched_poll { evtchn_port_t *ports; unsigned nr_ports; uint64_t timeout; }
            let mut b = [0u8; 24];
            crate::guest_mem::copy_from_guest(&mut b, a[1])?;
            let ports = u64::from_le_bytes(b[..8].try_into().unwrap_or_default());
            let nr = u32::from_le_bytes(b[8..12].try_into().unwrap_or_default());
            let timeout = u64::from_le_bytes(b[16..24].try_into().unwrap_or_default());
            if nr > 128 {
                return Err(Errno::EINVAL);
            }
            let mut list = alloc::vec![0u8; nr as usize * 4];
            crate::guest_mem::copy_from_guest(&mut list, ports)?;
            let ports: Vec<u32> = list
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if ports
                .iter()
                .any(|&p| !ctx.vcpu.domain().evtchn.lock().valid(p))
            {
                return Err(Errno::EINVAL);
            }
            let deadline = if timeout == 0 { u64::MAX } else { timeout };
            // Raising any event in the domain kicks a polling vCPU (Xen's `poll_mask`).
            ctx.regs.rax = 0;
            crate::sched::block(ctx.vcpu, ctx.regs, ports, deadline);
            Ok(0)
        }
        SCHEDOP_shutdown => {
            let reason: u32 = read_guest(a[1])?;
            crate::domain::shutdown(ctx.vcpu, ctx.regs, reason);
            Ok(0)
        }
        SCHEDOP_remote_shutdown => {
            // struct sched_remote_shutdown { domid_t domain_id; unsigned int reason; }
            let mut b = [0u8; 8];
            crate::guest_mem::copy_from_guest(&mut b, a[1])?;
            let target = u16::from_le_bytes([b[0], b[1]]);
            let reason = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            let me = ctx.vcpu.domain();
            if target == me.id {
                // A domain may not target itself this way.
                return Err(Errno::EPERM);
            }
            let d = crate::domain::registry::get_live(target).ok_or(Errno::ESRCH)?;
            // XSM's default: only the control domain (or the target's device model).
            if !me.privileged {
                return Err(Errno::EPERM);
            }
            crate::domain::shutdown_remote(d, reason);
            Ok(0)
        }
        SCHEDOP_shutdown_code => {
            let _reason: u32 = read_guest(a[1])?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
