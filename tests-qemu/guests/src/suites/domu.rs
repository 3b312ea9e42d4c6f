//! `domu`: what an unprivileged PV domain sees (run as a boot-time domU; as dom0 the suite
//! prints one SKIP). The expected values are Xen 4.17's for a domU built by its toolstack:
//! `start_info` flags 0 with xenstore and console pages of its own and their event channels
//! unbound and offered to dom0, and the privileged operations refused by XSM's default policy
//! (`console_io` and `platform_op` `-EPERM`, `machine_memory_map` `-EPERM`, another domain's
//! reservation `-EPERM`, `remote_shutdown` of dom0 `-EPERM`), no pseudo-physical memory map set
//! by a toolstack (`XENMEM_memory_map` `-ENOSYS`) and no `XENFEAT_dom0`.

use xen_abi::errno::Errno;
use xen_abi::event_channel::EVTCHNSTAT_unbound;
use xen_abi::features::XENFEAT_dom0;
use xen_abi::hypercall as nr;
use xen_abi::memory::{XENMEM_current_reservation, XENMEM_machine_memory_map, XENMEM_memory_map};
use xen_abi::sched::SCHEDOP_remote_shutdown;
use xen_abi::version::{XENVER_get_features, XenFeatureInfo};
use xen_abi::xen::{DOMID_SELF, SIF_INITDOMAIN, StartInfo};

use crate::events as ev;
use crate::hypercall as hc;
use crate::mm;
use crate::verdict::{Rc, Suite};

const EPERM: i64 = Rc::err(Errno::EPERM);
const ENOSYS: i64 = Rc::err(Errno::ENOSYS);

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN != 0 {
        s.skip("role", format_args!("dom0"));
        return;
    }
    start_info(s, si);
    refused(s);
    memory(s, si);
}

/// A frame of the domain's own, as the toolstack allocates its special pages.
fn own_frame(si: &StartInfo, mfn: u64) -> bool {
    mm::m2p(mfn) < si.nr_pages && mm::p2m(si)[mm::m2p(mfn) as usize] == mfn
}

fn start_info(s: &mut Suite, si: &StartInfo) {
    s.expect_eq("start_info.flags", "flags", si.flags, 0);
    let con = si.console.domu();
    s.check(
        "start_info.console",
        own_frame(si, con.mfn) && con.evtchn != 0,
        format_args!(
            "own_frame={} port_nonzero={}",
            own_frame(si, con.mfn),
            con.evtchn != 0
        ),
    );
    s.check(
        "start_info.store",
        own_frame(si, si.store_mfn) && si.store_evtchn != 0,
        format_args!(
            "own_frame={} port_nonzero={}",
            own_frame(si, si.store_mfn),
            si.store_evtchn != 0
        ),
    );
    for (name, port) in [
        ("evtchn.console_status", con.evtchn),
        ("evtchn.store_status", si.store_evtchn),
    ] {
        let (rc, st) = ev::status(port);
        // Unbound, offered to dom0 (the backends' domain).
        let ok = rc == 0 && st.status == EVTCHNSTAT_unbound && st.u[0] & 0xffff == 0;
        s.check(
            name,
            ok,
            format_args!(
                "rc={} status={} remote={}",
                Rc(rc),
                st.status,
                st.u[0] & 0xffff
            ),
        );
    }
}

fn refused(s: &mut Suite) {
    let msg = b"domU console_io\n";
    s.expect_rc("console_io.write", hc::console_write(msg), EPERM);

    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: XENVER_get_features reads and writes a xen_feature_info.
    let rc = unsafe { hc::xen_version(XENVER_get_features, (&raw mut fi).cast()) };
    let dom0 = fi.submap & (1 << XENFEAT_dom0) != 0;
    s.check(
        "xen_version.no_dom0_feature",
        rc == 0 && !dom0,
        format_args!("rc={} dom0={dom0}", Rc(rc)),
    );

    // struct xen_platform_op: cmd, interface_version, then the union; XENPF_get_cpuinfo (55).
    let mut op = [0u32; 32];
    op[0] = 55;
    op[1] = xen_abi::platform::XENPF_INTERFACE_VERSION;
    // SAFETY: Xen reads (at most) the 128-byte structure, and refuses before that.
    let rc = unsafe { hc::hypercall3(nr::platform_op, op.as_mut_ptr() as u64, 0, 0) };
    s.expect_rc("platform_op.refused", rc, EPERM);

    // struct sched_remote_shutdown { domid_t domain_id; unsigned int reason; }
    let mut rs = [0u32; 2];
    // SAFETY: Xen reads the 8-byte structure.
    let rc = unsafe {
        hc::hypercall3(
            nr::sched_op,
            u64::from(SCHEDOP_remote_shutdown),
            rs.as_mut_ptr() as u64,
            0,
        )
    };
    s.expect_rc("sched_op.remote_shutdown_dom0", rc, EPERM);
}

fn memory(s: &mut Suite, si: &StartInfo) {
    let mut domid = DOMID_SELF;
    // SAFETY: the reservation queries read a domid_t.
    let cur = unsafe { hc::memory_op(XENMEM_current_reservation, (&raw mut domid).cast()) };
    s.expect_eq(
        "memory_op.current_reservation",
        "pages",
        Rc(cur),
        Rc(si.nr_pages as i64),
    );
    let mut dom0 = 0u16;
    // SAFETY: as above.
    let rc = unsafe { hc::memory_op(XENMEM_current_reservation, (&raw mut dom0).cast()) };
    s.expect_rc("memory_op.current_reservation_dom0", rc, EPERM);

    // struct xen_memory_map { unsigned int nr_entries; XEN_GUEST_HANDLE(void) buffer; }
    let mut buf = [0u8; 20 * 8];
    let mut map = [0u64; 2];
    map[0] = 8;
    map[1] = buf.as_mut_ptr() as u64;
    // SAFETY: Xen reads the memory_map and writes at most 8 entries into `buf`.
    let rc = unsafe { hc::memory_op(XENMEM_machine_memory_map, map.as_mut_ptr().cast()) };
    s.expect_rc("memory_op.machine_memory_map", rc, EPERM);
    // SAFETY: as above.
    let rc = unsafe { hc::memory_op(XENMEM_memory_map, map.as_mut_ptr().cast()) };
    s.expect_rc("memory_op.memory_map_unset", rc, ENOSYS);
}
