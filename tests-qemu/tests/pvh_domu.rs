//! `pvhtest` as a boot-time PVH domU (`domU type=pvh`) beside a PV `pvtest` dom0 that waits
//! for it to stop (`suites=watch domus=1`) and then powers the machine off: on AMD SVM (QEMU
//! `-cpu max`, two CPUs) and Intel VMX (Bochs, one CPU that dom0 and the domU share). As a domU
//! the guest prints through port 0xe9, which Xenolith shows as `(XEN) (d1) <line>`. Also the
//! `triple` suite: the domU triple-faults and only that domain crashes. Xenolith only: Xen 4.17
//! x86 cannot start domUs at boot.
//!
//! Run with `cargo test -p tests-qemu --test pvh_domu -- --test-threads=1`. `PVTEST_ELF`,
//! `PVHTEST_ELF` and `XENOLITH_ELF` select prebuilt ELFs.

use tests_qemu::guests::{PVH_DOMU_NAME, pvh_domu_transcript, run_pvh_domu, run_pvh_domu_bochs};
use tests_qemu::verdicts::Transcript;
use tests_qemu::{EndReason, bochs, xen_ref};

/// What `suites=all` runs in a domU, in order.
const DOMU_SUITES: [&str; 9] = [
    "start",
    "cpuid",
    "hypercall",
    "hvmparam",
    "shinfo",
    "evtchn",
    "timer",
    "memory",
    "domu",
];

/// What the Bochs runs ask for (Bochs runs 50-70 M instructions/s, and dom0 and the domU share
/// its one CPU): the domU's view of start_info, hypercalls, parameters, upcalls and its rings,
/// about 20 s.
const BOCHS_SUITES: [&str; 5] = ["start", "hypercall", "hvmparam", "evtchn", "domu"];

/// The line `pvhtest`'s `domu` suite writes through its console ring (printed by the backend).
const RING_LINE: &str = "(d1) pvhtest: a line through the console ring";

/// A run's serial log, for finding lines in order and reading the last `xl list` table.
struct Log<'a> {
    /// The serial log's lines.
    lines: Vec<&'a str>,
    /// For messages.
    report: &'a str,
}

impl<'a> Log<'a> {
    fn new(text: &'a str, report: &'a str) -> Self {
        Log {
            lines: text.lines().map(|l| l.trim_end_matches('\r')).collect(),
            report,
        }
    }

    /// Index of the first line containing `needle`; panics without one.
    #[track_caller]
    fn line(&self, needle: &str) -> usize {
        self.lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}\n{}", self.report))
    }

    #[track_caller]
    fn lacks(&self, needle: &str) {
        if let Some(l) = self.lines.iter().find(|l| l.contains(needle)) {
            panic!("unexpected line {l:?}\n{}", self.report);
        }
    }

    /// The state column of `name`'s row in the last `xl list` table.
    #[track_caller]
    fn xl_state(&self, name: &str) -> &'a str {
        self.lines
            .iter()
            .rev()
            .find_map(|l| {
                let cols: Vec<&str> = l.strip_prefix("(XEN) ")?.split_whitespace().collect();
                // Name ID Mem VCPUs State Time(s)
                (cols.len() == 6 && cols[0] == name).then_some(cols[4])
            })
            .unwrap_or_else(|| panic!("{name} is not in an xl list table\n{}", self.report))
    }
}

/// The checks common to both back-ends for a domU that ran `suites` and powered off: every
/// verdict PASS (with `PVHTEST DONE`), its console-ring line, its clean shutdown, and dom0's
/// `watch` verdict.
fn check_clean_domu(serial: &str, report: &str, suites: &[&str]) {
    let o = Log::new(serial, report);
    let domu = pvh_domu_transcript(serial, 1);
    if let Err(e) = domu.expect_all_pass(suites) {
        panic!("the PVH domU:\n{e}\n--- domU transcript ---\n{domu}\n{report}");
    }
    let extra: Vec<&str> = domu
        .suites()
        .into_iter()
        .filter(|s| !suites.contains(s))
        .collect();
    assert!(extra.is_empty(), "unexpected suites {extra:?}\n{report}");
    // The guest saw itself as a domU and said so through port 0xe9.
    o.line("(d1) PVHTEST role domU");
    for (key, details) in [
        ("start.version", "version=1"),
        ("start.flags", "flags=0x0"),
        ("start.rsdp", "present=true signature_ok=true"),
        (
            "domu.console_evtchn",
            "rc=0 nonzero=true status_rc=0 state=unbound remote=0",
        ),
        (
            "domu.console_ring",
            "fits=true unmask=0 send=0 consumed=true notified=true",
        ),
    ] {
        if let Some(v) = domu.get(key) {
            assert_eq!(v.details, details, "{key}\n{report}");
        }
    }
    if suites.contains(&"domu") {
        o.line(RING_LINE);
    }
    let done = o.line("(d1) PVHTEST DONE");
    let off = o.line("d1: shutdown, reason 0 (poweroff)");
    assert!(
        done < off,
        "the domU stopped before its DONE line\n{report}"
    );
    o.lacks("domain_crash called");
    let dom0 = Transcript::of_domain(serial, 0);
    if let Err(e) = dom0.expect_all_pass(&["watch"]) {
        panic!("dom0:\n{e}\n{report}");
    }
    let watched = o.line("VERDICT watch.domus_stopped PASS");
    assert!(off < watched, "dom0 stopped waiting too early\n{report}");
    o.line("d0: shutdown, reason 0 (poweroff)");
    let d1 = o.xl_state(PVH_DOMU_NAME);
    assert!(
        d1.contains('s') && !d1.contains('c'),
        "d1 state {d1}\n{report}"
    );
}

/// The checks for the `triple` run: the domU said it was about to, the hypervisor reported
/// the triple fault and crashed d1 only (no panic), and dom0 went on to see it stop and
/// power the machine off by itself.
fn check_triple(serial: &str, report: &str) {
    let o = Log::new(serial, report);
    let about = o.line("(d1) PVHTEST triple: about to triple fault");
    let triple = o.line("d1v0: Triple fault");
    let crashed = o.line("domain_crash called from d1v0");
    assert!(about < triple && triple < crashed, "out of order\n{report}");
    for bad in [
        "Panic on CPU",
        "FATAL TRAP",
        "domain_crash called from d0",
        xen_ref::DOM0_CRASHED,
        "(d1) VERDICT triple.",
        "(d1) PVHTEST DONE",
    ] {
        o.lacks(bad);
    }
    let watched = o.line("VERDICT watch.domus_stopped PASS");
    let dom0_off = o.line("d0: shutdown, reason 0 (poweroff)");
    assert!(
        crashed < watched && watched < dom0_off,
        "out of order\n{report}"
    );
    o.line(xen_ref::DOM0_HALTED);
    // Only d1 crashed: dom0 shut down by itself, d1 is listed crashed.
    assert_eq!(o.xl_state("Domain-0"), "---s--", "{report}");
    let d1 = o.xl_state(PVH_DOMU_NAME);
    assert!(
        d1.contains('c') && !d1.contains('s'),
        "d1 state {d1}\n{report}"
    );
}

fn bochs_required() {
    // CI installs Bochs (scripts/install-host-deps.sh --bochs): a missing Bochs is a failure.
    if let Err(e) = bochs::available() {
        panic!("{e}");
    }
}

/// (a) SVM: every suite a domU runs passes; it powers off; dom0 sees it stop.
#[test]
fn pvhtest_domu_svm_qemu() {
    let r = run_pvh_domu("all").unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    let report = r.report();
    assert!(
        matches!(r.end, EndReason::Success(_)),
        "the run did not end with dom0 powering off\n{report}"
    );
    check_clean_domu(r.serial.text(), &report, &DOMU_SUITES);
}

/// (b) VMX: the same under Bochs, with [`BOCHS_SUITES`].
#[test]
fn pvhtest_domu_vmx_bochs() {
    bochs_required();
    let suites = BOCHS_SUITES.join(",");
    let r = run_pvh_domu_bochs(&suites).unwrap_or_else(|e| panic!("Bochs run failed: {e}"));
    let report = r.report();
    assert!(r.success, "{report}");
    check_clean_domu(r.serial.text(), &report, &BOCHS_SUITES);
}

/// (c) SVM: a triple fault in the domU crashes that domain only.
#[test]
fn pvhtest_domu_triple_fault_svm_qemu() {
    let r = run_pvh_domu("triple").unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    let report = r.report();
    assert!(
        matches!(r.end, EndReason::Success(_)),
        "the run did not end with dom0 powering off\n{report}"
    );
    check_triple(r.serial.text(), &report);
}

/// (c) VMX: the same under Bochs.
#[test]
fn pvhtest_domu_triple_fault_vmx_bochs() {
    bochs_required();
    let r = run_pvh_domu_bochs("triple").unwrap_or_else(|e| panic!("Bochs run failed: {e}"));
    let report = r.report();
    assert!(r.success, "{report}");
    check_triple(r.serial.text(), &report);
}
