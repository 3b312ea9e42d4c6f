//! `watch`: dom0 waits for the boot-time domUs to stop. It binds `VIRQ_DOM_EXC`, which the
//! hypervisor raises when a domU shuts down or crashes, and waits (bounded) for as many as the
//! command line's `domus=N` (default 1), so the machine stays up while they run.

use xen_abi::xen::{SIF_INITDOMAIN, StartInfo, VIRQ_DOM_EXC};

use crate::events as ev;
use crate::verdict::{Rc, Suite};

/// Longest wait for all domUs, in ns of system time.
const PATIENCE_NS: u64 = 300_000_000_000;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN == 0 {
        s.skip("role", format_args!("not dom0"));
        return;
    }
    let want = domus(si.cmd_line_bytes()).unwrap_or(1);
    let rc = ev::map_shared_info(si);
    let cb = ev::register_callback();
    let (bind, port) = ev::bind_virq(VIRQ_DOM_EXC, 0);
    if rc != 0 || cb != 0 || bind != 0 {
        s.check(
            "setup",
            false,
            format_args!("map={} callback={} bind={}", Rc(rc), Rc(cb), Rc(bind)),
        );
        return;
    }
    ev::drain();
    ev::unmask(port);
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    let mut seen = 0;
    while seen < want && ev::now_ns() < deadline {
        ev::set_upcall_mask(0);
        while !ev::seen(port) && ev::now_ns() < deadline {
            ev::poke();
        }
        ev::set_upcall_mask(1);
        if ev::seen(port) {
            // One VIRQ may stand for several domains (it is not counted per domain).
            seen += 1;
            ev::reset();
        }
    }
    s.check(
        "domus_stopped",
        seen >= want,
        format_args!("expected={want} reached={}", seen >= want),
    );
    ev::close(port);
}

/// `domus=N` from the command line.
fn domus(cmdline: &[u8]) -> Option<u32> {
    cmdline
        .split(|b| b.is_ascii_whitespace())
        .find_map(|w| w.strip_prefix(b"domus="))
        .and_then(|v| core::str::from_utf8(v).ok()?.parse().ok())
}
