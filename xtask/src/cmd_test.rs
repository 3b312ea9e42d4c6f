//! `cargo xtask test`: everything CI checks, in order.

use std::time::Instant;

use tests_qemu::paths::{ELF_ENV, Profile};

use crate::args::Args;
use crate::util::{self, Result};
use crate::{cmd_build, cmd_clippy, cmd_fuzz, deps};

/// Seconds per cargo-fuzz target in the bounded CI run.
const FUZZ_SECONDS: u32 = 5;

const HELP: &str = "\
Usage: cargo xtask test [-- TEST_FILTER...]

Runs, in order (continuing after a failure where possible, failing at the end if anything
failed):
  1. lints: cargo xtask clippy (fmt --check, clippy -D warnings on host and bare metal)
  2. host tools: scripts/install-host-deps.sh --bochs when something is missing (needs root)
  3. host unit tests: cargo test --workspace --exclude tests-qemu --no-fail-fast
  4. the hypervisor build: cargo xtask build
  5. the harness unit tests and the QEMU boot tests, one QEMU at a time:
     XENOLITH_ELF=<elf> cargo test -p tests-qemu --no-fail-fast -- --test-threads=1 [FILTER...]
  6. fuzz (bounded): every cargo-fuzz target for 5 s (cargo xtask fuzz --seconds 5), only when
     `cargo +nightly fuzz --version` works and the fuzz crate builds; otherwise skipped with the
     reason, never a failure (a crash found is one)
(tests-qemu is left out of step 3 so its QEMU tests run only once, in step 5.)";

struct Step {
    name: &'static str,
    outcome: std::result::Result<(), String>,
    secs: f64,
}

pub fn main(argv: &[String]) -> Result<()> {
    let args = Args::parse(argv, &["-h", "--help"], &[])?;
    if args.flag("-h") || args.flag("--help") {
        println!("{HELP}");
        return Ok(());
    }
    let mut steps: Vec<Step> = Vec::new();
    let mut step = |name: &'static str, f: &mut dyn FnMut() -> Result<()>| {
        eprintln!("\n=== xtask test: {name} ===");
        let start = Instant::now();
        let outcome = f();
        if let Err(e) = &outcome {
            eprintln!("xtask test: {name} FAILED: {e}");
        }
        let ok = outcome.is_ok();
        steps.push(Step {
            name,
            outcome,
            secs: start.elapsed().as_secs_f64(),
        });
        ok
    };

    step("lints", &mut cmd_clippy::lint);
    let deps_ok = step("host tools", &mut || deps::ensure(true));
    step("host unit tests", &mut || {
        util::run(util::cargo().args([
            "test",
            "--workspace",
            "--exclude",
            "tests-qemu",
            "--no-fail-fast",
        ]))
    });
    let mut elf = None;
    let built = step("hypervisor build", &mut || {
        elf = Some(cmd_build::build(Profile::Release)?);
        Ok(())
    });
    step("QEMU tests", &mut || {
        if !built {
            return Err("skipped: the hypervisor did not build".into());
        }
        if !deps_ok {
            return Err("skipped: host tools are missing".into());
        }
        let elf = elf.as_ref().expect("built");
        let mut cmd = util::cargo();
        cmd.env(ELF_ENV, elf)
            .args([
                "test",
                "-p",
                "tests-qemu",
                "--no-fail-fast",
                "--",
                "--test-threads=1",
            ])
            .args(&args.rest);
        eprintln!("xtask: {ELF_ENV}={}", elf.display());
        util::run(&mut cmd)
    });
    step("fuzz (bounded)", &mut || match cmd_fuzz::available() {
        Ok(version) => {
            eprintln!("xtask: {version}");
            // An unpinned nightly that cannot build the fuzz crate is a tool problem, not a
            // finding: report it and go on. A crash in a target fails the step.
            match cmd_fuzz::build() {
                Ok(()) => cmd_fuzz::run_built(cmd_fuzz::TARGETS, FUZZ_SECONDS),
                Err(e) => {
                    eprintln!("fuzz (bounded): skipped: the fuzz crate does not build: {e}");
                    Ok(())
                }
            }
        }
        // A missing tool must never turn CI red.
        Err(why) => {
            eprintln!("fuzz (bounded): skipped: {why}");
            Ok(())
        }
    });

    eprintln!("\n=== xtask test: summary ===");
    for s in &steps {
        let status = if s.outcome.is_ok() { "ok" } else { "FAILED" };
        eprintln!("  {:<18} {:<6} ({:.0} s)", s.name, status, s.secs);
    }
    let failed: Vec<&str> = steps
        .iter()
        .filter(|s| s.outcome.is_err())
        .map(|s| s.name)
        .collect();
    if failed.is_empty() {
        eprintln!("all passed");
        Ok(())
    } else {
        Err(format!("failed: {}", failed.join(", ")))
    }
}
