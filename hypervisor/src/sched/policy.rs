//! The scheduling policy interface: which vCPU of a CPU's run queue runs next, and for how
//! long. Policies are pure (no hardware, no `Vcpu`): a queue's vCPUs are known by their index
//! in it (vCPUs are only ever appended, pinned for life), their readiness is asked for through
//! a closure, and time is the system time the caller passes in. So they run on the host in
//! unit tests exactly as on the machine.
//!
//! The CPU's scheduling code (`sched/mod.rs`) calls, with the run queue locked:
//! [`Policy::add`] when a vCPU is placed, [`Policy::wake`] for a blocked vCPU whose wake
//! condition holds (it may be called again until the vCPU runs), [`Policy::pick`] for the next
//! vCPU, [`Policy::charge`] with the time the running vCPU ran, [`Policy::yielded`] on
//! `SCHEDOP_yield`, and [`Policy::wakeup`] for when the CPU must look again even if nothing
//! else happens (a parked vCPU's release).

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
}

/// Round-robin (`sched=rr`): the first ready entry after the one that ran last; no weights.
#[derive(Debug, Default)]
pub struct RoundRobin {
    len: usize,
    last: usize,
    yielding: Option<usize>,
}

impl RoundRobin {
    /// An empty queue.
    pub const fn new() -> Self {
        RoundRobin {
            len: 0,
            last: 0,
            yielding: None,
        }
    }
}

impl Policy for RoundRobin {
    fn add(&mut self, _params: VcpuParams) {
        self.len += 1;
    }

    fn wake(&mut self, _i: usize) {}

    fn pick(&mut self, _now: u64, ready: &dyn Fn(usize) -> bool) -> Option<usize> {
        let n = self.len;
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
}
