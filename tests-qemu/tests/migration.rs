//! vCPU migration: an idle CPU takes a waiting vCPU from a busy one, within the vCPU's hard
//! affinity (`cpus=`, `dom0_vcpus_pin`). Every domain runs the `sched` pvtest suite over one
//! shared window of system time, as in tests/sched.rs; the hypervisor logs
//! `sched: dNvM moved from CPUa to CPUb (migration k)` for a vCPU's 1st, 2nd, 4th... move.
//! Xen 4.17 has no boot-time domUs, so this runs on Xenolith only.

use std::path::PathBuf;

use tests_qemu::verdicts::Transcript;
use tests_qemu::{Qemu, RunResult, guests, paths, xen_ref};

/// The window, in ms of system time (as in tests/sched.rs, a second later: the first domains
/// spin while the later ones are built).
const FROM_MS: u64 = 4_000;
const TO_MS: u64 = 10_000;
/// Where the early spinner stops, halfway.
const MID_MS: u64 = 7_000;
/// Dom0 goes on past the window so the domUs report before it powers the machine off.
const DOM0_TO_MS: u64 = TO_MS + 2_000;

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

fn suite_args(role: &str, to: u64) -> String {
    format!("suites=sched sched_role={role} sched_from={FROM_MS} sched_to={to}")
}

/// Boots dom0 (`dom0_args`) and the domUs (`domU` descriptions without the suite's
/// arguments, each with its role and end) on 2 CPUs, `extra` on the hypervisor's command line.
fn run(name: &str, extra: &str, dom0_args: &str, domus: &[(&str, &str, u64)]) -> RunResult {
    let p = pvtest();
    let mut q = Qemu::new()
        .name(name)
        .kernel(elf())
        .append(&format!(
            "console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot {extra}"
        ))
        .smp(2)
        .module(&p, dom0_args);
    for (desc, role, to) in domus {
        q = q.module(&p, &format!("{desc} -- {}", suite_args(role, *to)));
    }
    let r = q
        .timeout(std::time::Duration::from_secs(90))
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

/// `key=<u64>` from a verdict's details.
fn field(r: &RunResult, details: &str, key: &str) -> u64 {
    details
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in '{details}'\n{}", r.report()))
}

/// Domain `dom`'s `sched.<check>` details, after checking that every check of the suite passed.
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

/// The logged migrations of domain `dom`'s vCPU 0: (from, to) CPUs.
fn moves(r: &RunResult, dom: u16) -> Vec<(u32, u32)> {
    let prefix = format!("sched: d{dom}v0 moved from CPU");
    r.lines()
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            let (from, rest) = rest.split_once(" to CPU")?;
            let to = rest.split_whitespace().next()?;
            Some((from.parse().ok()?, to.parse().ok()?))
        })
        .collect()
}

/// Three unpinned spinners on 2 CPUs: round-robin placement puts `a` and `c` on CPU 1 and
/// `b` with the blocked dom0 on CPU 0. `b` stops halfway; from then on CPU 0 would idle while
/// `a` and `c` shared CPU 1, unless CPU 0 takes one of them. So: every spinner works, their
/// running times add up to two CPUs' worth of the window (1.5 without migration), and `a` or
/// `c` is logged moving from CPU 1 to CPU 0.
#[test]
fn an_idle_cpu_takes_a_waiting_vcpu() {
    let r = run(
        "migration-fill",
        "",
        &suite_args("block", DOM0_TO_MS),
        &[
            ("domU name=a memory=32", "spin", TO_MS),
            ("domU name=b memory=32", "spin", MID_MS),
            ("domU name=c memory=32", "spin", TO_MS),
        ],
    );
    for (dom, cpu) in [(1, 1), (2, 0), (3, 1)] {
        let want = format!("d{dom}: PV domU");
        let placed = format!("on CPU(s) [{cpu}] (cpus=all)");
        assert!(
            r.lines().any(|l| l.contains(&want) && l.contains(&placed)),
            "d{dom} not placed on CPU {cpu}\n{}",
            r.report()
        );
    }
    let mut total = 0;
    let mut window = 0;
    for dom in [1, 2, 3] {
        let d = report(&r, dom, "spin");
        assert!(field(&r, &d, "chunks") > 0, "d{dom} did no work: {d}");
        total += field(&r, &d, "running_ns");
        window = window.max(field(&r, &d, "window_ns"));
    }
    let cpus = total as f64 / window as f64;
    assert!(
        (1.85..=2.05).contains(&cpus),
        "the spinners ran {cpus:.2} CPUs' worth of the window (want 2: no CPU idle while a \
         vCPU waited)\n{}",
        r.report()
    );
    let stolen: Vec<(u32, u32)> = [1, 3].iter().flat_map(|&d| moves(&r, d)).collect();
    assert!(
        stolen.contains(&(1, 0)),
        "neither a nor c moved from CPU 1 to CPU 0: {stolen:?}\n{}",
        r.report()
    );
    // The blocked dom0 ran ~0 (it had nothing to do wherever it sat).
    let b = report(&r, 0, "block");
    assert!(
        field(&r, &b, "running_ns") * 100 <= field(&r, &b, "window_ns"),
        "dom0: {b}"
    );
}

/// Dom0 (spinning) and domU `p` (`cpus=0`, spinning) share CPU 0; CPU 1 holds only the
/// blocked `s`. With `dom0_vcpus_pin` dom0's vCPU 0 is pinned to CPU 0, so the two share it
/// (about half the window each) although CPU 1 idles, and neither is logged moving. Without
/// it, dom0 moves to CPU 1 and `p` has CPU 0 to itself.
fn pinning(pin: bool) {
    let r = run(
        if pin {
            "migration-pin"
        } else {
            "migration-nopin"
        },
        if pin { "dom0_vcpus_pin" } else { "" },
        &suite_args("spin", DOM0_TO_MS),
        &[
            ("domU name=p memory=32 cpus=0", "spin", TO_MS),
            ("domU name=s memory=32", "block", TO_MS),
        ],
    );
    assert!(
        r.lines().any(|l| l.contains(if pin {
            "Dom0 vCPU pinning: on"
        } else {
            "Dom0 vCPU pinning: off"
        })),
        "{}",
        r.report()
    );
    let p = report(&r, 1, "spin");
    let share = field(&r, &p, "running_ns") as f64 / field(&r, &p, "window_ns") as f64;
    assert!(moves(&r, 1).is_empty(), "p (cpus=0) moved\n{}", r.report());
    if pin {
        assert!(moves(&r, 0).is_empty(), "pinned dom0 moved\n{}", r.report());
        assert!(
            (0.35..=0.65).contains(&share),
            "p ran {share:.2} of the window beside the pinned dom0 (want 1/2)\n{}",
            r.report()
        );
    } else {
        assert!(
            moves(&r, 0).contains(&(0, 1)),
            "unpinned dom0 never moved to the idle CPU 1\n{}",
            r.report()
        );
        assert!(
            share >= 0.9,
            "p ran {share:.2} of the window (want ~1: dom0 moved away)\n{}",
            r.report()
        );
    }
    let s = report(&r, 2, "block");
    assert!(
        field(&r, &s, "running_ns") * 100 <= field(&r, &s, "window_ns"),
        "s: {s}"
    );
}

#[test]
fn dom0_vcpus_pin_keeps_dom0_on_its_cpu() {
    pinning(true);
}

#[test]
fn unpinned_dom0_moves_to_an_idle_cpu() {
    pinning(false);
}
