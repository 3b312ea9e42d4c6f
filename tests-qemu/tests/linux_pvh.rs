//! Debian's cloud kernel (`linux-image-cloud-amd64`) as a boot-time PVH domU on AMD SVM (QEMU
//! `-cpu max`), beside a pvtest dom0: it enters at its `XEN_ELFNOTE_PHYS32_ENTRY` in 32-bit
//! protected mode with `hvm_start_info` and ACPI tables (a MADT with its local APIC), takes
//! its events by vector and its clock events from the Xen timer, and boots to the busybox
//! `/init`, which prints a marker through the console ring and powers the domain off; dom0
//! sees the domain stop and powers the machine off.

use std::time::Duration;

use tests_qemu::{EndReason, Qemu, guests, initramfs, linux, paths, xen_ref};

#[test]
fn debian_cloud_linux_boots_as_a_pvh_domu_on_svm() {
    let kernel = linux::cloud_kernel().unwrap_or_else(|e| panic!("fetching the cloud kernel: {e}"));
    let initrd = initramfs::busybox_initramfs()
        .unwrap_or_else(|e| panic!("building the busybox initramfs: {e}"));
    let pvtest = guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"));
    let hv = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));
    let run = Qemu::new()
        .name("linux-pvh-domu")
        .kernel(hv)
        .cpu("max")
        .append("console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot")
        .mem_mib(2048)
        .smp(2)
        .module(&pvtest, "suites=watch domus=1")
        .module(
            &kernel,
            "domU type=pvh name=linux memory=256 initrd=2 -- console=hvc0 earlyprintk=xen",
        )
        .module(&initrd, "")
        .timeout(Duration::from_secs(180))
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .failure_marker("domain_crash called from d1")
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
        "(d1) [",
        "Booting kernel on Xen PVH",
        "installing Xen timer for CPU 0",
        initramfs::INIT_MARKER_XEN,
        "d1: shutdown, reason 0 (poweroff)",
        "VERDICT watch.domus_stopped PASS",
    ] {
        assert!(
            run.lines().any(|l| l.contains(line)),
            "no {line:?}\n{}",
            run.report()
        );
    }
}

/// The same kernel as a PVH domU with the busybox shell on its console ring: the serial input
/// moves to it (`CTRL-a` x3), the test types into the shell, and `poweroff -f` ends the domU.
#[test]
fn debian_cloud_linux_pvh_domu_has_an_interactive_shell() {
    let run = linux::cloud_domu_shell_run("linux-pvh-shell", true)
        .unwrap_or_else(|e| panic!("running the cloud kernel as a PVH domU: {e}"));
    assert!(matches!(run.end, EndReason::Success(_)), "{}", run.report());
    for line in linux::CLOUD_DOMU_SHELL_LINES {
        assert!(
            run.lines().any(|l| l.contains(line)),
            "no {line:?}\n{}",
            run.report()
        );
    }
}
