//! Bad boot input: each case gets a clear console message and a defined outcome (continue
//! without, clamp, or skip the domain), never a hypervisor fault.

use std::fs;
use std::path::PathBuf;

use tests_qemu::{BOOT_COMPLETE, Qemu, RunResult, guests, paths, xen_ref};

const CONSOLE: &str = "console=com1 com1=115200,8n1 noreboot";

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

fn run(q: Qemu) -> RunResult {
    let r = q
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    for fatal in ["FATAL", "Panic on CPU"] {
        assert!(
            !r.lines().any(|l| l.contains(fatal)),
            "the hypervisor faulted\n{}",
            r.report()
        );
    }
    r
}

#[track_caller]
fn has(r: &RunResult, text: &str) {
    assert!(
        r.lines().any(|l| l.contains(text)),
        "no line with {text:?}\n{}",
        r.report()
    );
}

#[test]
fn no_dom0_module_boots_and_idles() {
    let r = run(Qemu::new()
        .name("bad-no-module")
        .kernel(elf())
        .append(CONSOLE)
        .success_marker(BOOT_COMPLETE));
    has(&r, "No dom0 kernel (no multiboot module given)");
}

#[test]
fn truncated_kernel_is_refused_and_the_hypervisor_stays_up() {
    let bytes = fs::read(pvtest()).unwrap();
    let dir = paths::scratch_dir("modules").unwrap();
    let cut = dir.join("pvtest-truncated");
    fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let r = run(Qemu::new()
        .name("bad-truncated-kernel")
        .kernel(elf())
        .append(CONSOLE)
        .module(&cut, "")
        .success_marker("Could not set up DOM0 guest OS")
        .settle(std::time::Duration::from_secs(1)));
    has(&r, "Could not set up DOM0 guest OS: ");
}

/// `dom0_mem` beyond the machine's RAM is clamped to what is free (as Xen does) and dom0
/// runs.
#[test]
fn dom0_mem_beyond_ram_is_clamped() {
    let r = run(Qemu::new()
        .name("bad-dom0-mem")
        .kernel(elf())
        .append(&format!("{CONSOLE} dom0_mem=64G dom0_max_vcpus=1"))
        .mem_mib(1024)
        .module(pvtest(), "suites=basic")
        .success_marker(xen_ref::DOM0_HALTED));
    has(&r, "Dom0 memory:");
    has(&r, "PVTEST DONE");
    assert!(
        !r.lines().any(|l| l.contains("Could not set up DOM0")),
        "{}",
        r.report()
    );
}

/// Bad domU descriptions, a domU too big for the memory left and more domUs than memory
/// allows: each refused one is reported and skipped, the others and dom0 run.
#[test]
fn bad_and_oversized_domus_are_skipped() {
    let p = pvtest();
    let mut q = Qemu::new()
        .name("bad-domus")
        .kernel(elf())
        .append(&format!("{CONSOLE} dom0_mem=256M dom0_max_vcpus=1"))
        .mem_mib(1024)
        .module(&p, "suites=time")
        .module(&p, "domU name=huge memory=4096 -- suites=domu")
        .module(&p, "domU name=ok memory=16 -- suites=domu")
        .module(&p, "domU bogus=1")
        .module(&p, "domU memory=lots")
        .module(&p, "domU initrd=1")
        .module(fs_garbage(), "domU name=garbage memory=16");
    // Then more domUs than the memory left: 8 x 128 MiB into ~700 MiB. They wait for a
    // ping-pong partner that never comes, so none gives its memory back while the others are
    // built.
    for i in 0..8 {
        q = q.module(
            &p,
            &format!("domU name=many{i} memory=128 -- suites=pingpong"),
        );
    }
    let r = run(q.success_marker(xen_ref::DOM0_HALTED));
    has(
        &r,
        "domU 'huge' (boot module 1): out of memory; not started",
    );
    has(&r, "domU 'ok' built");
    has(
        &r,
        "domU in boot module 3: unknown item 'bogus=1'; not started",
    );
    has(
        &r,
        "domU in boot module 4: bad value 'lots' for memory=; not started",
    );
    has(
        &r,
        "domU in boot module 5: initrd=1 is not a later boot module; not started",
    );
    has(
        &r,
        "domU 'garbage' (boot module 6): kernel module is neither ELF",
    );
    has(&r, "domU 'many0' built");
    let refused = r
        .lines()
        .filter(|l| l.contains("domU 'many") && l.contains("out of memory; not started"))
        .count();
    assert!(
        refused >= 1,
        "some of the 8 x 128 MiB domUs must not fit\n{}",
        r.report()
    );
    has(&r, "PVTEST DONE");
}

/// A module of random bytes.
fn fs_garbage() -> PathBuf {
    let dir = paths::scratch_dir("modules").unwrap();
    let path = dir.join("garbage.bin");
    let bytes: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(&path, bytes).unwrap();
    path
}
