//! The grant-mapping hooks (`pvmm::grant`): a grant entry is written without taking references
//! (the grant code took them), released like any other entry by everything but the unmap
//! path, and a dying domain's foreign entries give their references back.

use super::*;

/// A pinned, empty L1 of domain `d`.
fn pinned_l1(env: &mut FakeEnv, d: DomId) -> Mfn {
    let l1 = dom_base(d) + 40;
    pin_table(env, d, l1, Level::L1).unwrap();
    l1
}

/// The references a writable grant mapping of `mfn` holds, taken as the grant code does.
fn take_grant_refs(env: &mut FakeEnv, mfn: Mfn, owner: DomId, writable: bool) {
    get_page(env, mfn, owner).unwrap();
    if writable {
        get_page_type(env, mfn, PageType::Writable).unwrap();
    }
}

const GNT_RW: u64 = P | RW | A | D | PAGE_GNTTAB;

#[test]
fn write_takes_nothing_and_returns_the_old_entry() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM0);
    let own = dom_base(DOM0) + 50;
    let granted = dom_base(DOM1) + 50;
    // An ordinary writable mapping of an own frame in the slot.
    mod_entry(
        &mut env,
        MmuCtx::local(DOM0),
        l1,
        7,
        pte(own, P | RW),
        Level::L1,
        false,
    )
    .unwrap();
    assert_eq!((env.pg(own).count(), env.pg(own).type_count()), (2, 1));
    take_grant_refs(&mut env, granted, DOM1, true);
    let slot = L1Slot {
        table: l1,
        index: 7,
    };
    let old = write_grant_l1e(&mut env, DOM0, slot, pte(granted, GNT_RW)).unwrap();
    assert_eq!(entry_mfn(old), own);
    // adjust_guest_l1e applied (a kernel mapping), references untouched until released.
    assert_eq!(env.get(l1, 7), pte(granted, GNT_RW | U | PAGE_GUEST_KERNEL));
    assert_eq!(
        (env.pg(granted).count(), env.pg(granted).type_count()),
        (2, 1)
    );
    assert_eq!((env.pg(own).count(), env.pg(own).type_count()), (2, 1));
    release_l1e(&mut env, old, DOM0);
    assert_eq!((env.pg(own).count(), env.pg(own).type_count()), (1, 0));
}

#[test]
fn only_validated_l1_tables_of_the_mapper() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM1);
    let not_table = dom_base(DOM0) + 60;
    for (dom, table) in [(DOM0, l1), (DOM0, not_table), (DOM1, dom_base(DOM1) + 61)] {
        let slot = L1Slot { table, index: 0 };
        assert_eq!(
            write_grant_l1e(&mut env, dom, slot, pte(dom_base(DOM0) + 62, GNT_RW)),
            Err(Errno::EINVAL),
            "d{dom} {table:#x}"
        );
        assert_eq!(steal_l1e(&mut env, dom, slot), Err(Errno::EINVAL));
    }
    assert_eq!(L1Slot::from_maddr(l1 << 12 | 4), None);
    assert_eq!(
        L1Slot::from_maddr(l1 << 12 | 0x18),
        Some(L1Slot {
            table: l1,
            index: 3
        })
    );
}

#[test]
fn replace_checks_the_entry_and_drops_nothing() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM0);
    let granted = dom_base(DOM1) + 50;
    take_grant_refs(&mut env, granted, DOM1, true);
    let slot = L1Slot {
        table: l1,
        index: 9,
    };
    write_grant_l1e(&mut env, DOM0, slot, pte(granted, GNT_RW)).unwrap();
    assert_eq!(
        replace_grant_l1e(&mut env, DOM0, slot, 0, |_| false),
        Err(Errno::ENOENT)
    );
    assert_ne!(env.get(l1, 9), 0);
    let old = replace_grant_l1e(&mut env, DOM0, slot, 0, |e| entry_mfn(e) == granted).unwrap();
    assert_eq!(entry_mfn(old), granted);
    assert_eq!(env.get(l1, 9), 0);
    // The grant code drops them after its TLB flush.
    assert_eq!(
        (env.pg(granted).count(), env.pg(granted).type_count()),
        (2, 1)
    );
}

#[test]
fn steal_moves_an_entry_with_its_references() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM0);
    let own = dom_base(DOM0) + 50;
    mod_entry(
        &mut env,
        MmuCtx::local(DOM0),
        l1,
        3,
        pte(own, P | RW),
        Level::L1,
        false,
    )
    .unwrap();
    let from = L1Slot {
        table: l1,
        index: 3,
    };
    let to = L1Slot {
        table: l1,
        index: 4,
    };
    let v = steal_l1e(&mut env, DOM0, from).unwrap();
    assert_eq!(env.get(l1, 3), 0);
    replace_grant_l1e(&mut env, DOM0, to, v, |_| true).unwrap();
    assert_eq!(env.get(l1, 4), v);
    assert_eq!((env.pg(own).count(), env.pg(own).type_count()), (2, 1));
    unsteal_l1e(&mut env, DOM0, from, 0);
}

#[test]
fn devalidating_the_table_releases_a_grant_entry_normally() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM0);
    let granted = dom_base(DOM1) + 50;
    take_grant_refs(&mut env, granted, DOM1, true);
    let slot = L1Slot {
        table: l1,
        index: 9,
    };
    write_grant_l1e(&mut env, DOM0, slot, pte(granted, GNT_RW)).unwrap();
    unpin_table(&mut env, DOM0, l1).unwrap();
    assert_eq!(
        (env.pg(granted).count(), env.pg(granted).type_count()),
        (1, 0)
    );
}

#[test]
fn guests_cannot_write_grant_entries() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM0);
    let own = dom_base(DOM0) + 50;
    assert_eq!(
        mod_entry(
            &mut env,
            MmuCtx::local(DOM0),
            l1,
            3,
            pte(own, P | PAGE_GNTTAB),
            Level::L1,
            false
        ),
        Err(Errno::EINVAL)
    );
}

#[test]
fn a_dying_domain_gives_back_its_foreign_mappings() {
    let mut env = FakeEnv::new();
    let l1 = pinned_l1(&mut env, DOM1);
    let own = dom_base(DOM1) + 50;
    let rw = dom_base(DOM0) + 50;
    let ro = dom_base(DOM0) + 51;
    mod_entry(
        &mut env,
        MmuCtx::local(DOM1),
        l1,
        0,
        pte(own, P | RW),
        Level::L1,
        false,
    )
    .unwrap();
    take_grant_refs(&mut env, rw, DOM0, true);
    take_grant_refs(&mut env, ro, DOM0, false);
    write_grant_l1e(
        &mut env,
        DOM1,
        L1Slot {
            table: l1,
            index: 1,
        },
        pte(rw, GNT_RW),
    )
    .unwrap();
    let ro_pte = pte(ro, P | A | PAGE_GNTTAB);
    write_grant_l1e(
        &mut env,
        DOM1,
        L1Slot {
            table: l1,
            index: 2,
        },
        ro_pte,
    )
    .unwrap();
    // Not an L1 of the domain: nothing.
    assert_eq!(release_foreign_l1es(&mut env, DOM1, own), 0);
    assert_eq!(release_foreign_l1es(&mut env, DOM0, l1), 0);
    assert_eq!(release_foreign_l1es(&mut env, DOM1, l1), 2);
    assert_eq!((env.pg(rw).count(), env.pg(rw).type_count()), (1, 0));
    assert_eq!(env.pg(ro).count(), 1);
    assert_eq!((env.get(l1, 1), env.get(l1, 2)), (0, 0));
    // Its own frames keep what their entries hold: they are freed wholesale.
    assert_eq!(env.pg(own).count(), 2);
}

#[test]
fn linear_lookup() {
    let mut env = FakeEnv::new();
    let t = build_tree(&mut env, dom_base(DOM1));
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    // Slot 0 of every level: va 0x3000 is entry 3 of the L1.
    assert_eq!(
        find_l1e(&env, t.l4, 0x3000),
        Some(L1Slot {
            table: t.l1,
            index: 3
        })
    );
    assert_eq!(
        find_l1e(&env, t.l4, 1 << 30),
        None,
        "L3 entry 1 not present"
    );
    assert_eq!(find_l1e(&env, 0, 0x3000), None);
}
