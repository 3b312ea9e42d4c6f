//! `hypercall`: the hypercall page, `xen_version`, and what the PV-only and unknown
//! hypercalls return to a PVH guest.

use crate::hypercall::{STUB_SIZE, hypercall5, page};
use crate::suites::{Env, join};
use crate::verdict::{Hex, Rc, Suite};
use xen_abi::errno::Errno;
use xen_abi::hypercall as nr;
use xen_abi::version::{XENVER_get_features, XENVER_version, XenFeatureInfo};

/// `mov $nr, %eax` (b8 imm32) then `vmcall` (0f 01 c1, VMX) or `vmmcall` (0f 01 d9, SVM),
/// then `ret` (c3).
fn stub_ok(stub: &[u8], n: u32) -> bool {
    stub[0] == 0xb8
        && stub[1..5] == n.to_le_bytes()
        && stub[5..7] == [0x0f, 0x01]
        && matches!(stub[7], 0xc1 | 0xd9)
        && stub[8] == 0xc3
}

/// The PV-only hypercalls (all arguments 0).
const PV_ONLY: [(&str, u64); 7] = [
    ("set_trap_table", nr::set_trap_table),
    ("mmu_update", nr::mmu_update),
    ("set_gdt", nr::set_gdt),
    ("stack_switch", nr::stack_switch),
    ("set_callbacks", nr::set_callbacks),
    ("update_va_mapping", nr::update_va_mapping),
    ("set_segment_base", nr::set_segment_base),
];

pub fn run(s: &mut Suite, _env: &Env) {
    let page = page();
    let stub = |n: usize| &page[n * STUB_SIZE..(n + 1) * STUB_SIZE];
    s.check(
        "page.stub0",
        stub_ok(stub(0), 0),
        format_args!("mov_eax_call_ret={}", stub_ok(stub(0), 0)),
    );
    let n_stubs = page.len() / STUB_SIZE;
    let good = (0..n_stubs)
        .filter(|&n| n as u64 != nr::iret && stub_ok(stub(n), n as u32))
        .count();
    s.expect_eq("page.all_stubs", "ok", good, n_stubs - 1);
    let iret = stub(nr::iret as usize);
    s.check(
        "page.iret_ud2",
        iret[..2] == [0x0f, 0x0b],
        format_args!("ud2={}", iret[..2] == [0x0f, 0x0b]),
    );
    // Same stubs on both vendors but for the trap instruction: must be one of the two.
    let same_insn = (1..n_stubs)
        .filter(|&n| n as u64 != nr::iret)
        .all(|n| stub(n)[7] == stub(0)[7]);
    s.check("page.one_insn", same_insn, format_args!("same={same_insn}"));

    // SAFETY: XENVER_version takes no argument.
    let v = unsafe { hypercall5(nr::xen_version, u64::from(XENVER_version), 0, 0, 0, 0) };
    s.check(
        "xen_version.version",
        v == 0x0004_0011,
        format_args!("version={}.{}", v >> 16, v & 0xffff),
    );
    let mut fi = XenFeatureInfo {
        submap_idx: 0,
        submap: 0,
    };
    // SAFETY: a valid xen_feature_info.
    let rc = unsafe {
        hypercall5(
            nr::xen_version,
            u64::from(XENVER_get_features),
            &raw mut fi as u64,
            0,
            0,
            0,
        )
    };
    s.check(
        "xen_version.get_features",
        rc == 0,
        format_args!("rc={} submap0={}", Rc(rc), Hex(u64::from(fi.submap))),
    );

    for (name, op) in PV_ONLY {
        // SAFETY: with all arguments 0 none of these touches guest memory, and an HVM guest
        // does not reach the PV handlers anyway.
        let rc = unsafe { hypercall5(op, 0, 0, 0, 0, 0) };
        let mut key = [0u8; 48];
        let check = join(&mut key, "pv_only.", name);
        s.expect_rc(check, rc, Rc::err(Errno::ENOSYS));
    }
    // SAFETY: an unknown hypercall has no effect.
    let rc = unsafe { hypercall5(60, 0, 0, 0, 0, 0) };
    s.expect_rc("unknown_60", rc, Rc::err(Errno::ENOSYS));
}
