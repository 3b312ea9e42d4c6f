//! The pin protocol on the guest-visible flags: how the hypervisor marks an entry in use
//! (`GTF_reading`/`GTF_writing`) without losing a race against the granting guest, which may
//! revoke the grant (clear `GTF_permit_access`) or make it read-only at any moment
//! (Xen's `_set_status_v1`, `_set_status_v2`, `reduce_status_for_pin`,
//! `gnttab_prepare_for_transfer`).
//!
//! The guest side of the protocol (Linux's `gnttab_end_foreign_access_ref`):
//!
//! * **v1**: the guest revokes with a compare-and-swap of the 16-bit flags to 0 that fails
//!   while `GTF_reading`/`GTF_writing` is set. The hypervisor sets those bits with a
//!   compare-and-swap of the combined flags+domid word, re-validating what it read. Exactly one
//!   of the two CASes wins: either the grant is pinned and cannot be revoked, or it was revoked
//!   and the pin fails.
//! * **v2**: the in-use bits live in a separate status word the guest only reads. The guest
//!   clears the flags, then (after a full barrier) checks the status word; the hypervisor sets
//!   the status word, then (after a full barrier) re-reads the flags and undoes its bits if the
//!   grant changed. With both barriers at least one side sees the other's write.

use super::active::pin;
use super::memory::{GrantMemory, Loc};
use core::sync::atomic::{Ordering, fence};
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTST_general_error, GTF_accept_transfer, GTF_permit_access, GTF_reading, GTF_readonly,
    GTF_sub_page, GTF_transfer_committed, GTF_transitive, GTF_type_mask, GTF_writing,
};

/// CAS attempts on a guest-written word before giving up: the guest can change it faster than
/// we can retry, so an unbounded loop would let it livelock a CPU. Xen allows a few retries
/// because some changes (e.g. of `GTF_readonly`) are legitimate.
const CAS_ATTEMPTS: u32 = 5;

/// The first word of every entry, `flags` and `domid`, which Xen updates as one 32-bit unit
/// (`union grant_combo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// `GTF_*`.
    pub flags: u16,
    /// The domain the entry grants access to (or accepts a transfer from).
    pub domid: DomId,
}

impl Header {
    /// Splits the little-endian word.
    pub const fn from_raw(raw: u32) -> Self {
        Self {
            flags: raw as u16,
            domid: (raw >> 16) as u16,
        }
    }

    /// The little-endian word.
    pub const fn raw(self) -> u32 {
        self.flags as u32 | (self.domid as u32) << 16
    }

    /// Reads the header at `at`.
    pub fn load(mem: &impl GrantMemory, at: Loc) -> Self {
        Self::from_raw(mem.load_u32(at))
    }
}

/// What the pin is for: decides which entry types are acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinPurpose {
    /// `GNTTABOP_map_grant_ref`: full-page `GTF_permit_access` only (no sub-page, no
    /// transitive grants: a mapping cannot be limited to part of a page).
    Map,
    /// `GNTTABOP_copy`: sub-page and (v2) transitive grants are acceptable too.
    Copy,
}

/// A request to set the in-use bits of one entry.
#[derive(Clone, Copy, Debug)]
pub struct PinRequest {
    /// The entry is already pinned (`act->pin != 0`): its type and grantee were checked by the
    /// first pin and are not re-checked, only the read-only bit is.
    pub already_pinned: bool,
    /// Only `GTF_reading` is wanted.
    pub readonly: bool,
    /// Map or copy.
    pub purpose: PinPurpose,
    /// The domain pinning the entry, which must be its grantee.
    pub grantee: DomId,
}

impl PinRequest {
    fn type_mask(&self) -> u16 {
        match self.purpose {
            PinPurpose::Map => GTF_type_mask | GTF_sub_page,
            PinPurpose::Copy => GTF_type_mask,
        }
    }
}

/// `_set_status_v1`: sets `GTF_reading` (and `GTF_writing` unless read-only) in the entry's
/// flags with a bounded CAS loop that re-validates type, grantee and `GTF_readonly` on every
/// attempt. Any failure is `GNTST_general_error`, as in Xen.
pub fn set_status_v1(mem: &impl GrantMemory, header: Loc, req: PinRequest) -> Result<(), i16> {
    let mask = req.type_mask();
    let mut seen = Header::load(mem, header);
    for _ in 0..CAS_ATTEMPTS {
        if !req.already_pinned
            && (seen.flags & mask != GTF_permit_access || seen.domid != req.grantee)
        {
            return Err(GNTST_general_error);
        }
        let mut new = seen;
        new.flags |= GTF_reading;
        if !req.readonly {
            if seen.flags & GTF_readonly != 0 {
                return Err(GNTST_general_error);
            }
            new.flags |= GTF_writing;
        }
        let found = mem.cmpxchg_u32(header, seen.raw(), new.raw());
        if found == seen.raw() {
            return Ok(());
        }
        // The guest changed the entry since we read it: decide again on what it holds now.
        seen = Header::from_raw(found);
    }
    Err(GNTST_general_error)
}

/// Whether a v2 header grants `req` (type and grantee; not the read-only bit).
fn v2_type_ok(h: Header, req: &PinRequest) -> bool {
    let ty = h.flags & req.type_mask();
    let type_ok =
        ty == GTF_permit_access || (req.purpose == PinPurpose::Copy && ty == GTF_transitive);
    type_ok && h.domid == req.grantee
}

/// `_set_status_v2`: sets the in-use bits in the separate status word, then re-reads the
/// header after a full barrier and backs out if the guest revoked the grant (or made it
/// read-only) meanwhile. Any failure is `GNTST_general_error`.
pub fn set_status_v2(
    mem: &impl GrantMemory,
    header: Loc,
    status: Loc,
    req: PinRequest,
) -> Result<(), i16> {
    let h = Header::load(mem, header);
    if !req.already_pinned && !v2_type_ok(h, &req) {
        return Err(GNTST_general_error);
    }
    if req.readonly {
        mem.or_u16(status, GTF_reading);
    } else {
        if h.flags & GTF_readonly != 0 {
            return Err(GNTST_general_error);
        }
        mem.or_u16(status, GTF_reading | GTF_writing);
    }

    // The guest must see our status bits before we look at its flags again (it does the
    // mirror image: clear flags, barrier, read status).
    fence(Ordering::SeqCst);

    let h = Header::load(mem, header);
    if !req.already_pinned {
        if !v2_type_ok(h, &req) || (!req.readonly && h.flags & GTF_readonly != 0) {
            clear_flags(mem, status, GTF_reading | GTF_writing);
            return Err(GNTST_general_error);
        }
    } else if h.flags & GTF_readonly != 0 {
        // Only reached for a write pin on top of existing pins: drop the write bit we just
        // added, the existing read pins keep GTF_reading.
        clear_flags(mem, status, GTF_writing);
        return Err(GNTST_general_error);
    }
    Ok(())
}

/// `gnttab_clear_flags`: atomically clears `bits` in the 16-bit word at `at` (v1 flags or v2
/// status).
pub fn clear_flags(mem: &impl GrantMemory, at: Loc, bits: u16) {
    mem.and_u16(at, !bits);
}

/// `reduce_status_for_pin`: after a pin count dropped (or a pin attempt was abandoned), clears
/// `GTF_writing` if no writable pins remain and the dropped pin was writable, and
/// `GTF_reading` if no pins remain at all.
pub fn reduce_status_for_pin(mem: &impl GrantMemory, status: Loc, pins: u32, readonly: bool) {
    let mut bits = if pins == 0 { GTF_reading } else { 0 };
    if !readonly && pins & (pin::HSTW_MASK | pin::DEVW_MASK) == 0 {
        bits |= GTF_writing;
    }
    if bits != 0 {
        clear_flags(mem, status, bits);
    }
}

/// `gnttab_prepare_for_transfer`'s CAS loop: the entry must be exactly `GTF_accept_transfer`
/// for `from`; on success `GTF_transfer_committed` is set, which tells the guest the frame
/// is on its way. Returns `false` on any mismatch or if the entry stays unstable.
pub fn commit_transfer(mem: &impl GrantMemory, header: Loc, from: DomId) -> bool {
    let mut seen = Header::load(mem, header);
    for _ in 0..CAS_ATTEMPTS {
        if seen.flags != GTF_accept_transfer || seen.domid != from {
            return false;
        }
        let new = Header {
            flags: seen.flags | GTF_transfer_committed,
            domid: seen.domid,
        };
        let found = mem.cmpxchg_u32(header, seen.raw(), new.raw());
        if found == seen.raw() {
            return true;
        }
        seen = Header::from_raw(found);
    }
    false
}
