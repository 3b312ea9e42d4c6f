//! The in-tree PV test guests (`tests-qemu/guests`, crate `xenolith-testguests`): building
//! them, and booting one as dom0 on real Xen 4.17 or on Xenolith with the same QEMU machine and
//! hypervisor command line, collecting its verdicts (see [`crate::verdicts`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use std::{env, fmt};

use crate::error::{Error, Result, ResultExt};
use crate::verdicts::{Outcome, Transcript};
use crate::{Qemu, RunResult, paths, xen_ref};

/// The target the guests are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";
/// Environment variable naming a prebuilt `pvtest` ELF; when unset the harness builds one.
pub const PVTEST_ENV: &str = "PVTEST_ELF";

/// The guest's last line before it powers off.
pub const GUEST_DONE: &str = "PVTEST DONE";
/// Lines the guest prints when it faults or panics (it then crashes itself).
pub const GUEST_FATAL: &[&str] = &["PVTEST FATAL", "PVTEST PANIC"];

/// The hypervisor command line for the `smp` suite: [`xen_ref::CMDLINE`] with a dom0 of two
/// vCPUs (QEMU gives the machine two CPUs either way).
pub const SMP_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=2 noreboot";

/// Time limit of one guest run (a reference run takes a few seconds).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The arguments of the guest build command (after `cargo`).
pub fn pvtest_build_args() -> Vec<&'static str> {
    vec![
        "build",
        "--release",
        "-p",
        "xenolith-testguests",
        "--bin",
        "pvtest",
        "--target",
        GUEST_TARGET,
    ]
}

/// Where cargo puts the `pvtest` ELF.
pub fn pvtest_path() -> PathBuf {
    paths::target_dir()
        .join(GUEST_TARGET)
        .join("release")
        .join("pvtest")
}

/// Builds `pvtest` with cargo (output to this process's stderr) and returns the ELF's path.
pub fn build_pvtest() -> Result<PathBuf> {
    let cargo = paths::cargo_program();
    let args = pvtest_build_args();
    let status = Command::new(&cargo)
        .args(&args)
        .current_dir(paths::workspace_root())
        .status()
        .ctx(|| format!("running {cargo}"))?;
    if !status.success() {
        return Err(Error::new(format!(
            "`cargo {}` failed ({status})",
            args.join(" ")
        )));
    }
    let elf = pvtest_path();
    if !elf.is_file() {
        return Err(Error::new(format!(
            "the build succeeded but {} does not exist",
            elf.display()
        )));
    }
    Ok(elf)
}

/// The `pvtest` ELF: `$PVTEST_ELF` if set (relative to the workspace root), else a release
/// build (done at most once per process).
pub fn pvtest_elf() -> Result<PathBuf> {
    if let Some(p) = env::var_os(PVTEST_ENV).filter(|p| !p.is_empty()) {
        let p = paths::workspace_root().join(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!(
                "{PVTEST_ENV}={} is not a file",
                p.display()
            )))
        };
    }
    static BUILT: OnceLock<Result<PathBuf>> = OnceLock::new();
    BUILT.get_or_init(build_pvtest).clone()
}

/// The hypervisor a guest runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    /// Debian's Xen 4.17 (the reference; see [`xen_ref`]).
    Xen,
    /// Xenolith ([`paths::hypervisor_elf`]).
    Xenolith,
}

impl Hypervisor {
    /// The hypervisor ELF to boot.
    pub fn elf(self) -> Result<PathBuf> {
        match self {
            Hypervisor::Xen => xen_ref::xen_elf(),
            Hypervisor::Xenolith => paths::hypervisor_elf(),
        }
    }

    /// A short lowercase name (for run names).
    pub fn name(self) -> &'static str {
        match self {
            Hypervisor::Xen => "xen",
            Hypervisor::Xenolith => "xenolith",
        }
    }
}

impl fmt::Display for Hypervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Hypervisor::Xen => f.write_str("Xen 4.17"),
            Hypervisor::Xenolith => f.write_str("Xenolith"),
        }
    }
}

/// The QEMU run of `guest` (with command line `guest_args`) as dom0 on `hv` (booted from
/// `hv_elf`): `-machine q35 -cpu max -m 2048 -smp 2`, [`xen_ref::CMDLINE`].
///
/// Xen does not leave QEMU when dom0 powers off; it prints `Hardware Dom0 halted` and halts, so
/// that line ends a Xen run. A Xenolith run also ends on the guest's `PVTEST DONE` (or when
/// QEMU exits, e.g. through isa-debug-exit), after a second of quiet to catch what follows. Dom0
/// crashing or the guest reporting a fault ends either run as failed.
pub fn pvtest_qemu(hv: Hypervisor, hv_elf: &Path, guest: &Path, guest_args: &str) -> Qemu {
    pvtest_qemu_with(hv, hv_elf, guest, guest_args, xen_ref::CMDLINE)
}

/// [`pvtest_qemu`] with the hypervisor command line `hv_cmdline` instead of
/// [`xen_ref::CMDLINE`] (e.g. [`SMP_CMDLINE`]).
pub fn pvtest_qemu_with(
    hv: Hypervisor,
    hv_elf: &Path,
    guest: &Path,
    guest_args: &str,
    hv_cmdline: &str,
) -> Qemu {
    let mut q = Qemu::new()
        .kernel(hv_elf)
        .append(hv_cmdline)
        .module(guest, guest_args)
        .machine("q35")
        .cpu("max")
        .mem_mib(2048)
        .smp(2)
        .timeout(RUN_TIMEOUT)
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .failure_marker(xen_ref::DOM0_SHUTDOWN);
    for m in GUEST_FATAL {
        q = q.failure_marker(m);
    }
    if hv == Hypervisor::Xenolith {
        q = q.success_marker(GUEST_DONE).settle(Duration::from_secs(1));
    }
    q
}

/// A finished guest run and its parsed verdicts.
#[derive(Debug, Clone)]
pub struct GuestRun {
    /// Which hypervisor ran it.
    pub hypervisor: Hypervisor,
    /// The QEMU run.
    pub run: RunResult,
    /// The verdict protocol lines of its serial log.
    pub transcript: Transcript,
}

impl GuestRun {
    /// The QEMU report followed by the parsed transcript, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- {} transcript ---\n{}",
            self.run.report(),
            self.hypervisor,
            self.transcript
        )
    }

    /// Requires `key`'s verdict to be PASS with exactly `details`.
    #[track_caller]
    pub fn assert_verdict(&self, key: &str, details: &str) {
        let v = self
            .transcript
            .get(key)
            .unwrap_or_else(|| panic!("no verdict {key}\n{}", self.report()));
        assert_eq!(
            (v.outcome, v.details.as_str()),
            (Outcome::Pass, details),
            "{key}\n{}",
            self.report()
        );
    }
}

/// Builds `pvtest` (unless `PVTEST_ELF` is set) and runs it on `hv` with `suites=<suites>`.
pub fn run_pvtest(hv: Hypervisor, suites: &str) -> Result<GuestRun> {
    run_pvtest_with(hv, suites, xen_ref::CMDLINE)
}

/// [`run_pvtest`] with the hypervisor command line `hv_cmdline` (e.g. [`SMP_CMDLINE`] for a
/// dom0 with two vCPUs) instead of [`xen_ref::CMDLINE`]. The run (and its serial log) is named
/// `pvtest-<suites>-<hv>`, plus `-<n>vcpus` when `hv_cmdline` asks for `dom0_max_vcpus=<n>`
/// other than the default's, or `-custom` for another difference.
pub fn run_pvtest_with(hv: Hypervisor, suites: &str, hv_cmdline: &str) -> Result<GuestRun> {
    run_pvtest_on(hv, suites, hv_cmdline, 2)
}

/// [`run_pvtest_with`] on a machine with `cpus` CPUs (the run name gets `-<cpus>cpu` unless
/// it is the usual 2).
pub fn run_pvtest_on(
    hv: Hypervisor,
    suites: &str,
    hv_cmdline: &str,
    cpus: u32,
) -> Result<GuestRun> {
    let guest = pvtest_elf()?;
    let hv_elf = hv.elf()?;
    let name = format!(
        "pvtest-{}-{}{}{}",
        suites.replace(',', "+"),
        hv.name(),
        cmdline_tag(hv_cmdline),
        if cpus == 2 {
            String::new()
        } else {
            format!("-{cpus}cpu")
        }
    );
    let run = pvtest_qemu_with(hv, &hv_elf, &guest, &format!("suites={suites}"), hv_cmdline)
        .smp(cpus)
        .name(&name)
        .run()?;
    let transcript = Transcript::parse(run.serial.text());
    Ok(GuestRun {
        hypervisor: hv,
        run,
        transcript,
    })
}

/// The run-name suffix for hypervisor command line `hv_cmdline` (see [`run_pvtest_with`]).
fn cmdline_tag(hv_cmdline: &str) -> String {
    if hv_cmdline == xen_ref::CMDLINE {
        return String::new();
    }
    let vcpus = |c: &str| {
        c.split_whitespace()
            .rev()
            .find_map(|w| w.strip_prefix("dom0_max_vcpus="))
            .map(str::to_owned)
    };
    match vcpus(hv_cmdline) {
        Some(n) if Some(&n) != vcpus(xen_ref::CMDLINE).as_ref() => format!("-{n}vcpus"),
        _ => "-custom".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(q: &Qemu) -> String {
        q.capture_args(Path::new("/s.log"))
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn reference_and_candidate_share_the_machine() {
        let xen = strs(&pvtest_qemu(
            Hypervisor::Xen,
            Path::new("/x/xen.elf"),
            Path::new("/g/pvtest"),
            "suites=basic",
        ));
        let xl = strs(&pvtest_qemu(
            Hypervisor::Xenolith,
            Path::new("/x/xenolith"),
            Path::new("/g/pvtest"),
            "suites=basic",
        ));
        for a in [&xen, &xl] {
            assert!(
                a.starts_with("-machine q35 -cpu max -accel tcg -smp 2 -m 2048"),
                "{a}"
            );
            assert!(a.contains(&format!("-append {}", xen_ref::CMDLINE)), "{a}");
            assert!(a.contains("-initrd /g/pvtest suites=basic"), "{a}");
        }
        assert!(xen.contains("-kernel /x/xen.elf"));
        assert_eq!(xen.replace("/x/xen.elf", "/x/xenolith"), xl);
    }

    #[test]
    fn smp_cmdline_differs_only_in_vcpus() {
        assert_eq!(
            SMP_CMDLINE.replace("dom0_max_vcpus=2", "dom0_max_vcpus=1"),
            xen_ref::CMDLINE
        );
        let a = strs(&pvtest_qemu_with(
            Hypervisor::Xen,
            Path::new("/x/xen.elf"),
            Path::new("/g/pvtest"),
            "suites=smp",
            SMP_CMDLINE,
        ));
        assert!(a.contains(&format!("-append {SMP_CMDLINE}")), "{a}");
        assert!(a.contains("-smp 2"), "{a}");
        assert_eq!(cmdline_tag(xen_ref::CMDLINE), "");
        assert_eq!(cmdline_tag(SMP_CMDLINE), "-2vcpus");
        assert_eq!(cmdline_tag("console=com1 dom0_max_vcpus=1"), "-custom");
    }

    #[test]
    fn build_command_targets_bare_metal() {
        assert_eq!(
            pvtest_build_args().join(" "),
            "build --release -p xenolith-testguests --bin pvtest --target x86_64-unknown-none"
        );
        assert!(pvtest_path().ends_with("x86_64-unknown-none/release/pvtest"));
    }
}
