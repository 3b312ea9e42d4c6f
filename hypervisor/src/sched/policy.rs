//! The scheduling policy interface: which vCPU of a CPU's run queue runs next, and for how
//! long. Policies are pure (no hardware, no `Vcpu`): a queue's vCPUs are known by their index
//! in it (a vCPU joins at the end; one that leaves for another CPU's queue shifts the later
//! ones down by one), their readiness is asked for through a closure, and time is the system
//! time the caller passes in. So they run on the host in unit tests exactly as on the machine.
//!
//! The CPU's scheduling code (`sched/mod.rs`) calls, with the run queue locked:
//! [`Policy::add`] when a vCPU is placed, [`Policy::wake`] for a blocked vCPU whose wake
//! condition holds (it may be called again until the vCPU runs), [`Policy::pick`] for the next
//! vCPU, [`Policy::charge`] with the time the running vCPU ran, [`Policy::yielded`] on
//! `SCHEDOP_yield`, and [`Policy::wakeup`] for when the CPU must look again even if nothing
//! else happens (a parked vCPU's release). When a vCPU migrates, with both queues locked:
//! [`Policy::movable`] on its old queue, [`Policy::remove`] there and [`Policy::join`] on the
//! new one with what `remove` returned.

/// How long a vCPU runs before another runnable vCPU of its CPU gets a turn (10 ms; Xen's
/// credit1 default `sched_credit_tslice_ms` is 30, but Xenolith keeps its 10 ms slice, Xen's
/// credit1 tick).
pub const TIME_SLICE_NS: u64 = 10_000_000;

/// Xen's `CSCHED_DEFAULT_WEIGHT`.
pub const DEFAULT_WEIGHT: u16 = 256;

/// A domain's scheduling parameters (Xen credit1's `weight` and `cap`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedParams {
    /// Relative share, 1..=65535 (Xen's range; default 256).
    pub weight: u16,
    /// Upper bound in percent of one pCPU for the whole domain; 0: no cap.
    pub cap: u16,
}

impl Default for SchedParams {
    fn default() -> Self {
        SchedParams {
            weight: DEFAULT_WEIGHT,
            cap: 0,
        }
    }
}

/// What a policy knows of one vCPU when it is placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuParams {
    /// Owning domain.
    pub domain: u16,
    /// vCPU id in that domain.
    pub vcpu: u32,
    /// The domain's parameters.
    pub sched: SchedParams,
    /// How many vCPUs the domain has (a domain's cap is shared by them).
    pub domain_vcpus: u32,
}

/// What a policy keeps of a vCPU that moves to another CPU's queue (Xen's credit is global,
/// so a vCPU keeps its balance when it migrates; so it does here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Carry {
    /// Its parameters, as given to [`Policy::add`].
    pub params: VcpuParams,
    /// Credit balance in nanoseconds (0 for policies without credit).
    pub credit: i64,
    /// Time run in the current accounting period (for a cap).
    pub period_ran: u64,
    /// Woke from a block and not yet run out its boost.
    pub boosted: bool,
}

impl Carry {
    /// A vCPU with nothing to carry but its parameters.
    pub fn fresh(params: VcpuParams) -> Self {
        Carry {
            params,
            credit: 0,
            period_ran: 0,
            boosted: false,
        }
    }
}

/// A scheduling policy for one CPU's run queue. `ready(i)`: whether queue entry `i` could run
/// now (up, its domain alive, and not blocked or its wake condition holds).
pub trait Policy {
    /// A vCPU joined the queue; its index is the number of earlier calls.
    fn add(&mut self, params: VcpuParams);
    /// Entry `i`, blocked, is waking up (its wake condition holds). Idempotent until it runs.
    fn wake(&mut self, i: usize);
    /// The entry to run next at system time `now`, or `None` to idle.
    fn pick(&mut self, now: u64, ready: &dyn Fn(usize) -> bool) -> Option<usize>;
    /// How long entry `i`, just picked at `now`, may run before the CPU asks again.
    fn slice(&self, i: usize, now: u64) -> u64;
    /// Entry `i` ran for `ns` nanoseconds, up to system time `now`.
    fn charge(&mut self, i: usize, ns: u64, now: u64);
    /// Entry `i` yields: others of its CPU go first at the next pick.
    fn yielded(&mut self, i: usize);
    /// The system time at which the CPU must call [`Policy::pick`] again although nothing
    /// woke it (`u64::MAX`: never).
    fn wakeup(&self) -> u64;
    /// Whether entry `i` (not running) may be taken by another CPU now: not held back by the
    /// policy (a vCPU parked by its cap stays until its release).
    fn movable(&self, i: usize) -> bool;
    /// Entry `i` (not running) leaves for another CPU; later entries move down by one.
    fn remove(&mut self, i: usize) -> Carry;
    /// A vCPU from another CPU joins at the end of the queue.
    fn join(&mut self, carry: Carry);
}

/// Index `j` after entry `i` left the queue (`None` if `j` was `i`).
pub fn shifted(j: usize, i: usize) -> Option<usize> {
    match j.cmp(&i) {
        core::cmp::Ordering::Less => Some(j),
        core::cmp::Ordering::Equal => None,
        core::cmp::Ordering::Greater => Some(j - 1),
    }
}

/// Round-robin (`sched=rr`): the first ready entry after the one that ran last; no weights.
#[derive(Debug, Default)]
pub struct RoundRobin {
    /// Each entry's parameters (only carried along when it migrates).
    entries: alloc::vec::Vec<VcpuParams>,
    last: usize,
    yielding: Option<usize>,
}

impl RoundRobin {
    /// An empty queue.
    pub const fn new() -> Self {
        RoundRobin {
            entries: alloc::vec::Vec::new(),
            last: 0,
            yielding: None,
        }
    }
}

impl Policy for RoundRobin {
    fn add(&mut self, params: VcpuParams) {
        self.entries.push(params);
    }

    fn wake(&mut self, _i: usize) {}

    fn pick(&mut self, _now: u64, ready: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.entries.len();
        let yielding = self.yielding.take();
        let i = (1..=n)
            .map(|k| (self.last + k) % n)
            .find(|&i| ready(i) && Some(i) != yielding)
            .or_else(|| yielding.filter(|&i| ready(i)))?;
        self.last = i;
        Some(i)
    }

    fn slice(&self, _i: usize, _now: u64) -> u64 {
        TIME_SLICE_NS
    }

    fn charge(&mut self, _i: usize, _ns: u64, _now: u64) {}

    fn yielded(&mut self, i: usize) {
        self.yielding = Some(i);
    }

    fn wakeup(&self) -> u64 {
        u64::MAX
    }

    fn movable(&self, i: usize) -> bool {
        i < self.entries.len()
    }

    fn remove(&mut self, i: usize) -> Carry {
        let params = self.entries.remove(i);
        self.yielding = self.yielding.and_then(|y| shifted(y, i));
        // The one after `last` stays next: the entry that took its place, or `i`'s successor.
        self.last = if self.last >= i && self.last > 0 {
            self.last - 1
        } else if self.last >= i {
            self.entries.len().saturating_sub(1)
        } else {
            self.last
        };
        Carry::fresh(params)
    }

    fn join(&mut self, carry: Carry) {
        self.entries.push(carry.params);
    }
}

/// The policies `sched=` selects, one per CPU (static dispatch; both are `const`-built).
#[derive(Debug)]
pub enum CpuPolicy {
    /// `sched=credit` (the default).
    Credit(super::credit::Credit),
    /// `sched=rr`.
    RoundRobin(RoundRobin),
}

impl CpuPolicy {
    fn get(&self) -> &dyn Policy {
        match self {
            CpuPolicy::Credit(p) => p,
            CpuPolicy::RoundRobin(p) => p,
        }
    }

    fn get_mut(&mut self) -> &mut dyn Policy {
        match self {
            CpuPolicy::Credit(p) => p,
            CpuPolicy::RoundRobin(p) => p,
        }
    }
}

impl Policy for CpuPolicy {
    fn add(&mut self, params: VcpuParams) {
        self.get_mut().add(params);
    }
    fn wake(&mut self, i: usize) {
        self.get_mut().wake(i);
    }
    fn pick(&mut self, now: u64, ready: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.get_mut().pick(now, ready)
    }
    fn slice(&self, i: usize, now: u64) -> u64 {
        self.get().slice(i, now)
    }
    fn charge(&mut self, i: usize, ns: u64, now: u64) {
        self.get_mut().charge(i, ns, now);
    }
    fn yielded(&mut self, i: usize) {
        self.get_mut().yielded(i);
    }
    fn wakeup(&self) -> u64 {
        self.get().wakeup()
    }
    fn movable(&self, i: usize) -> bool {
        self.get().movable(i)
    }
    fn remove(&mut self, i: usize) -> Carry {
        self.get_mut().remove(i)
    }
    fn join(&mut self, carry: Carry) {
        self.get_mut().join(carry);
    }
}
