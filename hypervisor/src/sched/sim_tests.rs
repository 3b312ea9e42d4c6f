//! Host tests of the policies: one simulated CPU, driven the way `sched/mod.rs` drives it
//! (pick at a slice end, at a wake-up or when the running vCPU blocks; charge what ran), over
//! simulated time in 1 ms steps.

use super::credit::{ACCT_PERIOD_NS, Credit, Pri};
use super::policy::{Carry, Policy, RoundRobin, SchedParams, TIME_SLICE_NS, VcpuParams};
use std::vec::Vec;

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;

/// What a simulated vCPU does.
#[derive(Clone, Copy)]
enum Load {
    /// Always runnable.
    Spin,
    /// Runs `run` ns, then blocks for `sleep` ns, again and again.
    Bursts { run: u64, sleep: u64 },
    /// Blocked for the whole run (`SCHEDOP_block` with a far timer).
    Blocked,
}

struct SimVcpu {
    load: Load,
    /// Blocked until this time (`None`: not blocked).
    blocked_until: Option<u64>,
    ran: u64,
    burst: u64,
}

struct Sim<P: Policy> {
    p: P,
    v: Vec<SimVcpu>,
    now: u64,
    running: Option<usize>,
    run_start: u64,
    slice_end: u64,
    /// Every pick, with the time and whether the picked vCPU had just woken.
    picks: Vec<(u64, usize, bool)>,
}

impl<P: Policy> Sim<P> {
    fn new(p: P) -> Self {
        Sim {
            p,
            v: Vec::new(),
            now: 0,
            running: None,
            run_start: 0,
            slice_end: 0,
            picks: Vec::new(),
        }
    }

    /// Adds a vCPU of a one-vCPU domain.
    fn add(&mut self, weight: u16, cap: u16, load: Load) -> usize {
        let id = self.v.len();
        self.p.add(VcpuParams {
            domain: id as u16,
            vcpu: 0,
            sched: SchedParams { weight, cap },
            domain_vcpus: 1,
        });
        self.v.push(SimVcpu {
            load,
            blocked_until: match load {
                Load::Blocked => Some(u64::MAX),
                _ => None,
            },
            ran: 0,
            burst: 0,
        });
        id
    }

    fn waking(&self, i: usize) -> bool {
        self.v[i].blocked_until.is_some_and(|t| t <= self.now)
    }

    /// The CPU's scheduling decision (`pick` in `sched/mod.rs`).
    fn resched(&mut self) {
        if let Some(i) = self.running.take() {
            self.p.charge(i, self.now - self.run_start, self.now);
        }
        for i in 0..self.v.len() {
            if self.waking(i) {
                self.p.wake(i);
            }
        }
        let now = self.now;
        let ready: Vec<bool> = (0..self.v.len())
            .map(|i| self.v[i].blocked_until.is_none_or(|t| t <= now))
            .collect();
        if let Some(i) = self.p.pick(now, &|i| ready[i]) {
            let woke = self.v[i].blocked_until.take().is_some();
            self.picks.push((now, i, woke));
            self.running = Some(i);
            self.run_start = now;
            self.slice_end = now + self.p.slice(i, now);
        }
    }

    /// Runs for `total` ns in steps of 1 ms, shorter where a slice ends or the policy asked to
    /// be woken (the one-shot timer fires then).
    fn run(&mut self, total: u64) {
        let end = self.now + total;
        while self.now < end {
            let woken = (0..self.v.len()).any(|i| self.waking(i));
            let due = self.now >= self.slice_end || self.now >= self.p.wakeup();
            if self.running.is_none() || woken || due {
                self.resched();
            }
            let mut step = MS;
            for t in [self.slice_end, self.p.wakeup()] {
                if t > self.now {
                    step = step.min(t - self.now);
                }
            }
            self.now += step;
            if let Some(i) = self.running {
                let v = &mut self.v[i];
                v.ran += step;
                v.burst += step;
                if let Load::Bursts { run, sleep } = v.load
                    && v.burst >= run
                {
                    // `SCHEDOP_block`: charged, off the CPU until its wake-up.
                    v.burst = 0;
                    v.blocked_until = Some(self.now + sleep);
                    self.p.charge(i, self.now - self.run_start, self.now);
                    self.running = None;
                }
            }
        }
    }

    fn share(&self, i: usize) -> f64 {
        self.v[i].ran as f64 / self.now as f64
    }
}

/// `got` is within 10 % (relative) of `want`.
fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * 0.10
}

#[test]
fn spinning_vcpus_share_by_weight() {
    let mut s = Sim::new(Credit::new());
    let weights = [256u16, 512, 768];
    for w in weights {
        s.add(w, 0, Load::Spin);
    }
    s.run(10 * SEC);
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    for (i, &w) in weights.iter().enumerate() {
        let want = f64::from(w) / total as f64;
        assert!(near(s.share(i), want), "vCPU {i}: {} vs {want}", s.share(i));
    }
    // Work-conserving: the CPU never idled.
    assert_eq!(s.v.iter().map(|v| v.ran).sum::<u64>(), s.now);
}

#[test]
fn equal_weights_share_equally_and_extreme_weights_hold() {
    let mut s = Sim::new(Credit::new());
    for _ in 0..4 {
        s.add(256, 0, Load::Spin);
    }
    s.run(10 * SEC);
    for i in 0..4 {
        assert!(near(s.share(i), 0.25), "{i}: {}", s.share(i));
    }
    let mut s = Sim::new(Credit::new());
    s.add(1, 0, Load::Spin);
    s.add(9, 0, Load::Spin);
    s.run(10 * SEC);
    assert!(near(s.share(1), 0.9), "{}", s.share(1));
    assert!(s.share(0) <= 0.11, "{}", s.share(0));
}

#[test]
fn a_cap_holds_even_on_an_otherwise_idle_cpu() {
    let mut s = Sim::new(Credit::new());
    s.add(256, 25, Load::Spin);
    s.run(10 * SEC);
    assert!(s.share(0) <= 0.25 + 0.005, "{}", s.share(0));
    // It gets its cap, though: parked only once it used it.
    assert!(s.share(0) >= 0.24, "{}", s.share(0));
    assert!(s.picks.len() as u64 >= 10 * SEC / ACCT_PERIOD_NS - 1);
}

#[test]
fn a_capped_vcpu_leaves_the_rest_to_others() {
    let mut s = Sim::new(Credit::new());
    // By weight the capped one would get 2/3; its cap holds it to 25 %.
    s.add(512, 25, Load::Spin);
    s.add(256, 0, Load::Spin);
    s.run(10 * SEC);
    assert!(s.share(0) <= 0.255, "{}", s.share(0));
    assert!(s.share(1) >= 0.74, "{}", s.share(1));
}

#[test]
fn a_cap_above_the_fair_share_does_not_bind() {
    let mut s = Sim::new(Credit::new());
    s.add(256, 80, Load::Spin);
    s.add(256, 0, Load::Spin);
    s.run(10 * SEC);
    assert!(near(s.share(0), 0.5) && near(s.share(1), 0.5));
}

#[test]
fn a_blocked_vcpu_uses_no_time_and_takes_no_share() {
    let mut s = Sim::new(Credit::new());
    s.add(256, 0, Load::Spin);
    s.add(512, 0, Load::Spin);
    s.add(256, 0, Load::Blocked);
    s.run(10 * SEC);
    assert_eq!(s.v[2].ran, 0);
    assert!(near(s.share(0), 1.0 / 3.0), "{}", s.share(0));
    assert!(near(s.share(1), 2.0 / 3.0), "{}", s.share(1));
}

#[test]
fn a_woken_vcpu_is_boosted_and_runs_first() {
    let mut s = Sim::new(Credit::new());
    s.add(256, 0, Load::Spin);
    s.add(256, 0, Load::Spin);
    // Mostly asleep: 1 ms of work every 20 ms.
    let io = s.add(
        256,
        0,
        Load::Bursts {
            run: MS,
            sleep: 20 * MS,
        },
    );
    s.run(10 * SEC);
    // Every wake-up ran at once (no waiting behind the spinners' slices)...
    let wakes: Vec<_> = s.picks.iter().filter(|p| p.2).collect();
    assert!(wakes.len() > 400, "{}", wakes.len());
    assert!(wakes.iter().all(|p| p.1 == io));
    // ... so it got all the time it asked for: 1 ms per 21 ms.
    assert!(near(s.share(io), 1.0 / 21.0), "{}", s.share(io));
    assert!(near(s.share(0), s.share(1)));
}

#[test]
fn boost_puts_the_woken_vcpu_ahead_of_under_ones() {
    let mut p = Credit::new();
    for d in 0..3 {
        p.add(VcpuParams {
            domain: d,
            vcpu: 0,
            sched: SchedParams::default(),
            domain_vcpus: 1,
        });
    }
    // 0 and 1 are ready; 2 was blocked and never ran, so it is the least recently picked of
    // none: without the boost 0 would go first.
    assert_eq!(p.pick(0, &|i| i < 2), Some(0));
    p.charge(0, MS, MS);
    p.wake(2);
    assert_eq!(p.pri(2), Some(Pri::Boost));
    assert_eq!(p.pick(MS, &|_| true), Some(2));
    // A tick of running ends the boost.
    p.charge(2, TIME_SLICE_NS, 11 * MS);
    assert_ne!(p.pri(2), Some(Pri::Boost));
    // An OVER vCPU is not boosted (Xen boosts only UNDER ones).
    p.charge(1, ACCT_PERIOD_NS, 41 * MS);
    assert_eq!(p.pri(1), Some(Pri::Over));
    p.wake(1);
    assert_eq!(p.pri(1), Some(Pri::Over));
}

#[test]
fn under_goes_before_over() {
    let mut p = Credit::new();
    for d in 0..2 {
        p.add(VcpuParams {
            domain: d,
            vcpu: 0,
            sched: SchedParams::default(),
            domain_vcpus: 1,
        });
    }
    assert_eq!(p.pick(0, &|_| true), Some(0));
    p.charge(0, 5 * MS, 5 * MS);
    assert_eq!(p.pri(0), Some(Pri::Over));
    assert_eq!(p.pick(5 * MS, &|_| true), Some(1));
    // 0 was picked longer ago, but it is OVER and 1 is UNDER.
    assert_eq!(p.pick(6 * MS, &|_| true), Some(1));
    // Alone, an OVER vCPU still runs.
    assert_eq!(p.pick(7 * MS, &|i| i == 0), Some(0));
}

#[test]
fn yield_lets_the_others_go_first() {
    let mut p = Credit::new();
    for d in 0..2 {
        p.add(VcpuParams {
            domain: d,
            vcpu: 0,
            sched: SchedParams::default(),
            domain_vcpus: 1,
        });
    }
    assert_eq!(p.pick(0, &|_| true), Some(0));
    assert_eq!(p.pick(0, &|_| true), Some(1));
    p.yielded(1);
    assert_eq!(p.pick(0, &|_| true), Some(0));
    // Alone, the yielder runs again.
    p.yielded(1);
    assert_eq!(p.pick(0, &|i| i == 1), Some(1));
}

#[test]
fn a_domain_cap_is_shared_by_its_vcpus() {
    // A 2-vCPU domain capped at 50 %: 25 % per vCPU, each on its own CPU.
    let mut p = Credit::new();
    p.add(VcpuParams {
        domain: 1,
        vcpu: 1,
        sched: SchedParams {
            weight: 256,
            cap: 50,
        },
        domain_vcpus: 2,
    });
    assert_eq!(p.pick(0, &|_| true), Some(0));
    assert_eq!(p.slice(0, 0), ACCT_PERIOD_NS / 4);
    p.charge(0, ACCT_PERIOD_NS / 4, ACCT_PERIOD_NS / 4);
    assert!(p.parked(0));
    assert_eq!(p.pick(ACCT_PERIOD_NS / 4, &|_| true), None);
    // Released at the next accounting, which the CPU is woken for.
    assert_eq!(p.wakeup(), ACCT_PERIOD_NS);
    assert_eq!(p.pick(ACCT_PERIOD_NS, &|_| true), Some(0));
}

#[test]
fn round_robin_alternates_and_ignores_weights() {
    let mut s = Sim::new(RoundRobin::new());
    s.add(256, 0, Load::Spin);
    s.add(512, 0, Load::Spin);
    s.add(768, 0, Load::Spin);
    s.run(SEC);
    let order: Vec<usize> = s.picks.iter().map(|p| p.1).collect();
    for (k, &i) in order.iter().enumerate() {
        assert_eq!(i, (k + 1) % 3, "{order:?}");
    }
    for i in 0..3 {
        assert!(near(s.share(i), 1.0 / 3.0), "{i}: {}", s.share(i));
    }
    // Each turn is one slice.
    assert!(s.picks.windows(2).all(|w| w[1].0 - w[0].0 == TIME_SLICE_NS));
}

#[test]
fn round_robin_skips_what_is_not_ready_and_honours_yield() {
    let mut p = RoundRobin::new();
    for d in 0..3 {
        p.add(VcpuParams {
            domain: d,
            vcpu: 0,
            sched: SchedParams::default(),
            domain_vcpus: 1,
        });
    }
    assert_eq!(p.pick(0, &|i| i != 1), Some(2));
    assert_eq!(p.pick(0, &|i| i != 1), Some(0));
    p.yielded(0);
    assert_eq!(p.pick(0, &|i| i == 0), Some(0));
    assert_eq!(p.pick(0, &|_| false), None);
}

fn params(domain: u16, weight: u16, cap: u16) -> VcpuParams {
    VcpuParams {
        domain,
        vcpu: 0,
        sched: SchedParams { weight, cap },
        domain_vcpus: 1,
    }
}

#[test]
fn a_migrating_vcpu_takes_its_credit_and_leaves_the_indices_straight() {
    let mut a = Credit::new();
    for d in 0..3 {
        a.add(params(d, 256, 0));
    }
    // 1 runs into debt; 2 yields.
    assert_eq!(a.pick(0, &|i| i == 1), Some(1));
    a.charge(1, 5 * MS, 5 * MS);
    assert_eq!(a.pri(1), Some(Pri::Over));
    a.yielded(2);
    assert!(a.movable(1));
    let carry = a.remove(1);
    assert_eq!(carry.params, params(1, 256, 0));
    assert_eq!(carry.credit, -5 * MS as i64);
    // 2 is now entry 1, still the yielder: 0 goes first.
    assert_eq!(a.credit(1), Some(0));
    assert_eq!(a.pick(5 * MS, &|_| true), Some(0));
    // On its new CPU it is still OVER: an UNDER vCPU there goes first.
    let mut b = Credit::new();
    b.add(params(7, 256, 0));
    b.join(carry);
    assert_eq!(
        (b.pri(1), b.credit(1)),
        (Some(Pri::Over), Some(-5 * MS as i64))
    );
    assert_eq!(b.pick(5 * MS, &|_| true), Some(0));
    assert_eq!(b.pick(6 * MS, &|i| i == 1), Some(1));
}

#[test]
fn a_boosted_vcpu_stays_boosted_and_a_parked_one_stays_put() {
    let mut a = Credit::new();
    a.add(params(0, 256, 0));
    a.add(params(1, 256, 10));
    a.wake(0);
    assert_eq!(a.pri(0), Some(Pri::Boost));
    // The capped one uses its budget (10 % of a period) and is parked: not movable.
    assert_eq!(a.pick(0, &|i| i == 1), Some(1));
    a.charge(1, ACCT_PERIOD_NS / 10, ACCT_PERIOD_NS / 10);
    assert!(a.parked(1) && !a.movable(1));
    let carry = a.remove(0);
    assert!(carry.boosted);
    let mut b = Credit::new();
    b.add(params(2, 256, 0));
    b.join(carry);
    assert_eq!(b.pri(1), Some(Pri::Boost));
    assert_eq!(b.pick(0, &|_| true), Some(1));
    // What is left behind is the parked one, now entry 0.
    assert!(a.parked(0));
}

#[test]
fn round_robin_goes_on_in_order_when_a_vcpu_leaves() {
    let mut p = RoundRobin::new();
    for d in 0..4 {
        p.add(params(d, 256, 0));
    }
    assert_eq!(p.pick(0, &|_| true), Some(1));
    assert_eq!(p.pick(0, &|_| true), Some(2));
    // 2 (the last picked) leaves: next is its successor, 3 (now entry 2).
    assert_eq!(p.remove(2).params, params(2, 256, 0));
    assert_eq!(p.pick(0, &|_| true), Some(2));
    assert_eq!(p.pick(0, &|_| true), Some(0));
    // 0 (the last picked, first) leaves: next is 1 (now entry 0).
    p.remove(0);
    assert_eq!(p.pick(0, &|_| true), Some(0));
    p.join(Carry::fresh(params(9, 256, 0)));
    assert_eq!(p.pick(0, &|_| true), Some(1));
    assert_eq!(p.pick(0, &|_| true), Some(2));
    assert!(p.movable(2) && !p.movable(3));
}
