//! The `xl list`-style table of domains printed on the console (at dom0 shutdown, and by the
//! `q` debug key).

use super::{Domain, DomainState};
use crate::printk;
use core::sync::atomic::Ordering;

/// `xl list`'s six state columns: running, blocked, paused, shutdown, crashed, dying.
pub fn state_flags(d: &Domain) -> [u8; 6] {
    let mut f = *b"------";
    let state = d.inner.lock().state;
    match state {
        DomainState::Running => {
            let up: alloc::vec::Vec<_> = d.vcpus.iter().filter(|v| v.is_up()).collect();
            if !up.is_empty() && up.iter().all(|v| v.blocked.load(Ordering::Relaxed)) {
                f[1] = b'b';
            } else if up.iter().any(|v| v.running.load(Ordering::Relaxed)) {
                f[0] = b'r';
            }
        }
        DomainState::Shutdown(_) => f[3] = b's',
        DomainState::Crashed => f[4] = b'c',
    }
    if d.stopped.load(Ordering::Acquire) && !d.relinquished.load(Ordering::Acquire) && !d.privileged
    {
        f[5] = b'd';
    }
    f
}

/// Prints the table.
pub fn print() {
    printk!(
        "{:<24}{:>5}{:>7}{:>6}  {:<7}{:>9}\n",
        "Name",
        "ID",
        "Mem",
        "VCPUs",
        "State",
        "Time(s)"
    );
    for d in super::registry::all() {
        let flags = state_flags(d);
        let mem = if d.relinquished.load(Ordering::Acquire) {
            0
        } else {
            d.tot_pages / 256
        };
        let up = d.vcpus.iter().filter(|v| v.is_up()).count();
        // Racy reads of other CPUs' counters: a snapshot, as `xl list` gives.
        let ns: u64 = d.vcpus.iter().map(|v| v.pv.time_running).sum();
        printk!(
            "{:<24}{:>5}{:>7}{:>6}  {:<7}{:>9}.{}\n",
            d.name,
            d.id,
            mem,
            up,
            core::str::from_utf8(&flags).unwrap_or("??????"),
            ns / 1_000_000_000,
            (ns / 100_000_000) % 10
        );
    }
}
