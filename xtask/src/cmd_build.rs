//! `cargo xtask build [--debug]`.

use tests_qemu::paths::{self, Profile};

use crate::args::Args;
use crate::util::{self, Result};

const HELP: &str = "\
Usage: cargo xtask build [--debug]

Builds the hypervisor:
  cargo build --release -p xenolith --bin xenolith --target x86_64-unknown-none
and prints the absolute path of the ELF as the last line of output.

Options:
  --debug   Build with the dev profile instead of --release
  -h, --help";

/// Builds the hypervisor and returns the absolute ELF path (without printing it).
pub fn build(profile: Profile) -> Result<std::path::PathBuf> {
    let mut cmd = util::cargo();
    cmd.args(paths::build_args(profile));
    util::run(&mut cmd)?;
    let elf = paths::elf_path(profile);
    elf.canonicalize()
        .map_err(|e| format!("build finished but {} is missing: {e}", elf.display()))
}

pub fn main(argv: &[String]) -> Result<()> {
    let args = Args::parse(argv, &["--debug", "-h", "--help"], &[])?;
    if args.flag("-h") || args.flag("--help") {
        println!("{HELP}");
        return Ok(());
    }
    if !args.rest.is_empty() {
        return Err("unexpected arguments after --".into());
    }
    let profile = if args.flag("--debug") {
        Profile::Debug
    } else {
        Profile::Release
    };
    let elf = build(profile)?;
    println!("{}", elf.display());
    Ok(())
}
