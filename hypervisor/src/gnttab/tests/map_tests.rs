//! `GNTTABOP_map_grant_ref`: every check and its status, and the references a mapping holds.

use super::fake::{FakeHost, FrameType, HostMap};
use super::*;
use crate::gnttab::active::pin;
use crate::gnttab::table::GrantTableConfig;
use xen_abi::grant_table::*;
use xen_abi::xen::DOMID_SELF;

const ADDR: u64 = 0x7000_0000;

#[test]
fn writable_host_map_pins_marks_and_references() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(5, MAPPER, g[3], false);

    let op = map(&host, MAPPER, GRANTER, 5, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(op.handle, 0);
    assert_eq!(op.dev_bus_addr, g[3] << 12);
    assert_eq!(gst.in_use(5), GTF_reading | GTF_writing);
    host.with_table(GRANTER, |t| {
        let a = t.active(5);
        assert_eq!((a.pin, a.domid, a.mfn), (pin::HSTW_INC, MAPPER, g[3]));
        assert_eq!(t.frames_still_mapped().collect::<Vec<_>>(), [g[3]]);
    });
    // One general reference and one writable type reference, handed to the PTE.
    assert_eq!((host.count(g[3]), host.type_count(g[3])), (2, 1));
    assert_eq!(
        host.host_maps.borrow()[&(MAPPER, ADDR)],
        HostMap {
            mfn: g[3],
            flags: GNTMAP_host_map,
            cache_flags: 0
        }
    );

    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_eq!(gst.in_use(5), 0);
    assert_quiescent(&host, &g);
    // The handle went back to the free list.
    assert!(host.with_maptrack(MAPPER, |m| m.mapping(0)).is_none());
}

#[test]
fn readonly_map_sets_only_reading_and_takes_no_type() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(9, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        9,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(gst.in_use(9), GTF_reading);
    assert_eq!((host.count(g[0]), host.type_count(g[0])), (2, 0));
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn writable_map_of_readonly_grant_is_refused() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(2, MAPPER, g[1], true);
    let op = map(&host, MAPPER, GRANTER, 2, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_general_error);
    assert_eq!(gst.in_use(2), 0);
    assert_quiescent(&host, &g);
    // The reserved handle 0 was given back, to the tail of the free list as in Xen: the next
    // map gets 1, and the table still has all its handles.
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        2,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!((op.status, op.handle), (GNTST_okay, 1));
    assert_eq!(unmap(&host, MAPPER, 1, ADDR, 0), GNTST_okay);
    assert_eq!(host.with_maptrack(MAPPER, |m| m.limit()), 256);
    assert_quiescent(&host, &g);
}

#[test]
fn flag_and_domain_checks_come_first() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    // Neither host nor device mapping.
    assert_eq!(
        map(&host, MAPPER, GRANTER, 1, GNTMAP_readonly, ADDR).status,
        GNTST_bad_gntref
    );
    // Unknown domain, and DOMID_SELF (map does not resolve it).
    assert_eq!(
        map(&host, MAPPER, 77, 1, GNTMAP_host_map, ADDR).status,
        GNTST_bad_domain
    );
    assert_eq!(
        map(&host, MAPPER, DOMID_SELF, 1, GNTMAP_host_map, ADDR).status,
        GNTST_bad_domain
    );
    // HVM-style mappers may not ask for device, application or PTE mappings.
    host.doms.borrow_mut().get_mut(&MAPPER).unwrap().external = true;
    for extra in [
        GNTMAP_device_map,
        GNTMAP_application_map,
        GNTMAP_contains_pte,
    ] {
        let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map | extra, ADDR);
        assert_eq!(op.status, GNTST_general_error);
    }
    host.doms.borrow_mut().get_mut(&MAPPER).unwrap().external = false;
    assert_quiescent(&host, &g);
}

#[test]
fn bad_reference_is_bad_gntref() {
    let (host, g, _) = two_domains();
    let nr = host.with_table(GRANTER, |t| t.nr_entries());
    assert_eq!(nr, 512);
    assert_eq!(
        map(&host, MAPPER, GRANTER, nr, GNTMAP_host_map, ADDR).status,
        GNTST_bad_gntref
    );
    assert_eq!(
        map(&host, MAPPER, GRANTER, u32::MAX, GNTMAP_host_map, ADDR).status,
        GNTST_bad_gntref
    );
    assert_quiescent(&host, &g);
}

#[test]
fn entry_must_permit_access_for_the_mapper() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    let l = gst.locs(3);
    // Never granted.
    assert_eq!(
        map(&host, MAPPER, GRANTER, 3, GNTMAP_host_map, ADDR).status,
        GNTST_general_error
    );
    // Granted to someone else.
    gst.grant(3, 3, g[0], false);
    assert_eq!(
        map(&host, MAPPER, GRANTER, 3, GNTMAP_host_map, ADDR).status,
        GNTST_general_error
    );
    // An accept-transfer entry, and a v1 entry with the (v2-only) sub-page bit.
    for flags in [GTF_accept_transfer, GTF_permit_access | GTF_sub_page] {
        gst.write_entry(
            l,
            crate::gnttab::flags::Header {
                flags,
                domid: MAPPER,
            },
            g[0],
        );
        let op = map(&host, MAPPER, GRANTER, 3, GNTMAP_host_map, ADDR);
        assert_eq!(op.status, GNTST_general_error, "flags {flags:#x}");
    }
    assert_eq!(gst.header(3).flags & (GTF_reading | GTF_writing), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn granted_frame_must_be_the_granters() {
    let (host, g, m) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(4, MAPPER, m[0], false);
    assert_eq!(
        map(&host, MAPPER, GRANTER, 4, GNTMAP_host_map, ADDR).status,
        GNTST_bad_page
    );
    // The in-use bits set before the frame lookup were taken back.
    assert_eq!(gst.in_use(4), 0);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn pinned_by_another_domain_is_refused() {
    let host = FakeHost::new();
    let g = host.add_domain(GRANTER, 2);
    host.add_domain(MAPPER, 1);
    host.add_domain(3, 1);
    let gst = guest(&host, GRANTER);
    gst.grant(6, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        6,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(op.status, GNTST_okay);
    // The granter re-points the pinned entry at d3; the active entry still says d2.
    gst.grant(6, 3, g[0], true);
    let other = map(
        &host,
        3,
        GRANTER,
        6,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(other.status, GNTST_general_error);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn pin_counter_overflow_is_refused_at_128() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(0, MAPPER, g[0], true);
    let flags = GNTMAP_host_map | GNTMAP_readonly;
    let handles: Vec<_> = (0..128u64)
        .map(|i| {
            let op = map(&host, MAPPER, GRANTER, 0, flags, ADDR + i * 4096);
            assert_eq!(op.status, GNTST_okay, "map {i}");
            op.handle
        })
        .collect();
    let op = map(&host, MAPPER, GRANTER, 0, flags, ADDR + 128 * 4096);
    assert_eq!(op.status, GNTST_general_error);
    // Only the counter being incremented is checked: a device mapping still fits.
    let dev = map(
        &host,
        MAPPER,
        GRANTER,
        0,
        GNTMAP_device_map | GNTMAP_readonly,
        0,
    );
    assert_eq!(dev.status, GNTST_okay);
    assert_eq!(unmap(&host, MAPPER, dev.handle, 0, g[0] << 12), GNTST_okay);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(
            unmap(&host, MAPPER, h, ADDR + i as u64 * 4096, 0),
            GNTST_okay
        );
    }
    assert_quiescent(&host, &g);
}

#[test]
fn maptrack_exhaustion_is_no_space() {
    let host = FakeHost::new();
    let g = host.add_domain(GRANTER, 1);
    let no_frames = GrantTableConfig {
        max_maptrack_frames: 0,
        ..GrantTableConfig::default()
    };
    host.add_domain_with(MAPPER, 1, no_frames, 1);
    guest(&host, GRANTER).grant(0, MAPPER, g[0], true);
    let flags = GNTMAP_host_map | GNTMAP_readonly;
    assert_eq!(
        map(&host, MAPPER, GRANTER, 0, flags, ADDR).status,
        GNTST_no_space
    );

    let one_frame = GrantTableConfig {
        max_maptrack_frames: 1,
        ..GrantTableConfig::default()
    };
    host.add_domain_with(3, 1, one_frame, 1);
    // Three entries, so no pin counter comes near its limit.
    for r in 1..=3 {
        guest(&host, GRANTER).grant(r, 3, g[0], true);
    }
    for i in 0..255u64 {
        let r = 1 + (i / 100) as u32;
        assert_eq!(
            map(&host, 3, GRANTER, r, flags, i * 4096).status,
            GNTST_okay,
            "map {i}"
        );
    }
    // One frame holds 256 handles, one of which is always kept as the free list's tail.
    let op = map(&host, 3, GRANTER, 3, flags, 255 * 4096);
    assert_eq!(op.status, GNTST_no_space);
}

#[test]
fn device_and_host_map_take_a_reference_each() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(7, MAPPER, g[2], false);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        7,
        GNTMAP_host_map | GNTMAP_device_map,
        ADDR,
    );
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(op.dev_bus_addr, g[2] << 12);
    host.with_table(GRANTER, |t| {
        assert_eq!(t.active(7).pin, pin::HSTW_INC | pin::DEVW_INC)
    });
    assert_eq!((host.count(g[2]), host.type_count(g[2])), (3, 2));

    // A wrong bus address for the device part: GNTST_bad_dev_addr, nothing unmapped.
    assert_eq!(
        unmap(&host, MAPPER, op.handle, 0, 0x1000),
        GNTST_bad_dev_addr
    );
    // The device part alone; the handle stays live for the host part.
    assert_eq!(
        unmap(&host, MAPPER, op.handle, 0, op.dev_bus_addr),
        GNTST_okay
    );
    assert_eq!((host.count(g[2]), host.type_count(g[2])), (2, 1));
    host.with_table(GRANTER, |t| assert_eq!(t.active(7).pin, pin::HSTW_INC));
    assert_eq!(gst.in_use(7), GTF_reading | GTF_writing);
    assert!(
        host.with_maptrack(MAPPER, |m| m.mapping(op.handle))
            .is_some()
    );
    // The host part.
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn device_only_map_has_no_host_mapping() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[1], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_device_map, 0);
    assert_eq!(op.status, GNTST_okay);
    assert!(host.host_maps.borrow().is_empty());
    assert_eq!((host.count(g[1]), host.type_count(g[1])), (2, 1));
    // A wrong bus address only matters for device mappings, but this is one.
    assert_eq!(
        unmap(&host, MAPPER, op.handle, ADDR, 4096),
        GNTST_bad_dev_addr
    );
    assert_eq!(unmap(&host, MAPPER, op.handle, 0, g[1] << 12), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn failed_host_mapping_undoes_everything() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(8, MAPPER, g[4], false);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        8,
        GNTMAP_host_map | GNTMAP_device_map,
        0xbad,
    );
    assert_eq!(op.status, GNTST_general_error);
    assert_eq!(gst.in_use(8), 0);
    assert_quiescent(&host, &g);
}

#[test]
fn frame_that_cannot_be_writable_is_refused() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(8, MAPPER, g[4], false);
    host.set_type(g[4], FrameType::PageTable, 1);
    let op = map(&host, MAPPER, GRANTER, 8, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_general_error);
    assert_eq!(gst.in_use(8), 0);
    assert_eq!(host.count(g[4]), 1);
    // Read-only mappings of it are fine.
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        8,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    host.set_type(g[4], FrameType::None, 0);
    assert_quiescent(&host, &g);
}

#[test]
fn cache_attributes_reach_the_host_mapping_of_io_frames_only() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(1, MAPPER, g[0], false);
    let l = gst.locs(1);
    host.raw_set_u16(l.header, GTF_permit_access | GTF_PCD);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);
    // RAM is always mapped write-back.
    assert_eq!(host.host_maps.borrow()[&(MAPPER, ADDR)].cache_flags, 0);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn a_domain_may_map_its_own_grant() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(2, GRANTER, g[0], false);
    let op = map(&host, GRANTER, GRANTER, 2, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(unmap(&host, GRANTER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn version2_maps_full_pages_but_not_sub_page_or_transitive_grants() {
    let (host, g, _) = two_domains();
    assert_eq!(
        crate::gnttab::ops::setup::set_version(&host, GRANTER, 2).result,
        Ok(())
    );
    let gst = guest(&host, GRANTER);
    gst.grant(3, MAPPER, g[1], false);
    let op = map(&host, MAPPER, GRANTER, 3, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);
    // v2 keeps the in-use bits out of the entry.
    assert_eq!(gst.header(3).flags, GTF_permit_access);
    assert_eq!(gst.in_use(3), GTF_reading | GTF_writing);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);

    let l = gst.locs(4);
    for flags in [GTF_permit_access | GTF_sub_page, GTF_transitive] {
        gst.write_entry(
            l,
            crate::gnttab::flags::Header {
                flags,
                domid: MAPPER,
            },
            g[1],
        );
        let op = map(&host, MAPPER, GRANTER, 4, GNTMAP_host_map, ADDR);
        assert_eq!(op.status, GNTST_general_error, "flags {flags:#x}");
        assert_eq!(gst.in_use(4), 0);
    }
    assert_quiescent(&host, &g);
}

#[test]
fn pte_address_mappings_pass_all_flags_to_the_page_tables() {
    let (host, g, m) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    // Linux's gntdev: the machine address of a user PTE, with guest-available bits.
    let pte_maddr = (m[3] << 12) + 8 * 17;
    let flags = GNTMAP_host_map | GNTMAP_contains_pte | GNTMAP_application_map | 0b11 << 16;
    let op = map(&host, MAPPER, GRANTER, 1, flags, pte_maddr);
    assert_eq!(op.status, GNTST_okay);
    assert_eq!(host.host_maps.borrow()[&(MAPPER, pte_maddr)].flags, flags);
    // The maptrack keeps the low 16 bits, as Xen's `grant_mapping.flags` does.
    let kept = host.with_maptrack(MAPPER, |mt| mt.mapping(op.handle).unwrap().flags);
    assert_eq!(u32::from(kept), flags & 0xffff);
    assert_eq!(unmap(&host, MAPPER, op.handle, pte_maddr, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn pinned_frame_that_changed_owner_cannot_be_mapped_again() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    let ro = GNTMAP_host_map | GNTMAP_readonly;
    let first = map(&host, MAPPER, GRANTER, 1, ro, ADDR);
    assert_eq!(first.status, GNTST_okay);
    // The frame behind the active entry now belongs to someone else ("could not pin").
    host.frames.borrow_mut().get_mut(&g[0]).unwrap().owner = Some(3);
    let second = map(&host, MAPPER, GRANTER, 1, ro, ADDR + 4096);
    assert_eq!(second.status, GNTST_general_error);
    assert_eq!(
        host.count(g[0]),
        2,
        "the second map's reference was given back"
    );
    host.with_table(GRANTER, |t| assert_eq!(t.active(1).pin, pin::HSTR_INC));
    host.frames.borrow_mut().get_mut(&g[0]).unwrap().owner = Some(GRANTER);
    assert_eq!(unmap(&host, MAPPER, first.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}
