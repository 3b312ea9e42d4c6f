//! `cargo xtask run`: boot Xenolith in QEMU with the serial console on this terminal.

use std::path::PathBuf;
use std::process::{ExitCode, ExitStatus};

use tests_qemu::Qemu;
use tests_qemu::cmdline::Module;
use tests_qemu::paths::Profile;
use tests_qemu::{grub, guests, initramfs, linux, xen_ref};

use crate::args::Args;
use crate::util::{self, Result};
use crate::{cmd_build, deps};

/// The hypervisor command line when `--append` is not given.
pub const DEFAULT_APPEND: &str =
    "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 loglvl=all";

const HELP: &str = "\
Usage: cargo xtask run [OPTIONS] [-- QEMU_ARGS...]

Builds the hypervisor and boots it in QEMU (TCG, q35, -cpu max) with the serial console and the
QEMU monitor on this terminal (-nographic). Quit with Ctrl-A X; Ctrl-A C toggles the monitor.
Installs missing host tools first (QEMU >= 10, GRUB ISO tools) via
scripts/install-host-deps.sh, which needs root.

By default dom0 is the built-in demo: the PV test guest `pvtest` (built with cargo) runs all
its suites (`suites=all`), prints VERDICT and SUMMARY lines, and powers off; Xenolith then
powers the machine off, QEMU exits, and xtask exits with QEMU's exit status (0 when the guest
powered off cleanly).

Options:
  --smp N              Number of CPUs (default 2)
  --mem MIB            RAM in MiB (default 2048)
  --append \"ARGS\"      Hypervisor command line (default:
                       \"console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 loglvl=all\")
  --dom0 demo|linux|PATH
                       The dom0 kernel (the first module):
                         demo   the built-in demo dom0 above (the default)
                         linux  Debian's stock kernel (linux-image-amd64), downloaded with
                                apt-get into target/debian/ on first use, with
                                \"console=hvc0 earlyprintk=xen\", and as the second module a
                                busybox initramfs (busybox-static, built into
                                target/tests-qemu/initramfs/): Linux boots and its /init runs
                                a busybox shell on hvc0, the serial console (try
                                `cat /sys/hypervisor/type`, `dmesg`); `poweroff -f` ends the
                                run and QEMU exits (status 0)
                         PATH   a kernel image of your own (no command line)
  --scenario pingpong|linux-domu|linux-pvh|pvh
                       A prepared set of guests (instead of --dom0):
                         pingpong    pvtest as dom0 and as a boot-time domU (d1) exchanging
                                     100 events over an interdomain channel and data
                                     through a granted page; d1 prints as (d1) lines
                         linux-domu  pvtest as dom0 waiting for d1, and Debian's cloud
                                     kernel (linux-image-cloud-amd64) as d1 with the busybox
                                     shell: type CTRL-a three times to reach its shell
                                     (Ctrl-A is also QEMU's escape here: press Ctrl-A a to
                                     send one), then `poweroff -f`
                         linux-pvh   the same with the cloud kernel as a PVH domU
                                     (type=pvh: SVM with nested paging, its PHYS32 entry)
                         pvh         the PVH test guest `pvhtest` as a PVH dom0 (SVM with
                                     nested paging: QEMU's -cpu max) running all its suites
                                     (suites=all); the scenario adds
                                     \"dom0=pvh dom0-iommu=none\" to the hypervisor command
                                     line; it prints VERDICT and SUMMARY lines, then
                                     `PVHTEST DONE`, and powers off (QEMU exits, status 0)
  --module \"PATH [ARGS]\"
                       Add a multiboot module with its command line (repeatable; in order,
                       after dom0's modules)
  --grub               Boot through GRUB (multiboot2, from a rescue ISO) instead of QEMU's
                       -kernel (multiboot1)
  --debug              Use a dev-profile build
  -h, --help
  -- QEMU_ARGS...      Extra arguments passed to qemu-system-x86_64 (e.g. -- -d int)";

/// The demo dom0's command line: every `pvtest` suite.
pub const DEMO_ARGS: &str = "suites=all";

/// The PVH scenario's dom0 command line: every `pvhtest` suite.
pub const PVH_ARGS: &str = "suites=all";

/// What boots as dom0 (the first module).
#[derive(Debug, PartialEq)]
enum Dom0 {
    /// The built-in demo: `pvtest` with [`DEMO_ARGS`].
    Demo,
    /// Debian's `linux-image-amd64` kernel (see `tests_qemu::linux`) with the busybox
    /// initramfs (see `tests_qemu::initramfs`).
    Linux,
    /// A kernel image of the user's, without a command line.
    Path(PathBuf),
    /// `--scenario pingpong`: pvtest as dom0 and as a domU, talking to each other.
    PingPong,
    /// `--scenario linux-domu`: pvtest as dom0, Debian's cloud kernel as a domU.
    LinuxDomu,
    /// `--scenario linux-pvh`: the same with the cloud kernel as a PVH domU.
    LinuxPvhDomu,
    /// `--scenario pvh`: pvhtest as a PVH dom0 with [`PVH_ARGS`].
    Pvh,
}

impl Dom0 {
    fn parse(arg: Option<&str>) -> Result<Dom0> {
        Ok(match arg {
            None | Some("demo") => Dom0::Demo,
            Some("linux") => Dom0::Linux,
            Some(path) => {
                let path = PathBuf::from(path);
                if !path.is_file() {
                    return Err(format!(
                        "--dom0 {}: not a file (nor `demo` or `linux`)",
                        path.display()
                    ));
                }
                Dom0::Path(path)
            }
        })
    }

    /// What the choice adds to the hypervisor command line: a PVH dom0 needs
    /// [`xen_ref::PVH_DOM0_ARGS`], as on Xen 4.17.
    fn hypervisor_args(&self) -> Option<&'static str> {
        match self {
            Dom0::Pvh => Some(xen_ref::PVH_DOM0_ARGS),
            _ => None,
        }
    }

    /// Builds or fetches the kernel (and, for Linux, its initramfs); returns them as the
    /// first modules.
    fn modules(&self) -> Result<Vec<Module>> {
        Ok(match self {
            Dom0::Demo => {
                eprintln!("xtask: dom0 is the demo: pvtest {DEMO_ARGS}");
                let elf = guests::build_pvtest().map_err(|e| e.to_string())?;
                vec![Module::new(elf, DEMO_ARGS)]
            }
            Dom0::Linux => {
                eprintln!(
                    "xtask: dom0 is Debian's {} with a busybox initramfs (the kernel and \
                     busybox-static are downloaded into target/debian/ on first use): a shell \
                     on hvc0 once it prints {:?}; `poweroff -f` ends the run",
                    linux::METAPACKAGE,
                    initramfs::SHELL_MARKER
                );
                let kernel = linux::kernel().map_err(|e| e.to_string())?;
                let initrd = initramfs::busybox_shell_initramfs().map_err(|e| e.to_string())?;
                vec![
                    Module::new(kernel, linux::DOM0_CMDLINE),
                    Module::new(initrd, ""),
                ]
            }
            Dom0::Path(path) => vec![Module::new(path, "")],
            Dom0::PingPong => {
                let elf = guests::build_pvtest().map_err(|e| e.to_string())?;
                eprintln!(
                    "xtask: dom0 and d1 are pvtest: they ping-pong over an interdomain event \
                     channel and share a granted page"
                );
                vec![
                    Module::new(elf.clone(), "suites=pingpong,grants peer_stays"),
                    Module::new(
                        elf,
                        "domU name=peer memory=32 -- suites=domu,pingpong,grants",
                    ),
                ]
            }
            Dom0::LinuxDomu | Dom0::LinuxPvhDomu => {
                let pvh = *self == Dom0::LinuxPvhDomu;
                let elf = guests::build_pvtest().map_err(|e| e.to_string())?;
                let kernel = linux::cloud_kernel().map_err(|e| e.to_string())?;
                let initrd = initramfs::busybox_shell_initramfs().map_err(|e| e.to_string())?;
                eprintln!(
                    "xtask: dom0 is pvtest waiting for d1; d1 is Debian's {} ({}) with a \
                     busybox shell once it prints {:?}: press Ctrl-A a three times to move \
                     the input to it",
                    linux::CLOUD_METAPACKAGE,
                    if pvh { "PVH" } else { "PV" },
                    initramfs::SHELL_MARKER
                );
                vec![
                    Module::new(elf, "suites=watch domus=1"),
                    Module::new(
                        kernel,
                        format!(
                            "domU {}name=linux memory=256 initrd=2 -- {}",
                            if pvh { "type=pvh " } else { "" },
                            linux::DOMU_CMDLINE
                        ),
                    ),
                    Module::new(initrd, ""),
                ]
            }
            Dom0::Pvh => {
                eprintln!(
                    "xtask: dom0 is the PVH test guest: pvhtest {PVH_ARGS} (dom0=pvh); it \
                     ends with {:?} and powers off",
                    guests::PVH_DONE
                );
                let elf = guests::build_pvhtest().map_err(|e| e.to_string())?;
                vec![Module::new(elf, PVH_ARGS)]
            }
        })
    }
}

/// The run configuration parsed from the command line.
#[derive(Debug, PartialEq)]
struct RunConfig {
    smp: u32,
    mem: u32,
    append: String,
    dom0: Dom0,
    /// The modules after dom0's.
    modules: Vec<Module>,
    grub: bool,
    profile: Profile,
    qemu_args: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Option<RunConfig>> {
    let args = Args::parse(
        argv,
        &["--grub", "--debug", "-h", "--help"],
        &[
            "--smp",
            "--mem",
            "--append",
            "--module",
            "--dom0",
            "--scenario",
        ],
    )?;
    if args.flag("-h") || args.flag("--help") {
        return Ok(None);
    }
    let dom0 = match (args.value("--scenario"), args.value("--dom0")) {
        (Some(_), Some(_)) => return Err("--scenario and --dom0 exclude each other".into()),
        (Some("pingpong"), None) => Dom0::PingPong,
        (Some("linux-domu"), None) => Dom0::LinuxDomu,
        (Some("linux-pvh"), None) => Dom0::LinuxPvhDomu,
        (Some("pvh"), None) => Dom0::Pvh,
        (Some(other), None) => {
            return Err(format!(
                "--scenario {other}: unknown (pingpong, linux-domu, linux-pvh or pvh)"
            ));
        }
        (None, d) => Dom0::parse(d)?,
    };
    let mut append = args.value("--append").unwrap_or(DEFAULT_APPEND).to_string();
    if let Some(extra) = dom0.hypervisor_args() {
        append = format!("{append} {extra}");
    }
    let mut modules = Vec::new();
    for spec in args.values("--module") {
        let m = Module::parse(spec);
        if m.path.as_os_str().is_empty() {
            return Err(format!("--module {spec:?}: no path"));
        }
        if !m.path.is_file() {
            return Err(format!("module {} is not a file", m.path.display()));
        }
        modules.push(m);
    }
    Ok(Some(RunConfig {
        smp: args.number("--smp", 1, 256)?.unwrap_or(2),
        mem: args.number("--mem", 16, 1 << 20)?.unwrap_or(2048),
        append,
        dom0,
        modules,
        grub: args.flag("--grub"),
        profile: if args.flag("--debug") {
            Profile::Debug
        } else {
            Profile::Release
        },
        qemu_args: args.rest.clone(),
    }))
}

pub fn main(argv: &[String]) -> Result<ExitCode> {
    let Some(cfg) = parse(argv)? else {
        println!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    };
    deps::ensure(false)?;
    let elf = cmd_build::build(cfg.profile)?;
    let dom0 = cfg.dom0.modules()?;
    // Module paths are absolute so QEMU and the ISO builder find them from anywhere.
    let modules: Vec<Module> = dom0
        .iter()
        .chain(&cfg.modules)
        .map(|m| {
            let path: PathBuf = m
                .path
                .canonicalize()
                .map_err(|e| format!("{}: {e}", m.path.display()))?;
            Ok(Module::new(path, m.args.clone()))
        })
        .collect::<Result<_>>()?;

    let mut qemu = Qemu::new()
        .smp(cfg.smp)
        .mem_mib(cfg.mem)
        .args(cfg.qemu_args.iter());
    qemu = if cfg.grub {
        let iso =
            grub::build_iso("xtask-run", &elf, &cfg.append, &modules).map_err(|e| e.to_string())?;
        eprintln!("xtask: GRUB ISO {}", iso.display());
        qemu.cdrom(iso)
    } else {
        qemu.kernel(&elf).append(&cfg.append).modules(modules)
    };
    let mut cmd = qemu.interactive_command().map_err(|e| e.to_string())?;
    eprintln!("==> {}", util::display(&cmd));
    eprintln!("xtask: serial console follows; quit QEMU with Ctrl-A X");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", tests_qemu::qemu::QEMU))?;
    exit_code(status)
}

/// xtask exits with QEMU's exit status. QEMU exits 0 on a poweroff, a guest reset (-no-reboot)
/// or Ctrl-A X; isa-debug-exit gives `(v << 1) | 1`.
fn exit_code(status: ExitStatus) -> Result<ExitCode> {
    match status.code() {
        Some(0) => {
            eprintln!("xtask: QEMU exited with status 0");
            Ok(ExitCode::SUCCESS)
        }
        Some(c) => {
            if c & 1 == 1 {
                eprintln!(
                    "xtask: QEMU exited with status {c} (isa-debug-exit value {:#x})",
                    c >> 1
                );
            } else {
                eprintln!("xtask: QEMU exited with status {c}");
            }
            Ok(ExitCode::from(u8::try_from(c).unwrap_or(1)))
        }
        None => Err(format!("QEMU exited: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults() {
        let cfg = parse(&[]).unwrap().unwrap();
        assert_eq!(cfg.smp, 2);
        assert_eq!(cfg.mem, 2048);
        assert_eq!(cfg.append, DEFAULT_APPEND);
        assert_eq!(cfg.dom0, Dom0::Demo);
        assert!(cfg.modules.is_empty() && !cfg.grub && cfg.qemu_args.is_empty());
        assert_eq!(cfg.profile, Profile::Release);
        assert!(parse(&argv(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn dom0_choices() {
        let this = env!("CARGO_MANIFEST_PATH");
        let cfg = parse(&argv(&["--module", &format!("{this} a=1"), "--dom0", this]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.dom0, Dom0::Path(this.into()));
        assert_eq!(cfg.modules, [Module::new(this, "a=1")]);
        let dom0 = |a: &str| parse(&argv(&["--dom0", a])).unwrap().unwrap().dom0;
        assert_eq!(dom0("demo"), Dom0::Demo);
        assert_eq!(dom0("linux"), Dom0::Linux);
        assert!(parse(&argv(&["--dom0", "/nonexistent/kernel"])).is_err());
        assert!(parse(&argv(&["--module", "/nonexistent/module"])).is_err());
        assert_eq!(
            Dom0::Path(this.into()).modules().unwrap(),
            [Module::new(this, "")]
        );
    }

    #[test]
    fn options() {
        let cfg = parse(&argv(&[
            "--smp", "4", "--mem", "512", "--append", "noreboot", "--grub", "--debug", "--", "-d",
            "int",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((cfg.smp, cfg.mem), (4, 512));
        assert_eq!(cfg.append, "noreboot");
        assert!(cfg.grub);
        assert_eq!(cfg.profile, Profile::Debug);
        assert_eq!(cfg.qemu_args, ["-d", "int"]);
        assert!(parse(&argv(&["--smp", "x"])).is_err());
    }

    #[test]
    fn scenarios() {
        let cfg = |a: &[&str]| parse(&argv(a)).unwrap().unwrap();
        assert_eq!(cfg(&["--scenario", "pingpong"]).dom0, Dom0::PingPong);
        assert_eq!(cfg(&["--scenario", "linux-domu"]).dom0, Dom0::LinuxDomu);
        assert_eq!(cfg(&["--scenario", "linux-pvh"]).dom0, Dom0::LinuxPvhDomu);
        let pvh = cfg(&["--scenario", "pvh"]);
        assert_eq!(pvh.dom0, Dom0::Pvh);
        assert_eq!(
            pvh.append,
            "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 loglvl=all \
             dom0=pvh dom0-iommu=none"
        );
        // The PVH options follow a command line of the user's too.
        let pvh = cfg(&["--scenario=pvh", "--append", "noreboot"]);
        assert_eq!(pvh.append, "noreboot dom0=pvh dom0-iommu=none");
        assert!(parse(&argv(&["--scenario", "hvm"])).is_err());
        assert!(parse(&argv(&["--scenario", "pvh", "--dom0", "demo"])).is_err());
    }

    #[test]
    fn exit_status_is_qemus() {
        use std::os::unix::process::ExitStatusExt;
        // A wait status holds the exit code in bits 8..16.
        let code = |c: i32| exit_code(ExitStatus::from_raw(c << 8)).unwrap();
        assert_eq!(code(0), ExitCode::SUCCESS);
        assert_eq!(code(3), ExitCode::from(3));
        assert!(
            exit_code(ExitStatus::from_raw(9)).is_err(),
            "killed by a signal"
        );
    }
}
