//! Linear (recursive) page tables: `get_lN_linear_pagetable` and `linear_pt_count`.

use super::*;

#[test]
fn self_maps_need_no_references_and_must_be_read_only() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let t = build_tree(&mut env, dom_base(DOM1));
    // The classic L4 self-map, present before validation.
    env.set(t.l4, 5, pte(t.l4, P | A));
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    assert_eq!((env.pg(t.l4).count(), env.pg(t.l4).type_count()), (2, 1));
    assert_eq!(env.pg(t.l4).linear_pt_count, 0);
    check_invariants(&env, &init, &[]);
    let ctx = MmuCtx::local(DOM1);
    // Writable self-maps would give the guest write access to its own tables.
    assert_eq!(
        mod_entry(&mut env, ctx, t.l4, 6, pte(t.l4, P | RW), Level::L4, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, t.l2, 6, pte(t.l2, P | RW), Level::L2, false),
        Err(Errno::EINVAL)
    );
    // Read-only ones at every level.
    mod_entry(&mut env, ctx, t.l4, 6, pte(t.l4, P), Level::L4, false).unwrap();
    mod_entry(&mut env, ctx, t.l3, 6, pte(t.l3, P), Level::L3, false).unwrap();
    mod_entry(&mut env, ctx, t.l2, 6, pte(t.l2, P), Level::L2, false).unwrap();
    assert_eq!(env.pg(t.l4).type_count(), 1);
    check_invariants(&env, &init, &[]);
    // Removing them releases nothing.
    mod_entry(&mut env, ctx, t.l2, 6, 0, Level::L2, false).unwrap();
    unpin_table(&mut env, DOM1, t.l4).unwrap();
    check_invariants(&env, &init, &[]);
    assert_eq!(env.pg(t.l4).count(), 1);

    // A writable self-map present at validation time fails it.
    env.set(t.l4, 5, pte(t.l4, P | RW));
    assert_eq!(
        pin_table(&mut env, DOM1, t.l4, Level::L4),
        Err(Errno::EINVAL)
    );
    check_invariants(&env, &init, &[]);
}

#[test]
fn linear_mappings_between_tables_are_one_level_deep() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let before = env.counts();
    let b = dom_base(DOM1);
    let (x, y, z, w) = (b, b + 1, b + 2, b + 3);
    let ctx = MmuCtx::local(DOM1);
    for l2 in [x, y, z, w] {
        pin_table(&mut env, DOM1, l2, Level::L2).unwrap();
    }
    // x maps y: y must be read-only mapped, and gets a general and a type reference.
    assert_eq!(
        mod_entry(&mut env, ctx, x, 0, pte(y, P | RW), Level::L2, false),
        Err(Errno::EINVAL)
    );
    mod_entry(&mut env, ctx, x, 0, pte(y, P), Level::L2, false).unwrap();
    assert_eq!((env.pg(y).count(), env.pg(y).type_count()), (3, 2));
    assert_eq!(
        (env.pg(x).linear_pt_count, env.pg(y).linear_pt_count),
        (1, -1)
    );
    // x may map more tables; y may be mapped by more tables.
    mod_entry(&mut env, ctx, x, 1, pte(z, P), Level::L2, false).unwrap();
    mod_entry(&mut env, ctx, w, 0, pte(y, P), Level::L2, false).unwrap();
    assert_eq!(
        (env.pg(x).linear_pt_count, env.pg(y).linear_pt_count),
        (2, -2)
    );
    check_invariants(&env, &init, &[]);
    // But y and z, used as linear tables, may not have linear entries; x and w, having them,
    // may not be used as one.
    let v = b + 4;
    pin_table(&mut env, DOM1, v, Level::L2).unwrap();
    assert_eq!(
        mod_entry(&mut env, ctx, y, 0, pte(v, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, z, 0, pte(v, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, v, 0, pte(x, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        mod_entry(&mut env, ctx, v, 0, pte(w, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    assert_eq!(env.pg(v).linear_pt_count, 0);
    check_invariants(&env, &init, &[]);
    // Another domain's table is not a linear target.
    let other = dom_base(DOM2);
    pin_table(&mut env, DOM2, other, Level::L2).unwrap();
    assert_eq!(
        mod_entry(&mut env, ctx, x, 2, pte(other, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
    unpin_table(&mut env, DOM2, other).unwrap();

    // Tear down in an awkward order: y loses its pin first and lives on through the linear
    // references; then x (which holds one) is devalidated.
    unpin_table(&mut env, DOM1, y).unwrap();
    assert!(env.pg(y).is_validated());
    unpin_table(&mut env, DOM1, x).unwrap();
    assert!(!env.pg(x).is_validated());
    assert_eq!(env.pg(x).linear_pt_count, 0);
    assert_eq!(env.pg(y).linear_pt_count, -1);
    check_invariants(&env, &init, &[]);
    // The last (linear) reference to y devalidates it.
    mod_entry(&mut env, ctx, w, 0, 0, Level::L2, false).unwrap();
    assert!(!env.pg(y).is_validated());
    assert_eq!(env.pg(y).linear_pt_count, 0);
    for t in [z, w, v] {
        unpin_table(&mut env, DOM1, t).unwrap();
    }
    assert_eq!(env.counts(), before);
}

#[test]
fn linear_entries_at_validation_time_and_at_l3_and_l4() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let before = env.counts();
    let b = dom_base(DOM1);
    let ctx = MmuCtx::local(DOM1);
    // An L2 whose entry maps an already-validated L2.
    let (x, y) = (b, b + 1);
    pin_table(&mut env, DOM1, y, Level::L2).unwrap();
    env.set(x, 9, pte(y, P | A));
    pin_table(&mut env, DOM1, x, Level::L2).unwrap();
    assert_eq!(env.pg(y).type_count(), 2);
    // L3 → L3 and L4 → L4.
    let (l3a, l3b, l4a, l4b) = (b + 2, b + 3, b + 4, b + 5);
    pin_table(&mut env, DOM1, l3b, Level::L3).unwrap();
    pin_table(&mut env, DOM1, l3a, Level::L3).unwrap();
    mod_entry(&mut env, ctx, l3a, 0, pte(l3b, P), Level::L3, false).unwrap();
    pin_table(&mut env, DOM1, l4b, Level::L4).unwrap();
    pin_table(&mut env, DOM1, l4a, Level::L4).unwrap();
    mod_entry(&mut env, ctx, l4a, 0, pte(l4b, P), Level::L4, false).unwrap();
    assert_eq!(env.pg(l4b).type_count(), 2);
    assert_eq!(env.pg(l3b).type_count(), 2);
    check_invariants(&env, &init, &[]);
    // An L4 → L3 entry next to the linear one is an ordinary reference.
    mod_entry(&mut env, ctx, l4a, 1, pte(l3a, P | RW), Level::L4, false).unwrap();
    check_invariants(&env, &init, &[]);
    for t in [x, y, l3a, l3b, l4a, l4b] {
        unpin_table(&mut env, DOM1, t).unwrap();
    }
    assert_eq!(env.counts(), before);
}

#[test]
fn linear_page_tables_can_be_disabled() {
    let mut env = FakeEnv::new();
    env.linear_pt = false;
    let b = dom_base(DOM1);
    let ctx = MmuCtx::local(DOM1);
    let t = build_tree(&mut env, b);
    pin_table(&mut env, DOM1, t.l4, Level::L4).unwrap();
    assert_eq!(
        mod_entry(&mut env, ctx, t.l4, 5, pte(t.l4, P), Level::L4, false),
        Err(Errno::EINVAL)
    );
    pin_table(&mut env, DOM1, b + 10, Level::L2).unwrap();
    assert_eq!(
        mod_entry(&mut env, ctx, t.l2, 5, pte(b + 10, P), Level::L2, false),
        Err(Errno::EINVAL)
    );
}
