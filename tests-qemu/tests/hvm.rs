//! Hardware-virtualization tests: `selftest=svm` runs a tiny 32-bit guest on AMD SVM with
//! nested paging under QEMU TCG (`-cpu max`: SVM with NPT, no nRIP save) and checks each exit;
//! `selftest=vmx` runs the same guest on Intel VMX with EPT under Bochs (TCG has no VMX), and
//! `selftest=hvm` picks the back-end from CPUID.

use std::path::PathBuf;
use std::time::Duration;

use tests_qemu::serial::SerialLog;
use tests_qemu::{BOOT_COMPLETE, Qemu, RunResult, bochs, paths};

const CONSOLE: &str = "console=com1 com1=115200,8n1 loglvl=all";

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn run(name: &str, cpu: &str) -> RunResult {
    run_test(name, cpu, "svm")
}

fn run_test(name: &str, cpu: &str, test: &str) -> RunResult {
    let r = Qemu::new()
        .name(name)
        .kernel(elf())
        .cpu(cpu)
        .smp(1)
        .mem_mib(256)
        .append(&format!("{CONSOLE} selftest={test}"))
        .success_marker(BOOT_COMPLETE)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

/// Checks the step lines of a passing self-test (`tag` `svm` or `vmx`), in order.
fn check_steps(serial: &SerialLog, tag: &str, first: &str, hypercall: &str, report: &str) {
    let want = [
        format!("(XEN) {tag}: {first}"),
        format!("(XEN) {tag}: cpuid 0x40000000 -> \"XenVMMXenVMM\" ok"),
        "(XEN) (HVM) HVM ok".to_string(),
        format!("(XEN) {tag}: {hypercall} eax=0x1 -> 0 ok"),
        format!("(XEN) {tag}: npf at 0x400000 "),
        format!("(XEN) {tag}: hlt"),
        format!("(XEN) {tag}: selftest passed"),
        BOOT_COMPLETE.to_string(),
    ];
    let mut last = 0;
    for w in &want {
        let i = serial
            .line_index(w)
            .unwrap_or_else(|| panic!("no line starting with {w:?}\n{report}"));
        assert!(i >= last, "{w:?} out of order\n{report}");
        last = i;
    }
    let npf = serial
        .find_line(&format!("(XEN) {tag}: npf at 0x400000 "))
        .unwrap_or_default();
    assert!(npf.ends_with(" populated"), "{npf}");
    assert!(
        serial.find_line(&format!("(XEN) {tag}: failed")).is_none(),
        "{report}"
    );
}

#[test]
fn svm_selftest_runs_a_guest_through_every_exit() {
    let r = run("hvm-svm", "max");
    check_steps(&r.serial, "svm", "revision ", "vmmcall", &r.report());
}

#[test]
fn hvm_selftest_picks_svm_on_qemu() {
    let r = run_test("hvm-pick", "max", "hvm");
    check_steps(&r.serial, "svm", "revision ", "vmmcall", &r.report());
    assert!(r.find_line("(XEN) vmx:").is_none(), "{}", r.report());
}

#[test]
fn vmx_selftest_runs_a_guest_through_every_exit_on_bochs() {
    // CI installs Bochs (scripts/install-host-deps.sh --bochs): a missing Bochs is a failure.
    if let Err(e) = bochs::available() {
        panic!("{e}");
    }
    let r = bochs::run(
        "hvm-vmx",
        &elf(),
        &format!("{CONSOLE} selftest=vmx"),
        BOOT_COMPLETE,
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("Bochs run failed to start: {e}"));
    assert!(r.success, "{}", r.report());
    check_steps(&r.serial, "vmx", "VMCS revision ", "vmcall", &r.report());
}

#[test]
fn svm_selftest_reports_a_cpu_without_svm() {
    let r = run("hvm-nosvm", "qemu64,-svm");
    r.expect_line("(XEN) svm: not available (no SVM)");
    assert!(r.find_line("(XEN) svm: selftest passed").is_none());
}
