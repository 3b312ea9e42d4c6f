//! Table-level operations: setup_table, query_size, versions, status frames, swap.

use super::fake::FakeHost;
use super::*;
use crate::gnttab::GrantTable;
use crate::gnttab::flags::Header;
use crate::gnttab::ops::setup::{
    get_status_frames, get_version, query_size, set_version, setup_table,
};
use crate::gnttab::ops::swap::swap_grant_ref;
use crate::gnttab::table::{GrantTableConfig, GrantVersion};
use xen_abi::errno::Errno;
use xen_abi::grant_table::*;
use xen_abi::xen::DOMID_SELF;

const ADDR: u64 = 0x6000_0000;

#[test]
fn new_table_is_version_1_with_one_frame() {
    let (host, _, _) = two_domains();
    assert_eq!(query_size(&host, GRANTER, DOMID_SELF), Ok((1, 64)));
    assert_eq!(get_version(&host, GRANTER, DOMID_SELF), Ok(1));
    host.with_table(GRANTER, |t| {
        assert_eq!(t.version(), GrantVersion::V1);
        assert_eq!(t.nr_entries(), 512);
        assert_eq!(t.nr_status_frames(), 0);
    });
}

#[test]
fn bad_limits_are_refused() {
    let host = FakeHost::new();
    for config in [
        GrantTableConfig {
            max_grant_frames: 0,
            ..Default::default()
        },
        GrantTableConfig {
            max_version: 3,
            ..Default::default()
        },
    ] {
        assert_eq!(GrantTable::new(1, config, &host).err(), Some(Errno::EINVAL));
    }
    host.table_frame_budget.set(Some(0));
    assert_eq!(
        GrantTable::new(1, GrantTableConfig::default(), &host).err(),
        Some(Errno::ENOMEM)
    );
}

#[test]
fn setup_table_grows_up_to_the_limit() {
    let host = FakeHost::new();
    let small = GrantTableConfig {
        max_grant_frames: 4,
        ..Default::default()
    };
    host.add_domain_with(GRANTER, 1, small, 1);
    let first = host.with_table(GRANTER, |t| t.shared_frames()[0]);
    let frames = setup_table(&host, GRANTER, DOMID_SELF, 3).unwrap();
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0], first);
    assert_eq!(query_size(&host, GRANTER, GRANTER), Ok((3, 4)));
    assert_eq!(host.with_table(GRANTER, |t| t.nr_entries()), 3 * 512);
    // Fewer than the table has: the first ones, no shrinking.
    assert_eq!(setup_table(&host, GRANTER, DOMID_SELF, 1).unwrap(), [first]);
    assert_eq!(setup_table(&host, GRANTER, DOMID_SELF, 0).unwrap(), []);
    assert_eq!(query_size(&host, GRANTER, GRANTER), Ok((3, 4)));
    // Beyond max_grant_frames.
    assert_eq!(
        setup_table(&host, GRANTER, DOMID_SELF, 5),
        Err(GNTST_general_error)
    );
    // Out of memory: nothing changes.
    host.table_frame_budget.set(Some(0));
    assert_eq!(
        setup_table(&host, GRANTER, DOMID_SELF, 4),
        Err(GNTST_general_error)
    );
    assert_eq!(query_size(&host, GRANTER, GRANTER), Ok((3, 4)));
}

#[test]
fn table_ops_check_domain_and_privilege() {
    let (host, _, _) = two_domains();
    assert_eq!(setup_table(&host, MAPPER, 42, 1), Err(GNTST_bad_domain));
    assert_eq!(query_size(&host, MAPPER, 42), Err(GNTST_bad_domain));
    assert_eq!(
        get_status_frames(&host, MAPPER, 42, 0),
        Err(GNTST_bad_domain)
    );
    assert_eq!(get_version(&host, MAPPER, 42), Err(Errno::ESRCH));
    // A domU may not look at another domain's table; dom0 may.
    assert_eq!(
        setup_table(&host, MAPPER, GRANTER, 1),
        Err(GNTST_permission_denied)
    );
    assert_eq!(
        query_size(&host, MAPPER, GRANTER),
        Err(GNTST_permission_denied)
    );
    assert_eq!(
        get_status_frames(&host, MAPPER, GRANTER, 0),
        Err(GNTST_permission_denied)
    );
    assert_eq!(get_version(&host, MAPPER, GRANTER), Err(Errno::EPERM));
    host.add_domain(0, 1);
    assert_eq!(query_size(&host, 0, GRANTER), Ok((1, 64)));
    assert_eq!(get_version(&host, 0, GRANTER), Ok(1));
}

#[test]
fn set_version_arguments() {
    let host = FakeHost::new();
    let v1_only = GrantTableConfig {
        max_version: 1,
        ..Default::default()
    };
    host.add_domain_with(GRANTER, 1, v1_only, 1);
    let r = set_version(&host, GRANTER, 3);
    assert_eq!((r.result, r.version), (Err(Errno::EINVAL), 1));
    assert_eq!(set_version(&host, GRANTER, 0).result, Err(Errno::EINVAL));
    assert_eq!(set_version(&host, GRANTER, 2).result, Err(Errno::ENOSYS));
    assert_eq!(set_version(&host, GRANTER, 1).result, Ok(()));
}

#[test]
fn version_2_has_status_frames() {
    let (host, _, _) = two_domains();
    assert_eq!(
        get_status_frames(&host, GRANTER, DOMID_SELF, 1),
        Err(GNTST_general_error)
    );
    assert_eq!(get_status_frames(&host, GRANTER, DOMID_SELF, 0), Ok(vec![]));
    setup_table(&host, GRANTER, DOMID_SELF, 2).unwrap();
    let r = set_version(&host, GRANTER, 2);
    assert_eq!((r.result, r.version), (Ok(()), 2));
    host.with_table(GRANTER, |t| {
        assert_eq!(t.nr_entries(), 2 * 256);
        assert_eq!(t.nr_status_frames(), 1);
    });
    let status = get_status_frames(&host, GRANTER, DOMID_SELF, 1).unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(
        get_status_frames(&host, GRANTER, DOMID_SELF, 2),
        Err(GNTST_general_error)
    );
    // Growing a v2 table adds status frames as needed (8 shared frames per status frame).
    setup_table(&host, GRANTER, DOMID_SELF, 9).unwrap();
    host.with_table(GRANTER, |t| assert_eq!(t.nr_status_frames(), 2));
    assert_eq!(get_version(&host, GRANTER, DOMID_SELF), Ok(2));
    // And back: the status frames are returned and freed.
    assert_eq!(set_version(&host, GRANTER, 1).result, Ok(()));
    assert!(host.frame(status[0]).freed);
    host.with_table(GRANTER, |t| assert_eq!(t.nr_status_frames(), 0));
}

#[test]
fn version_switch_needs_idle_entries_beyond_the_reserved_ones() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(8, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        8,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(set_version(&host, GRANTER, 2).result, Err(Errno::EBUSY));
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    // A reserved entry (xenstore's) may stay mapped across the switch.
    gst.grant(GNTTAB_RESERVED_XENSTORE, MAPPER, g[1], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    // Carried over, with the in-use bits moved to the status word.
    assert_eq!(
        gst.header(1),
        Header {
            flags: GTF_permit_access,
            domid: MAPPER
        }
    );
    assert_eq!(gst.in_use(1), GTF_reading | GTF_writing);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_eq!(gst.in_use(1), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn reserved_entries_survive_round_trips_and_others_are_cleared() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(0, 0, g[2], false);
    gst.grant(7, 3, g[3], true);
    gst.grant(8, 4, g[4], false);
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let full_frame = |r| {
        let l = gst.locs(r);
        host.raw_u64(l.header.add(8))
    };
    assert_eq!(
        gst.header(0),
        Header {
            flags: GTF_permit_access,
            domid: 0
        }
    );
    assert_eq!(full_frame(0), g[2]);
    assert_eq!(gst.header(7).flags, GTF_permit_access | GTF_readonly);
    assert_eq!(full_frame(7), g[3]);
    assert_eq!(gst.header(8), Header { flags: 0, domid: 0 });

    // A reserved v2 entry that is not a full-page access grant is dropped going back.
    let l = gst.locs(6);
    gst.write_entry(
        l,
        Header {
            flags: GTF_accept_transfer,
            domid: 3,
        },
        5,
    );
    assert_eq!(set_version(&host, GRANTER, 1).result, Ok(()));
    assert_eq!(
        gst.header(0),
        Header {
            flags: GTF_permit_access,
            domid: 0
        }
    );
    assert_eq!(gst.header(7).domid, 3);
    assert_eq!(gst.header(6), Header { flags: 0, domid: 0 });
    let l = gst.locs(7);
    assert_eq!(u64::from(host.raw_u32(l.header.add(4))), g[3]);
}

#[test]
fn back_to_version_1_refuses_what_v1_cannot_hold() {
    let (host, g, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    let l = gst.locs(3);
    gst.write_entry(
        l,
        Header {
            flags: GTF_permit_access,
            domid: 2,
        },
        1 << 32,
    );
    assert_eq!(set_version(&host, GRANTER, 1).result, Err(Errno::ERANGE));
    gst.write_entry(
        l,
        Header {
            flags: GTF_transitive,
            domid: 2,
        },
        0,
    );
    let r = set_version(&host, GRANTER, 1);
    assert_eq!((r.result, r.version), (Err(Errno::ERANGE), 2));
    // Beyond the reserved entries nothing is checked (it is all cleared).
    gst.write_entry(l, Header { flags: 0, domid: 0 }, 0);
    gst.write_entry(
        gst.locs(9),
        Header {
            flags: GTF_transitive,
            domid: 2,
        },
        0,
    );
    assert_eq!(set_version(&host, GRANTER, 1).result, Ok(()));
    let _ = g;
}

#[test]
fn back_to_version_1_waits_for_status_frames_to_be_unmapped() {
    let (host, _, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let status = get_status_frames(&host, GRANTER, DOMID_SELF, 1).unwrap()[0];
    // The guest maps its status frame.
    host.frames.borrow_mut().get_mut(&status).unwrap().count += 1;
    assert_eq!(set_version(&host, GRANTER, 1).result, Err(Errno::EBUSY));
    assert_eq!(get_version(&host, GRANTER, DOMID_SELF), Ok(2));
    assert_eq!(host.frame(status).owner, Some(GRANTER));
    host.frames.borrow_mut().get_mut(&status).unwrap().count -= 1;
    assert_eq!(set_version(&host, GRANTER, 1).result, Ok(()));
}

#[test]
fn version_2_without_memory_stays_version_1() {
    let (host, _, _) = two_domains();
    host.table_frame_budget.set(Some(0));
    let r = set_version(&host, GRANTER, 2);
    assert_eq!((r.result, r.version), (Err(Errno::ENOMEM), 1));
}

#[test]
fn swap_exchanges_idle_entries() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(10, 3, g[0], false);
    gst.grant(11, 4, g[1], true);
    assert_eq!(swap_grant_ref(&host, GRANTER, 512, 11), GNTST_bad_gntref);
    assert_eq!(swap_grant_ref(&host, GRANTER, 10, 512), GNTST_bad_gntref);
    assert_eq!(swap_grant_ref(&host, GRANTER, 10, 10), GNTST_okay);
    assert_eq!(swap_grant_ref(&host, GRANTER, 10, 11), GNTST_okay);
    assert_eq!(gst.header(10).domid, 4);
    assert_eq!(gst.header(11).domid, 3);
    // A pinned entry is busy.
    gst.grant(12, MAPPER, g[2], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        12,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(swap_grant_ref(&host, GRANTER, 12, 10), GNTST_eagain);
    assert_eq!(swap_grant_ref(&host, GRANTER, 10, 12), GNTST_eagain);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn swap_in_version_2_moves_status_words_too() {
    let (host, g, _) = two_domains();
    assert_eq!(set_version(&host, GRANTER, 2).result, Ok(()));
    let gst = guest(&host, GRANTER);
    gst.grant(20, 3, g[0], false);
    gst.grant(21, 4, g[1], false);
    host.raw_set_u16(gst.locs(20).status, GTF_reading);
    assert_eq!(swap_grant_ref(&host, GRANTER, 20, 21), GNTST_okay);
    assert_eq!(gst.header(21).domid, 3);
    assert_eq!(host.raw_u64(gst.locs(21).header.add(8)), g[0]);
    assert_eq!(gst.in_use(21), GTF_reading);
    assert_eq!(gst.in_use(20), 0);
}
