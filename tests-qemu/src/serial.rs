//! Line-oriented access to a captured serial log.
//!
//! The raw bytes are kept as they arrived; the line API works on a cleaned copy without terminal
//! escape sequences (GRUB draws its menu with them), carriage returns or other control
//! characters, so hypervisor lines can be matched by prefix. Firmware text left without a
//! newline (SeaBIOS ends with `Booting from ROM..`) is split off the hypervisor's first line.

/// The prefix of every hypervisor log line.
pub const XEN_PREFIX: &str = "(XEN) ";

/// A captured serial log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SerialLog {
    raw: String,
    clean: String,
}

impl SerialLog {
    /// Wraps captured bytes (invalid UTF-8 is replaced).
    pub fn new(bytes: &[u8]) -> Self {
        let raw = String::from_utf8_lossy(bytes).into_owned();
        let clean = split_glued_lines(&clean_terminal_output(&raw));
        SerialLog { raw, clean }
    }

    /// The text as received.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The cleaned text (no escape sequences, `\r` or control characters other than `\n`/`\t`).
    pub fn text(&self) -> &str {
        &self.clean
    }

    /// Whether the cleaned text contains `needle` anywhere.
    pub fn contains(&self, needle: &str) -> bool {
        self.clean.contains(needle)
    }

    /// All lines of the cleaned text.
    pub fn lines(&self) -> impl Iterator<Item = &str> {
        self.clean.lines()
    }

    /// The hypervisor's lines with the `(XEN) ` prefix removed (other lines are skipped).
    pub fn xen_lines(&self) -> impl Iterator<Item = &str> {
        self.lines().filter_map(|l| l.strip_prefix(XEN_PREFIX))
    }

    /// The first line starting with `prefix`.
    pub fn find_line(&self, prefix: &str) -> Option<&str> {
        self.lines().find(|l| l.starts_with(prefix))
    }

    /// Every line starting with `prefix`.
    pub fn find_lines(&self, prefix: &str) -> Vec<&str> {
        self.lines().filter(|l| l.starts_with(prefix)).collect()
    }

    /// The index (in [`lines`](Self::lines)) of the first line starting with `prefix`.
    pub fn line_index(&self, prefix: &str) -> Option<usize> {
        self.lines().position(|l| l.starts_with(prefix))
    }

    /// For the first hypervisor line `(XEN) <key><rest>`, returns `<rest>` trimmed. E.g.
    /// `xen_value("Boot protocol:")` on `(XEN) Boot protocol: multiboot1` gives `multiboot1`.
    pub fn xen_value(&self, key: &str) -> Option<&str> {
        self.xen_lines()
            .find_map(|l| l.strip_prefix(key))
            .map(str::trim)
    }

    /// The lines strictly between the first line starting with `begin` and the next line after
    /// it starting with `end`; `None` if either is missing.
    pub fn block(&self, begin: &str, end: &str) -> Option<Vec<&str>> {
        let mut lines = self.lines().skip_while(|l| !l.starts_with(begin));
        lines.next()?;
        let mut block = Vec::new();
        for l in lines {
            if l.starts_with(end) {
                return Some(block);
            }
            block.push(l);
        }
        None
    }

    /// The hypervisor's e820 map: the entries printed after `(XEN) Xen-e820 RAM map:`.
    pub fn ram_map(&self) -> Vec<E820Entry> {
        self.lines()
            .skip_while(|l| !l.starts_with("(XEN) Xen-e820 RAM map:"))
            .skip(1)
            .map_while(parse_e820_line)
            .collect()
    }

    /// The last `n` lines, for failure messages.
    pub fn tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// One e820 entry as the hypervisor prints it: `[start, end] (kind)`, `end` inclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E820Entry {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
    /// The type in parentheses, e.g. `usable`, `reserved`, `ACPI data`.
    pub kind: String,
}

impl E820Entry {
    /// Bytes covered.
    pub fn size(&self) -> u64 {
        self.end.saturating_sub(self.start).saturating_add(1)
    }

    /// Whether this is usable RAM.
    pub fn is_usable(&self) -> bool {
        self.kind == "usable"
    }
}

/// Parses `(XEN)  [0000000000000000, 000000000009fbff] (usable)`.
pub fn parse_e820_line(line: &str) -> Option<E820Entry> {
    let rest = line.strip_prefix("(XEN)")?.trim_start();
    let rest = rest.strip_prefix('[')?;
    let (range, rest) = rest.split_once(']')?;
    let (start, end) = range.split_once(',')?;
    let start = u64::from_str_radix(start.trim().trim_start_matches("0x"), 16).ok()?;
    let end = u64::from_str_radix(end.trim().trim_start_matches("0x"), 16).ok()?;
    let kind = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    if end < start {
        return None;
    }
    Some(E820Entry {
        start,
        end,
        kind: kind.to_string(),
    })
}

/// Starts a new line where a hypervisor line was glued to the end of other output: a line that
/// does not start with `(XEN)` but contains `(XEN) ` is split before it.
pub fn split_glued_lines(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match line.find(XEN_PREFIX) {
            Some(p) if p > 0 && !line.starts_with("(XEN)") => {
                out.push_str(&line[..p]);
                out.push('\n');
                out.push_str(&line[p..]);
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// Removes ANSI/VT100 escape sequences, `\r` and control characters other than `\n` and `\t`.
pub fn clean_terminal_output(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ESC \.
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                // Two-character sequences (ESC c, ESC 7, ESC ( B ...).
                Some('(') | Some(')') => {
                    chars.next();
                }
                _ => {}
            },
            '\n' | '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\u{1b}[2J\u{1b}[1;1HBooting `Xenolith'\r\n\r\n\
Booting from ROM..(XEN) Xenolith version 0.1.0\r\n\
(XEN) Boot protocol: multiboot2\r\n\
(XEN) Xen-e820 RAM map:\r\n\
(XEN)  [0000000000000000, 000000000009fbff] (usable)\r\n\
(XEN)  [000000000009fc00, 000000000009ffff] (reserved)\r\n\
(XEN)  [0000000000100000, 000000001ffdffff] (usable)\r\n\
(XEN)  [00000000fffc0000, 00000000ffffffff] (ACPI data)\r\n\
(XEN) CPU0: APIC id 0 online\r\n\
(XEN) --- conring begin ---\n(XEN) a\n(XEN) b\n(XEN) --- conring end ---\n";

    #[test]
    fn cleaning_strips_escapes_and_cr() {
        let log = SerialLog::new(LOG.as_bytes());
        assert_eq!(log.lines().next(), Some("Booting `Xenolith'"));
        assert!(!log.text().contains('\r'));
        assert!(!log.text().contains('\u{1b}'));
        assert_eq!(
            clean_terminal_output("a\u{1b}]0;title\u{7}b\u{1b}(Bc\u{0}"),
            "abc"
        );
    }

    #[test]
    fn line_queries() {
        let log = SerialLog::new(LOG.as_bytes());
        assert_eq!(
            log.find_line("(XEN) Boot protocol"),
            Some("(XEN) Boot protocol: multiboot2")
        );
        assert_eq!(log.xen_value("Boot protocol:"), Some("multiboot2"));
        assert_eq!(log.xen_value("Nope"), None);
        assert_eq!(log.find_lines("(XEN)  [").len(), 4);
        assert_eq!(log.line_index("(XEN) Xenolith version"), Some(3));
        assert_eq!(log.lines().nth(2), Some("Booting from ROM.."));
        assert_eq!(
            log.block("(XEN) --- conring begin", "(XEN) --- conring end"),
            Some(vec!["(XEN) a", "(XEN) b"])
        );
        assert_eq!(log.block("(XEN) --- conring end", "(XEN) nothing"), None);
        assert_eq!(log.tail(2), "(XEN) b\n(XEN) --- conring end ---");
    }

    #[test]
    fn glued_lines_are_split_once() {
        assert_eq!(
            split_glued_lines("ab(XEN) x (XEN) y\n(XEN) (XEN) z\nq"),
            "ab\n(XEN) x (XEN) y\n(XEN) (XEN) z\nq"
        );
    }

    #[test]
    fn e820_map_parsing() {
        let log = SerialLog::new(LOG.as_bytes());
        let map = log.ram_map();
        assert_eq!(map.len(), 4);
        assert_eq!(
            map[2],
            E820Entry {
                start: 0x100000,
                end: 0x1ffdffff,
                kind: "usable".into()
            }
        );
        assert_eq!(map[3].kind, "ACPI data");
        assert_eq!(map[0].size(), 0x9fc00);
        assert!(parse_e820_line("(XEN)  [10, 5] (usable)").is_none());
        assert!(parse_e820_line("(XEN) CPU0: APIC id 0 online").is_none());
    }
}
