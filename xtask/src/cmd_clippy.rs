//! `cargo xtask clippy`: formatting and lints, on the host and on the bare-metal target.

use std::process::Command;

use tests_qemu::paths::HYPERVISOR_TARGET;

use crate::args::Args;
use crate::util::{self, Result};

const HELP: &str = "\
Usage: cargo xtask clippy

Runs, reporting every failure:
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets -- -D warnings
  cargo clippy -p xenolith --bin xenolith --target x86_64-unknown-none -- -D warnings";

/// The lint commands, in order.
fn commands() -> Vec<Command> {
    let mut fmt = util::cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    let mut host = util::cargo();
    host.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    let mut bare = util::cargo();
    bare.args([
        "clippy",
        "-p",
        "xenolith",
        "--bin",
        "xenolith",
        "--target",
        HYPERVISOR_TARGET,
        "--",
        "-D",
        "warnings",
    ]);
    vec![fmt, host, bare]
}

/// Runs all lint commands; fails (after running all of them) if any failed.
pub fn lint() -> Result<()> {
    let failures: Vec<String> = commands()
        .iter_mut()
        .filter_map(|c| util::run(c).err())
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

pub fn main(argv: &[String]) -> Result<()> {
    let args = Args::parse(argv, &["-h", "--help"], &[])?;
    if args.flag("-h") || args.flag("--help") {
        println!("{HELP}");
        return Ok(());
    }
    lint()
}
