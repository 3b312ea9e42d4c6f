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

/// The interactive session a user gets from `cargo xtask run --dom0 linux`: Linux as dom0
/// with a busybox shell on `hvc0`, driven through the serial console (the hypervisor passes
/// the input to dom0: `CONSOLEIO_read` after `VIRQ_CONSOLE`). The commands' output comes
/// back through `console_io`; `poweroff -f` ends the run.
#[test]
fn debian_linux_amd64_interactive_shell_on_hvc0() {
    let vmlinuz = linux::kernel().unwrap_or_else(|e| panic!("fetching the Linux kernel: {e}"));
    let initrd = initramfs::busybox_shell_initramfs()
        .unwrap_or_else(|e| panic!("building the busybox initramfs: {e}"));
    let hv = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));
    // Each command is typed at a fresh prompt, after the previous one's output, as a person
    // would (typing ahead works too, but the tty's echo then interleaves with the output).
    const PROMPT: &str = "/ # ";
    let mut q = linux::init_qemu(&hv, &vmlinuz, &initrd)
        .name("linux-dom0-shell")
        .type_after(initramfs::SHELL_MARKER, b"");
    for (cmd, output) in [
        ("echo SHELL-$((6*7))", "SHELL-42"),
        ("cat /sys/hypervisor/type", "\nxen"),
        ("grep -c ^processor /proc/cpuinfo", "\n2"),
        ("dmesg | grep -c 'Booting kernel on Xen'", "\n1"),
    ] {
        q = q
            .type_after(PROMPT, format!("{cmd}\r").as_bytes())
            .type_after(output, b"");
    }
    let run = q
        .type_after(PROMPT, b"poweroff -f\r")
        .run()
        .unwrap_or_else(|e| panic!("running QEMU: {e}"));
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
    let lines: Vec<&str> = run.lines().collect();
    let after = |cmd: &str| -> String {
        // The line after the echoed command is its output.
        lines
            .iter()
            .position(|l| l.ends_with(cmd))
            .and_then(|i| lines.get(i + 1))
            .map(|l| l.trim().to_string())
            .unwrap_or_default()
    };
    assert!(
        lines.iter().any(|l| l.trim() == "SHELL-42"),
        "the shell did not run `echo`\n{}",
        run.report()
    );
    assert_eq!(after("cat /sys/hypervisor/type"), "xen", "{}", run.report());
    assert_eq!(
        after("grep -c ^processor /proc/cpuinfo"),
        "2",
        "{}",
        run.report()
    );
    assert_eq!(
        after("dmesg | grep -c 'Booting kernel on Xen'"),
        "1",
        "{}",
        run.report()
    );
    assert_eq!(run.end, EndReason::Exited, "{}", run.report());
    assert_eq!(run.exit_code(), Some(0), "{}", run.report());
}

/// Not a test: measures the wall time from QEMU's start to `/init`'s marker for Linux as dom0
/// on real Xen 4.17 and on Xenolith, back to back, on the same QEMU command line (only
/// `-kernel` differs), and prints both and their ratio. Run it with
/// `cargo test -p tests-qemu --test linux_dom0 -- --ignored --nocapture measure`; the
/// numbers go to docs/performance.md.
#[test]
#[ignore = "a measurement, not a test: run by hand"]
fn measure_linux_dom0_boot_on_xen_and_xenolith() {
    let vmlinuz = linux::kernel().unwrap_or_else(|e| panic!("fetching the Linux kernel: {e}"));
    let initrd = initramfs::busybox_initramfs()
        .unwrap_or_else(|e| panic!("building the busybox initramfs: {e}"));
    let xen = tests_qemu::xen_ref::xen_elf().unwrap_or_else(|e| panic!("fetching Xen: {e}"));
    let xenolith = paths::hypervisor_elf().unwrap_or_else(|e| panic!("building Xenolith: {e}"));
    let mut times = Vec::new();
    for (name, hv) in [("Xen 4.17", &xen), ("Xenolith", &xenolith)] {
        let run_name = format!("measure-linux-{}", name.replace([' ', '.'], "-"));
        let watch = SerialWatch::start(&run_name, &[initramfs::INIT_MARKER])
            .unwrap_or_else(|e| panic!("watching the serial log: {e}"));
        let run = linux::init_qemu(hv, &vmlinuz, &initrd)
            .name(&run_name)
            .success_marker(tests_qemu::xen_ref::DOM0_HALTED)
            .run()
            .unwrap_or_else(|e| panic!("running QEMU: {e}"));
        let t = watch.finish()[0];
        eprintln!(
            "{name}: /init marker after {}; run {} after {:.1?}",
            t.map_or("never".into(), |t| format!("{t:.2?}")),
            run.end,
            run.elapsed
        );
        times.push(t);
    }
    if let [Some(x), Some(y)] = times[..] {
        eprintln!(
            "ratio Xenolith / Xen 4.17 = {:.2}",
            y.as_secs_f64() / x.as_secs_f64()
        );
    }
}
