//! `cargo xtask run`: boot Xenolith in QEMU with the serial console on this terminal.

use std::path::PathBuf;
use std::process::ExitStatus;

use tests_qemu::Qemu;
use tests_qemu::cmdline::Module;
use tests_qemu::grub;
use tests_qemu::paths::Profile;

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

Options:
  --smp N              Number of CPUs (default 2)
  --mem MIB            RAM in MiB (default 2048)
  --append \"ARGS\"      Hypervisor command line (default:
                       \"console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 loglvl=all\")
  --module \"PATH [ARGS]\"
                       Add a multiboot module with its command line (repeatable; in order,
                       after --dom0)
  --dom0 PATH          Boot PATH as the dom0 kernel (the first module). A built-in demo dom0
                       (`--dom0 demo`) and a Linux dom0 (`--dom0 linux`) come in a later
                       change; for now pass a kernel image path
  --grub               Boot through GRUB (multiboot2, from a rescue ISO) instead of QEMU's
                       -kernel (multiboot1)
  --debug              Use a dev-profile build
  -h, --help
  -- QEMU_ARGS...      Extra arguments passed to qemu-system-x86_64 (e.g. -- -d int)";

/// The run configuration parsed from the command line.
#[derive(Debug, PartialEq)]
struct RunConfig {
    smp: u32,
    mem: u32,
    append: String,
    modules: Vec<Module>,
    grub: bool,
    profile: Profile,
    qemu_args: Vec<String>,
}

fn parse(argv: &[String]) -> Result<Option<RunConfig>> {
    let args = Args::parse(
        argv,
        &["--grub", "--debug", "-h", "--help"],
        &["--smp", "--mem", "--append", "--module", "--dom0"],
    )?;
    if args.flag("-h") || args.flag("--help") {
        return Ok(None);
    }
    let mut modules = Vec::new();
    if let Some(dom0) = args.value("--dom0") {
        if dom0 == "linux" || dom0 == "demo" {
            return Err(format!(
                "--dom0 {dom0} is not available yet: the built-in demo dom0 and the Linux dom0 \
                 come in a later change. Pass the path of a dom0 kernel image instead."
            ));
        }
        modules.push(Module::new(dom0, ""));
    }
    for spec in args.values("--module") {
        let m = Module::parse(spec);
        if m.path.as_os_str().is_empty() {
            return Err(format!("--module {spec:?}: no path"));
        }
        modules.push(m);
    }
    for m in &modules {
        if !m.path.is_file() {
            return Err(format!("module {} is not a file", m.path.display()));
        }
    }
    Ok(Some(RunConfig {
        smp: args.number("--smp", 1, 256)?.unwrap_or(2),
        mem: args.number("--mem", 16, 1 << 20)?.unwrap_or(2048),
        append: args.value("--append").unwrap_or(DEFAULT_APPEND).to_string(),
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

pub fn main(argv: &[String]) -> Result<()> {
    let Some(cfg) = parse(argv)? else {
        println!("{HELP}");
        return Ok(());
    };
    deps::ensure(false)?;
    let elf = cmd_build::build(cfg.profile)?;
    // Module paths are absolute so QEMU and the ISO builder find them from anywhere.
    let modules: Vec<Module> = cfg
        .modules
        .iter()
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
    report_exit(status)
}

/// QEMU exits 0 on a guest reset (-no-reboot) or Ctrl-A X; isa-debug-exit gives (v << 1) | 1.
fn report_exit(status: ExitStatus) -> Result<()> {
    match status.code() {
        Some(0) => Ok(()),
        Some(c) if c & 1 == 1 => Err(format!(
            "QEMU exited with status {c} (isa-debug-exit value {:#x})",
            c >> 1
        )),
        _ => Err(format!("QEMU exited: {status}")),
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
        assert!(cfg.modules.is_empty() && !cfg.grub && cfg.qemu_args.is_empty());
        assert_eq!(cfg.profile, Profile::Release);
        assert!(parse(&argv(&["--help"])).unwrap().is_none());
    }

    #[test]
    fn dom0_comes_first_and_placeholders_are_rejected() {
        let this = env!("CARGO_MANIFEST_PATH");
        let cfg = parse(&argv(&["--module", &format!("{this} a=1"), "--dom0", this]))
            .unwrap()
            .unwrap();
        assert_eq!(cfg.modules[0], Module::new(this, ""));
        assert_eq!(cfg.modules[1], Module::new(this, "a=1"));
        for name in ["linux", "demo"] {
            let err = parse(&argv(&["--dom0", name])).unwrap_err();
            assert!(err.contains("later change"), "{err}");
        }
        assert!(parse(&argv(&["--dom0", "/nonexistent/kernel"])).is_err());
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
}
