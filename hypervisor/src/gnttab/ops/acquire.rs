//! Pinning a grant for the duration of a copy (Xen's `acquire_grant_for_copy`,
//! `release_grant_for_copy`).
//!
//! A copy pins the entry like a host mapping would (`GNTPIN_hstr`/`hstw`) and holds one
//! general reference on the frame, but creates no mapping: the bytes are copied through the
//! hypervisor's own view of the frame.
//!
//! Transitive grants (v2 `GTF_transitive`) are refused with `GNTST_general_error`, which is
//! Xen's behaviour with `gnttab=transitive=0`: following them needs a second table lock taken
//! in the middle of the first pin and Linux never issues them.

use crate::gnttab::active::{ActiveEntry, copy_pin_increment, pin};
use crate::gnttab::flags::{
    PinPurpose, PinRequest, reduce_status_for_pin, set_status_v1, set_status_v2,
};
use crate::gnttab::host::{GrantHost, PageRef};
use crate::gnttab::layout::PAGE_SIZE;
use crate::gnttab::table::GrantVersion;
use crate::pvmm::Mfn;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTST_bad_domain, GNTST_bad_gntref, GNTST_general_error, GTF_transitive, GTF_type_mask,
    GrantRef,
};

/// A grant pinned for a copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CopyGrant {
    /// The frame to copy from or to (the active entry's).
    pub mfn: Mfn,
    /// The frame the general reference was taken on. Normally `mfn`; when a writable pin is
    /// added to an entry already pinned read-only it is the frame the shared entry names now,
    /// which the guest may have changed (Xen puts the reference it took, so do we).
    pub referenced: Mfn,
    /// The granted byte range.
    pub offset: u16,
    /// Its length.
    pub length: u16,
}

/// `acquire_grant_for_copy`: pins `rd`'s entry `gref` for `ldom` and takes a general reference.
/// Every failure leaves no pin and no reference behind:
///
/// * `gref` beyond the table: `GNTST_bad_gntref`;
/// * pinned by another domain, counter near overflow, not `GTF_permit_access` for `ldom`,
///   writable use of a `GTF_readonly` grant, unstable entry, a transitive grant:
///   `GNTST_general_error`;
/// * granted frame not `rd`'s: `GNTST_bad_page`;
/// * frame of an already-pinned entry no longer `rd`'s, or `rd` dying: `GNTST_bad_domain`.
pub fn acquire_grant_for_copy<H: GrantHost>(
    host: &H,
    rd: DomId,
    gref: GrantRef,
    ldom: DomId,
    readonly: bool,
) -> Result<CopyGrant, i16> {
    let Some(mut rgt) = host.grant_table(rd) else {
        return Err(GNTST_bad_domain);
    };
    if gref >= rgt.nr_entries() {
        return Err(GNTST_bad_gntref);
    }
    let incr = copy_pin_increment(readonly);
    let act = *rgt.active(gref);
    if act.pin != 0 && (act.domid != ldom || act.pin & pin::overflow_mask(incr) != 0) {
        return Err(GNTST_general_error);
    }
    let header = rgt.header_loc(gref);
    let status = rgt.status_loc(gref);
    let version = rgt.version();
    let flags = rgt.header(host, gref).flags;
    let needs_status = act.pin == 0 || (!readonly && !act.has_write_pins());
    let req = PinRequest {
        already_pinned: act.pin != 0,
        readonly,
        purpose: PinPurpose::Copy,
        grantee: ldom,
    };

    // Undoes the in-use bits of a failed first (or first writable) pin.
    let clear = |pins: u32| reduce_status_for_pin(host, status, pins, readonly);

    let referenced;
    if version == GrantVersion::V2 && flags & GTF_type_mask == GTF_transitive {
        if needs_status {
            set_status_v2(host, header, status, req)?;
        }
        // "transitive grant when transitivity not allowed".
        clear(act.pin);
        return Err(GNTST_general_error);
    } else if needs_status {
        match version {
            GrantVersion::V1 => set_status_v1(host, header, req)?,
            GrantVersion::V2 => set_status_v2(host, header, status, req)?,
        }
        // The frame (and sub-page range) are read only now that the entry is pinned: the guest
        // can no longer revoke it, and what we record is what the pin covers.
        let now = rgt.header(host, gref).flags;
        let (gfn, start, length, sub) = match rgt.sub_page(host, gref, now) {
            Some(s) => (s.frame, s.page_off, s.length, true),
            None => (rgt.full_page_frame(host, gref), 0, PAGE_SIZE as u16, false),
        };
        let mfn = match host.get_paged_frame(rd, gfn, readonly) {
            Ok(mfn) => mfn,
            Err(rc) => {
                clear(act.pin);
                return Err(rc);
            }
        };
        referenced = mfn;
        if act.pin == 0 {
            *rgt.active_mut(gref) = ActiveEntry {
                pin: 0,
                domid: ldom,
                src_domid: rd,
                start,
                length,
                is_sub_page: sub,
                trans_gref: gref,
                mfn,
                gfn,
            };
        }
    } else {
        // Already pinned with the access we need: the frame is the active entry's, and it
        // must still be the granter's.
        let owner = host.get_page_owner_and_reference(act.mfn);
        if owner != PageRef::Owned(rd) || host.is_dying(rd) {
            if let PageRef::Owned(_) = owner {
                host.put_page(act.mfn);
            }
            clear(act.pin);
            return Err(GNTST_bad_domain);
        }
        referenced = act.mfn;
    }

    let a = rgt.active_mut(gref);
    a.pin += incr;
    Ok(CopyGrant {
        mfn: a.mfn,
        referenced,
        offset: a.start,
        length: a.length,
    })
}

/// `release_grant_for_copy`: drops the pin of [`acquire_grant_for_copy`] (the caller puts the
/// frame reference) and clears the in-use bits no longer backed by pins. A writable pin marks
/// the frame dirty.
pub fn release_grant_for_copy<H: GrantHost>(host: &H, rd: DomId, gref: GrantRef, readonly: bool) {
    let Some(mut rgt) = host.grant_table(rd) else {
        debug_assert!(false, "grant table of d{rd} vanished under a copy pin");
        return;
    };
    let status = rgt.status_loc(gref);
    let act = rgt.active_mut(gref);
    if !readonly {
        host.mark_dirty(rd, act.mfn);
    }
    act.pin -= copy_pin_increment(readonly);
    let pins = act.pin;
    reduce_status_for_pin(host, status, pins, readonly);
}
