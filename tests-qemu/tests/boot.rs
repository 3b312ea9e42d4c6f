//! Boots the Xenolith hypervisor in QEMU and checks its serial log against the boot protocol
//! and command-line behaviour it promises, plus static checks of the image's load layout.
//!
//! The ELF comes from `XENOLITH_ELF` or is built on first use. QEMU runs are serialized by the
//! harness (one at a time), so these tests may run in parallel.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use tests_qemu::cmdline::Module;
use tests_qemu::elf::{Elf64, check_kludge_invariant};
use tests_qemu::multiboot::{MB2_TAG_ADDRESS, MB2_TAG_ENTRY, check_mb1, check_mb2};
use tests_qemu::serial::XEN_PREFIX;
use tests_qemu::{BOOT_COMPLETE, EndReason, Qemu, RunResult, grub, paths};

/// The serial console settings every boot uses.
const CONSOLE: &str = "console=com1 com1=115200,8n1 loglvl=all";

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

/// A `-kernel` (multiboot1) boot of the hypervisor with `append`, ending at boot completion.
fn boot(name: &str, append: &str) -> Qemu {
    Qemu::new()
        .name(name)
        .kernel(elf())
        .append(append)
        .success_marker(BOOT_COMPLETE)
}

/// Runs `q` and asserts it reached its success marker.
fn run_ok(q: &Qemu) -> RunResult {
    let r = q
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    r
}

/// Writes a stand-in dom0 kernel of `len` bytes (an odd size, so a rounded size is caught).
fn dummy_dom0(name: &str, len: usize) -> PathBuf {
    let dir = paths::scratch_dir("modules").unwrap();
    let path = dir.join(name);
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
    fs::write(&path, bytes).unwrap();
    path
}

/// Index of the first line starting with `prefix`, or a panic with the run's report.
#[track_caller]
fn index_of(r: &RunResult, prefix: &str) -> usize {
    r.serial
        .line_index(prefix)
        .unwrap_or_else(|| panic!("no line starting with {prefix:?}\n{}", r.report()))
}

/// The first word after `(XEN) <key>` (details may follow it), or a panic with the report.
#[track_caller]
fn first_word<'a>(r: &'a RunResult, key: &str) -> &'a str {
    r.serial
        .xen_value(key)
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no \"(XEN) {key} <value>\" line\n{}", r.report()))
}

/// N from `(XEN) Brought up <N> CPUs`, or a panic with the report.
#[track_caller]
fn brought_up(r: &RunResult) -> u32 {
    r.serial
        .xen_value("Brought up")
        .and_then(|v| {
            v.strip_suffix("CPUs")
                .or_else(|| v.split_once(" CPUs").map(|p| p.0))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no \"(XEN) Brought up <N> CPUs\" line\n{}", r.report()))
}

/// `(XEN) CPU<n>: APIC id <id> online` -> (n, id).
fn parse_cpu_line(line: &str) -> Option<(u32, u32)> {
    let rest = line.strip_prefix("(XEN) CPU")?;
    let (n, rest) = rest.split_once(": APIC id ")?;
    let id = rest.strip_suffix(" online")?;
    Some((n.parse().ok()?, id.trim().parse().ok()?))
}

/// `module 0, <size> bytes at <addr>, command line "<args>"` -> (index, size, addr, args).
fn parse_dom0_kernel(value: &str) -> Option<(u32, u64, u64, &str)> {
    let rest = value.strip_prefix("module ")?;
    let (index, rest) = rest.split_once(", ")?;
    let (size, rest) = rest.split_once(" bytes at ")?;
    let (addr, rest) = rest.split_once(", command line \"")?;
    let args = rest.strip_suffix('"')?;
    let addr = addr.trim();
    let addr = u64::from_str_radix(addr.trim_start_matches("0x"), 16).ok()?;
    Some((index.parse().ok()?, size.parse().ok()?, addr, args))
}

#[test]
fn parsers_for_the_log_lines() {
    assert_eq!(parse_cpu_line("(XEN) CPU3: APIC id 6 online"), Some((3, 6)));
    assert_eq!(parse_cpu_line("(XEN) CPU3: APIC id x online"), None);
    assert_eq!(
        parse_dom0_kernel(r#"module 0, 12345 bytes at 0x1234000, command line "a b=c,d""#),
        Some((0, 12345, 0x1234000, "a b=c,d"))
    );
    assert_eq!(
        parse_one_shot("LAPIC interrupt (1000 us requested) after 1441 us"),
        Some((1000, 1441))
    );
    assert_eq!(
        parse_dom0_kernel(r#"module 0, 1 bytes at 0000000001000000, command line """#),
        Some((0, 1, 0x1000000, ""))
    );
}

// ---------------------------------------------------------------------------------------------
// Boot protocols

#[test]
fn multiboot1_boot_via_qemu_kernel() {
    let r = run_ok(&boot("mb1-boot", CONSOLE));
    let banner = index_of(&r, "(XEN) Xenolith version 0.1.0");
    assert_eq!(
        r.serial.xen_value("Boot protocol:"),
        Some("multiboot1"),
        "{}",
        r.report()
    );
    let loader = r.serial.xen_value("Bootloader:").unwrap_or_default();
    assert!(
        loader.to_ascii_lowercase().contains("qemu"),
        "QEMU's multiboot loader calls itself \"qemu\"; got Bootloader: {loader:?}\n{}",
        r.report()
    );
    // QEMU passes "<kernel path> <append>"; like Xen, the hypervisor drops the image name.
    assert_eq!(
        r.serial.xen_value("Command line:"),
        Some(CONSOLE),
        "{}",
        r.report()
    );
    assert!(
        r.serial.ram_map().iter().any(|e| e.is_usable()),
        "no usable RAM in the e820 map\n{}",
        r.report()
    );
    assert_eq!(brought_up(&r), 2, "{}", r.report());
    assert!(
        r.find_line("(XEN) No dom0 kernel").is_some(),
        "{}",
        r.report()
    );
    assert!(
        r.find_line("(XEN) Dom0 kernel:").is_none(),
        "{}",
        r.report()
    );

    // The banner comes first and completion last.
    let complete = index_of(&r, BOOT_COMPLETE);
    for prefix in [
        "(XEN) Bootloader:",
        "(XEN) Command line:",
        "(XEN) Boot protocol:",
        "(XEN) Xen-e820 RAM map:",
        "(XEN) CPU0: APIC id",
        "(XEN) Brought up",
        "(XEN) No dom0 kernel",
    ] {
        let i = index_of(&r, prefix);
        assert!(
            banner < i && i < complete,
            "{prefix:?} is not between the banner and \"boot complete\"\n{}",
            r.report()
        );
    }
    let first_xen = r.lines().position(|l| l.starts_with(XEN_PREFIX));
    assert_eq!(
        first_xen,
        Some(banner),
        "the banner is not the first line\n{}",
        r.report()
    );

    // The page-table audit: no mapping is both writable and executable.
    let paging = r.serial.xen_value("Paging:").unwrap_or_default();
    assert!(
        paging.contains(" 0 writable+executable") && paging.contains("W^X holds"),
        "W^X audit missing or failed: Paging: {paging:?}\n{}",
        r.report()
    );

    // The one-shot LAPIC timer fired, and not (much) earlier than requested.
    let timer = r.serial.xen_value("Timer: one-shot").unwrap_or_default();
    let (requested, after) = parse_one_shot(timer)
        .unwrap_or_else(|| panic!("bad one-shot timer line {timer:?}\n{}", r.report()));
    assert!(
        after * 10 >= requested * 9,
        "one-shot timer fired after {after} us, {requested} us requested\n{}",
        r.report()
    );
}

/// `LAPIC interrupt (1000 us requested) after 1441 us` -> (requested, after).
fn parse_one_shot(value: &str) -> Option<(u64, u64)> {
    let (_, rest) = value.split_once('(')?;
    let (requested, rest) = rest.split_once(" us requested) after ")?;
    let after = rest.strip_suffix(" us")?;
    Some((requested.trim().parse().ok()?, after.trim().parse().ok()?))
}

#[test]
fn multiboot2_boot_via_grub() {
    let args = format!("{CONSOLE} dom0_mem=512M dom0_max_vcpus=1");
    let dom0_args = "root=/dev/xvda1 ro console=hvc0 earlyprintk=xen";
    let dom0 = dummy_dom0("grub-dom0", 40_001);
    let iso = grub::build_iso("mb2-boot", &elf(), &args, &[Module::new(&dom0, dom0_args)])
        .unwrap_or_else(|e| panic!("building the GRUB ISO: {e}"));
    let r = run_ok(
        &Qemu::new()
            .name("mb2-grub")
            .cdrom(&iso)
            .success_marker(BOOT_COMPLETE),
    );
    assert_eq!(
        r.serial.xen_value("Boot protocol:"),
        Some("multiboot2"),
        "{}",
        r.report()
    );
    let loader = r.serial.xen_value("Bootloader:").unwrap_or_default();
    assert!(
        loader.starts_with("GRUB"),
        "Bootloader: {loader:?}\n{}",
        r.report()
    );
    assert_eq!(
        r.serial.xen_value("Command line:"),
        Some(args.as_str()),
        "{}",
        r.report()
    );
    let dom0_line = r.serial.xen_value("Dom0 kernel:").unwrap_or_default();
    let (index, size, _addr, cmdline) = parse_dom0_kernel(dom0_line)
        .unwrap_or_else(|| panic!("bad Dom0 kernel line {dom0_line:?}\n{}", r.report()));
    assert_eq!((index, size), (0, 40_001), "{}", r.report());
    assert_eq!(cmdline, dom0_args, "{}", r.report());
    assert_eq!(first_word(&r, "Dom0 vCPUs:"), "1", "{}", r.report());
}

// ---------------------------------------------------------------------------------------------
// Hardware discovery

#[test]
fn smp4_brings_up_four_cpus() {
    let r = run_ok(
        &boot("smp4", CONSOLE)
            .smp(4)
            .timeout(Duration::from_secs(120)),
    );
    assert_eq!(brought_up(&r), 4, "{}", r.report());
    let cpus: Vec<(u32, u32)> = r
        .find_lines("(XEN) CPU")
        .into_iter()
        .filter_map(parse_cpu_line)
        .collect();
    assert_eq!(
        cpus.len(),
        4,
        "expected 4 CPU<n> lines: {cpus:?}\n{}",
        r.report()
    );
    let mut numbers: Vec<u32> = cpus.iter().map(|c| c.0).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, [0, 1, 2, 3], "{}", r.report());
    let mut ids: Vec<u32> = cpus.iter().map(|c| c.1).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        4,
        "APIC ids are not distinct: {cpus:?}\n{}",
        r.report()
    );
}

/// Boots with `-m <mib>` and returns the exclusive end of the largest usable e820 range.
fn largest_usable_end(mib: u32) -> u64 {
    let r = run_ok(&boot(&format!("mem{mib}"), CONSOLE).mem_mib(mib));
    let map = r.serial.ram_map();
    let largest = map
        .iter()
        .filter(|e| e.is_usable())
        .max_by_key(|e| e.size())
        .unwrap_or_else(|| panic!("no usable range in the e820 map\n{}", r.report()));
    largest.end + 1
}

/// The largest usable range must end within the top 16 MiB below `mib` (firmware keeps a
/// little at the top of low RAM), and never above it.
#[track_caller]
fn assert_ends_near(end: u64, mib: u32) {
    let size = u64::from(mib) << 20;
    assert!(
        end <= size && end >= size - (16 << 20),
        "largest usable RAM range ends at {end:#x}, expected just below {size:#x} ({mib} MiB)"
    );
}

#[test]
fn ram_map_tracks_512m() {
    assert_ends_near(largest_usable_end(512), 512);
}

#[test]
fn ram_map_tracks_2g() {
    assert_ends_near(largest_usable_end(2048), 2048);
}

// ---------------------------------------------------------------------------------------------
// Command line

#[test]
fn dom0_options_and_module_command_line() {
    let dom0_args = "root=/dev/xvda1 ro console=hvc0,115200 earlyprintk=xen";
    let dom0 = dummy_dom0("mb1-dom0", 12_345);
    let r = run_ok(
        &boot(
            "dom0-options",
            &format!("{CONSOLE} dom0_mem=512M dom0_max_vcpus=2"),
        )
        .module(&dom0, dom0_args)
        // The stand-in module is not a kernel: the builder must refuse it after boot completes.
        .success_marker("(XEN) Could not set up DOM0 guest OS:")
        .settle(Duration::from_secs(1)),
    );
    let refusal = r
        .find_line("(XEN) Could not set up DOM0 guest OS:")
        .unwrap_or_default();
    assert!(
        refusal.contains("neither ELF nor a supported compressed kernel"),
        "{}",
        r.report()
    );
    // The hypervisor stays up: no fault report.
    assert!(
        r.find_line("(XEN) Panic on CPU").is_none(),
        "{}",
        r.report()
    );
    let mem = r.serial.xen_value("Dom0 memory:").unwrap_or_default();
    assert!(
        mem.starts_with("512 MiB"),
        "Dom0 memory: {mem:?}\n{}",
        r.report()
    );
    assert_eq!(first_word(&r, "Dom0 vCPUs:"), "2", "{}", r.report());
    let dom0_line = r.serial.xen_value("Dom0 kernel:").unwrap_or_default();
    let (index, size, addr, cmdline) = parse_dom0_kernel(dom0_line)
        .unwrap_or_else(|| panic!("bad Dom0 kernel line {dom0_line:?}\n{}", r.report()));
    assert_eq!((index, size), (0, 12_345), "{}", r.report());
    assert!(
        addr >= 0x10_0000,
        "module below 1 MiB: {addr:#x}\n{}",
        r.report()
    );
    // QEMU passes "<path> <args>" (with ",," unescaped); the image name is dropped as by Xen.
    assert_eq!(cmdline, dom0_args, "{}", r.report());
    assert!(
        r.find_line("(XEN) No dom0 kernel").is_none(),
        "{}",
        r.report()
    );
}

#[test]
fn unknown_option_is_reported_and_boot_completes() {
    let r = run_ok(&boot("unknown-option", &format!("{CONSOLE} bogus")));
    assert!(
        r.find_line(r#"(XEN) parameter "bogus" unknown!"#).is_some(),
        "{}",
        r.report()
    );
}

// ---------------------------------------------------------------------------------------------
// Fatal faults and the console ring

/// Checks the Xen-style fatal page fault report (`do_page_fault` + `fatal_trap` in Xen 4.17): a
/// register dump (with CR2), a call trace, then `Panic on CPU 0:`, `FATAL PAGE FAULT`, the error
/// code of a supervisor write to a non-present page, and the faulting address. Returns the
/// index of the panic line.
#[track_caller]
fn assert_fatal_page_fault(r: &RunResult) -> usize {
    let panic = index_of(r, "(XEN) Panic on CPU 0:");
    let dump: Vec<String> = r
        .lines()
        .filter(|l| l.starts_with(XEN_PREFIX))
        .map(|l| l.to_ascii_lowercase())
        .collect();
    for reg in ["cr2:", "rip:", "rsp:", "rax:", "error_code", "call trace"] {
        assert!(
            dump.iter().any(|l| l.contains(reg)),
            "no {reg:?} in the fault report\n{}",
            r.report()
        );
    }
    let lines: Vec<&str> = r.lines().collect();
    let expected = [
        "(XEN) FATAL PAGE FAULT",
        "(XEN) [error_code=0002]",
        "(XEN) Faulting linear address: 00000deadbeef000",
    ];
    for (i, want) in expected.iter().enumerate() {
        assert_eq!(
            lines.get(panic + 1 + i).map(|l| l.trim_end()),
            Some(*want),
            "line {} after the panic line\n{}",
            i + 1,
            r.report()
        );
    }
    assert!(
        lines[..panic]
            .iter()
            .any(|l| l.contains("cr2: 00000deadbeef000")),
        "CR2 in the register dump\n{}",
        r.report()
    );
    panic
}

#[test]
fn fault_selftest_with_noreboot_halts() {
    let r = Qemu::new()
        .name("fault-noreboot")
        .kernel(elf())
        .append(&format!("{CONSOLE} noreboot selftest=fault"))
        .no_failure_markers()
        .success_marker("Manual reset required")
        .settle(Duration::from_secs(1))
        .run()
        .unwrap();
    r.assert_success();
    let panic = assert_fatal_page_fault(&r);
    let reset = index_of(&r, "(XEN) Manual reset required ('noreboot' specified)");
    assert!(panic < reset, "{}", r.report());
    assert_eq!(
        r.status,
        None,
        "QEMU exited (the machine reset) despite noreboot\n{}",
        r.report()
    );
}

#[test]
fn fault_selftest_without_noreboot_resets() {
    // No marker: the run ends when the reset makes QEMU (-no-reboot) exit.
    let r = Qemu::new()
        .name("fault-reboot")
        .kernel(elf())
        .append(&format!("{CONSOLE} selftest=fault"))
        .no_failure_markers()
        .run()
        .unwrap();
    assert_eq!(r.end, EndReason::Exited, "{}", r.report());
    assert_eq!(
        r.exit_code(),
        Some(0),
        "reset should end QEMU cleanly\n{}",
        r.report()
    );
    assert_fatal_page_fault(&r);
    assert!(
        r.find_line("(XEN) Manual reset required").is_none(),
        "{}",
        r.report()
    );
}

#[test]
fn conring_selftest_dumps_earlier_messages() {
    let begin = "(XEN) --- conring begin ---";
    let end = "(XEN) --- conring end ---";
    let r = run_ok(
        &Qemu::new()
            .name("conring")
            .kernel(elf())
            .append(&format!("{CONSOLE} selftest=conring"))
            .success_marker(end),
    );
    let brought_up = index_of(&r, "(XEN) Brought up");
    let begin_at = index_of(&r, begin);
    assert!(brought_up < begin_at, "{}", r.report());
    let message = r.lines().nth(brought_up).unwrap().to_string();
    let message = message.strip_prefix(XEN_PREFIX).unwrap();
    let block = r
        .serial
        .block(begin, end)
        .unwrap_or_else(|| panic!("no complete conring block\n{}", r.report()));
    assert!(
        block.iter().any(|l| l.contains(message)),
        "the conring dump lacks the earlier {message:?}\n{}",
        r.report()
    );
    assert!(
        block.iter().any(|l| l.contains("Xenolith version 0.1.0")),
        "the conring dump lacks the banner\n{}",
        r.report()
    );
}

#[test]
fn invalid_opcode_selftest_reports_fatal_trap() {
    let r = Qemu::new()
        .name("fault-ud")
        .kernel(elf())
        .append(&format!("{CONSOLE} noreboot selftest=ud"))
        .no_failure_markers()
        .success_marker("Manual reset required")
        .run()
        .unwrap();
    r.assert_success();
    let panic = index_of(&r, "(XEN) Panic on CPU 0:");
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(
        lines[panic + 1].trim_end(),
        "(XEN) FATAL TRAP: vector = 6 (invalid opcode)",
        "{}",
        r.report()
    );
    assert_eq!(
        lines[panic + 2].trim_end(),
        "(XEN) [error_code=0000]",
        "{}",
        r.report()
    );
}

#[test]
fn acpi_poweroff_ends_qemu() {
    // -no-reboot does not matter here: S5 makes QEMU exit on its own, with status 0.
    let r = Qemu::new()
        .name("poweroff")
        .kernel(elf())
        .append(&format!("{CONSOLE} selftest=poweroff"))
        .run()
        .unwrap();
    index_of(&r, "(XEN) selftest: powering off through ACPI S5");
    assert_eq!(r.end, EndReason::Exited, "{}", r.report());
    assert_eq!(r.exit_code(), Some(0), "{}", r.report());
    assert!(
        r.find_line("(XEN) Power-off failed").is_none(),
        "{}",
        r.report()
    );
}

// ---------------------------------------------------------------------------------------------
// Console selection and log levels

#[test]
fn xapic_mode_when_cpu_lacks_x2apic() {
    let r = run_ok(&boot("xapic", CONSOLE).cpu("max,-x2apic").smp(3));
    index_of(&r, "(XEN) Using APIC driver default (xAPIC)");
    assert_eq!(brought_up(&r), 3, "{}", r.report());
    let r = run_ok(&boot("x2apic", CONSOLE).smp(2));
    index_of(&r, "(XEN) Using APIC driver x2apic");
}

#[test]
fn console_none_is_silent() {
    let r = Qemu::new()
        .name("console-none")
        .kernel(elf())
        .append("console=none selftest=exit")
        .run()
        .unwrap();
    assert_eq!(r.end, EndReason::Exited, "{}", r.report());
    assert_eq!(
        r.debug_exit_value(),
        Some(0x10),
        "boot did not complete\n{}",
        r.report()
    );
    assert!(
        r.serial.xen_lines().next().is_none(),
        "console=none printed\n{}",
        r.report()
    );
}

#[test]
fn loglvl_selects_message_levels() {
    // Default (warning): boot messages, but no info- or debug-level lines.
    let r = run_ok(&boot("loglvl-default", "console=com1"));
    index_of(&r, "(XEN) Xen-e820 RAM map:");
    assert!(
        r.find_line("(XEN) CPU features:").is_none(),
        "{}",
        r.report()
    );
    assert!(r.find_line("(XEN) Heap:").is_none(), "{}", r.report());
    // all: info and debug lines too.
    let r = run_ok(&boot("loglvl-all", "console=com1 loglvl=all"));
    index_of(&r, "(XEN) CPU features:");
    index_of(&r, "(XEN) Heap:");
    // error: the default-level boot messages are dropped; the run still completes.
    let r = Qemu::new()
        .name("loglvl-error")
        .kernel(elf())
        .append("console=com1 loglvl=error selftest=exit")
        .run()
        .unwrap();
    assert_eq!(r.debug_exit_value(), Some(0x10), "{}", r.report());
    assert!(
        r.find_line("(XEN) Xen-e820 RAM map:").is_none(),
        "{}",
        r.report()
    );
}

#[test]
fn vga_console_writes_the_text_buffer() {
    let r = run_ok(&boot("vga", "console=com1,vga selftest=vga"));
    let rows: Vec<&str> = r
        .lines()
        .filter_map(|l| l.strip_prefix("(XEN) selftest: VGA row "))
        .map(|l| l.split_once(": ").map_or("", |(_, t)| t))
        .collect();
    assert_eq!(rows.len(), 4, "{}", r.report());
    // Lines wrap at 80 columns and the screen scrolled: some row starts a console line, and
    // that row's text is the start of a line printed on serial too.
    let starts: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.strip_prefix(XEN_PREFIX))
        .collect();
    assert!(
        !starts.is_empty(),
        "no VGA row starts a console line\n{}",
        r.report()
    );
    for text in starts {
        assert!(
            r.lines()
                .filter_map(|l| l.strip_prefix(XEN_PREFIX))
                .any(|l| !l.starts_with("selftest: VGA") && l.starts_with(text)),
            "VGA text {text:?} is not console output\n{}",
            r.report()
        );
    }
    // Without vga in console=, the self-test finds no VGA console.
    let r = run_ok(&boot("no-vga", "console=com1 selftest=vga"));
    index_of(&r, "(XEN) selftest: VGA console not selected");
}

// ---------------------------------------------------------------------------------------------
// The image (static checks, no QEMU)

fn image() -> Vec<u8> {
    let path = elf();
    fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

#[test]
fn image_satisfies_the_kludge_invariant() {
    let img = image();
    let elf = Elf64::parse(&img).unwrap();
    assert_eq!(elf.e_machine, tests_qemu::elf::EM_X86_64);
    let layout = check_kludge_invariant(&elf).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        layout.start >= 0x10_0000,
        "loads below 1 MiB: {:#x}",
        layout.start
    );
}

#[test]
fn image_multiboot1_header_matches_load_segments() {
    let h = check_mb1(&image()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.offset % 4, 0);
    assert!(h.offset + 32 <= 8192);
}

#[test]
fn image_multiboot2_header_matches_load_segments() {
    let h = check_mb2(&image()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(h.offset % 8, 0);
    assert!(h.offset + h.header_length as usize <= 32768);
    assert!(h.tag(MB2_TAG_ADDRESS).is_some() && h.tag(MB2_TAG_ENTRY).is_some());
    // Both protocols must load the same bytes to the same place.
    let mb1 = check_mb1(&image()).unwrap_or_else(|e| panic!("{e}"));
    let (a1, a2) = (mb1.address.unwrap(), h.address.unwrap());
    assert_eq!(
        (
            a1.load_addr,
            a1.load_end_addr,
            a1.bss_end_addr,
            a1.entry_addr
        ),
        (
            a2.load_addr,
            a2.load_end_addr,
            a2.bss_end_addr,
            a2.entry_addr
        ),
        "multiboot1 and multiboot2 address fields differ"
    );
}
