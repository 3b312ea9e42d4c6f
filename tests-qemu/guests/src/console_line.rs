//! The console's line buffer, shared by `pvtest` and `pvhtest` (`pvhtest` includes this file
//! with `#[path]`). Text is gathered into lines and each line goes out in one write through the
//! binary's [`Sink`]; each binary's `console` module names its `Line` type, which [`println!`]
//! uses.

use core::fmt;
use core::marker::PhantomData;

/// How a binary's console sends bytes out.
pub trait Sink {
    /// Writes `bytes` (one line, or a part of one that did not fit the buffer).
    fn write(bytes: &[u8]);
}

/// A line of up to `N` bytes being built; sent (with a trailing newline) by [`Line::emit`].
pub struct Line<S: Sink, const N: usize> {
    buf: [u8; N],
    len: usize,
    sink: PhantomData<S>,
}

impl<S: Sink, const N: usize> Line<S, N> {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; N],
            len: 0,
            sink: PhantomData,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            S::write(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Appends a newline and writes the line out.
    pub fn emit(mut self) {
        if self.len == N {
            self.flush();
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        self.flush();
    }
}

impl<S: Sink, const N: usize> fmt::Write for Line<S, N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // Keep one line per line: embedded newlines would break the verdict protocol.
            let b = if b == b'\n' || b == b'\r' { b' ' } else { b };
            if self.len == N {
                self.flush();
            }
            self.buf[self.len] = b;
            self.len += 1;
        }
        Ok(())
    }
}

/// Prints one line on the console.
macro_rules! println {
    ($($arg:tt)*) => {{
        let mut line = $crate::console::Line::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.emit();
    }};
}
pub(crate) use println;

/// Formats a byte string as text, stopping at the first NUL and escaping non-printables.
pub struct CStr<'a>(pub &'a [u8]);

impl fmt::Display for CStr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0.iter().take_while(|&&b| b != 0) {
            if b.is_ascii_graphic() || b == b' ' {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}
