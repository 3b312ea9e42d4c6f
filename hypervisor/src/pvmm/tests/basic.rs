//! Typing, pinning, validation and devalidation of whole trees; base pointers; L4 slots.

use super::*;

#[test]
fn page_info_layout_matches_xen() {
    assert_eq!(core::mem::size_of::<PageInfo>(), 24);
    assert_eq!(PGT_TYPE_MASK, 7 << 61);
    assert_eq!(PGT_PINNED, 1 << 59);
    assert_eq!(PGT_VALIDATED, 1 << 58);
    assert_eq!(PGT_PARTIAL, 1 << 56);
    assert_eq!(PGT_NON_COHERENT, 1 << 55);
    assert_eq!(PGT_COUNT_MASK, (1 << 55) - 1);
    assert_eq!(PGC_ALLOCATED, 1 << 63);
    assert_eq!(PGC_XEN_HEAP, 1 << 62);
    assert_eq!(PGC_COUNT_MASK, (1 << 56) - 1);
    assert_eq!(PageType::Writable.bits(), 7 << 61);
    for ty in [
        PageType::None,
        PageType::L1,
        PageType::L2,
        PageType::L3,
        PageType::L4,
        PageType::SegDesc,
        PageType::Shared,
        PageType::Writable,
    ] {
        assert_eq!(PageType::from_type_info(ty.bits() | PGT_VALIDATED | 5), ty);
    }
    // base_disallow_mask: PWT, PCD, PSE and GLOBAL.
    assert_eq!(BASE_DISALLOW_MASK, 0x198);
    assert_eq!(L1_DISALLOW_MASK, 0x98 | 1 << 62);
    assert_eq!(
        FASTPATH_FLAG_WHITELIST,
        NX | (0x7ff << 52) | 0xe00 | G | D | A | U
    );
}

#[test]
fn get_page_checks_owner_and_allocation() {
    let mut env = FakeEnv::new();
    let f = dom_base(DOM1);
    assert_eq!(get_page(&mut env, f, DOM1), Ok(()));
    assert_eq!(env.pg(f).count(), 2);
    assert_eq!(get_page(&mut env, f, DOM0), Err(Errno::EINVAL));
    assert_eq!(env.pg(f).count(), 2, "a refused get_page leaves the count");
    put_page(&mut env, f);
    assert_eq!(env.pg(f).count(), 1);
    // Not allocated, hypervisor-private, beyond the frame table.
    assert_eq!(
        get_page(&mut env, FREE_FRAME, DOMID_INVALID),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get_page(&mut env, XEN_PRIVATE, DOMID_XEN),
        Err(Errno::EINVAL)
    );
    assert_eq!(get_page(&mut env, MMIO, DOM0), Err(Errno::EINVAL));
    assert_eq!(env.pg(FREE_FRAME).count(), 0);
    // The two values below wrap are reserved.
    env.pages[f as usize].count_info = PGC_ALLOCATED | (PGC_COUNT_MASK - 1);
    assert_eq!(get_page(&mut env, f, DOM1), Err(Errno::EINVAL));
    env.pages[f as usize].count_info = PGC_ALLOCATED | (PGC_COUNT_MASK - 2);
    assert_eq!(get_page(&mut env, f, DOM1), Ok(()));
    // The last reference releases the frame.
    env.pages[f as usize].count_info = 1;
    put_page(&mut env, f);
    assert_eq!(env.released, [f]);
}

#[test]
fn last_put_page_clears_writable_type() {
    let mut env = FakeEnv::new();
    let f = dom_base(DOM1) + 9;
    get_page_and_type(&mut env, f, DOM1, PageType::Writable).unwrap();
    assert_eq!(env.pg(f).page_type(), PageType::Writable);
    put_page_type(&mut env, f);
    assert_eq!(
        env.pg(f).page_type(),
        PageType::Writable,
        "type survives count 0"
    );
    assert!(env.pg(f).is_validated());
    // The guest frees the frame (drops PGC_allocated's reference), then the last reference.
    env.pages[f as usize].count_info &= !PGC_ALLOCATED;
    put_page(&mut env, f);
    put_page(&mut env, f);
    assert_eq!(env.pg(f).count(), 0);
    assert_eq!(env.pg(f).page_type(), PageType::None);
    assert_eq!(env.released, [f]);
}

#[test]
fn pin_validates_recursively_and_unpin_releases_everything() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let before = env.counts();
    let t = build_tree(&mut env, dom_base(DOM1));

    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();

    for (mfn, ty) in [
        (t.l4, PageType::L4),
        (t.l3, PageType::L3),
        (t.l2, PageType::L2),
        (t.l1, PageType::L1),
    ] {
        let pg = env.pg(mfn);
        assert_eq!(pg.page_type(), ty, "{mfn:#x}");
        assert!(pg.is_validated(), "{mfn:#x}");
    }
    // L4: pin. L3: two L4 slots. L2, L1: one entry each.
    assert_eq!(env.pg(t.l4).type_count(), 1);
    assert!(env.pg(t.l4).is_pinned());
    assert_eq!(env.pg(t.l3).type_count(), 2);
    assert_eq!(env.pg(t.l2).type_count(), 1);
    assert_eq!(env.pg(t.l1).type_count(), 1);
    assert_eq!(env.pg(t.l4).count(), 2);
    assert_eq!(env.pg(t.l3).count(), 3);
    // The L1 maps itself read-only: one more general reference, no type reference.
    assert_eq!(env.pg(t.l1).count(), 3);
    assert_eq!(env.pg(t.rw).page_type(), PageType::Writable);
    assert_eq!((env.pg(t.rw).count(), env.pg(t.rw).type_count()), (2, 1));
    assert_eq!(env.pg(t.ro).page_type(), PageType::None);
    assert_eq!((env.pg(t.ro).count(), env.pg(t.ro).type_count()), (2, 0));
    check_invariants(&env, &init, &[]);

    // adjust_guest_lNe: L4 entries gain A|U, L3/L2 gain U; the kernel L1 mappings gain
    // U|GUEST_KERNEL, the user one GLOBAL.
    assert_eq!(env.get(t.l4, 0), pte(t.l3, P | RW | A | U));
    assert_eq!(env.get(t.l4, 511), pte(t.l3, P | RW | A | U));
    assert_eq!(env.get(t.l3, 0), pte(t.l2, P | RW | U));
    assert_eq!(env.get(t.l2, 0), pte(t.l1, P | RW | U));
    assert_eq!(env.get(t.l1, 0), pte(t.rw, P | RW | U | PAGE_GUEST_KERNEL));
    assert_eq!(env.get(t.l1, 1), pte(t.ro, P | U | G));
    assert_eq!(env.get(t.l1, 2), pte(t.l1, P | U | PAGE_GUEST_KERNEL));

    unpin_table(&mut env, DOM1, t.l4).unwrap();
    assert_eq!(
        env.counts(),
        before,
        "unpin returns every count to its start"
    );
    for mfn in [t.l4, t.l3, t.l2, t.l1] {
        assert!(!env.pg(mfn).is_validated(), "{mfn:#x} devalidated");
    }
    // Devalidation leaves the entries in place.
    assert_eq!(env.get(t.l2, 0), pte(t.l1, P | RW | U));
    check_invariants(&env, &init, &[]);

    // And it validates again.
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    check_invariants(&env, &init, &[]);
    unpin_table(&mut env, DOM1, t.l4).unwrap();
    assert_eq!(env.counts(), before);
}

#[test]
fn pin_and_unpin_errors() {
    let mut env = FakeEnv::new();
    let t = build_tree(&mut env, dom_base(DOM1));
    // Not the domain's frame.
    assert_eq!(
        pin_table(&mut env, DOM0, t.l1, Level::L1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        pin_table(&mut env, DOM1, XEN_PRIVATE, Level::L1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        pin_table(&mut env, DOM1, MMIO, Level::L1),
        Err(Errno::EINVAL)
    );
    pin_table(&mut env, DOM1, t.l2, Level::L2).unwrap();
    // Already pinned.
    assert_eq!(
        pin_table(&mut env, DOM1, t.l2, Level::L2),
        Err(Errno::EINVAL)
    );
    assert_eq!(env.pg(t.l2).type_count(), 1);
    // In use as another type.
    assert_eq!(
        pin_table(&mut env, DOM1, t.l2, Level::L1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        pin_table(&mut env, DOM1, t.l1, Level::L2),
        Err(Errno::EINVAL)
    );
    // A frame mapped writable is not a table.
    assert_eq!(
        pin_table(&mut env, DOM1, t.rw, Level::L1),
        Err(Errno::EINVAL)
    );
    // But an L1 referenced by the pinned L2 can be pinned as an L1 too.
    pin_table(&mut env, DOM1, t.l1, Level::L1).unwrap();
    assert_eq!(env.pg(t.l1).type_count(), 2);
    // Unpin: not the domain's, not pinned.
    assert_eq!(unpin_table(&mut env, DOM0, t.l1), Err(Errno::EINVAL));
    assert_eq!(unpin_table(&mut env, DOM1, t.rw), Err(Errno::EINVAL));
    unpin_table(&mut env, DOM1, t.l1).unwrap();
    assert_eq!(unpin_table(&mut env, DOM1, t.l1), Err(Errno::EINVAL));
    assert!(env.pg(t.l1).is_validated(), "still referenced by the L2");
    unpin_table(&mut env, DOM1, t.l2).unwrap();
    assert!(!env.pg(t.l1).is_validated());
    assert_eq!(env.pg(t.rw).type_count(), 0);
}

#[test]
fn type_count_overflow_is_einval() {
    let mut env = FakeEnv::new();
    let f = dom_base(DOM1) + 7;
    get_page_and_type(&mut env, f, DOM1, PageType::Writable).unwrap();
    env.pages[f as usize].type_info = PageType::Writable.bits() | PGT_VALIDATED | PGT_COUNT_MASK;
    assert_eq!(
        get_page_type(&mut env, f, PageType::Writable),
        Err(Errno::EINVAL)
    );
    assert_eq!(env.pg(f).type_count(), PGT_COUNT_MASK);
}

#[test]
fn failed_validation_rolls_back_everything() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let before = env.counts();
    let b = dom_base(DOM1);
    let (l2, l1a, l1b, bad) = (b, b + 1, b + 2, b + 3);
    env.set(l1a, 0, pte(b + 10, P | RW));
    env.set(l1b, 3, pte(b + 11, P));
    // The third L1 maps another domain's frame.
    env.set(bad, 0, pte(b + 12, P | RW));
    env.set(bad, 1, pte(dom_base(DOM2), P));
    env.set(l2, 0, pte(l1a, P | RW));
    env.set(l2, 1, pte(l1b, P | RW));
    env.set(l2, 2, pte(bad, P | RW));
    assert_eq!(pin_table(&mut env, DOM1, l2, Level::L2), Err(Errno::EBUSY));
    assert_eq!(env.counts(), before);
    assert_eq!(
        env.pg(l2).type_info,
        0,
        "a failed validation leaves the frame untyped"
    );
    assert_eq!(env.pg(bad).type_info, 0);
    assert_eq!(env.pg(l1a).page_type(), PageType::L1);
    assert!(!env.pg(l1a).is_validated());
    // As in Xen, the entries checked before the failure stay adjusted.
    assert_eq!(env.get(bad, 0), pte(b + 12, P | RW | U | PAGE_GUEST_KERNEL));
    assert_eq!(env.get(bad, 1), pte(dom_base(DOM2), P));
    check_invariants(&env, &init, &[]);
    // Fix the entry and the same tree validates.
    env.set(bad, 1, 0);
    pin_table(&mut env, DOM1, l2, Level::L2).unwrap();
    check_invariants(&env, &init, &[]);
    assert_eq!(env.pg(b + 12).type_count(), 1);
}

#[test]
fn l4_hypervisor_slots_are_the_hypervisors() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let t = build_tree(&mut env, dom_base(DOM1));
    let other_l3 = dom_base(DOM1) + 8;
    // Guest junk in the hypervisor slots, including a reference to a real L3: ignored and
    // overwritten, no reference taken.
    env.set(t.l4, 256, pte(other_l3, P | RW));
    env.set(t.l4, 271, u64::MAX);
    env.set(t.l4, 300, pte(other_l3, P));
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    for slot in 256..=271 {
        assert_eq!(
            env.get(t.l4, slot),
            FakeEnv::xen_slot_value(t.l4, DOM1, slot, false),
            "slot {slot}"
        );
    }
    assert_eq!(
        env.get(t.l4, 258),
        pte(t.l4, P | RW | A | D),
        "linear self-map slot"
    );
    assert_eq!(
        env.get(t.l4, RO_MPT_SLOT),
        0,
        "no RO M2P without m2p_strict"
    );
    // Slot 300 is a guest slot (272-511 are), validated as usual.
    assert_eq!(env.pg(other_l3).page_type(), PageType::L3);
    assert_eq!(env.pg(other_l3).type_count(), 1);
    check_invariants(&env, &init, &[]);

    let ctx = MmuCtx::local(DOM1);
    for slot in [256, 258, 263, 271] {
        assert_eq!(
            mod_entry(&mut env, ctx, t.l4, slot, pte(t.l3, P), Level::L4, false),
            Err(Errno::EINVAL),
            "slot {slot}"
        );
        assert_eq!(
            mmu_pt_update(&mut env, ctx, (t.l4 << 12) + slot as u64 * 8, 0),
            Err(Errno::EINVAL)
        );
    }
    for slot in [255, 272, 511] {
        mod_entry(
            &mut env,
            ctx,
            t.l4,
            slot,
            pte(other_l3, P | RW),
            Level::L4,
            false,
        )
        .unwrap();
    }
    assert_eq!(env.pg(other_l3).type_count(), 4);
    check_invariants(&env, &init, &[]);
    unpin_table(&mut env, DOM1, t.l4).unwrap();
    check_invariants(&env, &init, &[]);
    assert_eq!(env.pg(other_l3).type_count(), 0);
}

#[test]
fn m2p_strict_ro_mpt_slot() {
    let mut env = FakeEnv::new();
    // dom2 uses m2p_strict: the promoted L4 has the RO M2P; a user base pointer zaps it.
    let t = build_tree(&mut env, dom_base(DOM2));
    pin_table(&mut env, DOM2, t.l4, Level::L4).unwrap();
    assert_eq!(
        env.get(t.l4, RO_MPT_SLOT),
        FakeEnv::xen_slot_value(t.l4, DOM2, RO_MPT_SLOT, true)
    );
    let mut user = 0;
    new_user_baseptr(&mut env, DOM2, DOM2, &mut user, t.l4).unwrap();
    assert_eq!(env.get(t.l4, RO_MPT_SLOT), 0);
    release_baseptr(&mut env, &mut user);

    // dom1 does not: the kernel base pointer gets it filled in (fill_ro_mpt).
    let t1 = build_tree(&mut env, dom_base(DOM1));
    let mut kernel = 0;
    new_baseptr(&mut env, DOM1, DOM1, &mut kernel, t1.l4).unwrap();
    assert_eq!(
        env.get(t1.l4, RO_MPT_SLOT),
        FakeEnv::xen_slot_value(t1.l4, DOM1, RO_MPT_SLOT, true)
    );
    release_baseptr(&mut env, &mut kernel);
}

#[test]
fn new_baseptr_rules() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let before = env.counts();
    let t = build_tree(&mut env, dom_base(DOM1));
    let t2 = build_tree(&mut env, dom_base(DOM1) + 10);
    let mut cr3 = 0;
    // foreigndom must be the caller.
    assert_eq!(
        new_baseptr(&mut env, DOM1, DOM0, &mut cr3, t.l4),
        Err(Errno::EPERM)
    );
    // Not the domain's frame.
    assert_eq!(
        new_baseptr(&mut env, DOM0, DOM0, &mut cr3, t.l4),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        new_baseptr(&mut env, DOM1, DOM1, &mut cr3, XEN_PRIVATE),
        Err(Errno::EINVAL)
    );
    // Not (validatable as) an L4: the L3 is in use as an L3.
    pin_table(&mut env, DOM1, t.l3, Level::L3).unwrap();
    assert_eq!(
        new_baseptr(&mut env, DOM1, DOM1, &mut cr3, t.l3),
        Err(Errno::EINVAL)
    );
    assert_eq!(cr3, 0);

    new_baseptr(&mut env, DOM1, DOM1, &mut cr3, t.l4).unwrap();
    assert_eq!(cr3, t.l4);
    assert_eq!(env.pg(t.l4).type_count(), 1);
    check_invariants(&env, &init, &[cr3]);
    // Reloading the same table takes nothing.
    new_baseptr(&mut env, DOM1, DOM1, &mut cr3, t.l4).unwrap();
    assert_eq!(env.pg(t.l4).type_count(), 1);
    // Switching releases the old one.
    new_baseptr(&mut env, DOM1, DOM1, &mut cr3, t2.l4).unwrap();
    assert_eq!(cr3, t2.l4);
    assert_eq!(env.pg(t.l4).type_count(), 0);
    assert!(!env.pg(t.l4).is_validated());
    check_invariants(&env, &init, &[cr3]);

    let mut user = 0;
    assert_eq!(
        new_user_baseptr(&mut env, DOM1, DOM2, &mut user, t.l4),
        Err(Errno::EPERM)
    );
    new_user_baseptr(&mut env, DOM1, DOM1, &mut user, t.l4).unwrap();
    check_invariants(&env, &init, &[cr3, user]);
    new_user_baseptr(&mut env, DOM1, DOM1, &mut user, 0).unwrap();
    assert_eq!(user, 0);
    release_baseptr(&mut env, &mut cr3);
    unpin_table(&mut env, DOM1, t.l3).unwrap();
    assert_eq!(env.counts(), before);
}

#[test]
fn tables_reject_other_domains_and_bad_flags() {
    let mut env = FakeEnv::new();
    let b = dom_base(DOM1);
    let (l2, l1) = (b, b + 1);
    let ctx = MmuCtx::local(DOM1);
    pin_table(&mut env, DOM1, l2, Level::L2).unwrap();
    // Another domain's (empty) L1, a hypervisor frame, a frame beyond the frame table.
    for target in [dom_base(DOM2), XEN_PRIVATE, RO_M2P, MMIO, 5] {
        assert_eq!(
            mod_entry(&mut env, ctx, l2, 0, pte(target, P | RW), Level::L2, false),
            Err(Errno::EINVAL),
            "{target:#x}"
        );
    }
    // Flags outside the L2 mask: PWT, PCD, PSE (no PV superpages), GLOBAL.
    for bad in [PWT, PCD, PSE, G] {
        assert_eq!(
            mod_entry(
                &mut env,
                ctx,
                l2,
                0,
                pte(l1, P | RW | bad),
                Level::L2,
                false
            ),
            Err(Errno::EINVAL),
            "{bad:#x}"
        );
    }
    // Allowed flags: A, D, U, NX, software bits.
    mod_entry(
        &mut env,
        ctx,
        l2,
        0,
        pte(l1, P | RW | A | D | NX | 0xe00 | 1 << 60),
        Level::L2,
        false,
    )
    .unwrap();
    assert_eq!(env.pg(l1).page_type(), PageType::L1);
    // An L2 entry to a page mapped writable: it cannot become an L1.
    mod_entry(&mut env, ctx, l1, 0, pte(b + 5, P | RW), Level::L1, false).unwrap();
    assert_eq!(
        mod_entry(&mut env, ctx, l2, 1, pte(b + 5, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    // The L2 cannot be given foreign frames.
    let foreign = MmuCtx {
        pg_owner: DOM2,
        ..ctx
    };
    assert_eq!(
        mod_entry(&mut env, foreign, l2, 2, pte(b + 6, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    // mod_entry requires the table to be of the given level, validated, and pt_owner's.
    assert_eq!(
        mod_entry(&mut env, ctx, l2, 0, 0, Level::L1, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, b + 6, 0, 0, Level::L1, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, MmuCtx::local(DOM2), l2, 0, 0, Level::L2, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, l2, 512, 0, Level::L2, false),
        Err(Errno::EINVAL)
    );
}

#[test]
fn changing_entries_moves_references() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let b = dom_base(DOM1);
    let (l1, x, y) = (b, b + 1, b + 2);
    let ctx = MmuCtx::local(DOM1);
    pin_table(&mut env, DOM1, l1, Level::L1).unwrap();
    mod_entry(&mut env, ctx, l1, 7, pte(x, P | RW), Level::L1, false).unwrap();
    assert_eq!((env.pg(x).count(), env.pg(x).type_count()), (2, 1));
    // Re-point the entry: x's writable reference goes to y.
    mod_entry(&mut env, ctx, l1, 7, pte(y, P | RW), Level::L1, false).unwrap();
    assert_eq!((env.pg(x).count(), env.pg(x).type_count()), (1, 0));
    assert_eq!((env.pg(y).count(), env.pg(y).type_count()), (2, 1));
    check_invariants(&env, &init, &[]);
    // x is free to become a table now.
    pin_table(&mut env, DOM1, x, Level::L1).unwrap();
    // ... and then cannot be mapped writable (-EBUSY), only read-only.
    assert_eq!(
        mod_entry(&mut env, ctx, l1, 8, pte(x, P | RW), Level::L1, false),
        Err(Errno::EBUSY)
    );
    mod_entry(&mut env, ctx, l1, 8, pte(x, P), Level::L1, false).unwrap();
    // y's mapping becomes read-only: the writable type reference goes, the general stays.
    mod_entry(&mut env, ctx, l1, 7, pte(y, P), Level::L1, false).unwrap();
    assert_eq!((env.pg(y).count(), env.pg(y).type_count()), (2, 0));
    check_invariants(&env, &init, &[]);
    // Clearing entries releases them.
    mod_entry(&mut env, ctx, l1, 7, 0, Level::L1, false).unwrap();
    mod_entry(&mut env, ctx, l1, 8, 0, Level::L1, false).unwrap();
    assert_eq!(env.pg(y).count(), 1);
    assert_eq!(env.pg(x).count(), 2);
    check_invariants(&env, &init, &[]);
}

#[test]
fn fast_path_and_preserve_ad() {
    let mut env = FakeEnv::new();
    let b = dom_base(DOM1);
    let (l1, x, y) = (b, b + 1, b + 2);
    let ctx = MmuCtx::local(DOM1);
    pin_table(&mut env, DOM1, l1, Level::L1).unwrap();
    mod_entry(&mut env, ctx, l1, 0, pte(x, P | RW), Level::L1, false).unwrap();
    let counts = env.counts();
    // Whitelisted flags change without touching references.
    mod_entry(
        &mut env,
        ctx,
        l1,
        0,
        pte(x, P | RW | A | D | NX | 0x200),
        Level::L1,
        false,
    )
    .unwrap();
    assert_eq!(env.counts(), counts);
    assert_eq!(
        env.get(l1, 0),
        pte(x, P | RW | A | D | NX | 0x200 | U | PAGE_GUEST_KERNEL)
    );
    // Hardware set A and D since; a plain update clears them, preserve-AD keeps them.
    mod_entry(&mut env, ctx, l1, 0, pte(x, P | RW), Level::L1, true).unwrap();
    assert_eq!(env.get(l1, 0) & (A | D), A | D);
    mod_entry(&mut env, ctx, l1, 0, pte(x, P | RW), Level::L1, false).unwrap();
    assert_eq!(env.get(l1, 0) & (A | D), 0);
    env.set(l1, 0, env.get(l1, 0) | D);
    // preserve-AD also on the slow path (new frame), via mmu_update's command bits.
    let ptr = (l1 << 12) | MMU_PT_UPDATE_PRESERVE_AD;
    mmu_pt_update(&mut env, ctx, ptr, pte(y, P | RW)).unwrap();
    assert_eq!(env.get(l1, 0), pte(y, P | RW | D | U | PAGE_GUEST_KERNEL));
    assert_eq!(env.pg(x).type_count(), 0);
    assert_eq!(env.pg(y).type_count(), 1);
    // Dropping RW is not on the fast path: the type reference goes.
    mod_entry(&mut env, ctx, l1, 0, pte(y, P), Level::L1, false).unwrap();
    assert_eq!(env.pg(y).type_count(), 0);
    // Same for L2 entries: USER is whitelisted, RW is not.
    let (l2, l1b) = (b + 3, b + 4);
    pin_table(&mut env, DOM1, l2, Level::L2).unwrap();
    mod_entry(&mut env, ctx, l2, 0, pte(l1b, P | RW), Level::L2, false).unwrap();
    let counts = env.counts();
    mod_entry(
        &mut env,
        ctx,
        l2,
        0,
        pte(l1b, P | RW | A | D | U),
        Level::L2,
        true,
    )
    .unwrap();
    assert_eq!(env.counts(), counts);
    mod_entry(&mut env, ctx, l2, 0, pte(l1b, P), Level::L2, true).unwrap();
    assert_eq!(
        env.counts(),
        counts,
        "re-referenced before the old reference is dropped"
    );
    assert_eq!(env.get(l2, 0), pte(l1b, P | A | D | U));
}

#[test]
fn mmu_update_dispatch() {
    let mut env = FakeEnv::new();
    let b = dom_base(DOM1);
    let ctx = MmuCtx::local(DOM1);
    let t = build_tree(&mut env, b);
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    // A frame with no type in use is written directly (transient writable reference).
    let plain = b + 20;
    mmu_pt_update(&mut env, ctx, (plain << 12) + 16, 0x1234).unwrap();
    assert_eq!(env.get(plain, 2), 0x1234);
    assert_eq!(
        (env.pg(plain).page_type(), env.pg(plain).type_count()),
        (PageType::Writable, 0)
    );
    // A frame with writable mappings too.
    mmu_pt_update(&mut env, ctx, t.rw << 12, 0x99).unwrap();
    assert_eq!(env.get(t.rw, 0), 0x99);
    // Tables dispatch to mod_lN_entry: an L2 entry to a frame that cannot be an L1.
    assert_eq!(
        mmu_pt_update(&mut env, ctx, (t.l2 << 12) + 8, pte(t.rw, P)),
        Err(Errno::EINVAL)
    );
    mmu_pt_update(&mut env, ctx, (t.l2 << 12) + 8, pte(plain, P)).unwrap();
    assert_eq!(env.pg(plain).page_type(), PageType::L1);
    // Another domain's frame; an unknown command; MACHPHYS is not handled here.
    assert_eq!(
        mmu_pt_update(&mut env, ctx, dom_base(DOM2) << 12, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mmu_pt_update(&mut env, ctx, (plain << 12) | 5, 0),
        Err(Errno::ENOSYS)
    );
    assert_eq!(
        mmu_pt_update(&mut env, ctx, (plain << 12) | MMU_MACHPHYS_UPDATE, 0),
        Err(Errno::ENOSYS)
    );
    // Foreign pg_owner: L1 updates may map dom1 frames for dom0 only with xsm_priv_mapping;
    // L2..L4 updates never.
    let foreign = MmuCtx {
        pg_owner: DOM0,
        ..ctx
    };
    assert_eq!(
        mmu_pt_update(&mut env, foreign, (t.l3 << 12) + 8, 0),
        Err(Errno::EINVAL)
    );
    // A descriptor page is neither a table nor writable.
    let gdt = b + 30;
    get_gdt_frames(&mut env, DOM1, &[gdt], 512).unwrap();
    assert_eq!(
        mmu_pt_update(&mut env, ctx, gdt << 12, 0),
        Err(Errno::EINVAL)
    );
    put_gdt_frames(&mut env, &[gdt], 512);
    // Unused now (type count 0): written directly, and retyped.
    mmu_pt_update(&mut env, ctx, gdt << 12, 0).unwrap();
    assert_eq!(env.pg(gdt).page_type(), PageType::Writable);
}

#[test]
fn update_va_mapping_path() {
    let mut env = FakeEnv::new();
    let b = dom_base(DOM1);
    let t = build_tree(&mut env, b);
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    let ctx = MmuCtx::local(DOM1);
    update_va_mapping_l1(&mut env, ctx, t.l1, 9, pte(b + 20, P | RW)).unwrap();
    assert_eq!(env.pg(b + 20).type_count(), 1);
    // Not an L1, not the caller's, bad index.
    assert_eq!(
        update_va_mapping_l1(&mut env, ctx, t.l2, 9, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_va_mapping_l1(&mut env, MmuCtx::local(DOM0), t.l1, 9, 0),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_va_mapping_l1(&mut env, ctx, t.l1, 600, 0),
        Err(Errno::EINVAL)
    );
    // update_va_mapping_otherdomain: the page owner is foreign (the hypercall layer checked
    // the caller may name it). Its frames may be mapped, the caller's own no longer.
    let foreign = MmuCtx {
        pg_owner: DOM2,
        ..ctx
    };
    update_va_mapping_l1(&mut env, foreign, t.l1, 10, pte(dom_base(DOM2), P)).unwrap();
    assert_eq!(env.pg(dom_base(DOM2)).count(), 2);
    assert_eq!(
        update_va_mapping_l1(&mut env, foreign, t.l1, 11, pte(b + 21, P)),
        Err(Errno::EBUSY)
    );
}
