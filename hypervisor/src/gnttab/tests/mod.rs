//! Host tests of the grant-table core against [`fake::FakeHost`].
//!
//! Domain 1 is the granter and domain 2 the mapper unless a test says otherwise; every test
//! ends by checking that no reference, pin or in-use bit was leaked.

mod copy_tests;
mod fake;
mod lifecycle_tests;
mod map_tests;
mod race_tests;
mod table_tests;
mod transfer_tests;
mod unmap_tests;

use super::ops::map::map_grant_ref;
use super::ops::unmap::unmap_grant_refs;
use crate::pvmm::Mfn;
use fake::{FakeHost, Guest};
use std::vec::Vec;
use xen_abi::DomId;
use xen_abi::grant_table::{GnttabMapGrantRef, GnttabUnmapGrantRef, GrantHandle, GrantRef};

const GRANTER: DomId = 1;
const MAPPER: DomId = 2;

/// A host with the granter (8 frames) and the mapper (4 frames).
fn two_domains() -> (FakeHost, Vec<Mfn>, Vec<Mfn>) {
    let host = FakeHost::new();
    let g = host.add_domain(GRANTER, 8);
    let m = host.add_domain(MAPPER, 4);
    (host, g, m)
}

fn guest(host: &FakeHost, dom: DomId) -> Guest<'_> {
    Guest { host, dom }
}

/// Maps `gref` of `rd` for `ld` (vCPU 0) at `addr`.
fn map(
    host: &FakeHost,
    ld: DomId,
    rd: DomId,
    gref: GrantRef,
    flags: u32,
    addr: u64,
) -> GnttabMapGrantRef {
    let mut op = GnttabMapGrantRef {
        host_addr: addr,
        flags,
        ref_: gref,
        dom: rd,
        ..Default::default()
    };
    map_grant_ref(host, ld, 0, &mut op);
    op
}

/// Unmaps one handle through the batched path; returns the status.
fn unmap(host: &FakeHost, ld: DomId, handle: GrantHandle, addr: u64, dev_bus_addr: u64) -> i16 {
    let mut ops = [GnttabUnmapGrantRef {
        host_addr: addr,
        dev_bus_addr,
        handle,
        ..Default::default()
    }];
    unmap_grant_refs(host, ld, &mut ops);
    ops[0].status
}

/// No pins, no in-use bits, no extra references or types on `frames`, no host mappings.
fn assert_quiescent(host: &FakeHost, frames: &[Mfn]) {
    for &mfn in frames {
        let f = host.frame(mfn);
        assert_eq!(
            f.count,
            u32::from(f.owner.is_some()),
            "refs on {mfn:#x}: {f:?}"
        );
        assert_eq!(f.type_count, 0, "type refs on {mfn:#x}: {f:?}");
    }
    assert!(host.host_maps.borrow().is_empty(), "host mappings left");
    for dom in host.doms.borrow().keys().copied().collect::<Vec<_>>() {
        host.with_table(dom, |t| {
            assert!(!t.has_active_grants(), "d{dom} has pins");
            for r in 0..t.nr_entries() {
                let s = host.raw_u16(t.status_loc(r));
                assert_eq!(
                    s & (xen_abi::grant_table::GTF_reading | xen_abi::grant_table::GTF_writing),
                    0,
                    "d{dom} ref {r} still marked in use"
                );
            }
        });
    }
}
