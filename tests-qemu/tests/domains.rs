//! Several domains at once: a boot-time domU beside dom0, talking over an interdomain event
//! channel (the `pingpong` suite on both sides), and the domU's view of the ABI (`domu`).
//! Xen 4.17 cannot start domUs at boot, so these run on Xenolith only.

use std::path::PathBuf;

use tests_qemu::verdicts::Transcript;
use tests_qemu::{Qemu, RunResult, guests, paths, xen_ref};

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

/// The verdict transcript of domain `dom` (dom0: the unprefixed lines).
fn transcript(r: &RunResult, dom: u16) -> Transcript {
    Transcript::of_domain(r.serial.text(), dom)
}

fn run_pair(name: &str, cpus: u32, dom0_vcpus: u32) -> RunResult {
    run_domains(name, cpus, dom0_vcpus, &[])
}

/// dom0 and domU 1 run `pingpong`; `extra` domUs (module command lines) run beside them.
fn run_domains(name: &str, cpus: u32, dom0_vcpus: u32, extra: &[&str]) -> RunResult {
    let p = pvtest();
    let mut q = Qemu::new()
        .name(name)
        .kernel(elf())
        .append(&format!(
            "console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus={dom0_vcpus} noreboot"
        ))
        .smp(cpus)
        .module(&p, "suites=pingpong")
        .module(&p, "domU name=peer memory=32 -- suites=domu,pingpong");
    for m in extra {
        q = q.module(&p, m);
    }
    let r = q
        .timeout(std::time::Duration::from_secs(120))
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

fn check_pair(r: &RunResult) {
    let dom0 = transcript(r, 0);
    let domu = transcript(r, 1);
    if let Err(e) = dom0.expect_all_pass(&["pingpong"]) {
        panic!("dom0:\n{e}\n{}", r.report());
    }
    if let Err(e) = domu.expect_all_pass(&["domu", "pingpong"]) {
        panic!("the domU:\n{e}\n{}", r.report());
    }
    let want = format!("n={}", 100);
    for (t, key) in [(&dom0, "pingpong.round_trips"), (&domu, "pingpong.echoes")] {
        let v = t
            .get(key)
            .unwrap_or_else(|| panic!("no {key} verdict\n{}", r.report()));
        assert!(v.details.contains(&want), "{key}: {v:?}\n{}", r.report());
    }
    // The domU powered off by itself, while dom0 ran on (dom0 saw VIRQ_DOM_EXC and its port
    // go back to unbound: `pingpong.virq_dom_exc`, `pingpong.port_after_peer_exit`).
    assert!(
        r.lines()
            .any(|l| l.contains("d1: shutdown, reason 0 (poweroff)")),
        "{}",
        r.report()
    );
}

/// dom0 and the domU on a CPU each.
#[test]
fn pingpong_between_dom0_and_a_domu() {
    let r = run_pair("domains-pingpong", 2, 1);
    check_pair(&r);
}

/// Both domains on one CPU: every round trip is a switch between them.
#[test]
fn pingpong_with_both_domains_on_one_cpu() {
    let r = run_pair("domains-pingpong-1cpu", 1, 1);
    check_pair(&r);
}

/// Three domains on two CPUs: dom0 and domU 1 ping-pong while domU 2 runs its own checks on
/// the shared CPUs and stops first.
#[test]
fn three_domains_on_two_cpus() {
    let r = run_domains(
        "domains-three",
        2,
        1,
        &["domU name=third memory=32 -- suites=domu"],
    );
    check_pair(&r);
    if let Err(e) = transcript(&r, 2).expect_all_pass(&["domu"]) {
        panic!("domU 2:\n{e}\n{}", r.report());
    }
    assert!(
        r.lines()
            .any(|l| l.contains("d2: shutdown, reason 0 (poweroff)")),
        "{}",
        r.report()
    );
}
