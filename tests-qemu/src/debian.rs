//! Debian packages as test inputs: a package is fetched with `apt-get download` into
//! `target/debian/<package>/` and the files a test needs are extracted next to it (with
//! `dpkg-deb --fsys-tarfile | tar -x`, so a kernel package does not unpack its hundreds of MiB
//! of modules). Both the `.deb` and the extracted tree are cached: later runs (and concurrent
//! processes, which serialize on a lock file) reuse them without touching the network.
//!
//! Fetching needs the Debian apt sources and a current package list (`apt-get update`),
//! `dpkg-deb` and `tar`.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result, ResultExt};
use crate::paths;

/// Name of the extracted tree inside a package's cache directory.
pub const ROOT_DIR: &str = "root";
/// File next to the extracted tree recording what was extracted from which `.deb`.
const STAMP: &str = "root.stamp";

/// The directory all packages are cached under, `target/debian/`.
pub fn cache_root() -> PathBuf {
    paths::target_dir().join("debian")
}

/// The cache directory of `package`, `target/debian/<package>/`.
pub fn package_dir(package: &str) -> PathBuf {
    cache_root().join(package)
}

/// The package a metapackage currently stands for: the first `Depends:` of
/// `apt-cache depends <meta>` whose name starts with `prefix` (e.g. `linux-image-amd64` →
/// `linux-image-6.1.0-NN-amd64` for the prefix `linux-image-`). Uses the local package list
/// only.
pub fn resolve_dependency(meta: &str, prefix: &str) -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", meta])
        .output()
        .ctx(|| "running apt-cache (is this a Debian host?)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match parse_depends(&stdout, prefix) {
        Some(p) if out.status.success() => Ok(p),
        _ => Err(Error::new(format!(
            "`apt-cache depends {meta}` ({}) names no dependency starting with {prefix:?}; it \
             needs the Debian apt sources and a package list (`apt-get update`)\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// Parses `apt-cache depends` output: the first `Depends:` (or `|Depends:`) entry naming a real
/// package (not a `<virtual>` one) that starts with `prefix`.
pub fn parse_depends(output: &str, prefix: &str) -> Option<String> {
    output.lines().find_map(|line| {
        let (kind, name) = line.trim().split_once(':')?;
        let name = name.trim();
        (kind.trim_start_matches('|') == "Depends"
            && name.starts_with(prefix)
            && !name.contains(['<', '>', ' ']))
        .then(|| name.to_string())
    })
}

/// `target/debian/<package>/<package>_*.deb`: the cached download, or one fetched now with
/// `apt-get download` (the candidate version).
pub fn download(package: &str) -> Result<PathBuf> {
    let dir = package_dir(package);
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    download_locked(package, &dir)
}

/// The root of the files of `package` matching `members`, extracted into
/// `target/debian/<package>/root/` (downloading the package first if needed).
///
/// `members` are `tar --wildcards` patterns of paths in the package, which `dpkg-deb` writes as
/// `./dir/file` (e.g. `./boot/vmlinuz-*`); each must match something. An empty list extracts
/// the whole package. A tree extracted earlier with the same `members` is reused as is.
pub fn fetch(package: &str, members: &[&str]) -> Result<PathBuf> {
    let dir = package_dir(package);
    let root = dir.join(ROOT_DIR);
    let want = |deb: &str| format!("deb={deb}\nmembers={}\n", members.join(" "));
    let is_cached = || {
        fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("deb="))
                .is_some_and(|deb| s == want(deb))
        }) && root.is_dir()
    };
    if is_cached() {
        return Ok(root);
    }
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    let _lock = lock(&dir)?;
    // Another process may have finished while this one waited.
    if is_cached() {
        return Ok(root);
    }
    let deb = download_locked(package, &dir)?;
    let deb_name = deb
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Extract to a temporary tree and rename it, so an interrupted run leaves no partial tree
    // that looks complete.
    let _ = fs::remove_file(dir.join(STAMP));
    let tmp = dir.join(format!("{ROOT_DIR}.tmp"));
    for d in [&tmp, &root] {
        if d.exists() {
            fs::remove_dir_all(d).ctx(|| format!("removing {}", d.display()))?;
        }
    }
    fs::create_dir_all(&tmp).ctx(|| format!("creating {}", tmp.display()))?;
    extract(&deb, &tmp, members)?;
    fs::rename(&tmp, &root).ctx(|| format!("renaming {} to {}", tmp.display(), root.display()))?;
    fs::write(dir.join(STAMP), want(&deb_name))
        .ctx(|| format!("writing {}", dir.join(STAMP).display()))?;
    Ok(root)
}

/// The `Version` field of a `.deb` (e.g. `6.1.158-1`), if `dpkg-deb` can read it.
pub fn deb_version(deb: &Path) -> Option<String> {
    let out = Command::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .arg("Version")
        .output()
        .ok()?;
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !v.is_empty()).then_some(v)
}

/// The cached `.deb` of `package` (the newest by file name), if any.
pub fn cached_deb(package: &str) -> Option<PathBuf> {
    find_deb(&package_dir(package), package)
}

/// Takes the cache directory's lock file (released when the file is dropped).
fn lock(dir: &Path) -> Result<fs::File> {
    let path = dir.join(".lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .ctx(|| format!("opening {}", path.display()))?;
    file.lock().ctx(|| format!("locking {}", path.display()))?;
    Ok(file)
}

fn download_locked(package: &str, dir: &Path) -> Result<PathBuf> {
    if let Some(deb) = find_deb(dir, package) {
        return Ok(deb);
    }
    let out = Command::new("apt-get")
        .args(["download", package])
        .current_dir(dir)
        .output()
        .ctx(|| "running apt-get (is this a Debian host?)")?;
    match find_deb(dir, package) {
        Some(deb) if out.status.success() => Ok(deb),
        _ => Err(Error::new(format!(
            "`apt-get download {package}` in {} failed ({}); it needs the Debian apt sources \
             and a package list (`apt-get update`)\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))),
    }
}

/// The newest `<package>_*.deb` in `dir` (by name), if any.
pub(crate) fn newest_deb(dir: &Path, package: &str) -> std::io::Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    let mut debs: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .collect();
    debs.sort();
    Ok(debs.pop())
}

fn find_deb(dir: &Path, package: &str) -> Option<PathBuf> {
    newest_deb(dir, package).ok().flatten()
}

/// `dpkg-deb --fsys-tarfile <deb> | tar -x -C <into> --wildcards <members>`.
fn extract(deb: &Path, into: &Path, members: &[&str]) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| "running dpkg-deb")?;
    let tarball = dpkg.stdout.take().expect("stdout is piped");
    let mut tar = Command::new("tar");
    tar.arg("-x").arg("-C").arg(into);
    if !members.is_empty() {
        tar.arg("--wildcards").args(members);
    }
    let tar_out = tar.stdin(tarball).output().ctx(|| "running tar");
    let dpkg_out = dpkg.wait_with_output().ctx(|| "waiting for dpkg-deb")?;
    let tar_out = tar_out?;
    if !tar_out.status.success() {
        return Err(Error::new(format!(
            "extracting {:?} from {} failed: tar: {} {}",
            members,
            deb.display(),
            tar_out.status,
            String::from_utf8_lossy(&tar_out.stderr).trim()
        )));
    }
    // With a member filter tar may stop reading early, so dpkg-deb can die of SIGPIPE; only a
    // complete tar run is proof enough. Without one, dpkg-deb must have succeeded too.
    if members.is_empty() && !dpkg_out.status.success() {
        return Err(Error::new(format!(
            "`dpkg-deb --fsys-tarfile {}` failed ({}): {}",
            deb.display(),
            dpkg_out.status,
            String::from_utf8_lossy(&dpkg_out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metapackage_dependency() {
        let out = "linux-image-amd64\n  Depends: linux-image-6.1.0-41-amd64\n";
        assert_eq!(
            parse_depends(out, "linux-image-").as_deref(),
            Some("linux-image-6.1.0-41-amd64")
        );
        let out = "m\n  PreDepends: linux-image-x\n |Depends: <linux-image-virtual>\n  \
                   |Depends: linux-image-6.1.0-7-amd64\n  Depends: linux-image-9\n";
        assert_eq!(
            parse_depends(out, "linux-image-").as_deref(),
            Some("linux-image-6.1.0-7-amd64")
        );
        assert_eq!(parse_depends("m\n  Depends: libc6\n", "linux-image-"), None);
        assert_eq!(parse_depends("", "linux-image-"), None);
    }

    #[test]
    fn cache_layout() {
        assert!(package_dir("foo").ends_with("debian/foo"));
        assert!(package_dir("foo").starts_with(paths::target_dir()));
    }
}
