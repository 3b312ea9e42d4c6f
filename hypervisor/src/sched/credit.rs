//! `sched=credit`: Xen's credit1 scheduler (`xen/common/sched/credit.c`), per CPU.
//!
//! Every accounting period (Xen's 30 ms `tslice`) each *active* vCPU of the CPU earns credit,
//! its weight's share of the period ([`Credit::account`]); running debits it by the time run
//! ([`Policy::charge`]). A vCPU with credit left is UNDER, one that spent it is OVER; UNDER
//! vCPUs go before OVER ones, and a blocked vCPU that wakes while UNDER is BOOSTed ahead of
//! both until it has run a tick (10 ms), as Xen boosts I/O-bound vCPUs. Within a priority the
//! least recently picked goes first (Xen's run-queue order). OVER vCPUs still run when no UNDER
//! one is ready: the CPU never idles while a vCPU could run, unless that vCPU is *parked*.
//!
//! Caps: a domain with `cap=c` may use `c` % of one pCPU; its vCPUs share that evenly (each has
//! `c / nr_vcpus` %, wherever it runs). A capped vCPU that used its share of the current
//! period is parked until the next period, even if the CPU would otherwise idle.
//!
//! Differences from Xen: accounting is per CPU (Xen's is global over the CPUs of a pool), so a
//! vCPU's share is of the CPU it is queued on; a vCPU that migrates (`sched/mod.rs` steals
//! work for idle CPUs) takes its credit, boost and cap use along ([`Policy::remove`],
//! [`Policy::join`]), as Xen's credit travels with its vCPU; a cap is enforced per period as a
//! budget rather than by parking on negative credit at the next accounting (tighter: a capped
//! vCPU never runs more than its cap in any period), and a parked vCPU is not migrated; and a
//! vCPU turns OVER as soon as its credit is spent rather than at the next accounting.

use super::policy::{Carry, Policy, TIME_SLICE_NS, VcpuParams, shifted};
use alloc::vec::Vec;

/// Xen's accounting period (`CSCHED_DEFAULT_TSLICE_MS`): credit is handed out this often.
pub const ACCT_PERIOD_NS: u64 = 30_000_000;
/// Xen's credit1 tick (`tslice / CSCHED_TICKS_PER_TSLICE`): how long a BOOSTed vCPU may run
/// before it is an ordinary UNDER one again.
pub const TICK_NS: u64 = 10_000_000;
/// Most periods caught up at once after a long idle stretch (credit is bounded, so more would
/// change nothing).
const MAX_CATCH_UP: u32 = 4;

/// Xen credit1's time-share priorities (`CSCHED_PRI_TS_*`), lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pri {
    /// Spent its credit.
    Over,
    /// Has credit left.
    Under,
    /// Woke from a block with credit left.
    Boost,
}

/// One vCPU's credit state.
#[derive(Clone, Debug)]
struct Entry {
    params: VcpuParams,
    /// Nanoseconds of CPU time it may still use at UNDER (negative: overdrawn).
    credit: i64,
    pri: Pri,
    /// On Xen's active list: earns credit at accounting (from when it runs or is ready until
    /// it has more than a period's worth).
    active: bool,
    /// Time run since it was boosted.
    boost_ran: u64,
    /// Per-period budget from its domain's cap (0: uncapped).
    cap_budget: u64,
    /// Time run in the current period (for the cap).
    period_ran: u64,
    /// Used its cap budget: not run until the next period.
    parked: bool,
    /// Pick sequence number of its last pick (round-robin within a priority).
    last_pick: u64,
}

/// The credit scheduler state of one CPU.
#[derive(Debug)]
pub struct Credit {
    entries: Vec<Entry>,
    /// System time of the next accounting (0: not started).
    next_acct: u64,
    seq: u64,
    yielding: Option<usize>,
    /// The capped entry picked last and when its budget runs out (`u64::MAX`: none).
    cap_end: u64,
}

impl Default for Credit {
    fn default() -> Self {
        Self::new()
    }
}

impl Credit {
    /// An empty queue.
    pub const fn new() -> Self {
        Credit {
            entries: Vec::new(),
            next_acct: 0,
            seq: 0,
            yielding: None,
            cap_end: u64::MAX,
        }
    }

    /// Entry `i`'s priority (for dumps and tests).
    pub fn pri(&self, i: usize) -> Option<Pri> {
        self.entries.get(i).map(|e| e.pri)
    }

    /// Entry `i`'s credit in nanoseconds (for dumps and tests).
    pub fn credit(&self, i: usize) -> Option<i64> {
        self.entries.get(i).map(|e| e.credit)
    }

    /// Whether entry `i` is parked by its cap.
    pub fn parked(&self, i: usize) -> bool {
        self.entries.get(i).is_some_and(|e| e.parked)
    }

    /// Runs the accounting periods that ended by `now` (at most a few: credit is bounded).
    fn catch_up(&mut self, now: u64, ready: &dyn Fn(usize) -> bool) {
        if self.next_acct == 0 {
            self.next_acct = now.saturating_add(ACCT_PERIOD_NS);
            return;
        }
        let mut n = 0;
        while now >= self.next_acct {
            if n == MAX_CATCH_UP {
                self.next_acct = now.saturating_add(ACCT_PERIOD_NS);
                break;
            }
            self.account(ready);
            self.next_acct = self.next_acct.saturating_add(ACCT_PERIOD_NS);
            n += 1;
        }
    }

    /// One accounting period (Xen's `csched_acct`, for this CPU): the period's time goes to
    /// the active vCPUs by weight, none getting more than its peak (a full period, or its cap
    /// budget), what a capped one cannot take going to the others; then priorities are
    /// recomputed, credit is bounded to one period either way, and parked vCPUs are released.
    fn account(&mut self, ready: &dyn Fn(usize) -> bool) {
        for (i, e) in self.entries.iter_mut().enumerate() {
            e.active |= ready(i);
        }
        let shares = self.shares();
        let period = ACCT_PERIOD_NS as i64;
        for (e, share) in self.entries.iter_mut().zip(shares) {
            e.period_ran = 0;
            e.parked = false;
            if !e.active {
                continue;
            }
            e.credit += share as i64;
            if e.credit < 0 {
                e.pri = Pri::Over;
                e.credit = e.credit.max(-period);
            } else {
                e.pri = Pri::Under;
                if e.credit > period {
                    // Idle for a while: stop earning, keep half (Xen's `acct_stop`).
                    e.active = false;
                    e.credit /= 2;
                }
            }
        }
    }

    /// Each entry's share of one period: weighted water-filling over the active entries.
    fn shares(&self) -> Vec<u64> {
        let peak = |e: &Entry| {
            if e.cap_budget != 0 {
                e.cap_budget.min(ACCT_PERIOD_NS)
            } else {
                ACCT_PERIOD_NS
            }
        };
        let mut share = alloc::vec![0u64; self.entries.len()];
        let mut open: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].active)
            .collect();
        let mut left = ACCT_PERIOD_NS;
        loop {
            let weight: u64 = open
                .iter()
                .map(|&i| u64::from(self.entries[i].params.sched.weight.max(1)))
                .sum();
            if weight == 0 {
                break;
            }
            let fair = |i: usize| {
                (left * u64::from(self.entries[i].params.sched.weight.max(1))).div_ceil(weight)
            };
            // Those whose fair share exceeds their peak get the peak; the rest is shared anew.
            let capped: Vec<usize> = open
                .iter()
                .copied()
                .filter(|&i| fair(i) >= peak(&self.entries[i]))
                .collect();
            if capped.is_empty() {
                for &i in &open {
                    share[i] = fair(i);
                }
                break;
            }
            for &i in &capped {
                share[i] = peak(&self.entries[i]);
                left = left.saturating_sub(share[i]);
            }
            open.retain(|i| !capped.contains(i));
        }
        share
    }
}

/// Entry `params`'s per-period budget from its domain's cap (0: uncapped).
fn cap_budget(params: &VcpuParams) -> u64 {
    let cap = u64::from(params.sched.cap);
    let vcpus = u64::from(params.domain_vcpus.max(1));
    (cap * ACCT_PERIOD_NS / 100 / vcpus).max(u64::from(cap != 0))
}

impl Policy for Credit {
    fn add(&mut self, params: VcpuParams) {
        self.join(Carry::fresh(params));
    }

    fn wake(&mut self, i: usize) {
        // Xen's `csched_unit_wake`: only an UNDER, unparked vCPU is boosted.
        if let Some(e) = self.entries.get_mut(i)
            && e.pri == Pri::Under
            && !e.parked
        {
            e.pri = Pri::Boost;
            e.boost_ran = 0;
        }
    }

    fn pick(&mut self, now: u64, ready: &dyn Fn(usize) -> bool) -> Option<usize> {
        self.catch_up(now, ready);
        let yielding = self.yielding.take();
        let best = (0..self.entries.len())
            .filter(|&i| !self.entries[i].parked && ready(i))
            // Highest priority, then not the yielder, then the least recently picked (then the
            // first queued).
            .max_by_key(|&i| {
                let e = &self.entries[i];
                (
                    e.pri,
                    Some(i) != yielding,
                    core::cmp::Reverse((e.last_pick, i)),
                )
            })?;
        self.seq += 1;
        let e = &mut self.entries[best];
        e.last_pick = self.seq;
        e.active = true;
        self.cap_end = if e.cap_budget != 0 {
            now.saturating_add(e.cap_budget.saturating_sub(e.period_ran))
        } else {
            u64::MAX
        };
        Some(best)
    }

    fn slice(&self, i: usize, _now: u64) -> u64 {
        match self.entries.get(i) {
            Some(e) if e.cap_budget != 0 => TIME_SLICE_NS
                .min(e.cap_budget.saturating_sub(e.period_ran))
                .max(1),
            _ => TIME_SLICE_NS,
        }
    }

    fn charge(&mut self, i: usize, ns: u64, _now: u64) {
        self.cap_end = u64::MAX;
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        e.credit = e.credit.saturating_sub(ns.min(i64::MAX as u64) as i64);
        e.active = true;
        e.period_ran = e.period_ran.saturating_add(ns);
        if e.cap_budget != 0 && e.period_ran >= e.cap_budget {
            e.parked = true;
        }
        if e.pri == Pri::Boost {
            e.boost_ran = e.boost_ran.saturating_add(ns);
            if e.boost_ran < TICK_NS {
                return;
            }
        }
        e.pri = if e.credit < 0 { Pri::Over } else { Pri::Under };
    }

    fn yielded(&mut self, i: usize) {
        self.yielding = Some(i);
    }

    fn wakeup(&self) -> u64 {
        let parked = self.entries.iter().any(|e| e.parked);
        let release = if parked { self.next_acct } else { u64::MAX };
        release.min(self.cap_end)
    }

    fn movable(&self, i: usize) -> bool {
        self.entries.get(i).is_some_and(|e| !e.parked)
    }

    fn remove(&mut self, i: usize) -> Carry {
        let e = self.entries.remove(i);
        self.yielding = self.yielding.and_then(|y| shifted(y, i));
        Carry {
            params: e.params,
            credit: e.credit,
            period_ran: e.period_ran,
            boosted: e.pri == Pri::Boost,
        }
    }

    fn join(&mut self, carry: Carry) {
        let pri = match carry.credit {
            c if c < 0 => Pri::Over,
            _ if carry.boosted => Pri::Boost,
            _ => Pri::Under,
        };
        let cap_budget = cap_budget(&carry.params);
        self.entries.push(Entry {
            params: carry.params,
            credit: carry.credit,
            pri,
            // Earns from when it runs or is ready here (`pick`, `account`).
            active: false,
            boost_ran: 0,
            cap_budget,
            period_ran: carry.period_ran,
            parked: cap_budget != 0 && carry.period_ran >= cap_budget,
            // Least recently picked of all: it waited on its old CPU.
            last_pick: 0,
        });
    }
}
