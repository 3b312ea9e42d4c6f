//! Host dependencies: QEMU >= 10, the GRUB rescue-ISO tools and (for `test`) Bochs, installed
//! by `scripts/install-host-deps.sh` when missing (which needs root).

use std::path::Path;
use std::process::Command;

use crate::util::{self, Result};

/// The oldest QEMU major version the tests are written against.
pub const MIN_QEMU_MAJOR: u32 = 10;

/// The installer, relative to the workspace root.
pub const INSTALL_SCRIPT: &str = "scripts/install-host-deps.sh";

/// Whether `program` is on PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Parses the major version out of `QEMU emulator version 10.0.2 (...)`.
pub fn parse_qemu_major(version_output: &str) -> Option<u32> {
    let line = version_output.lines().next()?;
    let version = line.split("version ").nth(1)?.split_whitespace().next()?;
    version.split('.').next()?.parse().ok()
}

fn qemu_major() -> Option<u32> {
    let out = Command::new(tests_qemu::qemu::QEMU)
        .arg("--version")
        .output()
        .ok()?;
    parse_qemu_major(&String::from_utf8_lossy(&out.stdout))
}

/// What is missing, in words. `for_tests` adds what only the tests use: Bochs (the VMX test)
/// and cpio (reads the generated initramfs back).
pub fn missing(for_tests: bool) -> Vec<String> {
    let mut missing = Vec::new();
    match qemu_major() {
        Some(v) if v >= MIN_QEMU_MAJOR => {}
        Some(v) => missing.push(format!(
            "QEMU >= {MIN_QEMU_MAJOR} (qemu-system-x86_64 is version {v})"
        )),
        None => missing.push("qemu-system-x86_64".into()),
    }
    for tool in ["grub-mkrescue", "xorriso", "mformat"] {
        if !have(tool) {
            missing.push(tool.into());
        }
    }
    if !Path::new("/usr/lib/grub/i386-pc").is_dir() {
        missing.push("GRUB BIOS modules (grub-pc-bin)".into());
    }
    if for_tests {
        for tool in ["bochs", "cpio"] {
            if !have(tool) {
                missing.push(tool.into());
            }
        }
    }
    missing
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Makes sure the host tools are there, running the installer as root if not. `for_tests`
/// also requires the tests' tools (installed with `--bochs`). Without root, anything missing is
/// an error telling how to install.
pub fn ensure(for_tests: bool) -> Result<()> {
    let missing_now = missing(for_tests);
    if missing_now.is_empty() {
        return Ok(());
    }
    let script = tests_qemu::paths::workspace_root().join(INSTALL_SCRIPT);
    let flag = if for_tests { " --bochs" } else { "" };
    if !is_root() {
        return Err(format!(
            "missing host tools: {}.\nInstall them as root: sudo bash {}{flag}",
            missing_now.join(", "),
            script.display()
        ));
    }
    eprintln!(
        "xtask: missing host tools ({}); installing them",
        missing_now.join(", ")
    );
    let mut cmd = Command::new("bash");
    cmd.arg(&script);
    if for_tests {
        cmd.arg("--bochs");
    }
    util::run(&mut cmd)?;
    let still = missing(for_tests);
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "still missing after {INSTALL_SCRIPT}: {}",
            still.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_version_parsing() {
        assert_eq!(
            parse_qemu_major(
                "QEMU emulator version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)\nCopyright"
            ),
            Some(10)
        );
        assert_eq!(parse_qemu_major("QEMU emulator version 7.2.19"), Some(7));
        assert_eq!(parse_qemu_major("garbage"), None);
    }
}
