//! Console output: `HYPERVISOR_console_io(CONSOLEIO_write)`, one hypercall per line (a PVH
//! dom0 may use it, and Xen prints dom0's output raw). Before the hypercall page is installed,
//! and always in a domU ([`crate::role`]), lines go to the HVM debug port 0xe9 instead, one
//! `out` per byte (the hypervisor prints each line as `(d<N>) <line>`). Keep lines under 128
//! bytes: Xen copies guest output in 128-byte chunks and may print its own messages in between.

use core::arch::asm;

use crate::console_line::Sink;
pub(crate) use crate::console_line::{CStr, println};
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

/// The console as the shared line buffer's [`Sink`].
pub struct Console;

impl Sink for Console {
    fn write(bytes: &[u8]) {
        write(bytes);
    }
}

/// A line being built for the console.
pub type Line = crate::console_line::Line<Console, LINE_MAX>;
