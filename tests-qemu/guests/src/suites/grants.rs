//! Grant tables (`HYPERVISOR_grant_table_op`), in two suites.
//!
//! - `gnttab` (dom0 alone, so it also runs on Xen 4.17 and the verdicts are compared): the
//!   table-level operations (`setup_table`, `query_size`, `set_version`/`get_version`,
//!   `get_status_frames`), dom0 granting its own frames to itself and mapping them (linear
//!   address and `GNTMAP_contains_pte`, read-only, device mappings, `unmap_and_replace`),
//!   `GNTTABOP_copy` between its grants and its frames with partial-page offsets,
//!   `swap_grant_ref`, `cache_flush`, and Xen's refusals with their `GNTST_*` codes (revoked
//!   grants, a grant to another domain, read-only grants written, page tables mapped
//!   writable, bad refs, handles, domains and arguments). Details carry only status codes,
//!   flags, counts and booleans.
//! - `grants` (run by dom0 and a boot-time domU 1 at the same time, on Xenolith only; the role
//!   follows `SIF_INITDOMAIN`): the domU grants pages to dom0 at fixed references; dom0 maps
//!   the ring page and the two run a producer/consumer ring of [`MESSAGES`] messages through
//!   it (indices in the page, checksum compared by both); then `GNTTABOP_copy` both ways with
//!   partial-page offsets (dom0 from and to the domU's grants, gref to gref, and the domU from
//!   and to a grant of dom0's), the refusals (a revoked grant, writing a read-only grant, a
//!   grant to another domain, a bad reference, revoking a grant in use, an unprivileged
//!   domain's table queries of dom0); finally the domU powers off while dom0 still maps its
//!   ring page and while it maps a grant of dom0's: the page survives until dom0 unmaps it,
//!   dom0's grant is released, and the dead domain's table is gone afterwards.

use core::ptr;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering, fence};

use xen_abi::errno::Errno;
use xen_abi::grant_table::{
    GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTMAP_contains_pte, GNTMAP_device_map,
    GNTMAP_host_map, GNTMAP_readonly, GNTST_bad_copy_arg, GNTST_bad_domain, GNTST_bad_gntref,
    GNTST_bad_handle, GNTST_bad_page, GNTST_eagain, GNTST_general_error, GNTST_okay,
    GNTST_permission_denied, GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL, GNTTABOP_cache_flush,
    GNTTABOP_copy, GNTTABOP_get_status_frames, GNTTABOP_get_version, GNTTABOP_map_grant_ref,
    GNTTABOP_query_size, GNTTABOP_set_version, GNTTABOP_setup_table, GNTTABOP_swap_grant_ref,
    GNTTABOP_transfer, GNTTABOP_unmap_and_replace, GNTTABOP_unmap_grant_ref, GTF_accept_transfer,
    GTF_permit_access, GTF_reading, GTF_readonly, GTF_writing, GnttabCacheFlush, GnttabCopy,
    GnttabCopyPtr, GnttabGetStatusFrames, GnttabGetVersion, GnttabMapGrantRef, GnttabQuerySize,
    GnttabSetVersion, GnttabSetupTable, GnttabSwapGrantRef, GnttabTransfer, GnttabUnmapAndReplace,
    GnttabUnmapGrantRef, GrantHandle, GrantRef,
};
use xen_abi::hypercall as nr;
use xen_abi::sched::SCHEDOP_yield;
use xen_abi::xen::{DOMID_SELF, GuestHandle, SIF_INITDOMAIN, StartInfo};

use crate::console::println;
use crate::events as ev;
use crate::hypercall as hc;
use crate::mm::{self, _PAGE_PRESENT, PAGE_SIZE, PTE_MFN_MASK};
use crate::probe;
use crate::verdict::{Hex, Rc, Suite};
use crate::window;

const EINVAL: i64 = Rc::err(Errno::EINVAL);
const ENOSYS: i64 = Rc::err(Errno::ENOSYS);
const EFAULT: i64 = Rc::err(Errno::EFAULT);
const EBUSY: i64 = Rc::err(Errno::EBUSY);
const ESRCH: i64 = Rc::err(Errno::ESRCH);
const EPERM: i64 = Rc::err(Errno::EPERM);
const EOPNOTSUPP: i64 = Rc::err(Errno::EOPNOTSUPP);

/// A domain id nobody has.
const NO_SUCH_DOMAIN: u16 = 42;
/// A guest address no hypercall may touch (the hypervisor's range).
const HYPERVISOR_VA: u64 = 0xffff_8000_0000_0000;
/// A grant reference beyond any table here.
const BAD_REF: GrantRef = 0x10000;

// ---------------------------------------------------------------------------------------------
// Hypercall wrappers.

/// `grant_table_op(cmd, uop, count)` with raw arguments.
fn gnttab_raw(cmd: u32, uop: u64, count: u64) -> i64 {
    // SAFETY: the hypervisor checks every guest address it is given; the callers pass either
    // valid arrays of the structure `cmd` takes or addresses meant to be refused.
    unsafe { hc::hypercall3(nr::grant_table_op, u64::from(cmd), uop, count) }
}

/// `grant_table_op(cmd, ops, ops.len())`.
fn gnttab<T>(cmd: u32, ops: &mut [T]) -> i64 {
    gnttab_raw(cmd, ops.as_mut_ptr() as u64, ops.len() as u64)
}

/// `GNTTABOP_query_size`: (rc, op).
fn query_size(dom: u16) -> (i64, GnttabQuerySize) {
    let mut op = [GnttabQuerySize {
        dom,
        status: 0x7777,
        ..Default::default()
    }];
    let rc = gnttab(GNTTABOP_query_size, &mut op);
    (rc, op[0])
}

/// `GNTTABOP_setup_table` for `nr` frames into `frames`: (rc, status).
fn setup_table(dom: u16, nr: u32, frames: &mut [u64]) -> (i64, i16) {
    let mut op = [GnttabSetupTable {
        dom,
        nr_frames: nr,
        status: 0x7777,
        frame_list: GuestHandle::new(frames.as_mut_ptr() as u64),
        ..Default::default()
    }];
    let rc = gnttab(GNTTABOP_setup_table, &mut op);
    (rc, op[0].status)
}

/// `GNTTABOP_get_version`: (rc, version).
fn get_version(dom: u16) -> (i64, u32) {
    let mut op = [GnttabGetVersion {
        dom,
        pad: 0,
        version: 0x7777,
    }];
    let rc = gnttab(GNTTABOP_get_version, &mut op);
    (rc, op[0].version)
}

/// `GNTTABOP_set_version`: (rc, version written back).
fn set_version(version: u32) -> (i64, u32) {
    let mut op = [GnttabSetVersion { version }];
    let rc = gnttab(GNTTABOP_set_version, &mut op);
    (rc, op[0].version)
}

/// `GNTTABOP_get_status_frames` for `nr` frames into `frames`: (rc, status).
fn get_status_frames(dom: u16, nr: u32, frames: &mut [u64]) -> (i64, i16) {
    let mut op = [GnttabGetStatusFrames {
        nr_frames: nr,
        dom,
        status: 0x7777,
        frame_list: GuestHandle::new(frames.as_mut_ptr() as u64),
    }];
    let rc = gnttab(GNTTABOP_get_status_frames, &mut op);
    (rc, op[0].status)
}

/// `GNTTABOP_map_grant_ref` of one reference: (rc, op).
fn map(dom: u16, gref: GrantRef, flags: u32, host_addr: u64) -> (i64, GnttabMapGrantRef) {
    let mut op = [GnttabMapGrantRef {
        host_addr,
        flags,
        ref_: gref,
        dom,
        status: 0x7777,
        handle: 0x7777_7777,
        dev_bus_addr: 0,
    }];
    let rc = gnttab(GNTTABOP_map_grant_ref, &mut op);
    (rc, op[0])
}

/// `GNTTABOP_unmap_grant_ref` of one handle: (rc, status).
fn unmap(handle: GrantHandle, host_addr: u64, dev_bus_addr: u64) -> (i64, i16) {
    let mut op = [GnttabUnmapGrantRef {
        host_addr,
        dev_bus_addr,
        handle,
        status: 0x7777,
        _pad0: 0,
    }];
    let rc = gnttab(GNTTABOP_unmap_grant_ref, &mut op);
    (rc, op[0].status)
}

/// One side of a copy.
#[derive(Clone, Copy)]
enum Side {
    /// A grant reference of a domain.
    Gref(u16, GrantRef, u16),
    /// One of the caller's own frames (`DOMID_SELF`).
    Own(u64, u16),
    /// A frame named with an explicit domain id (Xen refuses this).
    Frame(u16, u64, u16),
}

impl Side {
    fn ptr(self) -> (GnttabCopyPtr, bool) {
        match self {
            Side::Gref(dom, r, off) => (GnttabCopyPtr::with_gref(r, dom, off), true),
            Side::Own(mfn, off) => (GnttabCopyPtr::with_gmfn(mfn, DOMID_SELF, off), false),
            Side::Frame(dom, mfn, off) => (GnttabCopyPtr::with_gmfn(mfn, dom, off), false),
        }
    }
}

/// A `gnttab_copy` element.
fn copy_op(src: Side, dest: Side, len: u16) -> GnttabCopy {
    let (source, sg) = src.ptr();
    let (dest, dg) = dest.ptr();
    let mut flags = 0;
    if sg {
        flags |= GNTCOPY_source_gref;
    }
    if dg {
        flags |= GNTCOPY_dest_gref;
    }
    GnttabCopy {
        source,
        dest,
        len,
        flags,
        status: 0x7777,
        _pad0: 0,
    }
}

/// `GNTTABOP_copy` of one element: (rc, status).
fn copy(src: Side, dest: Side, len: u16) -> (i64, i16) {
    let mut op = [copy_op(src, dest, len)];
    let rc = gnttab(GNTTABOP_copy, &mut op);
    (rc, op[0].status)
}

fn yield_cpu() {
    // SAFETY: SCHEDOP_yield takes no argument.
    unsafe { hc::hypercall3(nr::sched_op, u64::from(SCHEDOP_yield), 0, 0) };
}

// ---------------------------------------------------------------------------------------------
// The guest's own grant table, mapped at a window, and frames seen through windows.

/// A grant-table frame mapped writable at a window (version 1 or 2 layout).
#[derive(Clone, Copy)]
struct Table {
    window: usize,
    v2: bool,
}

impl Table {
    fn base(self) -> u64 {
        window::va(self.window)
    }

    fn header(self, r: GrantRef) -> *mut u32 {
        let size = if self.v2 { 16 } else { 8 };
        (self.base() + u64::from(r) * size) as *mut u32
    }

    /// `gnttab_grant_foreign_access_ref`: the frame first, then the flags and domain.
    fn grant(self, r: GrantRef, to: u16, frame: u64, flags: u16) {
        let h = self.header(r);
        // SAFETY: the table frame is mapped writable at the window; entries are naturally
        // aligned and inside frame 0 (r < 256 for v2, < 512 for v1).
        unsafe {
            if self.v2 {
                ptr::write_volatile(h.cast::<u64>().add(1), frame);
            } else {
                ptr::write_volatile(h.add(1), frame as u32);
            }
            fence(Ordering::SeqCst);
            ptr::write_volatile(h, u32::from(flags) | u32::from(to) << 16);
        }
    }

    /// The entry's flags (v1: including the in-use bits).
    fn flags(self, r: GrantRef) -> u16 {
        // SAFETY: as in `grant`.
        unsafe { ptr::read_volatile(self.header(r).cast::<u16>()) }
    }

    /// The entry's frame field.
    fn frame(self, r: GrantRef) -> u64 {
        let h = self.header(r);
        // SAFETY: as in `grant`.
        unsafe {
            if self.v2 {
                ptr::read_volatile(h.cast::<u64>().add(1))
            } else {
                u64::from(ptr::read_volatile(h.add(1)))
            }
        }
    }

    /// `gnttab_end_foreign_access_ref` (v1): clears the flags unless the hypervisor marked the
    /// entry in use; true if the grant was revoked.
    fn revoke(self, r: GrantRef) -> bool {
        // SAFETY: as in `grant`; the flags are an aligned u16 the hypervisor updates
        // atomically too.
        let flags = unsafe { AtomicU16::from_ptr(self.header(r).cast::<u16>()) };
        let mut cur = flags.load(Ordering::SeqCst);
        loop {
            if cur & (GTF_reading | GTF_writing) != 0 {
                return false;
            }
            match flags.compare_exchange(cur, 0, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
    }

    /// Clears an entry (not in use).
    fn clear(self, r: GrantRef) {
        // SAFETY: as in `grant`.
        unsafe {
            ptr::write_volatile(self.header(r), 0);
            if self.v2 {
                ptr::write_volatile(self.header(r).cast::<u64>().add(1), 0);
            } else {
                ptr::write_volatile(self.header(r).add(1), 0);
            }
        }
    }
}

/// The byte pattern of frame `seed` at `offset`.
fn pattern(seed: u8, offset: usize) -> u8 {
    (offset as u8).wrapping_mul(31).wrapping_add(seed) ^ (offset >> 8) as u8
}

/// Fills frame `mfn` (one of ours) with `pattern(seed, ..)` through window `w`.
fn fill(si: &StartInfo, w: usize, mfn: u64, seed: u8) -> bool {
    if window::map(si, w, mfn, true) != 0 {
        return false;
    }
    for i in 0..4096 {
        // SAFETY: the window maps `mfn` writable.
        unsafe { ptr::write_volatile((window::va(w) + i as u64) as *mut u8, pattern(seed, i)) };
    }
    window::restore(si, w) == 0
}

/// Reads `len` bytes at `offset` of the page mapped at window `w` and compares them with
/// `want(i)` for each byte offset `i`.
fn window_bytes_are(w: usize, offset: usize, len: usize, want: impl Fn(usize) -> u8) -> bool {
    (offset..offset + len).all(|i| {
        // SAFETY: the window maps a page (callers just mapped it).
        let b = unsafe { ptr::read_volatile((window::va(w) + i as u64) as *const u8) };
        b == want(i)
    })
}

/// Maps `mfn` read-only at window `w`, checks bytes as [`window_bytes_are`], restores.
fn frame_bytes_are(
    si: &StartInfo,
    w: usize,
    mfn: u64,
    offset: usize,
    len: usize,
    want: impl Fn(usize) -> u8,
) -> bool {
    if window::map(si, w, mfn, false) != 0 {
        return false;
    }
    let ok = window_bytes_are(w, offset, len, want);
    window::restore(si, w);
    ok
}

/// Whether window `w`'s virtual address is mapped at all.
fn window_present(si: &StartInfo, w: usize) -> bool {
    mm::walk(si, window::va(w)).is_ok_and(|e| e.value & _PAGE_PRESENT != 0)
}

/// The machine address of window `w`'s L1 entry (for `GNTMAP_contains_pte`).
fn window_pte_maddr(si: &StartInfo, w: usize) -> u64 {
    mm::walk(si, window::va(w)).map_or(0, |e| e.maddr)
}

// =============================================================================================
// `gnttab`: dom0 alone.

/// Window holding grant-table frame 0.
const W_TABLE: usize = 0;
/// Window grant mappings go to.
const W_MAP: usize = 1;
/// Second window for grant mappings.
const W_MAP2: usize = 2;
/// Window for looking at frames.
const W_LOOK: usize = 3;

/// The references the suite uses (above the 8 reserved ones).
const R_RW: GrantRef = 8;
const R_RO: GrantRef = 9;
const R_REVOKED: GrantRef = 10;
const R_OTHER: GrantRef = 11;
const R_PT: GrantRef = 12;
const R_SWAP_A: GrantRef = 13;
const R_SWAP_B: GrantRef = 14;
const R_ACCEPT: GrantRef = 15;

/// Frames the local suite works with.
struct Local {
    data: u64,
    ro: u64,
    dest: u64,
    other: u64,
    /// A page-table frame of ours (the L1 mapping the windows).
    l1: u64,
    table: Table,
}

/// Runs the `gnttab` suite (dom0 alone).
pub fn run_local(s: &mut Suite, si: &StartInfo) {
    if si.flags & SIF_INITDOMAIN == 0 {
        s.skip("role", format_args!("domU"));
        return;
    }
    // Capture every window's own mapping before anything remaps it.
    for w in 0..window::COUNT {
        window::restore(si, w);
    }
    table_ops(s);
    let mut frames = [0u64; 4];
    let (rc, st) = setup_table(DOMID_SELF, 4, &mut frames);
    let spare = |k| window::spare(si, k).map(|(_, mfn)| mfn);
    let (Some(data), Some(ro), Some(dest), Some(other)) =
        (spare(10), spare(11), spare(12), spare(13))
    else {
        s.skip("setup", format_args!("no spare frames"));
        return;
    };
    let l1 = window_pte_maddr(si, W_MAP) >> 12;
    let mapped = rc == 0 && st == GNTST_okay && window::map(si, W_TABLE, frames[0], true) == 0;
    s.check(
        "table.map_frame0",
        mapped,
        format_args!("rc={} status={st} mapped={mapped}", Rc(rc)),
    );
    if !mapped {
        return;
    }
    let f = Local {
        data,
        ro,
        dest,
        other,
        l1,
        table: Table {
            window: W_TABLE,
            v2: false,
        },
    };
    let filled = fill(si, W_LOOK, data, 1) && fill(si, W_LOOK, ro, 2) && fill(si, W_LOOK, dest, 3);
    s.check("setup.fill", filled, format_args!("ok={filled}"));
    let t = f.table;
    t.grant(R_RW, 0, f.data, GTF_permit_access);
    t.grant(R_RO, 0, f.ro, GTF_permit_access | GTF_readonly);
    t.grant(R_REVOKED, 0, f.other, GTF_permit_access);
    let revoked = t.revoke(R_REVOKED);
    s.check("setup.revoke", revoked, format_args!("revoked={revoked}"));
    t.grant(R_OTHER, 1, f.other, GTF_permit_access);
    t.grant(R_PT, 0, f.l1, GTF_permit_access);

    map_self(s, si, &f);
    map_readonly(s, si, &f);
    map_refused(s, si, &f);
    device_map(s, &f);
    replace(s, si, &f);
    copies(s, si, &f);
    swap(s, &f);
    versions(s, si, &f, &frames);
    cache_flush(s, &f);
    transfer(s, si, &f);

    for r in [
        R_RW, R_RO, R_REVOKED, R_OTHER, R_PT, R_SWAP_A, R_SWAP_B, R_ACCEPT,
    ] {
        t.clear(r);
    }
    for w in 0..window::COUNT {
        window::restore(si, w);
    }
}

/// The table-level operations and the hypercall's own checks.
fn table_ops(s: &mut Suite) {
    let (rc, v) = get_version(DOMID_SELF);
    s.check(
        "get_version.self",
        rc == 0 && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (rc, v) = get_version(0);
    s.check(
        "get_version.by_id",
        rc == 0 && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (rc, v) = get_version(NO_SUCH_DOMAIN);
    s.check(
        "get_version.bad_domain",
        rc == ESRCH && v == 0x7777,
        format_args!("rc={} untouched={}", Rc(rc), v == 0x7777),
    );

    let (rc, q) = query_size(DOMID_SELF);
    s.check(
        "query_size.initial",
        rc == 0 && q.status == 0 && q.nr_frames == 1 && q.max_nr_frames == 64,
        format_args!(
            "rc={} status={} nr_frames={} max={}",
            Rc(rc),
            q.status,
            q.nr_frames,
            q.max_nr_frames
        ),
    );
    let (rc, q) = query_size(NO_SUCH_DOMAIN);
    s.check(
        "query_size.bad_domain",
        rc == 0 && q.status == GNTST_bad_domain,
        format_args!("rc={} status={}", Rc(rc), q.status),
    );
    let mut two = [GnttabQuerySize::default(); 2];
    s.expect_rc(
        "query_size.count_2",
        gnttab(GNTTABOP_query_size, &mut two),
        EINVAL,
    );

    let mut frames = [0u64; 8];
    let (rc, st) = setup_table(DOMID_SELF, 4, &mut frames);
    let distinct = frames[..4].iter().all(|&f| f != 0)
        && (0..4).all(|i| (i + 1..4).all(|j| frames[i] != frames[j]));
    s.check(
        "setup_table.grow",
        rc == 0 && st == GNTST_okay && distinct && frames[4] == 0,
        format_args!("rc={} status={st} frames_distinct={distinct}", Rc(rc)),
    );
    let (rc, q) = query_size(0);
    s.check(
        "query_size.after_setup",
        rc == 0 && q.status == 0 && q.nr_frames == 4,
        format_args!(
            "rc={} status={} nr_frames={}",
            Rc(rc),
            q.status,
            q.nr_frames
        ),
    );
    let mut again = [0u64; 2];
    let (rc, st) = setup_table(DOMID_SELF, 2, &mut again);
    s.check(
        "setup_table.smaller",
        rc == 0 && st == GNTST_okay && again == frames[..2],
        format_args!(
            "rc={} status={st} same_frames={}",
            Rc(rc),
            again == frames[..2]
        ),
    );
    let (_, q) = query_size(DOMID_SELF);
    s.expect_eq("query_size.never_shrinks", "nr_frames", q.nr_frames, 4);
    let mut big = [0u64; 65];
    let (rc, st) = setup_table(DOMID_SELF, 65, &mut big);
    s.check(
        "setup_table.too_many",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = setup_table(NO_SUCH_DOMAIN, 1, &mut again);
    s.check(
        "setup_table.bad_domain",
        rc == 0 && st == GNTST_bad_domain,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let mut op = [GnttabSetupTable {
        dom: DOMID_SELF,
        nr_frames: 1,
        status: 0x7777,
        frame_list: GuestHandle::new(HYPERVISOR_VA),
        ..Default::default()
    }];
    let rc = gnttab(GNTTABOP_setup_table, &mut op);
    s.check(
        "setup_table.bad_list",
        rc == EFAULT && op[0].status == 0x7777,
        format_args!("rc={} status_untouched={}", Rc(rc), op[0].status == 0x7777),
    );
    s.expect_rc(
        "setup_table.count_0",
        gnttab_raw(GNTTABOP_setup_table, op.as_mut_ptr() as u64, 0),
        EINVAL,
    );

    s.expect_rc("cmd.unknown_13", gnttab_raw(13, 0, 0), ENOSYS);
    s.expect_rc("cmd.dump_table", gnttab_raw(3, 0, 1), ENOSYS);
    let (_, q) = query_size(DOMID_SELF);
    let mut qop = [q];
    s.expect_rc(
        "cmd.continuation_bits",
        gnttab_raw(GNTTABOP_query_size | 1 << 12, qop.as_mut_ptr() as u64, 1),
        EINVAL,
    );
    s.expect_rc(
        "cmd.negative_count",
        gnttab_raw(GNTTABOP_map_grant_ref, qop.as_mut_ptr() as u64, 0x8000_0000),
        EINVAL,
    );
    s.expect_rc(
        "map.bad_array",
        gnttab_raw(GNTTABOP_map_grant_ref, HYPERVISOR_VA, 1),
        EFAULT,
    );
    // Xen checks where the array starts even when it is empty.
    s.expect_rc(
        "map.count_0",
        gnttab_raw(GNTTABOP_map_grant_ref, HYPERVISOR_VA, 0),
        EFAULT,
    );
    s.expect_rc(
        "map.count_0_valid_array",
        gnttab_raw(GNTTABOP_map_grant_ref, qop.as_mut_ptr() as u64, 0),
        0,
    );
    s.expect_rc(
        "unmap.bad_array",
        gnttab_raw(GNTTABOP_unmap_grant_ref, HYPERVISOR_VA, 2),
        EFAULT,
    );
}

/// Dom0 maps its own writable grant, twice (a linear address and `GNTMAP_contains_pte`).
fn map_self(s: &mut Suite, si: &StartInfo, f: &Local) {
    let t = f.table;
    let (rc, op) = map(0, R_RW, GNTMAP_host_map, window::va(W_MAP));
    let bus_ok = op.dev_bus_addr == f.data * PAGE_SIZE;
    s.check(
        "map.self_host",
        rc == 0 && op.status == GNTST_okay && bus_ok,
        format_args!(
            "rc={} status={} handle={} bus_ok={bus_ok}",
            Rc(rc),
            op.status,
            op.handle
        ),
    );
    if op.status != GNTST_okay {
        return;
    }
    let h = op.handle;
    let read_ok = window_bytes_are(W_MAP, 0, 4096, |i| pattern(1, i));
    s.check(
        "map.self_host_read",
        read_ok,
        format_args!("data_ok={read_ok}"),
    );
    s.expect_eq(
        "map.self_host_flags",
        "flags",
        Hex(t.flags(R_RW).into()),
        Hex(0x19),
    );
    // Write through the grant mapping, see it in the frame itself.
    window::write(W_MAP, 5, 0x5eed_0000_0000_0005);
    let seen = frame_bytes_are(si, W_LOOK, f.data, 40, 8, |i| {
        (0x5eed_0000_0000_0005u64.to_le_bytes())[i - 40]
    });
    s.check("map.self_host_write", seen, format_args!("visible={seen}"));

    let (rc, op2) = map(
        0,
        R_RW,
        GNTMAP_host_map | GNTMAP_readonly | GNTMAP_contains_pte,
        window_pte_maddr(si, W_MAP2),
    );
    let ro_read = op2.status == 0 && window_bytes_are(W_MAP2, 0, 8, |i| pattern(1, i));
    s.check(
        "map.contains_pte_ro",
        rc == 0 && op2.status == GNTST_okay && ro_read,
        format_args!(
            "rc={} status={} handle={} read_ok={ro_read}",
            Rc(rc),
            op2.status,
            op2.handle
        ),
    );
    let (rc, op3) = map(DOMID_SELF, R_RW, GNTMAP_host_map, window::va(W_LOOK));
    s.check(
        "map.domid_self",
        rc == 0 && op3.status == GNTST_bad_domain,
        format_args!("rc={} status={}", Rc(rc), op3.status),
    );
    // Unmapping the read-write handle at the read-only mapping's address: the entry there
    // maps the frame but not writable.
    let (rc, st) = unmap(h, window::va(W_MAP2), 0);
    s.check(
        "unmap.wrong_address",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = unmap(0x7fff, window::va(W_MAP), 0);
    s.check(
        "unmap.bad_handle",
        rc == 0 && st == GNTST_bad_handle,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    if op2.status == GNTST_okay {
        let (rc, st) = unmap(op2.handle, window_pte_maddr(si, W_MAP2), 0);
        s.check(
            "unmap.contains_pte",
            rc == 0 && st == GNTST_okay && !window_present(si, W_MAP2),
            format_args!(
                "rc={} status={st} still_mapped={}",
                Rc(rc),
                window_present(si, W_MAP2)
            ),
        );
    }
    let (rc, st) = unmap(h, window::va(W_MAP), 0);
    s.check(
        "unmap.self_host",
        rc == 0 && st == GNTST_okay,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    s.check(
        "unmap.cleared",
        !window_present(si, W_MAP) && t.flags(R_RW) == GTF_permit_access,
        format_args!(
            "still_mapped={} flags={}",
            window_present(si, W_MAP),
            Hex(t.flags(R_RW).into())
        ),
    );
    let (rc, st) = unmap(h, window::va(W_MAP), 0);
    s.check(
        "unmap.twice",
        rc == 0 && st == GNTST_bad_handle,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    window::restore(si, W_MAP);
    window::restore(si, W_MAP2);
}

/// A read-only grant: refused writable, mapped read-only, and a write faults.
fn map_readonly(s: &mut Suite, si: &StartInfo, f: &Local) {
    let t = f.table;
    let (rc, op) = map(0, R_RO, GNTMAP_host_map, window::va(W_MAP));
    s.check(
        "map.ro_grant_writable",
        rc == 0 && op.status == GNTST_general_error,
        format_args!("rc={} status={}", Rc(rc), op.status),
    );
    s.expect_eq(
        "map.ro_grant_flags_after_refusal",
        "flags",
        Hex(t.flags(R_RO).into()),
        Hex(0x5),
    );
    let (rc, op) = map(
        0,
        R_RO,
        GNTMAP_host_map | GNTMAP_readonly,
        window::va(W_MAP),
    );
    s.check(
        "map.ro_grant_readonly",
        rc == 0 && op.status == GNTST_okay,
        format_args!(
            "rc={} status={} flags={}",
            Rc(rc),
            op.status,
            Hex(t.flags(R_RO).into())
        ),
    );
    if op.status != GNTST_okay {
        return;
    }
    let read_ok = window_bytes_are(W_MAP, 100, 64, |i| pattern(2, i));
    let fault = probe::write_u64(window::va(W_MAP) + 64, 0xbad);
    let unchanged = window_bytes_are(W_MAP, 64, 8, |i| pattern(2, i));
    s.check(
        "map.ro_grant_write_faults",
        read_ok && fault.is_some_and(|f| f.vector == 14) && unchanged,
        format_args!(
            "read_ok={read_ok} fault={} unchanged={unchanged}",
            fault.map_or(0, |f| f.vector)
        ),
    );
    let (rc, st) = unmap(op.handle, window::va(W_MAP), 0);
    s.check(
        "unmap.ro",
        rc == 0 && st == GNTST_okay && t.flags(R_RO) == GTF_permit_access | GTF_readonly,
        format_args!(
            "rc={} status={st} flags={}",
            Rc(rc),
            Hex(t.flags(R_RO).into())
        ),
    );
    window::restore(si, W_MAP);
}

/// Refusals with their status codes.
fn map_refused(s: &mut Suite, si: &StartInfo, f: &Local) {
    let t = f.table;
    let va = window::va(W_MAP);
    let cases: [(&str, u16, GrantRef, u32, u64, i16); 8] = [
        (
            "map.revoked",
            0,
            R_REVOKED,
            GNTMAP_host_map,
            va,
            GNTST_general_error,
        ),
        (
            "map.granted_to_other",
            0,
            R_OTHER,
            GNTMAP_host_map,
            va,
            GNTST_general_error,
        ),
        (
            "map.bad_ref",
            0,
            BAD_REF,
            GNTMAP_host_map,
            va,
            GNTST_bad_gntref,
        ),
        (
            "map.no_map_flags",
            0,
            R_RW,
            GNTMAP_readonly,
            va,
            GNTST_bad_gntref,
        ),
        (
            "map.bad_domain",
            NO_SUCH_DOMAIN,
            R_RW,
            GNTMAP_host_map,
            va,
            GNTST_bad_domain,
        ),
        (
            "map.hypervisor_address",
            0,
            R_RW,
            GNTMAP_host_map,
            HYPERVISOR_VA,
            GNTST_general_error,
        ),
        (
            "map.misaligned_pte",
            0,
            R_RW,
            GNTMAP_host_map | GNTMAP_contains_pte,
            window_pte_maddr(si, W_MAP) + 4,
            GNTST_general_error,
        ),
        (
            "map.page_table_writable",
            0,
            R_PT,
            GNTMAP_host_map,
            va,
            GNTST_general_error,
        ),
    ];
    for (name, dom, r, flags, addr, want) in cases {
        let (rc, op) = map(dom, r, flags, addr);
        s.check(
            name,
            rc == 0 && op.status == want && op.handle == 0x7777_7777,
            format_args!(
                "rc={} status={} handle_untouched={}",
                Rc(rc),
                op.status,
                op.handle == 0x7777_7777
            ),
        );
    }
    // Every refusal left the entries unpinned.
    s.check(
        "map.refusals_leave_no_pin",
        t.flags(R_RW) == GTF_permit_access && t.flags(R_PT) == GTF_permit_access,
        format_args!(
            "rw={} pt={}",
            Hex(t.flags(R_RW).into()),
            Hex(t.flags(R_PT).into())
        ),
    );
    // A page table may be mapped read-only.
    let (rc, op) = map(0, R_PT, GNTMAP_host_map | GNTMAP_readonly, va);
    let (urc, st) = if op.status == GNTST_okay {
        unmap(op.handle, va, 0)
    } else {
        (0, 0x7777)
    };
    s.check(
        "map.page_table_readonly",
        rc == 0 && op.status == GNTST_okay && urc == 0 && st == GNTST_okay,
        format_args!("rc={} status={} unmap={st}", Rc(rc), op.status),
    );
    window::restore(si, W_MAP);
    // Two maps in one call: one good, one refused; both elements written back.
    let mut ops = [
        GnttabMapGrantRef {
            host_addr: va,
            flags: GNTMAP_host_map,
            ref_: R_RW,
            dom: 0,
            status: 0x7777,
            ..Default::default()
        },
        GnttabMapGrantRef {
            host_addr: va,
            flags: GNTMAP_host_map,
            ref_: BAD_REF,
            dom: 0,
            status: 0x7777,
            ..Default::default()
        },
    ];
    let rc = gnttab(GNTTABOP_map_grant_ref, &mut ops);
    let (urc, st) = unmap(ops[0].handle, va, 0);
    s.check(
        "map.batch",
        rc == 0 && ops[0].status == GNTST_okay && ops[1].status == GNTST_bad_gntref && st == 0,
        format_args!(
            "rc={} status={},{} unmap={},{st}",
            Rc(rc),
            ops[0].status,
            ops[1].status,
            Rc(urc)
        ),
    );
    window::restore(si, W_MAP);
}

/// `GNTMAP_device_map` (accepted: the machine address, no IOMMU).
fn device_map(s: &mut Suite, f: &Local) {
    let (rc, op) = map(0, R_RW, GNTMAP_device_map, 0);
    let bus_ok = op.dev_bus_addr == f.data * PAGE_SIZE;
    s.check(
        "map.device",
        rc == 0 && op.status == GNTST_okay && bus_ok,
        format_args!(
            "rc={} status={} bus_ok={bus_ok} flags={}",
            Rc(rc),
            op.status,
            Hex(f.table.flags(R_RW).into())
        ),
    );
    if op.status != GNTST_okay {
        return;
    }
    let (rc, st) = unmap(op.handle, 0, (f.data + 1) * PAGE_SIZE);
    s.check(
        "unmap.device_wrong_address",
        rc == 0,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    // Without an address nothing is unmapped (and the handle stays).
    let (rc, st) = unmap(op.handle, 0, 0);
    s.check(
        "unmap.device_no_address",
        rc == 0,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = unmap(op.handle, 0, f.data * PAGE_SIZE);
    s.check(
        "unmap.device",
        rc == 0 && st == GNTST_okay && f.table.flags(R_RW) == GTF_permit_access,
        format_args!(
            "rc={} status={st} flags={}",
            Rc(rc),
            Hex(f.table.flags(R_RW).into())
        ),
    );
}

/// `GNTTABOP_unmap_and_replace`: the grant's entry gets the one at `new_addr`, which is
/// cleared.
fn replace(s: &mut Suite, si: &StartInfo, f: &Local) {
    // Mark the second window's own page, to recognise it.
    window::write(W_MAP2, 0, 0x0072_6570_6c61_6365);
    let (rc, op) = map(0, R_RW, GNTMAP_host_map, window::va(W_MAP));
    if rc != 0 || op.status != GNTST_okay {
        s.check(
            "unmap_and_replace.map",
            false,
            format_args!("rc={} status={}", Rc(rc), op.status),
        );
        return;
    }
    let mut r = [GnttabUnmapAndReplace {
        host_addr: window::va(W_MAP),
        new_addr: window::va(W_MAP2),
        handle: op.handle,
        status: 0x7777,
        _pad0: 0,
    }];
    let rc = gnttab(GNTTABOP_unmap_and_replace, &mut r);
    let moved = r[0].status == GNTST_okay && window::read(W_MAP, 0) == 0x0072_6570_6c61_6365;
    let cleared = !window_present(si, W_MAP2);
    s.check(
        "unmap_and_replace",
        rc == 0 && r[0].status == GNTST_okay && moved && cleared,
        format_args!(
            "rc={} status={} moved={moved} new_addr_cleared={cleared} flags={}",
            Rc(rc),
            r[0].status,
            Hex(f.table.flags(R_RW).into())
        ),
    );
    if r[0].status != GNTST_okay {
        unmap(op.handle, window::va(W_MAP), 0);
    }
    window::restore(si, W_MAP);
    window::restore(si, W_MAP2);
}

/// `GNTTABOP_copy` between grants and frames.
fn copies(s: &mut Suite, si: &StartInfo, f: &Local) {
    let me = 0;
    // Grant (read-write grant, offset 50) to an own frame (offset 100).
    let (rc, st) = copy(Side::Gref(me, R_RW, 50), Side::Own(f.dest, 100), 200);
    let ok = frame_bytes_are(si, W_LOOK, f.dest, 100, 200, |i| pattern(1, i - 50));
    let edges = frame_bytes_are(si, W_LOOK, f.dest, 99, 1, |i| pattern(3, i))
        && frame_bytes_are(si, W_LOOK, f.dest, 300, 1, |i| pattern(3, i));
    s.check(
        "copy.gref_to_frame",
        rc == 0 && st == GNTST_okay && ok && edges,
        format_args!("rc={} status={st} data_ok={ok} edges_ok={edges}", Rc(rc)),
    );
    // Own frame to the end of a grant (a partial page up to the last byte).
    let (rc, st) = copy(
        Side::Own(f.dest, 1000),
        Side::Gref(DOMID_SELF, R_RW, 4000),
        96,
    );
    let ok = frame_bytes_are(si, W_LOOK, f.data, 4000, 96, |i| pattern(3, i - 3000));
    s.check(
        "copy.frame_to_gref",
        rc == 0 && st == GNTST_okay && ok,
        format_args!("rc={} status={st} data_ok={ok}", Rc(rc)),
    );
    // Read-only grant to read-write grant.
    let (rc, st) = copy(Side::Gref(me, R_RO, 0), Side::Gref(me, R_RW, 2048), 1024);
    let ok = frame_bytes_are(si, W_LOOK, f.data, 2048, 1024, |i| pattern(2, i - 2048));
    s.check(
        "copy.gref_to_gref",
        rc == 0 && st == GNTST_okay && ok,
        format_args!("rc={} status={st} data_ok={ok}", Rc(rc)),
    );
    s.check(
        "copy.leaves_no_pin",
        f.table.flags(R_RW) == GTF_permit_access
            && f.table.flags(R_RO) == GTF_permit_access | GTF_readonly,
        format_args!(
            "rw={} ro={}",
            Hex(f.table.flags(R_RW).into()),
            Hex(f.table.flags(R_RO).into())
        ),
    );
    let refused: [(&str, Side, Side, u16, i16); 9] = [
        (
            "copy.to_readonly_grant",
            Side::Own(f.dest, 0),
            Side::Gref(me, R_RO, 0),
            8,
            GNTST_general_error,
        ),
        (
            "copy.revoked",
            Side::Gref(me, R_REVOKED, 0),
            Side::Own(f.dest, 0),
            8,
            GNTST_general_error,
        ),
        (
            "copy.granted_to_other",
            Side::Gref(me, R_OTHER, 0),
            Side::Own(f.dest, 0),
            8,
            GNTST_general_error,
        ),
        (
            "copy.bad_ref",
            Side::Gref(me, BAD_REF, 0),
            Side::Own(f.dest, 0),
            8,
            GNTST_bad_gntref,
        ),
        (
            "copy.crosses_page",
            Side::Gref(me, R_RW, 4000),
            Side::Own(f.dest, 0),
            200,
            GNTST_bad_copy_arg,
        ),
        (
            "copy.frame_by_domid",
            Side::Frame(me, f.dest, 0),
            Side::Own(f.other, 0),
            8,
            GNTST_permission_denied,
        ),
        (
            "copy.bad_domain",
            Side::Gref(NO_SUCH_DOMAIN, R_RW, 0),
            Side::Own(f.dest, 0),
            8,
            GNTST_bad_domain,
        ),
        (
            "copy.not_own_frame",
            Side::Own(0, 0),
            Side::Own(f.dest, 0),
            8,
            GNTST_bad_page,
        ),
        (
            "copy.page_table_dest",
            Side::Own(f.dest, 0),
            Side::Own(f.l1, 0),
            8,
            GNTST_general_error,
        ),
    ];
    for (name, src, dest, len, want) in refused {
        let (rc, st) = copy(src, dest, len);
        s.check(
            name,
            rc == 0 && st == want,
            format_args!("rc={} status={st}", Rc(rc)),
        );
    }
    // A batch: the second element fails, the others are still done.
    let mut ops = [
        copy_op(Side::Gref(me, R_RW, 0), Side::Own(f.dest, 0), 16),
        copy_op(Side::Gref(me, R_RW, 4090), Side::Own(f.dest, 0), 16),
        copy_op(Side::Gref(me, R_RW, 16), Side::Own(f.dest, 16), 16),
    ];
    let rc = gnttab(GNTTABOP_copy, &mut ops);
    let ok = frame_bytes_are(si, W_LOOK, f.dest, 0, 32, |i| pattern(1, i));
    s.check(
        "copy.batch",
        rc == 0
            && ops[0].status == 0
            && ops[1].status == GNTST_bad_copy_arg
            && ops[2].status == 0
            && ok,
        format_args!(
            "rc={} status={},{},{} data_ok={ok}",
            Rc(rc),
            ops[0].status,
            ops[1].status,
            ops[2].status
        ),
    );
}

/// `GNTTABOP_swap_grant_ref`.
fn swap(s: &mut Suite, f: &Local) {
    let t = f.table;
    t.grant(R_SWAP_A, 0, f.dest, GTF_permit_access);
    t.grant(R_SWAP_B, 7, f.other, GTF_permit_access | GTF_readonly);
    let swap_one = |a, b| {
        let mut op = [GnttabSwapGrantRef {
            ref_a: a,
            ref_b: b,
            status: 0x7777,
            _pad0: 0,
        }];
        let rc = gnttab(GNTTABOP_swap_grant_ref, &mut op);
        (rc, op[0].status)
    };
    let (rc, st) = swap_one(R_SWAP_A, R_SWAP_B);
    let swapped = t.frame(R_SWAP_A) == f.other
        && t.flags(R_SWAP_A) == GTF_permit_access | GTF_readonly
        && t.frame(R_SWAP_B) == f.dest
        && t.flags(R_SWAP_B) == GTF_permit_access;
    s.check(
        "swap",
        rc == 0 && st == GNTST_okay && swapped,
        format_args!("rc={} status={st} swapped={swapped}", Rc(rc)),
    );
    let (rc, st) = swap_one(R_SWAP_A, R_SWAP_A);
    s.check(
        "swap.same",
        rc == 0 && st == GNTST_okay,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = swap_one(R_SWAP_A, BAD_REF);
    s.check(
        "swap.bad_ref",
        rc == 0 && st == GNTST_bad_gntref,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    // A pinned entry cannot be swapped.
    let (_, op) = map(0, R_RW, GNTMAP_device_map, 0);
    let (rc, st) = swap_one(R_SWAP_A, R_RW);
    s.check(
        "swap.pinned",
        rc == 0 && st == GNTST_eagain,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    if op.status == GNTST_okay {
        unmap(op.handle, 0, f.data * PAGE_SIZE);
    }
}

/// Versions 1 and 2, and the status frames.
fn versions(s: &mut Suite, si: &StartInfo, f: &Local, frames: &[u64; 4]) {
    // A pinned entry beyond the reserved ones blocks a version change.
    let (_, op) = map(0, R_RW, GNTMAP_device_map, 0);
    let (rc, v) = set_version(2);
    s.check(
        "set_version.busy",
        rc == EBUSY && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    if op.status == GNTST_okay {
        unmap(op.handle, 0, f.data * PAGE_SIZE);
    }
    let (rc, v) = set_version(3);
    s.check(
        "set_version.bad",
        rc == EINVAL && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (rc, v) = set_version(1);
    s.check(
        "set_version.same",
        rc == 0 && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let mut st_frames = [0u64; 2];
    let (rc, st) = get_status_frames(DOMID_SELF, 1, &mut st_frames);
    s.check(
        "get_status_frames.v1",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = get_status_frames(DOMID_SELF, 0, &mut st_frames);
    s.check(
        "get_status_frames.v1_none",
        rc == 0 && st == GNTST_okay,
        format_args!("rc={} status={st}", Rc(rc)),
    );

    let (rc, v) = set_version(2);
    s.check(
        "set_version.v2",
        rc == 0 && v == 2,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (rc, v) = get_version(DOMID_SELF);
    s.check(
        "get_version.v2",
        rc == 0 && v == 2,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (_, q) = query_size(DOMID_SELF);
    s.expect_eq("query_size.v2", "nr_frames", q.nr_frames, 4);
    // The switch cleared the (non-reserved) entries.
    let t2 = Table {
        window: W_TABLE,
        v2: true,
    };
    let zeroed = t2.flags(R_RW) == 0 && t2.frame(R_RW) == 0;
    s.check(
        "set_version.v2_clears_entries",
        zeroed,
        format_args!("cleared={zeroed}"),
    );
    let (rc, st) = get_status_frames(DOMID_SELF, 1, &mut st_frames);
    s.check(
        "get_status_frames.v2",
        rc == 0 && st == GNTST_okay && st_frames[0] != 0,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = get_status_frames(DOMID_SELF, 2, &mut st_frames);
    s.check(
        "get_status_frames.too_many",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let mut gop = [GnttabGetStatusFrames {
        nr_frames: 1,
        dom: DOMID_SELF,
        status: 0x7777,
        frame_list: GuestHandle::new(HYPERVISOR_VA),
    }];
    s.expect_rc(
        "get_status_frames.bad_list",
        gnttab(GNTTABOP_get_status_frames, &mut gop),
        EFAULT,
    );
    let (rc, st) = get_status_frames(NO_SUCH_DOMAIN, 1, &mut st_frames);
    s.check(
        "get_status_frames.bad_domain",
        rc == 0 && st == GNTST_bad_domain,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let mut same = [0u64; 4];
    let (rc, st) = setup_table(DOMID_SELF, 4, &mut same);
    s.check(
        "setup_table.v2_same_frames",
        rc == 0 && st == GNTST_okay && same == *frames,
        format_args!("rc={} status={st} same={}", Rc(rc), same == *frames),
    );

    // A v2 grant: the in-use bits go to the status frame, not the entry.
    t2.grant(R_RW, 0, f.data, GTF_permit_access);
    let (rc, op) = map(0, R_RW, GNTMAP_host_map, window::va(W_MAP));
    let read_ok = op.status == GNTST_okay && window_bytes_are(W_MAP, 0, 16, |i| pattern(1, i));
    let status_mapped = window::map(si, W_LOOK, st_frames[0], false) == 0;
    // SAFETY: the status frame is mapped read-only at W_LOOK; status words are u16.
    let status_word = |r: GrantRef| unsafe {
        ptr::read_volatile((window::va(W_LOOK) + u64::from(r) * 2) as *const u16)
    };
    let in_use = if status_mapped {
        status_word(R_RW)
    } else {
        0xffff
    };
    s.check(
        "map.v2",
        rc == 0
            && op.status == GNTST_okay
            && read_ok
            && in_use == GTF_reading | GTF_writing
            && t2.flags(R_RW) == GTF_permit_access,
        format_args!(
            "rc={} status={} read_ok={read_ok} status_word={} flags={}",
            Rc(rc),
            op.status,
            Hex(in_use.into()),
            Hex(t2.flags(R_RW).into())
        ),
    );
    if op.status == GNTST_okay {
        let (rc, st) = unmap(op.handle, window::va(W_MAP), 0);
        let after = if status_mapped {
            status_word(R_RW)
        } else {
            0xffff
        };
        s.check(
            "unmap.v2",
            rc == 0 && st == GNTST_okay && after == 0,
            format_args!(
                "rc={} status={st} status_word={}",
                Rc(rc),
                Hex(after.into())
            ),
        );
    }
    window::restore(si, W_MAP);
    // Back to v1 refused while the status frame is mapped, then accepted.
    let (rc, v) = set_version(1);
    s.check(
        "set_version.v1_status_mapped",
        status_mapped && rc == EBUSY && v == 2,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    window::restore(si, W_LOOK);
    let (rc, v) = set_version(1);
    s.check(
        "set_version.v1",
        rc == 0 && v == 1,
        format_args!("rc={} version={v}", Rc(rc)),
    );
    let (rc, st) = get_status_frames(DOMID_SELF, 1, &mut st_frames);
    s.check(
        "get_status_frames.after_v1",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    // The v1 layout again: re-grant what the switches cleared.
    let t = f.table;
    t.grant(R_RW, 0, f.data, GTF_permit_access);
    let (rc, op) = map(0, R_RW, GNTMAP_host_map, window::va(W_MAP));
    let (urc, st) = unmap(op.handle, window::va(W_MAP), 0);
    s.check(
        "map.v1_again",
        rc == 0 && op.status == GNTST_okay && urc == 0 && st == GNTST_okay,
        format_args!("rc={} status={} unmap={st}", Rc(rc), op.status),
    );
    window::restore(si, W_MAP);
}

/// `GNTTABOP_cache_flush` of an own frame.
fn cache_flush(s: &mut Suite, f: &Local) {
    let flush = |op: u32, offset: u16, length: u16, count: u64| {
        let mut c = [GnttabCacheFlush {
            a: f.data * PAGE_SIZE,
            offset,
            length,
            op,
        }];
        gnttab_raw(GNTTABOP_cache_flush, c.as_mut_ptr() as u64, count)
    };
    s.expect_rc("cache_flush.clean", flush(GNTTAB_CACHE_CLEAN, 0, 64, 1), 0);
    s.expect_rc(
        "cache_flush.clean_invalidate",
        flush(GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL, 128, 4096 - 128, 1),
        0,
    );
    s.expect_rc(
        "cache_flush.invalidate_only",
        flush(GNTTAB_CACHE_INVAL, 0, 64, 1),
        EOPNOTSUPP,
    );
    s.expect_rc("cache_flush.bad_op", flush(4, 0, 64, 1), EINVAL);
    s.expect_rc(
        "cache_flush.beyond_page",
        flush(GNTTAB_CACHE_CLEAN, 4000, 200, 1),
        EINVAL,
    );
    s.expect_rc("cache_flush.empty", flush(GNTTAB_CACHE_CLEAN, 0, 0, 1), 0);
    s.expect_rc(
        "cache_flush.count_0",
        flush(GNTTAB_CACHE_CLEAN, 0, 64, 0),
        0,
    );
}

/// `GNTTABOP_transfer` of a frame of dom0's to itself (the receiving entry accepts from
/// domain 0), and the refusals. A frame stolen for a transfer that then fails is freed: the
/// refusals after the steal use spare frames that are lost to dom0 afterwards.
fn transfer(s: &mut Suite, si: &StartInfo, f: &Local) {
    let t = f.table;
    let (Some((pfn, mfn)), Some((_, lost1)), Some((_, lost2))) = (
        window::spare(si, 14),
        window::spare(si, 15),
        window::spare(si, 16),
    ) else {
        s.skip("transfer", format_args!("no spare frames"));
        return;
    };
    let send = |mfn: u64, domid: u16, r: GrantRef| {
        let mut op = [GnttabTransfer {
            mfn,
            domid,
            ref_: r,
            status: 0x7777,
            ..Default::default()
        }];
        let rc = gnttab(GNTTABOP_transfer, &mut op);
        (rc, op[0].status)
    };
    let filled = fill(si, W_LOOK, mfn, 9);
    t.grant(R_ACCEPT, 0, pfn, GTF_accept_transfer);
    let (rc, st) = send(mfn, 0, R_ACCEPT);
    let flags = t.flags(R_ACCEPT);
    let told = t.frame(R_ACCEPT) == mfn;
    let m2p_ok = mm::m2p(mfn) == pfn;
    let data = frame_bytes_are(si, W_LOOK, mfn, 0, 4096, |i| pattern(9, i));
    s.check(
        "transfer.to_self",
        filled && rc == 0 && st == GNTST_okay && told && m2p_ok && data,
        format_args!(
            "rc={} status={st} flags={} frame_is_mfn={told} m2p_ok={m2p_ok} data_ok={data}",
            Rc(rc),
            Hex(flags.into())
        ),
    );
    // The entry was used up: a second transfer to it is refused (the frame is lost).
    let (rc, st) = send(lost1, 0, R_ACCEPT);
    s.check(
        "transfer.entry_used",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = send(lost2, NO_SUCH_DOMAIN, R_ACCEPT);
    s.check(
        "transfer.bad_domain",
        rc == 0 && st == GNTST_bad_domain,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    // Frames still in use are not stolen: a page table, a mapped frame, a frame not ours.
    t.grant(R_ACCEPT, 0, pfn, GTF_accept_transfer);
    for (name, m) in [
        ("transfer.page_table", f.l1),
        (
            "transfer.mapped_frame",
            mm::walk(si, window::va(W_MAP)).map_or(0, |e| (e.value & PTE_MFN_MASK) >> 12),
        ),
        ("transfer.not_own_frame", 0),
    ] {
        let (rc, st) = send(m, 0, R_ACCEPT);
        s.check(
            name,
            rc == 0 && st == GNTST_bad_page,
            format_args!(
                "rc={} status={st} entry={}",
                Rc(rc),
                Hex(t.flags(R_ACCEPT).into())
            ),
        );
    }
    let mut none: [GnttabTransfer; 0] = [];
    s.expect_rc("transfer.count_0", gnttab(GNTTABOP_transfer, &mut none), 0);
}

// =============================================================================================
// `grants`: dom0 and domain 1.

/// Messages through the ring.
pub const MESSAGES: u64 = 1000;
/// Slots of the ring.
const SLOTS: u64 = 64;
/// The peer.
const PEER: u16 = 1;
/// Longest wait for the other side, in ns of system time.
const PATIENCE_NS: u64 = 30_000_000_000;

/// The domU's grant references (fixed: both sides know them).
const G_RING: GrantRef = 10;
const G_RO: GrantRef = 11;
const G_COPY: GrantRef = 12;
const G_OTHER: GrantRef = 13;
const G_REVOKED: GrantRef = 14;
/// Dom0's grant to the domU.
const G_DOM0: GrantRef = 9;

/// Words of the ring page.
const W_MAGIC: usize = 0;
const W_PROD: usize = 1;
const W_CONS: usize = 2;
const W_PHASE: usize = 3;
const W_SUM0: usize = 4;
const W_BYE: usize = 5;
const W_SLOTS: usize = 64;

const MAGIC_READY: u64 = 0x5245_4144_5952_4e47; // "GNRYDAER"
const MAGIC_BYE: u64 = 0x4259_4542_5945_4259;

/// Phases (`W_PHASE`), each set by the side that finished the step.
const PH_RING_DONE: u64 = 1; // dom0: consumed all messages, checksum in W_SUM0
const PH_DOM0_COPIED: u64 = 2; // dom0: its copies to and from the domU's grants are done
const PH_DOMU_COPIED: u64 = 3; // domU: its copies with dom0's grant are done
const PH_DOM0_CHECKED: u64 = 4; // dom0: refusals and checks done
const PH_DOMU_MAPPED: u64 = 5; // domU: maps dom0's grant
const PH_DOM0_SAW_PIN: u64 = 6; // dom0: saw its grant in use
const PH_BYE: u64 = 7; // domU: about to power off (still mapping dom0's grant)

/// Message `i`: its number in the top half, a hash in the bottom half.
fn message(i: u64) -> u64 {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    i << 32 | (x ^ (x >> 31)) & 0xffff_ffff
}

/// The checksum both sides compute over the messages.
fn checksum_step(sum: u64, msg: u64) -> u64 {
    sum.rotate_left(5) ^ msg
}

/// A word of a page mapped at `va`, accessed atomically (the other domain writes it too).
fn word(va: u64, i: usize) -> &'static AtomicU64 {
    // SAFETY: `va` is a page mapped writable for the rest of the suite (or read-only, for
    // loads only); words are aligned; the atomics match what the other side does.
    unsafe { AtomicU64::from_ptr((va + i as u64 * 8) as *mut u64) }
}

/// Waits (yielding) until `cond` holds or the patience runs out.
fn wait_for(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    loop {
        if cond() {
            return true;
        }
        if ev::now_ns() >= deadline {
            return false;
        }
        yield_cpu();
    }
}

/// Runs the `grants` suite (two domains).
pub fn run_pair(s: &mut Suite, si: &StartInfo) {
    for w in 0..window::COUNT {
        window::restore(si, w);
    }
    if ev::map_shared_info(si) != 0 {
        s.check("setup", false, format_args!("shared_info not mapped"));
        return;
    }
    if si.flags & SIF_INITDOMAIN != 0 {
        dom0(s, si);
    } else {
        domu(s, si);
    }
}

/// Maps this domain's grant-table frame 0 at window 0; returns the table.
fn own_table(s: &mut Suite, si: &StartInfo) -> Option<Table> {
    let mut frames = [0u64; 1];
    let (rc, st) = setup_table(DOMID_SELF, 1, &mut frames);
    let mapped = rc == 0 && st == GNTST_okay && window::map(si, 0, frames[0], true) == 0;
    s.check(
        "own_table",
        mapped,
        format_args!("rc={} status={st} mapped={mapped}", Rc(rc)),
    );
    mapped.then_some(Table {
        window: 0,
        v2: false,
    })
}

// ---- The domU ---------------------------------------------------------------------------------

fn domu(s: &mut Suite, si: &StartInfo) {
    let Some(t) = own_table(s, si) else {
        return;
    };
    let spare = |k| window::spare(si, k).map(|(_, mfn)| mfn);
    let (Some(ring), Some(ro), Some(cpy), Some(other), Some(revoked), Some(mine)) =
        (spare(0), spare(1), spare(2), spare(3), spare(4), spare(5))
    else {
        s.skip("setup", format_args!("no spare frames"));
        return;
    };
    let filled = fill(si, 2, ro, 11) && fill(si, 2, cpy, 12) && fill(si, 2, mine, 15);
    // The ring page stays mapped at window 1.
    let ring_mapped = window::map(si, 1, ring, true) == 0;
    s.check(
        "setup",
        filled && ring_mapped,
        format_args!("filled={filled} ring_mapped={ring_mapped}"),
    );
    if !ring_mapped {
        return;
    }
    let rp = window::va(1);
    for i in 0..512 {
        word(rp, i).store(0, Ordering::SeqCst);
    }
    t.grant(G_RO, 0, ro, GTF_permit_access | GTF_readonly);
    t.grant(G_COPY, 0, cpy, GTF_permit_access);
    t.grant(G_OTHER, 5, other, GTF_permit_access);
    t.grant(G_REVOKED, 0, revoked, GTF_permit_access);
    let revoked_ok = t.revoke(G_REVOKED);
    word(rp, W_MAGIC).store(MAGIC_READY, Ordering::SeqCst);
    // The ring last: dom0 maps it as soon as it is granted.
    t.grant(G_RING, 0, ring, GTF_permit_access);
    s.check(
        "granted",
        revoked_ok,
        format_args!("revoked_unused={revoked_ok}"),
    );

    // Produce the messages.
    let mut sum = 0u64;
    let mut produced = 0;
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    while produced < MESSAGES && ev::now_ns() < deadline {
        let cons = word(rp, W_CONS).load(Ordering::Acquire);
        if produced - cons >= SLOTS {
            yield_cpu();
            continue;
        }
        let m = message(produced);
        word(rp, W_SLOTS + (produced % SLOTS) as usize).store(m, Ordering::Relaxed);
        sum = checksum_step(sum, m);
        produced += 1;
        word(rp, W_PROD).store(produced, Ordering::Release);
    }
    s.expect_eq("ring.produced", "n", produced, MESSAGES);
    // While dom0 maps the ring the grant cannot be revoked.
    let in_use = t.flags(G_RING);
    let revoked = t.revoke(G_RING);
    s.check(
        "ring.revoke_refused_while_mapped",
        !revoked && in_use == GTF_permit_access | GTF_reading | GTF_writing,
        format_args!("revoked={revoked} flags={}", Hex(in_use.into())),
    );
    let done = wait_for(|| word(rp, W_PHASE).load(Ordering::Acquire) >= PH_RING_DONE);
    let theirs = word(rp, W_SUM0).load(Ordering::Acquire);
    s.check(
        "ring.checksum",
        done && theirs == sum,
        format_args!("done={done} equal={}", theirs == sum),
    );

    // Dom0's copies into our grant.
    let done = wait_for(|| word(rp, W_PHASE).load(Ordering::Acquire) >= PH_DOM0_COPIED);
    let b = frame_bytes_are(si, 2, cpy, 1000, 333, |i| pattern(20, i - 1000 + 7));
    let c = frame_bytes_are(si, 2, cpy, 2048, 512, |i| pattern(11, i - 2048 + 64));
    let around = frame_bytes_are(si, 2, cpy, 999, 1, |i| pattern(12, i))
        && frame_bytes_are(si, 2, cpy, 1333, 1, |i| pattern(12, i));
    s.check(
        "copy.received",
        done && b && c && around,
        format_args!("done={done} frame_to_gref={b} gref_to_gref={c} around={around}"),
    );

    // Our copies with dom0's grant (ref 9, granted to us).
    let (rc, st) = copy(Side::Gref(0, G_DOM0, 128), Side::Own(mine, 64), 256);
    let ok = frame_bytes_are(si, 2, mine, 64, 256, |i| pattern(20, i - 64 + 128));
    s.check(
        "copy.from_dom0_grant",
        rc == 0 && st == GNTST_okay && ok,
        format_args!("rc={} status={st} data_ok={ok}", Rc(rc)),
    );
    let (rc, st) = copy(Side::Own(mine, 500), Side::Gref(0, G_DOM0, 3000), 500);
    s.check(
        "copy.to_dom0_grant",
        rc == 0 && st == GNTST_okay,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    // What an unprivileged domain may not do to dom0's table.
    let (rc, q) = query_size(0);
    s.check(
        "refused.query_size_dom0",
        rc == 0 && q.status == GNTST_permission_denied,
        format_args!("rc={} status={}", Rc(rc), q.status),
    );
    let mut frames = [0u64; 1];
    let (rc, st) = setup_table(0, 1, &mut frames);
    s.check(
        "refused.setup_table_dom0",
        rc == 0 && st == GNTST_permission_denied,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, _) = get_version(0);
    s.expect_rc("refused.get_version_dom0", rc, EPERM);
    word(rp, W_PHASE).store(PH_DOMU_COPIED, Ordering::Release);

    // Map dom0's grant and keep it mapped: we die with it.
    let done = wait_for(|| word(rp, W_PHASE).load(Ordering::Acquire) >= PH_DOM0_CHECKED);
    let (rc, op) = map(0, G_DOM0, GNTMAP_host_map | GNTMAP_readonly, window::va(3));
    let read_ok = op.status == GNTST_okay && window_bytes_are(3, 0, 64, |i| pattern(20, i));
    s.check(
        "map.dom0_grant",
        done && rc == 0 && op.status == GNTST_okay && read_ok,
        format_args!(
            "done={done} rc={} status={} read_ok={read_ok}",
            Rc(rc),
            op.status
        ),
    );
    word(rp, W_PHASE).store(PH_DOMU_MAPPED, Ordering::Release);
    let seen = wait_for(|| word(rp, W_PHASE).load(Ordering::Acquire) >= PH_DOM0_SAW_PIN);
    s.check("bye", seen, format_args!("dom0_saw_pin={seen}"));
    word(rp, W_BYE).store(MAGIC_BYE, Ordering::SeqCst);
    word(rp, W_PHASE).store(PH_BYE, Ordering::Release);
    println!("GRANTS domU powering off with dom0's grant mapped");
}

// ---- Dom0 ---------------------------------------------------------------------------------------

fn dom0(s: &mut Suite, si: &StartInfo) {
    let Some(t) = own_table(s, si) else {
        return;
    };
    let Some(mine) = window::spare(si, 20).map(|(_, mfn)| mfn) else {
        s.skip("setup", format_args!("no spare frame"));
        return;
    };
    let filled = fill(si, 2, mine, 20);
    t.grant(G_DOM0, PEER, mine, GTF_permit_access);
    s.check("setup", filled, format_args!("filled={filled}"));

    // Map the ring as soon as the domU has granted it.
    let ring_va = window::va(1);
    let mut last = (0, 0);
    let mut handle: GrantHandle = 0;
    let mapped = wait_for(|| {
        let (rc, op) = map(PEER, G_RING, GNTMAP_host_map, ring_va);
        last = (rc, op.status);
        handle = op.handle;
        rc == 0 && op.status == GNTST_okay
    });
    let magic = mapped && word(ring_va, W_MAGIC).load(Ordering::Acquire) == MAGIC_READY;
    s.check(
        "ring.map",
        mapped && magic,
        format_args!("mapped={mapped} magic={magic}"),
    );
    if !mapped {
        println!(
            "GRANTS map of the ring: rc={} status={}",
            Rc(last.0),
            last.1
        );
        return;
    }

    // Consume the messages.
    let mut sum = 0u64;
    let mut consumed = 0;
    let mut in_order = true;
    let deadline = ev::now_ns().saturating_add(PATIENCE_NS);
    while consumed < MESSAGES && ev::now_ns() < deadline {
        let prod = word(ring_va, W_PROD).load(Ordering::Acquire);
        if prod == consumed {
            yield_cpu();
            continue;
        }
        while consumed < prod {
            let m = word(ring_va, W_SLOTS + (consumed % SLOTS) as usize).load(Ordering::Relaxed);
            in_order &= m == message(consumed);
            sum = checksum_step(sum, m);
            consumed += 1;
        }
        word(ring_va, W_CONS).store(consumed, Ordering::Release);
    }
    let want = (0..MESSAGES).fold(0, |acc, i| checksum_step(acc, message(i)));
    s.check(
        "ring.consumed",
        consumed == MESSAGES && in_order && sum == want,
        format_args!(
            "n={consumed} in_order={in_order} checksum_ok={}",
            sum == want
        ),
    );
    word(ring_va, W_SUM0).store(sum, Ordering::Release);
    word(ring_va, W_PHASE).store(PH_RING_DONE, Ordering::Release);

    // Copies to and from the domU's grants, with partial pages.
    let (rc, st) = copy(Side::Gref(PEER, G_COPY, 100), Side::Own(mine, 600), 200);
    let ok = frame_bytes_are(si, 2, mine, 600, 200, |i| pattern(12, i - 600 + 100));
    s.check(
        "copy.from_domu_grant",
        rc == 0 && st == GNTST_okay && ok,
        format_args!("rc={} status={st} data_ok={ok}", Rc(rc)),
    );
    // (Bytes 7..340 of our page are still the pattern: the copy above wrote 600..800.)
    let (rc1, st1) = copy(Side::Own(mine, 7), Side::Gref(PEER, G_COPY, 1000), 333);
    let (rc2, st2) = copy(
        Side::Gref(PEER, G_RO, 64),
        Side::Gref(PEER, G_COPY, 2048),
        512,
    );
    s.check(
        "copy.to_domu_grant",
        rc1 == 0 && st1 == GNTST_okay && rc2 == 0 && st2 == GNTST_okay,
        format_args!("frame_to_gref={st1} gref_to_gref={st2}"),
    );
    word(ring_va, W_PHASE).store(PH_DOM0_COPIED, Ordering::Release);

    // Refusals.
    let va = window::va(3);
    for (name, r, flags, want) in [
        (
            "refused.revoked",
            G_REVOKED,
            GNTMAP_host_map,
            GNTST_general_error,
        ),
        (
            "refused.readonly_grant_writable",
            G_RO,
            GNTMAP_host_map,
            GNTST_general_error,
        ),
        (
            "refused.granted_to_other_domain",
            G_OTHER,
            GNTMAP_host_map,
            GNTST_general_error,
        ),
        (
            "refused.bad_ref",
            BAD_REF,
            GNTMAP_host_map,
            GNTST_bad_gntref,
        ),
    ] {
        let (rc, op) = map(PEER, r, flags, va);
        s.check(
            name,
            rc == 0 && op.status == want,
            format_args!("rc={} status={}", Rc(rc), op.status),
        );
    }
    let (rc, st) = copy(Side::Own(mine, 0), Side::Gref(PEER, G_RO, 0), 64);
    s.check(
        "refused.copy_to_readonly_grant",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, st) = copy(Side::Gref(PEER, G_OTHER, 0), Side::Own(mine, 0), 64);
    s.check(
        "refused.copy_from_grant_to_other",
        rc == 0 && st == GNTST_general_error,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, op) = map(PEER, G_RO, GNTMAP_host_map | GNTMAP_readonly, va);
    let fault = if op.status == GNTST_okay {
        probe::write_u64(va, 0xbad)
    } else {
        None
    };
    let intact = op.status == GNTST_okay && window_bytes_are(3, 0, 8, |i| pattern(11, i));
    let (urc, ust) = unmap(op.handle, va, 0);
    s.check(
        "refused.write_readonly_mapping",
        rc == 0
            && op.status == GNTST_okay
            && fault.is_some_and(|f| f.vector == 14)
            && intact
            && urc == 0
            && ust == GNTST_okay,
        format_args!(
            "status={} fault={} intact={intact} unmap={ust}",
            op.status,
            fault.map_or(0, |f| f.vector)
        ),
    );
    window::restore(si, 3);
    let (rc, st) = unmap(0x7fff, ring_va, 0);
    s.check(
        "refused.bad_handle",
        rc == 0 && st == GNTST_bad_handle,
        format_args!("rc={} status={st}", Rc(rc)),
    );
    let (rc, q) = query_size(PEER);
    s.check(
        "query_size.peer",
        rc == 0 && q.status == GNTST_okay && q.nr_frames == 1 && q.max_nr_frames == 64,
        format_args!(
            "rc={} status={} nr_frames={} max={}",
            Rc(rc),
            q.status,
            q.nr_frames,
            q.max_nr_frames
        ),
    );

    // The domU's copies with our grant.
    let done = wait_for(|| word(ring_va, W_PHASE).load(Ordering::Acquire) >= PH_DOMU_COPIED);
    let ok = frame_bytes_are(si, 2, mine, 3000, 500, |i| pattern(15, i - 3000 + 500));
    s.check(
        "copy.received",
        done && ok,
        format_args!("done={done} data_ok={ok}"),
    );
    word(ring_va, W_PHASE).store(PH_DOM0_CHECKED, Ordering::Release);

    // The domU powers off while we map its ring and it maps our grant.
    let mapped = wait_for(|| word(ring_va, W_PHASE).load(Ordering::Acquire) >= PH_DOMU_MAPPED);
    let pinned = t.flags(G_DOM0) == GTF_permit_access | GTF_reading;
    s.check(
        "peer.maps_our_grant",
        mapped && pinned,
        format_args!("mapped={mapped} flags={}", Hex(t.flags(G_DOM0).into())),
    );
    word(ring_va, W_PHASE).store(PH_DOM0_SAW_PIN, Ordering::Release);
    let bye = wait_for(|| word(ring_va, W_PHASE).load(Ordering::Acquire) >= PH_BYE);
    s.check("peer.bye", bye, format_args!("bye={bye}"));
    // Once its memory is gone, copies from its grants fail with bad_domain (it is dying).
    let mut st = GNTST_okay;
    let gone = wait_for(|| {
        st = copy(Side::Gref(PEER, G_RING, 0), Side::Own(mine, 0), 8).1;
        st != GNTST_okay
    });
    s.check(
        "peer.dead",
        gone && st == GNTST_bad_domain,
        format_args!("status={st}"),
    );
    // Its mapping of our grant goes with its memory (the teardown runs on its last CPU).
    let released = wait_for(|| t.flags(G_DOM0) == GTF_permit_access);
    s.check(
        "peer.mapping_of_our_grant_released",
        released,
        format_args!("flags={}", Hex(t.flags(G_DOM0).into())),
    );
    let intact = word(ring_va, W_BYE).load(Ordering::Acquire) == MAGIC_BYE
        && word(ring_va, W_SUM0).load(Ordering::Acquire) == want;
    s.check(
        "ring.survives_its_granter",
        intact,
        format_args!("intact={intact}"),
    );
    // Time for the console test to look at the tables (the `g` key) meanwhile.
    println!("GRANTS holding the dead domain's page");
    let until = ev::now_ns().saturating_add(3_000_000_000);
    wait_for(|| ev::now_ns() >= until);
    let (rc, st) = unmap(handle, ring_va, 0);
    s.check(
        "ring.unmap_after_granter_death",
        rc == 0 && st == GNTST_okay && !window_present(si, 1),
        format_args!(
            "rc={} status={st} still_mapped={}",
            Rc(rc),
            window_present(si, 1)
        ),
    );
    window::restore(si, 1);
    // Its table went with the last mapping.
    let (rc, op) = map(PEER, G_RING, GNTMAP_host_map, ring_va);
    s.check(
        "peer.table_gone",
        rc == 0 && op.status == GNTST_bad_domain,
        format_args!("rc={} status={}", Rc(rc), op.status),
    );
    window::restore(si, 1);
    t.clear(G_DOM0);
    window::restore(si, 0);
}
