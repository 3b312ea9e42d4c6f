//! The rules for page-table entries and the (de)validation of whole tables, from Xen 4.17's
//! `xen/arch/x86/mm.c` (`get_page_from_l1e`..`l4e`, `put_page_from_l1e`..`l4e`,
//! `get_lN_linear_pagetable`, `promote_lN_table`, `demote_lN_table`, `init_xen_l4_slots`,
//! `validate_page`, `devalidate_page`) and `xen/arch/x86/pv/mm.h` (`adjust_guest_lNe`).

use super::desc::check_descriptor;
use super::env::MmioRelax;
use super::page::{Level, PageType};
use super::refs::{
    dec_linear_entries, dec_linear_uses, get_page, get_page_and_type, get_page_type,
    inc_linear_entries, inc_linear_uses, inc_type_validated, page_get_owner_and_reference,
    put_page, put_page_type, put_page_type_ptpg, set_non_coherent,
};
use super::{
    DOMID_COW, DOMID_IO, DomId, ENTRIES_PER_TABLE, FrameEnv, Mfn, ROOT_PAGETABLE_FIRST_XEN_SLOT,
    ROOT_PAGETABLE_LAST_XEN_SLOT,
};
use xen_abi::errno::Errno;
use xenolith_arch::paging::{ADDR_MASK, Pte};

const PAGE_PRESENT: u64 = Pte::PRESENT.bits();
const PAGE_RW: u64 = Pte::RW.bits();
const PAGE_USER: u64 = Pte::USER.bits();
const PAGE_PWT: u64 = Pte::PWT.bits();
const PAGE_PCD: u64 = Pte::PCD.bits();
const PAGE_ACCESSED: u64 = Pte::ACCESSED.bits();
const PAGE_DIRTY: u64 = Pte::DIRTY.bits();
const PAGE_GLOBAL: u64 = Pte::GLOBAL.bits();
const PAGE_NX: u64 = Pte::NX.bits();

/// `_PAGE_AVAIL`: the three software bits 9-11.
pub const PAGE_AVAIL: u64 = 0xE00;
/// `_PAGE_AVAIL_HIGH`: the software bits 52-62.
pub const PAGE_AVAIL_HIGH: u64 = 0x7FF << 52;
/// `_PAGE_GNTTAB`: bit 62, marks grant mappings; guests may not set it in L1 entries.
pub const PAGE_GNTTAB: u64 = 1 << 62;
/// `_PAGE_GUEST_KERNEL`: bit 52, set by Xen on 64-bit PV *kernel* mappings (which need
/// `_PAGE_USER` since the guest kernel runs in ring 3) to tell them from user mappings.
pub const PAGE_GUEST_KERNEL: u64 = 1 << 52;
/// `_PAGE_PAT`: bit 7 of an L1 entry (PSE in L2/L3).
pub const PAGE_PAT: u64 = 1 << 7;
/// `PAGE_CACHE_ATTRS`: the memory-type bits of an L1 entry.
pub const PAGE_CACHE_ATTRS: u64 = PAGE_PAT | PAGE_PCD | PAGE_PWT;
/// `_PAGE_WC`: with Xen's PAT (`0x050100070406`), PAT index 4 = write-combining.
pub const PAGE_WC: u64 = PAGE_PAT;

/// `base_disallow_mask` (`arch_init_memory`): everything but PRESENT, RW, USER, ACCESSED,
/// DIRTY, the software bits and NX, i.e. PWT, PCD, PSE/PAT and GLOBAL (0x198). The address
/// bits are not flags.
pub const BASE_DISALLOW_MASK: u64 = !(PAGE_PRESENT
    | PAGE_RW
    | PAGE_USER
    | PAGE_ACCESSED
    | PAGE_DIRTY
    | PAGE_AVAIL
    | PAGE_AVAIL_HIGH
    | PAGE_NX
    | ADDR_MASK);

/// `L1_DISALLOW_MASK`: as the base mask plus `_PAGE_GNTTAB`, but GLOBAL is allowed (for user
/// mappings). Domains with I/O resources may also use the cache attributes
/// ([`l1_disallow_mask`]). `L2_DISALLOW_MASK`, `l3_disallow_mask` (64-bit) and
/// `L4_DISALLOW_MASK` are [`BASE_DISALLOW_MASK`]: no superpages, no cache attributes, no
/// global bit above L1.
pub const L1_DISALLOW_MASK: u64 = (BASE_DISALLOW_MASK | PAGE_GNTTAB) & !PAGE_GLOBAL;

/// `FASTPATH_FLAG_WHITELIST`: flags a guest may change in an existing entry without the entry
/// being revalidated (`mod_lN_entry`'s fast path). All other bits affect translation, caching
/// or Xen's safety.
pub const FASTPATH_FLAG_WHITELIST: u64 =
    PAGE_NX | PAGE_AVAIL_HIGH | PAGE_AVAIL | PAGE_GLOBAL | PAGE_DIRTY | PAGE_ACCESSED | PAGE_USER;

/// `PADDR_MASK >> PAGE_SHIFT`: the MFN of an all-ones address field, i.e. `INVALID_MFN` as a
/// PTE can hold it. Mapping it fails with -EINVAL rather than -EPERM.
const INVALID_PTE_MFN: Mfn = ADDR_MASK >> 12;

/// The MFN an entry points to (`lNe_get_pfn`).
pub const fn entry_mfn(e: u64) -> Mfn {
    (e & ADDR_MASK) >> 12
}

const fn present(e: u64) -> bool {
    e & PAGE_PRESENT != 0
}

/// `is_guest_l4_slot` for 64-bit PV: every slot outside the hypervisor's 256..=271. (Slots
/// 272-511 are the guest's too: Linux's direct map and kernel image live there.)
pub const fn is_guest_l4_slot(slot: usize) -> bool {
    slot < ROOT_PAGETABLE_FIRST_XEN_SLOT || slot > ROOT_PAGETABLE_LAST_XEN_SLOT
}

/// `l1_disallow_mask(d)`: [`L1_DISALLOW_MASK`], minus the cache attributes for `DOMID_IO`
/// and for domains with I/O resources (which may need UC/WC mappings).
pub fn l1_disallow_mask<E: FrameEnv>(env: &E, d: DomId) -> u64 {
    if d != DOMID_IO && !env.policy(d).has_io_resources {
        L1_DISALLOW_MASK
    } else {
        L1_DISALLOW_MASK & !PAGE_CACHE_ATTRS
    }
}

/// The disallow mask for entries of a table at `level` owned by `d`.
pub(crate) fn disallow_mask<E: FrameEnv>(env: &E, level: Level, d: DomId) -> u64 {
    match level {
        Level::L1 => l1_disallow_mask(env, d),
        Level::L2 | Level::L3 | Level::L4 => BASE_DISALLOW_MASK,
    }
}

/// `adjust_guest_l1e` (64-bit PV): the guest kernel runs in ring 3, so a kernel mapping
/// (USER clear) gets USER and `_PAGE_GUEST_KERNEL`; a mapping without `_PAGE_GUEST_KERNEL`
/// (a user mapping) gets GLOBAL and USER. Not-present entries are left alone.
pub const fn adjust_guest_l1e(e: u64) -> u64 {
    if !present(e) {
        return e;
    }
    let mut e = e;
    if e & PAGE_USER == 0 {
        e |= PAGE_GUEST_KERNEL | PAGE_USER;
    }
    if e & PAGE_GUEST_KERNEL == 0 {
        e |= PAGE_GLOBAL | PAGE_USER;
    }
    e
}

/// `adjust_guest_l2e` (64-bit PV): present entries get USER.
pub const fn adjust_guest_l2e(e: u64) -> u64 {
    if present(e) { e | PAGE_USER } else { e }
}

/// `adjust_guest_l3e` (64-bit PV): present entries get USER.
pub const fn adjust_guest_l3e(e: u64) -> u64 {
    if present(e) { e | PAGE_USER } else { e }
}

/// `adjust_guest_l4e` (64-bit PV): present entries get ACCESSED (Xen may shadow L4s behind
/// the guest's back and cannot sync A bits back) and USER.
pub const fn adjust_guest_l4e(e: u64) -> u64 {
    if present(e) {
        e | PAGE_ACCESSED | PAGE_USER
    } else {
        e
    }
}

/// `adjust_guest_lNe` for `level`.
pub(crate) const fn adjust_guest(level: Level, e: u64) -> u64 {
    match level {
        Level::L1 => adjust_guest_l1e(e),
        Level::L2 => adjust_guest_l2e(e),
        Level::L3 => adjust_guest_l3e(e),
        Level::L4 => adjust_guest_l4e(e),
    }
}

/// `lNe_has_changed(o, n, ~FASTPATH_FLAG_WHITELIST)`: the address or a flag outside the
/// whitelist differs.
pub(crate) const fn has_changed(o: u64, n: u64) -> bool {
    (o ^ n) & !FASTPATH_FLAG_WHITELIST != 0
}

/// `get_page_from_l1e(l1e, l1e_owner, pg_owner)`: checks a present L1 entry and takes its
/// references. `curr` is the calling domain (`current->domain`), which `DOMID_IO` as
/// `pg_owner` reverts to for the I/O privilege check.
///
/// Returns the flags to flip in the entry (`_PAGE_RW` to force an `mmio_ro_ranges` mapping
/// read-only, and cache bits to force MMIO to UC), 0 for none. Rules, in order:
///
/// 1. Flags in [`l1_disallow_mask`] of `l1e_owner`: -EINVAL.
/// 2. A frame without frame-table entry, or owned by `DOMID_IO`, is MMIO: no references; the
///    page owner (and `l1e_owner` if different) needs `iomem` permission, else -EPERM
///    (-EINVAL for `INVALID_MFN`).
/// 3. Otherwise a general reference must be possible and the frame must belong to `pg_owner`
///    — or to a domain `pg_owner` may map for `l1e_owner` (`xsm_priv_mapping`), or to
///    `DOMID_COW` read-only — else -EBUSY (`could_not_pin`). This refuses other domains'
///    frames and hypervisor frames.
/// 4. A writable mapping takes a `PGT_writable_page` type reference, which a page-table or
///    descriptor frame cannot give: -EBUSY.
/// 5. A non-WB memory type on a Xen-heap frame: -EACCES.
pub(crate) fn get_page_from_l1e<E: FrameEnv>(
    env: &mut E,
    l1e: u64,
    l1e_owner: DomId,
    pg_owner: DomId,
    curr: DomId,
) -> Result<u64, Errno> {
    if !present(l1e) {
        return Ok(0);
    }
    if l1e & l1_disallow_mask(env, l1e_owner) != 0 {
        return Err(Errno::EINVAL);
    }

    let mfn = entry_mfn(l1e);
    let valid = env.page(mfn).is_some();
    let real_pg_owner = if valid {
        page_get_owner_and_reference(env, mfn)
    } else {
        None
    };

    if !valid || real_pg_owner == Some(DOMID_IO) {
        // Only needed the reference to confirm dom_io ownership.
        if valid {
            put_page(env, mfn);
        }
        return mmio_l1e(env, l1e, mfn, l1e_owner, pg_owner, curr);
    }

    let Some(real) = real_pg_owner else {
        // Not allocated (free or hypervisor-private): could_not_pin, no reference taken.
        return Err(Errno::EBUSY);
    };

    let mut pg_owner = pg_owner;
    if real != pg_owner && real != DOMID_COW {
        // Let privileged domains transfer the right to map their target domain's pages.
        if pg_owner == l1e_owner || !env.priv_mapping_allowed(pg_owner, real) {
            put_page(env, mfn);
            return Err(Errno::EBUSY);
        }
        pg_owner = real;
    }

    // Shared (copy-on-write) memory: writable mappings disallowed (unshare first).
    if l1e & PAGE_RW != 0 && real == DOMID_COW {
        put_page(env, mfn);
        return Err(Errno::EBUSY);
    }

    // Foreign mappings into paging-external guests don't count as writable mappings.
    let write =
        l1e & PAGE_RW != 0 && (l1e_owner == pg_owner || !env.policy(pg_owner).paging_external);
    if write && get_page_type(env, mfn, PageType::Writable).is_err() {
        put_page(env, mfn);
        return Err(Errno::EBUSY);
    }

    if l1e & PAGE_CACHE_ATTRS != 0 && env.page(mfn).is_some_and(|p| p.is_special()) {
        // Attempt to change cache attributes of a Xen-heap page.
        if write {
            put_page_type(env, mfn);
        }
        put_page(env, mfn);
        return Err(Errno::EACCES);
    }

    // XSA-402: track writable non-coherent mappings of RAM, to flush the cache before the
    // frame is used as anything but a writable page.
    if !env.cpu_self_snoop() && l1e & (PAGE_CACHE_ATTRS | PAGE_RW) == PAGE_WC | PAGE_RW {
        set_non_coherent(env, mfn);
    }
    Ok(0)
}

/// The MMIO half of `get_page_from_l1e` (frames without frame-table entry or owned by
/// `DOMID_IO`): permission checks and the flags to flip.
fn mmio_l1e<E: FrameEnv>(
    env: &mut E,
    l1e: u64,
    mfn: Mfn,
    l1e_owner: DomId,
    pg_owner: DomId,
    curr: DomId,
) -> Result<u64, Errno> {
    let refusal = if mfn != INVALID_PTE_MFN {
        Errno::EPERM
    } else {
        Errno::EINVAL
    };
    // DOMID_IO reverts to the caller for privilege checks.
    let pg_owner = if pg_owner == DOMID_IO { curr } else { pg_owner };
    if !env.iomem_access_permitted(pg_owner, mfn) {
        return Err(refusal);
    }
    if pg_owner != l1e_owner && !env.iomem_access_permitted(l1e_owner, mfn) {
        return Err(refusal);
    }

    let mut flip = 0;
    if !env.is_mmio_ro(mfn) {
        // MMIO pages must not be mapped cacheable unless requested so.
        match env.opt_mmio_relax() {
            MmioRelax::Off => {}
            MmioRelax::HardwareDomain => {
                if env.policy(l1e_owner).hardware_domain {
                    return Ok(0);
                }
            }
            MmioRelax::All => return Ok(0),
        }
    } else if l1e & PAGE_RW != 0 {
        // Forcing read-only access (writes are emulated).
        flip = PAGE_RW;
    }

    match l1e & PAGE_CACHE_ATTRS {
        // WB -> UC.
        0 => flip |= PAGE_PWT | PAGE_PCD,
        // WT, WP -> UC.
        a if a == PAGE_PWT || a == PAGE_PWT | PAGE_PAT => flip |= PAGE_PCD | (l1e & PAGE_PAT),
        _ => {}
    }
    Ok(flip)
}

/// `put_page_from_l1e`: releases what [`get_page_from_l1e`] took for a present entry. I/O
/// frames hold nothing.
pub(crate) fn put_page_from_l1e<E: FrameEnv>(env: &mut E, l1e: u64, l1e_owner: DomId) {
    if !present(l1e) {
        return;
    }
    let mfn = entry_mfn(l1e);
    let Some(pg_owner) = env.page(mfn).map(|p| p.owner) else {
        return; // is_iomem_page: no frame-table entry.
    };
    if pg_owner == DOMID_IO {
        return;
    }
    // Grant mappings (`_PAGE_GNTTAB`, written by `pvmm::grant`) hold the same references as
    // any other mapping and are released the same way (Xen's release build does the same; its
    // debug build also crashes a live domain that drops one implicitly).
    // Remember we didn't take a type count of foreign writable mappings to paging-external
    // domains.
    if l1e & PAGE_RW != 0 && (l1e_owner == pg_owner || !env.policy(pg_owner).paging_external) {
        put_page_type(env, mfn);
    }
    put_page(env, mfn);
}

/// `get_page_from_l2e` / `get_page_from_l3e` / `get_page_from_l4e`: checks a present entry of
/// the table `table` (at `level`, 2..4, owned by `d`) and takes a general and a type reference
/// on the next-level table it points to, validating that table on its first use.
///
/// Disallowed flags: -EINVAL. A target that is not `d`'s: -EINVAL. A target already typed
/// otherwise: -EINVAL, unless the entry is a legal linear mapping
/// ([`get_linear_pagetable`]). Otherwise the target's validation error.
pub(crate) fn get_page_from_lne<E: FrameEnv>(
    env: &mut E,
    e: u64,
    table: Mfn,
    d: DomId,
    level: Level,
) -> Result<(), Errno> {
    if e & BASE_DISALLOW_MASK != 0 {
        return Err(Errno::EINVAL);
    }
    let Some(lower) = level.lower() else {
        return Err(Errno::EINVAL);
    };
    match get_page_and_type(env, entry_mfn(e), d, lower.page_type()) {
        Err(Errno::EINVAL) if get_linear_pagetable(env, e, table, d, level) => Ok(()),
        r => r,
    }
}

/// `get_lN_linear_pagetable`: a table may map a table of its own level ("linear" or
/// "recursive" page tables, e.g. the classic self-map). Rules:
///
/// 1. `opt_pv_linear_pt` must be on.
/// 2. The entry must be read-only, or the guest would get write access to its own PTEs.
/// 3. A table mapping itself takes no references (it already has them), which is what lets a
///    table map itself while it is being validated.
/// 4. Otherwise both tables must be the domain's, the target must already be a validated
///    table of the same level (no waiting on a validation that needs this one), and the
///    linear chain is at most one deep: a table with linear entries cannot itself be used as
///    a linear target, nor vice versa (`linear_pt_count`). The target gets a general and a
///    type reference.
fn get_linear_pagetable<E: FrameEnv>(
    env: &mut E,
    pde: u64,
    pde_mfn: Mfn,
    d: DomId,
    level: Level,
) -> bool {
    if !env.opt_pv_linear_pt() || pde & PAGE_RW != 0 {
        return false;
    }
    let mfn = entry_mfn(pde);
    if mfn == pde_mfn {
        return true;
    }
    // Make sure the page table belongs to the correct domain.
    if env.page(pde_mfn).is_none_or(|p| p.owner != d) {
        return false;
    }
    // Make sure the mapped frame belongs to the correct domain.
    if get_page(env, mfn, d).is_err() {
        return false;
    }
    if !inc_linear_entries(env, pde_mfn) {
        put_page(env, mfn);
        return false;
    }
    if !inc_linear_uses(env, mfn) {
        dec_linear_entries(env, pde_mfn);
        put_page(env, mfn);
        return false;
    }
    if !inc_type_validated(env, mfn, level.page_type()) {
        dec_linear_uses(env, mfn);
        dec_linear_entries(env, pde_mfn);
        put_page(env, mfn);
        return false;
    }
    true
}

/// `put_page_from_l2e` / `l3e` / `l4e`: releases a present entry's references (`put_pt_page`).
/// An entry mapping its own table holds none. (Superpage entries cannot have been validated:
/// PSE is a disallowed bit.)
pub(crate) fn put_page_from_lne<E: FrameEnv>(env: &mut E, e: u64, table: Mfn) {
    let mfn = entry_mfn(e);
    if !present(e) || mfn == table {
        return;
    }
    put_page_type_ptpg(env, mfn, Some(table));
    put_page(env, mfn);
}

/// `validate_page`: validates `mfn` for `ty` on a 0→1 type transition.
pub(crate) fn validate_page<E: FrameEnv>(env: &mut E, mfn: Mfn, ty: PageType) -> Result<(), Errno> {
    match ty {
        PageType::L1 => promote_l1_table(env, mfn),
        PageType::L2 => promote_table(env, mfn, Level::L2),
        PageType::L3 => promote_table(env, mfn, Level::L3),
        PageType::L4 => promote_table(env, mfn, Level::L4),
        PageType::SegDesc => validate_segdesc_page(env, mfn),
        PageType::None | PageType::Shared | PageType::Writable => Err(Errno::EINVAL),
    }
}

/// `devalidate_page`: releases everything a validated table's entries hold.
pub(crate) fn devalidate_page<E: FrameEnv>(env: &mut E, mfn: Mfn, ty: PageType) {
    match ty.level() {
        Some(Level::L1) => demote_l1_table(env, mfn),
        Some(level) => demote_table(env, mfn, level),
        None => {}
    }
}

fn owner_of<E: FrameEnv>(env: &E, mfn: Mfn) -> DomId {
    env.page(mfn).map_or(super::DOMID_INVALID, |p| p.owner)
}

/// `promote_l1_table`: every present entry must pass [`get_page_from_l1e`] with the table's
/// owner as both `l1e_owner` and `pg_owner`; entries are flipped and adjusted in place. On
/// failure the references of the entries before the bad one are released — but, as in Xen,
/// those entries stay adjusted.
fn promote_l1_table<E: FrameEnv>(env: &mut E, mfn: Mfn) -> Result<(), Errno> {
    let d = owner_of(env, mfn);
    for i in 0..ENTRIES_PER_TABLE {
        let mut e = env.read_entry(mfn, i);
        let orig = e;
        if present(e) {
            match get_page_from_l1e(env, e, d, d, d) {
                Ok(flip) => e ^= flip,
                Err(err) => {
                    for j in (0..i).rev() {
                        let ej = env.read_entry(mfn, j);
                        put_page_from_l1e(env, ej, d);
                    }
                    return Err(err);
                }
            }
        }
        let e = adjust_guest_l1e(e);
        if e != orig {
            env.write_entry(mfn, i, e);
        }
    }
    Ok(())
}

/// `promote_l2_table` / `promote_l3_table` / `promote_l4_table` (64-bit PV): every present
/// entry in a guest slot must pass [`get_page_from_lne`]; passing entries are adjusted in
/// place. On failure the references of the entries before the bad one are released (Xen
/// defers this through `old_guest_table`). A validated L4 gets the hypervisor's entries in
/// slots 256..=271 (`init_xen_l4_slots`), replacing whatever the guest put there; those
/// entries take no references. The read-only M2P slot is filled here only for `m2p_strict`
/// guests (others get it from `new_baseptr`'s `fill_ro_mpt`).
fn promote_table<E: FrameEnv>(env: &mut E, mfn: Mfn, level: Level) -> Result<(), Errno> {
    let d = owner_of(env, mfn);
    for i in 0..ENTRIES_PER_TABLE {
        if level == Level::L4 && !is_guest_l4_slot(i) {
            continue;
        }
        let e = env.read_entry(mfn, i);
        if !present(e) {
            continue;
        }
        if let Err(err) = get_page_from_lne(env, e, mfn, d, level) {
            for j in (0..i).rev() {
                if level == Level::L4 && !is_guest_l4_slot(j) {
                    continue;
                }
                let ej = env.read_entry(mfn, j);
                put_page_from_lne(env, ej, mfn);
            }
            return Err(err);
        }
        let adjusted = adjust_guest(level, e);
        if adjusted != e {
            env.write_entry(mfn, i, adjusted);
        }
    }
    if level == Level::L4 {
        let ro_mpt = env.policy(d).m2p_strict;
        for slot in ROOT_PAGETABLE_FIRST_XEN_SLOT..=ROOT_PAGETABLE_LAST_XEN_SLOT {
            let e = env.xen_l4_slot(mfn, d, slot, ro_mpt);
            env.write_entry(mfn, slot, e);
        }
    }
    Ok(())
}

/// `demote_l1_table`.
fn demote_l1_table<E: FrameEnv>(env: &mut E, mfn: Mfn) {
    let d = owner_of(env, mfn);
    for i in 0..ENTRIES_PER_TABLE {
        let e = env.read_entry(mfn, i);
        put_page_from_l1e(env, e, d);
    }
}

/// `demote_l2_table` / `demote_l3_table` / `demote_l4_table`: releases the guest slots'
/// references, last slot first. The entries themselves are left in place.
fn demote_table<E: FrameEnv>(env: &mut E, mfn: Mfn, level: Level) {
    for i in (0..ENTRIES_PER_TABLE).rev() {
        if level == Level::L4 && !is_guest_l4_slot(i) {
            continue;
        }
        let e = env.read_entry(mfn, i);
        put_page_from_lne(env, e, mfn);
    }
}

/// `validate_segdesc_page`: all 512 descriptors must pass [`check_descriptor`]; fixed-up
/// descriptors are written back as they are checked. -EINVAL otherwise.
fn validate_segdesc_page<E: FrameEnv>(env: &mut E, mfn: Mfn) -> Result<(), Errno> {
    for i in 0..ENTRIES_PER_TABLE {
        let desc = env.read_entry(mfn, i);
        match check_descriptor(desc) {
            Some(fixed) => {
                if fixed != desc {
                    env.write_entry(mfn, i, fixed);
                }
            }
            None => return Err(Errno::EINVAL),
        }
    }
    Ok(())
}
