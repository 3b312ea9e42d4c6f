//! The table-level operations: `GNTTABOP_setup_table`, `query_size`, `set_version`,
//! `get_status_frames` and `get_version`.
//!
//! The frame lists these return are what the guest maps: for a PV domain the machine frames
//! themselves (Xen's `gnttab_shared_gfn`/`gnttab_status_gfn` are `mfn_to_gfn`, the identity for
//! non-translated guests). Writing them to the guest's list, and `GNTST_bad_virt_addr` if that
//! faults, is the hypercall layer's part.

use super::resolve_any_id;
use crate::gnttab::host::GrantHost;
use crate::gnttab::layout::grant_to_status_frames;
use crate::gnttab::memory::GrantMemory;
use crate::gnttab::table::{GrantTable, GrantVersion};
use alloc::vec::Vec;
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::grant_table::{
    GNTST_bad_domain, GNTST_general_error, GNTST_permission_denied, GNTTAB_NR_RESERVED_ENTRIES,
    GTF_permit_access, GTF_reading, GTF_transitive, GTF_type_mask, GTF_writing,
};

/// The domain a table-level op names: `GNTST_bad_domain` if it does not exist,
/// `GNTST_permission_denied` if the caller may not act on it.
fn target<H: GrantHost>(host: &H, caller: DomId, dom: DomId) -> Result<DomId, i16> {
    let d = resolve_any_id(host, caller, dom).ok_or(GNTST_bad_domain)?;
    if !host.may_control(caller, d) {
        return Err(GNTST_permission_denied);
    }
    Ok(d)
}

/// `GNTTABOP_setup_table`: grows `dom`'s table to at least `nr_frames` shared frames and
/// returns the first `nr_frames` of them.
///
/// `GNTST_bad_domain` / `GNTST_permission_denied` as usual; more than `max_grant_frames`, or
/// out of memory: `GNTST_general_error`. (The hypercall layer first checks `count == 1`,
/// `-EINVAL`, and that the frame list is writable for `nr_frames` entries, `-EFAULT`.)
pub fn setup_table<H: GrantHost>(
    host: &H,
    caller: DomId,
    dom: DomId,
    nr_frames: u32,
) -> Result<Vec<u64>, i16> {
    let d = target(host, caller, dom)?;
    let mut gt = host.grant_table(d).ok_or(GNTST_bad_domain)?;
    if nr_frames > gt.max_grant_frames() {
        return Err(GNTST_general_error);
    }
    let needs_status = gt.version() == GrantVersion::V2
        && grant_to_status_frames(nr_frames) > gt.nr_status_frames();
    if (nr_frames > gt.nr_grant_frames() || needs_status) && gt.grow(nr_frames, host).is_err() {
        return Err(GNTST_general_error);
    }
    Ok(gt.shared_frames()[..nr_frames as usize].to_vec())
}

/// `GNTTABOP_query_size`: `(nr_frames, max_nr_frames)` of `dom`'s table.
pub fn query_size<H: GrantHost>(host: &H, caller: DomId, dom: DomId) -> Result<(u32, u32), i16> {
    let d = target(host, caller, dom)?;
    let gt = host.grant_table(d).ok_or(GNTST_bad_domain)?;
    Ok((gt.nr_grant_frames(), gt.max_grant_frames()))
}

/// `GNTTABOP_get_status_frames`: the first `nr_frames` status frames of `dom`'s (version-2)
/// table. Asking for more than it has (any at all in version 1): `GNTST_general_error`.
pub fn get_status_frames<H: GrantHost>(
    host: &H,
    caller: DomId,
    dom: DomId,
    nr_frames: u32,
) -> Result<Vec<u64>, i16> {
    let d = target(host, caller, dom)?;
    let gt = host.grant_table(d).ok_or(GNTST_bad_domain)?;
    if nr_frames > gt.nr_status_frames() {
        return Err(GNTST_general_error);
    }
    Ok(gt.status_frames()[..nr_frames as usize].to_vec())
}

/// `GNTTABOP_get_version`: `-ESRCH` for a missing domain, `-EPERM` if the caller may not query
/// it (this op reports errnos, not `GNTST_*`).
pub fn get_version<H: GrantHost>(host: &H, caller: DomId, dom: DomId) -> Result<u32, Errno> {
    let d = resolve_any_id(host, caller, dom).ok_or(Errno::ESRCH)?;
    if !host.may_control(caller, d) {
        return Err(Errno::EPERM);
    }
    let gt = host.grant_table(d).ok_or(Errno::ESRCH)?;
    Ok(gt.version().number())
}

/// What `GNTTABOP_set_version` reports: the hypercall's return value, and the version written
/// back into the argument, which Xen writes even on failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetVersion {
    /// 0 or `-errno`.
    pub result: Result<(), Errno>,
    /// The table's version afterwards.
    pub version: u32,
}

/// A reserved entry carried across a version switch, in v1 form (Xen keeps the in-use bits in
/// the flags while carrying).
#[derive(Clone, Copy, Debug, Default)]
struct Reserved {
    flags: u16,
    domid: DomId,
    frame: u32,
}

/// `GNTTABOP_set_version`: switches the calling domain `ld`'s table to `version`.
///
/// * not 1 or 2: `-EINVAL`; 2 when the domain is limited to 1: `-ENOSYS`;
/// * the current version: success, nothing changes;
/// * any entry but the first [`GNTTAB_NR_RESERVED_ENTRIES`] pinned: `-EBUSY` (the reserved
///   ones, used by the toolstack for xenstore and the console, may stay mapped);
/// * v1 → v2 without memory for the status frames: `-ENOMEM`;
/// * v2 → v1 with a reserved entry v1 cannot express (a frame above 32 bits, a transitive
///   grant): `-ERANGE`; while the guest still maps a status frame: `-EBUSY`.
///
/// The reserved entries are carried over (v2 → v1 keeps only full-page `GTF_permit_access`
/// ones); all other entries are cleared.
pub fn set_version<H: GrantHost>(host: &H, ld: DomId, version: u32) -> SetVersion {
    let Some(mut gt) = host.grant_table(ld) else {
        return SetVersion {
            result: Err(Errno::ESRCH),
            version: 0,
        };
    };
    let result = switch(host, &mut gt, version);
    SetVersion {
        result,
        version: gt.version().number(),
    }
}

fn switch<H: GrantHost>(host: &H, gt: &mut GrantTable, version: u32) -> Result<(), Errno> {
    let to = match version {
        1 => GrantVersion::V1,
        2 => GrantVersion::V2,
        _ => return Err(Errno::EINVAL),
    };
    if to == GrantVersion::V2 && gt.max_version() == 1 {
        return Err(Errno::ENOSYS);
    }
    if gt.version() == to {
        return Ok(());
    }
    if (GNTTAB_NR_RESERVED_ENTRIES..gt.nr_entries()).any(|r| gt.active(r).pin != 0) {
        return Err(Errno::EBUSY);
    }
    if to == GrantVersion::V1 {
        for r in 0..GNTTAB_NR_RESERVED_ENTRIES {
            let ty = gt.header(host, r).flags & GTF_type_mask;
            let too_wide = ty == GTF_permit_access && gt.full_page_frame(host, r) >> 32 != 0;
            if too_wide || ty == GTF_transitive {
                return Err(Errno::ERANGE);
            }
        }
    }
    let reserved = preserve_reserved(host, gt);
    gt.switch_version(to, host)?;
    restore_reserved(host, gt, &reserved);
    Ok(())
}

fn preserve_reserved(
    mem: &impl GrantMemory,
    gt: &GrantTable,
) -> [Reserved; GNTTAB_NR_RESERVED_ENTRIES as usize] {
    let mut out = [Reserved::default(); GNTTAB_NR_RESERVED_ENTRIES as usize];
    for (r, slot) in (0..GNTTAB_NR_RESERVED_ENTRIES).zip(out.iter_mut()) {
        let hdr = gt.header(mem, r);
        *slot = match gt.version() {
            GrantVersion::V1 => Reserved {
                flags: hdr.flags,
                domid: hdr.domid,
                frame: gt.full_page_frame(mem, r) as u32,
            },
            // Only full-page access grants survive into v1 (others were refused above or are
            // dropped, as Xen does).
            GrantVersion::V2 if hdr.flags & GTF_type_mask == GTF_permit_access => Reserved {
                flags: hdr.flags | mem.load_u16(gt.status_loc(r)),
                domid: hdr.domid,
                frame: gt.full_page_frame(mem, r) as u32,
            },
            GrantVersion::V2 => Reserved::default(),
        };
    }
    out
}

fn restore_reserved(mem: &impl GrantMemory, gt: &GrantTable, reserved: &[Reserved]) {
    let in_use = GTF_reading | GTF_writing;
    for (r, e) in (0..GNTTAB_NR_RESERVED_ENTRIES).zip(reserved) {
        let hdr = gt.header_loc(r);
        match gt.version() {
            GrantVersion::V1 => {
                mem.store_u32(hdr.add(4), e.frame);
                mem.store_u32(hdr, u32::from(e.flags) | u32::from(e.domid) << 16);
            }
            GrantVersion::V2 => {
                mem.store_u16(gt.status_loc(r), e.flags & in_use);
                mem.store_u64(hdr.add(8), u64::from(e.frame));
                mem.store_u32(hdr, u32::from(e.flags & !in_use) | u32::from(e.domid) << 16);
            }
        }
    }
}
