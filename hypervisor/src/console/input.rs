//! Serial console input (Xen's `serial_rx` / `switch_serial_input`): typed keys go to the
//! hypervisor's debug keys, to dom0 (`CONSOLEIO_read`, signalled with `VIRQ_CONSOLE`) or to a
//! domU's console ring, whichever has the input focus. Three `CTRL-a` in a row move the focus
//! on: Xen, dom0, then each boot-time domU, then Xen again. Dom0 has it at boot.

use crate::domain::Domain;
use alloc::collections::VecDeque;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use spin::Mutex;

/// The console-input interrupt vector (the serial port's IRQ is routed here).
pub const SERIAL_VECTOR: u8 = 0xf0;

/// `CTRL-a`.
const SWITCH_CODE: u8 = 0x01;
/// Bytes kept for dom0 until it reads them (Xen's `SERIAL_RX_SIZE`).
const DOM0_RX_SIZE: usize = 128;

/// Who has the input: 0 the hypervisor, n > 0 the (n-1)-th domain in the registry.
static FOCUS: AtomicUsize = AtomicUsize::new(1);
/// Consecutive `CTRL-a`s seen.
static SWITCH_COUNT: AtomicU32 = AtomicU32::new(0);
/// Input waiting for dom0's `CONSOLEIO_read`.
static DOM0_RX: Mutex<VecDeque<u8>> = Mutex::new(VecDeque::new());

/// The serial interrupt: takes every waiting byte.
pub fn interrupt() {
    while let Some(b) = crate::console::serial_rx() {
        key(b);
    }
}

/// One received byte.
pub fn key(b: u8) {
    if b == SWITCH_CODE {
        if SWITCH_COUNT.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
            SWITCH_COUNT.store(0, Ordering::Relaxed);
            switch_focus();
        }
        return;
    }
    SWITCH_COUNT.store(0, Ordering::Relaxed);
    match focused_domain() {
        None => super::keys::handle(b),
        Some(d) if d.privileged => to_dom0(d, b),
        Some(d) => to_domu(d, b),
    }
}

/// The domain with the focus (`None`: the hypervisor).
fn focused_domain() -> Option<&'static Domain> {
    let f = FOCUS.load(Ordering::Relaxed);
    let d = crate::domain::registry::all()
        .into_iter()
        .nth(f.checked_sub(1)?)?;
    (!d.stopped.load(Ordering::Acquire)).then_some(d)
}

/// Moves the focus to the next live domain, or back to the hypervisor.
fn switch_focus() {
    let domains = crate::domain::registry::all();
    let mut f = FOCUS.load(Ordering::Relaxed);
    loop {
        f = (f + 1) % (domains.len() + 1);
        if f == 0 || !domains[f - 1].stopped.load(Ordering::Acquire) {
            break;
        }
    }
    FOCUS.store(f, Ordering::Relaxed);
    let to = match f {
        0 => alloc::string::String::from("Xen"),
        n => alloc::format!("DOM{}", domains[n - 1].id),
    };
    crate::printk!("*** Serial input to {to} (type 'CTRL-a' three times to switch input)\n");
}

fn to_dom0(d: &Domain, b: u8) {
    {
        let mut rx = DOM0_RX.lock();
        if rx.len() >= DOM0_RX_SIZE {
            return; // Xen drops input dom0 does not read.
        }
        rx.push_back(b);
    }
    if let Some(v0) = d.vcpus.first() {
        crate::pv::events::send_virq(v0, xen_abi::xen::VIRQ_CONSOLE);
    }
}

/// `CONSOLEIO_read`: takes up to `max` bytes of dom0's input.
pub fn dom0_read(max: usize) -> alloc::vec::Vec<u8> {
    let mut rx = DOM0_RX.lock();
    let n = rx.len().min(max);
    rx.drain(..n).collect()
}

fn to_domu(d: &Domain, b: u8) {
    super::ring::input(d, &[b]);
}
