//! Boot-time domU descriptions: a boot module whose (cooked) command line starts with `domU`
//! is a PV kernel to start as an unprivileged domain beside dom0.
//!
//! ```text
//! domU [name=<name>] [type=pv|pvh] [memory=<MiB>] [vcpus=<n>] [cpus=<list>] [weight=<w>]
//!      [cap=<pct>] [initrd=<module index>] [-- <kernel command line>]
//! ```
//!
//! Defaults are xl's: `type=pv`, `memory=128`, `vcpus=1`, `cpus=all`, `weight=256`, `cap=0`
//! (none); the name defaults to `domU<k>` (k-th domU). `cpus=` is the vCPUs' hard affinity in
//! xl's CPU-list syntax (`1`, `0-1`, `0-3,^2`, `all`): they are placed and may migrate only
//! within it. `weight=` and `cap=` are the credit scheduler's (xl's `sched-credit` ranges:
//! weight 1 to 65535, cap 0 to 100 × vcpus percent of one pCPU).
//! `initrd=` names a later boot module (indices count from 0, dom0's kernel being module 0);
//! that module is then that domU's initrd and nothing else. Everything after ` -- ` is the
//! kernel's command line. A description with an error is reported and its domain skipped.

use crate::sched::CpuMask;
use alloc::string::{String, ToString};
use core::fmt;

/// What kind of guest the domU is (xl's `type=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DomainKind {
    /// `type=pv`: a paravirtualised guest (the default).
    #[default]
    Pv,
    /// `type=pvh`: a PVH guest (hardware-virtualised, no emulated devices).
    Pvh,
}

/// One parsed description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomuSpec {
    /// Domain name (`xl list`).
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Number of vCPUs.
    pub vcpus: u32,
    /// The CPUs its vCPUs may run on (xl's `cpus=`; default all).
    pub cpus: CpuMask,
    /// PV or PVH.
    pub kind: DomainKind,
    /// Credit-scheduler weight (1..=65535).
    pub weight: u16,
    /// Credit-scheduler cap in percent of one pCPU (0: none; at most 100 × `vcpus`).
    pub cap: u16,
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
        cpus: CpuMask::all(),
        kind: DomainKind::Pv,
        weight: 256,
        cap: 0,
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
            "cpus" => {
                spec.cpus = CpuMask::parse_list(value).ok_or_else(|| bad("cpus"))?;
            }
            "type" => {
                spec.kind = match value {
                    "pv" => DomainKind::Pv,
                    "pvh" => DomainKind::Pvh,
                    _ => return Err(bad("type")),
                };
            }
            "weight" => {
                spec.weight = value
                    .parse()
                    .ok()
                    .filter(|&w| w >= 1)
                    .ok_or_else(|| bad("weight"))?;
            }
            "cap" => {
                spec.cap = value.parse().map_err(|_| bad("cap"))?;
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
    // Checked once `vcpus=` is known, wherever it came.
    if u32::from(spec.cap) > spec.vcpus * 100 {
        return Err(SpecError::BadValue("cap", spec.cap.to_string()));
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
        assert_eq!((s.kind, s.weight, s.cap), (DomainKind::Pv, 256, 0));
        assert_eq!(s.cpus, CpuMask::all());
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
    fn scheduler_items_and_type() {
        let s = parse("domU type=pvh weight=512 cap=150 vcpus=2 -- x", 1, 2, 1).unwrap();
        assert_eq!(
            (s.kind, s.weight, s.cap, s.vcpus),
            (DomainKind::Pvh, 512, 150, 2)
        );
        let s = parse("domU weight=1 cap=100", 1, 2, 1).unwrap();
        assert_eq!((s.kind, s.weight, s.cap), (DomainKind::Pv, 1, 100));
        assert_eq!(parse("domU weight=65535", 1, 2, 1).unwrap().weight, 65535);
        assert_eq!(parse("domU type=pv", 1, 2, 1).unwrap().kind, DomainKind::Pv);
        for (item, key, value) in [
            ("weight=0", "weight", "0"),
            ("weight=65536", "weight", "65536"),
            ("weight=-1", "weight", "-1"),
            ("weight=", "weight", ""),
            ("cap=101", "cap", "101"),
            ("cap=x", "cap", "x"),
            ("cap=70000", "cap", "70000"),
            ("type=hvm", "type", "hvm"),
            ("type=PV", "type", "PV"),
        ] {
            assert_eq!(
                parse(&alloc::format!("domU {item}"), 1, 2, 1),
                Err(SpecError::BadValue(key, value.into())),
                "{item}"
            );
        }
        // The cap bound follows `vcpus=`, before or after it.
        assert_eq!(parse("domU cap=300 vcpus=3", 1, 2, 1).unwrap().cap, 300);
        assert_eq!(
            parse("domU vcpus=2 cap=201", 1, 2, 1),
            Err(SpecError::BadValue("cap", "201".into()))
        );
    }

    #[test]
    fn cpus_is_xls_affinity_list() {
        let cpus = |item: &str| parse(&alloc::format!("domU {item}"), 1, 2, 1).map(|s| s.cpus);
        assert_eq!(cpus("cpus=1"), Ok(CpuMask::of(1)));
        assert_eq!(cpus("cpus=all"), Ok(CpuMask::all()));
        let m = cpus("cpus=0-3,^2 vcpus=2").unwrap();
        assert_eq!(m.iter().collect::<alloc::vec::Vec<_>>(), [0, 1, 3]);
        for bad in [
            "cpus=",
            "cpus=x",
            "cpus=2-1",
            "cpus=^1",
            "cpus=256",
            "cpus=nodes:0",
        ] {
            assert_eq!(
                cpus(bad),
                Err(SpecError::BadValue("cpus", bad[5..].into())),
                "{bad}"
            );
        }
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
