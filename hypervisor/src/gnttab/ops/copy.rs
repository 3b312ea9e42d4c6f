//! `GNTTABOP_copy` (Xen's `gnttab_copy`, `gnttab_copy_one` and helpers).
//!
//! Each side of a copy is a grant reference of some domain (`GNTCOPY_source_gref` /
//! `GNTCOPY_dest_gref`) or a frame of the caller itself. Like Xen, a [`CopyBatch`] keeps the
//! last source and destination claimed across the elements of one hypercall, so a run of
//! copies from the same grant pins it once; the claims are released on any failure and by
//! [`CopyBatch::finish`].

use super::acquire::{acquire_grant_for_copy, release_grant_for_copy};
use super::resolve_any_id;
use crate::gnttab::host::GrantHost;
use crate::gnttab::layout::PAGE_SIZE;
use crate::pvmm::Mfn;
use xen_abi::DomId;
use xen_abi::grant_table::{
    GNTCOPY_dest_gref, GNTCOPY_source_gref, GNTST_bad_copy_arg, GNTST_bad_domain,
    GNTST_general_error, GNTST_okay, GNTST_permission_denied, GnttabCopy, GnttabCopyPtr,
};
use xen_abi::xen::DOMID_SELF;

/// One side of a copy as claimed (Xen's `struct gnttab_copy_buf`).
#[derive(Debug, Default)]
struct Buf {
    /// The domain id as the guest wrote it (`DOMID_SELF` stays `DOMID_SELF`), to recognise the
    /// same side in the next element.
    domid_arg: DomId,
    /// The resolved domain; `None` before the first element and after a failed lookup.
    domain: Option<DomId>,
    /// The `u` union as claimed: a grant reference in the low 32 bits, or a frame. As in Xen
    /// claiming a reference only overwrites the low half.
    u: u64,
    /// The usable byte range of the frame.
    offset: u16,
    len: u16,
    /// The frame copied from or to.
    mfn: Mfn,
    /// The frame holding our general reference, if any.
    page: Option<Mfn>,
    read_only: bool,
    have_grant: bool,
    have_type: bool,
    /// Everything needed for a copy is held (Xen: `virt` is mapped).
    ready: bool,
}

impl Buf {
    /// Drops the claim: the frame references first, then the pin. (Xen unpins first; the
    /// order matters here because a dying granter keeps exactly the frames that are still
    /// pinned, with the references their pins stand for: a reference must never outlive its
    /// pin. Nothing touches the frame in between either way.)
    fn release<H: GrantHost>(&mut self, host: &H) {
        self.ready = false;
        if self.have_type {
            if let Some(page) = self.page {
                host.put_page_type(page);
            }
            self.have_type = false;
        }
        if let Some(page) = self.page.take() {
            host.put_page(page);
        }
        if self.have_grant {
            if let Some(dom) = self.domain {
                release_grant_for_copy(host, dom, self.u as u32, self.read_only);
            }
            self.have_grant = false;
        }
    }

    /// `gnttab_copy_buf_valid`: this side of the element is what is already claimed.
    fn matches(&self, p: &GnttabCopyPtr, by_gref: bool) -> bool {
        if !self.ready {
            return false;
        }
        if by_gref {
            self.have_grant && p.gref() == self.u as u32
        } else {
            p.gmfn() == self.u
        }
    }
}

/// The claims carried from one element of a `GNTTABOP_copy` array to the next. Create one per
/// hypercall (or continuation), run the elements through [`CopyBatch::copy_one`], then call
/// [`CopyBatch::finish`] before returning to the guest, preempted or not.
#[derive(Debug, Default)]
#[must_use = "call finish() to release the claimed grants"]
pub struct CopyBatch {
    src: Buf,
    dest: Buf,
}

impl CopyBatch {
    /// No claims yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copies one element for domain `ld` and writes `op.status`:
    ///
    /// * a side named by frame whose domain is not `DOMID_SELF`: `GNTST_permission_denied`;
    /// * a domain that does not exist: `GNTST_bad_domain`;
    /// * grant errors as [`acquire_grant_for_copy`] (a read-only grant as destination:
    ///   `GNTST_general_error`); a caller frame that is not its own: `GNTST_bad_page`;
    /// * the destination frame cannot be made writable: `GNTST_general_error`;
    /// * `offset + len` beyond a page on either side: `GNTST_bad_copy_arg`;
    /// * outside the granted sub-page range: `GNTST_general_error`.
    pub fn copy_one<H: GrantHost>(&mut self, host: &H, ld: DomId, op: &mut GnttabCopy) {
        let rc = self.try_copy(host, ld, op);
        if rc != GNTST_okay {
            self.src.release(host);
            self.dest.release(host);
        }
        op.status = rc;
    }

    /// Releases every claim (end of the hypercall).
    pub fn finish<H: GrantHost>(mut self, host: &H) {
        self.src.release(host);
        self.dest.release(host);
        self.src.domain = None;
        self.dest.domain = None;
    }

    fn try_copy<H: GrantHost>(&mut self, host: &H, ld: DomId, op: &GnttabCopy) -> i16 {
        let src_gref = op.flags & GNTCOPY_source_gref != 0;
        let dest_gref = op.flags & GNTCOPY_dest_gref != 0;

        if self.src.domain.is_none()
            || op.source.domid != self.src.domid_arg
            || self.dest.domain.is_none()
            || op.dest.domid != self.dest.domid_arg
        {
            self.src.release(host);
            self.dest.release(host);
            self.src.domain = None;
            self.dest.domain = None;
            if let Err(rc) = lock_domain(host, ld, op.source.domid, src_gref, &mut self.src)
                .and_then(|()| lock_domain(host, ld, op.dest.domid, dest_gref, &mut self.dest))
            {
                self.src.domain = None;
                self.dest.domain = None;
                return rc;
            }
        }

        if !self.src.matches(&op.source, src_gref) {
            self.src.release(host);
            if let Err(rc) = claim(host, ld, &op.source, src_gref, true, &mut self.src) {
                return rc;
            }
        }
        if !self.dest.matches(&op.dest, dest_gref) {
            self.dest.release(host);
            if let Err(rc) = claim(host, ld, &op.dest, dest_gref, false, &mut self.dest) {
                return rc;
            }
        }
        copy_bytes(host, op, &self.dest, &self.src)
    }
}

/// `gnttab_copy_lock_domain`.
fn lock_domain<H: GrantHost>(
    host: &H,
    ld: DomId,
    domid: DomId,
    by_gref: bool,
    buf: &mut Buf,
) -> Result<(), i16> {
    // A frame number means the caller's own frame: naming another domain's needs a grant.
    if domid != DOMID_SELF && !by_gref {
        return Err(GNTST_permission_denied);
    }
    buf.domain = Some(resolve_any_id(host, ld, domid).ok_or(GNTST_bad_domain)?);
    buf.domid_arg = domid;
    Ok(())
}

/// `gnttab_copy_claim_buf`: pins the grant (or references the caller's frame) and, for the
/// destination, takes a writable type reference.
fn claim<H: GrantHost>(
    host: &H,
    ld: DomId,
    ptr: &GnttabCopyPtr,
    by_gref: bool,
    read_only: bool,
    buf: &mut Buf,
) -> Result<(), i16> {
    let Some(dom) = buf.domain else {
        return Err(GNTST_bad_domain);
    };
    buf.read_only = read_only;
    if by_gref {
        let grant = acquire_grant_for_copy(host, dom, ptr.gref(), ld, read_only)?;
        buf.u = (buf.u & !0xffff_ffff) | u64::from(ptr.gref());
        buf.have_grant = true;
        buf.mfn = grant.mfn;
        buf.page = Some(grant.referenced);
        buf.offset = grant.offset;
        buf.len = grant.length;
    } else {
        let mfn = host.get_paged_frame(dom, ptr.gmfn(), read_only)?;
        buf.u = ptr.gmfn();
        buf.mfn = mfn;
        buf.page = Some(mfn);
        buf.offset = 0;
        buf.len = PAGE_SIZE as u16;
    }
    if !read_only {
        let page = buf.page.unwrap_or(buf.mfn);
        if !host.get_page_type_writable(page) {
            return Err(GNTST_general_error);
        }
        buf.have_type = true;
    }
    buf.ready = true;
    Ok(())
}

/// `gnttab_copy_buf`: the bounds checks, then the copy.
fn copy_bytes<H: GrantHost>(host: &H, op: &GnttabCopy, dest: &Buf, src: &Buf) -> i16 {
    let len = u32::from(op.len);
    let (so, dof) = (u32::from(op.source.offset), u32::from(op.dest.offset));
    if so + len > PAGE_SIZE as u32 || dof + len > PAGE_SIZE as u32 {
        return GNTST_bad_copy_arg;
    }
    let within = |off: u32, buf: &Buf| {
        off >= u32::from(buf.offset) && off + len <= u32::from(buf.offset) + u32::from(buf.len)
    };
    if !within(so, src) || !within(dof, dest) {
        return GNTST_general_error;
    }
    host.copy_bytes(dest.mfn, dof as usize, src.mfn, so as usize, len as usize);
    if let Some(dom) = dest.domain {
        host.mark_dirty(dom, dest.mfn);
    }
    GNTST_okay
}
