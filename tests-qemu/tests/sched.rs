//! The scheduler under contention: more runnable vCPUs than pCPUs, with weights (the `sched`
//! pvtest suite in several domains over one shared window of system time).
//!
//! QEMU `-smp 2`, `dom0_max_vcpus=1`; vCPUs are placed round-robin, so: CPU 0 holds dom0 and
//! domU 2 (`sleeper`), both blocked through the window (`SCHEDOP_block` with a timer at its
//! end); CPU 1 holds domU 1 (`light`, weight 256) and domU 3 (`heavy`, weight 512), both
//! spinning and pinned there with `cpus=1` (so the idle CPU 0 may not take either). Under
//! `sched=credit` (the default) the spinners' running times must be about 1:2 and add up to
//! the window (they share CPU 1 the whole time and never run on the idle CPU 0, which also
//! shows that `cpus=` holds: no migration is logged for them); the sleeper must have run ~0.
//! Under `sched=rr` the weights are ignored: about 1:1. The run queues dump (`r`) shows where
//! each vCPU sits. Xen 4.17 has no boot-time domUs, so this runs on Xenolith only. Unpinned
//! vCPUs moving between CPUs: tests/migration.rs.

use std::path::PathBuf;

use tests_qemu::verdicts::Transcript;
use tests_qemu::{Qemu, RunResult, guests, paths, xen_ref};

/// The window, in ms of system time: late enough for every domain to have started under TCG,
/// long enough for hundreds of 30 ms accounting periods.
const FROM_MS: u64 = 3_000;
const TO_MS: u64 = 9_000;
/// Dom0 waits past the window so the domUs report before it powers the machine off.
const DOM0_TO_MS: u64 = TO_MS + 2_000;
/// Relative tolerance on the shares (TCG timing is noisy; the test is about proportions).
const TOLERANCE: f64 = 0.25;
const CTRL_A3: &[u8] = &[1, 1, 1];

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

fn suite_args(role: &str, to: u64) -> String {
    format!("suites=sched sched_role={role} sched_from={FROM_MS} sched_to={to}")
}

/// Boots the four domains with `extra` on the hypervisor's command line.
fn run(name: &str, extra: &str) -> RunResult {
    let p = pvtest();
    let r = Qemu::new()
        .name(name)
        .kernel(elf())
        .append(&format!(
            "console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot {extra}"
        ))
        .smp(2)
        .module(&p, &suite_args("block", DOM0_TO_MS))
        .module(
            &p,
            &format!(
                "domU name=light memory=32 cpus=1 weight=256 -- {}",
                suite_args("spin", TO_MS)
            ),
        )
        .module(
            &p,
            &format!(
                "domU name=sleeper memory=32 -- {}",
                suite_args("block", TO_MS)
            ),
        )
        .module(
            &p,
            &format!(
                "domU name=heavy memory=32 cpus=1 weight=512 -- {}",
                suite_args("spin", TO_MS)
            ),
        )
        // Input goes to dom0 first; three switches later (domUs 1-3) it reaches Xen: dump the
        // run queues once every domain has started.
        .type_after("(d3) VERDICT sched.window_ahead", CTRL_A3)
        .type_after("*** Serial input to DOM1", CTRL_A3)
        .type_after("*** Serial input to DOM2", CTRL_A3)
        .type_after("*** Serial input to DOM3", CTRL_A3)
        .type_after("*** Serial input to Xen", b"r")
        .timeout(std::time::Duration::from_secs(90))
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

/// `key=<u64>` from a verdict's details.
fn field(details: &str, key: &str) -> Option<u64> {
    details
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// What domain `dom`'s `sched` suite reported: its `sched.<check>` details, after checking
/// that every check of the suite passed.
fn report(r: &RunResult, dom: u16, check: &str) -> String {
    let t = Transcript::of_domain(r.serial.text(), dom);
    if let Err(e) = t.expect_all_pass(&["sched"]) {
        panic!("d{dom}:\n{e}\n{}", r.report());
    }
    let key = format!("sched.{check}");
    t.get(&key)
        .unwrap_or_else(|| panic!("d{dom}: no {key} verdict\n{}", r.report()))
        .details
        .clone()
}

/// The spinners' and the sleepers' numbers; checks what holds under any policy.
struct Shares {
    light: u64,
    heavy: u64,
    light_chunks: u64,
    heavy_chunks: u64,
}

fn shares(r: &RunResult) -> Shares {
    let get =
        |d: &str, k: &str| field(d, k).unwrap_or_else(|| panic!("no {k} in '{d}'\n{}", r.report()));
    let light = report(r, 1, "spin");
    let heavy = report(r, 3, "spin");
    let s = Shares {
        light: get(&light, "running_ns"),
        heavy: get(&heavy, "running_ns"),
        light_chunks: get(&light, "chunks"),
        heavy_chunks: get(&heavy, "chunks"),
    };
    // Not vacuous: both spun, for real, through the window.
    assert!(
        s.light_chunks > 0 && s.heavy_chunks > 0 && s.light > 0 && s.heavy > 0,
        "light: {light}; heavy: {heavy}"
    );
    // They shared one CPU all along: together about the window, never more (had either run
    // on the idle CPU 0, both would be near the full window).
    let window = get(&light, "window_ns").max(get(&heavy, "window_ns"));
    let sum = s.light + s.heavy;
    assert!(
        sum as f64 >= 0.8 * window as f64 && sum as f64 <= 1.05 * window as f64,
        "running {sum} ns of a {window} ns window; light: {light}; heavy: {heavy}"
    );
    // The sleepers ran ~0 while blocked (they are on the other CPU; this is their own time).
    for dom in [0, 2] {
        let b = report(r, dom, "block");
        let running = get(&b, "running_ns");
        let w = get(&b, "window_ns");
        assert!(
            running * 100 <= w,
            "d{dom} ran {running} ns while blocked for a {w} ns window: {b}"
        );
    }
    // Pinned by `cpus=1`: neither spinner ever moved to the idle CPU 0.
    for dom in [1, 3] {
        let moved = format!("sched: d{dom}v0 moved");
        assert!(
            !r.lines().any(|l| l.contains(&moved)),
            "d{dom} (cpus=1) migrated\n{}",
            r.report()
        );
    }
    // Where the vCPUs sit (the `r` dump): the spinners on CPU 1, the sleepers on CPU 0.
    for (cpu, dom) in [(1, 1), (0, 2), (1, 3), (0, 0)] {
        let want = format!("CPU[{cpu:02}] d{dom}v0 ");
        assert!(
            r.lines().any(|l| l.contains(&want)),
            "no '{want}' in the run-queue dump\n{}",
            r.report()
        );
    }
    s
}

fn assert_ratio(what: &str, got: f64, want: f64, r: &RunResult) {
    assert!(
        (got - want).abs() <= want * TOLERANCE,
        "{what}: ratio {got:.3}, want {want} ± {:.0} %\n{}",
        TOLERANCE * 100.0,
        r.report()
    );
}

/// Weights 256 and 512 on one CPU: running times about 1:2, and the work done likewise.
#[test]
fn credit_shares_a_cpu_by_weight() {
    let r = run("sched-credit", "");
    assert!(
        r.lines()
            .any(|l| l.contains("Scheduler: SMP Credit Scheduler (credit)")),
        "{}",
        r.report()
    );
    let s = shares(&r);
    assert_ratio(
        "heavy/light running time",
        s.heavy as f64 / s.light as f64,
        2.0,
        &r,
    );
    assert_ratio(
        "heavy/light work",
        s.heavy_chunks as f64 / s.light_chunks as f64,
        2.0,
        &r,
    );
}

/// `sched=rr`: the same domains alternate, weights ignored: about 1:1.
#[test]
fn round_robin_ignores_weights() {
    let r = run("sched-rr", "sched=rr");
    assert!(
        r.lines()
            .any(|l| l.contains("Scheduler: Round-robin Scheduler (rr)")),
        "{}",
        r.report()
    );
    let s = shares(&r);
    assert_ratio(
        "heavy/light running time",
        s.heavy as f64 / s.light as f64,
        1.0,
        &r,
    );
}
