//! `mmuext_op` operations on the type system: pinning and base pointers (Xen 4.17
//! `xen/arch/x86/mm.c`: `do_mmuext_op`'s `MMUEXT_PIN_Ln_TABLE`, `MMUEXT_UNPIN_TABLE`,
//! `MMUEXT_NEW_BASEPTR`, `MMUEXT_NEW_USER_BASEPTR`; `new_guest_cr3`, `fill_ro_mpt`,
//! `zap_ro_mpt`, `vcpu_destroy_pagetables`).

use super::page::{Level, PageType};
use super::refs::{
    get_page, get_page_and_type, get_page_type, put_page, put_page_and_type, test_and_set_pinned,
};
use super::{DomId, FrameEnv, Mfn, RO_MPT_SLOT};
use xen_abi::errno::Errno;

/// `MMUEXT_PIN_Ln_TABLE`: pins `mfn`, a frame of `pg_owner`, as a `level` table. The pin
/// holds a general and a type reference, so the table stays validated while unused.
///
/// -EINVAL if the frame is not `pg_owner`'s or already pinned; the type's error (-EINVAL for
/// a frame in use as another type, or the validation error) otherwise.
pub fn pin_table<E: FrameEnv>(
    env: &mut E,
    pg_owner: DomId,
    mfn: Mfn,
    level: Level,
) -> Result<(), Errno> {
    get_page(env, mfn, pg_owner)?;
    if let Err(e) = get_page_type(env, mfn, level.page_type()) {
        put_page(env, mfn);
        return Err(e);
    }
    if test_and_set_pinned(env, mfn, true) {
        // Already pinned: pin_drop.
        put_page_and_type(env, mfn);
        return Err(Errno::EINVAL);
    }
    Ok(())
}

/// `MMUEXT_UNPIN_TABLE`: drops a pin; the last type reference of a table devalidates it.
/// -EINVAL if the frame is not `pg_owner`'s or not pinned.
pub fn unpin_table<E: FrameEnv>(env: &mut E, pg_owner: DomId, mfn: Mfn) -> Result<(), Errno> {
    get_page(env, mfn, pg_owner)?;
    if !test_and_set_pinned(env, mfn, false) {
        put_page(env, mfn);
        return Err(Errno::EINVAL);
    }
    put_page_and_type(env, mfn);
    put_page(env, mfn);
    Ok(())
}

/// `MMUEXT_NEW_BASEPTR` (`new_guest_cr3`): makes `mfn` the kernel page table of a vCPU of
/// `currd`, whose current one is `*guest_table` (0 = none). The new table takes a general
/// and an L4 type reference (validating it if need be), the old one's are dropped.
///
/// -EPERM if `pg_owner` (the `foreigndom` argument) is not `currd`; -EINVAL if `mfn` is not
/// `currd`'s; the L4 type's error. Re-installing the current table only reloads it. Unless
/// the guest uses `m2p_strict`, the read-only M2P is filled into the new table
/// (`fill_ro_mpt`). The caller loads CR3.
pub fn new_baseptr<E: FrameEnv>(
    env: &mut E,
    currd: DomId,
    pg_owner: DomId,
    guest_table: &mut Mfn,
    mfn: Mfn,
) -> Result<(), Errno> {
    if currd != pg_owner {
        return Err(Errno::EPERM);
    }
    let old = *guest_table;
    if old == mfn {
        return Ok(());
    }
    get_page_and_type(env, mfn, currd, PageType::L4)?;
    if !env.policy(currd).m2p_strict && env.read_entry(mfn, RO_MPT_SLOT) == 0 {
        // fill_ro_mpt()
        let e = env.xen_l4_slot(mfn, currd, RO_MPT_SLOT, true);
        env.write_entry(mfn, RO_MPT_SLOT, e);
    }
    *guest_table = mfn;
    if old != 0 {
        put_page_and_type(env, old);
    }
    Ok(())
}

/// `MMUEXT_NEW_USER_BASEPTR`: as [`new_baseptr`] for the vCPU's user-mode page table
/// `*user_table`, which may also be cleared with `mfn` 0. With `m2p_strict` the read-only M2P
/// is removed from the new table (`zap_ro_mpt`).
pub fn new_user_baseptr<E: FrameEnv>(
    env: &mut E,
    currd: DomId,
    pg_owner: DomId,
    user_table: &mut Mfn,
    mfn: Mfn,
) -> Result<(), Errno> {
    if currd != pg_owner {
        return Err(Errno::EPERM);
    }
    let old = *user_table;
    if old == mfn {
        return Ok(());
    }
    if mfn != 0 {
        get_page_and_type(env, mfn, currd, PageType::L4)?;
        if env.policy(currd).m2p_strict {
            env.write_entry(mfn, RO_MPT_SLOT, 0);
        }
    }
    *user_table = mfn;
    if old != 0 {
        put_page_and_type(env, old);
    }
    Ok(())
}

/// Drops a base pointer's references and clears it (`vcpu_destroy_pagetables`, for each of
/// `guest_table` and `guest_table_user`).
pub fn release_baseptr<E: FrameEnv>(env: &mut E, table: &mut Mfn) {
    let mfn = core::mem::take(table);
    if mfn != 0 {
        put_page_and_type(env, mfn);
    }
}
