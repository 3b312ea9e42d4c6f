//! Differential tests with the in-tree PVH guest `pvhtest` (`tests-qemu/guests/src/pvh`): it
//! runs as a PVH dom0 (`dom0=pvh dom0-iommu=none`, QEMU `-cpu max`: SVM with NPT) on real Xen
//! 4.17 to prove every expectation, and on Xenolith, whose verdicts must be identical; and on
//! Xenolith under Bochs (Intel VMX with EPT), where every vendor-neutral check must pass.
//! The `smp` suite (only when named) runs with a two-vCPU dom0 (`dom0_max_vcpus=2`): vCPU 1
//! brought up with `VCPUOP_initialise` on a `vcpu_hvm_context` and `VCPUOP_up`.
//!
//! Run with `cargo test -p tests-qemu --test pvh -- --test-threads=1`. `PVHTEST_ELF`,
//! `XEN_REF_ELF` and `XENOLITH_ELF` select prebuilt ELFs.

use tests_qemu::EndReason;
use tests_qemu::guests::{
    GuestRun, Hypervisor, PVH_SMP_CMDLINE, run_pvhtest, run_pvhtest_bochs, run_pvhtest_with,
};
use tests_qemu::verdicts::{Outcome, compare};
use tests_qemu::{bochs, xen_ref};

/// Every suite, in the guest's order.
const SUITES: [&str; 8] = [
    "start",
    "cpuid",
    "hypercall",
    "hvmparam",
    "shinfo",
    "evtchn",
    "timer",
    "memory",
];

/// Checks whose outcome may legitimately differ between SVM and VMX hosts. None today: the
/// guest prints the hypercall stub's trap instruction only as "one of vmcall/vmmcall" and masks
/// the hardware-assist bits of CPUID leaf base+4.
const VENDOR_SPECIFIC: &[&str] = &[];

fn run(hv: Hypervisor) -> GuestRun {
    match run_pvhtest(hv, "all") {
        Ok(r) => r,
        Err(e) => panic!("running pvhtest on {hv}: {e}"),
    }
}

#[test]
fn pvhtest_on_xen() {
    let r = run(Hypervisor::Xen);
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&SUITES) {
        panic!("pvhtest on Xen 4.17:\n{e}\n{}", r.report());
    }
    // A few exact values, so the expectations cannot silently drift.
    for (key, details) in [
        ("start.version", "version=0"),
        (
            "start.memmap.image_in_ram",
            "source=memory_op covers_image=true",
        ),
        ("cpuid.version", "eax=0x40011 ebx=0x0 ecx=0x0 edx=0x0"),
        ("hypercall.xen_version.get_features", "rc=0 submap0=0x12b05"),
        ("hypercall.pv_only.mmu_update", "rc=-38(ENOSYS)"),
        (
            "hvmparam.callback_irq.read_back",
            "rc=0 value=0x2000000000000f3",
        ),
        (
            "evtchn.interdomain.upcall",
            "initial_mask=0 unmask=0 send=0 upcall=true pending=1 port_bit=true",
        ),
        (
            "memory.removed.access",
            "read=0xffffffffffffffff write=ok reread=0xffffffffffffffff",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!(
        "pvhtest on Xen {} in {:.1?}:\n{}",
        xen_ref::package_version().unwrap_or_default(),
        r.run.elapsed,
        r.transcript
    );
}

#[test]
fn pvhtest_xenolith_matches_xen() {
    let xen = run(Hypervisor::Xen);
    if let Err(e) = xen.transcript.expect_all_pass(&SUITES) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = run(Hypervisor::Xenolith);
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's PVH verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}

#[test]
fn pvhtest_xenolith_vmx_bochs() {
    // CI installs Bochs (scripts/install-host-deps.sh --bochs): a missing Bochs is a failure.
    if let Err(e) = bochs::available() {
        panic!("{e}");
    }
    let r = run_pvhtest_bochs("all").unwrap_or_else(|e| panic!("Bochs run failed to start: {e}"));
    assert!(r.run.success, "{}", r.report());
    let problems = r.transcript.consistency_problems();
    let failed: Vec<String> = r
        .transcript
        .verdicts
        .iter()
        .filter(|v| v.outcome != Outcome::Pass && !VENDOR_SPECIFIC.contains(&v.key().as_str()))
        .map(|v| v.to_string())
        .collect();
    let missing: Vec<&str> = SUITES
        .into_iter()
        .filter(|s| r.transcript.suite(s).next().is_none())
        .collect();
    assert!(
        problems.is_empty() && failed.is_empty() && missing.is_empty(),
        "problems: {problems:?}\nnot PASS: {failed:#?}\nsuites without verdicts: {missing:?}\n{}",
        r.report()
    );
}

/// Runs the `smp` suite (only when named) on `hv` with a two-vCPU PVH dom0.
fn run_smp(hv: Hypervisor) -> GuestRun {
    match run_pvhtest_with(hv, "smp", PVH_SMP_CMDLINE) {
        Ok(r) => r,
        Err(e) => panic!("running pvhtest suites=smp on {hv}: {e}"),
    }
}

#[test]
fn pvhtest_smp_on_xen() {
    let r = run_smp(Hypervisor::Xen);
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&["smp"]) {
        panic!("pvhtest smp on Xen 4.17:\n{e}\n{}", r.report());
    }
    // What Xen 4.17 does, exactly, so the expectations cannot silently drift.
    for (key, details) in [
        ("smp.is_up_1_before", "rc=0"),
        ("smp.up_uninitialised", "rc=-22(EINVAL)"),
        ("smp.initialise_64b_no_paging", "rc=-22(EINVAL)"),
        ("smp.initialise_64b_non_canonical_rip", "rc=-22(EINVAL)"),
        ("smp.initialise_bad_mode", "rc=-22(EINVAL)"),
        ("smp.initialise_bad_pad", "rc=-22(EINVAL)"),
        ("smp.initialise_32b_null_cs", "rc=-22(EINVAL)"),
        ("smp.initialise_64b", "rc=0"),
        ("smp.initialise_again", "rc=-17(EEXIST)"),
        ("smp.up", "rc=0"),
        ("smp.ap.entry_regs", "rdi_ok=true rsp_ok=true rflags=0x2"),
        ("smp.ap.cpuid_vcpu_id", "present=true vcpu_id=1"),
        ("smp.ap.is_up", "self=1 vcpu0=1"),
        ("smp.is_up_1_running", "rc=1"),
        ("smp.self_down", "is_up_1=0 returned=false"),
        ("smp.resumed", "resumed=true down_rc=0"),
        ("smp.hlt_down", "is_up_1=0 ran_on=false"),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!(
        "pvhtest smp on Xen {} in {:.1?}:\n{}",
        xen_ref::package_version().unwrap_or_default(),
        r.run.elapsed,
        r.transcript
    );
}

#[test]
fn pvhtest_smp_skips_with_one_vcpu_on_xen() {
    let r = run_pvhtest(Hypervisor::Xen, "smp")
        .unwrap_or_else(|e| panic!("running pvhtest suites=smp on Xen: {e}"));
    let lines: Vec<String> = r.transcript.suite("smp").map(|v| v.to_string()).collect();
    assert_eq!(
        lines,
        ["smp.vcpus SKIP is_up_1=-2(ENOENT) one_vcpu"],
        "{}",
        r.report()
    );
}

#[test]
fn pvhtest_smp_xenolith_matches_xen() {
    let xen = run_smp(Hypervisor::Xen);
    if let Err(e) = xen.transcript.expect_all_pass(&["smp"]) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = run_smp(Hypervisor::Xenolith);
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's PVH smp verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}

/// The `smp` suite with both vCPUs of the PVH dom0 on one CPU (SVM): vCPU 1 starts from a
/// `vcpu_hvm_context`, and the two share the CPU through the scheduler.
#[test]
fn pvhtest_smp_two_vcpus_on_one_cpu() {
    let hv = tests_qemu::paths::hypervisor_elf().unwrap_or_else(|e| panic!("building: {e}"));
    let guest = tests_qemu::guests::pvhtest_elf().unwrap_or_else(|e| panic!("building: {e}"));
    let r = tests_qemu::guests::pvhtest_qemu_with(
        Hypervisor::Xenolith,
        &hv,
        &guest,
        "suites=smp",
        PVH_SMP_CMDLINE,
    )
    .smp(1)
    .name("pvhtest-smp-xenolith-2vcpus-1cpu")
    .run()
    .unwrap_or_else(|e| panic!("QEMU run failed to start: {e}"));
    r.assert_success();
    let t = tests_qemu::guests::pvh_transcript(r.serial.text());
    if let Err(e) = t.expect_all_pass(&["smp"]) {
        panic!("{e}\n{}", r.report());
    }
    assert!(
        t.get("smp.ap.started").is_some(),
        "vCPU 1 never ran\n{}",
        r.report()
    );
}
