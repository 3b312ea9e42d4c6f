//! Domain death: a mapper dying with foreign mappings, a granter dying while mapped, table
//! destruction, and cache_flush (which looks at who maps what).

use super::fake::FakeHost;
use super::*;
use crate::gnttab::ops::cache_flush::{CacheFlushStep, cache_flush};
use crate::gnttab::ops::release::release_mappings;
use xen_abi::errno::Errno;
use xen_abi::grant_table::*;

const ADDR: u64 = 0x8000_0000;

/// What the PV page-table teardown of a dying domain does to its grant PTEs: drop the
/// references they own, as `put_page_from_l1e` does.
fn tear_down_page_tables(host: &FakeHost, dom: DomId) {
    let maps: Vec<_> = host
        .host_maps
        .borrow()
        .iter()
        .filter(|((d, _), _)| *d == dom)
        .map(|(k, v)| (*k, *v))
        .collect();
    for (key, m) in maps {
        host.host_maps.borrow_mut().remove(&key);
        if m.flags & GNTMAP_readonly == 0 {
            crate::gnttab::GrantHost::put_page_type(host, m.mfn);
        }
        crate::gnttab::GrantHost::put_page(host, m.mfn);
    }
}

#[test]
fn dying_mapper_releases_pins_then_its_page_tables_release_references() {
    let (host, g, _) = two_domains();
    let gst = guest(&host, GRANTER);
    gst.grant(1, MAPPER, g[0], false);
    gst.grant(2, MAPPER, g[1], true);
    gst.grant(3, MAPPER, g[2], false);
    assert_eq!(
        map(&host, MAPPER, GRANTER, 1, GNTMAP_host_map, ADDR).status,
        GNTST_okay
    );
    let ro = GNTMAP_host_map | GNTMAP_readonly;
    assert_eq!(
        map(&host, MAPPER, GRANTER, 2, ro, ADDR + 4096).status,
        GNTST_okay
    );
    assert_eq!(
        map(&host, MAPPER, GRANTER, 3, GNTMAP_device_map, 0).status,
        GNTST_okay
    );

    host.set_dying(MAPPER);
    release_mappings(&host, MAPPER);
    // The granter can revoke everything now.
    for r in 1..=3 {
        assert_eq!(gst.in_use(r), 0, "ref {r}");
    }
    host.with_table(GRANTER, |t| assert!(!t.has_active_grants()));
    assert!(host.with_maptrack(MAPPER, |m| m.mappings().next().is_none()));
    // The device mapping's references are gone; the PV host mappings' belong to the PTEs.
    assert_eq!((host.count(g[2]), host.type_count(g[2])), (1, 0));
    assert_eq!((host.count(g[0]), host.type_count(g[0])), (2, 1));
    assert_eq!(host.count(g[1]), 2);
    tear_down_page_tables(&host, MAPPER);
    assert_quiescent(&host, &g);
}

#[test]
fn granted_frames_outlive_a_dying_granter_until_unmapped() {
    let (host, g, _) = two_domains();
    guest(&host, GRANTER).grant(4, MAPPER, g[5], false);
    let op = map(&host, MAPPER, GRANTER, 4, GNTMAP_host_map, ADDR);
    assert_eq!(op.status, GNTST_okay);

    // The granter dies and gives up its memory (drops every allocation reference).
    host.set_dying(GRANTER);
    for &mfn in &g {
        crate::gnttab::GrantHost::put_page(&host, mfn);
    }
    assert!(
        !host.frame(g[5]).freed,
        "mapped frame freed under the mapper"
    );
    assert!(host.frame(g[4]).freed);
    let still: Vec<_> = host.with_table(GRANTER, |t| t.frames_still_mapped().collect());
    assert_eq!(still, [g[5]]);
    // Its table cannot go yet.
    let table = host.remove_domain(GRANTER).unwrap();
    let table = table
        .destroy(&host)
        .expect_err("destroy refused while mapped");
    // (Put it back: the mapper still needs it to unmap.)
    host.doms
        .borrow_mut()
        .insert(GRANTER, super::fake::Dom::default());
    restore_table(&host, GRANTER, table);

    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert!(host.frame(g[5]).freed);
    let table = host.remove_domain(GRANTER).unwrap();
    let shared = table.shared_frames().to_vec();
    table.destroy(&host).expect("destroy");
    assert!(shared.iter().all(|&f| host.frame(f).freed));
}

fn restore_table(host: &FakeHost, dom: DomId, table: crate::gnttab::GrantTable) {
    host.put_table(dom, table);
}

#[test]
fn cache_flush_checks() {
    let (host, g, m) = two_domains();
    let flush = |dom, mfn: u64, offset, length, op| {
        let f = GnttabCacheFlush {
            a: mfn << 12,
            offset,
            length,
            op,
        };
        let mut cur = 0;
        loop {
            match cache_flush(&host, dom, &f, &mut cur) {
                Ok(CacheFlushStep::Again) => continue,
                Ok(CacheFlushStep::Done) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    };
    // Range and op validation.
    assert_eq!(
        flush(MAPPER, m[0], 4096, 0, GNTTAB_CACHE_CLEAN),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        flush(MAPPER, m[0], 4000, 100, GNTTAB_CACHE_CLEAN),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        flush(MAPPER, m[0], 0, 8, GNTTAB_CACHE_SOURCE_GREF),
        Err(Errno::EINVAL)
    );
    assert_eq!(flush(MAPPER, m[0], 0, 0, GNTTAB_CACHE_CLEAN), Ok(()));
    // Own frame: clean works, invalidate alone is not supported on x86.
    assert_eq!(flush(MAPPER, m[0], 0, 64, GNTTAB_CACHE_CLEAN), Ok(()));
    assert_eq!(
        flush(MAPPER, m[0], 0, 64, GNTTAB_CACHE_INVAL),
        Err(Errno::EOPNOTSUPP)
    );
    // Not a frame at all; a free frame.
    assert_eq!(
        flush(MAPPER, 0xdead_0000, 0, 64, GNTTAB_CACHE_CLEAN),
        Err(Errno::EINVAL)
    );
    host.add_frame(0x9999, None);
    assert_eq!(
        flush(MAPPER, 0x9999, 0, 64, GNTTAB_CACHE_CLEAN),
        Err(Errno::EPERM)
    );
    // A foreign frame needs a pin by the caller.
    assert_eq!(
        flush(MAPPER, g[0], 0, 64, GNTTAB_CACHE_CLEAN),
        Err(Errno::EINVAL)
    );
    guest(&host, GRANTER).grant(300, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        300,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(
        flush(MAPPER, g[0], 0, 64, GNTTAB_CACHE_CLEAN | GNTTAB_CACHE_INVAL),
        Ok(())
    );
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
    assert_quiescent(&host, &m);
}

#[test]
fn cache_flush_search_resumes_and_rejects_inconsistent_resumption() {
    let (host, g, _) = two_domains();
    // 5000 entries: more than one scan chunk.
    crate::gnttab::ops::setup::setup_table(&host, GRANTER, GRANTER, 10).unwrap();
    guest(&host, GRANTER).grant(4500, MAPPER, g[0], true);
    let op = map(
        &host,
        MAPPER,
        GRANTER,
        4500,
        GNTMAP_host_map | GNTMAP_readonly,
        ADDR,
    );
    assert_eq!(op.status, GNTST_okay);
    let f = GnttabCacheFlush {
        a: g[0] << 12,
        offset: 0,
        length: 8,
        op: GNTTAB_CACHE_CLEAN,
    };
    let mut cur = 0;
    assert_eq!(
        cache_flush(&host, MAPPER, &f, &mut cur),
        Ok(CacheFlushStep::Again)
    );
    assert_eq!(cur, 4096);
    assert_eq!(
        cache_flush(&host, MAPPER, &f, &mut cur),
        Ok(CacheFlushStep::Done)
    );
    // An empty element while a search is pending is a guest bug.
    let empty = GnttabCacheFlush { length: 0, ..f };
    assert_eq!(
        cache_flush(&host, MAPPER, &empty, &mut cur),
        Err(Errno::EILSEQ)
    );
    assert_eq!(unmap(&host, MAPPER, op.handle, ADDR, 0), GNTST_okay);
    assert_quiescent(&host, &g);
}

#[test]
fn dying_mapper_skips_mappings_of_vanished_granters() {
    let host = FakeHost::new();
    let g = host.add_domain(GRANTER, 2);
    host.add_domain(MAPPER, 1);
    let other = host.add_domain(3, 2);
    guest(&host, GRANTER).grant(1, MAPPER, g[0], true);
    guest(&host, 3).grant(1, MAPPER, other[1], false);
    let ro = GNTMAP_device_map | GNTMAP_readonly;
    assert_eq!(map(&host, MAPPER, GRANTER, 1, ro, 0).status, GNTST_okay);
    assert_eq!(
        map(&host, MAPPER, 3, 1, GNTMAP_device_map, 0).status,
        GNTST_okay
    );
    host.remove_domain(GRANTER);
    host.set_dying(MAPPER);
    release_mappings(&host, MAPPER);
    assert!(host.with_maptrack(MAPPER, |m| m.mappings().next().is_none()));
    assert_quiescent(&host, &other);
}
