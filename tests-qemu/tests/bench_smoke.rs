//! Smoke test of the benchmark guest (`pvtest` `suites=bench bench_iters=1`, see
//! `tests-qemu/src/bench.rs`): one timed iteration of every operation on Xen 4.17 and on
//! Xenolith, under the QEMU machine of the differential tests in normal mode. Every operation
//! must return what it should on both (its verdict PASS; none is skipped any more) and
//! print its `BENCH` line, and Xenolith's verdicts must equal Xen's. No timing is checked: the
//! numbers are `cargo xtask bench`'s business.
//!
//! Run with `cargo test -p tests-qemu --test bench_smoke -- --test-threads=1`. `PVTEST_ELF`,
//! `XEN_REF_ELF` and `XENOLITH_ELF` select prebuilt ELFs.

use tests_qemu::EndReason;
use tests_qemu::bench::{self, BenchRun, Mode, SMOKE_ITERS};
use tests_qemu::guests::Hypervisor;
use tests_qemu::verdicts::compare;
use tests_qemu::xen_ref;

/// Runs the smoke bench on `hv`, panicking unless the run is clean.
fn smoke(hv: Hypervisor) -> BenchRun {
    let r = match bench::run_bench(hv, Mode::Normal, Some(SMOKE_ITERS)) {
        Ok(r) => r,
        Err(e) => panic!("running the bench smoke on {hv}: {e}"),
    };
    if let Err(e) = r.check() {
        panic!("bench smoke on {hv}:\n{e}\n{}", r.report_text());
    }
    r
}

#[test]
fn bench_smoke_on_xen_4_17() {
    let r = smoke(Hypervisor::Xen);
    assert_eq!(
        r.run.end,
        EndReason::Success(xen_ref::DOM0_HALTED.into()),
        "{}",
        r.report_text()
    );
    for op in bench::OPS {
        let want_skip = bench::SKIPPED_OPS.contains(op);
        let got = r.report.get(op);
        assert!(
            if want_skip {
                matches!(got, Some(bench::OpResult::Skipped(_)))
            } else {
                matches!(got, Some(bench::OpResult::Timed(_)))
            },
            "{op} should be {}: {got:?}\n{}",
            if want_skip { "skipped" } else { "timed" },
            r.report_text()
        );
    }
}

#[test]
fn bench_smoke_matches_xen_on_xenolith() {
    let xen = smoke(Hypervisor::Xen);
    let xenolith = smoke(Hypervisor::Xenolith);
    let cmp = compare(&xen.transcript, &xenolith.transcript);
    assert!(
        cmp.identical(),
        "Xenolith's bench verdicts differ from Xen 4.17's:\n{cmp}\n{}",
        xenolith.report_text()
    );
    // The same operations, in the same order, timed or skipped alike.
    let shape = |r: &BenchRun| -> Vec<(String, bool)> {
        r.report
            .ops
            .iter()
            .map(|(op, res)| (op.clone(), matches!(res, bench::OpResult::Timed(_))))
            .collect()
    };
    assert_eq!(shape(&xenolith), shape(&xen), "{}", xenolith.report_text());
}
