//! Lazy FPU switching, and handing a vCPU's FPU state over when it may move to another CPU.
//!
//! Each CPU remembers whose FPU/SSE/AVX state its registers hold ([`FPU_OWNER`]). Running a
//! vCPU on the CPU that already holds its state costs nothing; running another saves the
//! owner's state into its save area then (`switch_to`). A vCPU that may migrate cannot leave
//! its state behind in a CPU's registers: another CPU would run it with a stale save area, and
//! the old CPU would later overwrite the save area with that stale state. So the CPU that
//! deschedules such a vCPU saves its state first ([`release`], from the idle loop, before the
//! vCPU's `running` flag drops, which is what makes it eligible to be taken). A vCPU pinned to
//! its CPU (hard affinity of one CPU, or an HVM vCPU) keeps the lazy scheme: its state is in
//! its own CPU's registers or in its save area, and no other CPU ever runs it.

use crate::domain::Vcpu;
use crate::smpboot::NR_CPUS;
use core::sync::atomic::{AtomicU64, Ordering};
use xenolith_arch::percpu;

/// The vCPU whose FPU state each CPU's registers hold (as an address; 0: none).
static FPU_OWNER: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Lets the hypervisor's XSAVE/XRSTOR run.
fn clts() {
    // SAFETY: clearing TS only lets the hypervisor's XSAVE/XRSTOR run; the vCPU's own TS is
    // put back by `sync_cr0_ts` before any vCPU runs.
    unsafe { core::arch::asm!("clts", options(nostack, nomem)) };
}

/// Gives this CPU's FPU to `v`: saves the previous owner's state, loads `v`'s.
pub fn switch_to(v: &mut Vcpu) {
    let slot = &FPU_OWNER[percpu::current().cpu as usize];
    let me = v as *mut Vcpu as u64;
    let owner = slot.load(Ordering::Relaxed);
    if owner == me {
        return;
    }
    clts();
    if owner != 0 {
        // SAFETY: an owner left in this CPU's registers is pinned to this CPU (vCPUs that may
        // migrate are released on the way out), so it is queued here and not running (this CPU
        // is switching away from it); vCPUs are never freed.
        let prev = unsafe { &mut *(owner as *mut Vcpu) };
        xenolith_arch::fpu::save(&mut prev.fpu);
    }
    xenolith_arch::fpu::restore(&v.fpu);
    slot.store(me, Ordering::Relaxed);
}

/// `v` is leaving this CPU and may run elsewhere next: if its state is in this CPU's
/// registers, puts it in its save area. Call before `v.running` is cleared.
pub fn release(v: &mut Vcpu) {
    let slot = &FPU_OWNER[percpu::current().cpu as usize];
    if slot.load(Ordering::Relaxed) != v as *mut Vcpu as u64 {
        return;
    }
    clts();
    xenolith_arch::fpu::save(&mut v.fpu);
    slot.store(0, Ordering::Relaxed);
}
