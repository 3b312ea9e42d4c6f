//! `conin`: console input typed on the serial console. Dom0 binds `VIRQ_CONSOLE` and reads
//! with `CONSOLEIO_read` (as Linux's `hvc_xen` does for dom0); a domU reads the `in` half of its
//! console ring when its console event channel fires. Each waits (bounded) for one line, reports
//! it, then dom0 waits for a second line before the suite ends, so a test can use the console
//! in between (switch the input with `CTRL-a` x3, type debug keys).
//!
//! Prints `CONIN ready` when it starts waiting. The verdict keys name the role
//! (`conin.dom0_line`, `conin.domu_line`) so a test can wait for each.

use xen_abi::hypercall as nr;
use xen_abi::xen::{CONSOLEIO_read, SIF_INITDOMAIN, StartInfo, VIRQ_CONSOLE};

use crate::console::println;
use crate::events as ev;
use crate::hypercall as hc;
use crate::verdict::{Rc, Suite};

/// Longest wait for a line, in ns of system time.
const PATIENCE_NS: u64 = 60_000_000_000;
/// Longest line kept.
const LINE: usize = 64;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = ev::map_shared_info(si);
    let cb = ev::register_callback();
    if rc != 0 || cb != 0 {
        s.check(
            "setup",
            false,
            format_args!("map={} callback={}", Rc(rc), Rc(cb)),
        );
        return;
    }
    ev::drain();
    if si.flags & SIF_INITDOMAIN != 0 {
        dom0(s);
    } else {
        domu(s, si);
    }
}

/// A line being received.
struct Line {
    buf: [u8; LINE],
    len: usize,
}

impl Line {
    const fn new() -> Self {
        Line {
            buf: [0; LINE],
            len: 0,
        }
    }

    /// Takes `bytes`; true once a line end arrived.
    fn take(&mut self, bytes: &[u8]) -> bool {
        for &b in bytes {
            if b == b'\n' || b == b'\r' {
                return self.len > 0;
            }
            if self.len < LINE {
                self.buf[self.len] = b;
                self.len += 1;
            }
        }
        false
    }

    fn text(&self) -> &str {
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?")
    }
}

/// Waits until `port` fires (events unmasked meanwhile) or the patience runs out.
fn wait_event(port: u32, deadline: u64) -> bool {
    ev::set_upcall_mask(0);
    let mut seen = false;
    while !seen && ev::now_ns() < deadline {
        ev::poke();
        seen = ev::seen(port);
    }
    ev::set_upcall_mask(1);
    ev::reset();
    seen
}

/// `CONSOLEIO_read` into `buf`: the bytes read, or an error code.
fn console_read(buf: &mut [u8]) -> i64 {
    // SAFETY: Xen writes at most `buf.len()` bytes into `buf`.
    unsafe {
        hc::hypercall3(
            nr::console_io,
            u64::from(CONSOLEIO_read),
            buf.len() as u64,
            buf.as_mut_ptr() as u64,
        )
    }
}

/// Reads one line from `CONSOLEIO_read`, waiting for `VIRQ_CONSOLE` between reads.
fn dom0_line(port: u32, virqs: &mut u32) -> Option<Line> {
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let mut line = Line::new();
    let mut buf = [0u8; 16];
    loop {
        let n = console_read(&mut buf);
        if n < 0 {
            return None;
        }
        if line.take(&buf[..n as usize]) {
            return Some(line);
        }
        if n == 0 {
            if !wait_event(port, deadline) {
                return None;
            }
            *virqs += 1;
        }
    }
}

fn dom0(s: &mut Suite) {
    let (rc, port) = ev::bind_virq(VIRQ_CONSOLE, 0);
    s.expect_rc("bind_virq_console", rc, 0);
    ev::unmask(port);
    println!("CONIN ready");
    let mut virqs = 0;
    let first = dom0_line(port, &mut virqs);
    s.check(
        "dom0_line",
        first.is_some() && virqs > 0,
        format_args!(
            "line={} virq_console={}",
            first.as_ref().map_or("none", Line::text),
            virqs > 0
        ),
    );
    // Keep the machine up until the tester is done with the console.
    let second = dom0_line(port, &mut virqs);
    s.check(
        "dom0_second_line",
        second.is_some(),
        format_args!("line={}", second.as_ref().map_or("none", Line::text)),
    );
    ev::close(port);
}

/// `xencons_interface` offsets of the input half: `in[1024]` at 0, `in_cons`, `in_prod`.
const IN_SIZE: u32 = 1024;
const IN_CONS: u64 = 3072;
const IN_PROD: u64 = 3076;

fn domu(s: &mut Suite, si: &StartInfo) {
    let con = si.console.domu();
    let Some(ring) = crate::mm::mfn_to_va(si, con.mfn) else {
        s.check("ring", false, format_args!("mapped=false"));
        return;
    };
    ev::unmask(con.evtchn);
    println!("CONIN ready");
    // SAFETY: the ring is the guest's own page; the indices are aligned u32s the backend
    // updates concurrently.
    let (cons, prod) = unsafe {
        (
            core::sync::atomic::AtomicU32::from_ptr((ring + IN_CONS) as *mut u32),
            core::sync::atomic::AtomicU32::from_ptr((ring + IN_PROD) as *mut u32),
        )
    };
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let mut line = Line::new();
    let mut done = false;
    while !done {
        use core::sync::atomic::Ordering::SeqCst;
        let (c, p) = (cons.load(SeqCst), prod.load(SeqCst));
        let mut i = c;
        while i != p && !done {
            // SAFETY: inside the ring page.
            let b = unsafe { ((ring + u64::from(i % IN_SIZE)) as *const u8).read_volatile() };
            done = line.take(&[b]);
            i = i.wrapping_add(1);
        }
        cons.store(i, SeqCst);
        if !done && (i == p) && !wait_event(con.evtchn, deadline) {
            break;
        }
    }
    s.check(
        "domu_line",
        done,
        format_args!("line={}", if done { line.text() } else { "none" }),
    );
}
