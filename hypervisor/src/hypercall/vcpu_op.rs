//! `HYPERVISOR_vcpu_op` (Xen's `do_vcpu_op`, `xen/common/domain.c`).

use super::Ctx;
use xen_abi::errno::Errno;

use xen_abi::vcpu::VCPUOP_is_up;

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn do_vcpu_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, vcpuid) = (a[0] as u32, a[1] as u32);
    let d = ctx.vcpu.domain();
    // Every command names a vCPU first: an unknown one is ENOENT whatever the command.
    if d.vcpus.get(vcpuid as usize).is_none() {
        return Err(Errno::ENOENT);
    }
    match cmd {
        // All existing vCPUs are up in this version (secondary vCPUs come with SMP guests).
        VCPUOP_is_up => Ok(1),
        _ => Err(Errno::ENOSYS),
    }
}
