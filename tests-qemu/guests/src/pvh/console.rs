//! Console output: `HYPERVISOR_console_io(CONSOLEIO_write)`, one hypercall per line (a PVH
//! dom0 may use it, and Xen prints dom0's output raw). Before the hypercall page is installed,
//! and always in a domU ([`crate::role`]), lines go to the HVM debug port 0xe9 instead, one
//! `out` per byte (the hypervisor prints each line as `(d<N>) <line>`). Keep lines under 128
//! bytes: Xen copies guest output in 128-byte chunks and may print its own messages in between.

use core::arch::asm;
use core::fmt;

use crate::hypercall::{console_write, installed};
use crate::role;
use xen_abi::arch_x86::XEN_HVM_DEBUGCONS_IOPORT;
use xen_abi::errno::Errno;

/// Bytes buffered before a partial line is flushed.
pub const LINE_MAX: usize = 256;

/// Writes `bytes` to the console.
fn write(bytes: &[u8]) {
    if installed() && !role::is_domu() {
        if console_write(bytes) != Errno::EPERM.to_ret() {
            return;
        }
        // Refused: a domU (Xen release builds). Say it through the debug port from now on.
        role::set_domu();
    }
    debugcons_write(bytes);
}

/// Writes `bytes` to the HVM debug console port, one `out` each.
fn debugcons_write(bytes: &[u8]) {
    for &b in bytes {
        // SAFETY: an OUT to the debug-console port has no effect on guest memory.
        unsafe {
            asm!("out dx, al", in("dx") XEN_HVM_DEBUGCONS_IOPORT, in("al") b, options(nomem, nostack))
        };
    }
}

/// A line being built; sent (with a trailing newline) by [`Line::emit`].
pub struct Line {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; LINE_MAX],
            len: 0,
        }
    }

    fn flush(&mut self) {
        if self.len > 0 {
            write(&self.buf[..self.len]);
            self.len = 0;
        }
    }

    /// Appends a newline and writes the line out.
    pub fn emit(mut self) {
        if self.len == LINE_MAX {
            self.flush();
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        self.flush();
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            // One line per line: embedded newlines would break the verdict protocol.
            let b = if b == b'\n' || b == b'\r' { b' ' } else { b };
            if self.len == LINE_MAX {
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
