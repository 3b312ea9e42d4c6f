//! `HYPERVISOR_sched_op` (Xen's `do_sched_op`, `xen/common/sched/core.c`).

use super::Ctx;
use crate::guest_mem::read_guest;
use xen_abi::errno::Errno;

use xen_abi::sched::{SCHEDOP_block, SCHEDOP_shutdown, SCHEDOP_shutdown_code, SCHEDOP_yield};

/// `sched_op(cmd, arg)`.
pub fn do_sched_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    // `cmd` is an `int` in Xen.
    match a[0] as u32 {
        // One vCPU per pCPU so far: yielding and blocking return at once (a pending event is
        // the only way out of a block, and delivery happens on the way back to the guest).
        SCHEDOP_yield | SCHEDOP_block => Ok(0),
        SCHEDOP_shutdown => {
            let reason: u32 = read_guest(a[1])?;
            crate::domain::shutdown(ctx.vcpu, ctx.regs, reason);
            Ok(0)
        }
        SCHEDOP_shutdown_code => {
            let _reason: u32 = read_guest(a[1])?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}
