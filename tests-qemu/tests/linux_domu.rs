//! Debian's cloud kernel (`linux-image-cloud-amd64`, domU-only, an LZ4 bzImage) as a boot-time
//! PV domU beside a pvtest dom0: it boots through its console ring (with the hypervisor's
//! minimal xenstore answering xenbus) to a busybox shell on `hvc0`, which the test reaches by
//! moving the serial input to the domU (`CTRL-a` x3) and drives; `poweroff -f` stops the domU,
//! dom0 sees `VIRQ_DOM_EXC` and powers the machine off.

use std::time::Duration;

use tests_qemu::{EndReason, Qemu, guests, initramfs, linux, paths, xen_ref};

const CTRL_A3: &[u8] = &[1, 1, 1];

#[test]
fn debian_cloud_linux_runs_as_a_domu_with_a_shell() {
    let kernel = linux::cloud_kernel().unwrap_or_else(|e| panic!("fetching the cloud kernel: {e}"));
    let initrd = initramfs::busybox_shell_initramfs()
        .unwrap_or_else(|e| panic!("building the busybox initramfs: {e}"));
    let pvtest = guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"));
    let hv = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));
    let prompt = "/ # ";
    let run = Qemu::new()
        .name("linux-domu")
        .kernel(hv)
        .append("console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot")
        .mem_mib(2048)
        .smp(2)
        .module(&pvtest, "suites=watch domus=1")
        .module(
            &kernel,
            &format!(
                "domU name=linux memory=256 initrd=2 -- {}",
                linux::DOMU_CMDLINE
            ),
        )
        .module(&initrd, "")
        .timeout(Duration::from_secs(240))
        .type_after(initramfs::SHELL_MARKER, CTRL_A3)
        // A fresh prompt once the input is the domU's: the first one may have come before.
        .type_after("*** Serial input to DOM1", b"\r")
        .type_after(prompt, b"cat /sys/hypervisor/type\r")
        .type_after("(d1) xen", b"")
        .type_after(prompt, b"poweroff -f\r")
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .run()
        .unwrap_or_else(|e| panic!("running QEMU: {e}"));
    for fatal in linux::HYPERVISOR_FATAL {
        assert!(
            !run.lines().any(|l| l.contains(fatal)),
            "the serial log has {fatal:?}\n{}",
            run.report()
        );
    }
    assert!(matches!(run.end, EndReason::Success(_)), "{}", run.report());
    for line in [
        "(d1) XENOLITH-SHELL: ready on xen",
        "(d1) xen",
        "d1: shutdown, reason 0 (poweroff)",
        "VERDICT watch.domus_stopped PASS",
    ] {
        assert!(
            run.lines().any(|l| l.starts_with(line) || l.contains(line)),
            "no {line:?}\n{}",
            run.report()
        );
    }
}
