//! `GNTTABOP_transfer` (Xen's `gnttab_transfer`, `gnttab_prepare_for_transfer`): a domain gives
//! one of its frames to another, which has offered an entry with `GTF_accept_transfer`.
//!
//! The ownership change itself (taking the frame out of the sender's memory, assigning it to
//! the receiver, the M2P) is the host's ([`GrantHost::steal_page`] and the methods after it);
//! this module does Xen's checks, in Xen's order, and the grant-entry protocol. A host that
//! keeps the trait's default methods makes every transfer fail with `GNTST_general_error`
//! before anything changes. (Xen itself can be built or booted without transfer support,
//! `gnttab=transfer=0`, in which case the whole hypercall returns `-EOPNOTSUPP`.)

use crate::gnttab::flags::commit_transfer;
use crate::gnttab::host::{GrantHost, StealError};
use crate::gnttab::table::GrantVersion;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTST_address_too_big, GNTST_bad_domain, GNTST_bad_page, GNTST_general_error, GNTST_okay,
    GTF_transfer_completed, GnttabTransfer,
};

/// Address bits of a frame a 64-bit PV receiver can be told about: v1 entries hold 32-bit
/// frame numbers, v2 entries (and translated guests, which get a gfn) full ones
/// (`domain_clamp_alloc_bitsize(e, ...)`).
const fn max_address_bits(version: GrantVersion, translated: bool) -> u32 {
    match (version, translated) {
        (GrantVersion::V1, false) => 32 + 12,
        _ => FULL_ADDRESS_BITS,
    }
}

/// `BITS_PER_LONG + PAGE_SHIFT`: no limit.
const FULL_ADDRESS_BITS: u32 = 64 + 12;

/// Transfers `ld`'s frame `op.mfn` (a guest frame number; machine frame for PV) to domain
/// `op.domid` through its entry `op.ref_`, and writes `op.status`:
///
/// * the frame cannot be taken from `ld` (not its own, still referenced): `GNTST_bad_page`,
///   or `GNTST_general_error` for other host failures;
/// * `op.domid` does not exist: `GNTST_bad_domain` (the frame is already gone from `ld` and is
///   freed, as in Xen);
/// * the receiver cannot name the frame and no lower one is available: `GNTST_address_too_big`;
/// * the receiver is dying or has no room, its entry is not `GTF_accept_transfer` for `ld`
///   (including a reference beyond its table), or the entry is unstable: `GNTST_general_error`.
pub fn transfer<H: GrantHost>(host: &H, ld: DomId, op: &mut GnttabTransfer) {
    op.status = match transfer_one(host, ld, op) {
        Ok(()) => GNTST_okay,
        Err(rc) => rc,
    };
}

fn transfer_one<H: GrantHost>(host: &H, ld: DomId, op: &GnttabTransfer) -> Result<(), i16> {
    let mut mfn = host.steal_page(ld, op.mfn).map_err(|e| match e {
        StealError::BadPage => GNTST_bad_page,
        StealError::Failed => GNTST_general_error,
    })?;
    // Stale translations of the frame must be gone before anyone else owns it.
    host.flush_tlb(ld);

    let e = op.domid;
    let give_up = |mfn, rc| {
        host.free_stolen_page(mfn);
        Err(rc)
    };
    let version = match host.grant_table(e) {
        Some(t) if host.domain_exists(e) => t.version(),
        _ => return give_up(mfn, GNTST_bad_domain),
    };

    let bits = max_address_bits(version, host.paging_external(e));
    if bits < FULL_ADDRESS_BITS && mfn >> (bits - 12) != 0 {
        match host.relocate_for_transfer(e, mfn, bits) {
            Some(lower) => mfn = lower,
            None => return give_up(mfn, GNTST_address_too_big),
        }
    }

    if !host.reserve_page(e) {
        return give_up(mfn, GNTST_general_error);
    }
    let committed = match host.grant_table(e) {
        Some(t) => op.ref_ < t.nr_entries() && commit_transfer(host, t.header_loc(op.ref_), ld),
        None => false,
    };
    if !committed || !host.assign_page(e, mfn) {
        host.unreserve_page(e);
        return give_up(mfn, GNTST_general_error);
    }

    // Tell the receiver which frame it got: the frame number first, then the flag it polls.
    let Some(t) = host.grant_table(e) else {
        return Err(GNTST_general_error);
    };
    let gfn = t.full_page_frame(host, op.ref_);
    let added = host.physmap_add(e, gfn, mfn);
    // PV guests are told the machine frame.
    if !host.paging_external(e) {
        t.set_full_page_frame(host, op.ref_, mfn);
    }
    core::sync::atomic::fence(core::sync::atomic::Ordering::Release);
    host.or_u16(t.header_loc(op.ref_), GTF_transfer_completed);
    if added {
        Ok(())
    } else {
        Err(GNTST_general_error)
    }
}
