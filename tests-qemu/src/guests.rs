//! The in-tree test guests (`tests-qemu/guests`, crate `xenolith-testguests`: the PV guest
//! `pvtest` and the PVH guest `pvhtest`): building them, and booting one as dom0 on real Xen
//! 4.17 or on Xenolith with the same QEMU machine and hypervisor command line (or `pvhtest` on
//! Xenolith under Bochs, for VMX), collecting its verdicts (see [`crate::verdicts`]).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use std::{env, fmt, fs};

use crate::cmdline::Module;
use crate::error::{Error, Result, ResultExt};
use crate::serial::SerialLog;
use crate::verdicts::{Outcome, Transcript};
use crate::{DEFAULT_FAILURE_MARKERS, Qemu, RunResult, bochs, grub, lock, paths, xen_ref};

/// The target the guests are built for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";
/// Environment variable naming a prebuilt `pvtest` ELF; when unset the harness builds one.
pub const PVTEST_ENV: &str = "PVTEST_ELF";

/// Environment variable naming a prebuilt `pvhtest` ELF; when unset the harness builds one.
pub const PVHTEST_ENV: &str = "PVHTEST_ELF";
/// The cargo binaries.
const PVTEST_BIN: &str = "pvtest";
const PVHTEST_BIN: &str = "pvhtest";

/// The guest's last line before it powers off.
pub const GUEST_DONE: &str = "PVTEST DONE";
/// Lines the guest prints when it faults or panics (it then crashes itself).
pub const GUEST_FATAL: &[&str] = &["PVTEST FATAL", "PVTEST PANIC"];

/// The hypervisor command line for the `smp` suite: [`xen_ref::CMDLINE`] with a dom0 of two
/// vCPUs (QEMU gives the machine two CPUs either way).
pub const SMP_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=2 noreboot";

/// The hypervisor command line for `pvhtest`'s `smp` suite: [`xen_ref::PVH_CMDLINE`] with a
/// PVH dom0 of two vCPUs.
pub const PVH_SMP_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=2 \
     noreboot dom0=pvh dom0-iommu=none";

/// Time limit of one guest run (a reference run takes a few seconds).
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// The arguments of the guest build command (after `cargo`).
pub fn pvtest_build_args() -> Vec<&'static str> {
    build_args(PVTEST_BIN)
}

/// Where cargo puts the `pvtest` ELF.
pub fn pvtest_path() -> PathBuf {
    bin_path(PVTEST_BIN)
}

/// Builds `pvtest` with cargo (output to this process's stderr) and returns the ELF's path.
pub fn build_pvtest() -> Result<PathBuf> {
    build_bin(PVTEST_BIN)
}

/// The `pvtest` ELF: `$PVTEST_ELF` if set (relative to the workspace root), else a release
/// build (done at most once per process).
pub fn pvtest_elf() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf>> = OnceLock::new();
    env_or_build(PVTEST_ENV, &BUILT, build_pvtest)
}

/// The arguments of the `pvhtest` build command (after `cargo`).
pub fn pvhtest_build_args() -> Vec<&'static str> {
    build_args(PVHTEST_BIN)
}

/// Where cargo puts the `pvhtest` ELF.
pub fn pvhtest_path() -> PathBuf {
    bin_path(PVHTEST_BIN)
}

/// Builds `pvhtest` with cargo and returns the ELF's path.
pub fn build_pvhtest() -> Result<PathBuf> {
    build_bin(PVHTEST_BIN)
}

/// The `pvhtest` ELF: `$PVHTEST_ELF` if set (relative to the workspace root), else a release
/// build (done at most once per process).
pub fn pvhtest_elf() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf>> = OnceLock::new();
    env_or_build(PVHTEST_ENV, &BUILT, build_pvhtest)
}

/// `cargo build --release -p xenolith-testguests --bin <bin> --target <GUEST_TARGET>`.
fn build_args(bin: &'static str) -> Vec<&'static str> {
    vec![
        "build",
        "--release",
        "-p",
        "xenolith-testguests",
        "--bin",
        bin,
        "--target",
        GUEST_TARGET,
    ]
}

fn bin_path(bin: &str) -> PathBuf {
    paths::target_dir()
        .join(GUEST_TARGET)
        .join("release")
        .join(bin)
}

fn build_bin(bin: &'static str) -> Result<PathBuf> {
    let cargo = paths::cargo_program();
    let args = build_args(bin);
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
    let elf = bin_path(bin);
    if !elf.is_file() {
        return Err(Error::new(format!(
            "the build succeeded but {} does not exist",
            elf.display()
        )));
    }
    Ok(elf)
}

/// `$<var>` if set (relative to the workspace root), else `build()`'s result, computed once.
fn env_or_build(
    var: &str,
    built: &'static OnceLock<Result<PathBuf>>,
    build: fn() -> Result<PathBuf>,
) -> Result<PathBuf> {
    if let Some(p) = env::var_os(var).filter(|p| !p.is_empty()) {
        let p = paths::workspace_root().join(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!("{var}={} is not a file", p.display())))
        };
    }
    built.get_or_init(build).clone()
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

/// `pvhtest`'s last line before it powers off.
pub const PVH_DONE: &str = "PVHTEST DONE";
/// Lines `pvhtest` prints when it faults or panics (it then crashes itself).
pub const PVH_FATAL: &[&str] = &["PVHTEST FATAL", "PVHTEST PANIC"];

/// `pvhtest`'s verdicts in a serial log. Its protocol is pvtest's with `PVHTEST` for
/// `PVTEST` (`DONE`, `FATAL`, `PANIC`, `unknown suite`), read here as pvtest's.
pub fn pvh_transcript(serial: &str) -> Transcript {
    Transcript::parse(&serial.replace("PVHTEST ", "PVTEST "))
}

/// The QEMU run of `pvhtest` as a PVH dom0 on `hv`: [`pvtest_qemu`]'s machine (`-cpu max`:
/// SVM with NPT, which Xen's PVH dom0 needs for HAP) with [`xen_ref::PVH_CMDLINE`].
pub fn pvhtest_qemu(hv: Hypervisor, hv_elf: &Path, guest: &Path, guest_args: &str) -> Qemu {
    pvhtest_qemu_with(hv, hv_elf, guest, guest_args, xen_ref::PVH_CMDLINE)
}

/// [`pvhtest_qemu`] with the hypervisor command line `hv_cmdline` (e.g. [`PVH_SMP_CMDLINE`]).
pub fn pvhtest_qemu_with(
    hv: Hypervisor,
    hv_elf: &Path,
    guest: &Path,
    guest_args: &str,
    hv_cmdline: &str,
) -> Qemu {
    let mut q = pvtest_qemu_with(hv, hv_elf, guest, guest_args, hv_cmdline);
    for m in PVH_FATAL {
        q = q.failure_marker(m);
    }
    if hv == Hypervisor::Xenolith {
        q = q.success_marker(PVH_DONE);
    }
    q
}

/// Builds `pvhtest` (unless `PVHTEST_ELF` is set) and runs it as a PVH dom0 on `hv` with
/// `suites=<suites>`; the run is named `pvhtest-<suites>-<hv>`.
pub fn run_pvhtest(hv: Hypervisor, suites: &str) -> Result<GuestRun> {
    run_pvhtest_with(hv, suites, xen_ref::PVH_CMDLINE)
}

/// [`run_pvhtest`] with the hypervisor command line `hv_cmdline` (e.g. [`PVH_SMP_CMDLINE`]);
/// the run is named `pvhtest-<suites>-<hv>`, plus `-<n>vcpus` when `hv_cmdline` asks for
/// `dom0_max_vcpus=<n>` other than [`xen_ref::PVH_CMDLINE`]'s, or `-custom` for another
/// difference.
pub fn run_pvhtest_with(hv: Hypervisor, suites: &str, hv_cmdline: &str) -> Result<GuestRun> {
    let guest = pvhtest_elf()?;
    let hv_elf = hv.elf()?;
    let tag = if hv_cmdline == xen_ref::PVH_CMDLINE {
        String::new()
    } else {
        cmdline_tag(hv_cmdline)
    };
    let name = format!("pvhtest-{}-{}{tag}", suites.replace(',', "+"), hv.name());
    let run = pvhtest_qemu_with(hv, &hv_elf, &guest, &format!("suites={suites}"), hv_cmdline)
        .name(&name)
        .run()?;
    let transcript = pvh_transcript(run.serial.text());
    Ok(GuestRun {
        hypervisor: hv,
        run,
        transcript,
    })
}

/// The Xenolith command line for `pvhtest` under Bochs: [`xen_ref::PVH_CMDLINE`] with a dom0
/// that fits the smaller Bochs machine.
pub const PVH_BOCHS_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=64M dom0_max_vcpus=1 noreboot dom0=pvh dom0-iommu=none";
/// RAM of the Bochs machine, MiB.
pub const PVH_BOCHS_MEM_MIB: u32 = 256;
/// Time limit of a Bochs run of `pvhtest`.
pub const PVH_BOCHS_TIMEOUT: Duration = Duration::from_secs(300);

/// A finished Bochs run of `pvhtest` and its parsed verdicts.
#[derive(Debug)]
pub struct BochsGuestRun {
    /// The Bochs run.
    pub run: bochs::BochsResult,
    /// The verdict protocol lines of its serial log.
    pub transcript: Transcript,
}

impl BochsGuestRun {
    /// The Bochs report followed by the parsed transcript, for assertion messages.
    pub fn report(&self) -> String {
        format!(
            "{}\n--- Xenolith (Bochs, VMX) transcript ---\n{}",
            self.run.report(),
            self.transcript
        )
    }
}

/// Runs `pvhtest suites=<suites>` as a PVH dom0 on Xenolith under Bochs (Intel VMX with EPT),
/// booted from a GRUB ISO with [`PVH_BOCHS_CMDLINE`]; ends on `PVHTEST DONE`, a fatal line or
/// [`PVH_BOCHS_TIMEOUT`].
pub fn run_pvhtest_bochs(suites: &str) -> Result<BochsGuestRun> {
    let guest = pvhtest_elf()?;
    let hv_elf = paths::hypervisor_elf()?;
    let name = format!("pvhtest-{}", suites.replace(',', "+"));
    let module = Module::new(guest, format!("suites={suites}"));
    let run = bochs_run_with_modules(&name, &hv_elf, PVH_BOCHS_CMDLINE, &[module])?;
    let transcript = pvh_transcript(run.serial.text());
    Ok(BochsGuestRun { run, transcript })
}

/// [`bochs::run`] with boot modules (which it does not take): boots `elf` with `args` and
/// `modules` from a GRUB ISO until `PVHTEST DONE` or a failure line shows on COM1.
fn bochs_run_with_modules(
    name: &str,
    elf: &Path,
    args: &str,
    modules: &[Module],
) -> Result<bochs::BochsResult> {
    let failures: Vec<&str> = DEFAULT_FAILURE_MARKERS
        .iter()
        .chain(PVH_FATAL)
        .chain([&xen_ref::DOM0_CRASHED])
        .copied()
        .collect();
    let until = BochsUntil {
        success: PVH_DONE,
        failures: &failures,
        timeout: PVH_BOCHS_TIMEOUT,
    };
    run_bochs_with_modules(name, elf, args, modules, &until)
}

/// When a Bochs run ends (see [`run_bochs_with_modules`]).
#[derive(Debug, Clone, Copy)]
pub struct BochsUntil<'a> {
    /// The serial log has this: success.
    pub success: &'a str,
    /// The serial log has one of these (checked first): failure.
    pub failures: &'a [&'a str],
    /// Time limit (failure).
    pub timeout: Duration,
}

/// [`bochs::run`] with boot modules (which it does not take): boots `elf` with `args` and
/// `modules` from a GRUB ISO on a [`PVH_BOCHS_MEM_MIB`] machine until COM1 shows `until`'s
/// success or a failure marker, Bochs exits, or the time limit passes. The run files are
/// `target/tests-qemu/runs/bochs-<name>.*`.
pub fn run_bochs_with_modules(
    name: &str,
    elf: &Path,
    args: &str,
    modules: &[Module],
    until: &BochsUntil<'_>,
) -> Result<bochs::BochsResult> {
    bochs::available()?;
    let iso = grub::build_iso(&format!("bochs-{name}"), elf, args, modules)?;
    let dir = paths::scratch_dir("runs")?;
    let serial_path = dir.join(format!("bochs-{name}.serial"));
    let log_path = dir.join(format!("bochs-{name}.log"));
    let rc_path = dir.join(format!("bochs-{name}.bochsrc"));
    let dbg_path = dir.join(format!("bochs-{name}.rc"));
    let _ = fs::remove_file(&serial_path);
    let _ = fs::remove_file(&log_path);
    let rc = bochs::bochsrc(&iso, &serial_path, &log_path, PVH_BOCHS_MEM_MIB);
    fs::write(&rc_path, rc).ctx(|| format!("writing {}", rc_path.display()))?;
    // Bochs' debugger stops before the first instruction: continue.
    fs::write(&dbg_path, "c\n").ctx(|| format!("writing {}", dbg_path.display()))?;

    let _lock = lock::acquire()?;
    let start = Instant::now();
    let mut child = Command::new(bochs::BOCHS)
        .args(["-q", "-f"])
        .arg(&rc_path)
        .arg("-rc")
        .arg(&dbg_path)
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(&dir)
        .spawn()
        .ctx(|| "starting bochs")?;
    let (success, end) = loop {
        std::thread::sleep(Duration::from_millis(100));
        let text = SerialLog::new(&fs::read(&serial_path).unwrap_or_default());
        if let Some(m) = until.failures.iter().find(|m| text.contains(m)) {
            break (false, format!("failure marker {m:?}"));
        }
        if text.contains(until.success) {
            break (true, format!("success marker {:?}", until.success));
        }
        if let Ok(Some(status)) = child.try_wait() {
            break (false, format!("bochs exited by itself ({status})"));
        }
        if start.elapsed() > until.timeout {
            break (false, format!("timeout ({:?})", until.timeout));
        }
    };
    let elapsed = start.elapsed();
    // Let the rest of the line reach the file, then SIGKILL (Bochs ignores SIGTERM).
    std::thread::sleep(Duration::from_millis(500));
    let _ = child.kill();
    let _ = child.wait();
    let serial = SerialLog::new(&fs::read(&serial_path).unwrap_or_default());
    Ok(bochs::BochsResult {
        serial,
        success,
        end,
        elapsed,
        serial_path,
        log_path,
    })
}

/// What `pvtest` dom0 runs beside a PVH domU: wait for one domU to stop (`watch`), then
/// power the machine off.
pub const PVH_DOMU_DOM0_ARGS: &str = "suites=watch domus=1";
/// The name of the `pvhtest` domU (domain 1).
pub const PVH_DOMU_NAME: &str = "pvhtest";
/// The hypervisor command line beside a PVH domU on QEMU (`pvtest` dom0, PV).
pub const PVH_DOMU_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot";
/// [`PVH_DOMU_CMDLINE`] for the smaller Bochs machine.
pub const PVH_DOMU_BOCHS_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=64M dom0_max_vcpus=1 noreboot";
/// Memory of the `pvhtest` domU, MiB.
pub const PVH_DOMU_MEM_MIB: u32 = 32;
/// Time limit of a Bochs run with the `pvhtest` domU (a clean run of five suites takes about
/// 20 s).
pub const PVH_DOMU_BOCHS_TIMEOUT: Duration = Duration::from_secs(150);

/// The boot-module command line that makes `pvhtest` a PVH domU ([`PVH_DOMU_NAME`]) running
/// `suites=<suites>`.
pub fn pvh_domu_module_args(suites: &str) -> String {
    format!("domU type=pvh name={PVH_DOMU_NAME} memory={PVH_DOMU_MEM_MIB} -- suites={suites}")
}

/// The verdicts `pvhtest` printed as domU `dom` (see [`pvh_transcript`]): its port-0xe9 lines,
/// which the hypervisor prints as `(XEN) (d<dom>) <line>`, and any `(d<dom>) <line>` (its
/// console ring).
pub fn pvh_domu_transcript(serial: &str, dom: u16) -> Transcript {
    let text: String = serial
        .lines()
        .map(|l| {
            let l = l.strip_prefix("(XEN) ").unwrap_or(l);
            format!("{}\n", l.replace("PVHTEST ", "PVTEST "))
        })
        .collect();
    Transcript::of_domain(&text, dom)
}

/// Failure markers of a run with `pvtest` dom0 and a `pvhtest` domU: a hypervisor fault, dom0
/// crashing, either guest reporting a fault. (The domU crashing is not one: the `triple`
/// suite does it on purpose; the tests check the domU's end themselves.)
pub fn pvh_domu_failures() -> Vec<&'static str> {
    DEFAULT_FAILURE_MARKERS
        .iter()
        .chain(PVH_FATAL)
        .chain(GUEST_FATAL)
        .chain([&xen_ref::DOM0_CRASHED])
        .copied()
        .collect()
}

/// The QEMU run (`-cpu max`: SVM with NPT, 2 CPUs) of `pvtest` as a PV dom0 waiting for
/// `pvhtest` as PVH domU 1 with `suites=<suites>`, on Xenolith (Xen 4.17 cannot start domUs
/// at boot); it ends when dom0 powers the machine off (`Hardware Dom0 halted`).
pub fn pvh_domu_qemu(hv_elf: &Path, pvtest: &Path, pvhtest: &Path, suites: &str) -> Qemu {
    let mut q = Qemu::new()
        .kernel(hv_elf)
        .append(PVH_DOMU_CMDLINE)
        .module(pvtest, PVH_DOMU_DOM0_ARGS)
        .module(pvhtest, &pvh_domu_module_args(suites))
        .machine("q35")
        .cpu("max")
        .mem_mib(2048)
        .smp(2)
        .timeout(RUN_TIMEOUT)
        .success_marker(xen_ref::DOM0_HALTED);
    for m in pvh_domu_failures() {
        q = q.failure_marker(m);
    }
    q
}

/// Runs [`pvh_domu_qemu`] (building the guests unless `PVTEST_ELF`/`PVHTEST_ELF` are set);
/// the run is named `pvh-domu-<suites>`.
pub fn run_pvh_domu(suites: &str) -> Result<RunResult> {
    let (pvtest, pvhtest) = (pvtest_elf()?, pvhtest_elf()?);
    let hv_elf = paths::hypervisor_elf()?;
    pvh_domu_qemu(&hv_elf, &pvtest, &pvhtest, suites)
        .name(&format!("pvh-domu-{}", suites.replace(',', "+")))
        .run()
}

/// The same machine as [`run_pvh_domu`] on Xenolith under Bochs (Intel VMX with EPT, one
/// CPU, [`PVH_DOMU_BOCHS_CMDLINE`]); the run is named `pvh-domu-<suites>` and ends when dom0
/// powers the machine off, on a failure marker, or after [`PVH_DOMU_BOCHS_TIMEOUT`].
pub fn run_pvh_domu_bochs(suites: &str) -> Result<bochs::BochsResult> {
    let (pvtest, pvhtest) = (pvtest_elf()?, pvhtest_elf()?);
    let hv_elf = paths::hypervisor_elf()?;
    let modules = [
        Module::new(pvtest, PVH_DOMU_DOM0_ARGS),
        Module::new(pvhtest, pvh_domu_module_args(suites)),
    ];
    let failures = pvh_domu_failures();
    let until = BochsUntil {
        success: xen_ref::DOM0_HALTED,
        failures: &failures,
        timeout: PVH_DOMU_BOCHS_TIMEOUT,
    };
    let name = format!("pvh-domu-{}", suites.replace(',', "+"));
    run_bochs_with_modules(&name, &hv_elf, PVH_DOMU_BOCHS_CMDLINE, &modules, &until)
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
    fn pvh_runs_differ_from_pv_runs_only_in_dom0_mode() {
        assert_eq!(
            xen_ref::PVH_CMDLINE,
            format!("{} {}", xen_ref::CMDLINE, xen_ref::PVH_DOM0_ARGS)
        );
        assert_eq!(
            PVH_BOCHS_CMDLINE.replace("dom0_mem=64M", "dom0_mem=512M"),
            xen_ref::PVH_CMDLINE
        );
        let pv = strs(&pvtest_qemu(
            Hypervisor::Xen,
            Path::new("/x/xen.elf"),
            Path::new("/g/pvhtest"),
            "suites=all",
        ));
        let pvh = strs(&pvhtest_qemu(
            Hypervisor::Xen,
            Path::new("/x/xen.elf"),
            Path::new("/g/pvhtest"),
            "suites=all",
        ));
        assert_eq!(pv.replace(xen_ref::CMDLINE, xen_ref::PVH_CMDLINE), pvh);
    }

    #[test]
    fn pvh_transcript_reads_the_pvhtest_prefix() {
        let t = pvh_transcript(
            "PVHTEST start xenolith-pvhtest\nVERDICT a.b PASS x=1\nSUMMARY a passed=1 failed=0 \
             skipped=0\nPVHTEST DONE suites=1 passed=1 failed=0 skipped=0\n",
        );
        assert!(t.expect_all_pass(&["a"]).is_ok(), "{t}");
        let t = pvh_transcript("PVHTEST FATAL exception vector=14\n");
        assert!(t.problems.iter().any(|p| p.contains("FATAL")), "{t}");
    }

    #[test]
    fn pvh_domu_transcript_reads_the_domus_lines_only() {
        let t = pvh_domu_transcript(
            "(XEN) (d1) PVHTEST start xenolith-pvhtest\n(XEN) (d1) VERDICT a.b PASS x=1\n\
             (d1) VERDICT a.c PASS y=2\nVERDICT watch.w FAIL dom0\n(XEN) (d2) VERDICT a.d FAIL\n\
             (XEN) (d1) SUMMARY a passed=2 failed=0 skipped=0\n\
             (XEN) (d1) PVHTEST DONE suites=1 passed=2 failed=0 skipped=0\n",
            1,
        );
        assert!(t.expect_all_pass(&["a"]).is_ok(), "{t}");
        assert_eq!(t.verdicts.len(), 2, "{t}");
        assert_eq!(
            pvh_domu_module_args("start,domu"),
            "domU type=pvh name=pvhtest memory=32 -- suites=start,domu"
        );
    }

    #[test]
    fn build_command_targets_bare_metal() {
        assert_eq!(
            pvtest_build_args().join(" "),
            "build --release -p xenolith-testguests --bin pvtest --target x86_64-unknown-none"
        );
        assert!(pvtest_path().ends_with("x86_64-unknown-none/release/pvtest"));
        assert_eq!(
            pvhtest_build_args().join(" "),
            "build --release -p xenolith-testguests --bin pvhtest --target x86_64-unknown-none"
        );
        assert!(pvhtest_path().ends_with("x86_64-unknown-none/release/pvhtest"));
    }
}
