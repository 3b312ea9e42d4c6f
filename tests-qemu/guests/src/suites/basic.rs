//! `basic`: the start_info page, the simple informational hypercalls, error returns for bad
//! arguments, the P2M/M2P tables, event-channel bookkeeping and a few page-table updates.
//!
//! Every expected value is what Xen 4.17 does for a 64-bit PV dom0 (checked against the real
//! hypervisor by `tests-qemu/tests/pv_guests.rs`); details carry only values both hypervisors
//! must agree on.

use xen_abi::arch_x86::{HYPERVISOR_VIRT_START, MACH2PHYS_VIRT_END, MACH2PHYS_VIRT_START};
use xen_abi::errno::Errno;
use xen_abi::event_channel::{
    EVTCHNOP_alloc_unbound, EVTCHNOP_close, EVTCHNOP_status, EVTCHNSTAT_closed, EVTCHNSTAT_unbound,
    EvtchnAllocUnbound, EvtchnClose, EvtchnStatus,
};
use xen_abi::features::{
    XENFEAT_dom0, XENFEAT_gnttab_map_avail_bits, XENFEAT_mmu_pt_update_preserve_ad,
    XENFEAT_pae_pgdir_above_4gb,
};
use xen_abi::hypercall as nr;
use xen_abi::memory::{
    XENMEM_current_reservation, XENMEM_machphys_mapping, XENMEM_maximum_ram_page,
    XENMEM_maximum_reservation, XenMachphysMapping,
};
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::vcpu::VCPUOP_is_up;
use xen_abi::version::{
    XENVER_capabilities, XENVER_get_features, XENVER_guest_handle, XENVER_pagesize,
    XENVER_platform_parameters, XENVER_version, XenCapabilitiesInfo, XenFeatureInfo,
    XenPlatformParameters,
};
use xen_abi::xen::{
    DOMID_SELF, MMU_NORMAL_PT_UPDATE, MMUEXT_INVLPG_LOCAL, MmuUpdate, MmuextOp, SIF_INITDOMAIN,
    SIF_PRIVILEGED, StartInfo, UVMF_INVLPG, UVMF_LOCAL, VcpuInfo,
};

use crate::console::{CStr, c_bytes};
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, PAGE_SIZE, PTE_MFN_MASK};
use crate::verdict::{Hex, Rc, Suite};

const ENOSYS: i64 = Rc::err(Errno::ENOSYS);
const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOENT: i64 = Rc::err(Errno::ENOENT);
const EBUSY: i64 = Rc::err(Errno::EBUSY);

/// `XENFEAT_*` bits Xen 4.17 reports to a 64-bit PV dom0 with `PAE_MODE` "yes" (the exact
/// submap goes into the details: Xen 4.17 gives 0x228f0).
const REQUIRED_FEATURES: u32 = (1 << XENFEAT_dom0)
    | (1 << XENFEAT_pae_pgdir_above_4gb)
    | (1 << XENFEAT_mmu_pt_update_preserve_ad)
    | (1 << XENFEAT_gnttab_map_avail_bits);

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    start_info(s, si);
    console_io(s);
    xen_version(s);
    unknown_hypercalls(s);
    sched_op(s);
    memory_op(s, si);
    p2m_m2p(s, si);
    vcpu_op(s);
    event_channels(s);
    page_tables(s, si);
}

fn start_info(s: &mut Suite, si: &StartInfo) {
    let magic = c_bytes(&si.magic);
    s.check(
        "start_info.magic",
        magic.starts_with(b"xen-3.0-x86_64"),
        format_args!("magic={}", CStr(magic)),
    );
    let want = SIF_PRIVILEGED | SIF_INITDOMAIN;
    s.check(
        "start_info.flags",
        si.flags & want == want,
        format_args!("flags={:#x}", si.flags),
    );
    s.check(
        "start_info.nr_pages",
        si.nr_pages > 0,
        format_args!("nr_pages={}", si.nr_pages),
    );
    s.check(
        "start_info.no_module",
        si.mod_start == 0 && si.mod_len == 0,
        format_args!("mod_len={}", si.mod_len),
    );
    s.check(
        "start_info.pt_base_in_image",
        si.pt_base.is_multiple_of(PAGE_SIZE)
            && si.pt_base >= mm::VIRT_BASE
            && mm::va_to_pfn(si.pt_base) < si.nr_pages,
        format_args!("page-aligned, in the initial mapping"),
    );
}

fn console_io(s: &mut Suite) {
    let rc = hc::console_write(b"PVTEST console_io write check\n");
    s.expect_rc("console_io.write", rc, 0);
    let rc = hc::console_write(b"");
    s.expect_rc("console_io.write_empty", rc, 0);
    // SAFETY: an unknown command touches no memory.
    let rc = unsafe { hc::hypercall3(nr::console_io, 0x7fff, 0, 0) };
    s.expect_rc("console_io.unknown_cmd", rc, ENOSYS);
}

fn xen_version(s: &mut Suite) {
    // SAFETY: XENVER_version takes no argument.
    let rc = unsafe { hc::xen_version(XENVER_version, core::ptr::null_mut()) };
    s.check(
        "xen_version.version",
        rc >= 0 && rc >> 16 == 4 && rc & 0xffff == 17,
        format_args!("version={}.{}", rc >> 16, rc & 0xffff),
    );

    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: `fi` is a xen_feature_info, which XENVER_get_features reads and writes.
    let rc = unsafe { hc::xen_version(XENVER_get_features, (&raw mut fi).cast()) };
    s.check(
        "xen_version.get_features",
        rc == 0 && fi.submap & REQUIRED_FEATURES == REQUIRED_FEATURES,
        format_args!("rc={} submap0={:#x}", Rc(rc), fi.submap),
    );
    let mut fi = XenFeatureInfo {
        submap_idx: 1,
        submap: 0,
    };
    // SAFETY: as above.
    let rc = unsafe { hc::xen_version(XENVER_get_features, (&raw mut fi).cast()) };
    s.expect_rc("xen_version.get_features_submap1", rc, EINVAL);

    // SAFETY: XENVER_pagesize takes no argument.
    let rc = unsafe { hc::xen_version(XENVER_pagesize, core::ptr::null_mut()) };
    s.expect_eq("xen_version.pagesize", "pagesize", Rc(rc), Rc(4096));

    let mut caps: XenCapabilitiesInfo = [0; 1024];
    // SAFETY: XENVER_capabilities writes a xen_capabilities_info_t (1024 bytes).
    let rc = unsafe { hc::xen_version(XENVER_capabilities, caps.as_mut_ptr()) };
    let caps = c_bytes(&caps);
    let has_pv64 = caps
        .split(|&b| b == b' ')
        .any(|word| word == b"xen-3.0-x86_64");
    s.check(
        "xen_version.capabilities",
        rc == 0 && has_pv64,
        format_args!("rc={} has_xen-3.0-x86_64={}", Rc(rc), has_pv64),
    );

    let mut pp = XenPlatformParameters { virt_start: 0 };
    // SAFETY: XENVER_platform_parameters writes a xen_platform_parameters.
    let rc = unsafe { hc::xen_version(XENVER_platform_parameters, (&raw mut pp).cast()) };
    s.check(
        "xen_version.platform_parameters",
        rc == 0 && pp.virt_start == HYPERVISOR_VIRT_START,
        format_args!("rc={} virt_start={}", Rc(rc), Hex(pp.virt_start)),
    );

    let mut handle = [0xffu8; 16];
    // SAFETY: XENVER_guest_handle writes a xen_domain_handle_t (16 bytes).
    let rc = unsafe { hc::xen_version(XENVER_guest_handle, handle.as_mut_ptr()) };
    let zero = handle.iter().all(|&b| b == 0);
    s.check(
        "xen_version.guest_handle",
        rc == 0 && zero,
        format_args!("rc={} all_zero={zero}", Rc(rc)),
    );

    // SAFETY: an unknown command touches no memory.
    let rc = unsafe { hc::xen_version(0x7f, core::ptr::null_mut()) };
    s.expect_rc("xen_version.unknown_cmd", rc, ENOSYS);
}

fn unknown_hypercalls(s: &mut Suite) {
    // SAFETY: unimplemented hypercall numbers do nothing.
    let rc = unsafe { hc::hypercall3(60, 0, 0, 0) };
    s.expect_rc("hypercall.unknown_60", rc, ENOSYS);
    // SAFETY: as above (beyond the hypercall table).
    let rc = unsafe { hc::hypercall3(1000, 0, 0, 0) };
    s.expect_rc("hypercall.beyond_table", rc, ENOSYS);
}

fn sched_op(s: &mut Suite) {
    // SAFETY: SCHEDOP_yield takes no argument.
    let rc = unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
    s.expect_rc("sched_op.yield", rc, 0);
    // SAFETY: an unknown command touches no memory.
    let rc = unsafe { hc::hypercall3(nr::sched_op, 0x7fff, 0, 0) };
    s.expect_rc("sched_op.unknown_cmd", rc, ENOSYS);
}

fn memory_op(s: &mut Suite, si: &StartInfo) {
    let nr_pages = si.nr_pages as i64;
    // SAFETY: XENMEM_maximum_ram_page takes no argument.
    let max_ram_page = unsafe { hc::memory_op(XENMEM_maximum_ram_page, core::ptr::null_mut()) };
    // Every frame of the guest is below max_page, so max_page >= nr_pages.
    s.check(
        "memory_op.maximum_ram_page",
        max_ram_page >= nr_pages,
        format_args!("rc>=nr_pages={}", max_ram_page >= nr_pages),
    );

    let mut domid = DOMID_SELF;
    // SAFETY: the reservation queries read a domid_t.
    let cur = unsafe { hc::memory_op(XENMEM_current_reservation, (&raw mut domid).cast()) };
    s.expect_eq(
        "memory_op.current_reservation",
        "pages",
        Rc(cur),
        Rc(nr_pages),
    );
    // SAFETY: as above.
    let max = unsafe { hc::memory_op(XENMEM_maximum_reservation, (&raw mut domid).cast()) };
    s.check(
        "memory_op.maximum_reservation",
        max >= cur,
        format_args!("rc={}", Rc(max)),
    );

    let mut mapping = XenMachphysMapping {
        v_start: 0,
        v_end: 0,
        max_mfn: 0,
    };
    // SAFETY: XENMEM_machphys_mapping writes a xen_machphys_mapping.
    let rc = unsafe { hc::memory_op(XENMEM_machphys_mapping, (&raw mut mapping).cast()) };
    s.check(
        "memory_op.machphys_mapping",
        rc == 0
            && mapping.v_start == MACH2PHYS_VIRT_START
            && mapping.v_end == MACH2PHYS_VIRT_END
            && mapping.max_mfn as i64 + 1 == max_ram_page,
        format_args!(
            "rc={} v_start={} v_end={} max_mfn_ok={}",
            Rc(rc),
            Hex(mapping.v_start),
            Hex(mapping.v_end),
            mapping.max_mfn as i64 + 1 == max_ram_page
        ),
    );

    // SAFETY: an unknown command touches no memory.
    let rc = unsafe { hc::memory_op(0x3f, core::ptr::null_mut()) };
    s.expect_rc("memory_op.unknown_cmd", rc, ENOSYS);
}

fn p2m_m2p(s: &mut Suite, si: &StartInfo) {
    let p2m = mm::p2m(si);
    let si_va = si as *const StartInfo as u64;
    let si_pfn = mm::va_to_pfn(si_va);
    let si_mfn = p2m[si_pfn as usize];

    match mm::walk(si, si_va) {
        Ok(pte) => {
            let pte_mfn = (pte.value & PTE_MFN_MASK) / PAGE_SIZE;
            s.check(
                "p2m.matches_page_tables",
                pte.value & _PAGE_PRESENT != 0 && pte_mfn == si_mfn,
                format_args!("start_info pte mfn == p2m[pfn]: {}", pte_mfn == si_mfn),
            );
        }
        Err(e) => s.check(
            "p2m.matches_page_tables",
            false,
            format_args!("walk failed: {e}"),
        ),
    }

    let back = mm::m2p(si_mfn);
    s.check(
        "m2p.start_info_page",
        back == si_pfn,
        format_args!("m2p[p2m[pfn]]==pfn: {}", back == si_pfn),
    );

    let mismatches = p2m
        .iter()
        .enumerate()
        .filter(|&(pfn, &mfn)| mm::m2p(mfn) != pfn as u64)
        .count();
    s.expect_eq("m2p.whole_p2m", "mismatches", mismatches, 0);
}

fn vcpu_op(s: &mut Suite) {
    // SAFETY: VCPUOP_is_up takes no argument.
    let rc = unsafe { hc::vcpu_op(VCPUOP_is_up, 0, core::ptr::null_mut()) };
    s.expect_rc("vcpu_op.is_up_vcpu0", rc, 1);
    // SAFETY: as above.
    let rc = unsafe { hc::vcpu_op(VCPUOP_is_up, 1000, core::ptr::null_mut()) };
    s.expect_rc("vcpu_op.is_up_bad_vcpu", rc, ENOENT);
}

fn evtchn_status(port: u32) -> (i64, EvtchnStatus) {
    let mut st = EvtchnStatus {
        dom: DOMID_SELF,
        port,
        status: 0xffff_ffff,
        vcpu: 0xffff_ffff,
        u: [0xffff_ffff; 2],
        ..EvtchnStatus::default()
    };
    // SAFETY: `st` is an evtchn_status, which EVTCHNOP_status reads and writes.
    let rc = unsafe { hc::event_channel_op(EVTCHNOP_status, (&raw mut st).cast()) };
    (rc, st)
}

fn event_channels(s: &mut Suite) {
    let mut alloc = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: DOMID_SELF,
        port: 0,
    };
    // SAFETY: `alloc` is an evtchn_alloc_unbound, which Xen reads and writes.
    let rc = unsafe { hc::event_channel_op(EVTCHNOP_alloc_unbound, (&raw mut alloc).cast()) };
    s.check(
        "evtchn.alloc_unbound",
        rc == 0 && alloc.port != 0,
        format_args!("rc={} port={}", Rc(rc), alloc.port),
    );
    if rc != 0 {
        s.skip("evtchn.status_unbound", format_args!("no port"));
        s.skip("evtchn.close", format_args!("no port"));
        s.skip("evtchn.status_closed", format_args!("no port"));
    } else {
        let port = alloc.port;
        let (rc, st) = evtchn_status(port);
        // For an unbound port, u.unbound.dom is the remote domain (dom0 itself).
        let remote = st.unbound_dom();
        s.check(
            "evtchn.status_unbound",
            rc == 0 && st.status == EVTCHNSTAT_unbound && remote == 0,
            format_args!(
                "rc={} status={} vcpu={} remote_dom={remote}",
                Rc(rc),
                st.status,
                st.vcpu
            ),
        );
        let mut close = EvtchnClose { port };
        // SAFETY: `close` is an evtchn_close, which Xen reads.
        let rc = unsafe { hc::event_channel_op(EVTCHNOP_close, (&raw mut close).cast()) };
        s.expect_rc("evtchn.close", rc, 0);
        let (rc, st) = evtchn_status(port);
        s.check(
            "evtchn.status_closed",
            rc == 0 && st.status == EVTCHNSTAT_closed,
            format_args!("rc={} status={}", Rc(rc), st.status),
        );
    }
    let (rc, _) = evtchn_status(4000);
    s.expect_rc("evtchn.status_invalid_port", rc, EINVAL);
}

/// Maps `mfn` read-only at the scratch page with update_va_mapping.
fn map_scratch_ro(mfn: u64) -> i64 {
    let pte = (mfn * PAGE_SIZE) | _PAGE_PRESENT | _PAGE_ACCESSED;
    // SAFETY: only the scratch page's mapping changes; nothing but these checks uses it.
    unsafe { hc::update_va_mapping(mm::scratch_va(), pte, UVMF_INVLPG | UVMF_LOCAL) }
}

fn page_tables(s: &mut Suite, si: &StartInfo) {
    const MAGIC: u64 = 0x5056_5445_5354_2121; // "PVTEST!!"
    const CHECKS: [&str; 8] = [
        "update_va_mapping.shared_info_ro",
        "shared_info.vcpu0_upcall_mask",
        "update_va_mapping.pt_frame_ro",
        "mmu_update.pt_frame_writable",
        "update_va_mapping.pt_frame_writable",
        "update_va_mapping.hypervisor_range",
        "mmu_update.restore",
        "mmuext_op.invlpg_local",
    ];
    let scratch = mm::scratch_va();
    mm::scratch_write_u64(0, MAGIC);
    let orig = match mm::walk(si, scratch) {
        Ok(pte) if pte.value & _PAGE_PRESENT != 0 => pte,
        Ok(_) | Err(_) => {
            for check in CHECKS {
                s.skip(check, format_args!("no L1 entry for the scratch page"));
            }
            return;
        }
    };
    let l4_mfn = mm::p2m(si)[mm::va_to_pfn(si.pt_base) as usize];

    // shared_info is a Xen page shared with the guest: mappable read-only.
    let rc = map_scratch_ro(si.shared_info / PAGE_SIZE);
    s.expect_rc("update_va_mapping.shared_info_ro", rc, 0);
    if rc == 0 {
        // shared_info starts with vcpu_info[0].
        let mask = mm::scratch_read_u8(core::mem::offset_of!(VcpuInfo, evtchn_upcall_mask));
        s.expect_eq("shared_info.vcpu0_upcall_mask", "mask", mask, 1);
    } else {
        s.skip("shared_info.vcpu0_upcall_mask", format_args!("not mapped"));
    }

    // A page-table frame may be mapped read-only (and then reads like the table).
    let rc = map_scratch_ro(l4_mfn);
    let same = rc == 0
        && (0..512).all(|i| {
            // SAFETY: pt_base maps the L4 read-only for the whole run.
            let direct = unsafe { ((si.pt_base + i * 8) as *const u64).read_volatile() };
            mm::scratch_read_u64(i as usize * 8) == direct
        });
    s.check(
        "update_va_mapping.pt_frame_ro",
        rc == 0 && same,
        format_args!("rc={} same_content={same}", Rc(rc)),
    );

    // ... but never writable: Xen cannot take a writable type reference on a frame that is in
    // use as a page table, and says EBUSY (get_page_from_l1e's "could not pin" path).
    let writable_pte = (l4_mfn * PAGE_SIZE) | _PAGE_PRESENT | _PAGE_RW | _PAGE_ACCESSED;
    let req = [MmuUpdate {
        ptr: orig.maddr | MMU_NORMAL_PT_UPDATE,
        val: writable_pte,
    }];
    // SAFETY: Xen must refuse it; were it accepted, only the scratch mapping would change.
    let (rc, done) = unsafe { hc::mmu_update(&req, DOMID_SELF) };
    s.check(
        "mmu_update.pt_frame_writable",
        rc == EBUSY && done == 0,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    // SAFETY: as above.
    let rc = unsafe { hc::update_va_mapping(scratch, writable_pte, UVMF_INVLPG | UVMF_LOCAL) };
    s.expect_rc("update_va_mapping.pt_frame_writable", rc, EBUSY);

    // The hypervisor's own range is off limits.
    // SAFETY: Xen must refuse it; the address is not the guest's.
    let rc =
        unsafe { hc::update_va_mapping(HYPERVISOR_VIRT_START + 0x3000_0000_0000, 0, UVMF_INVLPG) };
    s.expect_rc("update_va_mapping.hypervisor_range", rc, EINVAL);

    // Put the scratch page back with mmu_update (no flush), flush it with mmuext_op, and read
    // the magic written before all this.
    let req = [MmuUpdate {
        ptr: orig.maddr | MMU_NORMAL_PT_UPDATE,
        val: orig.value,
    }];
    // SAFETY: restores the scratch page's original mapping.
    let (rc, done) = unsafe { hc::mmu_update(&req, DOMID_SELF) };
    s.check(
        "mmu_update.restore",
        rc == 0 && done == 1,
        format_args!("rc={} done={done}", Rc(rc)),
    );
    let op = [MmuextOp::with_linear_addr(MMUEXT_INVLPG_LOCAL, scratch)];
    // SAFETY: flushing one TLB entry is harmless.
    let (rc, done) = unsafe { hc::mmuext_op(&op, DOMID_SELF) };
    let magic = mm::scratch_read_u64(0);
    s.check(
        "mmuext_op.invlpg_local",
        rc == 0 && done == 1 && magic == MAGIC,
        format_args!("rc={} done={done} magic_back={}", Rc(rc), magic == MAGIC),
    );
}
