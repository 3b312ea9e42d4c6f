//! Interleavings of the granting guest (running on another CPU) with the hypervisor's steps,
//! replayed deterministically: a hook runs the guest's code right before the hypervisor's
//! n-th access of a kind to an entry. Each test checks both sides agree on whether the grant
//! is in use, and that nothing leaked.

use super::fake::{Access, FakeHost, guest_revoke_v1, guest_revoke_v2};
use super::*;
use crate::gnttab::active::pin;
use crate::gnttab::ops::copy::CopyBatch;
use crate::gnttab::ops::setup::set_version;
use xen_abi::grant_table::*;
use xen_abi::xen::DOMID_SELF;

const ADDR: u64 = 0x5000_0000;
const RW: u32 = GNTMAP_host_map;
const RO: u32 = GNTMAP_host_map | GNTMAP_readonly;

#[test]
fn v1_revoke_between_check_and_pin_fails_the_map() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    // The hypervisor has read the entry (valid) and is about to CAS the in-use bits in: the
    // guest's revoke gets there first.
    host.before(Access::Cas, l.header, 0, move |h| {
        assert!(guest_revoke_v1(h, l))
    });
    let op = map(&host, MAPPER, GRANTER, 5, RW, ADDR);
    assert_eq!(host.hooks_pending(), 0);
    // The CAS failed, the retry saw the revoked entry.
    assert_eq!(op.status, GNTST_general_error);
    assert_eq!(gst.header(5).flags, 0);
    assert_quiescent(&host, &g);
}

#[test]
fn v1_revoke_after_the_pin_is_refused_by_the_guest_protocol() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    let op = map(&host, MAPPER, GRANTER, 5, RW, ADDR);
    assert_eq!(op.status, GNTST_okay);
    // The guest sees GTF_reading|GTF_writing and must keep the grant.
    assert!(!guest_revoke_v1(&host, l));
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert!(guest_revoke_v1(&host, l));
    assert_quiescent(&host, &g);
}

#[test]
fn v1_grant_made_readonly_during_a_writable_pin_attempt() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    let make_ro = move |h: &FakeHost| h.raw_set_u16(l.header, GTF_permit_access | GTF_readonly);
    host.before(Access::Cas, l.header, 0, make_ro);
    assert_eq!(
        map(&host, MAPPER, GRANTER, 5, RW, ADDR).status,
        GNTST_general_error
    );
    assert_eq!(gst.in_use(5), 0);
    // A read-only pin racing the same change succeeds on the retry.
    gst.grant(5, MAPPER, g[0], false);
    host.before(Access::Cas, l.header, 0, make_ro);
    let op = map(&host, MAPPER, GRANTER, 5, RO, ADDR);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(
        gst.header(5).flags,
        GTF_permit_access | GTF_readonly | GTF_reading
    );
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn v1_entry_that_keeps_changing_gives_up_after_five_attempts() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], true);
    let l = gst.locs(5);
    // The guest toggles a harmless bit before every CAS.
    let toggle = move |h: &FakeHost| h.raw_set_u16(l.header, h.raw_u16(l.header) ^ GTF_PWT);
    for _ in 0..5 {
        host.before(Access::Cas, l.header, 0, toggle);
    }
    assert_eq!(
        map(&host, MAPPER, GRANTER, 5, RO, ADDR).status,
        GNTST_general_error
    );
    assert_eq!(gst.in_use(5), 0);
    // Four changes are tolerated.
    for _ in 0..4 {
        host.before(Access::Cas, l.header, 0, toggle);
    }
    let op = map(&host, MAPPER, GRANTER, 5, RO, ADDR);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn v2_revoke_before_the_status_update() {
    let (host, g, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    // Between the hypervisor's first look at the flags and its status update, the guest
    // revokes and sees no use: the grant is gone from its point of view.
    host.before(Access::Or, l.status, 0, move |h| {
        assert!(guest_revoke_v2(h, l))
    });
    assert_eq!(
        map(&host, MAPPER, GRANTER, 5, RW, ADDR).status,
        GNTST_general_error
    );
    // The hypervisor's re-check after its barrier saw the revoke and withdrew its bits.
    assert_eq!(gst.in_use(5), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn v2_revoke_between_status_update_and_recheck() {
    let (host, g, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    // The second load of the header is the re-check after the status update: the guest
    // revokes just before it, and sees the status bits: it must treat the grant as still in
    // use (Linux defers freeing the page).
    host.before(Access::Load, l.header, 1, move |h| {
        assert!(!guest_revoke_v2(h, l))
    });
    assert_eq!(
        map(&host, MAPPER, GRANTER, 5, RW, ADDR).status,
        GNTST_general_error
    );
    assert_eq!(host.hooks_pending(), 0);
    // Both agree in the end: the hypervisor backed out, so a later look shows it free.
    assert_eq!(gst.in_use(5), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn v2_readonly_flip_while_adding_a_writable_pin_keeps_the_read_pin() {
    let (host, g, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    let ro = map(&host, MAPPER, GRANTER, 5, RO, ADDR);
    assert_eq!(ro.status, GNTST_okay);
    // Adding a writable pin: status gets GTF_writing, then the re-check finds GTF_readonly.
    let header = l.header;
    host.before(Access::Load, l.header, 1, move |h| {
        h.raw_set_u16(header, GTF_permit_access | GTF_readonly)
    });
    assert_eq!(
        map(&host, MAPPER, GRANTER, 5, RW, ADDR + 4096).status,
        GNTST_general_error
    );
    assert_eq!(gst.in_use(5), GTF_reading);
    host.with_table(GRANTER, |t| assert_eq!(t.active(5).pin, pin::HSTR_INC));
    assert_eq!(unmap(&host, MAPPER, ro.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn map_twice_unmap_once() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    let a = map(&host, MAPPER, GRANTER, 5, RW, ADDR);
    let b = map(&host, MAPPER, GRANTER, 5, RO, ADDR + 4096);
    assert_eq!((a.status, b.status), (GNTST_okay, GNTST_okay));
    assert_ne!(a.handle, b.handle);
    assert_eq!((host.count(g[0]), host.type_count(g[0])), (3, 1));

    // Dropping the writable mapping clears GTF_writing only.
    assert_eq!(unmap(&host, MAPPER, a.handle, ADDR, 0), GNTST_okay);
    assert_eq!(gst.in_use(5), GTF_reading);
    host.with_table(GRANTER, |t| assert_eq!(t.active(5).pin, pin::HSTR_INC));
    assert_eq!((host.count(g[0]), host.type_count(g[0])), (2, 0));
    assert!(!guest_revoke_v1(&host, l));

    // Meanwhile the granter changes the frame field of the pinned entry: the active entry
    // (and the remaining mapping) keep using the frame pinned first.
    host.raw_set_u32(l.header.add(4), g[7] as u32);
    let c = map(&host, MAPPER, GRANTER, 5, RO, ADDR + 8192);
    assert_eq!(c.dev_bus_addr, g[0] << 12);
    assert_eq!(host.count(g[7]), 1);

    assert_eq!(unmap(&host, MAPPER, b.handle, ADDR + 4096, 0), GNTST_okay);
    assert_eq!(unmap(&host, MAPPER, c.handle, ADDR + 8192, 0), GNTST_okay);
    assert_eq!(gst.in_use(5), 0);
    assert!(guest_revoke_v1(&host, l));
    assert_quiescent(&host, &g);
}

#[test]
fn copy_from_a_grant_revoked_concurrently() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], true);
    let l = gst.locs(5);
    host.before(Access::Cas, l.header, 0, move |h| {
        assert!(guest_revoke_v1(h, l))
    });
    let mut op = GnttabCopy {
        source: GnttabCopyPtr::with_gref(5, GRANTER, 0),
        dest: GnttabCopyPtr::with_gmfn(m[0], DOMID_SELF, 0),
        len: 16,
        flags: GNTCOPY_source_gref,
        ..Default::default()
    };
    let mut batch = CopyBatch::new();
    batch.copy_one(&host, MAPPER, &mut op);
    batch.finish(&host);
    assert_eq!(op.status, GNTST_general_error);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn revoke_during_the_byte_copy_waits_for_the_copy() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], true);
    let l = gst.locs(5);
    host.fill(g[0], 0, b"payload!");
    let dest = crate::gnttab::memory::Loc {
        mfn: m[0],
        offset: 0,
    };
    // While the bytes move, the granter tries to take the grant back and cannot.
    host.before(Access::Copy, dest, 0, move |h| {
        assert!(!guest_revoke_v1(h, l))
    });
    let mut op = GnttabCopy {
        source: GnttabCopyPtr::with_gref(5, GRANTER, 0),
        dest: GnttabCopyPtr::with_gmfn(m[0], DOMID_SELF, 0),
        len: 8,
        flags: GNTCOPY_source_gref,
        ..Default::default()
    };
    let mut batch = CopyBatch::new();
    batch.copy_one(&host, MAPPER, &mut op);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(host.hooks_pending(), 0);
    batch.finish(&host);
    assert_eq!(host.bytes(m[0], 0, 8), b"payload!");
    // Once released, the revoke goes through.
    assert!(guest_revoke_v1(&host, l));
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn v2_copy_revoked_before_status_update() {
    let (host, g, m) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], false);
    let l = gst.locs(5);
    host.before(Access::Or, l.status, 0, move |h| {
        assert!(guest_revoke_v2(h, l))
    });
    let mut op = GnttabCopy {
        source: GnttabCopyPtr::with_gmfn(m[0], DOMID_SELF, 0),
        dest: GnttabCopyPtr::with_gref(5, GRANTER, 0),
        len: 16,
        flags: GNTCOPY_dest_gref,
        ..Default::default()
    };
    let mut batch = CopyBatch::new();
    batch.copy_one(&host, MAPPER, &mut op);
    batch.finish(&host);
    assert_eq!(op.status, GNTST_general_error);
    assert_eq!(gst.in_use(5), 0);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn copy_while_mapped_shares_the_pin_and_checks_the_owner() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[0], true);
    let mapped = map(&host, MAPPER, GRANTER, 5, RO, ADDR);
    // Already pinned read-only: the copy takes a reference on the active entry's frame.
    let mut op = GnttabCopy {
        source: GnttabCopyPtr::with_gref(5, GRANTER, 0),
        dest: GnttabCopyPtr::with_gmfn(m[0], DOMID_SELF, 0),
        len: 16,
        flags: GNTCOPY_source_gref,
        ..Default::default()
    };
    let mut batch = CopyBatch::new();
    batch.copy_one(&host, MAPPER, &mut op);
    assert_eq!(op.status, GNTST_okay);
    host.with_table(GRANTER, |t| assert_eq!(t.active(5).pin, 2 * pin::HSTR_INC));
    batch.finish(&host);
    // With the granter dying, a copy through the existing pin is refused.
    host.set_dying(GRANTER);
    let mut op2 = op;
    let mut batch = CopyBatch::new();
    batch.copy_one(&host, MAPPER, &mut op2);
    batch.finish(&host);
    assert_eq!(op2.status, GNTST_bad_domain);
    assert_eq!(gst.in_use(5), GTF_reading);
    assert_eq!(unmap(&host, MAPPER, mapped.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}
