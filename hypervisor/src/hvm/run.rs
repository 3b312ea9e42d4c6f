//! Running an HVM vCPU: enter the guest, handle the exit, deliver events, give the CPU up
//! when the scheduler says so. The loop runs in the hypervisor (ring 0) on a fresh stack each
//! time the vCPU is scheduled in; leaving it (block, preemption, shutdown) goes through the
//! scheduler's `deschedule`, which keeps the registers in the vCPU as a `TrapFrame` image, and
//! never returns here.

use super::exits::{self, GP, UD};
use super::{HvmDomain, create_arch_vcpu};
use crate::domain::Vcpu;
use crate::printk;
use core::sync::atomic::Ordering;
use xen_abi::hvm::{HVM_PARAM_CALLBACK_IRQ, HVM_PARAM_CALLBACK_TYPE_VECTOR, hvm_callback_type};
use xenolith_arch::hvm::{Exit, GuestRegs, Vcpu as ArchVcpu};
use xenolith_arch::percpu;
use xenolith_arch::trap::TrapFrame;

/// Starts or resumes HVM vCPU `v` on this CPU; does not return.
pub fn run(v: &'static mut Vcpu) -> ! {
    let top = percpu::stack_top(percpu::current().stack_base);
    // SAFETY: the CPU's primary stack block is ours; everything on it belongs to the idle
    // loop that called us and is abandoned (it never resumes), so starting over at its top
    // keeps the stack from growing with each switch. `vcpu_main` never returns.
    unsafe {
        core::arch::asm!(
            "mov rsp, {top}",
            "call {main}",
            "ud2",
            top = in(reg) top,
            main = sym vcpu_main,
            in("rdi") core::ptr::from_mut(v),
            options(noreturn)
        )
    }
}

extern "C" fn vcpu_main(v: *mut Vcpu) -> ! {
    // SAFETY: `run` passes the vCPU the scheduler picked for this CPU; only this CPU uses it.
    let v: &'static mut Vcpu = unsafe { &mut *v };
    let d = v.domain_static();
    let Some(hd) = d.hvm.as_ref() else {
        let regs = v.regs;
        crate::domain::crash(v, &regs, "HVM vCPU of a PV domain")
    };
    let arch = match arch_vcpu(v, hd) {
        // SAFETY: the back-end vCPU is boxed in the vCPU, which lives as long as its domain
        // (forever); only this CPU uses it, and this loop is its only user while it runs.
        Ok(a) => unsafe { &mut *a },
        Err(why) => {
            printk!("{}v{}: cannot start: {why}\n", d.label(), v.id);
            let regs = v.regs;
            crate::domain::crash(v, &regs, "HVM vCPU creation failed")
        }
    };
    loop {
        x86_64::instructions::interrupts::disable();
        deliver_events(v, hd, arch);
        let exit = arch.run();
        // The physical interrupt that ended the guest's run (if any) is taken here, in the
        // STI shadow's one-instruction window; the exit is then handled with interrupts off,
        // as a PV guest's traps and hypercalls are: the handlers take locks (run queues,
        // ports) that interrupt handlers take too.
        // SAFETY: enabling interrupts for one instruction in hypervisor context, whose
        // handlers are all installed; no lock is held here.
        unsafe { core::arch::asm!("sti", "nop", "cli", options(nomem, nostack)) };
        handle(v, hd, arch, exit);
        // Blocked, preempted, woken another vCPU here, or the domain stopped.
        let frame = to_frame(arch.regs());
        crate::sched::check_preempt(v, &frame);
    }
}

/// The back-end vCPU of `v`: created at the PVH boot state on its first run, else loaded
/// with the registers the scheduler kept while it was descheduled.
fn arch_vcpu(v: &mut Vcpu, hd: &'static HvmDomain) -> Result<*mut dyn ArchVcpu, &'static str> {
    let regs = from_frame(&v.regs);
    let hv = v.hvm.as_mut().ok_or("no HVM state")?;
    let fresh = hv.arch.is_none();
    if fresh {
        hv.arch = Some(create_arch_vcpu(hd, hv.boot, hv.start.as_ref())?);
    }
    let arch = hv.arch.as_mut().ok_or("no back-end vCPU")?;
    if !fresh {
        *arch.regs_mut() = regs;
    }
    Ok(&mut **arch as *mut dyn ArchVcpu)
}

/// Queues an interrupt if the guest has none waiting: the event upcall if one is due (the
/// per-vCPU upcall vector, else the domain's callback vector, `HVM_PARAM_CALLBACK_IRQ` of
/// type vector; level-like, as Xen: while `evtchn_upcall_pending` is set the vector is
/// offered again on each entry), else the local APIC's highest pending vector.
fn deliver_events(v: &mut Vcpu, hd: &HvmDomain, arch: &mut dyn ArchVcpu) {
    if arch.interrupt_pending() {
        return;
    }
    if let Some(vector) = callback_vector(v, hd)
        && crate::pv::events::upcall_due(v)
    {
        arch.inject_interrupt(vector);
        return;
    }
    // Then what the local APIC has pending (self-IPIs).
    if let Some(vector) = v.hvm.as_mut().and_then(|hv| hv.lapic.take_highest()) {
        arch.inject_interrupt(vector);
    }
}

/// The vector events are delivered on to `v`, if the guest set one.
pub fn callback_vector(v: &Vcpu, hd: &HvmDomain) -> Option<u8> {
    if let Some(hv) = v.hvm.as_ref()
        && hv.upcall_vector != 0
    {
        return Some(hv.upcall_vector);
    }
    let cb = hd.params.lock()[HVM_PARAM_CALLBACK_IRQ as usize];
    (hvm_callback_type(cb) == HVM_PARAM_CALLBACK_TYPE_VECTOR && cb as u8 >= 0x10)
        .then_some(cb as u8)
}

/// Handles one exit.
fn handle(v: &mut Vcpu, hd: &'static HvmDomain, arch: &mut dyn ArchVcpu, exit: Exit) {
    match exit {
        Exit::Cpuid => {
            let ctl = arch.control();
            exits::handle_cpuid(v, &ctl, arch.regs_mut());
            skip(v, arch, exit);
        }
        Exit::Vmmcall => {
            skip(v, arch, exit);
            let ctl = arch.control();
            if ctl.cpl != 0 {
                // Xen: hypercalls from guest user mode fail with -EPERM.
                arch.regs_mut().rax = xen_abi::errno::Errno::EPERM.to_ret() as u64;
                return;
            }
            let long = ctl.long_mode() && ctl.cs_long;
            super::xlat::enter(&hd.p2m, ctl);
            let mut frame = to_frame(arch.regs());
            // The frame may be kept by the scheduler (block, yield): it holds the result.
            super::hypercall::dispatch(v, &mut frame, long);
            super::xlat::leave();
            *arch.regs_mut() = from_frame(&frame);
        }
        Exit::Io { port, size, write } => {
            let d = v.domain_static();
            if let Some(hv) = v.hvm.as_mut() {
                let mut regs = *arch.regs();
                exits::handle_io(d, hv, &mut regs, port, size, write);
                *arch.regs_mut() = regs;
            }
            skip(v, arch, exit);
        }
        Exit::IoString {
            port,
            size,
            write,
            rep,
        } => {
            if io_string(v, hd, arch, port, size, write, rep) {
                skip(v, arch, exit);
            } else {
                arch.inject_exception(GP, Some(0));
            }
        }
        Exit::Msr { write } => {
            let d = v.domain_static();
            let handled = match v.hvm.as_mut() {
                Some(hv) => exits::handle_msr(d, hv, arch, write),
                None => false,
            };
            if handled {
                skip(v, arch, exit);
            } else {
                let r = arch.regs();
                printk!(
                    "{}v{}: {} of MSR {:#x} ({:#x}) refused: #GP at rip {:#x}\n",
                    v.domain().label(),
                    v.id,
                    if write { "WRMSR" } else { "RDMSR" },
                    r.rcx as u32,
                    (r.rdx << 32) | (r.rax & 0xffff_ffff),
                    r.rip
                );
                arch.inject_exception(GP, Some(0));
            }
        }
        Exit::Xsetbv => {
            let cpl = arch.control().cpl;
            match exits::xsetbv_ok(arch.regs(), cpl) {
                Some(value) => {
                    arch.set_xcr0(value);
                    skip(v, arch, exit);
                }
                None => arch.inject_exception(GP, Some(0)),
            }
        }
        Exit::Hlt => {
            skip(v, arch, exit);
            halt(v, arch);
        }
        Exit::NestedPageFault { gpa, error } => {
            // All of the guest's memory is mapped when it is built or when it asks
            // (add_to_physmap, populate_physmap). An access where nothing is mapped has no
            // device model to go to: as on Xen, a plain load reads all ones and a store is
            // dropped. Anything else there crashes the domain.
            if hd.p2m.translate(gpa).is_none() && emulate_unbacked(hd, arch) {
                return;
            }
            let regs = to_frame(arch.regs());
            printk!(
                "{}v{}: guest-physical access to {gpa:#x} (error {error:#x}) at rip {:#x}: \
                 no memory or device there\n",
                v.domain().label(),
                v.id,
                regs.rip
            );
            crash(v, hd, arch, "unhandled nested page fault");
        }
        Exit::Shutdown => {
            printk!("{}v{}: Triple fault\n", v.domain().label(), v.id);
            crash(v, hd, arch, "triple fault");
        }
        Exit::EntryFailed(code) => {
            printk!(
                "{}v{}: VM entry failed ({code:#x})\n",
                v.domain().label(),
                v.id
            );
            crash(v, hd, arch, "VM entry failed");
        }
        Exit::Other(code) => {
            // SVM/VMX instructions and anything else not emulated: #UD, as Xen.
            let _ = code;
            arch.inject_exception(UD, None);
        }
        Exit::ExternalInterrupt | Exit::Nmi | Exit::InterruptWindow | Exit::Pause => {}
    }
}

/// INS/OUTS (with REP: all `rcx` elements at once): OUTS to the debug port prints, to any
/// other port is dropped; INS stores all ones. Segment bases are taken as 0 (a PVH guest's
/// flat segments) and the address size as the mode's default. False (#GP) if the guest's
/// buffer is not mapped.
fn io_string(
    v: &mut Vcpu,
    hd: &HvmDomain,
    arch: &mut dyn ArchVcpu,
    port: u16,
    size: u8,
    write: bool,
    rep: bool,
) -> bool {
    let ctl = arch.control();
    let long = ctl.long_mode() && ctl.cs_long;
    let mask = if long { u64::MAX } else { 0xffff_ffff };
    let mut regs = *arch.regs();
    let count = if rep { regs.rcx & mask } else { 1 };
    let step = if regs.rflags & (1 << 10) != 0 {
        (u64::from(size)).wrapping_neg()
    } else {
        u64::from(size)
    };
    let d = v.domain_static();
    for _ in 0..count {
        let mut buf = [0xffu8; 4];
        let buf = &mut buf[..usize::from(size)];
        if write {
            if !xenolith_arch::hvm::walk::read_linear(&hd.p2m, &ctl, regs.rsi & mask, buf) {
                return false;
            }
            if let Some(hv) = v.hvm.as_mut() {
                for &b in buf.iter() {
                    let mut r = GuestRegs {
                        rax: u64::from(b),
                        ..GuestRegs::default()
                    };
                    exits::handle_io(d, hv, &mut r, port, 1, true);
                }
            }
            regs.rsi = regs.rsi.wrapping_add(step) & mask;
        } else {
            if !xenolith_arch::hvm::walk::write_linear(&hd.p2m, &ctl, regs.rdi & mask, buf) {
                return false;
            }
            regs.rdi = regs.rdi.wrapping_add(step) & mask;
        }
        if rep {
            regs.rcx = regs.rcx.wrapping_sub(1) & mask;
        }
    }
    *arch.regs_mut() = regs;
    true
}

/// Completes a `mov` to or from guest-physical memory with nothing behind it: loads give
/// all ones, stores vanish, rip moves on. False if the instruction is not such a `mov`.
fn emulate_unbacked(hd: &HvmDomain, arch: &mut dyn ArchVcpu) -> bool {
    use xenolith_arch::hvm::mmio::{self, Access};
    let ctl = arch.control();
    let long = ctl.long_mode() && ctl.cs_long;
    let rip = arch.regs().rip;
    let la = if long {
        rip
    } else {
        ctl.cs_base.wrapping_add(rip) & 0xffff_ffff
    };
    let mut bytes = [0u8; 15];
    let Some(n) = (1..=bytes.len())
        .rev()
        .find(|&n| xenolith_arch::hvm::walk::read_linear(&hd.p2m, &ctl, la, &mut bytes[..n]))
    else {
        return false;
    };
    let Some(insn) = mmio::decode(&bytes[..n], long, ctl.cs_db) else {
        return false;
    };
    let regs = arch.regs_mut();
    if let Access::Load { reg, .. } = insn.access {
        let r = regs.gpr_mut(usize::from(reg));
        *r = mmio::all_ones_into(*r, insn.access);
    }
    let next = rip.wrapping_add(u64::from(insn.len));
    regs.rip = if long { next } else { next & 0xffff_ffff };
    true
}

/// HLT: with interrupts enabled the vCPU blocks until an event is due (Xen's `hvm_hlt`);
/// with them disabled it can never wake, so it goes down, and the domain powers off when no
/// vCPU is left up.
fn halt(v: &mut Vcpu, arch: &mut dyn ArchVcpu) {
    let frame = to_frame(arch.regs());
    if frame.rflags & (1 << 9) == 0 {
        printk!(
            "{}v{}: HLT with interrupts disabled at rip {:#x}: vCPU down\n",
            v.domain().label(),
            v.id,
            frame.rip
        );
        v.up.store(false, Ordering::Release);
        let d = v.domain();
        if !d.vcpus.iter().any(|w| w.is_up()) {
            printk!("{}: All CPUs offline -- powering off.\n", d.label());
            crate::domain::shutdown(v, &frame, 0);
        }
        crate::sched::deschedule(v, &frame);
    }
    crate::sched::block(v, &frame, alloc::vec::Vec::new(), u64::MAX);
}

/// Advances rip past the exiting instruction; an undecodable one crashes the domain.
fn skip(v: &mut Vcpu, arch: &mut dyn ArchVcpu, exit: Exit) {
    if arch.skip_instruction().is_none() {
        let rip = arch.regs().rip;
        printk!(
            "{}v{}: cannot decode the instruction at rip {rip:#x} ({exit:?})\n",
            v.domain().label(),
            v.id
        );
        let d = v.domain_static();
        if let Some(hd) = d.hvm.as_ref() {
            crash(v, hd, arch, "undecodable exiting instruction");
        }
    }
}

/// Crashes the domain with a dump of the vCPU's state; does not return.
fn crash(v: &mut Vcpu, hd: &'static HvmDomain, arch: &mut dyn ArchVcpu, why: &str) -> ! {
    let ctl = arch.control();
    printk!(
        "{}v{} HVM: cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x} cs.l {} cpl {}\n",
        v.domain().label(),
        v.id,
        ctl.cr0,
        ctl.cr3,
        ctl.cr4,
        ctl.efer,
        ctl.cs_long,
        ctl.cpl
    );
    let frame = to_frame(arch.regs());
    // The dump reads the guest's stack through its own page tables.
    super::xlat::enter(&hd.p2m, ctl);
    crate::domain::crash(v, &frame, why)
}

/// The scheduler's register image of HVM registers.
pub fn to_frame(r: &GuestRegs) -> TrapFrame {
    TrapFrame {
        rax: r.rax,
        rbx: r.rbx,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        rbp: r.rbp,
        r8: r.r8,
        r9: r.r9,
        r10: r.r10,
        r11: r.r11,
        r12: r.r12,
        r13: r.r13,
        r14: r.r14,
        r15: r.r15,
        rip: r.rip,
        rsp: r.rsp,
        rflags: r.rflags,
        ..TrapFrame::default()
    }
}

/// HVM registers from the scheduler's image.
pub fn from_frame(f: &TrapFrame) -> GuestRegs {
    GuestRegs {
        rax: f.rax,
        rbx: f.rbx,
        rcx: f.rcx,
        rdx: f.rdx,
        rsi: f.rsi,
        rdi: f.rdi,
        rbp: f.rbp,
        r8: f.r8,
        r9: f.r9,
        r10: f.r10,
        r11: f.r11,
        r12: f.r12,
        r13: f.r13,
        r14: f.r14,
        r15: f.r15,
        rip: f.rip,
        rsp: f.rsp,
        rflags: f.rflags,
    }
}
