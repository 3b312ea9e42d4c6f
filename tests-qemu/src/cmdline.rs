//! Module lists for QEMU's multiboot loader.
//!
//! `-initrd "file1 args1,file2 args2"` passes modules: entries are separated by `,` (a literal
//! comma is written `,,`), and within an entry the file name ends at the first space, the rest
//! being the module's command line.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A multiboot module: a file and its command line (possibly empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// The file loaded as the module.
    pub path: PathBuf,
    /// The module's command line.
    pub args: String,
}

impl Module {
    /// A module from a path and a command line.
    pub fn new(path: impl Into<PathBuf>, args: impl Into<String>) -> Self {
        Module {
            path: path.into(),
            args: args.into(),
        }
    }

    /// Parses `"PATH [ARGS]"`: the path ends at the first space; the rest is the command line.
    pub fn parse(spec: &str) -> Self {
        let spec = spec.trim_start();
        match spec.split_once(' ') {
            Some((path, args)) => Module::new(path, args.trim_start()),
            None => Module::new(spec, ""),
        }
    }
}

/// Escapes a string for one `,`-separated QEMU option value: every `,` becomes `,,`.
pub fn escape_commas(s: &str) -> String {
    s.replace(',', ",,")
}

/// Builds the `-initrd` value for `modules`. Fails for paths QEMU cannot express (a space ends
/// the file name) and for an empty list.
pub fn initrd_value(modules: &[Module]) -> Result<String> {
    if modules.is_empty() {
        return Err(Error::new("no modules"));
    }
    let mut entries = Vec::with_capacity(modules.len());
    for m in modules {
        let path = path_str(&m.path)?;
        if path.is_empty() || path.contains(char::is_whitespace) {
            return Err(Error::new(format!(
                "module path {path:?} is empty or contains whitespace, which -initrd cannot express"
            )));
        }
        let mut entry = escape_commas(path);
        if !m.args.is_empty() {
            entry.push(' ');
            entry.push_str(&escape_commas(&m.args));
        }
        entries.push(entry);
    }
    Ok(entries.join(","))
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .ok_or_else(|| Error::new(format!("module path {} is not UTF-8", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commas_are_doubled() {
        assert_eq!(escape_commas("com1=115200,8n1"), "com1=115200,,8n1");
        assert_eq!(escape_commas(",,"), ",,,,");
        assert_eq!(escape_commas("plain"), "plain");
    }

    #[test]
    fn initrd_joins_modules_and_escapes_args() {
        let mods = [
            Module::new("/boot/vmlinuz", "root=/dev/xvda1 console=hvc0,115200"),
            Module::new("/boot/initrd.img", ""),
            Module::new("/x/a,b", "k=v"),
        ];
        assert_eq!(
            initrd_value(&mods).unwrap(),
            "/boot/vmlinuz root=/dev/xvda1 console=hvc0,,115200,/boot/initrd.img,/x/a,,b k=v"
        );
    }

    #[test]
    fn initrd_rejects_unexpressible_paths() {
        assert!(initrd_value(&[]).is_err());
        assert!(initrd_value(&[Module::new("/a b", "")]).is_err());
        assert!(initrd_value(&[Module::new("", "x")]).is_err());
    }

    #[test]
    fn module_spec_parsing() {
        assert_eq!(Module::parse("k"), Module::new("k", ""));
        assert_eq!(Module::parse("/k  a=1 b=2"), Module::new("/k", "a=1 b=2"));
    }
}
