//! `GNTTABOP_swap_grant_ref` (Xen's `swap_grant_ref`): exchanges two of the caller's own
//! entries, e.g. to keep a ring's references stable while recycling pages.

use crate::gnttab::host::GrantHost;
use crate::gnttab::layout::V2_ENTRY_SIZE;
use crate::gnttab::table::GrantVersion;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTST_bad_domain, GNTST_bad_gntref, GNTST_eagain, GNTST_okay, GrantRef,
};

/// Swaps entries `a` and `b` of `ld`'s table (and, in version 2, their status words):
///
/// * either reference beyond the table: `GNTST_bad_gntref` (`a` is checked first);
/// * `a == b`: nothing to do, `GNTST_okay`;
/// * either entry pinned: `GNTST_eagain` (the guest retries once the pins are gone).
pub fn swap_grant_ref<H: GrantHost>(host: &H, ld: DomId, a: GrantRef, b: GrantRef) -> i16 {
    let Some(gt) = host.grant_table(ld) else {
        return GNTST_bad_domain;
    };
    if a >= gt.nr_entries() || b >= gt.nr_entries() {
        return GNTST_bad_gntref;
    }
    if a == b {
        return GNTST_okay;
    }
    if gt.active(a).pin != 0 || gt.active(b).pin != 0 {
        return GNTST_eagain;
    }
    // Word by word, as Xen's structure assignments: the guest should not be changing entries
    // it asked to swap, and if it does it only scrambles its own entries.
    let (ha, hb) = (gt.header_loc(a), gt.header_loc(b));
    match gt.version() {
        GrantVersion::V1 => {
            let (x, y) = (host.load_u64(ha), host.load_u64(hb));
            host.store_u64(ha, y);
            host.store_u64(hb, x);
        }
        GrantVersion::V2 => {
            for off in (0..V2_ENTRY_SIZE).step_by(8) {
                let (x, y) = (host.load_u64(ha.add(off)), host.load_u64(hb.add(off)));
                host.store_u64(ha.add(off), y);
                host.store_u64(hb.add(off), x);
            }
            let (sa, sb) = (gt.status_loc(a), gt.status_loc(b));
            let (x, y) = (host.load_u16(sa), host.load_u16(sb));
            host.store_u16(sa, y);
            host.store_u16(sb, x);
        }
    }
    GNTST_okay
}
