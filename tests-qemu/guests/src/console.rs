//! Console output. Dom0 writes through `HYPERVISOR_console_io(CONSOLEIO_write)`, each line with
//! one hypercall (up to [`LINE_MAX`] bytes), so a line never interleaves with another writer's
//! output at the hypervisor's line granularity. A domU (no `SIF_INITDOMAIN`; Xen refuses it
//! `console_io`) writes its console ring (`start_info.console.domU`) and signals the console
//! event channel, as Linux's `hvc_xen` does.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::console_line::Sink;
pub(crate) use crate::console_line::{CStr, println};
use crate::hypercall::console_write;
use xen_abi::xen::{SIF_INITDOMAIN, StartInfo};

/// VA of the console ring page (0: dom0, use `console_io`).
static RING: AtomicU64 = AtomicU64::new(0);
/// The console event channel (domU).
static RING_PORT: AtomicU32 = AtomicU32::new(0);

/// `xencons_interface` offsets: `out[2048]` at 1024, then `out_cons` and `out_prod`.
const OUT: u64 = 1024;
const OUT_SIZE: u32 = 2048;
const OUT_CONS: u64 = 3080;
const OUT_PROD: u64 = 3084;

/// Picks the console: the ring for a domU, `console_io` for dom0.
pub fn init(si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN != 0 {
        return;
    }
    let c = si.console.domu();
    if let Some(va) = crate::mm::mfn_to_va(si, c.mfn) {
        RING_PORT.store(c.evtchn, Ordering::SeqCst);
        RING.store(va, Ordering::SeqCst);
    }
}

/// Writes `bytes` to the console.
fn write(bytes: &[u8]) {
    let ring = RING.load(Ordering::SeqCst);
    if ring == 0 {
        console_write(bytes);
        return;
    }
    // SAFETY: the ring page is the guest's own, mapped in its initial mapping; the indices
    // are naturally aligned u32s the backend updates concurrently.
    let (cons, prod) = unsafe {
        (
            AtomicU32::from_ptr((ring + OUT_CONS) as *mut u32),
            AtomicU32::from_ptr((ring + OUT_PROD) as *mut u32),
        )
    };
    let port = RING_PORT.load(Ordering::SeqCst);
    let mut rest = bytes;
    while !rest.is_empty() {
        let p = prod.load(Ordering::SeqCst);
        let room = OUT_SIZE - p.wrapping_sub(cons.load(Ordering::SeqCst));
        if room == 0 {
            // Full: kick the backend, which drains the ring when signalled.
            crate::events::send(port);
            continue;
        }
        let n = rest.len().min(room as usize);
        for (i, &b) in rest[..n].iter().enumerate() {
            let at = ring + OUT + u64::from(p.wrapping_add(i as u32) % OUT_SIZE);
            // SAFETY: inside the ring page.
            unsafe { (at as *mut u8).write_volatile(b) };
        }
        prod.store(p.wrapping_add(n as u32), Ordering::SeqCst);
        rest = &rest[n..];
    }
    crate::events::send(port);
}

/// Bytes buffered before a partial line is flushed.
pub const LINE_MAX: usize = 512;

/// The console as the shared line buffer's [`Sink`].
pub struct Console;

impl Sink for Console {
    fn write(bytes: &[u8]) {
        write(bytes);
    }
}

/// A line being built for the console.
pub type Line = crate::console_line::Line<Console, LINE_MAX>;

/// The bytes of a NUL-terminated buffer before the NUL.
pub fn c_bytes(buf: &[u8]) -> &[u8] {
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    &buf[..n]
}
