//! A small command-line parser: `--flag`, `--opt VALUE` / `--opt=VALUE`, and everything after
//! `--` kept verbatim.

use crate::util::Result;

/// Parsed arguments of one xtask command.
#[derive(Debug, Default)]
pub struct Args {
    /// `(name, value)` in order; flags have `None`.
    opts: Vec<(String, Option<String>)>,
    /// Arguments after `--`.
    pub rest: Vec<String>,
}

impl Args {
    /// Parses `argv`. `flags` take no value, `valued` take one; anything else is an error.
    pub fn parse(argv: &[String], flags: &[&str], valued: &[&str]) -> Result<Args> {
        let mut args = Args::default();
        let mut it = argv.iter();
        while let Some(a) = it.next() {
            if a == "--" {
                args.rest = it.cloned().collect();
                break;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            if flags.contains(&name) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                args.opts.push((name.to_string(), None));
            } else if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .cloned()
                        .ok_or_else(|| format!("{name} needs a value"))?,
                };
                args.opts.push((name.to_string(), Some(value)));
            } else {
                return Err(format!("unexpected argument {a:?} (see --help)"));
            }
        }
        Ok(args)
    }

    /// Whether `name` was given.
    pub fn flag(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    /// The last value of `name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    /// All values of `name`, in order.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.opts
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.as_deref())
            .collect()
    }

    /// The value of `name` parsed as a number in `min..=max`.
    pub fn number(&self, name: &str, min: u32, max: u32) -> Result<Option<u32>> {
        self.value(name)
            .map(|v| {
                v.parse::<u32>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| format!("{name} {v:?}: expected a number in {min}..={max}"))
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_flags_values_and_rest() {
        let a = Args::parse(
            &argv(&[
                "--grub",
                "--smp",
                "4",
                "--module=/a x=1",
                "--module",
                "/b",
                "--",
                "-d",
                "int",
            ]),
            &["--grub"],
            &["--smp", "--module"],
        )
        .unwrap();
        assert!(a.flag("--grub"));
        assert_eq!(a.number("--smp", 1, 64).unwrap(), Some(4));
        assert_eq!(a.values("--module"), ["/a x=1", "/b"]);
        assert_eq!(a.rest, ["-d", "int"]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(Args::parse(&argv(&["--nope"]), &[], &[]).is_err());
        assert!(Args::parse(&argv(&["--smp"]), &[], &["--smp"]).is_err());
        assert!(Args::parse(&argv(&["--grub=1"]), &["--grub"], &[]).is_err());
        let a = Args::parse(&argv(&["--smp", "0"]), &[], &["--smp"]).unwrap();
        assert!(a.number("--smp", 1, 64).is_err());
    }
}
