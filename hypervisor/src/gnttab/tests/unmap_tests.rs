//! `GNTTABOP_unmap_grant_ref` and `GNTTABOP_unmap_and_replace`.

use super::fake::Event;
use super::*;
use crate::gnttab::GrantHost;
use crate::gnttab::ops::unmap::{complete_unmap, unmap_and_replace, unmap_grant_ref};
use xen_abi::grant_table::*;

const ADDR: u64 = 0x4000_0000;

#[test]
fn bad_handles() {
    let (host, g, _) = two_domains();
    // Nothing mapped yet: every handle is beyond the (empty) maptrack table.
    assert_eq!(unmap(&host, MAPPER, 0, ADDR, 0), GNTST_bad_handle);
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    // Within the table but not a mapping (free, or the sentinel).
    assert_eq!(unmap(&host, MAPPER, 1, ADDR, 0), GNTST_bad_handle);
    assert_eq!(unmap(&host, MAPPER, 255, ADDR, 0), GNTST_bad_handle);
    assert_eq!(unmap(&host, MAPPER, 256, ADDR, 0), GNTST_bad_handle);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    // Twice.
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_bad_handle);
    assert_quiescent(&host, &g);
}

#[test]
fn zero_addresses_unmap_nothing_and_succeed() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    assert_eq!(unmap(&host, MAPPER, op.handle, 0, 0), GNTST_okay);
    assert!(
        host.with_maptrack(MAPPER, |m| m.mapping(op.handle))
            .is_some()
    );
    assert_eq!(host.count(g[0]), 2);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn host_mapping_that_does_not_match_is_not_removed() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    assert_eq!(
        unmap(&host, MAPPER, op.handle, ADDR + 4096, 0),
        GNTST_general_error
    );
    assert!(
        host.with_maptrack(MAPPER, |m| m.mapping(op.handle))
            .is_some()
    );
    assert_eq!(host.count(g[0]), 2);
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn references_are_dropped_only_after_the_tlb_flush() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    host.events.borrow_mut().clear();
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_eq!(
        *host.events.borrow(),
        [
            Event::Flush(MAPPER),
            Event::PutType(g[0]),
            Event::PutPage(g[0])
        ]
    );
    assert_quiescent(&host, &g);
}

#[test]
fn two_phase_api_keeps_pins_until_completion() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    let mut u = GnttabUnmapGrantRef {
        host_addr: ADDR,
        handle: op.handle,
        ..Default::default()
    };
    let pending = unmap_grant_ref(&host, MAPPER, &mut u).expect("pending");
    assert_eq!(u.status, GNTST_okay);
    // Mapping gone, handle free, but the granter cannot revoke yet.
    assert!(host.host_maps.borrow().is_empty());
    assert_eq!(gst.in_use(1), GTF_reading | GTF_writing);
    assert_eq!(host.count(g[0]), 2);
    host.flush_tlb(MAPPER);
    complete_unmap(&host, MAPPER, pending);
    assert_quiescent(&host, &g);
}

#[test]
fn batches_of_32_share_a_flush() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    let flags = GNTMAP_host_map | GNTMAP_readonly;
    let mut ops: Vec<_> = (0..40u64)
        .map(|i| {
            let m = map(&host, MAPPER, GRANTER, 1, flags, ADDR + i * 4096);
            GnttabUnmapGrantRef {
                host_addr: ADDR + i * 4096,
                handle: m.handle,
                ..Default::default()
            }
        })
        .collect();
    host.events.borrow_mut().clear();
    crate::gnttab::ops::unmap::unmap_grant_refs(&host, MAPPER, &mut ops);
    assert!(ops.iter().all(|o| o.status == GNTST_okay));
    let flushes = host
        .events
        .borrow()
        .iter()
        .filter(|e| matches!(e, Event::Flush(_)))
        .count();
    assert_eq!(flushes, 2);
    assert_quiescent(&host, &g);
}

#[test]
fn unmap_and_replace_moves_the_new_entry() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR);
    let mut r = GnttabUnmapAndReplace {
        host_addr: ADDR,
        new_addr: ADDR + 0x10000,
        handle: op.handle,
        ..Default::default()
    };
    let pending = unmap_and_replace(&host, MAPPER, &mut r);
    assert_eq!(r.status, GNTST_okay);
    host.flush_tlb(MAPPER);
    complete_unmap(&host, MAPPER, pending.expect("pending"));
    assert_quiescent(&host, &g);
}

#[test]
fn unmap_and_replace_leaves_device_mappings_alone() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], false);
    let op = map(&host, MAPPER, GRANTER, 1, GNTMAP_device_map, 0);
    let mut r = GnttabUnmapAndReplace {
        host_addr: ADDR,
        new_addr: 0,
        handle: op.handle,
        ..Default::default()
    };
    assert!(unmap_and_replace(&host, MAPPER, &mut r).is_none());
    assert_eq!(r.status, GNTST_okay);
    assert_eq!(unmap(&host, MAPPER, op.handle, 0, g[0] << 12), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn mapping_of_a_vanished_domain_crashes_the_mapper() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        1,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    host.remove_domain(GRANTER);
    assert_eq!(
        unmap(&host, MAPPER, op.handle, ADDR, 0),
        GNTST_general_error
    );
    assert_eq!(*host.crashed.borrow(), [MAPPER]);
}
