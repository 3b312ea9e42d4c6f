//! Entry points from a running PV guest: SYSCALL (hypercalls from guest kernel mode) and
//! exceptions/interrupts taken at CPL3.

use super::bounce::{self, BounceState, IretContext, TrapBounce};
use crate::domain::Vcpu;
use crate::hypercall::{self, Ctx};
use crate::printk;
use xenolith_arch::percpu;
use xenolith_arch::trap::TrapFrame;

/// The vCPU running on this CPU.
///
/// # Panics
/// If called on a CPU that is not running a guest (a hypervisor bug).
pub fn current() -> &'static mut Vcpu {
    let p = percpu::current()
        .current_vcpu
        .load(core::sync::atomic::Ordering::Relaxed);
    assert!(p != 0, "no current vCPU");
    // SAFETY: set by `run_vcpu` to a vCPU that lives as long as its domain (forever here) and is
    // only used by this CPU while it runs there.
    unsafe { &mut *(p as *mut Vcpu) }
}

/// The vCPU running on this CPU, if any.
pub fn current_opt() -> Option<&'static mut Vcpu> {
    let p = percpu::current()
        .current_vcpu
        .load(core::sync::atomic::Ordering::Relaxed);
    // SAFETY: as in `current`.
    (p != 0).then(|| unsafe { &mut *(p as *mut Vcpu) })
}

/// SYSCALL from the guest: a hypercall in kernel mode (Xen's `lstar_enter` path).
#[unsafe(no_mangle)]
extern "C" fn xenolith_guest_syscall(regs: &mut TrapFrame) {
    let v = current();
    if !v.pv.kernel_mode {
        // Guest user-mode SYSCALL: bounce to the kernel's registered syscall entry.
        let eip = v.pv.syscall_callback;
        let interrupt = v.pv.syscall_mask_events;
        deliver(
            v,
            regs,
            TrapBounce {
                eip,
                error_code: None,
                interrupt,
            },
        );
        return;
    }
    let number = regs.rax;
    let args = [regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8];
    if number == xen_abi::hypercall::iret {
        do_iret(v, regs);
        super::events::check_events(v, regs);
        return;
    }
    let mut ctx = Ctx { vcpu: v, regs };
    let ret = hypercall::dispatch(&mut ctx, number, args);
    ctx.regs.rax = ret;
    super::events::check_events(ctx.vcpu, ctx.regs);
}

/// `HYPERVISOR_iret`: return from a bounce frame the guest built (Xen's `do_iret`).
fn do_iret(v: &mut Vcpu, regs: &mut TrapFrame) {
    let mut words = [0u64; 9];
    let mut bytes = [0u8; 72];
    if crate::guest_mem::copy_from_guest(&mut bytes, regs.rsp).is_err() {
        crate::domain::crash(v, regs, "HYPERVISOR_iret: unreadable iret context");
    }
    for (w, c) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        *w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
    }
    let ctx = IretContext::from_words(&words);
    // The return context must be one `iretq` can load at CPL3: a canonical rip and the flat
    // ring-3 selectors (or the guest's own GDT entries below the hypervisor's).
    let canonical = xenolith_arch::paging::is_canonical(ctx.rip);
    // Only the selector bits count: a bounce frame's CS carries the saved upcall mask in
    // bits 32-39, and `iretq` ignores everything above bit 15.
    let (cs, ss) = ((ctx.cs & 0xffff) | 3, (ctx.ss & 0xffff) | 3);
    let cs_ok = matches!(cs, 0xe033 | 0xe023) || cs < 0xe000;
    let ss_ok = ss == 0xe02b || ss < 0xe000;
    if !canonical || !cs_ok || !ss_ok {
        crate::domain::crash(v, regs, "HYPERVISOR_iret to an unusable context");
    }
    if ctx.cs & 3 == 3 && v.pv.guest_table_user == 0 {
        crate::domain::crash(
            v,
            regs,
            "HYPERVISOR_iret to user mode without user page tables",
        );
    }
    let effect = bounce::iret(regs, &ctx, false);
    if effect.to_user_mode {
        crate::domain::toggle_guest_mode(v);
    }
    crate::domain::set_upcall_mask(v, effect.upcall_mask);
}

/// Delivers a bounce to the guest kernel, or crashes the domain if it cannot be delivered.
pub fn deliver(v: &mut Vcpu, regs: &mut TrapFrame, tb: TrapBounce) {
    let st = BounceState {
        kernel_mode: v.pv.kernel_mode,
        kernel_sp: v.pv.kernel_sp,
        upcall_mask: crate::domain::upcall_mask(v),
        architectural_iopl: None,
    };
    let frame = match bounce::bounce(regs, &st, &tb) {
        Ok(f) => f,
        Err(e) => crate::domain::crash(
            v,
            regs,
            match e {
                bounce::BounceError::BadStack(_) => "bounce frame on a hypervisor stack address",
                bounce::BounceError::NoHandler => "no guest handler for a trap",
            },
        ),
    };
    if frame.to_kernel_mode {
        crate::domain::toggle_guest_mode(v);
    }
    // The whole frame in one copy, from the stack (no heap on this path).
    let (bytes, len) = frame.to_bytes();
    if crate::guest_mem::copy_to_guest(frame.rsp, &bytes[..len]).is_err() {
        crate::domain::crash(
            v,
            regs,
            "cannot write the bounce frame to the guest kernel stack",
        );
    }
    crate::domain::set_upcall_mask(v, frame.upcall_mask);
}

/// An exception or interrupt taken while the guest ran (CPL3).
pub fn guest_trap(regs: &mut TrapFrame) {
    let v = current();
    let vector = regs.entry_vector;
    let emulated = match vector {
        // `int $0x80` reaches the guest's handler whatever its DPL (Xen's int80 direct trap);
        // without one it is #GP(0x80 << 3 | 2) at the instruction.
        0x80 => {
            let ti = v.pv.trap_table[0x80];
            if ti.address == 0 {
                regs.rip -= 2;
                regs.entry_vector = 13;
                regs.error_code = (0x80 << 3) | 2;
            }
            false
        }
        6 => super::emulate::invalid_op(v, regs),
        13 if regs.error_code == 0 => super::emulate::privileged_op(v, regs),
        13 => software_interrupt(v, regs),
        14 => super::emulate::ptwr_fault(v, regs, xenolith_arch::cpu::read_cr2()),
        _ => false,
    };
    if emulated {
        super::events::check_events(v, regs);
        return;
    }
    // `int $0x80` without a handler was turned into #GP above.
    let vector = regs.entry_vector;
    if vector == 7 {
        // Device not available: the guest's virtual TS was set. Deliver #NM with TS
        // cleared, as Xen's `do_device_not_available` does; a stray #NM just resumes.
        let was_set = v.pv.cr0_ts;
        v.pv.cr0_ts = false;
        super::emulate::sync_cr0_ts(v);
        if !was_set {
            return;
        }
    }
    let ti =
        v.pv.trap_table
            .get(vector as usize)
            .copied()
            .unwrap_or_default();
    if vector == 14 {
        let cr2 = xenolith_arch::cpu::read_cr2();
        v.pv.cr2 = cr2;
        crate::domain::set_cr2(v, cr2);
    }
    let mut error_code =
        xenolith_arch::trap::has_error_code(vector as u8).then_some(regs.error_code);
    if vector == 14 && v.pv.kernel_mode {
        // The guest kernel runs at CPL3, but it should see its own faults as supervisor ones
        // (Xen clears PFEC_user_mode for guest kernel mode).
        error_code = error_code.map(|e| e & !xenolith_arch::trap::pf::USER);
    }
    if ti.address == 0 {
        let name = xenolith_arch::trap::exception_name(vector);
        printk!(
            "{}v{} unhandled trap {} ({name}) at {:#x}\n",
            v.domain().label(),
            v.id,
            vector,
            regs.rip
        );
        crate::domain::crash(v, regs, "unhandled guest trap");
    }
    // TI_GET_IF: flag bit 2 set means an interrupt gate: events are masked on delivery.
    let interrupt = ti.flags & 4 != 0;
    deliver(
        v,
        regs,
        TrapBounce {
            eip: ti.address,
            error_code,
            interrupt,
        },
    );
    super::events::check_events(v, regs);
}

/// `int $n` faults with #GP(n << 3 | 2) because the IDT gates are DPL 0: deliver it to the
/// guest's handler if its trap-table DPL allows the current guest ring (Xen's
/// `permit_softint`: the guest kernel counts as ring 1, user mode as ring 3).
fn software_interrupt(v: &mut Vcpu, regs: &mut TrapFrame) -> bool {
    if regs.error_code & 7 != 2 {
        return false;
    }
    let vector = (regs.error_code >> 3) as usize;
    let ti = v.pv.trap_table.get(vector).copied().unwrap_or_default();
    let ring = if v.pv.kernel_mode { 1 } else { 3 };
    if ti.address == 0 || u32::from(ti.flags & 3) < ring {
        return false;
    }
    regs.rip += 2; // `int imm8`
    let interrupt = ti.flags & 4 != 0;
    deliver(
        v,
        regs,
        TrapBounce {
            eip: ti.address,
            error_code: None,
            interrupt,
        },
    );
    true
}

/// The hypervisor's return to the guest faulted (a context `iretq` refused): crash the guest
/// instead of the hypervisor (Xen would use the failsafe callback).
#[unsafe(no_mangle)]
extern "C" fn xenolith_guest_iret_fault() -> ! {
    let v = current();
    let regs = v.regs;
    crate::domain::crash(v, &regs, "return to the guest faulted (bad iret context)")
}

/// The event-check IPI taken while the guest ran: another CPU raised an event for this vCPU,
/// or changed its state.
pub fn guest_event_check(regs: &mut TrapFrame) {
    let v = current();
    super::events::check_events(v, regs);
}

/// A hardware interrupt taken while the guest ran: the guest's timers may be due.
pub fn guest_timer_interrupt(regs: &mut TrapFrame) {
    crate::sched::timer_tick();
    let v = current();
    super::events::check_events(v, regs);
}
