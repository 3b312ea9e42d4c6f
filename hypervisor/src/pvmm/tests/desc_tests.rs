//! Segment descriptors: `check_descriptor`, descriptor pages, `update_descriptor`.

use super::*;

const fn desc(hi: u32, lo: u32) -> u64 {
    (hi as u64) << 32 | lo as u64
}

#[test]
fn check_descriptor_table() {
    let cases: &[(&str, u64, Option<u64>)] = &[
        ("null", 0, Some(0)),
        (
            "not present, any garbage",
            desc(0xffff_7fff, 0xffff_ffff),
            Some(desc(0xffff_7fff, 0xffff_ffff)),
        ),
        (
            "64-bit code DPL0 -> DPL3",
            desc(0x00af_9a00, 0x0000_ffff),
            Some(desc(0x00af_fa00, 0x0000_ffff)),
        ),
        (
            "64-bit code DPL3",
            desc(0x00af_fa00, 0x0000_ffff),
            Some(desc(0x00af_fa00, 0x0000_ffff)),
        ),
        (
            "data DPL1 -> DPL3",
            desc(0x00cf_b200, 0x0000_ffff),
            Some(desc(0x00cf_f200, 0x0000_ffff)),
        ),
        (
            "data DPL2 -> DPL3",
            desc(0x00cf_d200, 0x0000_ffff),
            Some(desc(0x00cf_f200, 0x0000_ffff)),
        ),
        (
            "32-bit code, base/limit unchecked",
            desc(0xffcf_9bff, 0xffff_ffff),
            Some(desc(0xffcf_fbff, 0xffff_ffff)),
        ),
        (
            "system type 0 (gate upper half): unchanged",
            desc(0x0000_8000, 0x1234_5678),
            Some(desc(0x0000_8000, 0x1234_5678)),
        ),
        ("LDT", desc(0x0000_8200, 0x0000_ffff), None),
        ("available 64-bit TSS", desc(0x0000_8900, 0x0000_0067), None),
        ("busy 64-bit TSS", desc(0x0000_8b00, 0x0000_0067), None),
        ("interrupt gate", desc(0xffff_8e00, 0x0010_1000), None),
        ("trap gate", desc(0xffff_ef00, 0x0010_1000), None),
        (
            "16-bit call gate type 4",
            desc(0xffff_e400, 0x0010_1000),
            None,
        ),
        // Call gates: DPL forced to 0, the (fixed) DPL kept in the selector's RPL.
        (
            "call gate DPL3 to GDT 2",
            desc(0xffff_ec00, 0x0010_5678),
            Some(desc(0xffff_8c00, 0x0013_5678)),
        ),
        (
            "call gate DPL0 to GDT 2",
            desc(0xffff_8c00, 0x0010_5678),
            Some(desc(0xffff_8c00, 0x0013_5678)),
        ),
        (
            "call gate to FLAT_KERNEL_CS",
            desc(0x0000_ec00, 0xe033_0000),
            Some(desc(0x0000_8c00, 0xe033_0000)),
        ),
        (
            "call gate to last guest GDT entry",
            desc(0x0000_ec00, 0xdff8_0000),
            Some(desc(0x0000_8c00, 0xdffb_0000)),
        ),
        (
            "call gate to an LDT selector in Xen's range",
            desc(0x0000_ec00, 0xe014_0000),
            Some(desc(0x0000_8c00, 0xe017_0000)),
        ),
        (
            "call gate to Xen's first GDT entry",
            desc(0x0000_ec00, 0xe000_0000),
            None,
        ),
        (
            "call gate to Xen's GDT",
            desc(0x0000_ec00, 0xe010_0000),
            None,
        ),
        (
            "call gate to Xen's GDT, RPL3",
            desc(0x0000_ec00, 0xe00b_0000),
            None,
        ),
        (
            "call gate with reserved bits",
            desc(0x0000_ec01, 0x0010_0000),
            None,
        ),
        (
            "call gate with parameter count",
            desc(0x0000_ec1f, 0x0010_0000),
            None,
        ),
    ];
    for &(name, d, expect) in cases {
        assert_eq!(check_descriptor(d), expect, "{name}: {d:#018x}");
    }
}

#[test]
fn descriptor_pages_are_validated_and_fixed_up() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let b = dom_base(DOM1);
    let (g0, g1) = (b, b + 1);
    env.set(g0, 1, desc(0x00af_9a00, 0x0000_ffff));
    env.set(g1, 7, desc(0x00cf_9200, 0x0000_ffff));
    env.set(g1, 8, desc(0x0000_8900, 0x0000_0067)); // a TSS: refused
    // The second frame fails: -EINVAL, the first frame's references are dropped again.
    assert_eq!(
        get_gdt_frames(&mut env, DOM1, &[g0, g1], 1024),
        Err(Errno::EINVAL)
    );
    check_invariants(&env, &init, &[]);
    assert_eq!(env.pg(g0).type_count(), 0);
    assert_eq!(env.pg(g1).type_info, 0);
    // Descriptors before the bad one were fixed up in place.
    assert_eq!(env.get(g1, 7), desc(0x00cf_f200, 0x0000_ffff));
    env.set(g1, 8, 0);
    get_gdt_frames(&mut env, DOM1, &[g0, g1], 1024).unwrap();
    assert_eq!(env.get(g0, 1), desc(0x00af_fa00, 0x0000_ffff));
    assert_eq!(env.pg(g1).page_type(), PageType::SegDesc);
    check_invariants(&env, &init, &[g0, g1]);
    // 513 entries need two frames; 512 one.
    assert_eq!(
        get_gdt_frames(&mut env, DOM1, &[b + 2], 513),
        Err(Errno::EINVAL)
    );
    get_gdt_frames(&mut env, DOM1, &[b + 2], 512).unwrap();
    put_gdt_frames(&mut env, &[b + 2], 512);
    // No more than FIRST_RESERVED_GDT_ENTRY entries; nothing of another domain.
    assert_eq!(
        get_gdt_frames(&mut env, DOM1, &[b + 2; 16], 14 * 512 + 1),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        get_gdt_frames(&mut env, DOM1, &[dom_base(DOM2)], 1),
        Err(Errno::EINVAL)
    );
    // Zero entries take nothing.
    get_gdt_frames(&mut env, DOM1, &[], 0).unwrap();
    // A descriptor page cannot be a page table while in use.
    assert_eq!(pin_table(&mut env, DOM1, g0, Level::L1), Err(Errno::EINVAL));
    put_gdt_frames(&mut env, &[g0, g1], 1024);
    check_invariants(&env, &init, &[]);
    // Unused, it keeps its type and validity (no devalidation for descriptor pages), and
    // can take another type.
    assert_eq!(env.pg(g0).page_type(), PageType::SegDesc);
    assert!(env.pg(g0).is_validated());
    get_page_and_type(&mut env, g0, DOM1, PageType::Writable).unwrap();
    put_page_and_type(&mut env, g0);
    assert_eq!(env.pg(g0).page_type(), PageType::Writable);
}

#[test]
fn update_descriptor_rules() {
    let mut env = FakeEnv::new();
    let init = env.pages.clone();
    let b = dom_base(DOM1);
    let (gdt, plain, l1) = (b, b + 1, b + 2);
    get_gdt_frames(&mut env, DOM1, &[gdt], 100).unwrap();
    pin_table(&mut env, DOM1, l1, Level::L1).unwrap();
    let code = desc(0x00af_9a00, 0x0000_ffff);
    let fixed = desc(0x00af_fa00, 0x0000_ffff);
    // Into a descriptor page in use: fixed up.
    update_descriptor(&mut env, DOM1, (gdt << 12) + 8 * 3, code).unwrap();
    assert_eq!(env.get(gdt, 3), fixed);
    // Into an ordinary page: it becomes writable-typed for the write.
    update_descriptor(&mut env, DOM1, (plain << 12) + 8 * 4, code).unwrap();
    assert_eq!(env.get(plain, 4), fixed);
    assert_eq!(
        (env.pg(plain).page_type(), env.pg(plain).type_count()),
        (PageType::Writable, 0)
    );
    check_invariants(&env, &init, &[gdt]);
    // Refused: misaligned, a descriptor check_descriptor refuses, another domain's frame,
    // a page table.
    let counts = env.counts();
    assert_eq!(
        update_descriptor(&mut env, DOM1, (gdt << 12) + 4, code),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_descriptor(&mut env, DOM1, gdt << 12, desc(0x0000_8900, 0x67)),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_descriptor(&mut env, DOM1, dom_base(DOM2) << 12, code),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_descriptor(&mut env, DOM1, l1 << 12, code),
        Err(Errno::EINVAL)
    );
    assert_eq!(
        update_descriptor(&mut env, DOM1, MMIO << 12, code),
        Err(Errno::EINVAL)
    );
    assert_eq!(env.counts(), counts);
    assert_eq!(env.get(l1, 0), 0);
    put_gdt_frames(&mut env, &[gdt], 100);
    check_invariants(&env, &init, &[]);
}
