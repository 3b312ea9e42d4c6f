//! `cargo xtask fuzz`: run the cargo-fuzz (libFuzzer) targets in `fuzz/` for a bounded time.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::args::Args;
use crate::util::{self, Result};

const HELP: &str = "\
Usage: cargo xtask fuzz [--seconds N] [TARGET]
       cargo xtask fuzz --iterations N [--seed S]

Runs each cargo-fuzz target in fuzz/ (or only TARGET) for N seconds (default 10):
  cargo +nightly fuzz run <TARGET> -- -max_total_time=N     (in fuzz/)
and prints libFuzzer's final executions/coverage line per target. Fails on a crash, naming
the crash artifact (reproduce with `cargo +nightly fuzz run <TARGET> <ARTIFACT>` in fuzz/).
Needs the nightly toolchain and cargo-fuzz:
  rustup toolchain install nightly --profile minimal
  cargo install cargo-fuzz --locked

Targets: elf_xen_notes bzimage decompress multiboot1 multiboot2 options x86_decode xenstore

With --iterations, runs the hostile-guest QEMU test instead (tests-qemu/tests/hostile.rs: a
hostile dom0 making N seeded random hypercalls beside a domU whose canary must survive), with
seed S (default 1).";

/// The `[[bin]]` targets of `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: &[&str] = &[
    "elf_xen_notes",
    "bzimage",
    "decompress",
    "multiboot1",
    "multiboot2",
    "options",
    "x86_decode",
    "xenstore",
];

/// Default run time per target, seconds.
const DEFAULT_SECONDS: u32 = 10;

pub fn main(argv: &[String]) -> Result<()> {
    // One optional positional TARGET; everything else goes through the option parser.
    let mut opts = Vec::new();
    let mut target = None;
    let mut it = argv.iter();
    while let Some(a) = it.next() {
        if a == "--seconds" || a == "--iterations" || a == "--seed" {
            opts.push(a.clone());
            opts.extend(it.next().cloned());
        } else if a.starts_with('-') {
            opts.push(a.clone());
        } else if target.replace(a.clone()).is_some() {
            return Err(format!("more than one TARGET given ({a:?})\n\n{HELP}"));
        }
    }
    let args = Args::parse(
        &opts,
        &["-h", "--help"],
        &["--seconds", "--iterations", "--seed"],
    )?;
    if args.flag("-h") || args.flag("--help") {
        println!("{HELP}");
        return Ok(());
    }
    if let Some(iters) = args.number("--iterations", 1, 100_000_000)? {
        let seed = args.number("--seed", 0, u32::MAX)?.unwrap_or(1);
        return hostile(iters, seed);
    }
    let seconds = args
        .number("--seconds", 1, 86_400)?
        .unwrap_or(DEFAULT_SECONDS);
    let targets: Vec<&str> = match &target {
        Some(t) if TARGETS.contains(&t.as_str()) => vec![t.as_str()],
        Some(t) => {
            return Err(format!(
                "unknown fuzz target {t:?}; targets: {}",
                TARGETS.join(" ")
            ));
        }
        None => TARGETS.to_vec(),
    };
    let version = available().map_err(|why| {
        format!(
            "{why}\ninstall with: rustup toolchain install nightly --profile minimal && \
             cargo install cargo-fuzz --locked"
        )
    })?;
    eprintln!("xtask fuzz: {version}");
    run_targets(&targets, seconds)
}

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    tests_qemu::paths::workspace_root().join("fuzz")
}

/// `cargo +nightly ...` in `fuzz/`, through the rustup proxy (not the pinned cargo running
/// xtask) and without the toolchain variables the outer cargo/rustup set.
fn nightly_cargo() -> Command {
    let mut cmd = Command::new("cargo");
    cmd.arg("+nightly").current_dir(fuzz_dir());
    for var in [
        "RUSTUP_TOOLCHAIN",
        "CARGO",
        "RUSTC",
        "RUSTDOC",
        "RUSTC_WRAPPER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `Ok(cargo-fuzz version)` when `cargo +nightly fuzz --version` works, else why not.
pub fn available() -> std::result::Result<String, String> {
    let out = nightly_cargo()
        .args(["fuzz", "--version"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `cargo +nightly fuzz --version`: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_string());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let why = if err.contains("toolchain 'nightly") || err.contains("is not installed") {
        "the nightly toolchain is not installed"
    } else if err.contains("no such command") || err.contains("no such subcommand") {
        "cargo-fuzz is not installed"
    } else {
        "`cargo +nightly fuzz --version` failed"
    };
    let detail = err.lines().next().unwrap_or("").trim();
    Err(format!("{why} ({detail})"))
}

/// The hostile-guest QEMU test with `iters` iterations and `seed`.
fn hostile(iters: u32, seed: u32) -> Result<()> {
    let elf = crate::cmd_build::build(tests_qemu::paths::Profile::Release)?;
    let mut cmd = util::cargo();
    cmd.args([
        "test",
        "-p",
        "tests-qemu",
        "--test",
        "hostile",
        "--",
        "--test-threads=1",
        "--nocapture",
    ])
    .env("HOSTILE_ITERS", iters.to_string())
    .env("HOSTILE_SEED", seed.to_string())
    .env(tests_qemu::paths::ELF_ENV, &elf);
    util::run(&mut cmd)
}

/// Builds every target, then runs each for `seconds`; fails if any crashed.
pub fn run_targets(targets: &[&str], seconds: u32) -> Result<()> {
    build()?;
    run_built(targets, seconds)
}

/// Builds every target (`cargo +nightly fuzz build`).
pub fn build() -> Result<()> {
    util::run(nightly_cargo().args(["fuzz", "build"]))
}

/// Runs each (already built) target for `seconds`; fails if any crashed.
pub fn run_built(targets: &[&str], seconds: u32) -> Result<()> {
    let mut report = Vec::new();
    let mut crashes = Vec::new();
    for t in targets {
        let start = Instant::now();
        match run_one(t, seconds) {
            Ok(line) => report.push(format!(
                "  {t:<14} ok      {line} ({:.0} s)",
                start.elapsed().as_secs_f64()
            )),
            Err(e) => {
                report.push(format!("  {t:<14} CRASH   {e}"));
                crashes.push(format!("{t}: {e}"));
            }
        }
    }
    eprintln!("\n=== xtask fuzz: {seconds} s per target ===");
    for r in &report {
        eprintln!("{r}");
    }
    if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzz findings:\n  {}", crashes.join("\n  ")))
    }
}

/// Runs one target; `Ok(final stats line)` or `Err(what crashed, with the artifact path)`.
fn run_one(target: &str, seconds: u32) -> Result<String> {
    let mut cmd = nightly_cargo();
    cmd.args(["fuzz", "run", target, "--"])
        .arg(format!("-max_total_time={seconds}"))
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let shown = util::display(&cmd);
    eprintln!("==> {shown}");
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run `{shown}`: {e}"))?;
    let stderr = child.stderr.take().expect("piped");
    let (mut done, mut last_stat, mut artifact, mut reason) = (None, None, None, None);
    for line in BufReader::new(stderr).lines() {
        let Ok(line) = line else { break };
        // Progress lines (new coverage, reductions, pulses, new functions) are noise in a log.
        let progress = (line.starts_with('#')
            && ["\tNEW ", "\tREDUCE ", "\tpulse "]
                .iter()
                .any(|p| line.contains(p)))
            || line.trim_start().starts_with("NEW_FUNC[");
        if !progress {
            eprintln!("{line}");
        }
        if line.starts_with('#') && line.contains("\tDONE ") {
            done = Some(squash(&line));
        } else if line.starts_with('#') && line.contains("cov: ") {
            last_stat = Some(squash(&line));
        } else if let Some(p) = line.split("Test unit written to ").nth(1) {
            artifact = Some(p.trim().to_string());
        } else if reason.is_none()
            && (line.contains("panicked at") || line.contains("==ERROR: libFuzzer"))
        {
            reason = Some(line.trim().to_string());
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for `{shown}`: {e}"))?;
    let stats = done.or(last_stat).unwrap_or_else(|| "no stats line".into());
    if status.success() {
        return Ok(stats);
    }
    let mut msg = format!("`{shown}` failed ({status})");
    if let Some(r) = reason {
        msg.push_str(&format!(": {r}"));
    }
    match artifact {
        Some(a) => msg.push_str(&format!(
            "; crash artifact: {a} (reproduce: cd fuzz && cargo +nightly fuzz run {target} {a})"
        )),
        None => msg.push_str("; no crash artifact written (build failure?)"),
    }
    Err(msg)
}

/// A libFuzzer stats line with its tabs and runs of spaces collapsed.
fn squash(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `TARGETS` lists exactly the `[[bin]]` targets of fuzz/Cargo.toml.
    #[test]
    fn targets_match_the_fuzz_crate() {
        let toml = std::fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        let mut bins = Vec::new();
        let mut in_bin = false;
        for line in toml.lines().map(str::trim) {
            if line.starts_with('[') {
                in_bin = line == "[[bin]]";
            } else if in_bin && let Some(v) = line.strip_prefix("name = ") {
                bins.push(v.trim_matches('"').to_string());
            }
        }
        assert_eq!(bins, TARGETS);
        for t in TARGETS {
            assert!(
                fuzz_dir().join(format!("fuzz_targets/{t}.rs")).is_file(),
                "{t}"
            );
        }
    }

    #[test]
    fn squashes_stats_lines() {
        assert_eq!(
            squash("#1234\tDONE   cov: 56 ft: 78 corp: 9/10b exec/s: 11 rss: 12Mb"),
            "#1234 DONE cov: 56 ft: 78 corp: 9/10b exec/s: 11 rss: 12Mb"
        );
    }
}
