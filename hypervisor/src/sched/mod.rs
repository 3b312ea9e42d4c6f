//! Where vCPUs run: per-CPU run queues, blocking and waking, time slices, and the
//! inter-processor signals between the CPUs that run them ([`ipi`]).
//!
//! Placement is static: each vCPU is pinned to one CPU when its domain is built (dom0's vCPU
//! *n* on the *n*-th online CPU, further vCPUs round-robin), so a CPU's run queue only ever
//! holds its own vCPUs and no vCPU state moves between CPUs. Several vCPUs may share a CPU:
//! the CPU runs one at a time, switching when the running one blocks (`SCHEDOP_block` or
//! `poll`), yields, goes down, and asking the policy again when its time slice ends or a vCPU
//! of this CPU is woken. Which ready vCPU runs, and for how long, is the policy's choice
//! ([`Policy`], selected with `sched=`: [`credit`] by default, [`policy::RoundRobin`] with
//! `sched=rr`); docs/scheduler.md describes both.
//!
//! Blocking never waits inside a hypercall: the vCPU's registers are saved with the hypercall's
//! result already in `rax`, and the CPU goes to [`idle_loop`], which picks the next runnable
//! vCPU or halts until an interrupt (a kick, a timer). A blocked vCPU becomes runnable again
//! when its wake condition holds, which the idle loop evaluates: an upcall is due (block), one
//! of its ports is pending or the timeout passed (poll). Whoever makes it so kicks its CPU.

pub mod credit;
#[cfg(target_os = "none")]
pub mod ipi;
pub mod policy;
#[cfg(test)]
mod sim_tests;

#[cfg(target_os = "none")]
use crate::domain::Vcpu;
#[cfg(target_os = "none")]
use crate::smpboot::NR_CPUS;
#[cfg(target_os = "none")]
use alloc::vec::Vec;
#[cfg(target_os = "none")]
use core::sync::atomic::{AtomicBool, AtomicU8, Ordering};
#[cfg(target_os = "none")]
pub use ipi::{
    CpuMask, EVENT_CHECK_VECTOR, INVALIDATE_TLB_VECTOR, cpus_of_vcpus, flush_cpus,
    invalidate_interrupt, note_domain_loaded, other_cpus_of, register_cpu, request_register_dump,
    service_dump, service_flush,
};
#[cfg(target_os = "none")]
use policy::{CpuPolicy, RoundRobin, VcpuParams};
pub use policy::{DEFAULT_WEIGHT, Policy, SchedParams, TIME_SLICE_NS};
#[cfg(target_os = "none")]
use spin::Mutex;
#[cfg(target_os = "none")]
use xenolith_arch::trap::TrapFrame;
#[cfg(target_os = "none")]
use xenolith_arch::{cpu, percpu};

/// The policy `sched=` selected: 0 credit, 1 round-robin.
#[cfg(target_os = "none")]
static POLICY: AtomicU8 = AtomicU8::new(0);

/// Records the `sched=` choice (the options parser calls this before any vCPU is placed).
#[cfg(target_os = "none")]
pub fn select(sched: crate::options::Sched) {
    let kind = match sched {
        crate::options::Sched::Credit => 0,
        crate::options::Sched::RoundRobin => 1,
    };
    POLICY.store(kind, Ordering::Relaxed);
}

/// A fresh policy of the selected kind, for a CPU's first vCPU.
#[cfg(target_os = "none")]
fn new_policy() -> CpuPolicy {
    match POLICY.load(Ordering::Relaxed) {
        1 => CpuPolicy::RoundRobin(RoundRobin::new()),
        _ => CpuPolicy::Credit(credit::Credit::new()),
    }
}

/// Per-domain parameters set before the domain's vCPUs are placed (`domU ... weight= cap=`);
/// a domain not listed (dom0) has the defaults.
#[cfg(target_os = "none")]
static PARAMS: Mutex<Vec<(u16, SchedParams)>> = Mutex::new(Vec::new());

/// Sets domain `domid`'s weight and cap; call before [`place`] for its vCPUs.
#[cfg(target_os = "none")]
pub fn set_params(domid: u16, params: SchedParams) {
    let mut t = PARAMS.lock();
    t.retain(|&(d, _)| d != domid);
    t.push((domid, params));
}

/// Domain `domid`'s parameters.
#[cfg(target_os = "none")]
pub fn params_of(domid: u16) -> SchedParams {
    PARAMS
        .lock()
        .iter()
        .find(|&&(d, _)| d == domid)
        .map_or_else(SchedParams::default, |&(_, p)| p)
}

/// A CPU's vCPUs, its policy, and what runs.
#[cfg(target_os = "none")]
struct RunQueue {
    vcpus: Vec<*mut Vcpu>,
    /// The policy's state for `vcpus` (same indices).
    policy: CpuPolicy,
    /// The index of the vCPU this CPU runs (or last ran, until it is charged).
    running: Option<usize>,
    /// When `running` started or was last charged (system time).
    run_start: u64,
    /// When the running vCPU's slice ends (system time).
    slice_end: u64,
    /// The vCPU a preemption decided on, run next if still ready.
    handoff: Option<usize>,
}

// SAFETY: the raw pointers name vCPUs that live forever; a queue is used by its own CPU (and
// by the boot CPU while placing, under the lock).
#[cfg(target_os = "none")]
unsafe impl Send for RunQueue {}

#[cfg(target_os = "none")]
static RUNQ: [Mutex<RunQueue>; NR_CPUS] = [const {
    Mutex::new(RunQueue {
        vcpus: Vec::new(),
        policy: CpuPolicy::Credit(credit::Credit::new()),
        running: None,
        run_start: 0,
        slice_end: u64::MAX,
        handoff: None,
    })
}; NR_CPUS];
/// A vCPU of this CPU was woken while another ran: reconsider on the way back to the guest.
#[cfg(target_os = "none")]
static NEED_RESCHED: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];

/// The executing CPU's number.
#[cfg(target_os = "none")]
pub fn this_cpu() -> u32 {
    percpu::current().cpu
}

/// Queues `v` on its `processor` (pinned); it runs there once it is up.
#[cfg(target_os = "none")]
pub fn place(v: &'static mut Vcpu) {
    let d = v.domain();
    let params = VcpuParams {
        domain: d.id,
        vcpu: v.id,
        sched: params_of(d.id),
        domain_vcpus: d.vcpus.len() as u32,
    };
    if let Some(q) = RUNQ.get(v.processor as usize) {
        let mut q = q.lock();
        if q.vcpus.is_empty() {
            q.policy = new_policy();
        }
        q.vcpus.push(v as *mut Vcpu);
        q.policy.add(params);
    }
}

/// The vCPUs queued on `cpu`, for dumps (read-only).
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
pub fn runnable(v: &Vcpu) -> bool {
    v.is_up() && !v.domain().stopped.load(Ordering::Acquire)
}

/// Whether `v` could run now: runnable and, if blocked, its wake condition holds.
#[cfg(target_os = "none")]
fn ready(v: &Vcpu) -> bool {
    runnable(v) && (!v.blocked.load(Ordering::Acquire) || wake_condition(v))
}

/// Why a blocked vCPU may go on: an upcall is due (block), or one of its ports is pending or
/// its timeout passed (poll).
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
pub fn yield_now(v: &mut Vcpu, regs: &TrapFrame) {
    if other_ready(v) {
        let mut q = RUNQ[this_cpu() as usize].lock();
        if let Some(i) = q.running {
            q.policy.yielded(i);
        }
        drop(q);
        deschedule(v, regs);
    }
}

/// Whether a vCPU of this CPU other than `v` could run now.
#[cfg(target_os = "none")]
fn other_ready(v: &Vcpu) -> bool {
    let me = this_cpu() as usize;
    RUNQ[me].lock().vcpus.iter().any(|&p| {
        // SAFETY: queued vCPUs live forever; they are not running (only `v` is).
        !core::ptr::eq(p, v) && ready(unsafe { &*p })
    })
}

/// On the way back to `v` (this CPU's current vCPU, registers `regs`): leaves it if it went
/// down or its domain stopped; when a vCPU of this CPU was woken or `v`'s slice is over, asks
/// the policy again and leaves `v` for its choice (or for nothing, if `v` is parked by its
/// cap). Returns normally when `v` goes on.
#[cfg(target_os = "none")]
pub fn check_preempt(v: &mut Vcpu, regs: &TrapFrame) {
    let me = this_cpu() as usize;
    if !runnable(v) {
        deschedule(v, regs);
    }
    let woken = NEED_RESCHED[me].swap(false, Ordering::AcqRel);
    let slice_over = crate::pv::time::now() >= RUNQ[me].lock().slice_end;
    if (woken || slice_over) && !repick(me, v) {
        deschedule(v, regs);
    }
}

/// Charges the running vCPU `v` and asks the policy what runs now: `true` if `v` goes on (a
/// new slice started), else the choice is handed to the idle loop.
#[cfg(target_os = "none")]
fn repick(me: usize, v: &Vcpu) -> bool {
    let now = crate::pv::time::now();
    let mut guard = RUNQ[me].lock();
    let q = &mut *guard;
    let Some(cur) = q.running else {
        return true;
    };
    q.policy.charge(cur, now.saturating_sub(q.run_start), now);
    q.run_start = now;
    let next = choose(q, now);
    if next == Some(cur) && core::ptr::eq(q.vcpus[cur].cast_const(), v) {
        q.slice_end = now.saturating_add(q.policy.slice(cur, now));
        return true;
    }
    q.handoff = next;
    false
}

/// The policy's choice among the ready vCPUs of `q`, telling it first which blocked ones wake.
#[cfg(target_os = "none")]
fn choose(q: &mut RunQueue, now: u64) -> Option<usize> {
    for (i, &p) in q.vcpus.iter().enumerate() {
        // SAFETY: queued vCPUs live forever; only their atomics and wake state are read.
        let v = unsafe { &*p };
        if runnable(v) && v.blocked.load(Ordering::Acquire) && wake_condition(v) {
            q.policy.wake(i);
        }
    }
    let vcpus = &q.vcpus;
    q.policy.pick(now, &|i| {
        // SAFETY: as above.
        ready(unsafe { &*vcpus[i] })
    })
}

/// The accounting hook of [`idle_loop`]: charges the vCPU this CPU just left for the time it
/// ran, and closes its runstate's running interval unless it blocked (`block` did that).
#[cfg(target_os = "none")]
fn charge_previous(me: usize) {
    let now = crate::pv::time::now();
    let mut guard = RUNQ[me].lock();
    let q = &mut *guard;
    let Some(i) = q.running.take() else {
        return;
    };
    q.policy.charge(i, now.saturating_sub(q.run_start), now);
    // SAFETY: the vCPU this CPU just left (its `running` flag is still set, so no other CPU
    // touches its state); vCPUs live forever.
    let v = unsafe { &mut *q.vcpus[i] };
    if !v.blocked.load(Ordering::Acquire) {
        v.pv.time_running += now.saturating_sub(v.pv.runstate_entry);
        v.pv.runstate_entry = now;
    }
}

/// Saves the current vCPU `v`'s state (registers `regs`, segment bases) and lets this CPU
/// pick what runs next. Does not return (the vCPU resumes through `run_vcpu`).
#[cfg(target_os = "none")]
pub fn deschedule(v: &mut Vcpu, regs: &TrapFrame) -> ! {
    v.regs = *regs;
    crate::domain::save_segment_bases(v);
    idle_loop()
}

/// The CPU's scheduling loop: leaves the previous vCPU's address space, then runs the next
/// ready vCPU of its queue, or halts until an interrupt and looks again. Never returns.
#[cfg(target_os = "none")]
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
        charge_previous(me as usize);
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

/// The next vCPU for `cpu` (a preemption's choice if still ready, else the policy's), its
/// slice started.
#[cfg(target_os = "none")]
fn pick(cpu: u32) -> Option<&'static mut Vcpu> {
    let now = crate::pv::time::now();
    let mut guard = RUNQ[cpu as usize].lock();
    let q = &mut *guard;
    let handoff = q.handoff.take().filter(|&i| {
        // SAFETY: queued vCPUs live forever; only their state flags are read.
        ready(unsafe { &*q.vcpus[i] })
    });
    let i = match handoff {
        Some(i) => i,
        None => choose(q, now)?,
    };
    q.running = Some(i);
    q.run_start = now;
    q.slice_end = now.saturating_add(q.policy.slice(i, now));
    // SAFETY: queued vCPUs live forever, and only this CPU (their CPU) takes them mutably.
    let v = unsafe { &mut *q.vcpus[i] };
    if !v.blocked.load(Ordering::Acquire) {
        // Waiting to run is not running (a woken vCPU's blocked time ends in `unblock`).
        v.pv.runstate_entry = now;
    }
    Some(v)
}

/// The timer interrupt on this CPU: fires the due guest timers of every vCPU queued here
/// (`VIRQ_TIMER`, poll timeouts become wake-ups) and re-arms for the earliest deadline.
#[cfg(target_os = "none")]
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
#[cfg(target_os = "none")]
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
    // A parked vCPU's release, a capped one's budget end.
    next = next.min(q.policy.wakeup());
    drop(q);
    if next == u64::MAX {
        crate::time::stop_oneshot();
    } else {
        let now = crate::pv::time::now();
        crate::time::arm_oneshot_ns(next.saturating_sub(now).max(1000));
    }
}
