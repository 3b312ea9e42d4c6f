//! `get_page_from_l1e`: what an L1 entry may map, and the errno of each refusal; and the
//! writable-page-table emulation.

use super::*;

/// A pinned, empty L1 of domain `d`.
fn pinned_l1(env: &mut FakeEnv, d: DomId) -> Mfn {
    let l1 = dom_base(d) + 40;
    pin_table(env, d, l1, Level::L1).unwrap();
    l1
}

#[test]
fn writable_mappings_of_tables_and_descriptor_pages_are_ebusy() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let t = build_tree(&mut env, dom_base(DOM1));
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    let ctx = MmuCtx::local(DOM1);
    let gdt = dom_base(DOM1) + 30;
    get_gdt_frames(&mut env, DOM1, &[gdt], 16).unwrap();
    let counts = env.counts();
    for table in [t.l4, t.l3, t.l2, t.l1, gdt] {
        assert_eq!(
            mod_entry(
                &mut env,
                ctx,
                t.l1,
                20,
                pte(table, P | RW),
                Level::L1,
                false
            ),
            Err(Errno::EBUSY),
            "{table:#x}"
        );
        assert_eq!(env.counts(), counts, "a refused mapping takes nothing");
    }
    // Read-only mappings of them are fine.
    for table in [t.l4, t.l3, t.l2, t.l1, gdt] {
        mod_entry(&mut env, ctx, t.l1, 20, pte(table, P), Level::L1, false).unwrap();
    }
    check_invariants(&env, &init, &[gdt]);
    // And a frame mapped writable cannot become a table or descriptor page.
    assert_eq!(
        pin_table(&mut env, DOM1, t.rw, Level::L1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get_gdt_frames(&mut env, DOM1, &[t.rw], 1),
        Err(Errno::EINVAL)
    );
    put_gdt_frames(&mut env, &[gdt], 16);
    check_invariants(&env, &init, &[]);
}

#[test]
fn other_domains_and_hypervisor_frames_are_ebusy() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM1);
    let ctx = MmuCtx::local(DOM1);
    let counts = env.counts();
    for (target, flags) in [
        (dom_base(DOM2), P),
        (dom_base(DOM0) + 1, P | RW),
        (XEN_PRIVATE, P),
        (RO_M2P, P),
        (RO_M2P, P | RW),
        (FREE_FRAME, P),
    ] {
        assert_eq!(
            mod_entry(&mut env, ctx, l1, 0, pte(target, flags), Level::L1, false),
            Err(Errno::EBUSY),
            "{target:#x}"
        );
        assert_eq!(env.counts(), counts);
    }
}

#[test]
fn foreign_page_owners() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let l1 = pinned_l1(&mut env, DOM0);
    // dom0 names dom1 as the page owner (the hypercall layer allowed it).
    let as_dom1 = MmuCtx {
        pg_owner: DOM1,
        ..MmuCtx::local(DOM0)
    };
    let f = dom_base(DOM1) + 3;
    mod_entry(&mut env, as_dom1, l1, 0, pte(f, P | RW), Level::L1, false).unwrap();
    assert_eq!((env.pg(f).count(), env.pg(f).type_count()), (2, 1));
    check_invariants(&env, &init, &[]);
    // A dom2 frame with pg_owner dom1: dom1 may not map dom2 (no xsm_priv_mapping).
    assert_eq!(
        mod_entry(
            &mut env,
            as_dom1,
            l1,
            1,
            pte(dom_base(DOM2), P),
            Level::L1,
            false
        ),
        Err(Errno::EBUSY)
    );
    // DOMID_XEN as page owner: the read-only M2P can be mapped read-only, never writable.
    let as_xen = MmuCtx {
        pg_owner: DOMID_XEN,
        ..MmuCtx::local(DOM0)
    };
    mod_entry(&mut env, as_xen, l1, 2, pte(RO_M2P, P), Level::L1, false).unwrap();
    assert_eq!(
        mod_entry(
            &mut env,
            as_xen,
            l1,
            3,
            pte(RO_M2P + 1, P | RW),
            Level::L1,
            false
        ),
        Err(Errno::EBUSY)
    );
    // Hypervisor-private frames not even so.
    assert_eq!(
        mod_entry(
            &mut env,
            as_xen,
            l1,
            3,
            pte(XEN_PRIVATE, P),
            Level::L1,
            false
        ),
        Err(Errno::EBUSY)
    );
    check_invariants(&env, &init, &[]);

    // Naming itself as page owner, dom0 gets only its own frames.
    let local = MmuCtx::local(DOM0);
    assert_eq!(
        mod_entry(&mut env, local, l1, 4, pte(f, P), Level::L1, false),
        Err(Errno::EBUSY)
    );
    // dom2 names dom1's frames through dom0's privilege: dom2 → pg_owner dom0, real dom1.
    let l1_2 = pinned_l1(&mut env, DOM2);
    let via_dom0 = MmuCtx {
        pg_owner: DOM0,
        ..MmuCtx::local(DOM2)
    };
    mod_entry(&mut env, via_dom0, l1_2, 0, pte(f, P), Level::L1, false).unwrap();
    assert_eq!(env.pg(f).count(), 3);
    env.priv_pairs.clear();
    assert_eq!(
        mod_entry(&mut env, via_dom0, l1_2, 1, pte(f, P), Level::L1, false),
        Err(Errno::EBUSY)
    );
    check_invariants(&env, &init, &[]);
}

#[test]
fn paging_external_foreign_writable_takes_no_type() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    env.policies[1].paging_external = true;
    let l1 = pinned_l1(&mut env, DOM0);
    let as_dom1 = MmuCtx {
        pg_owner: DOM1,
        ..MmuCtx::local(DOM0)
    };
    let f = dom_base(DOM1) + 3;
    mod_entry(&mut env, as_dom1, l1, 0, pte(f, P | RW), Level::L1, false).unwrap();
    assert_eq!((env.pg(f).count(), env.pg(f).type_count()), (2, 0));
    mod_entry(&mut env, as_dom1, l1, 0, 0, Level::L1, false).unwrap();
    assert_eq!((env.pg(f).count(), env.pg(f).type_count()), (1, 0));
    unpin_table(&mut env, DOM0, l1).unwrap();
    assert_eq!(env.pages, {
        let mut p = init.clone();
        p[l1 as usize] = env.pg(l1);
        p
    });
}

#[test]
fn disallowed_l1_flags() {
    let mut env = FakeEnv::new();
    let ctx1 = MmuCtx::local(DOM1);
    let ctx0 = MmuCtx::local(DOM0);
    let l1 = pinned_l1(&mut env, DOM1);
    let l1_0 = pinned_l1(&mut env, DOM0);
    let f1 = dom_base(DOM1) + 2;
    let f0 = dom_base(DOM0) + 2;
    // A domU without I/O resources may not choose memory types, nor set the grant bit.
    for bad in [PWT, PCD, PAGE_PAT, PAGE_GNTTAB] {
        assert_eq!(
            mod_entry(&mut env, ctx1, l1, 0, pte(f1, P | bad), Level::L1, false),
            Err(Errno::EINVAL),
            "{bad:#x}"
        );
    }
    // GLOBAL, NX, the software bits and GUEST_KERNEL are fine in L1s.
    mod_entry(
        &mut env,
        ctx1,
        l1,
        0,
        pte(f1, P | G | NX | 0xe00 | PAGE_GUEST_KERNEL | U),
        Level::L1,
        false,
    )
    .unwrap();
    // Dom0 may use PAT/PCD/PWT on RAM, but not the grant bit.
    for attrs in [PWT, PCD, PCD | PWT, PAGE_PAT, PAGE_PAT | PWT] {
        mod_entry(
            &mut env,
            ctx0,
            l1_0,
            0,
            pte(f0, P | RW | attrs),
            Level::L1,
            false,
        )
        .unwrap();
        assert_eq!(
            env.get(l1_0, 0) & PAGE_CACHE_ATTRS,
            attrs,
            "RAM keeps its memory type"
        );
    }
    assert_eq!(
        mod_entry(
            &mut env,
            ctx0,
            l1_0,
            1,
            pte(f0, P | PAGE_GNTTAB),
            Level::L1,
            false
        ),
        Err(Errno::EINVAL)
    );
    // Not-present entries are not checked at all.
    mod_entry(
        &mut env,
        ctx1,
        l1,
        5,
        pte(dom_base(DOM2), PCD | PAGE_GNTTAB),
        Level::L1,
        false,
    )
    .unwrap();
}

#[test]
fn special_pages_keep_write_back() {
    let mut env = FakeEnv::new();
    let ctx0 = MmuCtx::local(DOM0);
    let l1 = pinned_l1(&mut env, DOM0);
    // A Xen-heap page shared writable with dom0 (like shared_info).
    let shared = dom_base(DOM0) + 50;
    env.pages[shared as usize] = PageInfo::xen_shared(DOM0, true);
    let counts = env.counts();
    assert_eq!(
        mod_entry(
            &mut env,
            ctx0,
            l1,
            0,
            pte(shared, P | RW | PCD),
            Level::L1,
            false
        ),
        Err(Errno::EACCES)
    );
    assert_eq!(
        mod_entry(
            &mut env,
            ctx0,
            l1,
            0,
            pte(shared, P | PAGE_PAT),
            Level::L1,
            false
        ),
        Err(Errno::EACCES)
    );
    assert_eq!(env.counts(), counts);
    mod_entry(&mut env, ctx0, l1, 0, pte(shared, P | RW), Level::L1, false).unwrap();
    assert_eq!(env.pg(shared).type_count(), 2);
}

#[test]
fn mmio_permissions_and_memory_type() {
    let mut env = FakeEnv::new();
    let ctx0 = MmuCtx::local(DOM0);
    let ctx1 = MmuCtx::local(DOM1);
    let l1_0 = pinned_l1(&mut env, DOM0);
    let l1_1 = pinned_l1(&mut env, DOM1);
    let counts = env.counts();
    // MMIO beyond the frame table and DOMID_IO frames: no references; WB forced to UC.
    for mmio in [MMIO, 5] {
        mod_entry(&mut env, ctx0, l1_0, 0, pte(mmio, P | RW), Level::L1, false).unwrap();
        assert_eq!(
            env.get(l1_0, 0),
            pte(mmio, P | RW | PWT | PCD | U | PAGE_GUEST_KERNEL)
        );
        mod_entry(&mut env, ctx0, l1_0, 0, 0, Level::L1, false).unwrap();
    }
    assert_eq!(env.counts(), counts);
    // WT and WP become UC; UC, UC- and WC are left.
    for (attrs, result) in [
        (PWT, PWT | PCD),
        (PWT | PAGE_PAT, PWT | PCD),
        (PCD, PCD),
        (PCD | PWT, PCD | PWT),
        (PAGE_PAT, PAGE_PAT),
    ] {
        mod_entry(
            &mut env,
            ctx0,
            l1_0,
            1,
            pte(MMIO, P | attrs),
            Level::L1,
            false,
        )
        .unwrap();
        assert_eq!(env.get(l1_0, 1) & PAGE_CACHE_ATTRS, result, "{attrs:#x}");
    }
    // mmio_ro_ranges: forced read-only.
    env.mmio_ro.push(MMIO + 1);
    mod_entry(
        &mut env,
        ctx0,
        l1_0,
        2,
        pte(MMIO + 1, P | RW | PCD | PWT),
        Level::L1,
        false,
    )
    .unwrap();
    assert_eq!(env.get(l1_0, 2) & (RW | PAGE_CACHE_ATTRS), PCD | PWT);
    // mmio-relax: the hardware domain's WB mappings stay WB.
    env.mmio_relax = MmioRelax::HardwareDomain;
    mod_entry(&mut env, ctx0, l1_0, 3, pte(MMIO, P), Level::L1, false).unwrap();
    assert_eq!(env.get(l1_0, 3) & PAGE_CACHE_ATTRS, 0);
    env.mmio_relax = MmioRelax::Off;
    // A domain without iomem permission: -EPERM; the all-ones frame: -EINVAL.
    assert_eq!(
        mod_entry(&mut env, ctx1, l1_1, 0, pte(MMIO, P), Level::L1, false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mod_entry(&mut env, ctx1, l1_1, 0, pte(5, P), Level::L1, false),
        Err(Errno::EPERM)
    );
    assert_eq!(
        mod_entry(
            &mut env,
            ctx1,
            l1_1,
            0,
            pte(0xff_ffff_ffff, P),
            Level::L1,
            false
        ),
        Err(Errno::EINVAL)
    );
    // DOMID_IO as page owner reverts to the caller for the check.
    let via_io = MmuCtx {
        pg_owner: DOMID_IO,
        ..ctx1
    };
    assert_eq!(
        mod_entry(&mut env, via_io, l1_1, 0, pte(MMIO, P), Level::L1, false),
        Err(Errno::EPERM)
    );
    // dom0 mapping MMIO into dom1's table (pt_owner dom1): dom1 must be permitted too.
    let foreign_pt = MmuCtx {
        caller: DOM0,
        pt_owner: DOM1,
        pg_owner: DOMID_IO,
    };
    assert_eq!(
        mod_entry(
            &mut env,
            foreign_pt,
            l1_1,
            0,
            pte(MMIO, P),
            Level::L1,
            false
        ),
        Err(Errno::EPERM)
    );
    assert_eq!(env.get(l1_1, 0), 0);
}

#[test]
fn non_coherent_writable_mappings_flush_before_typing() {
    let mut env = FakeEnv::new();
    env.self_snoop = false;
    let ctx0 = MmuCtx::local(DOM0);
    let l1 = pinned_l1(&mut env, DOM0);
    let f = dom_base(DOM0) + 3;
    // Read-only WC, or writable WB: not tracked.
    mod_entry(&mut env, ctx0, l1, 0, pte(f, P | PAGE_WC), Level::L1, false).unwrap();
    mod_entry(&mut env, ctx0, l1, 1, pte(f, P | RW), Level::L1, false).unwrap();
    assert_eq!(env.pg(f).type_info & PGT_NON_COHERENT, 0);
    // Writable WC is.
    mod_entry(
        &mut env,
        ctx0,
        l1,
        2,
        pte(f, P | RW | PAGE_WC),
        Level::L1,
        false,
    )
    .unwrap();
    assert_ne!(env.pg(f).type_info & PGT_NON_COHERENT, 0);
    mod_entry(&mut env, ctx0, l1, 1, 0, Level::L1, false).unwrap();
    mod_entry(&mut env, ctx0, l1, 2, 0, Level::L1, false).unwrap();
    assert!(env.cache_flushes.is_empty());
    // Used as a page table: the cache is flushed first.
    pin_table(&mut env, DOM0, f, Level::L1).unwrap();
    assert_eq!(env.cache_flushes, [f]);
    assert_eq!(env.pg(f).type_info & PGT_NON_COHERENT, 0);
}

#[test]
fn adjust_guest_l1e_kernel_and_user() {
    // Kernel mapping (USER clear): USER and GUEST_KERNEL.
    assert_eq!(
        adjust_guest_l1e(pte(9, P | RW)),
        pte(9, P | RW | U | PAGE_GUEST_KERNEL)
    );
    // User mapping: GLOBAL.
    assert_eq!(adjust_guest_l1e(pte(9, P | U)), pte(9, P | U | G));
    // Already a Xen-adjusted kernel mapping: unchanged.
    assert_eq!(
        adjust_guest_l1e(pte(9, P | U | PAGE_GUEST_KERNEL)),
        pte(9, P | U | PAGE_GUEST_KERNEL)
    );
    // Not present: untouched.
    assert_eq!(adjust_guest_l1e(pte(9, RW)), pte(9, RW));
    assert_eq!(adjust_guest_l2e(pte(9, P)), pte(9, P | U));
    assert_eq!(adjust_guest_l3e(pte(9, P)), pte(9, P | U));
    assert_eq!(adjust_guest_l4e(pte(9, P)), pte(9, P | U | A));
    assert_eq!(adjust_guest_l4e(pte(9, 0)), pte(9, 0));
}

#[test]
fn ptwr_emulation() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let t = build_tree(&mut env, dom_base(DOM1));
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    let b = dom_base(DOM1);
    let x = b + 20;

    // A full write validates the new entry (no fast path) and releases the old one.
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 10, pte(x, P | RW), 8, None),
        Ptwr::Okay
    );
    assert_eq!(env.pg(x).type_count(), 1);
    assert_eq!(env.get(t.l1, 10), pte(x, P | RW | U | PAGE_GUEST_KERNEL));
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 10, 0, 8, None),
        Ptwr::Okay
    );
    assert_eq!(env.pg(x).type_count(), 0);
    check_invariants(&env, &init, &[]);

    // Invalid new entries fault.
    let counts = env.counts();
    for bad in [pte(t.l2, P | RW), pte(dom_base(DOM2), P), pte(x, P | PCD)] {
        assert_eq!(
            ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 11, bad, 8, None),
            Ptwr::Unhandleable,
            "{bad:#x}"
        );
    }
    assert_eq!(env.counts(), counts);
    // Not an L1, not the domain's, misaligned or odd-sized.
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l2, 0, 0, 8, None),
        Ptwr::Unhandleable
    );
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM0, t.l1, 0, 0, 8, None),
        Ptwr::Unhandleable
    );
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 4, 0, 8, None),
        Ptwr::Unhandleable
    );
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 0, 0, 3, None),
        Ptwr::Unhandleable
    );
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 0, 0, 16, None),
        Ptwr::Unhandleable
    );

    // Sub-word writes merge with the current entry: the low half then the high half.
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 12 + 4, NX >> 32, 4, None),
        Ptwr::Okay
    );
    assert_eq!(env.get(t.l1, 12), NX);
    let low = pte(x, P) as u32 as u64;
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 12, low, 4, None),
        Ptwr::Okay
    );
    assert_eq!(env.get(t.l1, 12), pte(x, P | NX | U | PAGE_GUEST_KERNEL));
    assert_eq!(env.pg(x).count(), 2);

    // cmpxchg: succeeds when the entry holds `old`, else reports what it holds and takes
    // nothing.
    let cur = env.get(t.l1, 12);
    let counts = env.counts();
    let y = b + 21;
    assert_eq!(
        ptwr_emulated_update(
            &mut env,
            DOM1,
            t.l1,
            8 * 12,
            pte(y, P | RW),
            8,
            Some(cur ^ A)
        ),
        Ptwr::CmpxchgFailed { current: cur }
    );
    assert_eq!(env.counts(), counts);
    assert_eq!(
        ptwr_emulated_update(
            &mut env,
            DOM1,
            t.l1,
            8 * 12,
            pte(y, P | RW) as u32 as u64,
            4,
            Some(cur as u32 as u64 ^ 1)
        ),
        Ptwr::CmpxchgFailed {
            current: cur as u32 as u64
        }
    );
    assert_eq!(
        ptwr_emulated_update(&mut env, DOM1, t.l1, 8 * 12, pte(y, P | RW), 8, Some(cur)),
        Ptwr::Okay
    );
    assert_eq!((env.pg(x).count(), env.pg(y).type_count()), (1, 1));
    check_invariants(&env, &init, &[]);
    unpin_table(&mut env, DOM1, t.l4).unwrap();
    check_invariants(&env, &init, &[]);
}
