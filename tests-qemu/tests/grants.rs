//! Grant tables (`HYPERVISOR_grant_table_op`).
//!
//! - `gnttab` (`pvtest` as the only domain): on Xen 4.17, every check must pass; on Xenolith
//!   the verdicts must be identical to Xen's (the differential test of `pv_guests.rs`).
//! - `grants` (dom0 and a boot-time domU, Xenolith only: Xen 4.17 cannot start domUs at boot):
//!   the domU grants pages to dom0, which maps its ring page; they exchange messages through
//!   it, copy in both directions, check the refusals, and the domU powers off while dom0 still
//!   maps its page and while it maps a grant of dom0's. Every verdict on both sides must pass,
//!   and the hypervisor's log shows the dead domain's page kept until dom0 unmaps it, then its
//!   table released. On two CPUs the `g` debug key dumps the tables meanwhile.
//!
//! `cargo test -p tests-qemu --test grants -- --test-threads=1`.

use std::path::PathBuf;

use tests_qemu::guests::{GuestRun, Hypervisor, run_pvtest};
use tests_qemu::verdicts::{Transcript, compare};
use tests_qemu::{EndReason, Qemu, RunResult, guests, paths, xen_ref};

const SUITE: &str = "gnttab";

fn run(hv: Hypervisor) -> GuestRun {
    match run_pvtest(hv, SUITE) {
        Ok(r) => r,
        Err(e) => panic!("running pvtest ({SUITE}) on {hv}: {e}"),
    }
}

#[test]
fn gnttab_on_xen_4_17() {
    let r = run(Hypervisor::Xen);
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report()
    );
    if let Err(e) = r.transcript.expect_all_pass(&[SUITE]) {
        panic!("pvtest {SUITE} on Xen 4.17:\n{e}\n{}", r.report());
    }
    // A few exact values, so the suite's expectations cannot silently drift.
    for (key, details) in [
        (
            "gnttab.query_size.initial",
            "rc=0 status=0 nr_frames=1 max=64",
        ),
        ("gnttab.map.self_host_flags", "flags=0x19"),
        ("gnttab.map.revoked", "rc=0 status=-1 handle_untouched=true"),
        ("gnttab.copy.crosses_page", "rc=0 status=-10"),
        ("gnttab.set_version.busy", "rc=-16(EBUSY) version=1"),
        ("gnttab.swap.pinned", "rc=0 status=-12"),
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

#[test]
fn gnttab_matches_xen_on_xenolith() {
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

// ---------------------------------------------------------------------------------------------
// Two domains.

fn elf() -> PathBuf {
    paths::hypervisor_elf().unwrap_or_else(|e| panic!("no hypervisor ELF: {e}"))
}

fn pvtest() -> PathBuf {
    guests::pvtest_elf().unwrap_or_else(|e| panic!("building pvtest: {e}"))
}

/// The verdict transcript of domain `dom` (dom0: the unprefixed lines).
fn transcript(r: &RunResult, dom: u16) -> Transcript {
    Transcript::of_domain(r.serial.text(), dom)
}

const CTRL_A3: &[u8] = &[1, 1, 1];

fn run_pair(name: &str, cpus: u32, keys: bool) -> RunResult {
    let p = pvtest();
    let mut q = Qemu::new()
        .name(name)
        .kernel(elf())
        .append("console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot")
        .smp(cpus)
        .module(&p, "suites=grants")
        .module(&p, "domU name=granter memory=32 -- suites=grants")
        .timeout(std::time::Duration::from_secs(180))
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED);
    if keys {
        // The domU is dead by then: one switch goes from dom0 to the hypervisor.
        q = q
            .type_after("GRANTS holding", CTRL_A3)
            .type_after("*** Serial input to Xen", b"g");
    }
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

fn check_pair(r: &RunResult) {
    let dom0 = transcript(r, 0);
    let domu = transcript(r, 1);
    if let Err(e) = dom0.expect_all_pass(&["grants"]) {
        panic!("dom0:\n{e}\n{}", r.report());
    }
    if let Err(e) = domu.expect_all_pass(&["grants"]) {
        panic!("the domU:\n{e}\n{}", r.report());
    }
    for (t, key, details) in [
        (
            &dom0,
            "grants.ring.consumed",
            "n=1000 in_order=true checksum_ok=true",
        ),
        (&domu, "grants.ring.produced", "n=1000"),
        (&domu, "grants.ring.checksum", "done=true equal=true"),
        (&dom0, "grants.refused.revoked", "rc=0 status=-1"),
        (&dom0, "grants.refused.bad_ref", "rc=0 status=-3"),
        (&dom0, "grants.peer.dead", "status=-2"),
        (&dom0, "grants.peer.table_gone", "rc=0 status=-2"),
        (&domu, "grants.refused.query_size_dom0", "rc=0 status=-8"),
    ] {
        let v = t
            .get(key)
            .unwrap_or_else(|| panic!("no {key} verdict\n{}", r.report()));
        assert_eq!(v.details, details, "{key}\n{}", r.report());
    }
    // The domU died holding a mapping of dom0's grant and with dom0 mapping its ring page:
    // its mapping was released, the page kept for dom0, and its table went with dom0's unmap.
    has(r, "d1: shutdown, reason 0 (poweroff)");
    has(r, "d1: 1 mapping(s) of other domains' grants released");
    has(
        r,
        "d1: 1 frame(s) still mapped by other domains through grants, kept until unmapped",
    );
    has(
        r,
        "d1: last foreign mapping gone: grant table (1 frames) released",
    );
}

/// Dom0 and the domU on a CPU each; the `g` key dumps the tables while dom0 still maps the
/// dead domU's page.
#[test]
fn grants_between_dom0_and_a_domu() {
    let r = run_pair("grants-pair", 2, true);
    check_pair(&r);
    has(&r, "'g' pressed -> print grant table usage");
    has(&r, "gnttab_usage_print_all [ key 'g' pressed");
    has(&r, "grant-table for remote d1 (v1)");
    // The ring page (ref 10) pinned by dom0 with one writable host mapping.
    has(&r, "[0x00a]      0 0x");
    has(&r, " 0x00000001          0 0x");
    has(&r, "gnttab_usage_print_all ] done");
}

/// Both domains on one CPU: every wait is a switch to the other domain.
#[test]
fn grants_with_both_domains_on_one_cpu() {
    let r = run_pair("grants-pair-1cpu", 1, false);
    check_pair(&r);
}
