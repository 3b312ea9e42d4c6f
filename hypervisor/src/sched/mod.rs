//! Where vCPUs run: per-CPU run queues, blocking and waking, time slices, and the
//! inter-processor signals between the CPUs that run them ([`ipi`]).
//!
//! Placement is static: each vCPU is pinned to one CPU when its domain is built (dom0's vCPU
//! *n* on the *n*-th online CPU, further vCPUs round-robin), so a CPU's run queue only ever
//! holds its own vCPUs and no vCPU state moves between CPUs. Several vCPUs may share a CPU:
//! the CPU runs one at a time, switching when the running one blocks (`SCHEDOP_block` or
//! `poll`), yields, goes down, when its time slice ends while another is runnable, or when a
//! vCPU of this CPU is woken (a small boost). Which runnable vCPU comes next is the policy's
//! choice ([`Policy`]; today round-robin). Migration, weights and caps are issue 6's work.
//!
//! Blocking never waits inside a hypercall: the vCPU's registers are saved with the hypercall's
//! result already in `rax`, and the CPU goes to [`idle_loop`], which picks the next runnable
//! vCPU or halts until an interrupt (a kick, a timer). A blocked vCPU becomes runnable again
//! when its wake condition holds, which the idle loop evaluates: an upcall is due (block), one
//! of its ports is pending or the timeout passed (poll). Whoever makes it so kicks its CPU.

pub mod ipi;

use crate::domain::Vcpu;
use crate::smpboot::NR_CPUS;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
pub use ipi::{
    CpuMask, EVENT_CHECK_VECTOR, INVALIDATE_TLB_VECTOR, cpus_of_vcpus, flush_cpus,
    invalidate_interrupt, note_domain_loaded, other_cpus_of, register_cpu, request_register_dump,
    service_dump, service_flush,
};
use spin::Mutex;
use xenolith_arch::trap::TrapFrame;
use xenolith_arch::{cpu, percpu};

/// How long a vCPU runs before another runnable vCPU of its CPU gets a turn.
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Picks the next vCPU to run from a CPU's queue (`sched=` will select among policies).
pub trait Policy {
    /// Index in `queue` of the vCPU to run next, `last` being the index that ran last.
    fn pick(
        &self,
        queue: &[*mut Vcpu],
        last: usize,
        runnable: &dyn Fn(&Vcpu) -> bool,
    ) -> Option<usize>;
}

/// Round-robin: the first runnable vCPU after the one that ran last.
pub struct RoundRobin;

impl Policy for RoundRobin {
    fn pick(
        &self,
        queue: &[*mut Vcpu],
        last: usize,
        runnable: &dyn Fn(&Vcpu) -> bool,
    ) -> Option<usize> {
        let n = queue.len();
        (1..=n).map(|k| (last + k) % n).find(|&i| {
            // SAFETY: queued vCPUs live for the machine's lifetime (domains are never freed).
            runnable(unsafe { &*queue[i] })
        })
    }
}

static POLICY: RoundRobin = RoundRobin;

/// A CPU's vCPUs and where its round-robin stands.
struct RunQueue {
    vcpus: Vec<*mut Vcpu>,
    last: usize,
    /// When the running vCPU's slice ends (system time).
    slice_end: u64,
}

// SAFETY: the raw pointers name vCPUs that live forever; a queue is used by its own CPU (and
// by the boot CPU while placing, under the lock).
unsafe impl Send for RunQueue {}

static RUNQ: [Mutex<RunQueue>; NR_CPUS] = [const {
    Mutex::new(RunQueue {
        vcpus: Vec::new(),
        last: 0,
        slice_end: u64::MAX,
    })
}; NR_CPUS];
/// A vCPU of this CPU was woken while another ran: reconsider on the way back to the guest.
static NEED_RESCHED: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];

/// The executing CPU's number.
pub fn this_cpu() -> u32 {
    percpu::current().cpu
}

/// Queues `v` on its `processor` (pinned); it runs there once it is up.
pub fn place(v: &'static mut Vcpu) {
    if let Some(q) = RUNQ.get(v.processor as usize) {
        q.lock().vcpus.push(v as *mut Vcpu);
    }
}

/// The vCPUs queued on `cpu`, for dumps (read-only).
pub fn queued_on(cpu: u32) -> Vec<&'static Vcpu> {
    RUNQ.get(cpu as usize).map_or(Vec::new(), |q| {
        q.lock()
            .vcpus
            .iter()
            // SAFETY: queued vCPUs live forever; only shared access for a dump.
            .map(|&p| unsafe { &*p })
            .collect()
    })
}

/// Makes the CPU of `v` look at it (Xen's `vcpu_kick`): an event is pending for it, its
/// up/down state changed, or its domain stopped.
pub fn kick(v: &Vcpu) {
    let me = this_cpu();
    if v.processor != me {
        ipi::send_ipi(v.processor, EVENT_CHECK_VECTOR);
    } else if !v.running.load(Ordering::Acquire) {
        // Another vCPU runs here: look again on its way back to the guest.
        NEED_RESCHED[me as usize].store(true, Ordering::Release);
    }
}

/// Whether `v` may run at all: it is up and its domain has not stopped.
pub fn runnable(v: &Vcpu) -> bool {
    v.is_up() && !v.domain().stopped.load(Ordering::Acquire)
}

/// Whether `v` could run now: runnable and, if blocked, its wake condition holds.
fn ready(v: &Vcpu) -> bool {
    runnable(v) && (!v.blocked.load(Ordering::Acquire) || wake_condition(v))
}

/// Why a blocked vCPU may go on: an upcall is due (block), or one of its ports is pending or
/// its timeout passed (poll).
fn wake_condition(v: &Vcpu) -> bool {
    if v.poll_ports.is_empty() && v.poll_deadline == u64::MAX {
        return crate::pv::events::upcall_due(v);
    }
    if crate::pv::time::now() >= v.poll_deadline {
        return true;
    }
    let d = v.domain();
    v.poll_ports
        .iter()
        .any(|&p| crate::pv::events::is_pending(d, p))
}

/// Blocks the current vCPU `v` (its registers `regs`, the hypercall's return value already
/// in `rax`) until its wake condition holds: `SCHEDOP_block` with no ports, `SCHEDOP_poll`
/// with ports and a deadline. Returns at once if the condition holds already.
pub fn block(v: &mut Vcpu, regs: &TrapFrame, ports: Vec<u32>, deadline: u64) {
    v.poll_ports = ports;
    v.poll_deadline = deadline;
    v.polling.store(!v.poll_ports.is_empty(), Ordering::SeqCst);
    v.blocked.store(true, Ordering::SeqCst);
    // Check after publishing `blocked`/`polling`: an event raised since then kicks us.
    if wake_condition(v) {
        unblock(v);
        return;
    }
    let now = crate::pv::time::now();
    v.pv.time_running += now.saturating_sub(v.pv.runstate_entry);
    v.pv.runstate_entry = now;
    deschedule(v, regs)
}

/// Ends `v`'s block (it is about to run again).
fn unblock(v: &mut Vcpu) {
    if v.blocked.swap(false, Ordering::SeqCst) {
        let now = crate::pv::time::now();
        v.pv.time_blocked += now.saturating_sub(v.pv.runstate_entry);
        v.pv.runstate_entry = now;
    }
    v.polling.store(false, Ordering::SeqCst);
    v.poll_ports.clear();
    v.poll_deadline = u64::MAX;
}

/// `SCHEDOP_yield`: lets another runnable vCPU of this CPU run first, if there is one.
pub fn yield_now(v: &mut Vcpu, regs: &TrapFrame) {
    if other_ready(v) {
        deschedule(v, regs);
    }
}

/// Whether a vCPU of this CPU other than `v` could run now.
fn other_ready(v: &Vcpu) -> bool {
    let me = this_cpu() as usize;
    RUNQ[me].lock().vcpus.iter().any(|&p| {
        // SAFETY: queued vCPUs live forever; they are not running (only `v` is).
        !core::ptr::eq(p, v) && ready(unsafe { &*p })
    })
}

/// On the way back to `v` (this CPU's current vCPU, registers `regs`): leaves it if it went
/// down or its domain stopped, or for another vCPU of this CPU that was woken or whose turn
/// came (slice over). Returns normally when `v` goes on.
pub fn check_preempt(v: &mut Vcpu, regs: &TrapFrame) {
    let me = this_cpu() as usize;
    if !runnable(v) {
        deschedule(v, regs);
    }
    let woken = NEED_RESCHED[me].swap(false, Ordering::AcqRel);
    let slice_over = crate::pv::time::now() >= RUNQ[me].lock().slice_end;
    if (woken || slice_over) && other_ready(v) {
        deschedule(v, regs);
    }
}

/// Saves the current vCPU `v`'s state (registers `regs`, segment bases) and lets this CPU
/// pick what runs next. Does not return (the vCPU resumes through `run_vcpu`).
pub fn deschedule(v: &mut Vcpu, regs: &TrapFrame) -> ! {
    v.regs = *regs;
    crate::domain::save_segment_bases(v);
    idle_loop()
}

/// The CPU's scheduling loop: leaves the previous vCPU's address space, then runs the next
/// ready vCPU of its queue, or halts until an interrupt and looks again. Never returns.
pub fn idle_loop() -> ! {
    let me = this_cpu();
    let previous = percpu::current().current_vcpu.swap(0, Ordering::Relaxed);
    // Leave the guest's address space, so no TLB entry of it (global user mappings
    // included) survives here.
    // SAFETY: the hypervisor's own L4 maps everything the hypervisor uses.
    unsafe { cpu::write_cr3(crate::mm::paging::root()) };
    cpu::flush_tlb_global();
    ipi::LOADED_DOMAIN[me as usize].store(ipi::NO_DOMAIN, Ordering::Release);
    if previous != 0 {
        // SAFETY: the vCPU this CPU ran; vCPUs are never freed in this version.
        let v = unsafe { &*(previous as *const Vcpu) };
        v.running.store(false, Ordering::Release);
        // The last vCPU of a stopped domU to leave gives its memory back.
        crate::domain::teardown::relinquish_if_done(v.domain());
    }
    loop {
        x86_64::instructions::interrupts::disable();
        service_flush();
        NEED_RESCHED[me as usize].store(false, Ordering::Release);
        if let Some(v) = pick(me) {
            unblock(v);
            crate::domain::run_vcpu(v);
        }
        rearm_timer();
        cpu::idle_halt();
    }
}

/// The next vCPU for `cpu` by the policy, its slice started.
fn pick(cpu: u32) -> Option<&'static mut Vcpu> {
    let mut q = RUNQ[cpu as usize].lock();
    let last = q.last;
    let i = POLICY.pick(&q.vcpus, last, &ready)?;
    q.last = i;
    q.slice_end = crate::pv::time::now().saturating_add(TIME_SLICE_NS);
    // SAFETY: queued vCPUs live forever, and only this CPU (their CPU) takes them mutably.
    Some(unsafe { &mut *q.vcpus[i] })
}

/// The timer interrupt on this CPU: fires the due guest timers of every vCPU queued here
/// (`VIRQ_TIMER`, poll timeouts become wake-ups) and re-arms for the earliest deadline.
pub fn timer_tick() {
    let me = this_cpu() as usize;
    let vcpus: Vec<*mut Vcpu> = RUNQ[me].lock().vcpus.clone();
    for p in vcpus {
        // SAFETY: this CPU's vCPUs; the running one (if any) is interrupted, the others are
        // not running anywhere.
        let v = unsafe { &mut *p };
        if runnable(v) {
            crate::pv::time::fire_due(v);
        }
    }
    rearm_timer();
}

/// Programs this CPU's LAPIC timer for the earliest of its vCPUs' timer deadlines and poll
/// timeouts, and the running vCPU's slice end when another could take its turn.
pub fn rearm_timer() {
    let me = this_cpu() as usize;
    let q = RUNQ[me].lock();
    let mut next = u64::MAX;
    let mut live = 0;
    for &p in q.vcpus.iter() {
        // SAFETY: this CPU's vCPUs, read only.
        let v = unsafe { &*p };
        if !runnable(v) {
            continue;
        }
        live += 1;
        next = next.min(v.pv.timer_deadline).min(v.pv.periodic_next);
        if v.blocked.load(Ordering::Relaxed) {
            next = next.min(v.poll_deadline);
        }
    }
    if live > 1 && percpu::current().current_vcpu.load(Ordering::Relaxed) != 0 {
        next = next.min(q.slice_end);
    }
    drop(q);
    if next == u64::MAX {
        crate::time::stop_oneshot();
    } else {
        let now = crate::pv::time::now();
        crate::time::arm_oneshot_ns(next.saturating_sub(now).max(1000));
    }
}
