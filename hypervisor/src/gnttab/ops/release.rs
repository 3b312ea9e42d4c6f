//! Teardown of a dying domain's mappings of other domains' grants (Xen's
//! `gnttab_release_mappings`).
//!
//! The dying domain (the *mapper*) is the one whose maptrack is walked. For each mapping the
//! granting domain's pins are dropped and `GTF_reading`/`GTF_writing` cleared when no pins
//! remain, so the granter can revoke and reuse its frames.
//!
//! References: a device mapping's references are dropped here. A PV host mapping's references
//! belong to the page-table entry that maps the frame (see
//! [`GrantHost::create_host_mapping`]) and are dropped when the dying domain's page tables
//! are torn down; only for HVM-style mappers (`paging_external`) are they dropped here.
//!
//! The reverse case, a *granting* domain dying while others map its frames, needs nothing
//! here: the mappings hold general references, so the frames outlive the domain's memory, and
//! its [`GrantTable`](crate::gnttab::GrantTable) must be kept (its
//! [`frames_still_mapped`](crate::gnttab::GrantTable::frames_still_mapped) is non-empty and
//! [`destroy`](crate::gnttab::GrantTable::destroy) refuses) until the mappers unmap.

use super::host_mapping_takes_type;
use crate::gnttab::active::pin;
use crate::gnttab::flags::reduce_status_for_pin;
use crate::gnttab::host::GrantHost;
use xen_abi::DomId;
use xen_abi::grant_table::{GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly};

/// Releases every foreign mapping of the dying domain `d`, highest handle first.
pub fn release_mappings<H: GrantHost>(host: &H, d: DomId) {
    let Some(mut mt) = host.maptrack(d) else {
        return;
    };
    let mappings: alloc::vec::Vec<_> = mt.mappings().collect();
    // Host mappings hold references only for HVM-style mappers; PV ones are the page tables'.
    let release_host = host.paging_external(d);
    for (handle, map) in mappings {
        mt.forget(handle);
        let rd = map.domid;
        let Some(mut rgt) = host.grant_table(rd) else {
            // The granter is gone already: nothing left to unpin.
            continue;
        };
        let status = rgt.status_loc(map.gref);
        let flags = u32::from(map.flags);
        let readonly = flags & GNTMAP_readonly != 0;
        let act = rgt.active_mut(map.gref);
        let holds_refs = !host.is_iomem_page(act.mfn);
        let mfn = act.mfn;

        if flags & GNTMAP_device_map != 0 {
            act.pin -= if readonly {
                pin::DEVR_INC
            } else {
                pin::DEVW_INC
            };
            if holds_refs {
                if !readonly {
                    host.put_page_type(mfn);
                }
                host.put_page(mfn);
            }
        }
        if flags & GNTMAP_host_map != 0 {
            act.pin -= if readonly {
                pin::HSTR_INC
            } else {
                pin::HSTW_INC
            };
            if holds_refs && release_host {
                if host_mapping_takes_type(host, readonly, d, rd) {
                    host.put_page_type(mfn);
                }
                host.put_page(mfn);
            }
        }
        let pins = act.pin;
        reduce_status_for_pin(host, status, pins, readonly);
    }
}
