//! `GNTTABOP_map_grant_ref` (Xen's `map_grant_ref`).

use super::host_mapping_takes_type;
use crate::gnttab::active::{map_pin_increment, pin};
use crate::gnttab::flags::{
    PinPurpose, PinRequest, reduce_status_for_pin, set_status_v1, set_status_v2,
};
use crate::gnttab::host::{GrantHost, PageRef};
use crate::gnttab::table::GrantVersion;
use crate::pvmm::Mfn;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTMAP_application_map, GNTMAP_contains_pte, GNTMAP_device_map, GNTMAP_host_map,
    GNTMAP_readonly, GNTST_bad_domain, GNTST_bad_gntref, GNTST_general_error, GNTST_no_space,
    GNTST_okay, GTF_PAT, GTF_PCD, GTF_PWT, GnttabMapGrantRef,
};
use xen_abi::xen::DOMID_IO;

/// Maps `op.ref` of domain `op.dom` for domain `ld`, on behalf of its vCPU `vcpu` (whose
/// maptrack free list supplies the handle).
///
/// On success `op.status` is `GNTST_okay`, `op.handle` the new handle and `op.dev_bus_addr`
/// the frame's machine address; on failure only `op.status` is written. The codes, in the
/// order Xen checks them:
///
/// * neither `GNTMAP_host_map` nor `GNTMAP_device_map`: `GNTST_bad_gntref`;
/// * device, application or PTE mappings asked for by an HVM-style domain: `GNTST_general_error`;
/// * `op.dom` does not exist (`DOMID_SELF` included): `GNTST_bad_domain`;
/// * no maptrack handle left: `GNTST_no_space`;
/// * `op.ref` beyond the table: `GNTST_bad_gntref`;
/// * already pinned by another domain, pin counter near overflow, a sub-page pin:
///   `GNTST_general_error`;
/// * entry not `GTF_permit_access` for `ld` (or a sub-page/transitive grant), a writable map of
///   a `GTF_readonly` grant, an entry the guest keeps changing: `GNTST_general_error`;
/// * the granted frame is not the granter's: `GNTST_bad_page`;
/// * references or the host mapping cannot be had: `GNTST_general_error` (or the host's code).
pub fn map_grant_ref<H: GrantHost>(host: &H, ld: DomId, vcpu: u32, op: &mut GnttabMapGrantRef) {
    let incr = map_pin_increment(op.flags);
    if incr == 0 {
        op.status = GNTST_bad_gntref;
        return;
    }
    if host.paging_external(ld)
        && op.flags & (GNTMAP_device_map | GNTMAP_application_map | GNTMAP_contains_pte) != 0
    {
        op.status = GNTST_general_error;
        return;
    }
    let rd = op.dom;
    if !host.domain_exists(rd) {
        op.status = GNTST_bad_domain;
        return;
    }
    let Some(handle) = host.maptrack(ld).and_then(|mut mt| mt.get_handle(vcpu)) else {
        op.status = GNTST_no_space;
        return;
    };

    match pin_and_reference(host, ld, rd, incr, op) {
        Ok(mfn) => {
            if let Some(mut mt) = host.maptrack(ld) {
                mt.record(handle, rd, op.ref_, op.flags);
            }
            op.dev_bus_addr = mfn << 12;
            op.handle = handle;
            op.status = GNTST_okay;
        }
        Err(rc) => {
            op.status = rc;
            if let Some(mut mt) = host.maptrack(ld) {
                mt.put_handle(handle);
            }
        }
    }
}

/// The references a mapping took, so a late failure can give them back.
struct Taken {
    mfn: Mfn,
    general: u32,
    writable: u32,
    host_mapping: bool,
}

/// Pins the entry, then takes the frame references and creates the host mapping. On failure
/// everything is undone and the status returned.
fn pin_and_reference<H: GrantHost>(
    host: &H,
    ld: DomId,
    rd: DomId,
    incr: u32,
    op: &GnttabMapGrantRef,
) -> Result<Mfn, i16> {
    let readonly = op.flags & GNTMAP_readonly != 0;
    let pinned = pin_entry(host, ld, rd, incr, op)?;
    let mut taken = Taken {
        mfn: pinned.mfn,
        general: u32::from(pinned.first_ref_taken),
        writable: 0,
        host_mapping: false,
    };
    match take_references(host, ld, rd, op, &pinned, &mut taken) {
        Ok(()) => Ok(pinned.mfn),
        Err(rc) => {
            if taken.host_mapping {
                host.replace_host_mapping(ld, op.host_addr, taken.mfn, 0, op.flags);
                host.flush_tlb(ld);
            }
            for _ in 0..taken.writable {
                host.put_page_type(taken.mfn);
            }
            for _ in 0..taken.general {
                host.put_page(taken.mfn);
            }
            if let Some(mut rgt) = host.grant_table(rd) {
                let status = rgt.status_loc(op.ref_);
                let act = rgt.active_mut(op.ref_);
                act.pin -= incr;
                let pins = act.pin;
                reduce_status_for_pin(host, status, pins, readonly);
            }
            Err(rc)
        }
    }
}

/// What pinning established.
struct Pinned {
    mfn: Mfn,
    /// The first pin took a general reference on the frame (`get_paged_frame`); it becomes
    /// the mapping's.
    first_ref_taken: bool,
    /// `GTF_PAT|GTF_PCD|GTF_PWT` of the entry.
    cache_flags: u16,
}

/// The part done under the granter's table lock: checks, in-use flags, pin counts.
fn pin_entry<H: GrantHost>(
    host: &H,
    ld: DomId,
    rd: DomId,
    incr: u32,
    op: &GnttabMapGrantRef,
) -> Result<Pinned, i16> {
    let readonly = op.flags & GNTMAP_readonly != 0;
    let Some(mut rgt) = host.grant_table(rd) else {
        return Err(GNTST_bad_domain);
    };
    let gref = op.ref_;
    if gref >= rgt.nr_entries() {
        return Err(GNTST_bad_gntref);
    }
    let header = rgt.header_loc(gref);
    let status = rgt.status_loc(gref);
    let act = *rgt.active(gref);
    if act.pin != 0
        && (act.domid != ld || act.pin & pin::overflow_mask(incr) != 0 || act.is_sub_page)
    {
        return Err(GNTST_general_error);
    }

    let mut first_ref_taken = false;
    if act.pin == 0 || (!readonly && !act.has_write_pins()) {
        let req = PinRequest {
            already_pinned: act.pin != 0,
            readonly,
            purpose: PinPurpose::Map,
            grantee: ld,
        };
        match rgt.version() {
            GrantVersion::V1 => set_status_v1(host, header, req)?,
            GrantVersion::V2 => set_status_v2(host, header, status, req)?,
        }
        if act.pin == 0 {
            let gfn = rgt.full_page_frame(host, gref);
            let mfn = match host.get_paged_frame(rd, gfn, readonly) {
                Ok(mfn) => mfn,
                Err(rc) => {
                    reduce_status_for_pin(host, status, act.pin, readonly);
                    return Err(rc);
                }
            };
            first_ref_taken = true;
            let a = rgt.active_mut(gref);
            a.domid = ld;
            a.src_domid = rd;
            a.mfn = mfn;
            a.gfn = gfn;
            a.start = 0;
            a.length = crate::gnttab::layout::PAGE_SIZE as u16;
            a.is_sub_page = false;
            a.trans_gref = gref;
        }
    }

    let a = rgt.active_mut(gref);
    a.pin += incr;
    let mfn = a.mfn;
    let cache_flags = rgt.header(host, gref).flags & (GTF_PAT | GTF_PWT | GTF_PCD);
    Ok(Pinned {
        mfn,
        first_ref_taken,
        cache_flags,
    })
}

/// The part done without the table lock: the references the mapping holds and the host
/// mapping itself.
fn take_references<H: GrantHost>(
    host: &H,
    ld: DomId,
    rd: DomId,
    op: &GnttabMapGrantRef,
    pinned: &Pinned,
    taken: &mut Taken,
) -> Result<(), i16> {
    let readonly = op.flags & GNTMAP_readonly != 0;
    let mfn = pinned.mfn;
    // The first pin's reference (from get_paged_frame) counts as one; otherwise take one now.
    let owner = if pinned.first_ref_taken {
        PageRef::Owned(rd)
    } else {
        let r = host.get_page_owner_and_reference(mfn);
        if let PageRef::Owned(_) = r {
            taken.general += 1;
        }
        r
    };

    match owner {
        PageRef::Invalid | PageRef::Owned(DOMID_IO) => {
            // I/O memory: the reference only served to confirm DOMID_IO ownership.
            if owner != PageRef::Invalid {
                host.put_page(mfn);
                taken.general -= 1;
            }
            if host.paging_external(ld) || !host.iomem_access_permitted(rd, mfn) {
                return Err(GNTST_general_error);
            }
            if op.flags & GNTMAP_host_map != 0 {
                create_host_mapping(host, ld, op, mfn, pinned.cache_flags, taken)?;
            }
            Ok(())
        }
        PageRef::Owned(o) if o == rd => {
            if op.flags & GNTMAP_device_map != 0 && !readonly {
                if !host.get_page_type_writable(mfn) {
                    return Err(GNTST_general_error);
                }
                taken.writable += 1;
            }
            if op.flags & GNTMAP_host_map != 0 {
                // The device mapping claimed the reference we hold; the host mapping needs
                // its own.
                if op.flags & GNTMAP_device_map != 0 {
                    if !host.get_page(mfn, rd) {
                        return Err(GNTST_general_error);
                    }
                    taken.general += 1;
                }
                if host_mapping_takes_type(host, readonly, ld, rd) {
                    if !host.get_page_type_writable(mfn) {
                        return Err(GNTST_general_error);
                    }
                    taken.writable += 1;
                }
                // RAM mappings always use the default memory type.
                create_host_mapping(host, ld, op, mfn, 0, taken)?;
            }
            Ok(())
        }
        // "Could not pin grant frame": not the granter's (any more), or unowned.
        _ => Err(GNTST_general_error),
    }
}

fn create_host_mapping<H: GrantHost>(
    host: &H,
    ld: DomId,
    op: &GnttabMapGrantRef,
    mfn: Mfn,
    cache_flags: u16,
    taken: &mut Taken,
) -> Result<(), i16> {
    let rc = host.create_host_mapping(ld, op.host_addr, mfn, op.flags, cache_flags);
    if rc != GNTST_okay {
        return Err(rc);
    }
    taken.host_mapping = true;
    Ok(())
}
