//! `emul`: what Xen emulates for a 64-bit PV kernel, which runs in ring 3: forced-emulation
//! CPUID and its hypervisor leaves, privileged instructions that fault with #GP and that Xen
//! emulates (MSR accesses, control and debug registers, port I/O under the virtual IOPL,
//! `clts`, `wbinvd`), the ones it refuses (and so bounces as #GP), and the virtual CR0.TS.
//!
//! Every probe runs under [`probe!`] with the `traps_rt` handlers installed, so an instruction
//! that Xen does not emulate shows up as a bounced trap (`#<vector>(<error code>)@<rip>`, `@insn`
//! meaning the faulting instruction) instead of ending the run; `ok` means it completed without
//! reaching the guest's handlers.
//!
//! What Xen 4.17 does under the test machine (QEMU TCG `-cpu max`, which reports an AMD CPU
//! without CPUID faulting or masking), as the checks expect it:
//! - Forced-emulation CPUID (`ud2; .ascii "xen"; cpuid`) gives Xen's PV CPUID policy and the
//!   hypervisor leaves at 0x40000000 (max leaf 0x40000005, "XenVMMXenVMM", version 4.17,
//!   one hypercall page with MSR 0x40000000, ...). Native CPUID cannot be intercepted on this
//!   CPU: it does not trap and shows the raw leaves (no Xen signature). The policy checks only
//!   look at bits Xen always hides from PV guests (MONITOR, VMX, SMX, x2APIC, PSE, PGE, SMEP,
//!   SMAP, SVM, 1 GiB pages, ...) or always sets (the hypervisor bit).
//! - MSRs: FS/GS/shadow-GS bases read back what was written; EFER, PAT, APIC_BASE,
//!   MISC_ENABLE and the microcode revision read as Xen shows them; writes of EFER and
//!   MISC_ENABLE with the value read are accepted, writes of PAT and APIC_BASE are #GP; reads
//!   of MSRs Xen does not know (and of the SYSCALL MSRs) are #GP, as are unknown writes.
//! - Port I/O needs virtual IOPL >= 1 for the kernel (`PHYSDEVOP_set_iopl`), else #GP(0); the
//!   real `rflags.IOPL` stays 0. Xen latches 0xcf8 and the RTC index (0x70) per domain and
//!   forwards 0xcfc and 0x71; its own console UART reads as all-ones.
//! - CR0 reads give the virtual TS; `fpu_taskswitch`, `clts` and `mov` to CR0 flip TS (any
//!   other CR0 change is #GP). A FPU instruction with TS set bounces #NM and Xen clears
//!   TS as it does so. CR3 reads give the machine address of the current L4.
//! - `cli`/`sti` are #GP at IOPL 0 and no-ops (the upcall mask is untouched) at IOPL >= 1;
//!   `popf` cannot clear the real IF.

use xen_abi::hypercall as nr;
use xen_abi::physdev::{PHYSDEVOP_set_iopl, PhysdevSetIopl};
use xen_abi::xen::StartInfo;

use crate::console::CStr;
use crate::hypercall as hc;
use crate::mm;
use crate::traps_rt::{self as rt, Action, Buf, RFLAGS_SYSTEM, Trap, probe};
use crate::verdict::{Rc, Suite};

/// What an output register holds when the instruction never wrote it.
const SENTINEL: u64 = 0x5e5e_5e5e_5e5e_5e5e;
/// An address in the lower half that the dom0 initial mapping leaves unmapped.
const UNMAPPED: u64 = 0x10_0000;
/// CR0.TS.
const CR0_TS: u64 = 1 << 3;
/// CR0.WP.
const CR0_WP: u64 = 1 << 16;

// MSR indices.
const MSR_TSC: u32 = 0x10;
const MSR_APIC_BASE: u32 = 0x1b;
const MSR_UCODE_REV: u32 = 0x8b;
const MSR_PLATFORM_INFO: u32 = 0xce;
const MSR_MISC_FEATURES_ENABLES: u32 = 0x140;
const MSR_MISC_ENABLE: u32 = 0x1a0;
const MSR_PAT: u32 = 0x277;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
const MSR_XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;
/// An index no CPU implements.
const MSR_UNKNOWN: u32 = 0x0000_0bad;

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

    cpuid_forced(s);
    cpuid_native(s);
    msrs(s);
    io_ports(s);
    control_registers(s, si);
    fpu_ts(s);
    interrupt_flag(s);
    instructions(s);

    rt::restore_default_traps();
    rt::unmap_shared_info();
}

/// `ok`, or `#<vector>[(<error code>)]@<insn|next|other>`.
fn short(t: &Option<Trap>) -> Buf {
    match t {
        None => Buf::format(format_args!("ok")),
        Some(t) => match t.error_code {
            Some(ec) => Buf::format(format_args!("#{}({ec:#x})@{}", t.vector, t.rip_kind())),
            None => Buf::format(format_args!("#{}@{}", t.vector, t.rip_kind())),
        },
    }
}

/// The value an instruction produced, or the trap it took instead (`short`).
fn value(t: &Option<Trap>, v: u64) -> Buf {
    match t {
        None => Buf::format(format_args!("{v:#x}")),
        Some(_) => short(t),
    }
}

/// The #GP(0) at the faulting instruction that Xen bounces for what it does not emulate.
const GP0: &str = "#13(0x0)@insn";

// ---------------------------------------------------------------------------------------------
// Probes.

/// CPUID through Xen's forced-emulation prefix.
fn forced_cpuid(leaf: u32, subleaf: u32) -> (Option<Trap>, [u32; 4]) {
    let (mut a, mut c, mut d) = (leaf, subleaf, SENTINEL as u32);
    let b: u32;
    rt::arm(Action::default());
    // SAFETY: Xen emulates the prefixed CPUID (a #UD would resume after it); rbx, which asm!
    // cannot name, is saved and restored around it.
    unsafe {
        probe!(["mov %rbx, {save}", "mov $0x5e5e5e5e, %ebx"],
            ["ud2", ".ascii \"xen\"", "cpuid"],
            ["mov %ebx, {b:e}", "mov {save}, %rbx"],
            save = out(reg) _, b = out(reg) b,
            inout("eax") a, inout("ecx") c, inout("edx") d,)
    };
    (rt::take(), [a, b, c, d])
}

/// Native CPUID.
fn native_cpuid(leaf: u32, subleaf: u32) -> (Option<Trap>, [u32; 4]) {
    let (mut a, mut c, mut d) = (leaf, subleaf, SENTINEL as u32);
    let b: u32;
    rt::arm(Action::default());
    // SAFETY: CPUID has no side effects; rbx is saved and restored around it.
    unsafe {
        probe!(["mov %rbx, {save}", "mov $0x5e5e5e5e, %ebx"], ["cpuid"],
            ["mov %ebx, {b:e}", "mov {save}, %rbx"],
            save = out(reg) _, b = out(reg) b,
            inout("eax") a, inout("ecx") c, inout("edx") d,)
    };
    (rt::take(), [a, b, c, d])
}

fn rdmsr(msr: u32) -> (Option<Trap>, u64) {
    let (mut a, mut d) = (SENTINEL as u32, SENTINEL as u32);
    rt::arm(Action::default());
    // SAFETY: rdmsr at CPL 3 raises #GP, which Xen emulates or bounces.
    unsafe { probe!([], ["rdmsr"], [], in("ecx") msr, inout("eax") a, inout("edx") d,) };
    (rt::take(), (u64::from(d) << 32) | u64::from(a))
}

/// # Safety
/// Were Xen to apply the write, it must not break the guest.
unsafe fn wrmsr(msr: u32, value: u64) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: wrmsr at CPL 3 raises #GP, which Xen emulates or bounces; the caller vouches
    // for the value.
    unsafe {
        probe!([], ["wrmsr"], [],
            in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32,)
    };
    rt::take()
}

fn inb(port: u16) -> (Option<Trap>, u8) {
    let mut v = SENTINEL as u8;
    rt::arm(Action::default());
    // SAFETY: port input from ports the checks choose as harmless to read.
    unsafe { probe!([], ["in %dx, %al"], [], in("dx") port, inout("al") v,) };
    (rt::take(), v)
}

/// # Safety
/// The write must be harmless to the machine.
unsafe fn outb(port: u16, v: u8) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: the caller vouches for the port and value.
    unsafe { probe!([], ["out %al, %dx"], [], in("dx") port, in("al") v,) };
    rt::take()
}

fn inl(port: u16) -> (Option<Trap>, u32) {
    let mut v = SENTINEL as u32;
    rt::arm(Action::default());
    // SAFETY: port input from ports the checks choose as harmless to read.
    unsafe { probe!([], ["in %dx, %eax"], [], in("dx") port, inout("eax") v,) };
    (rt::take(), v)
}

/// # Safety
/// The write must be harmless to the machine.
unsafe fn outl(port: u16, v: u32) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: the caller vouches for the port and value.
    unsafe { probe!([], ["out %eax, %dx"], [], in("dx") port, in("eax") v,) };
    rt::take()
}

fn set_iopl(iopl: u32) -> i64 {
    let arg = PhysdevSetIopl { iopl };
    // SAFETY: Xen only reads the physdev_set_iopl.
    unsafe {
        hc::hypercall3(
            nr::physdev_op,
            u64::from(PHYSDEVOP_set_iopl),
            &arg as *const _ as u64,
            0,
        )
    }
}

fn fpu_taskswitch(set: bool) -> i64 {
    // SAFETY: fpu_taskswitch only changes the virtual CR0.TS.
    unsafe { hc::hypercall3(nr::fpu_taskswitch, u64::from(set), 0, 0) }
}

/// Reads a control or debug register (`mov %<reg>, <gpr>`, emulated by Xen).
macro_rules! read_reg {
    ($reg:literal) => {{
        let mut v: u64 = SENTINEL;
        rt::arm(Action::default());
        // SAFETY: reading a control/debug register has no side effects; Xen emulates it or
        // bounces #GP.
        unsafe { probe!([], [concat!("mov %", $reg, ", {v}")], [], v = inout(reg) v,) };
        (rt::take(), v)
    }};
}

/// Writes CR0 (Xen emulates the TS bit only).
fn write_cr0(v: u64) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: Xen only lets TS change; anything else is ignored or bounced.
    unsafe { probe!([], ["mov {v}, %cr0"], [], v = in(reg) v,) };
    rt::take()
}

/// Runs one x87 `fnop` (raises #NM while the virtual CR0.TS is set).
fn fnop() -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: fnop changes no state besides the FPU's instruction pointers.
    unsafe { probe!([], ["fnop"], [],) };
    rt::take()
}

/// The system bits of the real rflags.
fn rflags_system() -> u64 {
    let fl: u64;
    // SAFETY: pushf/pop only touch the stack slot they use.
    unsafe { core::arch::asm!("pushfq", "pop {f}", f = out(reg) fl, options(att_syntax)) };
    fl & RFLAGS_SYSTEM
}

fn cli() -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: cli at CPL 3 is #GP or a no-op (Xen never lets it clear the real IF).
    unsafe { probe!([], ["cli"], [],) };
    rt::take()
}

fn sti() -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: as for cli.
    unsafe { probe!([], ["sti"], [],) };
    rt::take()
}

// ---------------------------------------------------------------------------------------------
// CPUID.

fn cpuid_forced(s: &mut Suite) {
    let (t, r) = forced_cpuid(0x4000_0000, 0);
    let mut sig = [0u8; 12];
    for (chunk, word) in sig.chunks_mut(4).zip([r[1], r[2], r[3]]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    s.check(
        "cpuid_forced.0x40000000",
        t.is_none() && r[0] == 0x4000_0005 && &sig == b"XenVMMXenVMM",
        format_args!("{} eax={:#x} sig={}", short(&t), r[0], CStr(&sig)),
    );
    for (leaf, sub, check, want) in [
        (
            0x4000_0001,
            0,
            "cpuid_forced.0x40000001",
            [0x0004_0011, 0, 0, 0],
        ),
        (
            0x4000_0002,
            0,
            "cpuid_forced.0x40000002",
            [1, 0x4000_0000, 1, 0],
        ),
        (0x4000_0003, 0, "cpuid_forced.0x40000003.0", [0x4, 0, 0, 0]),
        (0x4000_0003, 1, "cpuid_forced.0x40000003.1", [0, 0, 0, 0]),
        (0x4000_0004, 0, "cpuid_forced.0x40000004", [0, 0, 0, 0]),
        (0x4000_0005, 0, "cpuid_forced.0x40000005", [0, 31, 0, 0]),
        (0x4000_0006, 0, "cpuid_forced.0x40000006", [0, 0, 0, 0]),
    ] {
        let (t, r) = forced_cpuid(leaf, sub);
        s.check(
            check,
            t.is_none() && r == want,
            format_args!(
                "{} eax={:#x} ebx={:#x} ecx={:#x} edx={:#x}",
                short(&t),
                r[0],
                r[1],
                r[2],
                r[3]
            ),
        );
    }

    // Basic leaf 0 passes the vendor and max leaf through.
    let (t, f) = forced_cpuid(0, 0);
    let (_, n) = native_cpuid(0, 0);
    let max_same = f[0] == n[0];
    let vendor_same = f[1..] == n[1..];
    s.check(
        "cpuid_forced.leaf0",
        t.is_none() && max_same && vendor_same,
        format_args!(
            "{} max_same={max_same} vendor_same={vendor_same}",
            short(&t)
        ),
    );

    // Bits that are policy for every PV guest, whatever the host has.
    // Leaf 1 ECX: DS_CPL, MONITOR, VMX, SMX, EST, TM2, PDCM, x2APIC, TSC_DEADLINE hidden;
    // HYPERVISOR set. EDX: PSE, PGE, PSE36, DS, TM, PBE hidden.
    const L1_ECX: u32 = 0x812081f8;
    const L1_EDX: u32 = 0xa022_2008;
    let (t, r) = forced_cpuid(1, 0);
    // The local APIC bit: a PV dom0 sees it (it parses the MADT's IO-APICs only with it).
    s.check(
        "cpuid_forced.leaf1_apic",
        t.is_none(),
        format_args!("{} apic={}", short(&t), r[3] & (1 << 9) != 0),
    );
    s.check(
        "cpuid_forced.leaf1_policy",
        t.is_none() && r[2] & L1_ECX == 0x8000_0000 && r[3] & L1_EDX == 0,
        format_args!(
            "{} ecx&{L1_ECX:#x}={:#x} edx&{L1_EDX:#x}={:#x}",
            short(&t),
            r[2] & L1_ECX,
            r[3] & L1_EDX
        ),
    );
    // Leaf 7.0 EBX: SMEP, SMAP hidden; ECX: UMIP, PKU hidden.
    const L7_EBX: u32 = 0x0010_0080;
    const L7_ECX: u32 = 0xc;
    let (t, r) = forced_cpuid(7, 0);
    s.check(
        "cpuid_forced.leaf7_policy",
        t.is_none() && r[1] & L7_EBX == 0 && r[2] & L7_ECX == 0,
        format_args!(
            "{} ebx&{L7_EBX:#x}={:#x} ecx&{L7_ECX:#x}={:#x}",
            short(&t),
            r[1] & L7_EBX,
            r[2] & L7_ECX
        ),
    );
    // Leaf 0x80000001 ECX: SVM, CR8_LEGACY hidden; EDX: PSE, PGE, PSE36, Page1GB hidden.
    const E1_ECX: u32 = 0x14;
    const E1_EDX: u32 = 0x0402_2008;
    let (t, r) = forced_cpuid(0x8000_0001, 0);
    s.check(
        "cpuid_forced.ext1_policy",
        t.is_none() && r[2] & E1_ECX == 0 && r[3] & E1_EDX == 0,
        format_args!(
            "{} ecx&{E1_ECX:#x}={:#x} edx&{E1_EDX:#x}={:#x}",
            short(&t),
            r[2] & E1_ECX,
            r[3] & E1_EDX
        ),
    );

    // The prefix before anything but CPUID is a plain #UD at the ud2.
    rt::arm(Action::default());
    // SAFETY: ud2 raises #UD (Xen only emulates CPUID after the prefix); the runtime resumes
    // after the nop.
    unsafe { probe!([], ["ud2", ".ascii \"xen\"", "nop"], [],) };
    let t = rt::take();
    s.expect_eq(
        "cpuid_forced.prefix_not_cpuid",
        "trap",
        short(&t).as_str(),
        "#6@insn",
    );
}

fn cpuid_native(s: &mut Suite) {
    // Native CPUID cannot be intercepted on the test CPU (no faulting, no masking MSRs): it
    // runs on the CPU, never reaches the guest's handlers, and shows no Xen leaves.
    let (t0, _) = native_cpuid(0, 0);
    let (t1, _) = native_cpuid(1, 0);
    let (th, r) = native_cpuid(0x4000_0000, 0);
    let xen_sig = [r[1], r[2], r[3]] == [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];
    let trapped = t0.is_some() || t1.is_some() || th.is_some();
    s.check(
        "cpuid_native.not_intercepted",
        !trapped && !xen_sig,
        format_args!("trapped={trapped} xen_signature={xen_sig}"),
    );
}

// ---------------------------------------------------------------------------------------------
// MSRs.

fn msrs(s: &mut Suite) {
    let (t, efer) = rdmsr(MSR_EFER);
    // SAFETY: writes EFER's own value back.
    let w = unsafe { wrmsr(MSR_EFER, efer) };
    s.check(
        "msr.efer",
        t.is_none() && efer == 0xd01 && w.is_none(),
        format_args!("read={} write_same={}", value(&t, efer), short(&w)),
    );

    for (msr, check, value) in [
        (MSR_FS_BASE, "msr.fs_base", 0x0000_1234_5678_9000u64),
        (MSR_GS_BASE, "msr.gs_base", 0x0000_2234_5678_9000),
        (
            MSR_SHADOW_GS_BASE,
            "msr.shadow_gs_base",
            0x0000_3234_5678_9000,
        ),
    ] {
        // SAFETY: the guest uses neither FS nor GS; the base goes back to 0 below.
        let w = unsafe { wrmsr(msr, value) };
        let (r, got) = rdmsr(msr);
        let others: [u64; 3] = [MSR_FS_BASE, MSR_GS_BASE, MSR_SHADOW_GS_BASE]
            .map(|m| if m == msr { 0 } else { rdmsr(m).1 });
        // SAFETY: as above.
        let w0 = unsafe { wrmsr(msr, 0) };
        let (_, zero) = rdmsr(msr);
        s.check(
            check,
            w.is_none()
                && r.is_none()
                && got == value
                && others == [0; 3]
                && w0.is_none()
                && zero == 0,
            format_args!(
                "write={} read={} roundtrip={} others_untouched={} reset={}",
                short(&w),
                short(&r),
                got == value,
                others == [0; 3],
                zero == 0
            ),
        );
    }

    let (t, pat) = rdmsr(MSR_PAT);
    // SAFETY: writes PAT's own value back (Xen refuses PAT writes from PV guests anyway).
    let w = unsafe { wrmsr(MSR_PAT, pat) };
    s.check(
        "msr.pat",
        t.is_none() && pat == 0x0000_0501_0007_0406 && short(&w).as_str() == GP0,
        format_args!("read={} write_same={}", value(&t, pat), short(&w)),
    );

    let (t, base) = rdmsr(MSR_APIC_BASE);
    // SAFETY: writes APIC_BASE's own value back (refused by Xen).
    let w = unsafe { wrmsr(MSR_APIC_BASE, base) };
    s.check(
        "msr.apic_base",
        t.is_none() && base == 0xfee0_0900 && short(&w).as_str() == GP0,
        format_args!("read={} write_same={}", value(&t, base), short(&w)),
    );

    let (t, misc) = rdmsr(MSR_MISC_ENABLE);
    // SAFETY: writes MISC_ENABLE's own value back (Xen drops it).
    let w = unsafe { wrmsr(MSR_MISC_ENABLE, misc) };
    s.check(
        "msr.misc_enable",
        t.is_none() && misc == 0x80_1801 && w.is_none(),
        format_args!("read={} write_same={}", value(&t, misc), short(&w)),
    );

    // The microcode revision Xen read from the CPU (QEMU's 0x01000065).
    let (t, rev) = rdmsr(MSR_UCODE_REV);
    // SAFETY: refused by Xen; were it accepted, 0 is what software writes before CPUID.
    let w = unsafe { wrmsr(MSR_UCODE_REV, 0) };
    s.check(
        "msr.ucode_rev",
        t.is_none() && rev == 0x0100_0065 && short(&w).as_str() == GP0,
        format_args!("read={} write={}", value(&t, rev), short(&w)),
    );

    // Xen's CPUID-faulting MSRs: readable, no faulting offered on this CPU.
    let (t1, pi) = rdmsr(MSR_PLATFORM_INFO);
    let (t2, mfe) = rdmsr(MSR_MISC_FEATURES_ENABLES);
    s.check(
        "msr.cpuid_faulting_msrs",
        t1.is_none() && t2.is_none() && pi == 0 && mfe == 0,
        format_args!(
            "platform_info={} misc_features_enables={}",
            value(&t1, pi),
            value(&t2, mfe)
        ),
    );

    let (t, hp) = rdmsr(MSR_XEN_HYPERCALL_PAGE);
    s.check(
        "msr.xen_hypercall_page_read",
        t.is_none() && hp == 0,
        format_args!("read={}", value(&t, hp)),
    );

    let (t, tsc) = rdmsr(MSR_TSC);
    s.check(
        "msr.tsc_read",
        t.is_none() && tsc != 0 && tsc != SENTINEL,
        format_args!("{} nonzero={}", short(&t), tsc != 0),
    );

    let (t, _) = rdmsr(MSR_LSTAR);
    s.expect_eq("msr.lstar_read", "trap", short(&t).as_str(), GP0);

    let (t, v) = rdmsr(MSR_UNKNOWN);
    s.check(
        "msr.unknown_read",
        short(&t).as_str() == GP0 && v == SENTINEL,
        format_args!("trap={} untouched={}", short(&t), v == SENTINEL),
    );
    // SAFETY: no CPU implements the MSR; Xen refuses the write.
    let w = unsafe { wrmsr(MSR_UNKNOWN, 0) };
    s.expect_eq("msr.unknown_write", "trap", short(&w).as_str(), GP0);
}

// ---------------------------------------------------------------------------------------------
// Port I/O.

fn io_ports(s: &mut Suite) {
    // Dom0 starts at virtual IOPL 0 (set again in case an earlier suite changed it).
    let rc = set_iopl(0);
    let (ti, _) = inb(0x80);
    // SAFETY: port 0x80 is the POST diagnostic port, harmless to write.
    let to = unsafe { outb(0x80, 0) };
    s.check(
        "io.iopl0",
        rc == 0 && short(&ti).as_str() == GP0 && short(&to).as_str() == GP0,
        format_args!("rc={} in={} out={}", Rc(rc), short(&ti), short(&to)),
    );

    for (iopl, check) in [(1, "io.iopl1"), (3, "io.iopl3")] {
        let rc = set_iopl(iopl);
        let (ti, v) = inb(0x80);
        // SAFETY: as above.
        let to = unsafe { outb(0x80, 0) };
        let fl = rflags_system();
        s.check(
            check,
            rc == 0 && ti.is_none() && v == 0xff && to.is_none() && fl == 0x200,
            format_args!(
                "rc={} in={} val={v:#x} out={} real_rflags={fl:#x}",
                Rc(rc),
                short(&ti),
                short(&to)
            ),
        );
    }
    let rc = set_iopl(1);

    // PCI configuration mechanism #1: 0xcf8 is latched per domain, 0xcfc forwarded.
    // SAFETY: selects 00:00.0 register 0; reads only.
    let w = unsafe { outl(0xcf8, 0x8000_0000) };
    let (r, cf8) = inl(0xcf8);
    let (d, id) = inl(0xcfc);
    // SAFETY: selects 00:00.0 register 8.
    unsafe { outl(0xcf8, 0x8000_0008) };
    let (_, class) = inl(0xcfc);
    // SAFETY: deselects.
    unsafe { outl(0xcf8, 0) };
    let (_, cf8_off) = inl(0xcf8);
    s.check(
        "io.pci_conf1",
        rc == 0
            && w.is_none()
            && r.is_none()
            && d.is_none()
            && cf8 == 0x8000_0000
            && id == 0x29c0_8086
            && class == 0x0600_0000
            && cf8_off == 0,
        format_args!(
            "cf8={cf8:#x} id={id:#x} class_rev={class:#x} cf8_after={cf8_off:#x} traps={}{}{}",
            short(&w),
            short(&r),
            short(&d)
        ),
    );

    // The RTC index is latched by Xen (all 8 bits) and reads back; 0x71 reaches the RTC.
    // SAFETY: selects RTC status register D (NMI-disable bit set, as Linux does); reads only.
    let w = unsafe { outb(0x70, 0x8d) };
    let (r, idx) = inb(0x70);
    let (d, reg_d) = inb(0x71);
    // SAFETY: selects status register A.
    unsafe { outb(0x70, 0x0a) };
    let (_, reg_a) = inb(0x71);
    // SAFETY: selects status register B.
    unsafe { outb(0x70, 0x0b) };
    let (_, reg_b) = inb(0x71);
    // UIP (register A bit 7) flips once a second: not compared.
    let reg_a = reg_a & 0x7f;
    s.check(
        "io.rtc",
        w.is_none()
            && r.is_none()
            && d.is_none()
            && idx == 0x8d
            && reg_d == 0x80
            && reg_a == 0x26
            && reg_b == 0x02,
        format_args!(
            "index={idx:#x} reg_d={reg_d:#x} reg_a={reg_a:#x} reg_b={reg_b:#x} traps={}{}{}",
            short(&w),
            short(&r),
            short(&d)
        ),
    );

    // The hypervisor's console UART (COM1) is not dom0's: its line status reads as all-ones.
    let (t, lsr) = inb(0x3fd);
    s.check(
        "io.console_uart_hidden",
        t.is_none() && lsr == 0xff,
        format_args!("lsr={}", value(&t, u64::from(lsr))),
    );

    let rc = set_iopl(0);
    let (t, _) = inb(0x80);
    s.check(
        "io.iopl0_again",
        rc == 0 && short(&t).as_str() == GP0,
        format_args!("rc={} in={}", Rc(rc), short(&t)),
    );
}

// ---------------------------------------------------------------------------------------------
// Control and debug registers.

fn control_registers(s: &mut Suite, si: &StartInfo) {
    let (t, cr0) = read_reg!("cr0");
    s.check(
        "cr.cr0_read",
        t.is_none() && cr0 == 0x8005_0033,
        format_args!("read={}", value(&t, cr0)),
    );

    let (t, cr3) = read_reg!("cr3");
    let l4 = mm::p2m(si)[mm::va_to_pfn(si.pt_base) as usize] * mm::PAGE_SIZE;
    s.check(
        "cr.cr3_read",
        t.is_none() && cr3 == l4,
        format_args!("{} is_pt_base_maddr={}", short(&t), cr3 == l4),
    );

    let (t, cr4) = read_reg!("cr4");
    s.check(
        "cr.cr4_read",
        t.is_none() && cr4 == 0x660,
        format_args!("read={}", value(&t, cr4)),
    );
    rt::arm(Action::default());
    // SAFETY: writes CR4's own (virtual) value back.
    unsafe { probe!([], ["mov {v}, %cr4"], [], v = in(reg) cr4,) };
    let w = rt::take();
    let (_, cr4_after) = read_reg!("cr4");
    s.check(
        "cr.cr4_write_same",
        w.is_none() && cr4_after == cr4,
        format_args!("write={} unchanged={}", short(&w), cr4_after == cr4),
    );

    // CR2 is the last #PF address (Xen's virtual CR2, as in vcpu_info.arch.cr2).
    rt::arm(Action::default());
    // SAFETY: reading an unmapped address raises #PF; nothing is read.
    unsafe { probe!([], ["mov ({a}), {a}"], [], a = inout(reg) UNMAPPED => _,) };
    let pf = rt::take();
    let (t, cr2) = read_reg!("cr2");
    let vcpu_cr2 = rt::vcpu_cr2();
    s.check(
        "cr.cr2_read",
        short(&pf).as_str() == "#14(0x0)@insn"
            && t.is_none()
            && cr2 == UNMAPPED
            && vcpu_cr2 == UNMAPPED,
        format_args!(
            "pf={} read={} is_fault_addr={} vcpu_info_cr2_same={}",
            short(&pf),
            short(&t),
            cr2 == UNMAPPED,
            vcpu_cr2 == UNMAPPED
        ),
    );

    let (t, _) = read_reg!("cr8");
    s.expect_eq("cr.cr8_read", "trap", short(&t).as_str(), GP0);

    // Only TS may change: any other CR0 change is refused with #GP(0).
    let w = write_cr0(cr0 & !CR0_WP);
    let (_, after) = read_reg!("cr0");
    s.check(
        "cr.cr0_write_wp_refused",
        short(&w).as_str() == GP0 && after == cr0,
        format_args!("write={} cr0={after:#x}", short(&w)),
    );

    let (t, dr7) = read_reg!("dr7");
    s.check(
        "cr.dr7_read",
        t.is_none() && dr7 == 0x400,
        format_args!("read={}", value(&t, dr7)),
    );
}

// ---------------------------------------------------------------------------------------------
// The virtual CR0.TS.

fn fpu_ts(s: &mut Suite) {
    let cr0_ts = || read_reg!("cr0").1 & CR0_TS != 0;
    rt::set_gate(7, 0, false);

    let rc = fpu_taskswitch(true);
    let ts_set = cr0_ts();
    let nm = fnop();
    let ts_after = cr0_ts();
    let again = fnop();
    s.check(
        "ts.fpu_taskswitch_nm",
        rc == 0 && ts_set && short(&nm).as_str() == "#7@insn" && !ts_after && again.is_none(),
        format_args!(
            "rc={} ts={ts_set} fnop={} ts_after_nm={ts_after} fnop_again={}",
            Rc(rc),
            short(&nm),
            short(&again)
        ),
    );

    let rc1 = fpu_taskswitch(true);
    let rc0 = fpu_taskswitch(false);
    let ts = cr0_ts();
    let f = fnop();
    s.check(
        "ts.fpu_taskswitch_clear",
        rc1 == 0 && rc0 == 0 && !ts && f.is_none(),
        format_args!("rc={}/{} ts={ts} fnop={}", Rc(rc1), Rc(rc0), short(&f)),
    );

    fpu_taskswitch(true);
    rt::arm(Action::default());
    // SAFETY: clts only clears the virtual CR0.TS.
    unsafe { probe!([], ["clts"], [],) };
    let c = rt::take();
    let ts = cr0_ts();
    let f = fnop();
    s.check(
        "ts.clts",
        c.is_none() && !ts && f.is_none(),
        format_args!("clts={} ts={ts} fnop={}", short(&c), short(&f)),
    );

    let cr0 = read_reg!("cr0").1;
    let w1 = write_cr0(cr0 | CR0_TS);
    let ts1 = cr0_ts();
    let nm = fnop();
    let w0 = write_cr0(cr0 & !CR0_TS);
    let ts0 = cr0_ts();
    s.check(
        "ts.mov_cr0",
        w1.is_none() && ts1 && short(&nm).as_str() == "#7@insn" && w0.is_none() && !ts0,
        format_args!(
            "set={} ts={ts1} fnop={} clear={} ts={ts0}",
            short(&w1),
            short(&nm),
            short(&w0)
        ),
    );
    fpu_taskswitch(false);
}

// ---------------------------------------------------------------------------------------------
// cli/sti/pushf/popf.

fn interrupt_flag(s: &mut Suite) {
    let mask = rt::upcall_mask();
    let rc = set_iopl(0);
    let fl = rflags_system();
    let c = cli();
    let t = sti();
    s.check(
        "if.iopl0",
        rc == 0 && fl == 0x200 && short(&c).as_str() == GP0 && short(&t).as_str() == GP0,
        format_args!("real_rflags={fl:#x} cli={} sti={}", short(&c), short(&t)),
    );

    let rc = set_iopl(1);
    let c = cli();
    let mask_cli = rt::upcall_mask();
    let t = sti();
    let mask_sti = rt::upcall_mask();
    let fl = rflags_system();
    s.check(
        "if.iopl1",
        rc == 0
            && c.is_none()
            && t.is_none()
            && mask_cli == mask
            && mask_sti == mask
            && fl == 0x200,
        format_args!(
            "cli={} sti={} mask_kept={} real_rflags={fl:#x}",
            short(&c),
            short(&t),
            mask_cli == mask && mask_sti == mask
        ),
    );
    set_iopl(0);

    let fl: u64;
    rt::arm(Action::default());
    // SAFETY: popf with IF clear at CPL 3 and IOPL 0 silently keeps IF; the stack is balanced.
    unsafe {
        probe!([], ["pushfq", "andq $~0x200, (%rsp)", "popfq"], ["pushfq", "pop {f}"],
            f = out(reg) fl,)
    };
    let t = rt::take();
    s.check(
        "if.popf_cannot_clear",
        t.is_none() && fl & RFLAGS_SYSTEM == 0x200,
        format_args!("popf={} real_rflags={:#x}", short(&t), fl & RFLAGS_SYSTEM),
    );
}

// ---------------------------------------------------------------------------------------------
// Other instructions.

fn instructions(s: &mut Suite) {
    rt::arm(Action::default());
    // SAFETY: wbinvd writes back caches (Xen runs it for dom0, or ignores it).
    unsafe { probe!([], ["wbinvd"], [],) };
    s.expect_eq("insn.wbinvd", "trap", short(&rt::take()).as_str(), "ok");

    rt::arm(Action::default());
    // SAFETY: invlpg of one of the guest's own pages is harmless (and Xen refuses it).
    unsafe { probe!([], ["invlpg ({a})"], [], a = in(reg) rt::test_page_va(),) };
    s.expect_eq("insn.invlpg", "trap", short(&rt::take()).as_str(), GP0);

    let (lo1, hi1, lo2, hi2): (u32, u32, u32, u32);
    rt::arm(Action::default());
    // SAFETY: rdtsc only reads the TSC.
    unsafe {
        probe!([], ["rdtsc", "mov %eax, {a:e}", "mov %edx, {b:e}", "rdtsc"], [],
            a = out(reg) lo1, b = out(reg) hi1, out("eax") lo2, out("edx") hi2,)
    };
    let t = rt::take();
    let t1 = (u64::from(hi1) << 32) | u64::from(lo1);
    let t2 = (u64::from(hi2) << 32) | u64::from(lo2);
    s.check(
        "insn.rdtsc",
        t.is_none() && t2 > t1,
        format_args!("{} increasing={}", short(&t), t2 > t1),
    );

    let aux: u32;
    rt::arm(Action::default());
    // SAFETY: rdtscp only reads the TSC and TSC_AUX.
    unsafe { probe!([], ["rdtscp"], [], out("eax") _, out("edx") _, out("ecx") aux,) };
    let t = rt::take();
    s.check(
        "insn.rdtscp",
        t.is_none() && aux == 0,
        format_args!("aux={}", value(&t, u64::from(aux))),
    );

    rt::arm(Action::default());
    // SAFETY: rdpmc only reads a counter (CR4.PCE is clear: #GP).
    unsafe { probe!([], ["rdpmc"], [], in("ecx") 0, out("eax") _, out("edx") _,) };
    s.expect_eq("insn.rdpmc", "trap", short(&rt::take()).as_str(), GP0);

    rt::arm(Action::default());
    // SAFETY: xgetbv only reads XCR0.
    unsafe { probe!([], ["xgetbv"], [], in("ecx") 0, out("eax") _, out("edx") _,) };
    s.expect_eq("insn.xgetbv", "trap", short(&rt::take()).as_str(), "ok");

    rt::arm(Action::default());
    // SAFETY: loads the IDTR with its own value (sidt); refused at CPL 3 anyway.
    unsafe {
        probe!(
            ["sub $16, %rsp", "sidt (%rsp)"],
            ["lidt (%rsp)"],
            ["add $16, %rsp"],
        )
    };
    s.expect_eq("insn.lidt", "trap", short(&rt::take()).as_str(), GP0);

    rt::arm(Action::default());
    // SAFETY: ltr is refused at CPL 3.
    unsafe { probe!([], ["ltr {a:x}"], [], a = in(reg) 0x28u64,) };
    s.expect_eq("insn.ltr", "trap", short(&rt::take()).as_str(), GP0);

    rt::arm(Action::default());
    // SAFETY: swapgs is refused at CPL 3.
    unsafe { probe!([], ["swapgs"], [],) };
    s.expect_eq("insn.swapgs", "trap", short(&rt::take()).as_str(), GP0);

    rt::arm(Action::default());
    // SAFETY: rdfsbase only reads FS's base (CR4.FSGSBASE is clear for the guest: #UD).
    unsafe { probe!([], ["rdfsbase {a}"], [], a = out(reg) _,) };
    s.expect_eq(
        "insn.rdfsbase",
        "trap",
        short(&rt::take()).as_str(),
        "#6@insn",
    );
}
