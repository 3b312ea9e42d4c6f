//! `GNTTABOP_copy`.

use super::fake::{FakeHost, FrameType};
use super::*;
use crate::gnttab::ops::copy::CopyBatch;
use crate::gnttab::ops::setup::set_version;
use xen_abi::grant_table::*;
use xen_abi::xen::DOMID_SELF;

fn gref_ptr(dom: DomId, gref: GrantRef, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::with_gref(gref, dom, offset)
}

fn frame_ptr(gmfn: u64, offset: u16) -> GnttabCopyPtr {
    GnttabCopyPtr::with_gmfn(gmfn, DOMID_SELF, offset)
}

fn copy_op(source: GnttabCopyPtr, dest: GnttabCopyPtr, len: u16, flags: u16) -> GnttabCopy {
    GnttabCopy {
        source,
        dest,
        len,
        flags,
        ..Default::default()
    }
}

/// Runs `ops` as one hypercall by `ld`; returns their statuses.
fn run(host: &FakeHost, ld: DomId, ops: &mut [GnttabCopy]) -> Vec<i16> {
    let mut batch = CopyBatch::new();
    for op in ops.iter_mut() {
        batch.copy_one(host, ld, op);
    }
    batch.finish(host);
    ops.iter().map(|o| o.status).collect()
}

fn copy1(host: &FakeHost, ld: DomId, op: GnttabCopy) -> i16 {
    run(host, ld, &mut [op])[0]
}

#[test]
fn from_a_grant_into_own_frame() {
    let (host, g, m) = two_domains();
    guest(&host, GRANTER).grant(3, MAPPER, g[1], true);
    host.fill(g[1], 100, b"hello grant");
    let op = copy_op(
        gref_ptr(GRANTER, 3, 100),
        frame_ptr(m[0], 8),
        11,
        GNTCOPY_source_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_okay);
    assert_eq!(host.bytes(m[0], 8, 11), b"hello grant");
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn from_own_frame_into_a_writable_grant() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(4, MAPPER, g[2], false);
    host.fill(m[1], 0, &[7; 64]);
    let op = copy_op(
        frame_ptr(m[1], 0),
        gref_ptr(GRANTER, 4, 4032),
        64,
        GNTCOPY_dest_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_okay);
    assert_eq!(host.bytes(g[2], 4032, 64), [7; 64]);
    assert_eq!(gst.in_use(4), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn readonly_grant_cannot_be_the_destination() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(4, MAPPER, g[2], true);
    let op = copy_op(
        frame_ptr(m[1], 0),
        gref_ptr(GRANTER, 4, 0),
        8,
        GNTCOPY_dest_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_general_error);
    assert_eq!(gst.in_use(4), 0);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn argument_errors() {
    let (host, g, m) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let src = gref_ptr(GRANTER, 1, 0);
    let both = GNTCOPY_source_gref;
    // A frame of another domain may not be named directly.
    let foreign = GnttabCopyPtr::with_gmfn(g[0], GRANTER, 0);
    assert_eq!(
        copy1(&host, MAPPER, copy_op(foreign, frame_ptr(m[0], 0), 8, 0)),
        GNTST_permission_denied
    );
    // Unknown domain.
    assert_eq!(
        copy1(
            &host,
            MAPPER,
            copy_op(gref_ptr(99, 1, 0), frame_ptr(m[0], 0), 8, both)
        ),
        GNTST_bad_domain
    );
    // Reference beyond the table.
    assert_eq!(
        copy1(
            &host,
            MAPPER,
            copy_op(gref_ptr(GRANTER, 600, 0), frame_ptr(m[0], 0), 8, both)
        ),
        GNTST_bad_gntref
    );
    // Own "frame" that is not ours.
    assert_eq!(
        copy1(&host, MAPPER, copy_op(src, frame_ptr(g[5], 0), 8, both)),
        GNTST_bad_page
    );
    // Crossing the end of a page, on either side.
    assert_eq!(
        copy1(
            &host,
            MAPPER,
            copy_op(gref_ptr(GRANTER, 1, 4000), frame_ptr(m[0], 0), 97, both)
        ),
        GNTST_bad_copy_arg
    );
    assert_eq!(
        copy1(&host, MAPPER, copy_op(src, frame_ptr(m[0], 4095), 2, both)),
        GNTST_bad_copy_arg
    );
    // Exactly up to the end is fine.
    assert_eq!(
        copy1(&host, MAPPER, copy_op(src, frame_ptr(m[0], 4088), 8, both)),
        GNTST_okay
    );
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn destination_that_cannot_be_writable() {
    let (host, g, m) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    host.set_type(m[2], FrameType::PageTable, 1);
    let op = copy_op(
        gref_ptr(GRANTER, 1, 0),
        frame_ptr(m[2], 0),
        8,
        GNTCOPY_source_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_general_error);
    host.set_type(m[2], FrameType::None, 0);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn sub_page_grants_bound_the_copy() {
    let (host, g, m) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    let l = gst.locs(2);
    // Bytes 256..384 of g[3].
    host.raw_set_u16(l.header.add(4), 256);
    host.raw_set_u16(l.header.add(6), 128);
    gst.write_entry(
        l,
        crate::gnttab::flags::Header {
            flags: GTF_permit_access | GTF_sub_page,
            domid: MAPPER,
        },
        g[3],
    );
    let ok = copy_op(
        gref_ptr(GRANTER, 2, 256),
        frame_ptr(m[0], 0),
        128,
        GNTCOPY_source_gref,
    );
    assert_eq!(copy1(&host, MAPPER, ok), GNTST_okay);
    for (off, len) in [(255, 2), (300, 85)] {
        let op = copy_op(
            gref_ptr(GRANTER, 2, off),
            frame_ptr(m[0], 0),
            len,
            GNTCOPY_source_gref,
        );
        assert_eq!(copy1(&host, MAPPER, op), GNTST_general_error, "{off}+{len}");
    }
    assert_eq!(gst.in_use(2), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn transitive_grants_are_refused() {
    let (host, g, m) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    let l = gst.locs(2);
    gst.write_entry(
        l,
        crate::gnttab::flags::Header {
            flags: GTF_transitive,
            domid: MAPPER,
        },
        0,
    );
    let op = copy_op(
        gref_ptr(GRANTER, 2, 0),
        frame_ptr(m[0], 0),
        8,
        GNTCOPY_source_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_general_error);
    assert_eq!(gst.in_use(2), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn consecutive_copies_from_one_grant_pin_it_once() {
    let (host, g, m) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    let op = copy_op(
        gref_ptr(GRANTER, 1, 0),
        frame_ptr(m[0], 0),
        8,
        GNTCOPY_source_gref,
    );
    let mut batch = CopyBatch::new();
    let mut a = op;
    batch.copy_one(&host, MAPPER, &mut a);
    assert_eq!(a.status, GNTST_okay);
    // Still claimed between elements: one pin, one reference on each side.
    host.with_table(GRANTER, |t| {
        assert_eq!(t.active(1).pin, crate::gnttab::active::pin::HSTR_INC)
    });
    assert_eq!(host.count(g[0]), 2);
    let mut b = op;
    batch.copy_one(&host, MAPPER, &mut b);
    assert_eq!(b.status, GNTST_okay);
    host.with_table(GRANTER, |t| {
        assert_eq!(t.active(1).pin, crate::gnttab::active::pin::HSTR_INC)
    });
    assert_eq!(host.count(g[0]), 2);
    // A failing element releases the claims.
    let mut bad = copy_op(
        gref_ptr(GRANTER, 1, 0),
        frame_ptr(m[0], 4090),
        8,
        GNTCOPY_source_gref,
    );
    batch.copy_one(&host, MAPPER, &mut bad);
    assert_eq!(bad.status, GNTST_bad_copy_arg);
    assert_eq!(host.count(g[0]), 1);
    batch.finish(&host);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn source_and_destination_in_the_same_grant() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[6], false);
    host.fill(g[6], 0, b"abcd");
    let op = copy_op(
        gref_ptr(GRANTER, 5, 0),
        gref_ptr(GRANTER, 5, 8),
        4,
        GNTCOPY_source_gref | GNTCOPY_dest_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_okay);
    assert_eq!(host.bytes(g[6], 8, 4), b"abcd");
    assert_eq!(gst.in_use(5), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn references_are_dropped_before_the_pin() {
    use super::fake::Access;
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(4, MAPPER, g[2], false);
    let status = gst.locs(4).status;
    let frame = g[2];
    // When the hypervisor clears the in-use bits (the unpin), the copy's general and type
    // references on the granted frame are gone already.
    host.before(Access::And, status, 0, move |h| {
        assert_eq!(h.count(frame), 1, "general reference outlives the pin");
        assert_eq!(h.type_count(frame), 0, "type reference outlives the pin");
    });
    let op = copy_op(
        frame_ptr(m[1], 0),
        gref_ptr(GRANTER, 4, 0),
        64,
        GNTCOPY_dest_gref,
    );
    assert_eq!(copy1(&host, MAPPER, op), GNTST_okay);
    assert_eq!(host.hooks_pending(), 0);
    assert_quiescent(&host, &g);
}
