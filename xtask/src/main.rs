//! `cargo xtask`: build, run and test Xenolith.
//!
//! - `cargo xtask build [--debug]`: build the hypervisor ELF; the last output line is its path.
//! - `cargo xtask run [...]`: boot it in QEMU (with the demo dom0 by default) with the serial
//!   console on this terminal; exits with QEMU's exit status.
//! - `cargo xtask test`: lints, host unit tests, then the QEMU boot tests.
//! - `cargo xtask clippy`: `cargo fmt --check` and clippy (host and bare-metal target).
//! - `cargo xtask bench`: Xenolith against Xen 4.17, ns per PV operation (docs/performance.md).
//! - `cargo xtask fuzz [--seconds N] [TARGET]`: the cargo-fuzz targets in `fuzz/`, bounded in time
//!   (docs/security.md).

mod args;
mod cmd_bench;
mod cmd_build;
mod cmd_clippy;
mod cmd_fuzz;
mod cmd_run;
mod cmd_test;
mod deps;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  build    Build the hypervisor ELF (prints its absolute path last)
  run      Build and boot Xenolith and a dom0 (the demo by default) in QEMU, serial console here
  test     Lint, run the host unit tests, then the QEMU boot tests
  clippy   cargo fmt --check and clippy -D warnings (host and x86_64-unknown-none)
  bench    Benchmark Xenolith against Xen 4.17 under QEMU and print the ratios
  fuzz     Run the cargo-fuzz targets (nightly) for a bounded time each (--seconds N, default 10)

Run `cargo xtask <COMMAND> --help` for the options of a command.";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = argv.collect();
    let result = match cmd.as_str() {
        // `run` exits with QEMU's exit status.
        "run" => cmd_run::main(&rest),
        "build" => cmd_build::main(&rest).map(|()| ExitCode::SUCCESS),
        "test" => cmd_test::main(&rest).map(|()| ExitCode::SUCCESS),
        "bench" => cmd_bench::main(&rest).map(|()| ExitCode::SUCCESS),
        "fuzz" => cmd_fuzz::main(&rest).map(|()| ExitCode::SUCCESS),
        "clippy" | "lint" => cmd_clippy::main(&rest).map(|()| ExitCode::SUCCESS),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
