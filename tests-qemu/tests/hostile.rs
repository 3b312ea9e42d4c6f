//! The hostile guest (`pvtest suites=hostile`, see `guests/src/suites/hostile.rs`) as dom0 on
//! Xenolith, with a boot-time domU beside it (`suites=domu,hostile`: the ABI checks, then a
//! canary page it checks until dom0 signals the end). Pass: no hypervisor fault, the hostile
//! domain finished with its summary (or crashed alone with a `domain_crash called from`
//! message), and every check of the domU passes. A second run on Xen 4.17 (fewer iterations)
//! shows the reference surviving the same calls.
//!
//! `HOSTILE_ITERS` and `HOSTILE_SEED` override the iteration count and the seed.

use std::path::PathBuf;
use std::time::Duration;

use tests_qemu::verdicts::Transcript;
use tests_qemu::{Qemu, RunResult, guests, paths, xen_ref};

/// Iterations of the random class per CI run (the targeted classes add a fraction of it).
const ITERS: u64 = 100_000;

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

/// The verdict transcript of domain `dom` (dom0: the unprefixed lines).
fn transcript(r: &RunResult, dom: u16) -> Transcript {
    Transcript::of_domain(r.serial.text(), dom)
}

fn no_hypervisor_fault(r: &RunResult) {
    for bad in ["(XEN) FATAL", "FATAL TRAP", "Panic on CPU"] {
        assert!(
            !r.lines().any(|l| l.contains(bad)),
            "hypervisor fault ({bad})\n{}",
            r.report()
        );
    }
}

/// The hostile dom0's outcome: `Ok(summary line)` or `Err(crash line)`.
fn hostile_outcome(r: &RunResult) -> Result<String, String> {
    if let Some(l) = r.lines().find(|l| l.contains("HOSTILE summary")) {
        return Ok(l.to_string());
    }
    match r.lines().find(|l| l.contains("domain_crash called from")) {
        Some(l) => Err(l.to_string()),
        None => panic!(
            "the hostile domain neither finished nor crashed with a clear message\n{}",
            r.report()
        ),
    }
}

fn run_xenolith(name: &str, seed: u64, iters: u64) -> RunResult {
    let elf = paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"));
    let p = pvtest();
    Qemu::new()
        .name(name)
        .kernel(elf)
        .append("console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot")
        .smp(2)
        .module(&p, &format!("suites=hostile seed={seed} iters={iters}"))
        .module(&p, "domU name=canary memory=32 -- suites=domu,hostile")
        .timeout(Duration::from_secs(300))
        .success_marker(xen_ref::DOM0_HALTED)
        .success_marker(xen_ref::DOM0_CRASHED)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"))
}

/// The verdicts of the hostile dom0 (its deterministic details), for comparisons.
fn hostile_lines(t: &Transcript) -> Vec<String> {
    t.suite("hostile")
        .map(|v| {
            format!(
                "{}.{} {} {}",
                v.suite,
                v.check,
                v.outcome.as_str(),
                v.details
            )
        })
        .collect()
}

#[test]
fn hostile_dom0_beside_a_domu_on_xenolith() {
    let seed = env_u64("HOSTILE_SEED", 1);
    let iters = env_u64("HOSTILE_ITERS", ITERS);
    let r = run_xenolith("hostile-xenolith", seed, iters);
    no_hypervisor_fault(&r);
    let outcome = hostile_outcome(&r);
    eprintln!(
        "hostile: seed={seed} iters={iters} elapsed={:.1}s outcome={outcome:?}",
        r.elapsed.as_secs_f64()
    );
    let dom0 = transcript(&r, 0);
    eprintln!("{}", hostile_lines(&dom0).join("\n"));
    if outcome.is_ok() {
        // Finished: every class kept its memory and found no isolation break.
        if let Err(e) = dom0.expect_all_pass(&["hostile"]) {
            panic!("hostile dom0:\n{e}\n{}", r.report());
        }
        assert!(
            r.lines()
                .any(|l| l.contains("HOSTILE summary") && l.contains("violations=0")),
            "{}",
            r.report()
        );
    }
    assert!(
        !r.lines().any(|l| l.contains("HOSTILE FINDING")),
        "{}",
        r.report()
    );
    let domu = transcript(&r, 1);
    if let Err(e) = domu.expect_all_pass(&["domu", "hostile"]) {
        panic!("the domU:\n{e}\n{}", r.report());
    }
}

/// Same seed, same hypervisor: the same verdicts and details (the counts are deterministic).
#[test]
fn hostile_is_reproducible_on_xenolith() {
    let iters = env_u64("HOSTILE_ITERS", ITERS) / 10;
    let a = run_xenolith("hostile-repro-a", 7, iters);
    let b = run_xenolith("hostile-repro-b", 7, iters);
    no_hypervisor_fault(&a);
    no_hypervisor_fault(&b);
    let (la, lb) = (
        hostile_lines(&transcript(&a, 0)),
        hostile_lines(&transcript(&b, 0)),
    );
    assert!(!la.is_empty(), "{}", a.report());
    assert_eq!(la, lb, "runs with the same seed differ");
}

/// The same suite as dom0 on Xen 4.17 (no domU there: the sibling checks SKIP). The reference
/// must survive it too; its counts differ from Xenolith's (different errnos in places).
#[test]
fn hostile_on_xen_4_17() {
    let iters = env_u64("HOSTILE_ITERS", ITERS) / 5;
    let hv = guests::Hypervisor::Xen;
    let xen = hv.elf().unwrap_or_else(|e| panic!("no Xen 4.17: {e}"));
    let r = guests::pvtest_qemu(
        hv,
        &xen,
        &pvtest(),
        &format!("suites=hostile seed=1 iters={iters}"),
    )
    .name("hostile-xen")
    .timeout(Duration::from_secs(300))
    .run()
    .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    no_hypervisor_fault(&r);
    let t = Transcript::parse(r.serial.text());
    eprintln!(
        "xen: iters={iters} elapsed={:.1}s\n{}",
        r.elapsed.as_secs_f64(),
        hostile_lines(&t).join("\n")
    );
    assert!(
        r.lines().any(|l| l.contains("HOSTILE summary")),
        "{}",
        r.report()
    );
}
