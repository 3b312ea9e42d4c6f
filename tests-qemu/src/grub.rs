//! A minimal GRUB rescue ISO that boots the hypervisor with multiboot2 (as GRUB boots Xen),
//! built with `grub-mkrescue` into `target/tests-qemu/grub/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmdline::Module;
use crate::error::{Error, Result, ResultExt};
use crate::paths;

/// Where the hypervisor goes inside the ISO.
pub const ISO_KERNEL_PATH: &str = "/boot/xenolith";

/// The GRUB modules the ISO needs.
pub const GRUB_MODULES: &str = "multiboot2 multiboot normal serial terminal boot";

/// Quotes one word for grub.cfg if it contains characters GRUB's shell-like parser treats
/// specially.
pub fn grub_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_=.,/:+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn quote_args(args: &str) -> String {
    args.split_whitespace()
        .map(grub_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The grub.cfg: serial console at 115200, no menu delay, `multiboot2` for the hypervisor with
/// `args`, then one `module2` per module (`(iso path, args)`).
pub fn grub_cfg(args: &str, modules: &[(String, String)]) -> String {
    let mut cfg = String::from(
        "set timeout=0\n\
         set default=0\n\
         serial --unit=0 --speed=115200\n\
         terminal_input serial\n\
         terminal_output serial\n\
         menuentry 'Xenolith' {\n",
    );
    let line = |cmd: &str, path: &str, args: &str| {
        let args = quote_args(args);
        if args.is_empty() {
            format!("    {cmd} {path}\n")
        } else {
            format!("    {cmd} {path} {args}\n")
        }
    };
    cfg.push_str(&line("multiboot2", ISO_KERNEL_PATH, args));
    for (path, margs) in modules {
        cfg.push_str(&line("module2", path, margs));
    }
    cfg.push_str("    boot\n}\n");
    cfg
}

/// Builds `target/tests-qemu/grub/<name>.iso` booting `elf` with `args` and `modules`, and
/// returns its path. The staging directory is removed afterwards; nothing is cached.
pub fn build_iso(name: &str, elf: &Path, args: &str, modules: &[Module]) -> Result<PathBuf> {
    let dir = paths::scratch_dir("grub")?;
    let stage = dir.join(format!("{name}.d"));
    let iso = dir.join(format!("{name}.iso"));
    if stage.exists() {
        fs::remove_dir_all(&stage).ctx(|| format!("removing {}", stage.display()))?;
    }
    let boot = stage.join("boot");
    fs::create_dir_all(boot.join("grub")).ctx(|| format!("creating {}", boot.display()))?;
    fs::copy(elf, boot.join("xenolith")).ctx(|| format!("copying {}", elf.display()))?;
    let mut iso_modules = Vec::new();
    for (i, m) in modules.iter().enumerate() {
        let base = m
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| {
                n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            })
            .unwrap_or("module");
        let file = format!("mod{i}-{base}");
        fs::copy(&m.path, boot.join(&file)).ctx(|| format!("copying {}", m.path.display()))?;
        iso_modules.push((format!("/boot/{file}"), m.args.clone()));
    }
    let cfg = grub_cfg(args, &iso_modules);
    fs::write(boot.join("grub/grub.cfg"), cfg)?;

    let _ = fs::remove_file(&iso);
    let out = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&iso)
        .arg(format!("--install-modules={GRUB_MODULES}"))
        .args(["--locales=", "--fonts=", "--themes="])
        .arg(&stage)
        .output()
        .ctx(|| "running grub-mkrescue (install grub-common, grub-pc-bin, xorriso and mtools: scripts/install-host-deps.sh)")?;
    let _ = fs::remove_dir_all(&stage);
    if !out.status.success() || !iso.is_file() {
        return Err(Error::new(format!(
            "grub-mkrescue failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cfg_has_serial_multiboot2_and_modules() {
        let cfg = grub_cfg(
            "console=com1 com1=115200,8n1  dom0_mem=512M",
            &[
                ("/boot/mod0-vmlinuz".into(), "root=/dev/xvda $x".into()),
                ("/boot/mod1-initrd".into(), String::new()),
            ],
        );
        assert!(cfg.starts_with("set timeout=0\n"));
        assert!(cfg.contains("serial --unit=0 --speed=115200\n"));
        assert!(cfg.contains("terminal_input serial\nterminal_output serial\n"));
        assert!(cfg.contains(
            "    multiboot2 /boot/xenolith console=com1 com1=115200,8n1 dom0_mem=512M\n"
        ));
        assert!(cfg.contains("    module2 /boot/mod0-vmlinuz root=/dev/xvda '$x'\n"));
        assert!(cfg.contains("    module2 /boot/mod1-initrd\n"));
        assert!(cfg.ends_with("    boot\n}\n"));
    }

    #[test]
    fn quoting() {
        assert_eq!(grub_quote("a=b,c"), "a=b,c");
        assert_eq!(grub_quote("a;b"), "'a;b'");
        assert_eq!(grub_quote("it's"), r"'it'\''s'");
    }
}
