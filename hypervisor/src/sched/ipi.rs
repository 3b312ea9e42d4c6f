//! The signals between CPUs (Xen's `EVENT_CHECK_VECTOR` and `INVALIDATE_TLB_VECTOR`):
//! kicking a CPU to look at its vCPUs, TLB shootdowns, and register dumps for the `d` key.
//!
//! A shootdown's initiator waits for every acknowledgement, and while it waits (or spins for
//! the PV-MMU lock, see `mm::frametable::lock`) it answers flush requests aimed at itself, so
//! two CPUs flushing each other cannot deadlock with interrupts off.

use super::cpumask::CpuMask;
use super::{processor, this_cpu};
use crate::domain::Vcpu;
use crate::smpboot::NR_CPUS;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use xenolith_arch::{apic, cpu, percpu};

/// Vector of the "check your vCPUs" IPI (Xen's `EVENT_CHECK_VECTOR`).
pub const EVENT_CHECK_VECTOR: u8 = 0xfc;
/// Vector of the TLB-shootdown IPI (Xen's `INVALIDATE_TLB_VECTOR`).
pub const INVALIDATE_TLB_VECTOR: u8 = 0xfd;

/// No domain: the CPU is idle on the hypervisor's own page tables.
pub(super) const NO_DOMAIN: u32 = u32::MAX;

/// The domain whose page tables each CPU may hold TLB entries of (Xen's `dirty_cpumask`,
/// kept per CPU instead of per domain).
pub(super) static LOADED_DOMAIN: [AtomicU32; NR_CPUS] =
    [const { AtomicU32::new(NO_DOMAIN) }; NR_CPUS];
/// A TLB flush was requested of each CPU and not yet done.
static FLUSH_PENDING: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];
/// Serialises flush initiators (one shootdown in flight at a time, as Xen's `flush_lock`).
static FLUSH_LOCK: AtomicBool = AtomicBool::new(false);
/// Local APIC id of each CPU, for IPIs (filled as CPUs come online).
static APIC_ID: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(u32::MAX) }; NR_CPUS];
/// A register dump was requested of each CPU (debug key `d`).
static DUMP_PENDING: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];

/// Records that logical CPU `cpu` has local APIC id `apic_id` (for IPIs).
pub fn register_cpu(cpu: u32, apic_id: u32) {
    if let Some(slot) = APIC_ID.get(cpu as usize) {
        slot.store(apic_id, Ordering::Release);
    }
}

/// Sends `vector` to `cpu` (no-op for an unknown CPU).
pub(super) fn send_ipi(cpu: u32, vector: u8) {
    let Some(id) = APIC_ID.get(cpu as usize).map(|a| a.load(Ordering::Acquire)) else {
        return;
    };
    if id != u32::MAX {
        // Fixed delivery, physical destination, edge, assert.
        apic::send_ipi(id, (1 << 14) | u32::from(vector));
    }
}

/// Records that this CPU now runs `dom`'s page tables (before loading them).
pub fn note_domain_loaded(dom: u16) {
    LOADED_DOMAIN[this_cpu() as usize].store(u32::from(dom), Ordering::Release);
}

/// The CPUs other than this one that may hold TLB entries of `dom`'s page tables.
pub fn other_cpus_of(dom: u16) -> CpuMask {
    let me = this_cpu();
    let mut m = CpuMask::default();
    for (cpu, d) in LOADED_DOMAIN.iter().enumerate() {
        if cpu as u32 != me && d.load(Ordering::Acquire) == u32::from(dom) {
            m.set(cpu as u32);
        }
    }
    m
}

/// The CPUs of the vCPUs of `v`'s domain whose ids are set in `vcpu_mask` (bit *n* = vCPU
/// *n*), other than this CPU. A vCPU that moves meanwhile is no loss: it left its old CPU
/// through the idle loop, which flushed that CPU's TLB, and starts afresh on the new one.
pub fn cpus_of_vcpus(v: &Vcpu, vcpu_mask: u64) -> CpuMask {
    let me = this_cpu();
    let mut m = CpuMask::default();
    for w in v.domain().vcpus.iter() {
        let cpu = processor(w);
        if w.id < 64 && vcpu_mask & (1 << w.id) != 0 && cpu != me {
            m.set(cpu);
        }
    }
    m
}

/// Flushes the TLBs (global entries too) of every CPU in `cpus`, waiting until each has.
/// This CPU, if in the set, flushes first.
pub fn flush_cpus(cpus: &CpuMask) {
    let me = this_cpu();
    let mut others = *cpus;
    if others.contains(me) {
        cpu::flush_tlb_global();
        others.clear(me);
    }
    if others.is_empty() {
        return;
    }
    while FLUSH_LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        service_flush();
        core::hint::spin_loop();
    }
    for cpu in others.iter() {
        FLUSH_PENDING[cpu as usize].store(true, Ordering::Release);
        send_ipi(cpu, INVALIDATE_TLB_VECTOR);
    }
    for cpu in others.iter() {
        while FLUSH_PENDING[cpu as usize].load(Ordering::Acquire) {
            service_flush();
            core::hint::spin_loop();
        }
    }
    FLUSH_LOCK.store(false, Ordering::Release);
}

/// Does a flush requested of this CPU, if any (from the IPI, or while this CPU spins).
pub fn service_flush() {
    let me = this_cpu() as usize;
    if FLUSH_PENDING[me].load(Ordering::Acquire) {
        cpu::flush_tlb_global();
        FLUSH_PENDING[me].store(false, Ordering::Release);
    }
}

/// The TLB-shootdown IPI.
pub fn invalidate_interrupt() {
    service_flush();
    apic::eoi();
}

/// Asks every online CPU to print the state it interrupted (debug key `d`): this one at once,
/// the others from their event-check IPI.
pub fn request_register_dump() {
    let me = this_cpu();
    for cpu in crate::smpboot::online_cpus() {
        DUMP_PENDING[cpu as usize].store(true, Ordering::Release);
        if cpu != me {
            send_ipi(cpu, EVENT_CHECK_VECTOR);
        }
    }
}

/// Prints this CPU's interrupted state if a dump was requested: the guest's registers when
/// `regs` is a guest frame.
pub fn service_dump(regs: &xenolith_arch::trap::TrapFrame, from_guest: bool) {
    let me = this_cpu();
    if !DUMP_PENDING[me as usize].swap(false, Ordering::AcqRel) {
        return;
    }
    match percpu::current().current_vcpu.load(Ordering::Relaxed) {
        0 => crate::printk!("*** CPU{me}: idle ***\n"),
        p => {
            // SAFETY: this CPU's current vCPU, which it alone uses.
            let v = unsafe { &*(p as *const Vcpu) };
            if from_guest {
                crate::printk!(
                    "*** Dumping CPU{me} guest state ({}v{}): ***\n",
                    v.domain().label(),
                    v.id
                );
                crate::domain::dump_guest(v, regs);
            } else {
                crate::printk!(
                    "*** CPU{me}: in the hypervisor for {}v{} ***\n",
                    v.domain().label(),
                    v.id
                );
            }
        }
    }
}
