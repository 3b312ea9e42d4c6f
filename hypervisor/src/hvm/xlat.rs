//! Guest-virtual memory of the HVM vCPU whose hypercall this CPU is handling.
//!
//! A PV guest's addresses are reachable directly (its page tables are live on the CPU); an
//! HVM guest's are not: they are translated through the guest's own page tables (its CR3 and
//! paging mode at the hypercall) and then the domain's nested tables. The HVM loop installs
//! that context for the duration of a hypercall; `guest_mem` uses it when present.

use crate::smpboot::NR_CPUS;
use core::sync::atomic::{AtomicBool, Ordering};
use spin::Mutex;
use xenolith_arch::hvm::ControlState;
use xenolith_arch::hvm::nested::NestedTables;
use xenolith_arch::hvm::walk;

/// How to reach the calling HVM vCPU's memory.
#[derive(Clone, Copy)]
struct Xlat {
    nested: &'static NestedTables,
    ctl: ControlState,
}

static CURRENT: [Mutex<Option<Xlat>>; NR_CPUS] = [const { Mutex::new(None) }; NR_CPUS];
/// Whether this CPU's [`CURRENT`] holds a context: every PV guest copy checks it, so it is a
/// plain load there instead of taking the lock.
static ACTIVE: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];

fn cpu() -> usize {
    xenolith_arch::percpu::current().cpu as usize
}

/// From now on this CPU's guest accesses go to the HVM guest with control state `ctl` on
/// `nested`.
pub fn enter(nested: &'static NestedTables, ctl: ControlState) {
    let me = cpu();
    *CURRENT[me].lock() = Some(Xlat { nested, ctl });
    ACTIVE[me].store(true, Ordering::Relaxed);
}

/// Back to direct (PV) guest accesses.
pub fn leave() {
    let me = cpu();
    if ACTIVE[me].swap(false, Ordering::Relaxed) {
        *CURRENT[me].lock() = None;
    }
}

/// The installed context, if any (only this CPU installs or reads its own).
fn current() -> Option<Xlat> {
    let me = cpu();
    if !ACTIVE[me].load(Ordering::Relaxed) {
        return None;
    }
    *CURRENT[me].lock()
}

/// Copies guest-virtual `gva` into `dst`; `None` if no HVM context is installed, else
/// whether every byte was mapped.
pub fn read(dst: &mut [u8], gva: u64) -> Option<bool> {
    let x = current()?;
    Some(walk::read_linear(x.nested, &x.ctl, gva, dst))
}

/// Copies `src` to guest-virtual `gva`; as [`read`].
pub fn write(gva: u64, src: &[u8]) -> Option<bool> {
    let x = current()?;
    Some(walk::write_linear(x.nested, &x.ctl, gva, src))
}
