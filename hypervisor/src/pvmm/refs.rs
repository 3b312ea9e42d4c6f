//! Reference counting: the general count (`get_page`/`put_page`) and the type count
//! (`_get_page_type`/`_put_page_type`), from Xen 4.17's `xen/arch/x86/mm.c`.
//!
//! Every read-modify-write of `count_info`, `type_info` and `linear_pt_count` is in this file;
//! each corresponds to one `cmpxchg` loop in Xen and is the place to make atomic when the
//! model becomes concurrent.

use super::page::{
    PGC_COUNT_MASK, PGT_COUNT_MASK, PGT_NON_COHERENT, PGT_PARTIAL, PGT_TYPE_MASK, PGT_VALIDATED,
    PageType,
};
use super::tables::{devalidate_page, validate_page};
use super::{DomId, FrameEnv, Mfn};
use xen_abi::errno::Errno;

/// `page_get_owner_and_reference`: takes a general reference and returns the owner, or takes
/// nothing and returns `None` if `mfn` has no frame-table entry, is not allocated (count 0),
/// or the count would reach the two values Xen reserves (-1: wrap, -2: `get_page_light`).
pub(crate) fn page_get_owner_and_reference<E: FrameEnv>(env: &mut E, mfn: Mfn) -> Option<DomId> {
    let pg = env.page_mut(mfn)?;
    let x = pg.count_info;
    if (x.wrapping_add(2) & PGC_COUNT_MASK) <= 2 {
        return None;
    }
    pg.count_info = x + 1;
    Some(pg.owner)
}

/// `get_page`: takes a general reference on `mfn` if it is allocated to `dom`.
///
/// Fails with -EINVAL, the errno every Xen 4.17 caller of a failed `get_page_from_mfn` /
/// `get_page_from_gfn` returns, if the frame is not valid, not allocated, or owned by another
/// domain.
pub fn get_page<E: FrameEnv>(env: &mut E, mfn: Mfn, dom: DomId) -> Result<(), Errno> {
    match page_get_owner_and_reference(env, mfn) {
        Some(owner) if owner == dom => Ok(()),
        Some(_) => {
            put_page(env, mfn);
            Err(Errno::EINVAL)
        }
        None => Err(Errno::EINVAL),
    }
}

/// `put_page`: drops a general reference. The last one releases the frame
/// (`cleanup_page_mappings` + `free_domheap_page`): a writable-typed ordinary frame loses its
/// type, a non-coherent one has its cache flushed, and [`FrameEnv::page_released`] is told.
///
/// Dropping a reference nobody holds is a caller bug: ignored (and a `debug_assert!`).
pub fn put_page<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    let Some(pg) = env.page_mut(mfn) else {
        return;
    };
    let count = pg.count_info & PGC_COUNT_MASK;
    debug_assert!(count != 0, "put_page on mfn {mfn:#x} with no references");
    if count == 0 {
        return;
    }
    pg.count_info -= 1;
    if count != 1 {
        return;
    }
    // cleanup_page_mappings(): the page is no longer live.
    let non_coherent = pg.type_info & PGT_NON_COHERENT != 0;
    pg.type_info &= !PGT_NON_COHERENT;
    if pg.page_type() == PageType::Writable && !pg.is_special() {
        // All writable mappings are gone: clear the type (and its zero count).
        pg.type_info &= !(PGT_TYPE_MASK | PGT_COUNT_MASK);
    }
    if non_coherent {
        env.flush_cache(mfn);
    }
    env.page_released(mfn);
}

/// `_get_page_type`: takes a type reference of type `ty` on `mfn`.
///
/// * With a zero type count the frame may change type (the TLBs are flushed via
///   [`FrameEnv::flush_tlb_for_type_change`]); writable frames need no validation.
/// * With a non-zero count the type must already be `ty`, else -EINVAL.
/// * A 0→1 transition of a page-table or descriptor type validates the frame
///   (`validate_page`): every entry is checked and takes its references. A failed validation
///   returns its error and leaves the frame untyped (`type_info` = 0).
/// * A saturated count: -EINVAL.
///
/// The caller must hold a general reference on `mfn`.
pub fn get_page_type<E: FrameEnv>(env: &mut E, mfn: Mfn, ty: PageType) -> Result<(), Errno> {
    let Some(pg) = env.page(mfn) else {
        return Err(Errno::EINVAL);
    };
    let (x, owner) = (pg.type_info, pg.owner);
    let mut nx = x.wrapping_add(1);
    if nx & PGT_COUNT_MASK == 0 {
        // Type count overflow.
        return Err(Errno::EINVAL);
    } else if x & PGT_COUNT_MASK == 0 {
        if x & PGT_TYPE_MASK != ty.bits() {
            // On a type change no CPU may keep a mapping of a frame that is about to become
            // writable (or a table) to the guest.
            env.flush_tlb_for_type_change(mfn, owner);
            // We lose the existing type and validity.
            nx &= !(PGT_TYPE_MASK | PGT_VALIDATED);
            nx |= ty.bits();
            // No special validation needed for writable (or shared) pages.
            if matches!(ty, PageType::Writable | PageType::Shared) {
                nx |= PGT_VALIDATED;
            }
        }
    } else if x & PGT_TYPE_MASK != ty.bits() {
        // In use as another type (includes the "could be a recursive mapping" cases Xen does
        // not log: an L2 asked for as L1, L3 as L2, L4 as L3).
        return Err(Errno::EINVAL);
    } else if x & PGT_VALIDATED == 0 {
        // Xen waits here for the CPU validating the frame. Single-threaded, this needs a
        // validation to reach a frame it is itself validating at the level below, which the
        // strict L4 > L3 > L2 > L1 ordering rules out; refuse rather than spin.
        return Err(Errno::EINVAL);
    }

    set_type_info(env, mfn, nx);

    // XSA-402: flush non-coherent (WC) writes before the frame is used as anything but a
    // writable page, so validation sees what the guest wrote.
    if nx & PGT_NON_COHERENT != 0 && ty != PageType::Writable {
        env.flush_cache(mfn);
        update_type_info(env, mfn, |t| t & !PGT_NON_COHERENT);
    }

    if nx & PGT_VALIDATED == 0 {
        if let Some(pg) = env.page_mut(mfn) {
            pg.linear_pt_count = 0;
        }
        match validate_page(env, mfn, ty) {
            Ok(()) => update_type_info(env, mfn, |t| t | PGT_VALIDATED),
            Err(e) => {
                set_type_info(env, mfn, 0);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// `put_page_type`: drops a type reference. The last reference to a page table devalidates
/// it (`_put_final_page_type`), releasing everything its entries hold. Other types keep their
/// type and validity at count zero.
pub fn put_page_type<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    put_page_type_ptpg(env, mfn, None);
}

/// `_put_page_type(page, 0, ptpg)`: as [`put_page_type`], for a reference held by an entry of
/// the table `ptpg`. If `ptpg` has the same type as `mfn` the reference was a linear mapping,
/// and the linear counts of both are dropped too.
pub(crate) fn put_page_type_ptpg<E: FrameEnv>(env: &mut E, mfn: Mfn, ptpg: Option<Mfn>) {
    let Some(pg) = env.page(mfn) else {
        return;
    };
    let x = pg.type_info;
    debug_assert!(
        x & PGT_COUNT_MASK != 0,
        "put_page_type on mfn {mfn:#x} with no type refs"
    );
    if x & PGT_COUNT_MASK == 0 {
        return;
    }
    let linear = ptpg
        .and_then(|p| env.page(p))
        .is_some_and(|p| type_equal(x, p.type_info));
    let nx = x - 1;
    let ty = PageType::from_type_info(x);
    if nx & PGT_COUNT_MASK == 0 && ty.level().is_some() && nx & (PGT_VALIDATED | PGT_PARTIAL) != 0 {
        // Page-table pages must be devalidated when the count reaches zero. Clearing the
        // validated bit first keeps the count at one while the entries are released.
        set_type_info(env, mfn, x & !(PGT_VALIDATED | PGT_PARTIAL));
        devalidate_page(env, mfn, ty);
        if let (true, Some(p)) = (linear && x & PGT_VALIDATED != 0, ptpg) {
            dec_linear_uses(env, mfn);
            dec_linear_entries(env, p);
        }
        update_type_info(
            env,
            mfn,
            |t| if t & PGT_COUNT_MASK != 0 { t - 1 } else { t },
        );
        return;
    }
    set_type_info(env, mfn, nx);
    if let (true, Some(p)) = (linear, ptpg) {
        dec_linear_uses(env, mfn);
        dec_linear_entries(env, p);
    }
}

/// `get_page_and_type`: a general reference (owner must be `dom`) and a type reference; on a
/// type failure the general reference is dropped again. Errors: -EINVAL for the general
/// reference (`get_page_and_type_from_mfn`), else the type's error.
pub fn get_page_and_type<E: FrameEnv>(
    env: &mut E,
    mfn: Mfn,
    dom: DomId,
    ty: PageType,
) -> Result<(), Errno> {
    get_page(env, mfn, dom)?;
    if let Err(e) = get_page_type(env, mfn, ty) {
        put_page(env, mfn);
        return Err(e);
    }
    Ok(())
}

/// `put_page_and_type`.
pub fn put_page_and_type<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    put_page_type(env, mfn);
    put_page(env, mfn);
}

/// `PGT_type_equal`.
pub(crate) const fn type_equal(x: u64, y: u64) -> bool {
    (x ^ y) & PGT_TYPE_MASK == 0
}

/// Increments the type count of an already-validated table without validation: the linear
/// page-table reference of `get_lN_linear_pagetable`. Fails on a saturated count or if the
/// frame is not a validated table of type `ty`.
pub(crate) fn inc_type_validated<E: FrameEnv>(env: &mut E, mfn: Mfn, ty: PageType) -> bool {
    let Some(pg) = env.page_mut(mfn) else {
        return false;
    };
    let x = pg.type_info;
    if x & PGT_COUNT_MASK == PGT_COUNT_MASK
        || x & (PGT_TYPE_MASK | PGT_VALIDATED) != ty.bits() | PGT_VALIDATED
    {
        return false;
    }
    pg.type_info = x + 1;
    true
}

/// `page_lock` without the lock bit: checks the frame is a validated, typed frame and holds
/// an extra type reference for the duration of an in-place update. Pair with
/// [`unlock_page`].
pub(crate) fn lock_page<E: FrameEnv>(env: &mut E, mfn: Mfn) -> bool {
    match env.page_mut(mfn) {
        Some(pg) if pg.lockable() => {
            pg.type_info += 1;
            true
        }
        _ => false,
    }
}

/// `page_unlock`: drops [`lock_page`]'s reference, which is never the last one.
pub(crate) fn unlock_page<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    if let Some(pg) = env.page_mut(mfn) {
        debug_assert!(
            pg.type_count() > 1,
            "page_unlock would drop the last type reference"
        );
        if pg.type_count() > 1 {
            pg.type_info -= 1;
        }
    }
}

/// Sets or clears `PGT_pinned`, returning its previous value (`test_and_set_bit` /
/// `test_and_clear_bit` on `_PGT_pinned`).
pub(crate) fn test_and_set_pinned<E: FrameEnv>(env: &mut E, mfn: Mfn, pinned: bool) -> bool {
    let Some(pg) = env.page_mut(mfn) else {
        return false;
    };
    let was = pg.is_pinned();
    if pinned {
        pg.type_info |= super::page::PGT_PINNED;
    } else {
        pg.type_info &= !super::page::PGT_PINNED;
    }
    was
}

/// Sets `PGT_non_coherent`.
pub(crate) fn set_non_coherent<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    update_type_info(env, mfn, |t| t | PGT_NON_COHERENT);
}

/// `inc_linear_entries`: `ptpg` gains a linear entry; refused if it is itself used as a linear
/// table (negative count) or the count would overflow.
pub(crate) fn inc_linear_entries<E: FrameEnv>(env: &mut E, ptpg: Mfn) -> bool {
    let Some(pg) = env.page_mut(ptpg) else {
        return false;
    };
    let nc = pg.linear_pt_count.wrapping_add(1);
    if nc <= 0 {
        return false;
    }
    pg.linear_pt_count = nc;
    true
}

/// `dec_linear_entries`.
pub(crate) fn dec_linear_entries<E: FrameEnv>(env: &mut E, ptpg: Mfn) {
    if let Some(pg) = env.page_mut(ptpg) {
        debug_assert!(pg.linear_pt_count > 0);
        pg.linear_pt_count = pg.linear_pt_count.wrapping_sub(1);
    }
}

/// `inc_linear_uses`: `mfn` gains a linear use; refused if it has linear entries itself
/// (positive count) or the count would overflow.
pub(crate) fn inc_linear_uses<E: FrameEnv>(env: &mut E, mfn: Mfn) -> bool {
    let Some(pg) = env.page_mut(mfn) else {
        return false;
    };
    let nc = pg.linear_pt_count.wrapping_sub(1);
    if nc >= 0 {
        return false;
    }
    pg.linear_pt_count = nc;
    true
}

/// `dec_linear_uses`.
pub(crate) fn dec_linear_uses<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    if let Some(pg) = env.page_mut(mfn) {
        debug_assert!(pg.linear_pt_count < 0);
        pg.linear_pt_count = pg.linear_pt_count.wrapping_add(1);
    }
}

fn set_type_info<E: FrameEnv>(env: &mut E, mfn: Mfn, val: u64) {
    if let Some(pg) = env.page_mut(mfn) {
        pg.type_info = val;
    }
}

fn update_type_info<E: FrameEnv>(env: &mut E, mfn: Mfn, f: impl FnOnce(u64) -> u64) {
    if let Some(pg) = env.page_mut(mfn) {
        pg.type_info = f(pg.type_info);
    }
}
