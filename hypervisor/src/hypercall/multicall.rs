//! `HYPERVISOR_multicall` (Xen's `do_multicall`, `xen/common/multicall.c`): a batch of
//! hypercalls, each entry's result written back into the list.

use super::Ctx;
use crate::guest_mem::{copy_from_guest, copy_to_guest};
use xen_abi::errno::Errno;

/// `multicall(call_list, nr_calls)`: each `multicall_entry` is `{op, result, args[6]}`.
pub fn do_multicall(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (list, nr) = (a[0], a[1] as u32);
    if ctx.vcpu.pv.in_multicall {
        // Xen: "Multicall reentry is disallowed".
        return Err(Errno::EINVAL);
    }
    ctx.vcpu.pv.in_multicall = true;
    let mut rc = Ok(0);
    for i in 0..u64::from(nr) {
        let at = list + i * 64;
        let mut b = [0u8; 64];
        if let Err(e) = copy_from_guest(&mut b, at) {
            rc = Err(e);
            break;
        }
        let w = |k: usize| u64::from_le_bytes(b[k * 8..k * 8 + 8].try_into().unwrap_or_default());
        let op = w(0);
        let result = if op == xen_abi::hypercall::multicall || op == xen_abi::hypercall::iret {
            Errno::EINVAL.to_ret() as u64
        } else {
            super::dispatch(ctx, op, [w(2), w(3), w(4), w(5), w(6)])
        };
        if let Err(e) = copy_to_guest(at + 8, &result.to_le_bytes()) {
            rc = Err(e);
            break;
        }
    }
    ctx.vcpu.pv.in_multicall = false;
    rc
}
