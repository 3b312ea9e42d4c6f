//! `domu` (a domU only; `suites=all` runs it there): what a PVH domU gets that dom0 does not,
//! as libxl sets it up: a xenstore ring and a console ring (`HVM_PARAM_STORE_PFN`/`_EVTCHN`,
//! `HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`) in pages that start_info's memory map reserves, with
//! ports offered to dom0; and a line written to the console ring, which the backend (the
//! hypervisor here, xenconsoled on Xen) consumes and acknowledges on the console port.

use core::sync::atomic::{AtomicU32, Ordering};

use crate::events::{ensure_upcalls, evtchn_op, get_param, poll_upcall, upcalls};
use crate::suites::{Env, join};
use crate::verdict::{Rc, Suite};
use xen_abi::console::{XENCONS_OUT_SIZE, XenconsInterface, mask_xencons_idx};
use xen_abi::event_channel::{
    EVTCHNOP_send, EVTCHNOP_status, EVTCHNOP_unmask, EVTCHNSTAT_interdomain, EVTCHNSTAT_unbound,
    EvtchnSend, EvtchnStatus, EvtchnUnmask,
};
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::hvm_start_info::{
    HvmMemmapTableEntry, XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED,
};
use xen_abi::xen::DOMID_SELF;

/// The line written through the console ring (the host test looks for it as `(d<N>) ...`).
const RING_LINE: &[u8] = b"pvhtest: a line through the console ring\n";
/// Interrupt windows to wait for the backend's acknowledgement.
const SPINS: u32 = 1_000_000;
/// The identity map covers the first 4 GiB.
const MAPPED_PFNS: u64 = 1 << 20;

/// A ring as the parameters describe it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Ring {
    pfn: u64,
    port: u32,
}

pub fn run(s: &mut Suite, env: &Env) {
    if !env.domu {
        s.skip("role", format_args!("not a domU"));
        return;
    }
    let map = env.boot.memmap();
    let store = ring(s, "store", map, HVM_PARAM_STORE_PFN, HVM_PARAM_STORE_EVTCHN);
    let console = ring(
        s,
        "console",
        map,
        HVM_PARAM_CONSOLE_PFN,
        HVM_PARAM_CONSOLE_EVTCHN,
    );
    let distinct = match (store, console) {
        (Some(a), Some(b)) => a.pfn != b.pfn && a.port != b.port,
        _ => false,
    };
    s.check(
        "rings_distinct",
        distinct,
        format_args!("pages_and_ports_differ={distinct}"),
    );
    match console {
        Some(c) => console_line(s, c),
        None => s.skip("console_ring", format_args!("no console ring")),
    }
}

/// Whether `e` lies over any byte of the page at `addr`.
fn overlaps(e: &HvmMemmapTableEntry, addr: u64) -> bool {
    let (start, size) = (e.addr, e.size);
    start < addr + 4096 && addr < start.saturating_add(size)
}

/// Checks `<what>_pfn` (non-zero, inside a reserved range of the memory map, in no RAM range)
/// and `<what>_evtchn` (a port of this domain, unbound for dom0 or connected to dom0); the
/// ring if both parameters could be read and are non-zero.
fn ring(
    s: &mut Suite,
    what: &str,
    map: &[HvmMemmapTableEntry],
    pfn_param: u32,
    port_param: u32,
) -> Option<Ring> {
    let mut key = [0u8; 32];
    let (rc, pfn) = get_param(pfn_param);
    let addr = pfn.saturating_mul(4096);
    let reserved = map.iter().any(|e| {
        let (start, size, ty) = (e.addr, e.size, e.type_);
        ty == XEN_HVM_MEMMAP_TYPE_RESERVED && start <= addr && addr + 4096 <= start + size
    });
    let in_ram = map
        .iter()
        .any(|e| e.type_ == XEN_HVM_MEMMAP_TYPE_RAM && overlaps(e, addr));
    s.check(
        join(&mut key, what, "_pfn"),
        rc == 0 && pfn != 0 && reserved && !in_ram,
        format_args!(
            "rc={} nonzero={} reserved={reserved} in_ram={in_ram}",
            Rc(rc),
            pfn != 0
        ),
    );

    let (rc_port, port) = get_param(port_param);
    let port = u32::try_from(port).unwrap_or(u32::MAX);
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        ..EvtchnStatus::default()
    };
    // SAFETY: the structure EVTCHNOP_status takes.
    let rc_status = unsafe { evtchn_op(EVTCHNOP_status, &mut st) };
    let state = if rc_status != 0 {
        "none"
    } else if st.status == EVTCHNSTAT_unbound {
        "unbound"
    } else if st.status == EVTCHNSTAT_interdomain {
        "interdomain"
    } else {
        "other"
    };
    // `u.interdomain.dom` shares `u.unbound.dom`'s offset.
    let remote = st.unbound_dom();
    let to_dom0 = matches!(state, "unbound" | "interdomain") && remote == 0;
    s.check(
        join(&mut key, what, "_evtchn"),
        rc_port == 0 && port != 0 && rc_status == 0 && to_dom0,
        format_args!(
            "rc={} nonzero={} status_rc={} state={state} remote={remote}",
            Rc(rc_port),
            port != 0,
            Rc(rc_status)
        ),
    );
    (rc == 0 && rc_port == 0 && pfn != 0 && port != 0).then_some(Ring { pfn, port })
}

/// Writes [`RING_LINE`] to the console ring's `out` half, signals the console port and
/// requires the backend to have consumed it when the send returns (or soon after) and to
/// have signalled the port back.
fn console_line(s: &mut Suite, c: Ring) {
    if c.pfn >= MAPPED_PFNS || !ensure_upcalls() {
        s.skip(
            "console_ring",
            format_args!("ring not mapped or no upcalls"),
        );
        return;
    }
    let ring = (c.pfn << 12) as *mut XenconsInterface;
    // SAFETY: the console ring page, identity-mapped (below 4 GiB), shared with the backend;
    // the indices are naturally aligned u32s, accessed atomically.
    let (cons, prod) = unsafe {
        (
            AtomicU32::from_ptr(&raw mut (*ring).out_cons),
            AtomicU32::from_ptr(&raw mut (*ring).out_prod),
        )
    };
    let start = prod.load(Ordering::Acquire);
    let room =
        (XENCONS_OUT_SIZE as u32).wrapping_sub(start.wrapping_sub(cons.load(Ordering::Acquire)));
    let fits = RING_LINE.len() as u32 <= room;
    let mut end = start;
    if fits {
        for &b in RING_LINE {
            let at = mask_xencons_idx(end, XENCONS_OUT_SIZE);
            // SAFETY: in the ring's `out` array, as above.
            unsafe { (&raw mut (*ring).out[at]).write_volatile(b) };
            end = end.wrapping_add(1);
        }
        // The bytes before the index (Release), as the ring protocol wants.
        prod.store(end, Ordering::Release);
    }
    let mut unmask = EvtchnUnmask { port: c.port };
    // SAFETY: the structure EVTCHNOP_unmask takes.
    let rc_unmask = unsafe { evtchn_op(EVTCHNOP_unmask, &mut unmask) };
    let before = upcalls();
    let mut send = EvtchnSend { port: c.port };
    // SAFETY: the structure EVTCHNOP_send takes.
    let rc = unsafe { evtchn_op(EVTCHNOP_send, &mut send) };
    let ack = poll_upcall(before, SPINS);
    let consumed = cons.load(Ordering::Acquire) == end;
    let notified = ack.is_some_and(|u| u.saw_port(c.port));
    s.check(
        "console_ring",
        fits && rc_unmask == 0 && rc == 0 && consumed && notified,
        format_args!(
            "fits={fits} unmask={} send={} consumed={consumed} notified={notified}",
            Rc(rc_unmask),
            Rc(rc)
        ),
    );
}
