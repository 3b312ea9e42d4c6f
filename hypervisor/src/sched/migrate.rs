//! vCPU migration: an idle CPU takes a waiting vCPU from a busy one (Xen credit1's
//! `csched_load_balance`: steal from a CPU with more than one runnable vCPU), and a CPU that
//! leaves a vCPU waiting asks an idle CPU to come and take it.
//!
//! Rules that keep it safe:
//! * a vCPU is in exactly one run queue; it moves with both queues locked, the lower-numbered
//!   CPU's first, and its `processor` changes under both locks;
//! * only a vCPU that is ready, not the running entry of its queue, not `running` (its old CPU
//!   has left it completely: registers saved, charged, FPU state in its save area, see
//!   `sched::fpu`), not having its timers fired (`FIRING`), allowed on the new CPU by its
//!   affinity, and not held back by the policy (a parked capped vCPU) is taken;
//! * HVM vCPUs and pinned vCPUs have a one-CPU affinity and are never candidates.
//!
//! After a move, the vCPU's timers are the new CPU's (they are armed from its queue), kicks go
//! to the new CPU (`processor`), and its TLB state needs nothing: the old CPU left its address
//! space with a full flush, and the new one records the domain when it loads it.

use super::cpumask::CpuMask;
use super::policy::{Policy, shifted};
use super::{FIRING, IDLE, RUNQ, RunQueue, choose, ready, set_processor, start};
use crate::domain::Vcpu;
use crate::smpboot::NR_CPUS;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;

/// Migration on: set to `false` to keep every vCPU where it was placed (as before migration
/// existed; affinities are then ignored).
pub const ENABLED: bool = true;

/// Set once the boot-time domains are all built ([`activate`]): until then every vCPU runs
/// where it was placed, so dom0 (placed on the boot CPU, which is busy building the domUs)
/// starts once they all exist, as it did before migration existed, instead of being taken by
/// an idle CPU halfway through.
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Lets vCPUs migrate from now on (the boot CPU, once it has placed every boot-time domain).
pub fn activate() {
    ACTIVE.store(ENABLED, Ordering::SeqCst);
}

/// Whether vCPUs may migrate now.
fn active() -> bool {
    ENABLED && ACTIVE.load(Ordering::Relaxed)
}

/// How many vCPUs each CPU's queue holds (a hint, to skip CPUs with nothing to take).
static QUEUE_LEN: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];
/// For each CPU, the CPUs its migratable vCPUs may move to (the union of their affinities;
/// a hint, read without the queue lock).
static MOVABLE_TO: [[AtomicU64; CpuMask::BITS / 64]; NR_CPUS] =
    [const { [const { AtomicU64::new(0) }; CpuMask::BITS / 64] }; NR_CPUS];

/// Refreshes the hints of `cpu`, whose queue `q` changed (under its lock).
pub(super) fn publish(cpu: u32, q: &RunQueue) {
    let mut to = CpuMask::default();
    for s in q.vcpus.iter().filter(|s| s.migratable()) {
        for c in s.affinity.iter() {
            to.set(c);
        }
    }
    for (slot, word) in MOVABLE_TO[cpu as usize].iter().zip(to.words()) {
        slot.store(word, Ordering::Relaxed);
    }
    QUEUE_LEN[cpu as usize].store(q.vcpus.len() as u32, Ordering::Relaxed);
}

/// The CPUs `cpu`'s vCPUs may move to (hint).
fn movable_to(cpu: u32) -> CpuMask {
    let mut words = [0u64; CpuMask::BITS / 64];
    for (w, slot) in words.iter_mut().zip(&MOVABLE_TO[cpu as usize]) {
        *w = slot.load(Ordering::Relaxed);
    }
    CpuMask::from_words(words)
}

/// Whether `q` (locked), having just picked entry `running`, leaves another vCPU waiting that
/// could run elsewhere.
pub(super) fn others_wait(q: &RunQueue, running: usize) -> bool {
    active()
        && q.vcpus.iter().enumerate().any(|(i, s)| {
            // SAFETY: queued vCPUs live forever; only their state flags are read.
            let v = unsafe { &*s.v };
            i != running && s.migratable() && !v.running.load(Ordering::Acquire) && ready(v)
        })
}

/// A vCPU of CPU `cpu`, not running, was kicked: if `cpu` is busy, the vCPU may wait there,
/// so it is offered to an idle CPU.
pub(super) fn kicked(cpu: u32) {
    // What made the vCPU ready (an event raised) is visible before the idle flags are read: a
    // CPU that sets its flag after these reads looks for work after it (`steal`).
    core::sync::atomic::fence(Ordering::SeqCst);
    if !IDLE[cpu as usize].load(Ordering::SeqCst) {
        offer(cpu);
    }
}

/// A vCPU waits on busy CPU `cpu`: sends an idle CPU it may move to an event check, so that
/// CPU's idle loop comes to take it ([`steal`]).
pub(super) fn offer(cpu: u32) {
    if !active() {
        return;
    }
    let to = movable_to(cpu);
    // Start after `cpu`, so offers spread over the idle CPUs.
    let idle = to
        .iter()
        .filter(|&c| c != cpu && IDLE[c as usize].load(Ordering::SeqCst))
        .min_by_key(|&c| c.wrapping_sub(cpu + 1) % NR_CPUS as u32);
    if let Some(c) = idle {
        super::ipi::send_ipi(c, super::EVENT_CHECK_VECTOR);
    }
}

/// Idle CPU `me` takes a waiting vCPU from the first CPU (after `me`) that has more than one
/// runnable vCPU and one it may take, and starts it like `pick` would. `None`: nothing to take.
pub(super) fn steal(me: u32) -> Option<&'static mut Vcpu> {
    if !active() {
        return None;
    }
    let n = NR_CPUS as u32;
    for k in 1..n {
        let victim = (me + k) % n;
        if QUEUE_LEN[victim as usize].load(Ordering::Relaxed) < 2
            || !movable_to(victim).contains(me)
        {
            continue;
        }
        let (lo, hi) = (me.min(victim) as usize, me.max(victim) as usize);
        // The fixed order (lower CPU first) keeps two CPUs stealing from each other apart.
        let g_lo = RUNQ[lo].lock();
        let g_hi = RUNQ[hi].lock();
        let (mut mine, mut theirs) = if me < victim {
            (g_lo, g_hi)
        } else {
            (g_hi, g_lo)
        };
        let Some(i) = candidate(&theirs, victim, me) else {
            continue;
        };
        let now = crate::pv::time::now();
        let j = take(&mut theirs, i, me, &mut mine);
        publish(victim, &theirs);
        publish(me, &mine);
        drop(theirs);
        let v = mine.vcpus[j].v;
        // Normally the vCPU just taken (nothing else was ready here); a vCPU of this CPU that
        // became ready meanwhile may come first, the other then waits its turn here.
        let picked = choose(&mut mine, now);
        let run = picked.map(|p| start(me, &mut mine, p, now));
        drop(mine);
        // SAFETY: vCPUs live forever; only identity is read.
        note(unsafe { &*v }, victim, me);
        if run.is_some() {
            return run;
        }
    }
    None
}

/// The entry of `q` (CPU `victim`'s queue, locked) that CPU `me` may take, if `victim` has
/// more than one runnable vCPU.
fn candidate(q: &RunQueue, victim: u32, me: u32) -> Option<usize> {
    let firing = FIRING[victim as usize].load(Ordering::Acquire);
    let mut runnable = 0;
    let mut found = None;
    for (i, s) in q.vcpus.iter().enumerate() {
        // SAFETY: queued vCPUs live forever; only their state flags are read.
        let v = unsafe { &*s.v };
        let on_cpu = q.running == Some(i) || v.running.load(Ordering::SeqCst);
        if on_cpu {
            runnable += 1;
            continue;
        }
        if !ready(v) {
            continue;
        }
        runnable += 1;
        if found.is_none()
            && s.migratable()
            && s.affinity.contains(me)
            && s.v as usize != firing
            && q.policy.movable(i)
        {
            found = Some(i);
        }
    }
    found.filter(|_| runnable > 1)
}

/// Moves entry `i` of `from` to the end of `to` (CPU `cpu`'s queue); both are locked. Returns
/// its index in `to`.
fn take(from: &mut RunQueue, i: usize, cpu: u32, to: &mut RunQueue) -> usize {
    let slot = from.vcpus.remove(i);
    let carry = from.policy.remove(i);
    from.running = from.running.and_then(|r| shifted(r, i));
    from.handoff = from.handoff.and_then(|h| shifted(h, i));
    set_processor(slot.v, cpu);
    if to.vcpus.is_empty() {
        to.policy = super::new_policy();
    }
    to.vcpus.push(slot);
    to.policy.join(carry);
    to.vcpus.len() - 1
}

/// Migrations so far, per vCPU: (domain, vCPU, count).
static COUNTS: Mutex<Vec<(u16, u32, u64)>> = Mutex::new(Vec::new());

/// Counts a migration of `v` from CPU `from` to CPU `to`, and says so on the console for its
/// 1st, 2nd, 4th, 8th... migration (enough to see it happen without flooding the console).
fn note(v: &Vcpu, from: u32, to: u32) {
    let d = v.domain().id;
    let n = {
        let mut t = COUNTS.lock();
        match t.iter_mut().find(|e| e.0 == d && e.1 == v.id) {
            Some(e) => {
                e.2 += 1;
                e.2
            }
            None => {
                t.push((d, v.id, 1));
                1
            }
        }
    };
    if n.is_power_of_two() {
        crate::printk!(
            "sched: d{d}v{} moved from CPU{from} to CPU{to} (migration {n})\n",
            v.id
        );
    }
}
