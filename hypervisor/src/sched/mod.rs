//! Where vCPUs run: per-CPU run queues, blocking and waking, time slices, migration between
//! CPUs ([`migrate`]), and the inter-processor signals between the CPUs that run them ([`ipi`]).
//!
//! Each vCPU is queued on one CPU at a time (`Vcpu::processor`), placed there when its domain
//! is built (dom0's vCPU *n* on the *n*-th online CPU, further vCPUs round-robin, within each
//! vCPU's hard affinity). Several vCPUs may share a CPU: the CPU runs one at a time, switching
//! when the running one blocks (`SCHEDOP_block` or `poll`), yields, goes down, and asking the
//! policy again when its time slice ends or a vCPU of this CPU is woken. Which ready vCPU
//! runs, and for how long, is the policy's choice ([`Policy`], selected with `sched=`:
//! [`credit`] by default, [`policy::RoundRobin`] with `sched=rr`). A CPU that finds nothing to
//! run takes a waiting vCPU from a busy CPU if the vCPU's affinity allows ([`migrate`]); HVM
//! vCPUs never move. docs/scheduler.md describes all of it.
//!
//! Blocking never waits inside a hypercall: the vCPU's registers are saved with the hypercall's
//! result already in `rax`, and the CPU goes to [`idle_loop`], which picks the next runnable
//! vCPU or halts until an interrupt (a kick, a timer). A blocked vCPU becomes runnable again
//! when its wake condition holds, which the idle loop evaluates: an upcall is due (block), one
//! of its ports is pending or the timeout passed (poll). Whoever makes it so kicks its CPU.

pub mod cpumask;
pub mod credit;
#[cfg(target_os = "none")]
pub mod fpu;
#[cfg(target_os = "none")]
pub mod ipi;
#[cfg(target_os = "none")]
mod migrate;
#[cfg(target_os = "none")]
pub use migrate::activate as allow_migration;
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
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicUsize, Ordering};
pub use cpumask::CpuMask;
#[cfg(target_os = "none")]
pub use ipi::{
    EVENT_CHECK_VECTOR, INVALIDATE_TLB_VECTOR, cpus_of_vcpus, flush_cpus, invalidate_interrupt,
    note_domain_loaded, other_cpus_of, register_cpu, request_register_dump, service_dump,
    service_flush,
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

// A CPU mask must be able to name every CPU.
#[cfg(target_os = "none")]
const _: () = assert!(NR_CPUS <= CpuMask::BITS);

/// One vCPU in a run queue.
#[cfg(target_os = "none")]
struct Queued {
    v: *mut Vcpu,
    /// The online CPUs it may run on (hard affinity); just its CPU when it is pinned (and
    /// always for an HVM vCPU).
    affinity: CpuMask,
}

#[cfg(target_os = "none")]
impl Queued {
    /// Whether it may move to another CPU.
    fn migratable(&self) -> bool {
        self.affinity.count() > 1
    }
}

/// A CPU's vCPUs, its policy, and what runs.
#[cfg(target_os = "none")]
struct RunQueue {
    vcpus: Vec<Queued>,
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

// SAFETY: the raw pointers name vCPUs that live forever; a queue is used under its lock, by its
// own CPU, by the boot CPU while placing, and by a CPU taking one of its vCPUs (`migrate`).
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
/// The CPU is in its idle loop with nothing to run (set before it looks for work to take,
/// cleared when it runs a vCPU): where a waiting vCPU is offered.
#[cfg(target_os = "none")]
static IDLE: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];
/// The vCPU whose timers the CPU is firing outside its queue's lock (`timer_tick`), as an
/// address (0: none): it is not taken by another CPU meanwhile.
#[cfg(target_os = "none")]
static FIRING: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// The executing CPU's number.
#[cfg(target_os = "none")]
pub fn this_cpu() -> u32 {
    percpu::current().cpu
}

/// The CPU `v` is queued on. It changes only when another CPU takes `v` (`migrate`), with
/// both queues locked, so it is read and written as an atomic.
#[cfg(target_os = "none")]
pub fn processor(v: &Vcpu) -> u32 {
    // SAFETY: `processor` is an aligned u32 of a vCPU that lives forever; once the vCPU is
    // placed it is only accessed atomically (here and in `set_processor`), except by dumps.
    unsafe { AtomicU32::from_ptr((&raw const v.processor).cast_mut()) }.load(Ordering::Acquire)
}

/// Moves `v`'s `processor` to `cpu` (with both run queues locked).
#[cfg(target_os = "none")]
fn set_processor(v: *mut Vcpu, cpu: u32) {
    // SAFETY: as in `processor`; `v` is a queued vCPU, which lives forever.
    unsafe { AtomicU32::from_ptr(&raw mut (*v).processor) }.store(cpu, Ordering::Release);
}

/// The online CPUs.
#[cfg(target_os = "none")]
fn online_mask() -> CpuMask {
    let mut m = CpuMask::default();
    for cpu in crate::smpboot::online_cpus() {
        m.set(cpu);
    }
    m
}

/// Queues `v` on its `processor`; it runs there once it is up, and may later move to the
/// other online CPUs of `affinity` (a PV vCPU's hard affinity; an HVM vCPU stays where it is,
/// since its VMCS/VMCB belongs to the CPU that created it).
#[cfg(target_os = "none")]
pub fn place(v: &'static mut Vcpu, affinity: CpuMask) {
    let d = v.domain();
    let params = VcpuParams {
        domain: d.id,
        vcpu: v.id,
        sched: params_of(d.id),
        domain_vcpus: d.vcpus.len() as u32,
    };
    let cpu = v.processor;
    let mut affinity = affinity.and(&online_mask());
    if v.hvm.is_some() || !migrate::ENABLED {
        affinity = CpuMask::default();
    }
    affinity.set(cpu);
    if let Some(q) = RUNQ.get(cpu as usize) {
        let mut q = q.lock();
        if q.vcpus.is_empty() {
            q.policy = new_policy();
        }
        q.vcpus.push(Queued {
            v: v as *mut Vcpu,
            affinity,
        });
        q.policy.add(params);
        migrate::publish(cpu, &q);
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
            .map(|s| unsafe { &*s.v })
            .collect()
    })
}

/// Makes the CPU of `v` look at it (Xen's `vcpu_kick`): an event is pending for it, its
/// up/down state changed, or its domain stopped. If that CPU is busy with another vCPU, an
/// idle CPU that `v` may move to is asked to take it.
#[cfg(target_os = "none")]
pub fn kick(v: &Vcpu) {
    let me = this_cpu();
    let cpu = processor(v);
    if cpu != me {
        ipi::send_ipi(cpu, EVENT_CHECK_VECTOR);
    } else if !v.running.load(Ordering::Acquire) {
        // Another vCPU runs here: look again on its way back to the guest.
        NEED_RESCHED[me as usize].store(true, Ordering::Release);
    }
    if !v.running.load(Ordering::Acquire) {
        migrate::kicked(cpu);
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
    RUNQ[me].lock().vcpus.iter().any(|s| {
        // SAFETY: queued vCPUs live forever; they are not running (only `v` is).
        !core::ptr::eq(s.v, v) && ready(unsafe { &*s.v })
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
    if next == Some(cur) && core::ptr::eq(q.vcpus[cur].v.cast_const(), v) {
        q.slice_end = now.saturating_add(q.policy.slice(cur, now));
        return true;
    }
    q.handoff = next;
    false
}

/// The policy's choice among the ready vCPUs of `q`, telling it first which blocked ones wake.
#[cfg(target_os = "none")]
fn choose(q: &mut RunQueue, now: u64) -> Option<usize> {
    for i in 0..q.vcpus.len() {
        wake_if_due(q, i);
    }
    let vcpus = &q.vcpus;
    q.policy.pick(now, &|i| {
        // SAFETY: queued vCPUs live forever; only their atomics and wake state are read.
        ready(unsafe { &*vcpus[i].v })
    })
}

/// Tells the policy that entry `i` of `q` wakes, if it is blocked and its wake condition holds.
#[cfg(target_os = "none")]
fn wake_if_due(q: &mut RunQueue, i: usize) {
    // SAFETY: queued vCPUs live forever; only their atomics and wake state are read.
    let v = unsafe { &*q.vcpus[i].v };
    if runnable(v) && v.blocked.load(Ordering::Acquire) && wake_condition(v) {
        q.policy.wake(i);
    }
}

/// The accounting hook of [`idle_loop`]: charges the vCPU this CPU just left for the time it
/// ran, and closes its runstate's running interval unless it blocked (`block` did that).
/// Returns whether that vCPU may move to another CPU.
#[cfg(target_os = "none")]
fn charge_previous(me: usize) -> bool {
    let now = crate::pv::time::now();
    let mut guard = RUNQ[me].lock();
    let q = &mut *guard;
    let Some(i) = q.running.take() else {
        return true;
    };
    q.policy.charge(i, now.saturating_sub(q.run_start), now);
    // SAFETY: the vCPU this CPU just left (its `running` flag is still set, so no other CPU
    // touches its state); vCPUs live forever.
    let v = unsafe { &mut *q.vcpus[i].v };
    if !v.blocked.load(Ordering::Acquire) {
        v.pv.time_running += now.saturating_sub(v.pv.runstate_entry);
        v.pv.runstate_entry = now;
    }
    q.vcpus[i].migratable()
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
/// ready vCPU of its queue, or one it takes from a busy CPU, or halts until an interrupt and
/// looks again. Never returns.
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
        let migratable = charge_previous(me as usize);
        // SAFETY: the vCPU this CPU ran; its `running` flag is still set, so no other CPU uses
        // its state; vCPUs are never freed in this version.
        let v = unsafe { &mut *(previous as *mut Vcpu) };
        if migratable {
            // Its FPU state must not stay behind in this CPU's registers: another CPU may
            // take it as soon as `running` drops.
            fpu::release(v);
        }
        v.running.store(false, Ordering::SeqCst);
        // The last vCPU of a stopped domU to leave gives its memory back.
        crate::domain::teardown::relinquish_if_done(v.domain());
    }
    loop {
        x86_64::instructions::interrupts::disable();
        service_flush();
        NEED_RESCHED[me as usize].store(false, Ordering::Release);
        if let Some(v) = pick(me) {
            enter(v);
        }
        // Published before looking for work elsewhere: a CPU that makes work wait after this
        // look sees it and sends an IPI (which ends the halt below).
        IDLE[me as usize].store(true, Ordering::SeqCst);
        if let Some(v) = migrate::steal(me) {
            enter(v);
        }
        rearm_timer();
        cpu::idle_halt();
    }
}

/// Runs `v`, just picked on this CPU.
#[cfg(target_os = "none")]
fn enter(v: &'static mut Vcpu) -> ! {
    unblock(v);
    crate::domain::run_vcpu(v)
}

/// The next vCPU for `cpu` (a preemption's choice if still ready, else the policy's), its
/// slice started. Offers any other vCPU left waiting here to an idle CPU.
#[cfg(target_os = "none")]
fn pick(cpu: u32) -> Option<&'static mut Vcpu> {
    let now = crate::pv::time::now();
    let mut guard = RUNQ[cpu as usize].lock();
    let q = &mut *guard;
    let handoff = q.handoff.take().filter(|&i| {
        // SAFETY: queued vCPUs live forever; only their state flags are read.
        ready(unsafe { &*q.vcpus[i].v })
    });
    let i = match handoff {
        Some(i) => i,
        None => choose(q, now)?,
    };
    let v = start(cpu, q, i, now);
    if migrate::others_wait(q, i) {
        migrate::offer(cpu);
    }
    Some(v)
}

/// Makes entry `i` of `q` (CPU `cpu`'s queue, locked) the running vCPU from `now`.
#[cfg(target_os = "none")]
fn start(cpu: u32, q: &mut RunQueue, i: usize, now: u64) -> &'static mut Vcpu {
    IDLE[cpu as usize].store(false, Ordering::SeqCst);
    q.running = Some(i);
    q.run_start = now;
    q.slice_end = now.saturating_add(q.policy.slice(i, now));
    // SAFETY: queued vCPUs live forever; this CPU takes entry `i` to run it (no other CPU
    // runs it, nor takes it while it is `running` here).
    let v = unsafe { &mut *q.vcpus[i].v };
    if !v.blocked.load(Ordering::Acquire) {
        // Waiting to run is not running (a woken vCPU's blocked time ends in `unblock`).
        v.pv.runstate_entry = now;
    }
    v
}

/// The timer interrupt on this CPU: fires the due guest timers of every vCPU queued here
/// (`VIRQ_TIMER`, poll timeouts become wake-ups) and re-arms for the earliest deadline.
#[cfg(target_os = "none")]
pub fn timer_tick() {
    let me = this_cpu() as usize;
    let vcpus: Vec<*mut Vcpu> = RUNQ[me].lock().vcpus.iter().map(|s| s.v).collect();
    for p in vcpus {
        {
            let q = RUNQ[me].lock();
            if !q.vcpus.iter().any(|s| s.v == p) {
                // Taken by another CPU meanwhile: its timers are that CPU's now.
                continue;
            }
            // Not to be taken while its timers fire (sending events needs no run queue lock).
            FIRING[me].store(p as usize, Ordering::SeqCst);
        }
        // SAFETY: a vCPU of this CPU's queue that stays here while `FIRING` names it; the
        // running one (if any) is interrupted, the others are not running anywhere.
        let v = unsafe { &mut *p };
        if runnable(v) {
            crate::pv::time::fire_due(v);
        }
        FIRING[me].store(0, Ordering::Release);
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
    for s in q.vcpus.iter() {
        // SAFETY: this CPU's vCPUs, read only.
        let v = unsafe { &*s.v };
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
