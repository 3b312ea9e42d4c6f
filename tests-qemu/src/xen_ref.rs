//! Real Xen 4.17 as the reference hypervisor: Debian's `xen-hypervisor-4.17-amd64` package,
//! fetched with `apt-get download` into `target/xen-ref/` (once; later runs use the cache), with
//! `boot/xen-4.17-amd64.gz` unpacked to a multiboot ELF that QEMU's `-kernel` boots.
//!
//! `XEN_REF_ELF` names a Xen ELF to use instead (a relative path is taken from the workspace
//! root). Fetching needs the Debian bookworm apt sources and a current package list
//! (`apt-get update`), `dpkg-deb` and `gzip`.

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::{env, io};

use crate::error::{Error, Result, ResultExt};
use crate::paths;

/// The Debian package holding the hypervisor.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// The compressed hypervisor inside the package.
pub const XEN_GZ_IN_PACKAGE: &str = "boot/xen-4.17-amd64.gz";
/// Environment variable naming a Xen ELF to use instead of the package.
pub const ELF_ENV: &str = "XEN_REF_ELF";
/// File name of the unpacked ELF in the cache directory.
pub const ELF_NAME: &str = "xen-4.17-amd64.elf";
/// File in the cache directory holding the package version the ELF came from.
pub const VERSION_FILE: &str = "VERSION";

/// The Xen command line used for reference runs (and for Xenolith in comparisons).
pub const CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 noreboot";

/// What [`PVH_CMDLINE`] adds to [`CMDLINE`]: build dom0 as PVH. Xen 4.17 panics with
/// "Presently, iommu must be enabled for PVH hardware domain" when there is no IOMMU (QEMU's
/// q35 has none by default); `dom0-iommu=none` lifts that requirement (dom0 then gets no IOMMU
/// mappings, which a guest without devices does not need).
pub const PVH_DOM0_ARGS: &str = "dom0=pvh dom0-iommu=none";

/// [`CMDLINE`] with [`PVH_DOM0_ARGS`]: the reference command line for a PVH dom0.
pub const PVH_CMDLINE: &str =
    "console=com1 com1=115200,8n1 dom0_mem=512M dom0_max_vcpus=1 noreboot dom0=pvh dom0-iommu=none";

/// What Xen prints when dom0 powers off (it then halts the machine; QEMU keeps running).
pub const DOM0_HALTED: &str = "Hardware Dom0 halted";
/// What Xen prints when dom0 crashes.
pub const DOM0_CRASHED: &str = "Hardware Dom0 crashed";
/// What Xen prints when dom0 shuts down for another reason (reboot, watchdog, unknown).
pub const DOM0_SHUTDOWN: &str = "Hardware Dom0 shutdown";

/// The cache directory, `target/xen-ref/`.
pub fn cache_dir() -> PathBuf {
    paths::target_dir().join("xen-ref")
}

/// The Xen 4.17 ELF: `$XEN_REF_ELF`, the cached one, or freshly fetched (at most once per
/// process; concurrent processes serialize on a lock file).
pub fn xen_elf() -> Result<PathBuf> {
    if let Some(p) = env::var_os(ELF_ENV).filter(|p| !p.is_empty()) {
        let p = paths::workspace_root().join(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!(
                "{ELF_ENV}={} is not a file",
                p.display()
            )))
        };
    }
    static ELF: OnceLock<Result<PathBuf>> = OnceLock::new();
    ELF.get_or_init(|| fetch_cached(&cache_dir())).clone()
}

/// The Debian version of the cached package (e.g. `4.17.5+72-g01140da4e8-1`), if known.
pub fn package_version() -> Option<String> {
    fs::read_to_string(cache_dir().join(VERSION_FILE))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Returns `dir/xen-4.17-amd64.elf`, fetching and unpacking the package first if needed.
pub fn fetch_cached(dir: &Path) -> Result<PathBuf> {
    let elf = dir.join(ELF_NAME);
    if is_elf(&elf) {
        return Ok(elf);
    }
    fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    let lock_path = dir.join(".lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .ctx(|| format!("opening {}", lock_path.display()))?;
    lock.lock()
        .ctx(|| format!("locking {}", lock_path.display()))?;
    // Another process may have finished while this one waited.
    if is_elf(&elf) {
        return Ok(elf);
    }
    let deb = download(dir)?;
    unpack(&deb, dir, &elf)?;
    Ok(elf)
}

/// Whether `path` is a file starting with the ELF magic.
fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// The `.deb` already in `dir`, or one fetched there with `apt-get download`.
fn download(dir: &Path) -> Result<PathBuf> {
    if let Some(deb) = find_deb(dir)? {
        return Ok(deb);
    }
    let out = Command::new("apt-get")
        .args(["download", PACKAGE])
        .current_dir(dir)
        .output()
        .ctx(|| "running apt-get (is this a Debian host?)")?;
    match find_deb(dir)? {
        Some(deb) if out.status.success() => Ok(deb),
        _ => Err(Error::new(format!(
            "`apt-get download {PACKAGE}` in {} failed ({}); it needs the Debian bookworm apt \
             sources and a package list (`apt-get update`)\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

fn find_deb(dir: &Path) -> Result<Option<PathBuf>> {
    crate::debian::newest_deb(dir, PACKAGE).ctx(|| format!("reading {}", dir.display()))
}

/// Extracts the package and gunzips the hypervisor to `elf` (via a temporary file, so an
/// interrupted run never leaves a truncated ELF behind).
fn unpack(deb: &Path, dir: &Path, elf: &Path) -> Result<()> {
    let tree = dir.join("pkg");
    if tree.exists() {
        fs::remove_dir_all(&tree).ctx(|| format!("removing {}", tree.display()))?;
    }
    run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree))?;
    let gz = tree.join(XEN_GZ_IN_PACKAGE);
    let tmp = dir.join(format!("{ELF_NAME}.tmp"));
    let out = File::create(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    run(Command::new("gzip").arg("-dc").arg(&gz).stdout(out))?;
    if !is_elf(&tmp) {
        return Err(Error::new(format!(
            "{} from {} is not an ELF",
            gz.display(),
            deb.display()
        )));
    }
    let version = Command::new("dpkg-deb")
        .args(["-f"])
        .arg(deb)
        .arg("Version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    fs::write(dir.join(VERSION_FILE), format!("{version}\n"))?;
    fs::rename(&tmp, elf).ctx(|| format!("renaming {} to {}", tmp.display(), elf.display()))?;
    fs::remove_dir_all(&tree).ctx(|| format!("removing {}", tree.display()))?;
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let out = cmd.output().ctx(|| format!("running {shown}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::new(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
