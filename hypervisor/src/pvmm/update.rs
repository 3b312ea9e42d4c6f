//! Updating one entry of a validated table: `mod_l1_entry`..`mod_l4_entry`, the
//! `MMU_NORMAL_PT_UPDATE` path of `do_mmu_update` and `__do_update_va_mapping` (Xen 4.17
//! `xen/arch/x86/mm.c`), `update_intpte` (`pv/mm.h`), and the validation half of the
//! writable-page-table emulation `ptwr_emulated_update` (`pv/ro-page-fault.c`).

use super::page::{Level, PageType};
use super::refs::{get_page, get_page_type, lock_page, put_page, put_page_type, unlock_page};
use super::tables::{
    adjust_guest, adjust_guest_l1e, disallow_mask, get_page_from_l1e, get_page_from_lne,
    has_changed, is_guest_l4_slot, put_page_from_l1e, put_page_from_lne,
};
use super::{
    DomId, ENTRIES_PER_TABLE, FrameEnv, MMU_NORMAL_PT_UPDATE, MMU_PT_UPDATE_NO_TRANSLATE,
    MMU_PT_UPDATE_PRESERVE_AD, Mfn,
};
use xen_abi::errno::Errno;
use xenolith_arch::paging::Pte;

const PAGE_PRESENT: u64 = Pte::PRESENT.bits();
const PAGE_AD: u64 = Pte::ACCESSED.bits() | Pte::DIRTY.bits();

/// The domains an update involves (`do_mmu_update`'s `current->domain`, `pt_owner`,
/// `pg_owner`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmuCtx {
    /// The calling domain (`current->domain`). `DOMID_IO` as `pg_owner` reverts to it for
    /// I/O privilege checks.
    pub caller: DomId,
    /// The owner of the page tables being updated (`foreigndom >> 16`, default the caller).
    pub pt_owner: DomId,
    /// The owner of the frames the new entries map (`foreigndom & 0xffff`,
    /// `get_pg_owner`): the caller, or a foreign domain, `DOMID_IO` or `DOMID_XEN` for a
    /// privileged caller. L2..L4 updates require it to equal `pt_owner`.
    pub pg_owner: DomId,
}

impl MmuCtx {
    /// A domain updating its own tables with its own frames.
    pub const fn local(dom: DomId) -> Self {
        MmuCtx {
            caller: dom,
            pt_owner: dom,
            pg_owner: dom,
        }
    }
}

/// `UPDATE_ENTRY` / `update_intpte`: writes `new`; with `preserve_ad` the entry's current
/// Accessed and Dirty bits (set by the hardware since it was read) are ORed in. In this
/// single-threaded model the current value is `old`.
fn update_entry<E: FrameEnv>(
    env: &mut E,
    table: Mfn,
    index: usize,
    old: u64,
    new: u64,
    preserve_ad: bool,
) {
    let new = if preserve_ad {
        new | (old & PAGE_AD)
    } else {
        new
    };
    env.write_entry(table, index, new);
}

/// `mod_l1_entry`: replaces entry `index` of the L1 `table` (owned by `ctx.pt_owner`).
///
/// A present new entry must pass the L1 disallow mask (-EINVAL). If it differs from the old
/// one only in [`FASTPATH_FLAG_WHITELIST`](super::FASTPATH_FLAG_WHITELIST) bits it is written
/// without touching any reference; otherwise it must pass `get_page_from_l1e` (its errors),
/// is flipped and adjusted, written, and then the old entry's references are released.
fn mod_l1_entry<E: FrameEnv>(
    env: &mut E,
    ctx: MmuCtx,
    table: Mfn,
    index: usize,
    nl1e: u64,
    preserve_ad: bool,
) -> Result<(), Errno> {
    let ol1e = env.read_entry(table, index);
    let pt_dom = ctx.pt_owner;
    if nl1e & PAGE_PRESENT != 0 {
        if nl1e & disallow_mask(env, Level::L1, pt_dom) != 0 {
            return Err(Errno::EINVAL);
        }
        // Fast path for sufficiently-similar mappings.
        if !has_changed(ol1e, nl1e) {
            update_entry(env, table, index, ol1e, adjust_guest_l1e(nl1e), preserve_ad);
            return Ok(());
        }
        let flip = get_page_from_l1e(env, nl1e, pt_dom, ctx.pg_owner, ctx.caller)?;
        update_entry(
            env,
            table,
            index,
            ol1e,
            adjust_guest_l1e(nl1e ^ flip),
            preserve_ad,
        );
    } else {
        update_entry(env, table, index, ol1e, nl1e, preserve_ad);
    }
    put_page_from_l1e(env, ol1e, pt_dom);
    Ok(())
}

/// `mod_l2_entry` / `mod_l3_entry` / `mod_l4_entry`: as [`mod_l1_entry`] with
/// `get_page_from_lNe`, for the table's owner `d`. L4 slots 256..=271 belong to the
/// hypervisor: -EINVAL. The old entry's references are released after the write (Xen defers
/// that to `put_old_guest_table`).
fn mod_lne<E: FrameEnv>(
    env: &mut E,
    d: DomId,
    table: Mfn,
    index: usize,
    ne: u64,
    level: Level,
    preserve_ad: bool,
) -> Result<(), Errno> {
    if level == Level::L4 && !is_guest_l4_slot(index) {
        // L4 update in Xen-private area.
        return Err(Errno::EINVAL);
    }
    let oe = env.read_entry(table, index);
    if ne & PAGE_PRESENT != 0 {
        if ne & disallow_mask(env, level, d) != 0 {
            return Err(Errno::EINVAL);
        }
        // Fast path for sufficiently-similar mappings.
        if !has_changed(oe, ne) {
            update_entry(env, table, index, oe, adjust_guest(level, ne), preserve_ad);
            return Ok(());
        }
        get_page_from_lne(env, ne, table, d, level)?;
        update_entry(env, table, index, oe, adjust_guest(level, ne), preserve_ad);
    } else {
        update_entry(env, table, index, oe, ne, preserve_ad);
    }
    put_page_from_lne(env, oe, table);
    Ok(())
}

/// Updates entry `index` of the validated `level` table `table`, as `do_mmu_update` does for
/// a table of that type: the table must be `ctx.pt_owner`'s (-EINVAL), validated and in use
/// as a `level` table (-EINVAL), `index` < 512 (-EINVAL), and for L2..L4 `ctx.pg_owner` must
/// be `ctx.pt_owner` (-EINVAL). Then `mod_lN_entry`.
pub fn mod_entry<E: FrameEnv>(
    env: &mut E,
    ctx: MmuCtx,
    table: Mfn,
    index: usize,
    val: u64,
    level: Level,
    preserve_ad: bool,
) -> Result<(), Errno> {
    if index >= ENTRIES_PER_TABLE {
        return Err(Errno::EINVAL);
    }
    get_page(env, table, ctx.pt_owner)?;
    let mut rc = Err(Errno::EINVAL);
    if env
        .page(table)
        .is_some_and(|p| p.page_type() == level.page_type())
        && lock_page(env, table)
    {
        rc = mod_locked(env, ctx, table, index, val, level, preserve_ad);
        unlock_page(env, table);
    }
    put_page(env, table);
    rc
}

/// The type dispatch of `do_mmu_update` under `page_lock`.
fn mod_locked<E: FrameEnv>(
    env: &mut E,
    ctx: MmuCtx,
    table: Mfn,
    index: usize,
    val: u64,
    level: Level,
    preserve_ad: bool,
) -> Result<(), Errno> {
    match level {
        Level::L1 => mod_l1_entry(env, ctx, table, index, val, preserve_ad),
        _ if ctx.pg_owner != ctx.pt_owner => Err(Errno::EINVAL),
        _ => mod_lne(env, ctx.pt_owner, table, index, val, level, preserve_ad),
    }
}

/// One `mmu_update` request of the page-table kinds: `ptr` is the machine address of the
/// 8-byte entry with the command in its low 3 bits (`MMU_NORMAL_PT_UPDATE`,
/// `MMU_PT_UPDATE_PRESERVE_AD`, `MMU_PT_UPDATE_NO_TRANSLATE`), `val` the new entry.
///
/// The frame must be `ctx.pt_owner`'s (-EINVAL). If it is a validated L1..L4 table the entry
/// is updated by `mod_lN_entry` (L2..L4 only with `pg_owner == pt_owner`, else -EINVAL); a
/// frame with writable mappings, or one with no type in use, is written directly (taking a
/// transient writable type reference); anything else (a descriptor page, a table in use as
/// another type) is -EINVAL. Other commands (`MMU_MACHPHYS_UPDATE` is not handled here):
/// -ENOSYS.
pub fn mmu_pt_update<E: FrameEnv>(
    env: &mut E,
    ctx: MmuCtx,
    ptr: u64,
    val: u64,
) -> Result<(), Errno> {
    let cmd = ptr & 7;
    if !matches!(
        cmd,
        MMU_NORMAL_PT_UPDATE | MMU_PT_UPDATE_PRESERVE_AD | MMU_PT_UPDATE_NO_TRANSLATE
    ) {
        return Err(Errno::ENOSYS);
    }
    let preserve_ad = cmd == MMU_PT_UPDATE_PRESERVE_AD;
    let ptr = ptr - cmd;
    let mfn = ptr >> 12;
    let index = ((ptr & 0xfff) / 8) as usize;

    get_page(env, mfn, ctx.pt_owner)?;
    let mut rc = Err(Errno::EINVAL);
    if lock_page(env, mfn) {
        let ty = env.page(mfn).map_or(PageType::None, |p| p.page_type());
        rc = match ty {
            PageType::L1 | PageType::L2 | PageType::L3 | PageType::L4 => {
                let level = ty.level().unwrap_or(Level::L1);
                mod_locked(env, ctx, mfn, index, val, level, preserve_ad)
            }
            PageType::Writable => {
                env.write_entry(mfn, index, val);
                Ok(())
            }
            PageType::None | PageType::SegDesc | PageType::Shared => Err(Errno::EINVAL),
        };
        unlock_page(env, mfn);
    } else if get_page_type(env, mfn, PageType::Writable).is_ok() {
        env.write_entry(mfn, index, val);
        put_page_type(env, mfn);
        rc = Ok(());
    }
    put_page(env, mfn);
    rc
}

/// The table-update half of `__do_update_va_mapping`: the caller has walked the guest's
/// tables to the L1 `l1` mapping the virtual address and the entry `index` in it (Xen's
/// `map_guest_l1e`). The L1 must be `ctx.caller`'s and in use as a validated L1 (-EINVAL);
/// then `mod_l1_entry` with `pt_owner` = the caller and `ctx.pg_owner`
/// (`update_va_mapping_otherdomain`). The TLB flush is the caller's.
pub fn update_va_mapping_l1<E: FrameEnv>(
    env: &mut E,
    ctx: MmuCtx,
    l1: Mfn,
    index: usize,
    val: u64,
) -> Result<(), Errno> {
    let ctx = MmuCtx {
        pt_owner: ctx.caller,
        ..ctx
    };
    if index >= ENTRIES_PER_TABLE {
        return Err(Errno::EINVAL);
    }
    get_page(env, l1, ctx.caller)?;
    let mut rc = Err(Errno::EINVAL);
    if lock_page(env, l1) {
        if env.page(l1).is_some_and(|p| p.page_type() == PageType::L1) {
            rc = mod_l1_entry(env, ctx, l1, index, val, false);
        }
        unlock_page(env, l1);
    }
    put_page(env, l1);
    rc
}

/// The outcome of an emulated write to a read-only-mapped L1 ([`ptwr_emulated_update`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ptwr {
    /// The entry was validated and written (`X86EMUL_OKAY`).
    Okay,
    /// A `cmpxchg` found another value; the emulated instruction sees `current` (shifted to
    /// the access's width) as the old value (`X86EMUL_CMPXCHG_FAILED`).
    CmpxchgFailed {
        /// The value found, as the guest's sub-word access sees it.
        current: u64,
    },
    /// Not a write Xen emulates, or the new entry is invalid: the guest gets its page fault
    /// (`X86EMUL_UNHANDLEABLE`).
    Unhandleable,
}

/// `ptwr_emulated_update` with `ptwr_do_page_fault`'s checks: a guest `dom` wrote `bytes`
/// (1, 2, 4 or 8, naturally aligned) of `val` at byte `offset` of its L1 table `l1`, through a
/// read-only mapping; with `old` it was a `cmpxchg` expecting `old`.
///
/// The L1 must be `dom`'s and a validated L1 table. Sub-word writes are merged with the
/// current entry. A present new entry must pass `get_page_from_l1e` (no fast path, unlike
/// [`mod_entry`]); it is flipped and adjusted, written (if a `cmpxchg`, only if the entry
/// still holds `old`, else the new entry's references are dropped again), and the old entry's
/// references are released.
pub fn ptwr_emulated_update<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    l1: Mfn,
    offset: usize,
    val: u64,
    bytes: usize,
    old: Option<u64>,
) -> Ptwr {
    if bytes == 0
        || bytes > 8
        || !bytes.is_power_of_two()
        || !offset.is_multiple_of(bytes)
        || offset >= 4096
    {
        return Ptwr::Unhandleable;
    }
    if get_page(env, l1, dom).is_err() {
        return Ptwr::Unhandleable;
    }
    let mut rc = Ptwr::Unhandleable;
    if lock_page(env, l1) {
        if env.page(l1).is_some_and(|p| p.page_type() == PageType::L1) {
            rc = ptwr_locked(env, dom, l1, offset, val, bytes, old);
        }
        unlock_page(env, l1);
    }
    put_page(env, l1);
    rc
}

fn ptwr_locked<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    l1: Mfn,
    offset: usize,
    val: u64,
    bytes: usize,
    old: Option<u64>,
) -> Ptwr {
    let index = offset / 8;
    let mut val = val;
    let mut old_full = old.unwrap_or(0);
    let mut shift = 0;
    let width_mask = if bytes == 8 {
        u64::MAX
    } else {
        (1u64 << (bytes * 8)) - 1
    };
    // Turn a sub-word access into a full-word access.
    if bytes != 8 {
        shift = (offset % 8) * 8;
        let full = env.read_entry(l1, index) & !(width_mask << shift);
        val = ((val & width_mask) << shift) | full;
        old_full = ((old_full & width_mask) << shift) | full;
    }

    let mut nl1e = val;
    if nl1e & PAGE_PRESENT != 0 {
        match get_page_from_l1e(env, nl1e, dom, dom, dom) {
            Ok(flip) => nl1e ^= flip,
            // (The 32-bit PAE upper-half fix-up does not apply to 64-bit guests.)
            Err(_) => return Ptwr::Unhandleable,
        }
    }
    let nl1e = adjust_guest_l1e(nl1e);

    let current = env.read_entry(l1, index);
    if old.is_some() && current != old_full {
        put_page_from_l1e(env, nl1e, dom);
        return Ptwr::CmpxchgFailed {
            current: (current >> shift) & width_mask,
        };
    }
    env.write_entry(l1, index, nl1e);
    put_page_from_l1e(env, current, dom);
    Ptwr::Okay
}
