//! Serial console input: the `CTRL-a` x3 focus switch and the hypervisor's debug keys, typed
//! into QEMU's serial port (a FIFO the harness writes) while the machine runs.

use std::path::PathBuf;

use tests_qemu::{BOOT_COMPLETE, Qemu, RunResult, guests, paths};

const CONSOLE: &str = "console=com1 com1=115200,8n1";
const CTRL_A3: &[u8] = &[1, 1, 1];

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn run(q: Qemu) -> RunResult {
    let r = q
        .run()
        .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
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

/// Without a dom0 the keys reach the hypervisor's handlers; `CTRL-a` three times switches the
/// input (to Xen: no domain exists).
#[test]
fn debug_keys_without_domains() {
    let q = Qemu::new()
        .name("console-keys")
        .kernel(elf())
        .append(CONSOLE)
        .type_after(BOOT_COMPLETE, b"h")
        .type_after("=> show this message", b"r")
        .type_after("CPU[01]", b"x")
        .type_after("unknown key", CTRL_A3)
        .type_after("*** Serial input to", b"q")
        .success_marker("Name                       ID");
    let r = run(q);
    has(&r, "'h' pressed -> show this message");
    has(
        &r,
        "key 'q' (ascii '71') => dump domain (and guest debug) info",
    );
    has(&r, "'r' pressed -> dump run queues");
    has(&r, "CPU[00] idle");
    has(&r, "CPU[01] idle");
    has(&r, "'x' pressed -> unknown key");
    has(
        &r,
        "*** Serial input to Xen (type 'CTRL-a' three times to switch input)",
    );
    has(&r, "'q' pressed -> dump domain (and guest debug) info");
}

/// With dom0 and a domU running, the input goes to dom0 first (read with `CONSOLEIO_read`
/// after `VIRQ_CONSOLE`); `CTRL-a` x3 moves it to the domU (its console ring), then to Xen,
/// whose `e`, `q`, `r` and `d` keys dump both domains, then back to dom0, which powers off
/// after its second line.
#[test]
fn console_input_reaches_each_domain_and_the_debug_keys() {
    let pvtest = guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"));
    let q = Qemu::new()
        .name("console-domains")
        .kernel(elf())
        .append(&format!(
            "{CONSOLE} dom0_mem=256M dom0_max_vcpus=1 noreboot"
        ))
        .module(&pvtest, "suites=conin")
        .module(&pvtest, "domU name=typist memory=16 -- suites=domu,conin")
        .timeout(std::time::Duration::from_secs(120))
        .type_after("(d1) CONIN ready", b"hello\r")
        .type_after("VERDICT conin.dom0_line", CTRL_A3)
        .type_after("*** Serial input to DOM1", b"world\r")
        .type_after("VERDICT conin.domu_line", CTRL_A3)
        .type_after("*** Serial input to Xen", b"e")
        .type_after("Event channel information for domain 1", b"q")
        .type_after("VCPU information and callbacks for domain 1", b"r")
        .type_after("CPU[01]", b"d")
        .type_after("*** CPU", CTRL_A3)
        .type_after("*** Serial input to DOM0", b"bye\r")
        .success_marker("Hardware Dom0 halted");
    let r = run(q);
    has(
        &r,
        "VERDICT conin.dom0_line PASS line=hello virq_console=true",
    );
    has(&r, "(d1) VERDICT conin.domu_line PASS line=world");
    has(&r, "VERDICT conin.dom0_second_line PASS line=bye");
    has(
        &r,
        "*** Serial input to DOM1 (type 'CTRL-a' three times to switch input)",
    );
    has(
        &r,
        "*** Serial input to Xen (type 'CTRL-a' three times to switch input)",
    );
    has(&r, "Event channel information for domain 0:");
    has(&r, "v=0 virq 2"); // dom0's VIRQ_CONSOLE binding in the 'e' dump
    has(&r, "General information for domain 1:");
    has(&r, "CPU[00] d0v0");
    has(&r, "CPU[01] d1v0");
    has(&r, "(d1) VERDICT domu.start_info.flags PASS");
}
