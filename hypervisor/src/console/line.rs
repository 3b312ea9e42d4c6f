//! Line discipline: prefix every line with `(XEN) ` and use CRLF on serial lines.

/// The prefix of hypervisor lines (Xen's).
pub const PREFIX: &[u8] = b"(XEN) ";

/// Splits output into lines, emitting the prefix at the start of each one.
#[derive(Default)]
pub struct LineState {
    mid_line: bool,
}

impl LineState {
    /// At the start of a line.
    pub const fn new() -> Self {
        Self { mid_line: false }
    }

    /// Feeds `text`, calling `out` with the bytes to emit (prefixes included; `\n` kept bare:
    /// serial sinks add the `\r`).
    pub fn feed(&mut self, text: &[u8], mut out: impl FnMut(&[u8])) {
        for chunk in text.split_inclusive(|&b| b == b'\n') {
            if !self.mid_line {
                out(PREFIX);
            }
            out(chunk);
            self.mid_line = chunk.last() != Some(&b'\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn run(parts: &[&str]) -> alloc::string::String {
        let mut st = LineState::default();
        let mut v = Vec::new();
        for p in parts {
            st.feed(p.as_bytes(), |b| v.extend_from_slice(b));
        }
        alloc::string::String::from_utf8(v).unwrap()
    }

    #[test]
    fn prefixes_each_line_once() {
        assert_eq!(run(&["a\nb\n"]), "(XEN) a\n(XEN) b\n");
        assert_eq!(run(&["par", "tial\n", "x"]), "(XEN) partial\n(XEN) x");
        assert_eq!(run(&["\n\n"]), "(XEN) \n(XEN) \n");
    }
}
