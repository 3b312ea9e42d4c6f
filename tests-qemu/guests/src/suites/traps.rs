//! `traps`: exception delivery through the guest's virtual IDT (`HYPERVISOR_set_trap_table`)
//! with Xen's 64-bit PV bounce frame, and the return with `HYPERVISOR_iret`.
//!
//! Each check runs one faulting instruction under [`probe!`] (see `traps_rt.rs`); the handler
//! records the frame and resumes after the instruction through `HYPERVISOR_iret`. Details carry
//! the vector, the error code, where `rip` points (`insn`: the faulting instruction, `next`:
//! the one after it), the frame's `cs` selector, the upcall mask Xen saved in bits 32-39 of the
//! `cs` word, the frame's system flags (IF is the inverse of the saved mask) and whether the
//! frame sits where Xen puts it (`frame=ok`: just below the interrupted `rsp` rounded down to
//! 16 bytes, recording that `rsp` and the flat kernel `ss`), never addresses.
//!
//! What Xen 4.17 does, as the checks expect it:
//! - Faults (#DE, #UD, #GP, #PF) report `rip` at the faulting instruction, traps (`int3`,
//!   `int n`) after it. The frame's `cs` is `FLAT_KERNEL_CS` with RPL 0 (0xe030: Xen clears
//!   the RPL to tell the guest it was in kernel context).
//! - #PF error codes have the user bit cleared for the guest kernel (it runs in ring 3), and
//!   `vcpu_info.arch.cr2` holds the address when the handler runs.
//! - `int3` and `int $3` reach vector 3 whatever DPL the trap table gives it (Xen does not
//!   check it); `int $0x80` is delivered whenever vector 0x80 has a handler, whatever its DPL
//!   (Xen's direct int80 path), and is a #GP with error code 0x402 without one; other `int n`
//!   need DPL >= 1 for the guest kernel, else #GP with error code `n << 3 | 2`.
//! - A trap-table entry with the "interrupt gate" flag (bit 2) makes Xen set the upcall mask
//!   on entry; `HYPERVISOR_iret` restores `rax`, `rcx`, `r11` from the iret context and the
//!   upcall mask from the context's `rflags.IF`.
//!
//! Not covered here: a fault on a vector without a handler (Xen crashes the domain, which
//! would end the run; the `PVTEST FATAL` path and the harness's crash detection cover it),
//! the failsafe callback, NMIs and event upcalls.

use xen_abi::xen::StartInfo;

use crate::traps_rt::{self as rt, Action, Buf, RFLAGS_IF, Trap, probe};
use crate::verdict::{Rc, Suite};

/// Values the probes put in `rcx`/`r11` so the frame's copies can be checked.
const RCX_MAGIC: u64 = 0x0c0c_c1c1_0c0c_c1c1;
const R11_MAGIC: u64 = 0x1111_b00b_1111_b00b;
/// An address in the lower half that the dom0 initial mapping leaves unmapped.
const UNMAPPED: u64 = 0x10_0000;
/// A non-canonical address.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;

/// Runs the suite.
pub fn run(s: &mut Suite, si: &StartInfo) {
    let rc = rt::map_shared_info(si);
    s.expect_rc("setup.map_shared_info", rc, 0);
    let rc = rt::install_exceptions();
    s.expect_rc("setup.set_trap_table", rc, 0);
    if rc != 0 {
        rt::restore_default_traps();
        rt::unmap_shared_info();
        return;
    }

    faults(s);
    page_faults(s, si);
    breakpoints(s);
    int_n(s);
    frame_placement(s);
    upcall_mask(s);
    iret_registers(s);

    rt::restore_default_traps();
    rt::unmap_shared_info();
}

/// `Some(trap)` formatted as its summary (plus `rcx_r11=bad` when the frame's `rcx`/`r11`
/// are not what the probe had), or `no-trap`.
fn describe(t: &Option<Trap>) -> Buf {
    match t {
        Some(t) if t.rcx == RCX_MAGIC && t.r11 == R11_MAGIC => {
            Buf::format(format_args!("{}", t.summary()))
        }
        Some(t) => Buf::format(format_args!("{} rcx_r11=bad", t.summary())),
        None => Buf::format(format_args!("no-trap")),
    }
}

/// PASS if the trap's description is `want`.
fn expect_trap(s: &mut Suite, check: &str, t: &Option<Trap>, want: &str) {
    let got = describe(t);
    s.check(check, got.as_str() == want, format_args!("{got}"));
}

fn faults(s: &mut Suite) {
    rt::arm(Action::default());
    // SAFETY: ud2 raises #UD; the runtime resumes after it with all registers restored.
    unsafe {
        probe!([], ["ud2"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "ud_ud2",
        &rt::take(),
        "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );

    rt::arm(Action::default());
    // SAFETY: dividing by zero raises #DE; the runtime resumes after the div.
    unsafe {
        probe!(["xor %edx, %edx"], ["div {zero}"], [],
            zero = in(reg) 0u64,
            inout("rax") 1u64 => _, out("rdx") _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "de_div_zero",
        &rt::take(),
        "vec=0 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );

    rt::arm(Action::default());
    // SAFETY: hlt at CPL 3 raises #GP(0), which Xen does not emulate for a PV guest.
    unsafe {
        probe!([], ["hlt"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "gp_hlt",
        &rt::take(),
        "vec=13 ec=0x0 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );

    rt::arm(Action::default());
    // SAFETY: a non-canonical access raises #GP(0); nothing is read.
    unsafe {
        probe!([], ["mov ({addr}), {addr}"], [],
            addr = inout(reg) NON_CANONICAL => _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "gp_non_canonical",
        &rt::take(),
        "vec=13 ec=0x0 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
}

fn page_faults(s: &mut Suite, si: &StartInfo) {
    rt::arm(Action::default());
    // SAFETY: reading an unmapped lower-half address raises #PF; nothing is read.
    unsafe {
        probe!([], ["mov ({addr}), {addr}"], [],
            addr = inout(reg) UNMAPPED => _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    pf_check(
        s,
        "pf_read_unmapped",
        UNMAPPED,
        "vec=14 ec=0x0 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );

    rt::arm(Action::default());
    // SAFETY: writing an unmapped lower-half address raises #PF; nothing is written.
    unsafe {
        probe!([], ["movq $1, ({addr})"], [],
            addr = in(reg) UNMAPPED,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    pf_check(
        s,
        "pf_write_unmapped",
        UNMAPPED,
        "vec=14 ec=0x2 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );

    rt::arm(Action::default());
    // SAFETY: jumping to an unmapped address raises #PF on the fetch; the runtime resumes
    // after the jump.
    unsafe {
        probe!([], ["jmp *{addr}"], [],
            addr = in(reg) UNMAPPED,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    let t = rt::take();
    let at_target = t.is_some_and(|t| t.rip == UNMAPPED);
    let cr2 = t.is_some_and(|t| t.cr2_on_entry == UNMAPPED);
    let got = describe(&t);
    s.check(
        "pf_fetch_unmapped",
        got.as_str() == "vec=14 ec=0x10 rip=other cs=0xe030 smask=1 fl=0x0 frame=ok"
            && at_target
            && cr2,
        format_args!("{got} tgt={at_target} cr2={cr2}"),
    );

    let va = rt::test_page_va();
    let rc = rt::test_page_set_ro(si, true);
    if rc != 0 {
        s.skip(
            "pf_write_readonly",
            format_args!("remapping the test page read-only: rc={}", Rc(rc)),
        );
        return;
    }
    rt::arm(Action::default());
    // SAFETY: the test page is mapped read-only: the write raises #PF and writes nothing.
    unsafe {
        probe!([], ["movq $1, ({addr})"], [],
            addr = in(reg) va + 8,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    pf_check(
        s,
        "pf_write_readonly",
        va + 8,
        "vec=14 ec=0x3 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
    let rc = rt::test_page_set_ro(si, false);
    rt::arm(Action::default());
    // SAFETY: the test page is writable again; nothing else uses it.
    unsafe {
        probe!([], ["movq $1, ({addr})"], [],
            addr = in(reg) va + 8,)
    };
    let t = rt::take();
    s.check(
        "pf_write_restored",
        rc == 0 && t.is_none(),
        format_args!("rc={} trapped={}", Rc(rc), t.is_some()),
    );
}

/// A #PF check: the trap's description, plus `vcpu_info.arch.cr2` holding the address when the
/// handler runs (`emul` checks the emulated `mov %cr2`).
fn pf_check(s: &mut Suite, check: &str, addr: u64, want: &str) {
    let t = rt::take();
    let got = describe(&t);
    let cr2 = t.is_some_and(|t| t.cr2_on_entry == addr);
    s.check(
        check,
        got.as_str() == want && cr2,
        format_args!("{got} cr2={cr2}"),
    );
}

fn breakpoints(s: &mut Suite) {
    for (dpl, check) in [(3, "bp_int3_dpl3"), (0, "bp_int3_dpl0")] {
        let rc = rt::set_gate(3, dpl, false);
        rt::arm(Action::default());
        // SAFETY: int3 raises #BP (a trap); the runtime resumes after it.
        unsafe {
            probe!([], ["int3"], [],
                inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
        };
        let t = rt::take();
        let got = describe(&t);
        s.check(
            check,
            rc == 0 && got.as_str() == "vec=3 ec=none rip=next cs=0xe030 smask=1 fl=0x0 frame=ok",
            format_args!("{got}"),
        );
    }
    rt::arm(Action::default());
    // SAFETY: `int $3` (CD 03) raises #BP like int3; the gate still has DPL 0.
    unsafe {
        probe!([], ["int $3"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "bp_int_3_dpl0",
        &rt::take(),
        "vec=3 ec=none rip=next cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
    rt::set_gate(3, 3, false);
}

/// Runs `int $0x80` and returns the trap.
fn int80() -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: `int $0x80` either reaches vector 0x80's stub (a trap) or raises #GP; the
    // runtime resumes after it either way.
    unsafe {
        probe!([], ["int $0x80"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    rt::take()
}

/// Runs `int $0x81` and returns the trap.
fn int81() -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: as for int80.
    unsafe {
        probe!([], ["int $0x81"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    rt::take()
}

fn int_n(s: &mut Suite) {
    const DELIVERED_80: &str = "vec=128 ec=none rip=next cs=0xe030 smask=1 fl=0x0 frame=ok";
    const GP_80: &str = "vec=13 ec=0x402 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok";
    const DELIVERED_81: &str = "vec=129 ec=none rip=next cs=0xe030 smask=1 fl=0x0 frame=ok";
    const GP_81: &str = "vec=13 ec=0x40a rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok";

    for (dpl, check, want) in [
        (3, "int80_dpl3", DELIVERED_80),
        (1, "int80_dpl1", DELIVERED_80),
        (0, "int80_dpl0", DELIVERED_80),
    ] {
        let rc = rt::set_gate(0x80, dpl, false);
        let t = int80();
        let got = describe(&t);
        s.check(
            check,
            rc == 0 && got.as_str() == want,
            format_args!("{got}"),
        );
    }
    for (dpl, check, want) in [
        (3, "int81_dpl3", DELIVERED_81),
        (1, "int81_dpl1", DELIVERED_81),
        (0, "int81_dpl0", GP_81),
    ] {
        let rc = rt::set_gate(0x81, dpl, false);
        let t = int81();
        let got = describe(&t);
        s.check(
            check,
            rc == 0 && got.as_str() == want,
            format_args!("{got}"),
        );
    }

    // No handler for 0x80 (nor 0x81): clear the virtual IDT, route only #GP.
    let rc = rt::clear_trap_table();
    let rc2 = rt::set_gate(13, 0, false);
    let t = int80();
    let got = describe(&t);
    s.check(
        "int80_no_handler",
        rc == 0 && rc2 == 0 && got.as_str() == GP_80,
        format_args!("{got}"),
    );
    let t = int81();
    let got = describe(&t);
    s.check(
        "int81_no_handler",
        got.as_str() == GP_81,
        format_args!("{got}"),
    );
    let rc = rt::install_exceptions();
    s.expect_rc("setup.reinstall", rc, 0);
}

/// Checks the frame's placement for an interrupted `rsp` that is 16-byte aligned and one that
/// is not.
fn frame_placement(s: &mut Suite) {
    rt::arm(Action::default());
    // SAFETY: the stack pointer is moved down (to a 16-byte boundary) for the ud2 only and
    // put back by the post code, which runs on both paths (every register is restored).
    unsafe {
        probe!(["mov %rsp, {save}", "and $-16, %rsp", "sub $64, %rsp"], ["ud2"],
            ["mov {save}, %rsp"],
            save = out(reg) _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "frame_rsp_aligned",
        &rt::take(),
        "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
    rt::arm(Action::default());
    // SAFETY: as above, with rsp 8 bytes off a 16-byte boundary.
    unsafe {
        probe!(["mov %rsp, {save}", "and $-16, %rsp", "sub $72, %rsp"], ["ud2"],
            ["mov {save}, %rsp"],
            save = out(reg) _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "frame_rsp_misaligned",
        &rt::take(),
        "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
    rt::arm(Action::default());
    // SAFETY: as above, for a fault with an error code (hlt: #GP(0)).
    unsafe {
        probe!(["mov %rsp, {save}", "and $-16, %rsp", "sub $72, %rsp"], ["hlt"],
            ["mov {save}, %rsp"],
            save = out(reg) _,
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    expect_trap(
        s,
        "frame_rsp_misaligned_ec",
        &rt::take(),
        "vec=13 ec=0x0 rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok",
    );
}

/// One ud2 with the upcall mask at `before`, the #UD gate's interrupt flag at `intr_gate` and
/// the handler's `action`; returns (trap, mask after the iret).
fn ud2_with_mask(before: u8, intr_gate: bool, action: Action) -> (Option<Trap>, u8) {
    rt::set_gate(6, 0, intr_gate);
    rt::set_upcall_mask(before);
    rt::arm(action);
    // SAFETY: ud2 raises #UD; the runtime resumes after it.
    unsafe {
        probe!([], ["ud2"], [],
            inout("rcx") RCX_MAGIC => _, inout("r11") R11_MAGIC => _,)
    };
    let after = rt::upcall_mask();
    rt::set_upcall_mask(1);
    rt::set_gate(6, 0, false);
    (rt::take(), after)
}

fn upcall_mask(s: &mut Suite) {
    const CHECKS: [&str; 5] = [
        "mask_trap_gate_unmasked",
        "mask_intr_gate_unmasked",
        "mask_intr_gate_masked",
        "iret_if_set_unmasks",
        "iret_if_clear_masks",
    ];
    if rt::upcall_mask() != 1 || rt::upcall_pending() != 0 {
        for check in CHECKS {
            s.skip(
                check,
                format_args!(
                    "mask={} pending={} (need 1 and 0)",
                    rt::upcall_mask(),
                    rt::upcall_pending()
                ),
            );
        }
        return;
    }
    let cases = [
        (0, false, Action::default()),
        (0, true, Action::default()),
        (1, true, Action::default()),
        (
            1,
            false,
            Action {
                rflags_set: RFLAGS_IF,
                ..Action::default()
            },
        ),
        (
            0,
            false,
            Action {
                rflags_clear: RFLAGS_IF,
                ..Action::default()
            },
        ),
    ];
    let wants = [
        "vec=6 ec=none rip=insn cs=0xe030 smask=0 fl=0x200 frame=ok entry=0 after=0",
        "vec=6 ec=none rip=insn cs=0xe030 smask=0 fl=0x200 frame=ok entry=1 after=0",
        "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok entry=1 after=1",
        "vec=6 ec=none rip=insn cs=0xe030 smask=1 fl=0x0 frame=ok entry=1 after=0",
        "vec=6 ec=none rip=insn cs=0xe030 smask=0 fl=0x200 frame=ok entry=0 after=1",
    ];
    for ((check, (before, intr, action)), want) in CHECKS.into_iter().zip(cases).zip(wants) {
        let (t, after) = ud2_with_mask(before, intr, action);
        let entry = t.map_or(0xff, |t| t.mask_on_entry);
        let got = Buf::format(format_args!("{} entry={entry} after={after}", describe(&t)));
        s.check(check, got.as_str() == want, format_args!("{got}"));
    }
}

/// `HYPERVISOR_iret` restores the general registers the handler left alone, takes `rax`,
/// `rcx`, `r11` and the arithmetic flags from the iret context, and leaves the real IF set.
fn iret_registers(s: &mut Suite) {
    const NEW_RAX: u64 = 0xaaaa_0000_0000_0001;
    const NEW_RCX: u64 = 0xcccc_0000_0000_0002;
    const NEW_R11: u64 = 0xbbbb_0000_0000_0003;
    const CF: u64 = 1 << 0;
    const ZF: u64 = 1 << 6;
    const OF: u64 = 1 << 11;
    rt::arm(Action {
        rcx_r11: Some((NEW_RCX, NEW_R11)),
        rax: Some(NEW_RAX),
        rflags_set: CF | OF,
        rflags_clear: ZF,
    });
    let (mut rax, mut rcx, mut rdx, mut rsi, mut rdi) = (0xa0u64, 0xc0u64, 0xd0u64, 0x51u64, 0xd1);
    let (mut r8, mut r9, mut r10, mut r11) = (0x8u64, 0x9u64, 0x10u64, 0x11u64);
    let (mut r12, mut r13, mut r14) = (0x12u64, 0x13u64, 0x14u64);
    let flags: u64;
    // SAFETY: ud2 raises #UD; the handler changes rax, rcx, r11 and the flags in the frame as
    // declared (all registers are in/out operands) and resumes after the ud2.
    unsafe {
        probe!(["cmp %rax, %rax"], ["ud2"], ["pushfq", "pop {flags}"],
            flags = out(reg) flags,
            inout("rax") rax, inout("rcx") rcx, inout("rdx") rdx, inout("rsi") rsi,
            inout("rdi") rdi, inout("r8") r8, inout("r9") r9, inout("r10") r10,
            inout("r11") r11, inout("r12") r12, inout("r13") r13, inout("r14") r14,)
    };
    let trapped = rt::take().is_some();
    let others = (rdx, rsi, rdi, r8, r9, r10, r12, r13, r14)
        == (0xd0, 0x51, 0xd1, 0x8, 0x9, 0x10, 0x12, 0x13, 0x14);
    let ctx = rax == NEW_RAX && rcx == NEW_RCX && r11 == NEW_R11;
    let arith = flags & (CF | ZF | OF) == CF | OF;
    let real_if = flags & RFLAGS_IF != 0;
    s.check(
        "iret_registers",
        trapped && others && ctx && arith && real_if,
        format_args!(
            "trapped={trapped} others_kept={others} ctx_regs={ctx} ctx_flags={arith} \
             real_if={real_if}"
        ),
    );
}
