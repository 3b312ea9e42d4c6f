//! The `smp` suite of the in-tree PV guest `pvtest` (`tests-qemu/guests/src/suites/smp.rs`):
//! dom0 with two vCPUs (`dom0_max_vcpus=2`, QEMU `-smp 2`) brings vCPU 1 up with
//! `VCPUOP_initialise`/`VCPUOP_up`, exchanges IPIs with it, and takes it down and up again.
//! Every check must pass on real Xen 4.17 (the reference), and Xenolith's transcript must be
//! identical.
//!
//! Run with `cargo test -p tests-qemu --test pv_smp -- --nocapture`. `PVTEST_ELF`,
//! `XEN_REF_ELF` and `XENOLITH_ELF` select prebuilt ELFs.

use tests_qemu::EndReason;
use tests_qemu::guests::{GuestRun, Hypervisor, SMP_CMDLINE, run_pvtest_on, run_pvtest_with};
use tests_qemu::verdicts::compare;
use tests_qemu::xen_ref;

const SUITE: &str = "smp";

/// Runs the `smp` suite on `hv` with a two-vCPU dom0, panicking if the run could not happen.
fn run(hv: Hypervisor) -> GuestRun {
    match run_pvtest_with(hv, SUITE, SMP_CMDLINE) {
        Ok(r) => r,
        Err(e) => panic!("running pvtest ({SUITE}) on {hv}: {e}"),
    }
}

#[test]
fn pvtest_smp_on_xen_4_17() {
    let r = run(Hypervisor::Xen);
    // Poweroff from vCPU 0 still works with vCPU 1 down.
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&[SUITE]) {
        panic!("pvtest {SUITE} on Xen 4.17:\n{e}\n{}", r.report());
    }
    // The suite really ran with two vCPUs (one vCPU gives a single SKIP, which fails above).
    assert!(
        r.transcript.suite(SUITE).count() > 30,
        "too few verdicts\n{}",
        r.report()
    );
    // A few exact values, so the suite's expectations cannot silently drift.
    for (key, details) in [
        ("smp.vcpu_op.is_up_1_at_boot", "rc=0"),
        ("smp.vcpu_op.is_up_2", "rc=-2(ENOENT)"),
        ("smp.vcpu_op.runstate_1_at_boot", "rc=0 state=3"),
        ("smp.vcpu_op.up_uninitialised", "rc=-22(EINVAL)"),
        (
            "smp.vcpu_op.register_vcpu_info_1",
            "rc=0 upcall_pending=1 mask=1 pending_sel=0xffffffffffffffff",
        ),
        ("smp.vcpu_op.initialise_non_canonical_rip", "rc=-22(EINVAL)"),
        (
            "smp.vcpu_op.initialise_user_mode_no_user_cr3",
            "rc=-22(EINVAL)",
        ),
        ("smp.vcpu_op.initialise", "rc=0"),
        ("smp.vcpu_op.initialise_again", "rc=-17(EEXIST)"),
        ("smp.vcpu_op.is_up_1_initialised", "rc=0"),
        ("smp.vcpu_op.up", "rc=0"),
        (
            "smp.vcpu1.entry_state",
            "rdi_ok=true rsp_ok=true cs=0xe033 upcall_mask=1",
        ),
        (
            "smp.evtchn.ipi_to_vcpu1",
            "blocked=true rc=0 round_trips=10 hits=10 upcalls_ge_hits=true",
        ),
        (
            "smp.evtchn.ipi_from_vcpu1",
            "round_trips=10 poll_rc=0 pending=true ack=true send_rc=0",
        ),
        ("smp.vcpu_op.down_remote", "rc=0"),
        (
            "smp.vcpu1.resumed",
            "ack_while_down=false ack=true heartbeat=true",
        ),
        (
            "smp.vcpu1.self_down",
            "ack=true is_up=0 stopped=true rc=0 state=3",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!(
        "pvtest {SUITE} on Xen {} in {:.1?}:\n{}",
        xen_ref::package_version().unwrap_or_default(),
        r.run.elapsed,
        r.transcript
    );
}

/// With one vCPU (how the other suites run) the suite prints a single SKIP and leaves the run
/// clean, so `suites=all` keeps working.
#[test]
fn pvtest_smp_skips_with_one_vcpu_on_xen_4_17() {
    let r = match run_pvtest_with(Hypervisor::Xen, SUITE, xen_ref::CMDLINE) {
        Ok(r) => r,
        Err(e) => panic!("running pvtest ({SUITE}) on Xen with one vCPU: {e}"),
    };
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    let problems = r.transcript.consistency_problems();
    assert!(problems.is_empty(), "{problems:?}\n{}", r.report());
    let verdicts: Vec<String> = r.transcript.suite(SUITE).map(|v| v.to_string()).collect();
    assert_eq!(
        verdicts,
        ["smp.vcpus SKIP is_up_1=-2(ENOENT) one_vcpu"],
        "{}",
        r.report()
    );
}

#[test]
fn pvtest_smp_matches_xen_on_xenolith() {
    let xen = run(Hypervisor::Xen);
    if let Err(e) = xen.transcript.expect_all_pass(&[SUITE]) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = run(Hypervisor::Xenolith);
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}

/// Both vCPUs on one CPU: Xenolith's scheduler time-slices them (and switches on block, poll
/// and wake-ups), and the guest must see exactly what it sees on Xen with a CPU each.
#[test]
fn pvtest_smp_on_one_cpu_matches_xen_on_xenolith() {
    let xen = run(Hypervisor::Xen);
    if let Err(e) = xen.transcript.expect_all_pass(&[SUITE]) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = match run_pvtest_on(Hypervisor::Xenolith, SUITE, SMP_CMDLINE, 1) {
        Ok(r) => r,
        Err(e) => panic!("running pvtest ({SUITE}) on one CPU: {e}"),
    };
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's verdicts (2 vCPUs on 1 CPU) differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}
