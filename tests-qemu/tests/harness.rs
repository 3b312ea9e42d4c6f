//! Tests of the harness itself: they boot the synthetic multiboot kernel from
//! `tests_qemu::synth` (no hypervisor build needed) to check the QEMU runner, module and
//! command-line plumbing, exit statuses, timeouts and the GRUB ISO builder.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use tests_qemu::cmdline::Module;
use tests_qemu::{EndReason, Qemu, grub, paths, synth};

/// Writes the synthetic kernel and a dummy module file; returns their paths.
fn tiny_files(name: &str) -> (PathBuf, PathBuf) {
    let dir = paths::scratch_dir("synth").unwrap();
    let elf = dir.join(format!("{name}.elf"));
    fs::write(&elf, synth::tiny_kernel()).unwrap();
    let module = dir.join(format!("{name}.mod"));
    fs::write(&module, b"not really a kernel").unwrap();
    (elf, module)
}

#[test]
fn tiny_kernel_boots_via_multiboot1_with_cmdline_and_module() {
    let (elf, module) = tiny_files("mb1");
    let r = Qemu::new()
        .name("harness-mb1")
        .kernel(&elf)
        .append("console=com1 com1=115200,8n1 dom0_mem=512M")
        .module(&module, "root=/dev/xvda1 console=hvc0,115200 x")
        .smp(1)
        .mem_mib(128)
        .success_marker("(XEN) tiny: done")
        // Long enough to see the isa-debug-exit that follows the marker even on a busy host.
        .settle(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    r.assert_success();
    let cmdline = r.xen_value("tiny: mb1 cmdline=").expect("cmdline line");
    // QEMU passes "<kernel path> <append>" as the multiboot command line.
    assert!(
        cmdline.ends_with(" console=com1 com1=115200,8n1 dom0_mem=512M"),
        "{cmdline:?}\n{}",
        r.report()
    );
    // ...and likewise "<module path> <args>" as the module's (commas unescaped).
    let module_cmdline = r.xen_value("tiny: module0=").expect("module line");
    assert_eq!(
        module_cmdline,
        format!("{} root=/dev/xvda1 console=hvc0,115200 x", module.display()),
        "{}",
        r.report()
    );
    // SeaBIOS leaves "Booting from ROM.." unterminated; the first guest line is split off it.
    assert!(
        r.find_line("(XEN) tiny: mb1 cmdline=").is_some(),
        "{}",
        r.report()
    );
    // The guest leaves through isa-debug-exit right after the marker; settling sees the exit.
    assert_eq!(
        r.debug_exit_value(),
        Some(synth::MB1_EXIT_VALUE),
        "{}",
        r.report()
    );
}

#[test]
fn run_without_markers_ends_when_qemu_exits() {
    let (elf, _) = tiny_files("exit");
    let r = Qemu::new()
        .name("harness-exit")
        .kernel(&elf)
        .smp(1)
        .mem_mib(128)
        .timeout(Duration::from_secs(30))
        .run()
        .unwrap();
    assert_eq!(r.end, EndReason::Exited, "{}", r.report());
    assert_eq!(r.exit_code(), Some((synth::MB1_EXIT_VALUE << 1) | 1));
    assert!(r.find_line("(XEN) tiny: done").is_some(), "{}", r.report());
    assert!(r.elapsed < Duration::from_secs(30));
}

#[test]
fn failure_marker_ends_the_run() {
    let (elf, _) = tiny_files("fail");
    let r = Qemu::new()
        .name("harness-fail")
        .kernel(&elf)
        .smp(1)
        .mem_mib(128)
        .success_marker("(XEN) tiny: done")
        .failure_marker("tiny: module0=")
        .run()
        .unwrap();
    assert_eq!(
        r.end,
        EndReason::Failure("tiny: module0=".into()),
        "{}",
        r.report()
    );
    assert!(!r.succeeded());
}

#[test]
fn timeout_kills_qemu() {
    let (elf, _) = tiny_files("hang");
    // Without the isa-debug-exit device the guest's exit write is ignored and it halts forever.
    let r = Qemu::new()
        .name("harness-timeout")
        .kernel(&elf)
        .smp(1)
        .mem_mib(128)
        .debug_exit(false)
        .success_marker("never printed")
        .timeout(Duration::from_secs(3))
        .run()
        .unwrap();
    assert_eq!(r.end, EndReason::Timeout, "{}", r.report());
    assert_eq!(r.status, None);
    assert!(r.elapsed >= Duration::from_secs(3));
    assert!(r.find_line("(XEN) tiny: done").is_some(), "{}", r.report());
    // No process is left running with this run's serial file on its command line.
    let needle = r.serial_path.to_string_lossy().into_owned();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(&needle), "QEMU still running: {cmd}");
        }
    }
}

#[test]
fn tiny_kernel_boots_via_grub_multiboot2() {
    let (elf, module) = tiny_files("mb2");
    let iso = grub::build_iso(
        "harness-mb2",
        &elf,
        "console=com1 com1=115200,8n1 loglvl=all",
        &[Module::new(&module, "root=/dev/xvda1 console=hvc0")],
    )
    .unwrap();
    let r = Qemu::new()
        .name("harness-grub")
        .cdrom(&iso)
        .smp(1)
        .mem_mib(256)
        .success_marker("(XEN) tiny: done")
        // Long enough to see the isa-debug-exit that follows the marker even on a busy host.
        .settle(Duration::from_secs(2))
        .timeout(Duration::from_secs(60))
        .run()
        .unwrap();
    r.assert_success();
    let cmdline = r.xen_value("tiny: mb2 cmdline=").expect("mb2 cmdline line");
    assert!(
        cmdline.ends_with("console=com1 com1=115200,8n1 loglvl=all"),
        "{cmdline:?}\n{}",
        r.report()
    );
    assert_eq!(
        r.xen_value("tiny: module0="),
        Some("root=/dev/xvda1 console=hvc0")
    );
    assert_eq!(
        r.debug_exit_value(),
        Some(synth::MB2_EXIT_VALUE),
        "{}",
        r.report()
    );
}
