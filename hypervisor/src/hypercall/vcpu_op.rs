//! `HYPERVISOR_vcpu_op` (Xen's `do_vcpu_op`, `xen/common/domain.c`) and `set_timer_op`.

use super::Ctx;
use crate::domain::{TrapInfo, Vcpu};
use crate::guest_mem::{copy_from_guest, copy_to_guest, read_guest};
use crate::mm::frametable;
use crate::pvmm::{self, PageType};
use core::sync::atomic::Ordering;
use xen_abi::arch_x86::{
    VGCF_in_kernel, VGCF_online, VGCF_syscall_disables_events, VcpuGuestContext,
};
use xen_abi::errno::Errno;
use xen_abi::vcpu::{
    RUNSTATE_offline, RUNSTATE_running, VCPUOP_down, VCPUOP_get_physid, VCPUOP_get_runstate_info,
    VCPUOP_initialise, VCPUOP_is_up, VCPUOP_register_runstate_memory_area,
    VCPUOP_register_vcpu_info, VCPUOP_set_periodic_timer, VCPUOP_set_singleshot_timer,
    VCPUOP_stop_periodic_timer, VCPUOP_stop_singleshot_timer, VCPUOP_up,
};
use xenolith_arch::layout::phys_to_virt;
use xenolith_arch::trap::TrapFrame;

const MILLISECS: u64 = 1_000_000;

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b[..8].try_into().unwrap_or_default())
}

/// `struct vcpu_runstate_info` for the running vCPU `v`.
pub fn runstate_bytes(v: &crate::domain::Vcpu) -> [u8; 48] {
    let now = crate::pv::time::now();
    let pv = &v.pv;
    let mut b = [0u8; 48];
    let state = if v.is_up() {
        RUNSTATE_running
    } else {
        RUNSTATE_offline
    };
    b[..4].copy_from_slice(&state.to_le_bytes());
    b[8..16].copy_from_slice(&pv.runstate_entry.to_le_bytes());
    b[16..24]
        .copy_from_slice(&(pv.time_running + now.saturating_sub(pv.runstate_entry)).to_le_bytes());
    b[32..40].copy_from_slice(&pv.time_blocked.to_le_bytes());
    b
}

/// `vcpu_op(cmd, vcpuid, arg)`.
pub fn do_vcpu_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (cmd, vcpuid, arg) = (a[0] as u32, a[1] as u32, a[2]);
    // Every command names a vCPU first: an unknown one is ENOENT whatever the command.
    let Some(target) = ctx.vcpu.domain().vcpu_ptr(vcpuid) else {
        return Err(Errno::ENOENT);
    };
    if vcpuid != ctx.vcpu.id {
        return other(ctx, target, cmd, arg);
    }
    let pv = &mut ctx.vcpu.pv;
    match cmd {
        // The caller runs, so it is initialised and up.
        VCPUOP_initialise => Err(Errno::EEXIST),
        VCPUOP_up => Ok(0),
        VCPUOP_down => {
            down(ctx.vcpu)?;
            // Park here until VCPUOP_up: the hypercall returns 0 when the vCPU runs again.
            ctx.regs.rax = 0;
            crate::sched::check_preempt(ctx.vcpu, ctx.regs);
            Ok(0)
        }
        VCPUOP_is_up => Ok(1),
        VCPUOP_set_singleshot_timer => {
            let mut b = [0u8; 16];
            copy_from_guest(&mut b, arg)?;
            // Xen 4.17 ignores VCPU_SSHOTTMR_future: a past timeout fires at once.
            let timeout = le64(&b);
            pv.timer_deadline = timeout;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_stop_singleshot_timer => {
            pv.timer_deadline = u64::MAX;
            crate::pv::time::arm(ctx.vcpu);
            Ok(0)
        }
        VCPUOP_set_periodic_timer => {
            pv.periodic_period = periodic_period(arg)?;
            pv.periodic_next = crate::pv::time::now() + pv.periodic_period;
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
            let area = read_area(arg)?;
            pv.runstate_area = area;
            // Xen fills the area at once; a bad address is not an error here (the next
            // update simply fails quietly), as in Xen.
            if area != 0 {
                let _ = copy_to_guest(area, &runstate_bytes(ctx.vcpu));
            }
            Ok(0)
        }
        VCPUOP_register_vcpu_info => {
            let v: *mut Vcpu = ctx.vcpu;
            // SAFETY: `v` is the caller, borrowed mutably through `ctx` for this call only.
            register_vcpu_info(unsafe { &mut *v }, arg)
        }
        // Xen answers this only for vCPUs with a physical CPU identity it exposes; PV
        // dom0 on Xen 4.17 gets -EINVAL.
        VCPUOP_get_physid => Err(Errno::EINVAL),
        _ => Err(Errno::ENOSYS),
    }
}

/// The period of `VCPUOP_set_periodic_timer`: at least 1 ms and at most `STIME_DELTA_MAX`.
fn periodic_period(arg: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_guest(&mut b, arg)?;
    let period = le64(&b);
    if !(MILLISECS..=1 << 62).contains(&period) {
        return Err(Errno::EINVAL);
    }
    Ok(period)
}

/// The guest address of a `vcpu_register_runstate_memory_area`.
fn read_area(arg: u64) -> Result<u64, Errno> {
    let mut b = [0u8; 8];
    copy_from_guest(&mut b, arg)?;
    Ok(le64(&b))
}

/// `VCPUOP_down` of `v`: Xen refuses to take the last vCPU down by shutting the domain down
/// (poweroff) instead.
fn down(v: &Vcpu) -> Result<(), Errno> {
    let d = v.domain();
    let others_up = d.vcpus.iter().any(|w| w.id != v.id && w.is_up());
    if !others_up {
        let caller = crate::pv::entry::current();
        let regs = caller.regs;
        crate::domain::shutdown(caller, &regs, xen_abi::sched::SHUTDOWN_poweroff);
        return Ok(());
    }
    if v.up.swap(false, Ordering::SeqCst) {
        crate::sched::kick(v);
    }
    Ok(())
}

/// A `vcpu_op` on vCPU `t` of the caller's domain, other than the caller (Xen's `do_vcpu_op`
/// with `v != current`).
fn other(ctx: &mut Ctx<'_>, tp: *mut Vcpu, cmd: u32, arg: u64) -> Result<i64, Errno> {
    // SAFETY: vCPUs live as long as their domain (forever in this version). Through `t` only
    // the atomics and identity are read, except as `with_down` and `initialise` allow.
    let t = unsafe { &*tp };
    // Changing another vCPU's own state is only done while it is down and under the domain
    // lock, so it never runs meanwhile and two callers cannot race.
    let with_down = |f: &mut dyn FnMut(&mut Vcpu) -> Result<i64, Errno>| {
        let _lock = t.domain().inner.lock();
        if t.is_up() {
            return Err(Errno::EINVAL);
        }
        // A vCPU just taken down may still be on its way out of its CPU (it was kicked).
        while t.running.load(Ordering::Acquire) {
            crate::sched::service_flush();
            core::hint::spin_loop();
        }
        // SAFETY: `t` is down and off its CPU (it cannot start while the domain lock is held:
        // VCPUOP_up takes it), so no CPU uses its state.
        f(unsafe { &mut *tp })
    };
    match cmd {
        VCPUOP_initialise if t.hvm.is_some() => {
            // An HVM vCPU: a `vcpu_hvm_context`; it stays down until VCPUOP_up.
            let mut b = [0u8; crate::hvm::context::CONTEXT_SIZE];
            copy_from_guest(&mut b, arg)?;
            let _lock = t.domain().inner.lock();
            if t.initialised.load(Ordering::Acquire) {
                return Err(Errno::EEXIST);
            }
            let start = crate::hvm::context::parse(&b)?;
            // SAFETY: an uninitialised vCPU is down and cannot be brought up while the domain
            // lock is held.
            let t = unsafe { &mut *tp };
            if let Some(hv) = t.hvm.as_mut() {
                hv.start = Some(start);
            }
            t.initialised.store(true, Ordering::Release);
            Ok(0)
        }
        VCPUOP_initialise => {
            let c: VcpuGuestContext = read_guest(arg)?;
            if t.pv.vcpu_info == 0 {
                return Err(Errno::EINVAL);
            }
            let _lock = t.domain().inner.lock();
            if t.initialised.load(Ordering::Acquire) {
                return Err(Errno::EEXIST);
            }
            // SAFETY: an uninitialised vCPU is down and cannot be brought up while the domain
            // lock is held.
            let t = unsafe { &mut *tp };
            initialise(t, &c)?;
            if c.flags & VGCF_online != 0 {
                t.up.store(true, Ordering::SeqCst);
                crate::sched::kick(t);
            }
            Ok(0)
        }
        VCPUOP_up => {
            let _lock = t.domain().inner.lock();
            if !t.initialised.load(Ordering::Acquire) {
                return Err(Errno::EINVAL);
            }
            if !t.up.swap(true, Ordering::SeqCst) {
                crate::sched::kick(t);
            }
            Ok(0)
        }
        VCPUOP_down => down(t).map(|()| 0),
        VCPUOP_is_up => Ok(i64::from(t.is_up())),
        // Timers of another vCPU: Xen's single-shot ops are for the caller only.
        VCPUOP_set_singleshot_timer | VCPUOP_stop_singleshot_timer => Err(Errno::EINVAL),
        VCPUOP_set_periodic_timer => {
            let period = periodic_period(arg)?;
            with_down(&mut |t| {
                t.pv.periodic_period = period;
                t.pv.periodic_next = u64::MAX;
                Ok(0)
            })
        }
        VCPUOP_stop_periodic_timer => with_down(&mut |t| {
            t.pv.periodic_period = 0;
            t.pv.periodic_next = u64::MAX;
            Ok(0)
        }),
        VCPUOP_get_runstate_info => {
            copy_to_guest(arg, &runstate_bytes(t))?;
            Ok(0)
        }
        VCPUOP_register_runstate_memory_area => {
            let area = read_area(arg)?;
            with_down(&mut |t| {
                t.pv.runstate_area = area;
                if area != 0 {
                    let _ = copy_to_guest(area, &runstate_bytes(t));
                }
                Ok(0)
            })
        }
        VCPUOP_register_vcpu_info => with_down(&mut |t| register_vcpu_info(t, arg)),
        VCPUOP_get_physid => Err(Errno::EINVAL),
        _ => {
            let _ = ctx;
            Err(Errno::ENOSYS)
        }
    }
}

/// `arch_set_info_guest` for a PV vCPU that is not initialised yet: the checks Xen 4.17
/// makes, in its order, then the new register and PV state.
fn initialise(t: &mut Vcpu, c: &VcpuGuestContext) -> Result<(), Errno> {
    let canonical = xenolith_arch::paging::is_canonical;
    let r = &c.user_regs;
    if ![
        r.rip,
        r.rsp,
        c.kernel_sp,
        c.fs_base,
        c.gs_base_kernel,
        c.gs_base_user,
        c.event_callback_eip,
        c.syscall_callback_eip,
        c.failsafe_callback_eip,
    ]
    .into_iter()
    .all(canonical)
        || (c.ldt_ents != 0 && !canonical(c.ldt_base))
        || !c.trap_ctxt.iter().all(|ti| canonical(ti.address))
    {
        return Err(Errno::EINVAL);
    }
    // LDT safety checks.
    if c.ldt_base & 0xfff != 0 || c.ldt_ents > 8192 {
        return Err(Errno::EINVAL);
    }
    let kernel_mode = c.flags & VGCF_in_kernel != 0;
    if !kernel_mode && c.ctrlreg[1] == 0 {
        return Err(Errno::EINVAL);
    }
    if c.gdt_ents as usize > xenolith_arch::gdt::GUEST_GDT_ENTRIES {
        return Err(Errno::EINVAL);
    }
    let dom = t.domain().id;
    let gdt: alloc::vec::Vec<u64> = c.gdt_frames[..(c.gdt_ents as usize).div_ceil(512)].to_vec();
    let (mut kernel_l4, mut user_l4) = (0, 0);
    {
        let mut env = frametable::lock();
        pvmm::get_gdt_frames(&mut env, dom, &gdt, c.gdt_ents as u32)?;
        let tables = pvmm::new_baseptr(&mut env, dom, dom, &mut kernel_l4, c.ctrlreg[3] >> 12)
            .and_then(|()| match c.ctrlreg[1] >> 12 {
                0 => Ok(()),
                mfn => pvmm::new_user_baseptr(&mut env, dom, dom, &mut user_l4, mfn),
            });
        if tables.is_err() {
            if kernel_l4 != 0 {
                pvmm::put_page_and_type(&mut env, kernel_l4);
            }
            pvmm::put_gdt_frames(&mut env, &gdt, c.gdt_ents as u32);
            return Err(Errno::EINVAL);
        }
    }
    let pv = &mut t.pv;
    pv.gdt_frames = gdt;
    pv.gdt_entries = c.gdt_ents as u32;
    pv.guest_table = kernel_l4;
    pv.guest_table_user = user_l4;
    pv.kernel_mode = kernel_mode;
    for (slot, ti) in pv.trap_table.iter_mut().zip(c.trap_ctxt.iter()) {
        *slot = TrapInfo {
            cs: fixup_selector(ti.cs),
            flags: ti.flags,
            address: ti.address,
        };
    }
    pv.event_callback = c.event_callback_eip;
    pv.failsafe_callback = c.failsafe_callback_eip;
    pv.syscall_callback = c.syscall_callback_eip;
    pv.syscall_mask_events = c.flags & VGCF_syscall_disables_events != 0;
    pv.kernel_ss = u64::from(fixup_selector(c.kernel_ss as u16));
    pv.kernel_sp = c.kernel_sp;
    pv.fs_base = c.fs_base;
    pv.gs_base_kernel = c.gs_base_kernel;
    pv.gs_base_user = c.gs_base_user;
    pv.ldt = (c.ldt_base, c.ldt_ents);
    pv.cr0_ts = c.ctrlreg[0] & 8 != 0;
    // IOPL is virtualised; real interrupts stay enabled (Xen's arch_set_info_guest).
    pv.iopl = ((r.rflags >> 12) & 3) as u32;
    for (i, &dr) in c.debugreg.iter().enumerate().take(4) {
        if canonical(dr) {
            pv.debugreg[i] = dr;
        }
    }
    t.regs = TrapFrame {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rip: r.rip,
        cs: u64::from(fixup_selector(r.cs)),
        rflags: (r.rflags & !0x3000) | 0x202,
        rsp: r.rsp,
        ss: u64::from(fixup_selector(r.ss)),
        ..TrapFrame::default()
    };
    t.initialised.store(true, Ordering::Release);
    Ok(())
}

/// Xen's `fixup_guest_{code,stack}_selector` for a 64-bit PV guest: a null selector becomes
/// the flat kernel one, and ring 0 is raised to ring 3.
fn fixup_selector(sel: u16) -> u16 {
    if sel & 3 == 0 { sel | 3 } else { sel }
}

/// `VCPUOP_register_vcpu_info`: moves the vCPU's `vcpu_info` into a guest page (Xen's
/// `map_vcpu_info`). The page is held with a writable type reference, so it can never
/// become a page table while the hypervisor writes into it.
fn register_vcpu_info(v: &mut Vcpu, arg: u64) -> Result<i64, Errno> {
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
    if v.pv.vcpu_info_mfn != 0 {
        return Err(Errno::EINVAL);
    }
    // An HVM guest names the page by guest frame.
    let mfn = crate::hvm::machine_frame(v.domain(), mfn).ok_or(Errno::EINVAL)?;
    let dom = v.domain().id;
    {
        let mut env = frametable::lock();
        pvmm::get_page_and_type(&mut env, mfn, dom, PageType::Writable)
            .map_err(|_| Errno::EINVAL)?;
    }
    let new = phys_to_virt(mfn << 12) + u64::from(offset);
    let old = v.pv.vcpu_info;
    // SAFETY: both are 64-byte vcpu_info areas the hypervisor holds (the old one in
    // shared_info, the new one in a page it has a writable reference to).
    unsafe {
        core::ptr::copy(old as *const u8, new as *mut u8, 64);
        // Mark everything pending so no event is lost across the move (as Xen does).
        ((new + 8) as *mut u64).write_volatile(!0);
        (new as *mut u8).write_volatile(1);
    }
    v.pv.vcpu_info = new;
    v.pv.vcpu_info_mfn = mfn;
    crate::pv::time::update_vcpu_time(v);
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
