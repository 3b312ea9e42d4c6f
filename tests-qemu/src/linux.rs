//! Debian's stock kernel as a PV dom0: the `linux-image-amd64` metapackage resolved to the
//! kernel package it currently depends on (`linux-image-6.1.0-NN-amd64` on bookworm), fetched
//! with [`crate::debian`] and only `boot/vmlinuz-*` extracted, cached under
//! `target/debian/<package>/`. The `bzImage` is booted as dom0's kernel module.
//!
//! `LINUX_DOM0_KERNEL` names a kernel image to use instead (a relative path is taken from the
//! workspace root). Without a package list (offline), the newest kernel already cached is used.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::{Qemu, debian, paths, xen_ref};

/// The metapackage that always depends on Debian's current amd64 kernel.
pub const METAPACKAGE: &str = "linux-image-amd64";
/// The metapackage of Debian's cloud kernel (`CONFIG_XEN_DOM0` off: a PV domU only, with an
/// LZ4 bzImage).
pub const CLOUD_METAPACKAGE: &str = "linux-image-cloud-amd64";
/// The kernel command line of a Linux domU: its console is the console ring (`hvc0`).
pub const DOMU_CMDLINE: &str = "console=hvc0";

/// Prefix of the kernel package the metapackage depends on.
pub const PACKAGE_PREFIX: &str = "linux-image-";
/// What is extracted from the kernel package (`tar --wildcards` patterns).
pub const KERNEL_MEMBERS: &[&str] = &["./boot/vmlinuz-*"];
/// Environment variable naming a kernel image to use instead of the package.
pub const KERNEL_ENV: &str = "LINUX_DOM0_KERNEL";

/// The hypervisor command line of a Linux dom0 boot.
pub const HV_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=512M noreboot";
/// The kernel command line: the Xen console, and early printk through `console_io`.
pub const DOM0_CMDLINE: &str = "console=hvc0 earlyprintk=xen";

/// `xen_start_kernel` (raw console write) before it builds the initial page tables.
pub const MAPPING_KERNEL: &str = "mapping kernel into physical memory";
/// `xen_start_kernel` (raw console write) just before jumping to `x86_64_start_reservations`.
pub const ABOUT_TO_START: &str = "about to get started...";
/// `xen_banner()`: the first printk through earlyprintk=xen.
pub const BOOTING_ON_XEN: &str = "Booting kernel on Xen";
/// `xen_banner()`'s second line (`Xen version: 4.17<extraversion>`).
pub const XEN_VERSION: &str = "Xen version: 4.17";
/// The lines Linux prints early in its boot on a Xen 4.17 (or Xenolith), in order.
pub const EARLY_LINES: &[&str] = &[MAPPING_KERNEL, ABOUT_TO_START, BOOTING_ON_XEN, XEN_VERSION];
/// Hypervisor lines that mean Xenolith itself crashed.
pub const HYPERVISOR_FATAL: &[&str] = &["(XEN) FATAL", "Panic on CPU"];

/// Time limit of a Linux dom0 run under TCG.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of a Linux dom0 run through `/init` to poweroff under TCG.
pub const INIT_RUN_TIMEOUT: Duration = Duration::from_secs(180);

/// `kernel_init()` when it starts `/init` from the initramfs.
pub const RUN_INIT: &str = "Run /init as init process";

/// The kernel package `linux-image-amd64` depends on today (from the local package list).
pub fn package() -> Result<String> {
    debian::resolve_dependency(METAPACKAGE, PACKAGE_PREFIX)
}

/// The dom0 kernel image: `$LINUX_DOM0_KERNEL`, or Debian's (fetched once, then cached; at most
/// once per process).
pub fn kernel() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(KERNEL_ENV).filter(|p| !p.is_empty()) {
        let p = paths::workspace_root().join(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!(
                "{KERNEL_ENV}={} is not a file",
                p.display()
            )))
        };
    }
    static KERNEL: OnceLock<Result<PathBuf>> = OnceLock::new();
    KERNEL.get_or_init(fetch_kernel).clone()
}

/// Debian's cloud kernel (fetched once, then cached; at most once per process), for a domU.
pub fn cloud_kernel() -> Result<PathBuf> {
    static KERNEL: OnceLock<Result<PathBuf>> = OnceLock::new();
    KERNEL
        .get_or_init(|| {
            let pkg = debian::resolve_dependency(CLOUD_METAPACKAGE, PACKAGE_PREFIX)?;
            find_vmlinuz(&debian::fetch(&pkg, KERNEL_MEMBERS)?)
        })
        .clone()
}

/// Resolves, fetches and extracts the kernel; falls back to a cached kernel if the package
/// cannot be resolved (no package list).
fn fetch_kernel() -> Result<PathBuf> {
    match package() {
        Ok(pkg) => find_vmlinuz(&debian::fetch(&pkg, KERNEL_MEMBERS)?),
        Err(e) => cached_kernel().ok_or(e),
    }
}

/// The newest kernel already extracted under `target/debian/linux-image-*/`, if any.
pub fn cached_kernel() -> Option<PathBuf> {
    let mut kernels: Vec<PathBuf> = fs::read_dir(debian::cache_root())
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            // The cloud kernel cannot be dom0.
            n.starts_with(PACKAGE_PREFIX) && !n.contains("cloud")
        })
        .filter_map(|e| find_vmlinuz(&e.path().join(debian::ROOT_DIR)).ok())
        .collect();
    kernels.sort();
    kernels.pop()
}

/// The single `boot/vmlinuz-*` under an extracted package root.
fn find_vmlinuz(root: &Path) -> Result<PathBuf> {
    let boot = root.join("boot");
    let found: Vec<PathBuf> = fs::read_dir(&boot)
        .map_err(|e| Error::new(format!("reading {}: {e}", boot.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .collect();
    match found.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(Error::new(format!(
            "expected one vmlinuz-* in {}, found {found:?}",
            boot.display()
        ))),
    }
}

/// The QEMU run of `vmlinuz` as dom0 on the hypervisor `hv_elf`: `-m 2048 -smp 2`,
/// [`HV_CMDLINE`], the kernel with [`DOM0_CMDLINE`]. It ends successfully a couple of seconds
/// after [`BOOTING_ON_XEN`]; a dom0 crash before that or a hypervisor crash ends it as failed.
pub fn dom0_qemu(hv_elf: &Path, vmlinuz: &Path) -> Qemu {
    let mut q = Qemu::new()
        .kernel(hv_elf)
        .append(HV_CMDLINE)
        .module(vmlinuz, DOM0_CMDLINE)
        .mem_mib(2048)
        .smp(2)
        .timeout(RUN_TIMEOUT)
        .success_marker(BOOTING_ON_XEN)
        .settle(Duration::from_secs(2))
        .failure_marker(xen_ref::DOM0_CRASHED);
    for m in HYPERVISOR_FATAL {
        q = q.failure_marker(m);
    }
    q
}

/// The QEMU run of `vmlinuz` as dom0 with `initramfs` (see [`crate::initramfs`]) as its
/// second module: like [`dom0_qemu`], but without a success marker and with
/// [`INIT_RUN_TIMEOUT`], so it runs until the machine powers off (QEMU exits) or dom0 or the
/// hypervisor crashes.
pub fn init_qemu(hv_elf: &Path, vmlinuz: &Path, initramfs: &Path) -> Qemu {
    let mut q = Qemu::new()
        .kernel(hv_elf)
        .append(HV_CMDLINE)
        .module(vmlinuz, DOM0_CMDLINE)
        .module(initramfs, "")
        .mem_mib(2048)
        .smp(2)
        .timeout(INIT_RUN_TIMEOUT)
        .failure_marker(xen_ref::DOM0_CRASHED);
    for m in HYPERVISOR_FATAL {
        q = q.failure_marker(m);
    }
    q
}

/// The busybox shell's prompt.
pub const SHELL_PROMPT: &str = "/ # ";

/// Debian's cloud kernel as a boot-time domU (`type=pvh` if `pvh`) with the busybox shell
/// initramfs, beside a pvtest dom0 that waits for it: the serial input moves to the domU
/// (`CTRL-a` x3), the shell is asked for `/sys/hypervisor/type`, and `poweroff -f` ends the
/// domU, after which dom0 powers the machine off. The run, for the caller's checks.
pub fn cloud_domu_shell_run(name: &str, pvh: bool) -> Result<crate::RunResult> {
    const CTRL_A3: &[u8] = &[1, 1, 1];
    let kernel = cloud_kernel()?;
    let initrd = crate::initramfs::busybox_shell_initramfs()?;
    let pvtest = crate::guests::pvtest_elf()?;
    let hv = paths::hypervisor_elf()?;
    Qemu::new()
        .name(name)
        .kernel(hv)
        .append("console=com1 com1=115200,8n1 dom0_mem=256M dom0_max_vcpus=1 noreboot")
        .mem_mib(2048)
        .smp(2)
        .module(&pvtest, "suites=watch domus=1")
        .module(
            &kernel,
            &format!(
                "domU {}name=linux memory=256 initrd=2 -- {DOMU_CMDLINE}",
                if pvh { "type=pvh " } else { "" }
            ),
        )
        .module(&initrd, "")
        .timeout(Duration::from_secs(240))
        .type_after(crate::initramfs::SHELL_MARKER, CTRL_A3)
        // A fresh prompt once the input is the domU's: the first one may have come before.
        .type_after("*** Serial input to DOM1", b"\r")
        .type_after(SHELL_PROMPT, b"cat /sys/hypervisor/type\r")
        .type_after("(d1) xen", b"")
        .type_after(SHELL_PROMPT, b"poweroff -f\r")
        .success_marker(xen_ref::DOM0_HALTED)
        .failure_marker(xen_ref::DOM0_CRASHED)
        .failure_marker("domain_crash called from d1")
        .run()
}

/// The lines a [`cloud_domu_shell_run`] must have shown.
pub const CLOUD_DOMU_SHELL_LINES: &[&str] = &[
    "(d1) XENOLITH-SHELL: ready on xen",
    "(d1) xen",
    "d1: shutdown, reason 0 (poweroff)",
    "VERDICT watch.domus_stopped PASS",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dom0_command_line() {
        let args: Vec<String> = dom0_qemu(Path::new("/x/xenolith"), Path::new("/k/vmlinuz-6"))
            .capture_args(Path::new("/s.log"))
            .unwrap()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        let a = args.join(" ");
        assert!(a.contains("-smp 2 -m 2048"), "{a}");
        assert!(a.contains("-kernel /x/xenolith"), "{a}");
        let i = args.iter().position(|s| s == "-append").unwrap();
        assert_eq!(args[i + 1], HV_CMDLINE);
        let i = args.iter().position(|s| s == "-initrd").unwrap();
        assert_eq!(args[i + 1], "/k/vmlinuz-6 console=hvc0 earlyprintk=xen");
    }

    #[test]
    fn init_command_line() {
        let args: Vec<String> = init_qemu(
            Path::new("/x/xenolith"),
            Path::new("/k/vmlinuz-6"),
            Path::new("/i/init.cpio"),
        )
        .capture_args(Path::new("/s.log"))
        .unwrap()
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
        let i = args.iter().position(|s| s == "-initrd").unwrap();
        assert_eq!(
            args[i + 1],
            "/k/vmlinuz-6 console=hvc0 earlyprintk=xen,/i/init.cpio"
        );
    }

    #[test]
    fn vmlinuz_lookup() {
        let root = paths::scratch_dir("linux-unit").unwrap().join("root");
        let _ = fs::remove_dir_all(&root);
        assert!(find_vmlinuz(&root).is_err());
        fs::create_dir_all(root.join("boot")).unwrap();
        assert!(find_vmlinuz(&root).is_err());
        fs::write(root.join("boot/vmlinuz-6.1.0-9-amd64"), b"x").unwrap();
        fs::write(root.join("boot/config-6.1.0-9-amd64"), b"x").unwrap();
        assert_eq!(
            find_vmlinuz(&root).unwrap(),
            root.join("boot/vmlinuz-6.1.0-9-amd64")
        );
        fs::remove_dir_all(&root).unwrap();
    }
}
