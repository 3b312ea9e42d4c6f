//! `cargo xtask`: build, run and test Xenolith.
//!
//! - `cargo xtask build [--debug]`: build the hypervisor ELF; the last output line is its path.
//! - `cargo xtask run [...]`: boot it in QEMU with the serial console on this terminal.
//! - `cargo xtask test`: lints, host unit tests, then the QEMU boot tests.
//! - `cargo xtask clippy`: `cargo fmt --check` and clippy (host and bare-metal target).

mod args;
mod cmd_build;
mod cmd_clippy;
mod cmd_run;
mod cmd_test;
mod deps;
mod util;

use std::process::ExitCode;

const USAGE: &str = "\
Usage: cargo xtask <COMMAND> [OPTIONS]

Commands:
  build    Build the hypervisor ELF (prints its absolute path last)
  run      Build and boot Xenolith in QEMU with the serial console on this terminal
  test     Lint, run the host unit tests, then the QEMU boot tests
  clippy   cargo fmt --check and clippy -D warnings (host and x86_64-unknown-none)

Run `cargo xtask <COMMAND> --help` for the options of a command.";

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(cmd) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = argv.collect();
    let result = match cmd.as_str() {
        "build" => cmd_build::main(&rest),
        "run" => cmd_run::main(&rest),
        "test" => cmd_test::main(&rest),
        "clippy" | "lint" => cmd_clippy::main(&rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}
