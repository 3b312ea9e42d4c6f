//! `memory`: a page of the guest's RAM given back with `XENMEM_decrease_reservation`, touched
//! while it is gone, and repopulated with `XENMEM_populate_physmap`.

use crate::events::ensure_shared_info;
use crate::hypercall::op;
use crate::idt::{Fault, probe_read, probe_write};
use crate::suites::Env;
use crate::verdict::{Hex, Rc, Suite};
use core::fmt;
use xen_abi::hypercall as nr;
use xen_abi::memory::{XENMEM_decrease_reservation, XENMEM_populate_physmap, XenMemoryReservation};
use xen_abi::xen::{DOMID_SELF, GuestHandle};

/// The page given back and repopulated.
#[repr(C, align(4096))]
struct Page([u64; 512]);
static mut VICTIM: Page = Page([0; 512]);

const PATTERN: u64 = 0x5a5a_1234_dead_beef;

/// A read probe's outcome, printed as the value or the fault.
struct Access(Result<u64, Fault>);

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "{}", Hex(v)),
            Err(e) => write!(f, "#{}({:#x})", e.vector, e.error_code),
        }
    }
}

/// `XENMEM_<cmd>` on one order-0 extent at `gfn`.
fn reservation(cmd: u32, gfn: u64) -> (i64, u64) {
    let mut extent = gfn;
    let mut r = XenMemoryReservation {
        extent_start: GuestHandle(&raw mut extent as u64),
        nr_extents: 1,
        extent_order: 0,
        mem_flags: 0,
        domid: DOMID_SELF,
        _pad0: [0; 3],
    };
    // SAFETY: a valid reservation whose one extent is the victim page, used for nothing else.
    let rc = unsafe { op(nr::memory_op, cmd, &mut r) };
    (rc, extent)
}

pub fn run(s: &mut Suite, _env: &Env) {
    // Not needed by this suite, but keep the domain's layout the same whichever suites run.
    let _ = ensure_shared_info();
    let va = (&raw mut VICTIM) as u64;
    let gfn = va >> 12;
    // SAFETY: the victim page is this suite's own.
    unsafe { (va as *mut u64).write_volatile(PATTERN) };

    let (rc, _) = reservation(XENMEM_decrease_reservation, gfn);
    s.expect_rc("decrease_reservation", rc, 1);
    let read = Access(probe_read(va));
    let write = match probe_write(va, PATTERN) {
        Ok(()) => "ok",
        Err(_) => "fault",
    };
    let reread = Access(probe_read(va));
    s.check(
        "removed.access",
        matches!(read.0, Ok(u64::MAX)) && matches!(reread.0, Ok(u64::MAX)),
        format_args!("read={read} write={write} reread={reread}"),
    );
    let (rc, extent) = reservation(XENMEM_populate_physmap, gfn);
    s.check(
        "populate_physmap",
        rc == 1 && extent == gfn,
        format_args!("rc={} same_gfn={}", Rc(rc), extent == gfn),
    );
    // The new frame's contents are not specified: Xen 4.17 does not scrub a page a live
    // domain frees, and hands the same frame back (the old data reappears); a zeroed frame is
    // as good. Only "backed by RAM again" is compared.
    let after = probe_read(va);
    let backed = matches!(after, Ok(0 | PATTERN));
    s.check(
        "repopulated.readable",
        backed,
        format_args!("fault={} backed={backed}", after.is_err()),
    );
    let write = probe_write(va, PATTERN).and_then(|()| probe_read(va));
    s.check(
        "repopulated.writable",
        write == Ok(PATTERN),
        format_args!("ok={}", write == Ok(PATTERN)),
    );
}
