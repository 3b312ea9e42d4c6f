//! Running a PV vCPU on this CPU, switching it between guest kernel and user mode, and ending
//! its domain (shutdown, crash).

use super::Vcpu;
use crate::{printk, shutdown};
use core::sync::atomic::Ordering;
use xenolith_arch::cpu::{msr, wrmsr};
use xenolith_arch::percpu;
use xenolith_arch::trap::TrapFrame;

/// Offsets in `struct vcpu_info` (`xen/include/public/xen.h`).
const VCPU_INFO_UPCALL_MASK: u64 = 1;
const VCPU_INFO_CR2: u64 = 16;

/// The vCPU's `evtchn_upcall_mask`.
pub fn upcall_mask(v: &Vcpu) -> u8 {
    if v.pv.vcpu_info == 0 {
        return 1;
    }
    // SAFETY: `vcpu_info` is the direct-map address of the vCPU's vcpu_info (in shared_info
    // or a registered guest page the hypervisor holds a reference to).
    unsafe { ((v.pv.vcpu_info + VCPU_INFO_UPCALL_MASK) as *const u8).read_volatile() }
}

/// Sets the vCPU's `evtchn_upcall_mask`.
pub fn set_upcall_mask(v: &mut Vcpu, mask: u8) {
    if v.pv.vcpu_info != 0 {
        // SAFETY: as in `upcall_mask`.
        unsafe { ((v.pv.vcpu_info + VCPU_INFO_UPCALL_MASK) as *mut u8).write_volatile(mask) };
    }
}

/// Records the faulting address for the guest's page-fault handler (`vcpu_info.arch.cr2`).
pub fn set_cr2(v: &mut Vcpu, cr2: u64) {
    if v.pv.vcpu_info != 0 {
        // SAFETY: as in `upcall_mask`.
        unsafe { ((v.pv.vcpu_info + VCPU_INFO_CR2) as *mut u64).write_volatile(cr2) };
    }
}

/// Switches between guest kernel and user mode: page tables and the GS bases swap
/// (Xen's `toggle_guest_mode`).
pub fn toggle_guest_mode(v: &mut Vcpu) {
    v.pv.kernel_mode = !v.pv.kernel_mode;
    let (table, gs) = if v.pv.kernel_mode {
        (v.pv.guest_table, v.pv.gs_base_kernel)
    } else {
        (v.pv.guest_table_user, v.pv.gs_base_user)
    };
    let other_gs = if v.pv.kernel_mode {
        v.pv.gs_base_user
    } else {
        v.pv.gs_base_kernel
    };
    // SAFETY: both L4s were validated as L4 page tables of this domain and carry the
    // hypervisor slots; the GS bases were checked canonical when set.
    unsafe {
        xenolith_arch::cpu::write_cr3(table << 12);
        wrmsr(msr::GS_BASE, gs);
        wrmsr(msr::SHADOW_GS_BASE, other_gs);
    }
}

/// Gives this CPU's FPU to `v` (lazy FPU switching, `sched::fpu`: the previous owner's
/// state is saved only now, unless it left for a CPU of its own).
fn switch_fpu(v: &mut Vcpu) {
    crate::sched::fpu::switch_to(v);
}

/// Records the segment bases `v` runs with (on its way off the CPU): the guest may have
/// changed them without a hypercall (loading a selector).
pub fn save_segment_bases(v: &mut Vcpu) {
    // SAFETY: reading the base MSRs has no side effects.
    let (fs, gs, shadow) = unsafe {
        (
            xenolith_arch::cpu::rdmsr(msr::FS_BASE),
            xenolith_arch::cpu::rdmsr(msr::GS_BASE),
            xenolith_arch::cpu::rdmsr(msr::SHADOW_GS_BASE),
        )
    };
    v.pv.fs_base = fs;
    if v.pv.kernel_mode {
        (v.pv.gs_base_kernel, v.pv.gs_base_user) = (gs, shadow);
    } else {
        (v.pv.gs_base_user, v.pv.gs_base_kernel) = (gs, shadow);
    }
}

/// Starts (or resumes) `v` on this CPU with its saved registers; does not return.
pub fn run_vcpu(v: &'static mut Vcpu) -> ! {
    let info = percpu::current();
    info.current_vcpu
        .store(v as *mut Vcpu as u64, Ordering::Relaxed);
    v.running.store(true, Ordering::Release);
    // From here this CPU may cache the domain's translations (TLB shootdowns include it).
    crate::sched::note_domain_loaded(v.domain().id);
    if v.pv.periodic_period != 0 && v.pv.periodic_next == u64::MAX {
        // First run of a secondary vCPU: its default periodic timer starts now.
        v.pv.periodic_next = crate::pv::time::now() + v.pv.periodic_period;
    }
    switch_fpu(v);
    crate::pv::emulate::sync_cr0_ts(v);
    crate::pv::time::update_vcpu_time(v);
    crate::pv::time::update_wallclock(xenolith_arch::layout::phys_to_virt(
        v.domain().shared_info_mfn << 12,
    ));
    crate::pv::time::arm(v);
    // Guest accesses of hypercalls go straight to the PV guest unless an HVM loop says so.
    crate::hvm::xlat::leave();
    if v.hvm.is_some() {
        crate::hvm::run::run(v);
    }
    crate::hypercall::desc::load_guest_gdt(v);
    let frame = xenolith_arch::guest_entry::frame_at(percpu::guest_frame_top(info.stack_base));
    // SAFETY: the frame area belongs to this CPU; the vCPU's saved registers are a complete
    // ring-3 context (the builder or the last exit wrote them).
    unsafe { (frame as *mut TrapFrame).write(v.regs) };
    let (table, gs, shadow_gs) = if v.pv.kernel_mode {
        (v.pv.guest_table, v.pv.gs_base_kernel, v.pv.gs_base_user)
    } else {
        (
            v.pv.guest_table_user,
            v.pv.gs_base_user,
            v.pv.gs_base_kernel,
        )
    };
    // SAFETY: the L4 was built/validated for this domain and maps the hypervisor slots, so
    // execution continues; segment bases are canonical.
    unsafe {
        xenolith_arch::cpu::write_cr3(table << 12);
        wrmsr(msr::FS_BASE, v.pv.fs_base);
        wrmsr(msr::GS_BASE, gs);
        wrmsr(msr::SHADOW_GS_BASE, shadow_gs);
    }
    if v.pv.runstate_area != 0 {
        // Xen refreshes the area on every switch; a bad address is the guest's problem.
        let bytes = crate::hypercall::vcpu_op::runstate_bytes(v);
        let _ = crate::guest_mem::copy_to_guest(v.pv.runstate_area, &bytes);
    }
    // SAFETY: as above: the frame is this CPU's and complete.
    let regs = unsafe { &mut *(frame as *mut TrapFrame) };
    // An upcall may be due (the vCPU was woken for it): deliver it on the way in.
    crate::pv::events::deliver_upcall(v, regs);
    // SAFETY: the frame holds the context to enter, on this CPU's guest-frame area.
    unsafe { xenolith_arch::guest_entry::enter_guest(frame) }
}

/// Prints a vCPU's guest registers, Xen-style (crash reports and the `d` debug key).
pub fn dump_guest(v: &Vcpu, r: &TrapFrame) {
    let d = v.domain().label();
    printk!(
        "{d}v{} RIP: {:04x}:[<{:016x}>] RFLAGS: {:016x} {} mode\n",
        v.id,
        r.cs,
        r.rip,
        r.rflags,
        if v.pv.kernel_mode { "kernel" } else { "user" }
    );
    printk!(
        "{d}v{} rax: {:016x} rbx: {:016x} rcx: {:016x} rdx: {:016x}\n",
        v.id,
        r.rax,
        r.rbx,
        r.rcx,
        r.rdx
    );
    printk!(
        "{d}v{} rsi: {:016x} rdi: {:016x} rbp: {:016x} rsp: {:016x}\n",
        v.id,
        r.rsi,
        r.rdi,
        r.rbp,
        r.rsp
    );
    printk!(
        "{d}v{} r8:  {:016x} r9:  {:016x} r10: {:016x} r11: {:016x}\n",
        v.id,
        r.r8,
        r.r9,
        r.r10,
        r.r11
    );
    printk!(
        "{d}v{} r12: {:016x} r13: {:016x} r14: {:016x} r15: {:016x}\n",
        v.id,
        r.r12,
        r.r13,
        r.r14,
        r.r15
    );
    printk!(
        "{d}v{} cr3: {:016x} ss: {:04x} entry vector {:#x} error code {:#x}\n",
        v.id,
        v.pv.guest_table << 12,
        r.ss,
        r.entry_vector,
        r.error_code
    );
    let mut words = [0u8; 64];
    if crate::guest_mem::copy_from_guest(&mut words, r.rsp).is_ok() {
        let w: alloc::vec::Vec<u64> = words
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect();
        printk!(
            "{d}v{} stack: {:016x} {:016x} {:016x} {:016x}\n",
            v.id,
            w[0],
            w[1],
            w[2],
            w[3]
        );
        printk!(
            "{d}v{}        {:016x} {:016x} {:016x} {:016x}\n",
            v.id,
            w[4],
            w[5],
            w[6],
            w[7]
        );
    }
}

/// Crashes the vCPU's domain (Xen's `domain_crash`): prints why and the guest state, then ends
/// it. The hypervisor keeps running; for the hardware domain that means the machine's
/// crash policy (reboot, or halt with `noreboot`).
pub fn crash(v: &mut Vcpu, regs: &TrapFrame, why: &str) -> ! {
    printk!(
        "domain_crash called from {}v{}: {why}\n",
        v.domain().label(),
        v.id
    );
    dump_guest(v, regs);
    v.domain().inner.lock().state = super::DomainState::Crashed;
    stop_domain(v);
    if v.domain().privileged {
        printk!("Hardware Dom0 crashed: ");
        shutdown::dom0_crashed();
    }
    idle()
}

/// `SCHEDOP_shutdown`: ends the domain with `reason`; for dom0, the machine follows.
pub fn shutdown_domain(v: &mut Vcpu, regs: &TrapFrame, reason: u32) {
    let name = super::shutdown_reason_name(reason);
    if reason == 3 {
        // SHUTDOWN_crash: the guest reports its own crash.
        crash(v, regs, "the guest requested SHUTDOWN_crash");
    }
    // Said before the domain is stopped: stopping it tells dom0 (VIRQ_DOM_EXC), which may
    // power the machine off at once.
    printk!(
        "{}: shutdown, reason {reason} ({name})\n",
        v.domain().label()
    );
    v.domain().inner.lock().state = super::DomainState::Shutdown(reason);
    stop_domain(v);
    if v.domain().privileged {
        super::list::print();
        match reason {
            0 => {
                printk!("Hardware Dom0 halted: powering off machine\n");
                shutdown::poweroff();
            }
            2 => printk!("Hardware Dom0 suspend is not supported: halting it\n"),
            _ => {
                printk!("Hardware Dom0 shutdown: rebooting machine\n");
                crate::console::flush();
                shutdown::reboot();
            }
        }
    }
    idle()
}

/// Marks `v`'s domain stopped, makes its other vCPUs leave their CPUs and, for a domU, tells
/// dom0 with `VIRQ_DOM_EXC` (Xen's `send_global_virq` when a domain shuts down or crashes).
fn stop_domain(v: &Vcpu) {
    stop(v.domain(), Some(v.id));
}

/// Marks `d` stopped and kicks its vCPUs (but `except`, the caller) off their CPUs.
fn stop(d: &super::Domain, except: Option<u32>) {
    d.stopped.store(true, Ordering::SeqCst);
    for w in d.vcpus.iter().filter(|w| Some(w.id) != except) {
        crate::sched::kick(w);
    }
    if !d.privileged
        && let Some(v0) = super::registry::get_live(0).and_then(|d0| d0.vcpus.first())
    {
        crate::pv::events::send_virq(v0, xen_abi::xen::VIRQ_DOM_EXC);
    }
}

/// `SCHEDOP_remote_shutdown` of another domain `d` (by the control domain): ends it with
/// `reason`; its vCPUs leave their CPUs and its memory goes back once they have.
pub fn shutdown_remote(d: &super::Domain, reason: u32) {
    {
        let mut inner = d.inner.lock();
        if inner.state != super::DomainState::Running {
            return;
        }
        inner.state = super::DomainState::Shutdown(reason);
    }
    printk!(
        "{}: shutdown, reason {reason} ({}) (remote)\n",
        d.label(),
        super::shutdown_reason_name(reason)
    );
    stop(d, None);
}

/// Parks this CPU (its vCPU's domain stopped).
fn idle() -> ! {
    crate::sched::idle_loop()
}
