//! Hardware-virtualization tests: `selftest=svm` runs a tiny 32-bit guest on AMD SVM with
//! nested paging under QEMU TCG (`-cpu max`: SVM with NPT, no nRIP save) and checks each exit.

use std::path::PathBuf;

use tests_qemu::{BOOT_COMPLETE, Qemu, RunResult, paths};

const CONSOLE: &str = "console=com1 com1=115200,8n1 loglvl=all";

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn run(name: &str, cpu: &str) -> RunResult {
    let r = Qemu::new()
        .name(name)
        .kernel(elf())
        .cpu(cpu)
        .smp(1)
        .mem_mib(256)
        .append(&format!("{CONSOLE} selftest=svm"))
        .success_marker(BOOT_COMPLETE)
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

#[test]
fn svm_selftest_runs_a_guest_through_every_exit() {
    let r = run("hvm-svm", "max");
    // In this order, one line per step.
    let want = [
        "(XEN) svm: revision ",
        "(XEN) svm: cpuid 0x40000000 -> \"XenVMMXenVMM\" ok",
        "(XEN) (HVM) HVM ok",
        "(XEN) svm: vmmcall eax=0x1 -> 0 ok",
        "(XEN) svm: npf at 0x400000 ",
        "(XEN) svm: hlt",
        "(XEN) svm: selftest passed",
        BOOT_COMPLETE,
    ];
    let mut last = 0;
    for w in want {
        let i = r
            .serial
            .line_index(w)
            .unwrap_or_else(|| panic!("no line starting with {w:?}\n{}", r.report()));
        assert!(i >= last, "{w:?} out of order\n{}", r.report());
        last = i;
    }
    let npf = r.expect_line("(XEN) svm: npf at 0x400000 ");
    assert!(npf.ends_with(" populated"), "{npf}");
    assert!(r.find_line("(XEN) svm: failed").is_none(), "{}", r.report());
}

#[test]
fn svm_selftest_reports_a_cpu_without_svm() {
    let r = run("hvm-nosvm", "qemu64,-svm");
    r.expect_line("(XEN) svm: not available (no SVM)");
    assert!(r.find_line("(XEN) svm: selftest passed").is_none());
}
