//! `cargo xtask bench`: the `bench` suite of `pvtest` as dom0 on Xenolith and on Xen 4.17,
//! under the same QEMU machine, in icount mode and in normal mode, and the comparison tables
//! (see `tests_qemu::bench` and docs/performance.md).

use std::path::{Path, PathBuf};
use std::time::Instant;

use tests_qemu::bench::{self, BenchReport, BenchRun, ImageSize, Mode};
use tests_qemu::guests::{self, Hypervisor};
use tests_qemu::paths::{ELF_ENV, Profile};
use tests_qemu::{qemu, xen_ref};

use crate::args::Args;
use crate::util::Result;
use crate::{cmd_build, deps};

const HELP: &str = "\
Usage: cargo xtask bench [--iters N] [--no-icount] [--xen-only | --xenolith-only]

Benchmarks Xenolith against Xen 4.17: builds Xenolith (or uses $XENOLITH_ELF) and the PV test
guest pvtest, fetches Debian's xen-hypervisor-4.17-amd64 into target/xen-ref/ as the tests do,
and boots pvtest with `suites=bench` as dom0 on each hypervisor under the QEMU machine of the
differential tests (q35, 2 GiB, the same hypervisor command line), twice:

  icount   -smp 1 -cpu max,-x2apic -icount shift=0,sleep=off -rtc clock=vm: deterministic
           virtual time, one instruction per ns, so ns/op counts the instructions of an
           operation. One CPU, because icount runs all CPUs on one virtual clock (an idle CPU
           that wakes would count against CPU 0); no x2APIC, because QEMU aborts with `Bad
           icount read` on x2APIC timer MSR reads; the RTC on virtual time, so boot times
           repeat exactly
  normal   -smp 2 -cpu max, plain TCG as the tests run: ns/op is host time, noisy

It prints, per mode, a table of operation, Xenolith ns/op, Xen ns/op and their ratio
(Xenolith / Xen: below 1 is faster), the time from machine reset to dom0's bench suite, and
the two hypervisor images' sizes. Serial logs: target/tests-qemu/runs/bench-*.serial.log.
The benchmark is not part of `cargo xtask test` (only its one-iteration smoke run is).

Options:
  --iters N          Iterations of every operation (default: the guest's, a few seconds in all)
  --no-icount        Only the normal mode
  --xen-only         Only run Xen 4.17
  --xenolith-only    Only run Xenolith
  -h, --help";

/// What to run.
#[derive(Debug, PartialEq)]
struct Config {
    iters: Option<u32>,
    modes: Vec<Mode>,
    hypervisors: Vec<Hypervisor>,
}

fn parse(argv: &[String]) -> Result<Option<Config>> {
    let args = Args::parse(
        argv,
        &[
            "--no-icount",
            "--xen-only",
            "--xenolith-only",
            "-h",
            "--help",
        ],
        &["--iters"],
    )?;
    if args.flag("-h") || args.flag("--help") {
        return Ok(None);
    }
    if !args.rest.is_empty() {
        return Err("unexpected arguments after --".into());
    }
    let hypervisors = match (args.flag("--xen-only"), args.flag("--xenolith-only")) {
        (true, true) => return Err("--xen-only and --xenolith-only exclude each other".into()),
        (true, false) => vec![Hypervisor::Xen],
        (false, true) => vec![Hypervisor::Xenolith],
        (false, false) => vec![Hypervisor::Xenolith, Hypervisor::Xen],
    };
    let modes = if args.flag("--no-icount") {
        vec![Mode::Normal]
    } else {
        Mode::ALL.to_vec()
    };
    Ok(Some(Config {
        iters: args.number("--iters", 1, 10_000_000)?,
        modes,
        hypervisors,
    }))
}

/// The hypervisor ELFs, built or fetched.
fn hypervisor_elves(hvs: &[Hypervisor]) -> Result<Vec<(Hypervisor, PathBuf)>> {
    hvs.iter()
        .map(|&hv| {
            let elf = match hv {
                Hypervisor::Xenolith => match std::env::var_os(ELF_ENV).filter(|p| !p.is_empty()) {
                    Some(p) => {
                        eprintln!("xtask: Xenolith from {ELF_ENV}={}", p.to_string_lossy());
                        hv.elf().map_err(|e| e.to_string())?
                    }
                    None => cmd_build::build(Profile::Release)?,
                },
                Hypervisor::Xen => {
                    eprintln!(
                        "xtask: Xen 4.17 from {} (fetched with apt-get download on first use)",
                        xen_ref::cache_dir().display()
                    );
                    xen_ref::xen_elf().map_err(|e| e.to_string())?
                }
            };
            Ok((hv, elf))
        })
        .collect()
}

/// Runs one hypervisor in one mode; the run must be complete and clean.
fn run_one(
    (hv, hv_elf): &(Hypervisor, PathBuf),
    guest: &Path,
    mode: Mode,
    iters: Option<u32>,
) -> Result<BenchRun> {
    let hv = *hv;
    eprintln!("xtask: bench on {hv}, {}", mode.describe());
    let start = Instant::now();
    let run = bench::run_bench_on(hv, hv_elf, guest, mode, iters).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask:   {} ({:.1} s, log {})",
        run.run.end,
        start.elapsed().as_secs_f64(),
        run.run.serial_path.display()
    );
    match run.check() {
        Ok(()) => Ok(run),
        Err(e) => Err(format!(
            "the bench run on {hv} ({mode}) is not clean:\n{e}\n{}",
            run.report_text()
        )),
    }
}

/// The report of `hv` among `runs`.
fn report_of(runs: &[BenchRun], hv: Hypervisor) -> Option<&BenchReport> {
    runs.iter().find(|r| r.hypervisor == hv).map(|r| &r.report)
}

/// Prints the image sizes.
fn print_sizes(elves: &[(Hypervisor, PathBuf)]) -> Result<()> {
    let size = |hv: Hypervisor| -> Result<Option<ImageSize>> {
        elves
            .iter()
            .find(|(h, _)| *h == hv)
            .map(|(_, p): &(Hypervisor, PathBuf)| ImageSize::of(Path::new(p)))
            .transpose()
            .map_err(|e| e.to_string())
    };
    let xenolith = size(Hypervisor::Xenolith)?;
    let xen = size(Hypervisor::Xen)?;
    let gz = xen.and(bench::xen_gz_size());
    println!("\n## Image size\n");
    print!("{}", bench::size_table(xenolith.as_ref(), xen.as_ref(), gz));
    Ok(())
}

pub fn main(argv: &[String]) -> Result<()> {
    let Some(cfg) = parse(argv)? else {
        println!("{HELP}");
        return Ok(());
    };
    deps::ensure(false)?;
    let elves = hypervisor_elves(&cfg.hypervisors)?;
    let guest = guests::pvtest_elf().map_err(|e| e.to_string())?;

    let mut tables = Vec::new();
    for &mode in &cfg.modes {
        let runs: Vec<BenchRun> = elves
            .iter()
            .map(|hv| run_one(hv, &guest, mode, cfg.iters))
            .collect::<Result<_>>()?;
        tables.push((mode, runs));
    }

    let version = |prog: &str| {
        std::process::Command::new(prog)
            .arg("--version")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    };
    println!("\n# Xenolith vs Xen 4.17\n");
    println!("- {}", version(qemu::QEMU));
    if let Some(cpu) = bench::host_cpu_model() {
        println!("- host CPU: {cpu}");
    }
    if let Some(v) = xen_ref::package_version() {
        println!("- Xen: {} {v}", xen_ref::PACKAGE);
    }
    println!(
        "- guest: pvtest {}; ratio = Xenolith / Xen (below 1: Xenolith is faster)",
        bench::guest_args(cfg.iters)
    );
    for (mode, runs) in &tables {
        println!("\n## {}\n", mode.describe());
        let xl = report_of(runs, Hypervisor::Xenolith);
        let xen = report_of(runs, Hypervisor::Xen);
        print!("{}", bench::table(xl, xen));
        if *mode == Mode::Icount {
            println!("\nBoot (virtual time):\n");
            print!("{}", bench::boot_table(xl, xen));
        }
    }
    print_sizes(&elves)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_and_options() {
        let cfg = parse(&[]).unwrap().unwrap();
        assert_eq!(cfg.iters, None);
        assert_eq!(cfg.modes, [Mode::Icount, Mode::Normal]);
        assert_eq!(cfg.hypervisors, [Hypervisor::Xenolith, Hypervisor::Xen]);
        let cfg = parse(&argv(&["--iters", "5", "--no-icount", "--xen-only"]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.iters, Some(5));
        assert_eq!(cfg.modes, [Mode::Normal]);
        assert_eq!(cfg.hypervisors, [Hypervisor::Xen]);
        let cfg = parse(&argv(&["--xenolith-only"])).unwrap().unwrap();
        assert_eq!(cfg.hypervisors, [Hypervisor::Xenolith]);
        assert!(parse(&argv(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn bad_options() {
        assert!(parse(&argv(&["--xen-only", "--xenolith-only"])).is_err());
        assert!(parse(&argv(&["--iters", "0"])).is_err());
        assert!(parse(&argv(&["--", "-d", "int"])).is_err());
    }
}
