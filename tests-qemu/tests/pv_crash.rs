//! A PV dom0 that misbehaves (no trap table, then a fault) is crashed alone: the hypervisor
//! reports a domain crash with the guest's registers and applies the hardware domain's crash
//! policy (`noreboot`: halt), never faulting itself. Checked on real Xen 4.17 and on Xenolith.

use std::time::Duration;
use tests_qemu::guests::{Hypervisor, pvtest_elf, pvtest_qemu};

fn crash_run(hv: Hypervisor) -> tests_qemu::RunResult {
    crash_run_with(hv, "crash=unhandled-fault")
}

fn crash_run_with(hv: Hypervisor, how: &str) -> tests_qemu::RunResult {
    let guest = pvtest_elf().expect("pvtest builds");
    let hv_elf = hv.elf().expect("hypervisor ELF");
    pvtest_qemu(hv, &hv_elf, &guest, &format!("suites=basic {how}"))
        .name(&format!("pvtest-{}-{}", how.replace('=', "-"), hv.name()))
        .no_failure_markers()
        .success_marker("Hardware Dom0 crashed")
        .settle(Duration::from_secs(1))
        .run()
        .expect("QEMU runs")
}

#[test]
fn unhandled_guest_fault_crashes_dom0_on_xen_4_17() {
    let r = crash_run(Hypervisor::Xen);
    r.assert_success();
    assert!(r.find_line("PVTEST crash:").is_some(), "{}", r.report());
}

#[test]
fn unhandled_guest_fault_crashes_dom0_on_xenolith() {
    let r = crash_run(Hypervisor::Xenolith);
    r.assert_success();
    let text = r.serial.text();
    for want in [
        "PVTEST crash:",
        "(XEN) domain_crash called from d0v0",
        "(XEN) d0v0 RIP: e033:[<",
        "(XEN) d0v0 cr3: ",
        "(XEN) Hardware Dom0 crashed: 'noreboot' set - not rebooting.",
    ] {
        assert!(text.contains(want), "missing {want:?}\n{}", r.report());
    }
    // The guest's fault is the guest's: no hypervisor fault report.
    for bad in ["FATAL PAGE FAULT", "FATAL TRAP", "Panic on CPU"] {
        assert!(
            !text.contains(bad),
            "hypervisor fault {bad:?}\n{}",
            r.report()
        );
    }
    // The guest's own verdicts before it misbehaved were all fine.
    assert!(
        r.find_line("SUMMARY basic passed=")
            .is_some_and(|l| l.contains("failed=0")),
        "{}",
        r.report()
    );
}

#[test]
fn bad_iret_context_crashes_dom0_not_the_hypervisor() {
    let xen = crash_run_with(Hypervisor::Xen, "crash=bad-iret");
    xen.assert_success();
    let r = crash_run_with(Hypervisor::Xenolith, "crash=bad-iret");
    r.assert_success();
    let text = r.serial.text();
    assert!(
        text.contains("PVTEST crash: HYPERVISOR_iret"),
        "{}",
        r.report()
    );
    assert!(
        text.contains("(XEN) domain_crash called from d0v0"),
        "{}",
        r.report()
    );
    for bad in ["FATAL PAGE FAULT", "FATAL TRAP", "Panic on CPU"] {
        assert!(
            !text.contains(bad),
            "hypervisor fault {bad:?}\n{}",
            r.report()
        );
    }
}
