//! `HYPERVISOR_sched_op` (Xen's `do_sched_op`, `xen/common/sched/core.c`).

use super::Ctx;
use crate::guest_mem::read_guest;
use core::sync::atomic::Ordering;
use xen_abi::errno::Errno;

use xen_abi::sched::{
    SCHEDOP_block, SCHEDOP_poll, SCHEDOP_remote_shutdown, SCHEDOP_shutdown, SCHEDOP_shutdown_code,
    SCHEDOP_yield,
};

/// `sched_op(cmd, arg)`.
pub fn do_sched_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    // `cmd` is an `int` in Xen.
    match a[0] as u32 {
        // One vCPU per pCPU (pinned): there is nothing else to yield to.
        SCHEDOP_yield => Ok(0),
        SCHEDOP_block => {
            // vcpu_block_enable_events: unmask, then sleep until an upcall is due. Timer
            // interrupts raise the guest's events meanwhile; delivery happens on the way out.
            crate::domain::set_upcall_mask(ctx.vcpu, 0);
            wait_until(ctx, u64::MAX, crate::pv::events::upcall_due);
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
            let ports: alloc::vec::Vec<u32> = list
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
            let shared = crate::pv::events::shared(ctx.vcpu);
            let pending = move |p: u32| {
                // SAFETY: the domain's shared_info is live; every port was checked valid.
                unsafe { shared.is_pending(p) }
            };
            // Raising any event in the domain now kicks this vCPU (Xen's `poll_mask`).
            ctx.vcpu.polling.store(true, Ordering::SeqCst);
            wait_until(ctx, deadline, |_| ports.iter().any(|&p| pending(p)));
            ctx.vcpu.polling.store(false, Ordering::SeqCst);
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

/// Halts until `done` holds or system time reaches `deadline`, taking timer interrupts.
fn wait_until(ctx: &mut Ctx<'_>, deadline: u64, done: impl Fn(&crate::domain::Vcpu) -> bool) {
    let mut armed = false;
    // Runstate: running until now, blocked while waiting.
    let start = crate::pv::time::now();
    let pv = &mut ctx.vcpu.pv;
    pv.time_running += start.saturating_sub(pv.runstate_entry);
    pv.runstate_entry = start;
    ctx.vcpu.blocked.store(true, Ordering::Relaxed);
    loop {
        // A vCPU taken down (or whose domain stopped) leaves at once; the way back to the
        // guest then parks this CPU.
        if done(ctx.vcpu) || !crate::sched::runnable(ctx.vcpu) {
            break;
        }
        let now = crate::pv::time::now();
        if now >= deadline {
            break;
        }
        if deadline != u64::MAX && !armed {
            // A poll timeout: make sure a timer interrupt comes by then.
            let d = deadline
                .min(ctx.vcpu.pv.timer_deadline)
                .min(ctx.vcpu.pv.periodic_next);
            crate::time::arm_oneshot_ns(d.saturating_sub(now).max(1000));
            armed = true;
        }
        xenolith_arch::cpu::idle_halt();
        x86_64::instructions::interrupts::disable();
    }
    ctx.vcpu.blocked.store(false, Ordering::Relaxed);
    let end = crate::pv::time::now();
    let pv = &mut ctx.vcpu.pv;
    pv.time_blocked += end.saturating_sub(pv.runstate_entry);
    pv.runstate_entry = end;
    if pv.runstate_area != 0 {
        let bytes = super::vcpu_op::runstate_bytes(ctx.vcpu);
        // A bad area address is the guest's problem, as in Xen: the update is skipped.
        let _ = crate::guest_mem::copy_to_guest(ctx.vcpu.pv.runstate_area, &bytes);
    }
    crate::pv::time::arm(ctx.vcpu);
}
