//! Boot-time domU descriptions: a boot module whose (cooked) command line starts with `domU`
//! is a PV kernel to start as an unprivileged domain beside dom0.
//!
//! ```text
//! domU [name=<name>] [memory=<MiB>] [vcpus=<n>] [initrd=<module index>] [-- <kernel command line>]
//! ```
//!
//! Defaults are xl's: `memory=128`, `vcpus=1`; the name defaults to `domU<k>` (k-th domU).
//! `initrd=` names a later boot module (indices count from 0, dom0's kernel being module 0);
//! that module is then that domU's initrd and nothing else. Everything after ` -- ` is the
//! kernel's command line. A description with an error is reported and its domain skipped.

use alloc::string::{String, ToString};
use core::fmt;

/// One parsed description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomuSpec {
    /// Domain name (`xl list`).
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// Boot-module index of the initrd, if any.
    pub initrd: Option<usize>,
    /// The kernel's command line.
    pub cmdline: String,
}

/// Why a description was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SpecError {
    /// An item that is not `key=value` or a key this syntax does not have.
    UnknownItem(String),
    /// A value that does not parse or is out of range.
    BadValue(&'static str, String),
    /// `initrd=` names this module, an earlier one, or one that does not exist.
    BadInitrd(usize),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::UnknownItem(s) => write!(f, "unknown item '{s}'"),
            SpecError::BadValue(k, v) => write!(f, "bad value '{v}' for {k}="),
            SpecError::BadInitrd(i) => write!(f, "initrd={i} is not a later boot module"),
        }
    }
}

/// Largest `memory=` accepted (MiB); the domain builder still checks what is free.
const MAX_MEMORY_MIB: u64 = 1 << 20;
/// Largest `vcpus=` (the legacy `vcpu_info` slots in `shared_info`).
pub const MAX_VCPUS: u32 = 32;

/// Whether a cooked module command line describes a domU.
pub fn is_domu(cmdline: &str) -> bool {
    cmdline == "domU" || cmdline.starts_with("domU ")
}

/// Parses the description of module `index` (of `nr_modules`), the `ordinal`-th domU.
pub fn parse(
    cmdline: &str,
    index: usize,
    nr_modules: usize,
    ordinal: usize,
) -> Result<DomuSpec, SpecError> {
    let rest = cmdline.strip_prefix("domU").unwrap_or(cmdline);
    let (items, kernel) = match rest.find(" -- ") {
        Some(i) => (&rest[..i], rest[i + 4..].trim()),
        None => (rest.strip_suffix(" --").unwrap_or(rest), ""),
    };
    let mut spec = DomuSpec {
        name: alloc::format!("domU{ordinal}"),
        memory_mib: 128,
        vcpus: 1,
        initrd: None,
        cmdline: kernel.to_string(),
    };
    for item in items.split_ascii_whitespace() {
        let Some((key, value)) = item.split_once('=') else {
            return Err(SpecError::UnknownItem(item.to_string()));
        };
        let bad = |k| SpecError::BadValue(k, value.to_string());
        match key {
            "name" => {
                let ok = !value.is_empty()
                    && value.len() <= 64
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                if !ok {
                    return Err(bad("name"));
                }
                spec.name = value.to_string();
            }
            "memory" => {
                spec.memory_mib = value
                    .parse()
                    .ok()
                    .filter(|m| (1..=MAX_MEMORY_MIB).contains(m))
                    .ok_or_else(|| bad("memory"))?;
            }
            "vcpus" => {
                spec.vcpus = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_VCPUS).contains(n))
                    .ok_or_else(|| bad("vcpus"))?;
            }
            "initrd" => {
                let i: usize = value.parse().map_err(|_| bad("initrd"))?;
                if i <= index || i >= nr_modules {
                    return Err(SpecError::BadInitrd(i));
                }
                spec.initrd = Some(i);
            }
            _ => return Err(SpecError::UnknownItem(item.to_string())),
        }
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_full_form() {
        assert!(is_domu("domU") && is_domu("domU name=a") && !is_domu("domUx"));
        let s = parse("domU", 2, 3, 1).unwrap();
        assert_eq!(
            (s.name.as_str(), s.memory_mib, s.vcpus, s.initrd),
            ("domU1", 128, 1, None)
        );
        assert_eq!(s.cmdline, "");
        let s = parse(
            "domU name=web-1 memory=256 vcpus=2 initrd=3 -- console=hvc0 root=/dev/ram -- x",
            2,
            4,
            1,
        )
        .unwrap();
        assert_eq!(s.name, "web-1");
        assert_eq!((s.memory_mib, s.vcpus, s.initrd), (256, 2, Some(3)));
        assert_eq!(s.cmdline, "console=hvc0 root=/dev/ram -- x");
        assert_eq!(parse("domU memory=64 --", 1, 2, 2).unwrap().cmdline, "");
    }

    #[test]
    fn errors_name_the_item() {
        assert_eq!(
            parse("domU mem=64", 1, 2, 1),
            Err(SpecError::UnknownItem("mem=64".into()))
        );
        assert_eq!(
            parse("domU quiet", 1, 2, 1),
            Err(SpecError::UnknownItem("quiet".into()))
        );
        assert_eq!(
            parse("domU memory=0", 1, 2, 1),
            Err(SpecError::BadValue("memory", "0".into()))
        );
        assert_eq!(
            parse("domU vcpus=33", 1, 2, 1),
            Err(SpecError::BadValue("vcpus", "33".into()))
        );
        assert_eq!(
            parse("domU name=a/b", 1, 2, 1),
            Err(SpecError::BadValue("name", "a/b".into()))
        );
        // The initrd must be a later module.
        assert_eq!(
            parse("domU initrd=1", 1, 3, 1),
            Err(SpecError::BadInitrd(1))
        );
        assert_eq!(
            parse("domU initrd=3", 1, 3, 1),
            Err(SpecError::BadInitrd(3))
        );
        assert_eq!(parse("domU initrd=2", 1, 3, 1).unwrap().initrd, Some(2));
    }
}
