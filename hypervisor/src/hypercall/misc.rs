//! Small PV hypercalls: `vm_assist`, `set_segment_base`, `stack_switch`, `fpu_taskswitch`.

use super::Ctx;
use xen_abi::errno::Errno;
use xenolith_arch::cpu::{msr, wrmsr};

use xen_abi::arch_x86::{SEGBASE_FS, SEGBASE_GS_KERNEL, SEGBASE_GS_USER, SEGBASE_GS_USER_SEL};
use xen_abi::xen::{
    VMASST_CMD_disable, VMASST_CMD_enable, VMASST_TYPE_4gb_segments,
    VMASST_TYPE_4gb_segments_notify, VMASST_TYPE_architectural_iopl, VMASST_TYPE_m2p_strict,
    VMASST_TYPE_pae_extended_cr3, VMASST_TYPE_runstate_update_flag,
    VMASST_TYPE_writable_pagetables,
};

/// `VMASST_*` types a 64-bit PV guest may enable (Xen's `NATIVE_VM_ASSIST_VALID`).
const VM_ASSIST_VALID: u64 = (1 << VMASST_TYPE_4gb_segments)
    | (1 << VMASST_TYPE_4gb_segments_notify)
    | (1 << VMASST_TYPE_writable_pagetables)
    | (1 << VMASST_TYPE_pae_extended_cr3)
    | (1 << VMASST_TYPE_architectural_iopl)
    | (1 << VMASST_TYPE_runstate_update_flag)
    | (1 << VMASST_TYPE_m2p_strict);

/// `vm_assist(cmd, type)` (Xen's `do_vm_assist`).
pub fn do_vm_assist(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, ty) = (a[0] as u32, a[1] as u32);
    // Xen's vm_assist: the type must be valid before the command is looked at.
    if ty >= 64 || VM_ASSIST_VALID & (1u64 << ty) == 0 {
        return Err(Errno::EINVAL);
    }
    let bit = 1u64 << ty;
    let mut inner = ctx.vcpu.domain().inner.lock();
    match cmd {
        VMASST_CMD_enable => {
            inner.vm_assist |= bit;
            Ok(0)
        }
        VMASST_CMD_disable => {
            inner.vm_assist &= !bit;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

use xenolith_arch::paging::is_canonical as canonical;

/// `set_segment_base(which, base)` (Xen's `do_set_segment_base`).
pub fn do_set_segment_base(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (which, base) = (a[0] as u32, a[1]);
    let pv = &mut ctx.vcpu.pv;
    match which {
        SEGBASE_FS..=SEGBASE_GS_KERNEL if !canonical(base) => Err(Errno::EINVAL),
        SEGBASE_FS => {
            pv.fs_base = base;
            // SAFETY: a canonical FS base; the vCPU is running on this CPU.
            unsafe { wrmsr(msr::FS_BASE, base) };
            Ok(0)
        }
        SEGBASE_GS_USER => {
            // The user GS base lives in the shadow register while the guest kernel runs.
            pv.gs_base_user = base;
            // SAFETY: canonical value, this vCPU is current.
            unsafe { wrmsr(msr::SHADOW_GS_BASE, base) };
            Ok(0)
        }
        SEGBASE_GS_KERNEL => {
            pv.gs_base_kernel = base;
            // SAFETY: canonical value, this vCPU is current.
            unsafe { wrmsr(msr::GS_BASE, base) };
            Ok(0)
        }
        SEGBASE_GS_USER_SEL => {
            // A faulting selector loads null instead; either way the call succeeds (Xen).
            // SAFETY: the vCPU runs here in guest kernel mode (hypercalls come from there).
            unsafe { xenolith_arch::uaccess::load_user_gs(base as u16) };
            // SAFETY: reading the inactive GS base, which the load just set.
            pv.gs_base_user = unsafe { xenolith_arch::cpu::rdmsr(msr::SHADOW_GS_BASE) };
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

/// `stack_switch(ss, esp)`: the kernel stack for bounces from user mode.
pub fn do_stack_switch(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    // Xen's fixup_guest_stack_selector: an RPL-0 selector is turned into RPL 3.
    let ss = if a[0] & 3 == 0 { a[0] | 3 } else { a[0] };
    ctx.vcpu.pv.kernel_ss = ss & 0xffff;
    ctx.vcpu.pv.kernel_sp = a[1];
    Ok(0)
}

/// `fpu_taskswitch(set)`: the guest's virtual CR0.TS.
pub fn do_fpu_taskswitch(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    ctx.vcpu.pv.cr0_ts = a[0] as u32 != 0;
    crate::pv::emulate::sync_cr0_ts(ctx.vcpu);
    Ok(0)
}
