//! `GNTTABOP_cache_flush` (Xen's `_cache_flush`): write back the caches of a frame the caller
//! owns or has mapped through a grant, for non-coherent devices.
//!
//! On x86 only cleaning is meaningful: `GNTTAB_CACHE_INVAL` alone is `-EOPNOTSUPP`, cleaning
//! (with or without invalidating) writes the lines back through [`GrantHost::clean_cache`].

use crate::gnttab::host::{GrantHost, PageRef};
use crate::gnttab::layout::{CACHE_FLUSH_SCAN_CHUNK, PAGE_SIZE};
use xen_abi::DomId;
use xen_abi::errno::Errno;
use xen_abi::grant_table::{
    GNTTAB_CACHE_CLEAN, GNTTAB_CACHE_INVAL, GNTTAB_CACHE_SOURCE_GREF, GnttabCacheFlush,
};

/// How far one step got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheFlushStep {
    /// The element is done; the caller resets its scan position to 0 and moves on.
    Done,
    /// The search for the caller's grant of the frame has not finished: call again with the
    /// same element and `cur_ref` (after a preemption check, or from a continuation, which
    /// carries `cur_ref` in the command's upper bits, `GNTTABOP_CONTINUATION_ARG_SHIFT` = 12).
    Again,
}

/// One step of flushing `op` for domain `ld`. `cur_ref` is where the search for `ld`'s grant of
/// a foreign frame resumes (0 on the first call for each element).
///
/// Errors: a range beyond the page or an unknown op bit (`GNTTAB_CACHE_SOURCE_GREF`
/// included): `-EINVAL`; an empty range or op while resuming a search: `-EILSEQ`; an invalid
/// frame: `-EINVAL`; a frame of no domain with a grant table: `-EPERM`; a foreign frame the
/// caller has not mapped: `-EINVAL`; invalidation only: `-EOPNOTSUPP`.
pub fn cache_flush<H: GrantHost>(
    host: &H,
    ld: DomId,
    op: &GnttabCacheFlush,
    cur_ref: &mut u32,
) -> Result<CacheFlushStep, Errno> {
    let (offset, length) = (usize::from(op.offset), usize::from(op.length));
    if offset >= PAGE_SIZE
        || length > PAGE_SIZE
        || offset + length > PAGE_SIZE
        || op.op & !(GNTTAB_CACHE_INVAL | GNTTAB_CACHE_CLEAN) != 0
    {
        return Err(Errno::EINVAL);
    }
    if length == 0 || op.op == 0 {
        return if *cur_ref == 0 {
            Ok(CacheFlushStep::Done)
        } else {
            Err(Errno::EILSEQ)
        };
    }
    // Unreachable after the mask check above, as in Xen; kept for when grant refs are added.
    if op.op & GNTTAB_CACHE_SOURCE_GREF != 0 {
        return Err(Errno::EOPNOTSUPP);
    }

    let mfn = op.dev_bus_addr() >> 12;
    let owner = match host.get_page_owner_and_reference(mfn) {
        PageRef::Invalid => return Err(Errno::EINVAL),
        PageRef::Unowned => return Err(Errno::EPERM),
        PageRef::Owned(owner) => owner,
    };
    let result = flush_owned(host, ld, owner, mfn, op, cur_ref);
    // Xen leaks this reference when the owner has no grant table; we always drop it.
    host.put_page(mfn);
    result
}

fn flush_owned<H: GrantHost>(
    host: &H,
    ld: DomId,
    owner: DomId,
    mfn: u64,
    op: &GnttabCacheFlush,
    cur_ref: &mut u32,
) -> Result<CacheFlushStep, Errno> {
    // DOMID_IO, DOMID_XEN and the like have no grant table.
    let Some(table) = host.grant_table(owner) else {
        return Err(Errno::EPERM);
    };
    if owner != ld {
        // `grant_map_exists`: the caller must have the frame pinned through one of the
        // owner's entries. The scan is bounded per step so huge tables stay preemptible.
        let nr = table.nr_entries();
        let end = cur_ref.saturating_add(CACHE_FLUSH_SCAN_CHUNK).min(nr);
        let found = (*cur_ref..end).any(|r| {
            let a = table.active(r);
            a.pin != 0 && a.domid == ld && a.mfn == mfn
        });
        if !found {
            if end < nr {
                *cur_ref = end;
                return Ok(CacheFlushStep::Again);
            }
            return Err(Errno::EINVAL);
        }
    }
    drop(table);
    if op.op & GNTTAB_CACHE_CLEAN == 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    host.clean_cache(mfn, usize::from(op.offset), usize::from(op.length));
    Ok(CacheFlushStep::Done)
}
