//! Differential tests with the in-tree PV guest `pvtest` (`tests-qemu/guests`): it runs as dom0
//! on real Xen 4.17 (Debian's package, fetched into `target/xen-ref/` on first use) to prove
//! every expectation against the reference, and on Xenolith, whose verdicts must be identical.
//!
//! Run with `cargo test -p tests-qemu --test pv_guests -- --test-threads=1` (QEMU runs are
//! serialized anyway). `PVTEST_ELF`, `XEN_REF_ELF` and `XENOLITH_ELF` select prebuilt ELFs.

use tests_qemu::EndReason;
use tests_qemu::guests::{GuestRun, Hypervisor, run_pvtest};
use tests_qemu::verdicts::compare;
use tests_qemu::xen_ref;

/// Runs `suites` on `hv`, panicking with the report if the run could not happen.
fn run(hv: Hypervisor, suites: &str) -> GuestRun {
    match run_pvtest(hv, suites) {
        Ok(r) => r,
        Err(e) => panic!("running pvtest ({suites}) on {hv}: {e}"),
    }
}

#[test]
fn pvtest_basic_on_xen_4_17() {
    let r = run(Hypervisor::Xen, "basic");
    // Xen halts the machine (it does not exit QEMU) after dom0's SCHEDOP_shutdown(poweroff).
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&["basic"]) {
        panic!("pvtest basic on Xen 4.17:\n{e}\n{}", r.report());
    }
    // Xen's dom0 console writes reach the serial port without any prefix.
    let magic = r
        .run
        .find_line("VERDICT basic.start_info.magic ")
        .unwrap_or_else(|| panic!("no unprefixed magic verdict\n{}", r.report()));
    assert_eq!(
        magic,
        "VERDICT basic.start_info.magic PASS magic=xen-3.0-x86_64p"
    );
    // A few exact values, so the suite's expectations cannot silently drift.
    for (key, details) in [
        ("basic.xen_version.version", "version=4.17"),
        ("basic.start_info.nr_pages", "nr_pages=131072"),
        ("basic.memory_op.current_reservation", "pages=131072"),
        ("basic.hypercall.unknown_60", "rc=-38(ENOSYS)"),
        ("basic.mmu_update.pt_frame_writable", "rc=-16(EBUSY) done=0"),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!(
        "pvtest basic on Xen {} in {:.1?}:\n{}",
        xen_ref::package_version().unwrap_or_default(),
        r.run.elapsed,
        r.transcript
    );
}

#[test]
fn pvtest_basic_matches_xen_on_xenolith() {
    let xen = run(Hypervisor::Xen, "basic");
    if let Err(e) = xen.transcript.expect_all_pass(&["basic"]) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = run(Hypervisor::Xenolith, "basic");
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}

/// Runs `suite` on Xen 4.17 and requires a clean run where every check passes.
fn expect_all_pass_on_xen(suite: &str) -> GuestRun {
    let r = run(Hypervisor::Xen, suite);
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&[suite]) {
        panic!("pvtest {suite} on Xen 4.17:\n{e}\n{}", r.report());
    }
    r
}

/// Runs `suite` on Xen 4.17 (which must pass it) and on Xenolith, and requires identical
/// verdicts.
fn expect_xenolith_matches_xen(suite: &str) {
    let xen = run(Hypervisor::Xen, suite);
    if let Err(e) = xen.transcript.expect_all_pass(&[suite]) {
        panic!("the reference run is not clean:\n{e}\n{}", xen.report());
    }
    let xenolith = run(Hypervisor::Xenolith, suite);
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report()
    );
}

#[test]
fn pvtest_traps_on_xen_4_17() {
    let r = expect_all_pass_on_xen("traps");
    // A few exact bounce frames, so the suite's expectations cannot silently drift.
    for (key, details) in [
        (
            "traps.ud_ud2",
            "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
        ),
        (
            "traps.pf_write_readonly",
            "vec=14 ec=0x3 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok cr2=true",
        ),
        (
            "traps.int81_dpl0",
            "vec=13 ec=0x40a rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
        ),
        (
            "traps.mask_intr_gate_unmasked",
            "vec=6 ec=none rip=insn cs=0xe030 smask=0 fl=0x200 frame=ok entry=1 after=0",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest traps on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_traps_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("traps");
}

#[test]
fn pvtest_emul_on_xen_4_17() {
    let r = expect_all_pass_on_xen("emul");
    for (key, details) in [
        (
            "emul.cpuid_forced.0x40000000",
            "ok eax=0x40000005 sig=XenVMMXenVMM",
        ),
        (
            "emul.cpuid_forced.0x40000001",
            "ok eax=0x40011 ebx=0x0 ecx=0x0 edx=0x0",
        ),
        ("emul.msr.unknown_read", "trap=#13(0x0)@insn untouched=true"),
        ("emul.io.iopl0", "rc=0 in=#13(0x0)@insn out=#13(0x0)@insn"),
        ("emul.cr.cr3_read", "ok is_pt_base_maddr=true"),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest emul on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_emul_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("emul");
}

#[test]
fn pvtest_time_on_xen_4_17() {
    let r = expect_all_pass_on_xen("time");
    for (key, details) in [
        ("time.evtchn.bind_virq_timer", "rc=0 port=1"),
        (
            "time.set_timer_op.upcall",
            "rc=0 upcall=true pending=1 sel_bit=true port_bit=true mask=1 saved_mask=0 \
             on_time=true",
        ),
        // Xen 4.17 ignores VCPU_SSHOTTMR_future: no -ETIME, the event comes at once.
        (
            "time.vcpu_op.set_singleshot_timer_future_past",
            "rc=0 upcall=true port_bit=true",
        ),
        (
            "time.evtchn.bind_interdomain_self",
            "rc=0 local_port=4 remote_port=3",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest time on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_time_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("time");
}

#[test]
fn pvtest_mmu_on_xen_4_17() {
    let r = expect_all_pass_on_xen("mmu");
    for (key, details) in [
        // _PAGE_USER and _PAGE_GUEST_KERNEL (bit 52) added to a kernel L1 entry.
        (
            "mmu.mmu_update.l1_entry",
            "rc=0 done=1 changed_bits=0x10000000000004",
        ),
        (
            "mmu.mmu_update.batch_fail_middle",
            "rc=-16(EBUSY) done=1 applied=true,false,false",
        ),
        (
            "mmu.ptwr.invalid_pte",
            "faulted=true vector=14 error_code=0x3 cr2_ok=true applied=false",
        ),
        ("mmu.map.lapic_mmio", "rc=-1(EPERM)"),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest mmu on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_mmu_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("mmu");
}

#[test]
fn pvtest_misc_on_xen_4_17() {
    let r = expect_all_pass_on_xen("misc");
    for (key, details) in [
        (
            "misc.multicall.results",
            "rc=0 results=0x40011,-38(ENOSYS),4096,-22(EINVAL),0,0,-38(ENOSYS) \
             handle_written=true",
        ),
        (
            "misc.update_descriptor.call_gate",
            "rc=0 stored=0x12348c00e0335678",
        ),
        ("misc.memory_op.memory_map", "rc=-38(ENOSYS)"),
        (
            "misc.vcpu_op.register_vcpu_info",
            "rc=0 upcall_pending=1 mask=1 pending_sel=0xffffffffffffffff",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest misc on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_misc_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("misc");
}

#[test]
fn pvtest_fifo_on_xen_4_17() {
    let r = expect_all_pass_on_xen("fifo");
    for (key, details) in [
        ("fifo.set_priority.two_level", "rc=-38(ENOSYS)"),
        ("fifo.expand_array.two_level", "rc=-95(EOPNOTSUPP)"),
        (
            "fifo.init_control.bad_vcpu",
            "rc=-2(ENOENT) link_bits_written=false",
        ),
        ("fifo.init_control.switch", "rc=0 link_bits=17"),
        ("fifo.init_control.again_same_vcpu", "rc=-22(EINVAL)"),
        ("fifo.set_priority.reserved_port_0", "rc=-13(EACCES)"),
        (
            "fifo.control_block.queues",
            "ready=0xa4 queues=2:L>B,5:A>C,7:D",
        ),
        (
            "fifo.upcall.consume_order",
            "upcalls=1 order=L,B,A,C,D ready=0x0 words_clear=true odd=0",
        ),
    ] {
        r.assert_verdict(key, details);
    }
    eprintln!("pvtest fifo on Xen 4.17:\n{}", r.transcript);
}

#[test]
fn pvtest_fifo_matches_xen_on_xenolith() {
    expect_xenolith_matches_xen("fifo");
}
