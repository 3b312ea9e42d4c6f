//! Where things are: the workspace root, the target directory, the harness's scratch space, and
//! the hypervisor ELF (taken from `XENOLITH_ELF` or built with cargo).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::{env, fs};

use crate::error::{Error, Result, ResultExt};

/// The target triple the hypervisor is built for.
pub const HYPERVISOR_TARGET: &str = "x86_64-unknown-none";

/// Environment variable naming a prebuilt hypervisor ELF; when unset the harness builds one.
pub const ELF_ENV: &str = "XENOLITH_ELF";

/// The cargo profile the hypervisor is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `--release` (the default: what CI and the tests use).
    Release,
    /// The dev profile.
    Debug,
}

impl Profile {
    /// The directory name cargo uses for this profile.
    pub fn dir_name(self) -> &'static str {
        match self {
            Profile::Release => "release",
            Profile::Debug => "debug",
        }
    }
}

/// The workspace root (the directory holding the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    // This crate lives at <root>/tests-qemu; the path is fixed at compile time.
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("tests-qemu has a parent directory")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root) or `target/`.
pub fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => workspace_root().join(dir),
        _ => workspace_root().join("target"),
    }
}

/// A scratch directory `target/tests-qemu/<sub>`, created if needed. Nothing the harness
/// writes lives outside `target/`.
pub fn scratch_dir(sub: &str) -> Result<PathBuf> {
    let dir = target_dir().join("tests-qemu").join(sub);
    fs::create_dir_all(&dir).ctx(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The program to run for cargo: `$CARGO` (set when running under cargo) or `cargo`.
pub fn cargo_program() -> String {
    env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// The arguments of the hypervisor build command (after `cargo`).
pub fn build_args(profile: Profile) -> Vec<&'static str> {
    let mut args = vec!["build"];
    if profile == Profile::Release {
        args.push("--release");
    }
    args.extend([
        "-p",
        "xenolith",
        "--bin",
        "xenolith",
        "--target",
        HYPERVISOR_TARGET,
    ]);
    args
}

/// Where cargo puts the hypervisor ELF for `profile`.
pub fn elf_path(profile: Profile) -> PathBuf {
    target_dir()
        .join(HYPERVISOR_TARGET)
        .join(profile.dir_name())
        .join("xenolith")
}

/// Builds the hypervisor with cargo (output goes to this process's stderr) and returns the
/// absolute path of the ELF.
pub fn build_hypervisor(profile: Profile) -> Result<PathBuf> {
    let cargo = cargo_program();
    let args = build_args(profile);
    let status = Command::new(&cargo)
        .args(&args)
        .current_dir(workspace_root())
        .status()
        .ctx(|| format!("running {cargo}"))?;
    if !status.success() {
        return Err(Error::new(format!(
            "`cargo {}` failed ({status})",
            args.join(" ")
        )));
    }
    let elf = elf_path(profile);
    if !elf.is_file() {
        return Err(Error::new(format!(
            "the build succeeded but {} does not exist",
            elf.display()
        )));
    }
    Ok(elf)
}

/// The hypervisor ELF to test: `$XENOLITH_ELF` if set (a relative path is taken from the
/// workspace root), else a release build (done at most once per process).
pub fn hypervisor_elf() -> Result<PathBuf> {
    if let Some(p) = env::var_os(ELF_ENV).filter(|p| !p.is_empty()) {
        let p = workspace_root().join(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(Error::new(format!(
                "{ELF_ENV}={} is not a file",
                p.display()
            )))
        };
    }
    static BUILT: OnceLock<Result<PathBuf>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_hypervisor(Profile::Release))
        .clone()
}
