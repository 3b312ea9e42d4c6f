//! Debian's stock kernel (`linux-image-amd64`, bookworm's 6.1) as a PV dom0 on Xenolith.
//!
//! The kernel package (~70 MB) is downloaded into `target/debian/` on first use and only its
//! `boot/vmlinuz-*` extracted; later runs use the cache (see `tests_qemu::linux`).
//! `LINUX_DOM0_KERNEL` and `XENOLITH_ELF` select prebuilt images. The first test checks the
//! lines Linux prints early in its boot; the second boots it with a busybox initramfs (see
//! `tests_qemu::initramfs`, busybox from Debian's `busybox-static`) whose `/init` reports
//! through `/dev/kmsg` and powers the machine off.
//!
//! Run with `cargo test -p tests-qemu --test linux_dom0 -- --test-threads=1`.

use std::time::Instant;

use tests_qemu::serial_watch::SerialWatch;
use tests_qemu::{EndReason, initramfs, linux, paths};

#[test]
fn debian_linux_amd64_starts_as_pv_dom0() {
    let fetch_start = Instant::now();
    let vmlinuz = linux::kernel().unwrap_or_else(|e| panic!("fetching the Linux kernel: {e}"));
    let fetch_time = fetch_start.elapsed();
    let hv = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));

    let name = "linux-dom0";
    let watch = SerialWatch::start(name, &[linux::ABOUT_TO_START, linux::BOOTING_ON_XEN])
        .unwrap_or_else(|e| panic!("watching the serial log: {e}"));
    let run = linux::dom0_qemu(&hv, &vmlinuz)
        .name(name)
        .run()
        .unwrap_or_else(|e| panic!("running QEMU: {e}"));
    let times = watch.finish();

    let show = |t: Option<std::time::Duration>| t.map_or("never".into(), |t| format!("{t:.1?}"));
    eprintln!(
        "linux dom0: kernel {} (ready in {fetch_time:.1?}); {:?} after {}, {:?} after {}; \
         run {} after {:.1?}",
        vmlinuz.display(),
        linux::ABOUT_TO_START,
        show(times[0]),
        linux::BOOTING_ON_XEN,
        show(times[1]),
        run.end,
        run.elapsed
    );

    for fatal in linux::HYPERVISOR_FATAL {
        assert!(
            !run.lines().any(|l| l.contains(fatal)),
            "the hypervisor printed {fatal:?}\n{}",
            run.report()
        );
    }
    assert_eq!(
        run.end,
        EndReason::Success(linux::BOOTING_ON_XEN.into()),
        "{}",
        run.report()
    );
    for line in linux::EARLY_LINES {
        assert!(
            run.lines().any(|l| l.contains(line)),
            "Linux did not print {line:?}\n{}",
            run.report()
        );
    }
}

#[test]
fn debian_linux_amd64_runs_busybox_init_and_powers_off() {
    // No dom0_max_vcpus: dom0 gets one vCPU per CPU, as with Xen (two here).
    run_init("linux-dom0-init", 2, 2, "");
}

/// SMP dom0 on four CPUs: VCPUOP_initialise/up for three secondary vCPUs, IPIs and spinlock
/// kicks over event channels, TLB shootdowns.
#[test]
fn debian_linux_amd64_smp4_dom0_runs_init() {
    run_init("linux-dom0-smp4", 4, 4, "");
}

/// Four vCPUs on two CPUs: the scheduler time-slices them, and Linux's IPIs, PV spinlocks
/// (`SCHEDOP_poll`) and idle blocking switch vCPUs on each CPU.
#[test]
fn debian_linux_amd64_four_vcpus_on_two_cpus_runs_init() {
    run_init("linux-dom0-4on2", 2, 4, "dom0_max_vcpus=4");
}

/// Boots Linux as dom0 with the busybox initramfs on `cpus` CPUs (`extra_hv` added to the
/// hypervisor's command line) and checks that it brings up `vcpus` CPUs, runs `/init` and
/// powers the machine off.
fn run_init(name: &str, cpus: u32, vcpus: u32, extra_hv: &str) {
    let fetch_start = Instant::now();
    let vmlinuz = linux::kernel().unwrap_or_else(|e| panic!("fetching the Linux kernel: {e}"));
    let initrd = initramfs::busybox_initramfs()
        .unwrap_or_else(|e| panic!("building the busybox initramfs: {e}"));
    let fetch_time = fetch_start.elapsed();
    let hv = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));

    let needles = [
        linux::BOOTING_ON_XEN,
        linux::RUN_INIT,
        initramfs::INIT_MARKER,
    ];
    let watch = SerialWatch::start(name, &needles)
        .unwrap_or_else(|e| panic!("watching the serial log: {e}"));
    let run = linux::init_qemu(&hv, &vmlinuz, &initrd)
        .append(&format!("{} {extra_hv}", linux::HV_CMDLINE))
        .smp(cpus)
        .name(name)
        .run()
        .unwrap_or_else(|e| panic!("running QEMU: {e}"));
    let times = watch.finish();

    let show = |t: Option<std::time::Duration>| t.map_or("never".into(), |t| format!("{t:.1?}"));
    eprintln!(
        "{name}: kernel {}, initramfs {} (ready in {fetch_time:.1?}); from QEMU start: \
         {:?} after {}, {:?} after {}, {:?} after {}; run {} after {:.1?} ({})",
        vmlinuz.display(),
        initrd.display(),
        needles[0],
        show(times[0]),
        needles[1],
        show(times[1]),
        needles[2],
        show(times[2]),
        run.end,
        run.elapsed,
        run.status
            .map_or("killed by the harness".into(), |s| s.to_string()),
    );

    for fatal in linux::HYPERVISOR_FATAL
        .iter()
        .chain([&tests_qemu::xen_ref::DOM0_CRASHED])
    {
        assert!(
            !run.lines().any(|l| l.contains(fatal)),
            "the serial log has {fatal:?}\n{}",
            run.report()
        );
    }
    let brought_up = format!("smp: Brought up 1 node, {vcpus} CPUs");
    for line in [
        brought_up.as_str(),
        linux::RUN_INIT,
        initramfs::INIT_MARKER_XEN,
    ] {
        assert!(
            run.lines().any(|l| l.contains(line)),
            "Linux did not print {line:?}\n{}",
            run.report()
        );
    }
    assert_eq!(run.end, EndReason::Exited, "{}", run.report());
    assert_eq!(
        run.exit_code(),
        Some(0),
        "QEMU should exit by itself with status 0 after the poweroff\n{}",
        run.report()
    );
}
