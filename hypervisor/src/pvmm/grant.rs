//! The page-table half of PV grant mappings (Xen 4.17 `xen/arch/x86/pv/grant_table.c`:
//! `create_grant_pv_mapping`, `replace_grant_pv_mapping`, `steal_linear_address`; and the
//! `map_guest_l1e` walk they use), plus the release of grant mappings when a dying domain's
//! memory is given back.
//!
//! A grant host mapping is one L1 entry of the mapping domain, written by the hypervisor with
//! `_PAGE_GNTTAB` set (guests can never write that bit themselves: it is in the L1 disallow
//! mask). The references behind the entry (a general one, plus a writable type one for a
//! writable mapping) are taken by the grant-table code (`gnttab::ops::map`) before the entry
//! is written, so [`write_grant_l1e`] takes none; once written, the entry owns them like any
//! other L1 entry: unpinning or devalidating the table, or the guest overwriting the entry,
//! drops them through `put_page_from_l1e` as usual. [`replace_grant_l1e`] (unmap) clears the
//! entry without dropping anything: the grant code drops the references itself, after the
//! TLB flush.
//!
//! Every function here runs under the PV-MMU lock (the `FrameEnv` the caller holds) and, like
//! Xen, locks the L1 frame (`page_lock`: it must be a validated L1 of the domain) for the
//! duration of the update.

use super::page::PageType;
use super::refs::{get_page, lock_page, put_page, unlock_page};
use super::tables::{adjust_guest_l1e, entry_mfn, put_page_from_l1e};
use super::{DomId, ENTRIES_PER_TABLE, FrameEnv, Mfn};
use xen_abi::errno::Errno;
use xenolith_arch::paging::Pte;

const PAGE_PRESENT: u64 = Pte::PRESENT.bits();
const PAGE_PSE: u64 = 1 << 7;

/// One L1 entry: the table's frame and the entry's index in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct L1Slot {
    /// The L1 table.
    pub table: Mfn,
    /// Entry index, 0..512.
    pub index: usize,
}

impl L1Slot {
    /// The entry at machine address `maddr` (`GNTMAP_contains_pte`), if 8-byte aligned.
    pub const fn from_maddr(maddr: u64) -> Option<Self> {
        if !maddr.is_multiple_of(8) {
            return None;
        }
        Some(L1Slot {
            table: maddr >> 12,
            index: ((maddr & 0xfff) / 8) as usize,
        })
    }
}

/// `map_guest_l1e`: the L1 entry mapping linear address `va` in the address space whose L4 is
/// `l4` (the calling vCPU's current one), found by walking the tables. `None` if a level is
/// not present or maps a superpage. (The caller checks that `va` is a guest address.)
pub fn find_l1e<E: FrameEnv>(env: &E, l4: Mfn, va: u64) -> Option<L1Slot> {
    if l4 == 0 || env.page(l4).is_none() {
        return None;
    }
    let mut table = l4;
    for level in (2..=4u32).rev() {
        let e = env.read_entry(table, ((va >> (12 + 9 * (level - 1))) & 511) as usize);
        if e & PAGE_PRESENT == 0 || (level < 4 && e & PAGE_PSE != 0) {
            return None;
        }
        table = entry_mfn(e);
        env.page(table)?;
    }
    Some(L1Slot {
        table,
        index: ((va >> 12) & 511) as usize,
    })
}

/// Runs `f` on `slot` with the L1 locked: the frame must be `dom`'s (`get_page_from_mfn`) and
/// a validated L1 table (`page_lock` and the `PGT_l1_page_table` check), else -EINVAL.
fn with_locked_l1<E: FrameEnv, R>(
    env: &mut E,
    dom: DomId,
    slot: L1Slot,
    f: impl FnOnce(&mut E) -> Result<R, Errno>,
) -> Result<R, Errno> {
    if slot.index >= ENTRIES_PER_TABLE {
        return Err(Errno::EINVAL);
    }
    get_page(env, slot.table, dom)?;
    let mut rc = Err(Errno::EINVAL);
    if lock_page(env, slot.table) {
        if env
            .page(slot.table)
            .is_some_and(|p| p.page_type() == PageType::L1)
        {
            rc = f(env);
        }
        unlock_page(env, slot.table);
    }
    put_page(env, slot.table);
    rc
}

/// `create_grant_pv_mapping`'s update: writes the grant entry `nl1e` (a present
/// `gnttab::pte::grant_pte`, adjusted here with `adjust_guest_l1e`) into `slot` of `dom`'s
/// page tables, and returns the entry it replaced. The references `nl1e` holds were taken by
/// the caller and are not taken again. The replaced entry still holds its references: the
/// caller releases it with [`release_l1e`] (after a TLB flush if it was present).
///
/// -EINVAL (the caller's `GNTST_general_error`) if `slot` is not in a validated L1 table of
/// `dom`.
pub fn write_grant_l1e<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    slot: L1Slot,
    nl1e: u64,
) -> Result<u64, Errno> {
    let nl1e = adjust_guest_l1e(nl1e);
    with_locked_l1(env, dom, slot, |env| {
        let ol1e = env.read_entry(slot.table, slot.index);
        env.write_entry(slot.table, slot.index, nl1e);
        Ok(ol1e)
    })
}

/// `put_page_from_l1e`: releases what a removed L1 entry of `dom`'s held.
pub fn release_l1e<E: FrameEnv>(env: &mut E, l1e: u64, dom: DomId) {
    put_page_from_l1e(env, l1e, dom);
}

/// `replace_grant_pv_mapping`'s update: if the entry at `slot` satisfies `matches` (it is the
/// grant mapping being removed), replaces it with `new` (0, or an entry moved here by
/// [`steal_l1e`]) without dropping or taking any reference, and returns the removed entry.
///
/// -EINVAL if `slot` is not in a validated L1 table of `dom`; -ENOENT if the entry does not
/// match (nothing changes).
pub fn replace_grant_l1e<E: FrameEnv>(
    env: &mut E,
    dom: DomId,
    slot: L1Slot,
    new: u64,
    matches: impl FnOnce(u64) -> bool,
) -> Result<u64, Errno> {
    with_locked_l1(env, dom, slot, |env| {
        let ol1e = env.read_entry(slot.table, slot.index);
        if !matches(ol1e) {
            return Err(Errno::ENOENT);
        }
        env.write_entry(slot.table, slot.index, new);
        Ok(ol1e)
    })
}

/// `steal_linear_address`: clears the entry at `slot` of `dom`'s page tables and returns what
/// it held; its references move with the value (the caller writes it elsewhere with
/// [`replace_grant_l1e`]). -EINVAL if `slot` is not in a validated L1 table of `dom`.
pub fn steal_l1e<E: FrameEnv>(env: &mut E, dom: DomId, slot: L1Slot) -> Result<u64, Errno> {
    with_locked_l1(env, dom, slot, |env| {
        let ol1e = env.read_entry(slot.table, slot.index);
        env.write_entry(slot.table, slot.index, 0);
        Ok(ol1e)
    })
}

/// Puts back an entry [`steal_l1e`] took, when the replacement it was meant for failed.
pub fn unsteal_l1e<E: FrameEnv>(env: &mut E, dom: DomId, slot: L1Slot, val: u64) {
    let _ = with_locked_l1(env, dom, slot, |env| {
        env.write_entry(slot.table, slot.index, val);
        Ok(())
    });
}

/// For a dying domain whose memory is freed wholesale: if `l1` is a validated L1 table of
/// `dom`, drops the references of every present entry mapping a frame `dom` does not own (its
/// grant mappings of other domains' frames: the only foreign frames a domain's L1 entries can
/// hold) as `put_page_from_l1e` does, and clears those entries. Returns how many there were.
///
/// Frames of `dom` itself need nothing: they are freed together, whatever their counts.
pub fn release_foreign_l1es<E: FrameEnv>(env: &mut E, dom: DomId, l1: Mfn) -> usize {
    let Some(p) = env.page(l1) else {
        return 0;
    };
    if p.owner != dom || p.page_type() != PageType::L1 || !p.is_validated() || p.type_count() == 0 {
        return 0;
    }
    let mut n = 0;
    for i in 0..ENTRIES_PER_TABLE {
        let e = env.read_entry(l1, i);
        if e & PAGE_PRESENT == 0 {
            continue;
        }
        let target = entry_mfn(e);
        if env.page(target).is_none_or(|t| t.owner == dom) {
            continue;
        }
        put_page_from_l1e(env, e, dom);
        env.write_entry(l1, i, 0);
        n += 1;
    }
    n
}

/// `page_get_owner_and_reference`: takes a general reference on `mfn` and returns its owner,
/// or takes nothing (`None`) if the frame has no frame-table entry, is not allocated, or its
/// count cannot grow.
pub fn get_page_owner_and_reference<E: FrameEnv>(env: &mut E, mfn: Mfn) -> Option<DomId> {
    super::refs::page_get_owner_and_reference(env, mfn)
}
