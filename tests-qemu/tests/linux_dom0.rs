//! Debian's stock kernel (`linux-image-amd64`, bookworm's 6.1) as a PV dom0 on Xenolith.
//!
//! The kernel package (~70 MB) is downloaded into `target/debian/` on first use and only its
//! `boot/vmlinuz-*` extracted; later runs use the cache (see `tests_qemu::linux`).
//! `LINUX_DOM0_KERNEL` and `XENOLITH_ELF` select prebuilt images. Linux does not reach a shell
//! on Xenolith yet: this checks the lines it prints early in its boot.
//!
//! Run with `cargo test -p tests-qemu --test linux_dom0 -- --test-threads=1`.

use std::time::Instant;

use tests_qemu::serial_watch::SerialWatch;
use tests_qemu::{EndReason, linux, paths};

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
