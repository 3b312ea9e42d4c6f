//! `GNTTABOP_unmap_grant_ref` and `GNTTABOP_unmap_and_replace` (Xen's `unmap_common`,
//! `unmap_common_complete`).
//!
//! Unmapping is two-phase, as in Xen: [`unmap_grant_ref`] removes the host mapping and updates
//! the maptrack entry; the references the mapping held (and the pins) are dropped by
//! [`complete_unmap`] only after the caller flushed the TLBs of the unmapping domain. Until
//! then another CPU may still reach the frame through a stale TLB entry, so the frame must not
//! be freed or change type. [`unmap_grant_refs`] does a whole array in Xen's batches.

use super::host_mapping_takes_type;
use crate::gnttab::active::pin;
use crate::gnttab::flags::reduce_status_for_pin;
use crate::gnttab::host::GrantHost;
use crate::pvmm::Mfn;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTMAP_device_map, GNTMAP_host_map, GNTMAP_readonly, GNTST_bad_dev_addr, GNTST_bad_handle,
    GNTST_general_error, GNTST_okay, GnttabUnmapAndReplace, GnttabUnmapGrantRef, GrantHandle,
    GrantRef,
};

/// Unmap operations between two TLB flushes (`GNTTAB_UNMAP_BATCH_SIZE`).
pub const UNMAP_BATCH: usize = 32;

/// The second half of an unmap, due after the TLB flush (Xen's `gnttab_unmap_common` state
/// between `unmap_common` and `unmap_common_complete`). Dropping it without
/// [`complete_unmap`] leaks the mapping's pins and references.
#[must_use = "pass to complete_unmap after flushing the TLB"]
#[derive(Debug)]
pub struct PendingUnmap {
    rd: DomId,
    gref: GrantRef,
    mfn: Mfn,
    /// Which parts were unmapped: `GNTMAP_host_map`/`GNTMAP_device_map`, plus
    /// `GNTMAP_readonly` if the mapping was read-only.
    done: u32,
}

/// The inputs `unmap_common` shares between the two unmap operations.
struct UnmapRequest {
    host_addr: u64,
    dev_bus_addr: u64,
    new_addr: u64,
    handle: GrantHandle,
}

/// `GNTTABOP_unmap_grant_ref`, first phase. Writes `op.status`:
///
/// * handle beyond the maptrack table, or not a live mapping: `GNTST_bad_handle`;
/// * the granting domain no longer exists: `ld` is crashed (Xen's "naughty" case; Xen leaves
///   the status unwritten, here it is `GNTST_general_error`);
/// * `dev_bus_addr` non-zero for a device mapping but not its address: `GNTST_bad_dev_addr`;
/// * the host mapping at `host_addr` cannot be removed: the host's status.
///
/// Parts whose address is 0 are left mapped: an op with both addresses 0 succeeds and does
/// nothing.
pub fn unmap_grant_ref<H: GrantHost>(
    host: &H,
    ld: DomId,
    op: &mut GnttabUnmapGrantRef,
) -> Option<PendingUnmap> {
    let (status, pending) = unmap_common(
        host,
        ld,
        UnmapRequest {
            host_addr: op.host_addr,
            dev_bus_addr: op.dev_bus_addr,
            new_addr: 0,
            handle: op.handle,
        },
    );
    op.status = status;
    pending
}

/// `GNTTABOP_unmap_and_replace`, first phase: as [`unmap_grant_ref`] for the host mapping only,
/// moving the entry at linear address `new_addr` (if non-zero) into its place.
pub fn unmap_and_replace<H: GrantHost>(
    host: &H,
    ld: DomId,
    op: &mut GnttabUnmapAndReplace,
) -> Option<PendingUnmap> {
    let (status, pending) = unmap_common(
        host,
        ld,
        UnmapRequest {
            host_addr: op.host_addr,
            dev_bus_addr: 0,
            new_addr: op.new_addr,
            handle: op.handle,
        },
    );
    op.status = status;
    pending
}

fn unmap_common<H: GrantHost>(
    host: &H,
    ld: DomId,
    req: UnmapRequest,
) -> (i16, Option<PendingUnmap>) {
    let Some(mut lmt) = host.maptrack(ld) else {
        return (GNTST_bad_handle, None);
    };
    let Some(map) = lmt.mapping(req.handle) else {
        return (GNTST_bad_handle, None);
    };
    let rd = map.domid;
    if !host.domain_exists(rd) {
        // The grant was implicitly unmapped when its domain went away; the caller should not
        // still hold it.
        host.crash_domain(ld);
        return (GNTST_general_error, None);
    }
    let Some(rgt) = host.grant_table(rd) else {
        host.crash_domain(ld);
        return (GNTST_general_error, None);
    };
    if map.gref >= rgt.nr_entries() {
        return (GNTST_bad_handle, None);
    }
    let flags = u32::from(map.flags);
    let mfn = rgt.active(map.gref).mfn;

    if req.dev_bus_addr != 0 && flags & GNTMAP_device_map != 0 && req.dev_bus_addr != mfn << 12 {
        return (GNTST_bad_dev_addr, None);
    }

    let mut done = 0;
    if req.host_addr != 0 && flags & GNTMAP_host_map != 0 {
        let rc = host.replace_host_mapping(ld, req.host_addr, mfn, req.new_addr, flags);
        if rc < 0 {
            return (rc, None);
        }
        done |= GNTMAP_host_map | (flags & GNTMAP_readonly);
    }
    if req.dev_bus_addr != 0 && flags & GNTMAP_device_map != 0 {
        done |= GNTMAP_device_map | (flags & GNTMAP_readonly);
    }
    drop(rgt);

    if done != 0 && lmt.clear(req.handle, (done & !GNTMAP_readonly) as u16) {
        lmt.put_handle(req.handle);
    }
    drop(lmt);

    // A writable mapping may have dirtied the frame.
    if flags & GNTMAP_readonly == 0 {
        host.mark_dirty(rd, mfn);
    }
    let pending = (done != 0).then_some(PendingUnmap {
        rd,
        gref: map.gref,
        mfn,
        done,
    });
    (GNTST_okay, pending)
}

/// `unmap_common_complete`: after the TLB flush, drops the references the unmapped parts held
/// and their pins, and clears `GTF_writing`/`GTF_reading` when no such pins remain.
pub fn complete_unmap<H: GrantHost>(host: &H, ld: DomId, pending: PendingUnmap) {
    let PendingUnmap {
        rd,
        gref,
        mfn,
        done,
    } = pending;
    let readonly = done & GNTMAP_readonly != 0;
    let Some(mut rgt) = host.grant_table(rd) else {
        // Cannot happen: the pins being dropped keep the table alive.
        debug_assert!(false, "grant table of d{rd} vanished under pins");
        return;
    };
    let status = rgt.status_loc(gref);
    let act = rgt.active_mut(gref);
    let holds_refs = !host.is_iomem_page(act.mfn);

    if done & GNTMAP_device_map != 0 {
        if holds_refs {
            if !readonly {
                host.put_page_type(mfn);
            }
            host.put_page(mfn);
        }
        debug_assert!(act.pin & (pin::DEVW_MASK | pin::DEVR_MASK) != 0);
        act.pin -= if readonly {
            pin::DEVR_INC
        } else {
            pin::DEVW_INC
        };
    }
    if done & GNTMAP_host_map != 0 {
        if holds_refs {
            if host_mapping_takes_type(host, readonly, ld, rd) {
                host.put_page_type(mfn);
            }
            host.put_page(mfn);
        }
        debug_assert!(act.pin & (pin::HSTW_MASK | pin::HSTR_MASK) != 0);
        act.pin -= if readonly {
            pin::HSTR_INC
        } else {
            pin::HSTW_INC
        };
    }
    let pins = act.pin;
    reduce_status_for_pin(host, status, pins, readonly);
}

/// Unmaps a whole array the way Xen's `gnttab_unmap_grant_ref` does: in batches of
/// [`UNMAP_BATCH`], one TLB flush per batch between the two phases. Each element's status is
/// written.
pub fn unmap_grant_refs<H: GrantHost>(host: &H, ld: DomId, ops: &mut [GnttabUnmapGrantRef]) {
    for batch in ops.chunks_mut(UNMAP_BATCH) {
        let mut pending = alloc::vec::Vec::with_capacity(UNMAP_BATCH);
        for op in batch.iter_mut() {
            if let Some(p) = unmap_grant_ref(host, ld, op) {
                pending.push(p);
            }
        }
        host.flush_tlb(ld);
        for p in pending {
            complete_unmap(host, ld, p);
        }
    }
}
