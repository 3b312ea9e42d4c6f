//! Debian's cloud kernel (`linux-image-cloud-amd64`, domU-only, an LZ4 bzImage) as a boot-time
//! PV domU beside a pvtest dom0: it boots through its console ring (with the hypervisor's
//! minimal xenstore answering xenbus) to a busybox shell on `hvc0`, which the test reaches by
//! moving the serial input to the domU (`CTRL-a` x3) and drives; `poweroff -f` stops the domU,
//! dom0 sees `VIRQ_DOM_EXC` and powers the machine off.

use tests_qemu::{EndReason, linux};

#[test]
fn debian_cloud_linux_runs_as_a_domu_with_a_shell() {
    let run = linux::cloud_domu_shell_run("linux-domu", false)
        .unwrap_or_else(|e| panic!("running the cloud kernel as a domU: {e}"));
    for fatal in linux::HYPERVISOR_FATAL {
        assert!(
            !run.lines().any(|l| l.contains(fatal)),
            "the serial log has {fatal:?}\n{}",
            run.report()
        );
    }
    assert!(matches!(run.end, EndReason::Success(_)), "{}", run.report());
    for line in linux::CLOUD_DOMU_SHELL_LINES {
        assert!(
            run.lines().any(|l| l.starts_with(line) || l.contains(line)),
            "no {line:?}\n{}",
            run.report()
        );
    }
}
