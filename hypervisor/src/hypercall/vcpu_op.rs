//! `HYPERVISOR_vcpu_op` (Xen's `do_vcpu_op`, `xen/common/domain.c`) and `set_timer_op`.

use super::Ctx;
use crate::guest_mem::{copy_from_guest, copy_to_guest};
use crate::mm::frametable;
use crate::pvmm::{self, PageType};
use xen_abi::errno::Errno;
use xen_abi::vcpu::{
    RUNSTATE_running, VCPUOP_get_physid, VCPUOP_get_runstate_info, VCPUOP_is_up,
    VCPUOP_register_runstate_memory_area, VCPUOP_register_vcpu_info, VCPUOP_set_periodic_timer,
    VCPUOP_set_singleshot_timer, VCPUOP_stop_periodic_timer, VCPUOP_stop_singleshot_timer,
};
use xenolith_arch::layout::phys_to_virt;

const MILLISECS: u64 = 1_000_000;

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap_or_default())
}

/// `struct vcpu_runstate_info` for the running vCPU `v`.
pub fn runstate_bytes(v: &crate::domain::Vcpu) -> [u8; 48] {
    let now = crate::pv::time::now();
    let pv = &v.pv;
    let mut b = [0u8; 48];
    b[..4].copy_from_slice(&RUNSTATE_running.to_le_bytes());
    b[8..16].copy_from_slice(&pv.runstate_entry.to_le_bytes());
    b[16..24]
        .copy_from_slice(&(pv.time_running + now.saturating_sub(pv.runstate_entry)).to_le_bytes());
    b[32..40].copy_from_slice(&pv.time_blocked.to_le_bytes());
    b
}

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn do_vcpu_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, vcpuid, arg) = (a[0] as u32, a[1] as u32, a[2]);
    let (exists, _privileged) = {
        let d = ctx.vcpu.domain();
        (d.vcpus.get(vcpuid as usize).is_some(), d.privileged)
    };
    // Every command names a vCPU first: an unknown one is ENOENT whatever the command.
    if !exists {
        return Err(Errno::ENOENT);
    }
    let is_current = vcpuid == ctx.vcpu.id;
    let pv = &mut ctx.vcpu.pv;
    match cmd {
        // All existing vCPUs are up in this version (secondary vCPUs come with SMP guests).
        VCPUOP_is_up => Ok(1),
        VCPUOP_set_singleshot_timer => {
            if !is_current {
                return Err(Errno::EINVAL);
            }
            let mut b = [0u8; 16];
            copy_from_guest(&mut b, arg)?;
            // Xen 4.17 ignores VCPU_SSHOTTMR_future: a past timeout fires at once.
            let timeout = le64(&b);
            pv.timer_deadline = timeout;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_stop_singleshot_timer => {
            if !is_current {
                return Err(Errno::EINVAL);
            }
            pv.timer_deadline = u64::MAX;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_set_periodic_timer | VCPUOP_stop_periodic_timer if !is_current => Err(Errno::EINVAL),
        VCPUOP_set_periodic_timer => {
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, arg)?;
            let period = le64(&b);
            // Xen: at least 1 ms, and no more than STIME_DELTA_MAX (2^62).
            if !(MILLISECS..=1 << 62).contains(&period) {
                return Err(Errno::EINVAL);
            }
            pv.periodic_period = period;
            pv.periodic_next = crate::pv::time::now() + period;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_stop_periodic_timer => {
            pv.periodic_period = 0;
            pv.periodic_next = u64::MAX;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_get_runstate_info => {
            copy_to_guest(arg, &runstate_bytes(ctx.vcpu))?;
            Ok(0)
        }
        VCPUOP_register_runstate_memory_area => {
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, arg)?;
            let area = le64(&b);
            pv.runstate_area = area;
            // Xen fills the area at once for the running vCPU; a bad address is not an
            // error here (the next update simply fails quietly), as in Xen.
            if is_current && area != 0 {
                let _ = copy_to_guest(area, &runstate_bytes(ctx.vcpu));
            }
            Ok(0)
        }
        // Operating on another vCPU needs secondary vCPUs, which dom0 does not have yet
        // (one vCPU per domain so far): only the caller's own id can reach here.
        VCPUOP_register_vcpu_info if is_current => register_vcpu_info(ctx, arg),
        VCPUOP_register_vcpu_info => Err(Errno::EINVAL),
        // Xen answers this only for vCPUs with a physical CPU identity it exposes; PV
        // dom0 on Xen 4.17 gets -EINVAL.
        VCPUOP_get_physid => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    }
}

/// `VCPUOP_register_vcpu_info`: moves the vCPU's `vcpu_info` into a guest page (Xen's
/// `map_vcpu_info`). The page is held with a writable type reference, so it can never
/// become a page table while the hypervisor writes into it.
fn register_vcpu_info(ctx: &mut Ctx<'_>, arg: u64) -> Result<i64, Errno> {
    let mut b = [0u8; 16];
    copy_from_guest(&mut b, arg)?;
    let (mfn, offset) = (
        le64(&b),
        u32::from_le_bytes(b[8..12].try_into().unwrap_or_default()),
    );
    // Xen's map_vcpu_info: a naturally aligned vcpu_info wholly inside the page.
    if offset % 8 != 0 || u64::from(offset) > 4096 - 64 {
        return Err(Errno::ENXIO);
    }
    if ctx.vcpu.pv.vcpu_info_mfn != 0 {
        return Err(Errno::EINVAL);
    }
    let dom = ctx.vcpu.domain().id;
    {
        let mut env = frametable::lock();
        pvmm::get_page_and_type(&mut env, mfn, dom, PageType::Writable)
            .map_err(|_| Errno::EINVAL)?;
    }
    let new = phys_to_virt(mfn << 12) + u64::from(offset);
    let old = ctx.vcpu.pv.vcpu_info;
    // SAFETY: both are 64-byte vcpu_info areas the hypervisor holds (the old one in
    // shared_info, the new one in a page it has a writable reference to).
    unsafe {
        core::ptr::copy(old as *const u8, new as *mut u8, 64);
        // Mark everything pending so no event is lost across the move (as Xen does).
        ((new + 8) as *mut u64).write_volatile(!0);
        (new as *mut u8).write_volatile(1);
    }
    ctx.vcpu.pv.vcpu_info = new;
    ctx.vcpu.pv.vcpu_info_mfn = mfn;
    crate::pv::time::update_vcpu_time(ctx.vcpu);
    Ok(0)
}

/// `set_timer_op(timeout)`: the single-shot timer in system time (0 stops it).
pub fn do_set_timer_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let timeout = a[0];
    let pv = &mut ctx.vcpu.pv;
    if timeout == 0 {
        pv.timer_deadline = u64::MAX;
    } else {
        let offset = timeout.wrapping_sub(crate::pv::time::now()) as i64;
        // Xen's workaround for wrapped Linux jiffies: a timeout more than 2^50 ns ahead fires
        // in 100 ms instead.
        pv.timer_deadline = if offset > 0 && (offset >> 50) as u32 != 0 {
            crate::pv::time::now() + 100 * MILLISECS
        } else {
            timeout
        };
    }
    crate::pv::time::arm(ctx.vcpu);
    Ok(0)
}
