//! The guest command line (`start_info.cmd_line`): `suites=NAME[,NAME...]` picks the suites to
//! run (`all` or no `suites=` means all of them); other words are ignored (Xen may append its
//! own, such as `acpi=off`).

/// Most suite names one `suites=` can list.
pub const MAX_SELECTED: usize = 16;

/// The suites the command line asks for.
pub struct Selection<'a> {
    /// `None`: all suites.
    names: Option<([&'a [u8]; MAX_SELECTED], usize)>,
}

impl<'a> Selection<'a> {
    /// Parses the command line (the bytes before its NUL).
    pub fn parse(cmdline: &'a [u8]) -> Self {
        let mut sel = Selection { names: None };
        for word in cmdline.split(|b| b.is_ascii_whitespace()) {
            let Some(list) = word.strip_prefix(b"suites=") else {
                continue;
            };
            let mut names = [&[][..]; MAX_SELECTED];
            let mut n = 0;
            let mut all = false;
            for name in list.split(|&b| b == b',').filter(|s| !s.is_empty()) {
                if name == b"all" {
                    all = true;
                } else if n < MAX_SELECTED && !names[..n].contains(&name) {
                    names[n] = name;
                    n += 1;
                }
            }
            // The last `suites=` wins.
            sel.names = if all { None } else { Some((names, n)) };
        }
        sel
    }

    /// Whether suite `name` should run.
    pub fn wants(&self, name: &str) -> bool {
        match &self.names {
            None => true,
            Some((names, n)) => names[..*n].contains(&name.as_bytes()),
        }
    }

    /// The selected names (empty for "all").
    pub fn names(&self) -> &[&'a [u8]] {
        match &self.names {
            None => &[],
            Some((names, n)) => &names[..*n],
        }
    }
}
