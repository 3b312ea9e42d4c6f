//! `emul`: exploration build (temporary).

use xen_abi::hypercall as nr;
use xen_abi::xen::StartInfo;

use crate::console::println;
use crate::hypercall as hc;
use crate::traps_rt::{self as rt, Action, Trap, probe};
use crate::verdict::Suite;

const SENTINEL: u64 = 0x5e5e_5e5e_5e5e_5e5e;

fn t(x: &Option<Trap>) -> crate::traps_rt::Buf {
    match x {
        Some(t) => crate::traps_rt::Buf::format(format_args!("TRAP[{}]", t.summary())),
        None => crate::traps_rt::Buf::format(format_args!("ok")),
    }
}

fn cpuid_forced(leaf: u32, sub: u32) -> (Option<Trap>, [u32; 4]) {
    let (mut a, mut c, mut d) = (leaf, sub, 0xdead_u32);
    let b: u32;
    rt::arm(Action::default());
    // SAFETY: forced-emulation CPUID; a #UD resumes after it.
    unsafe {
        probe!(["mov %rbx, {save}", "mov $0xdead, %ebx"], ["ud2", ".ascii \"xen\"", "cpuid"],
            ["mov %ebx, {b:e}", "mov {save}, %rbx"],
            save = out(reg) _, b = out(reg) b,
            inout("eax") a, inout("ecx") c, inout("edx") d,)
    };
    (rt::take(), [a, b, c, d])
}

fn cpuid_native(leaf: u32, sub: u32) -> (Option<Trap>, [u32; 4]) {
    let (mut a, mut c, mut d) = (leaf, sub, 0xdead_u32);
    let b: u32;
    rt::arm(Action::default());
    // SAFETY: native CPUID.
    unsafe {
        probe!(["mov %rbx, {save}", "mov $0xdead, %ebx"], ["cpuid"],
            ["mov %ebx, {b:e}", "mov {save}, %rbx"],
            save = out(reg) _, b = out(reg) b,
            inout("eax") a, inout("ecx") c, inout("edx") d,)
    };
    (rt::take(), [a, b, c, d])
}

fn rdmsr(msr: u32) -> (Option<Trap>, u64) {
    let (mut a, mut d) = (SENTINEL as u32, SENTINEL as u32);
    rt::arm(Action::default());
    // SAFETY: rdmsr faults at CPL 3; Xen emulates or injects #GP.
    unsafe {
        probe!([], ["rdmsr"], [], in("ecx") msr, inout("eax") a, inout("edx") d,)
    };
    (rt::take(), (u64::from(d) << 32) | u64::from(a))
}

fn wrmsr(msr: u32, v: u64) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: wrmsr faults at CPL 3; Xen emulates or injects #GP.
    unsafe {
        probe!([], ["wrmsr"], [], in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32,)
    };
    rt::take()
}

fn inb(port: u16) -> (Option<Trap>, u8) {
    let mut a: u8 = 0x5e;
    rt::arm(Action::default());
    // SAFETY: port input.
    unsafe { probe!([], ["in %dx, %al"], [], in("dx") port, inout("al") a,) };
    (rt::take(), a)
}

fn outb(port: u16, v: u8) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: port output to a harmless port.
    unsafe { probe!([], ["out %al, %dx"], [], in("dx") port, in("al") v,) };
    rt::take()
}

fn inl(port: u16) -> (Option<Trap>, u32) {
    let mut a: u32 = 0x5e5e_5e5e;
    rt::arm(Action::default());
    // SAFETY: port input.
    unsafe { probe!([], ["in %dx, %eax"], [], in("dx") port, inout("eax") a,) };
    (rt::take(), a)
}

fn outl(port: u16, v: u32) -> Option<Trap> {
    rt::arm(Action::default());
    // SAFETY: port output.
    unsafe { probe!([], ["out %eax, %dx"], [], in("dx") port, in("eax") v,) };
    rt::take()
}

fn set_iopl(iopl: u32) -> i64 {
    let arg = xen_abi::physdev::PhysdevSetIopl { iopl };
    // SAFETY: Xen reads the struct.
    unsafe {
        hc::hypercall3(
            nr::physdev_op,
            u64::from(xen_abi::physdev::PHYSDEVOP_set_iopl),
            &arg as *const _ as u64,
            0,
        )
    }
}

macro_rules! read_cr {
    ($cr:literal) => {{
        let mut v: u64 = SENTINEL;
        rt::arm(Action::default());
        // SAFETY: emulated CR read.
        unsafe { probe!([], [concat!("mov %", $cr, ", {v}")], [], v = inout(reg) v,) };
        (rt::take(), v)
    }};
}

/// Runs the suite.
pub fn run(_s: &mut Suite, si: &StartInfo) {
    rt::map_shared_info(si);
    rt::install_exceptions();
    for leaf in [0x4000_0000u32, 0x4000_0001, 0x4000_0002, 0x4000_0003, 0x4000_0004, 0x4000_0005, 0x4000_0006, 0x4000_0100, 0, 1, 7, 0xd, 0x8000_0000, 0x8000_0001] {
        let (tf, f) = cpuid_forced(leaf, 0);
        let (tn, n) = cpuid_native(leaf, 0);
        println!("PVTEST note cpuid {leaf:#x}: forced {} {:#x} {:#x} {:#x} {:#x}", t(&tf), f[0], f[1], f[2], f[3]);
        println!("PVTEST note cpuid {leaf:#x}: native {} {:#x} {:#x} {:#x} {:#x}", t(&tn), n[0], n[1], n[2], n[3]);
    }
    let (tf, f) = cpuid_forced(0x4000_0003, 1);
    println!("PVTEST note cpuid 0x40000003.1: forced {} {:#x} {:#x} {:#x} {:#x}", t(&tf), f[0], f[1], f[2], f[3]);
    let (tf, f) = cpuid_forced(0x4000_0003, 2);
    println!("PVTEST note cpuid 0x40000003.2: forced {} {:#x} {:#x} {:#x} {:#x}", t(&tf), f[0], f[1], f[2], f[3]);
    rt::arm(Action::default());
    // SAFETY: forced emulation of a non-CPUID instruction.
    unsafe { probe!([], ["ud2", ".ascii \"xen\"", "nop"], [],) };
    println!("PVTEST note forced nop: {}", t(&rt::take()));

    for msr in [0xc000_0080u32, 0xc000_0100, 0xc000_0101, 0xc000_0102, 0x277, 0x1b, 0x1a0, 0x8b, 0x10, 0x3a, 0xce, 0x140, 0x48, 0x10a, 0x17, 0x2ff, 0xfe, 0xc000_0081, 0xc000_0082, 0xc000_0084, 0x174, 0x4000_0000, 0xbad, 0xc001_0015, 0x1d9, 0xc000_0103] {
        let (tr, v) = rdmsr(msr);
        println!("PVTEST note rdmsr {msr:#x}: {} {v:#x}", t(&tr));
    }
    let x = wrmsr(0xc000_0100, 0x1234_5000);
    let (y, v) = rdmsr(0xc000_0100);
    println!("PVTEST note wr fs: {} rd {} {v:#x}", t(&x), t(&y));
    wrmsr(0xc000_0100, 0);
    let x = wrmsr(0xc000_0101, 0x2234_5000);
    let (y, v) = rdmsr(0xc000_0101);
    println!("PVTEST note wr gs: {} rd {} {v:#x}", t(&x), t(&y));
    let (_, v2) = rdmsr(0xc000_0102);
    println!("PVTEST note after gs kgs={v2:#x}");
    wrmsr(0xc000_0101, 0);
    let x = wrmsr(0xc000_0102, 0x3234_5000);
    let (y, v) = rdmsr(0xc000_0102);
    println!("PVTEST note wr kgs: {} rd {} {v:#x}", t(&x), t(&y));
    wrmsr(0xc000_0102, 0);
    let (_, efer) = rdmsr(0xc000_0080);
    println!("PVTEST note wr efer same: {}", t(&wrmsr(0xc000_0080, efer)));
    let (_, pat) = rdmsr(0x277);
    println!("PVTEST note wr pat same: {}", t(&wrmsr(0x277, pat)));
    println!("PVTEST note wr pat other: {}", t(&wrmsr(0x277, 0x0007_0406_0007_0406)));
    let (_, pat2) = rdmsr(0x277);
    println!("PVTEST note pat after {pat2:#x}");
    println!("PVTEST note wr bad: {}", t(&wrmsr(0xbad, 0)));
    let (_, me) = rdmsr(0x1a0);
    println!("PVTEST note wr misc same: {}", t(&wrmsr(0x1a0, me)));
    let (_, ab) = rdmsr(0x1b);
    println!("PVTEST note wr apicbase same: {}", t(&wrmsr(0x1b, ab)));
    println!("PVTEST note wr ucode: {}", t(&wrmsr(0x8b, 0)));

    // I/O
    let (x, v) = inb(0x80);
    println!("PVTEST note inb 0x80 iopl?: {} {v:#x}", t(&x));
    println!("PVTEST note outb 0x80: {}", t(&outb(0x80, 0x12)));
    let (x, v) = inb(0x71);
    println!("PVTEST note inb 0x71: {} {v:#x}", t(&x));
    let (x, v) = inl(0xcf8);
    println!("PVTEST note inl 0xcf8: {} {v:#x}", t(&x));
    for iopl in [1u32, 3] {
        println!("PVTEST note set_iopl {iopl} rc={}", set_iopl(iopl));
        let (x, v) = inb(0x80);
        println!("PVTEST note inb 0x80: {} {v:#x}", t(&x));
        println!("PVTEST note outb 0x80: {}", t(&outb(0x80, 0x12)));
        let (x, v) = inb(0x80);
        println!("PVTEST note inb 0x80 again: {} {v:#x}", t(&x));
        let (x, v) = inl(0xcf8);
        println!("PVTEST note inl 0xcf8: {} {v:#x}", t(&x));
        println!("PVTEST note outl 0xcf8: {}", t(&outl(0xcf8, 0x8000_0000)));
        let (x, v) = inl(0xcf8);
        println!("PVTEST note inl 0xcf8: {} {v:#x}", t(&x));
        let (x, v) = inl(0xcfc);
        println!("PVTEST note inl 0xcfc: {} {v:#x}", t(&x));
        outl(0xcf8, 0x8000_0008);
        let (x, v) = inl(0xcfc);
        println!("PVTEST note inl 0xcfc (08): {} {v:#x}", t(&x));
        outl(0xcf8, 0);
        let (x, v) = inb(0x70);
        println!("PVTEST note inb 0x70: {} {v:#x}", t(&x));
        println!("PVTEST note outb 0x70: {}", t(&outb(0x70, 0x8d)));
        let (x, v) = inb(0x70);
        println!("PVTEST note inb 0x70: {} {v:#x}", t(&x));
        let (x, v) = inb(0x71);
        println!("PVTEST note inb 0x71 (reg d): {} {v:#x}", t(&x));
        outb(0x70, 0x0a);
        let (x, v) = inb(0x71);
        println!("PVTEST note inb 0x71 (reg a): {} {v:#x}", t(&x));
        outb(0x70, 0x0b);
        let (x, v) = inb(0x71);
        println!("PVTEST note inb 0x71 (reg b): {} {v:#x}", t(&x));
        let (x, v) = inb(0x21);
        println!("PVTEST note inb 0x21 (pic): {} {v:#x}", t(&x));
        let (x, v) = inb(0x3f8 + 5);
        println!("PVTEST note inb 0x3fd (com1): {} {v:#x}", t(&x));
        let (x, v) = inb(0x61);
        println!("PVTEST note inb 0x61: {} {v:#x}", t(&x));
        let (x, v) = inb(0x64);
        println!("PVTEST note inb 0x64: {} {v:#x}", t(&x));
    }
    println!("PVTEST note set_iopl 0 rc={}", set_iopl(0));
    let (x, v) = inb(0x80);
    println!("PVTEST note inb 0x80 iopl0: {} {v:#x}", t(&x));

    // CRs
    let (x, v) = read_cr!("cr0");
    println!("PVTEST note cr0: {} {v:#x}", t(&x));
    let (x, v) = read_cr!("cr2");
    println!("PVTEST note cr2: {} {v:#x}", t(&x));
    let (x, v) = read_cr!("cr3");
    let pt = crate::mm::p2m(si)[crate::mm::va_to_pfn(si.pt_base) as usize] << 12;
    println!("PVTEST note cr3: {} match={}", t(&x), v == pt);
    let (x, v) = read_cr!("cr4");
    println!("PVTEST note cr4: {} {v:#x}", t(&x));
    let (x, v) = read_cr!("cr8");
    println!("PVTEST note cr8: {} {v:#x}", t(&x));

    // TS
    // SAFETY: fpu_taskswitch(1).
    let rc = unsafe { hc::hypercall3(nr::fpu_taskswitch, 1, 0, 0) };
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note fpu_taskswitch(1) rc={rc} cr0={v:#x}");
    rt::set_gate(7, 0, false);
    rt::arm(Action::default());
    // SAFETY: x87 no-op.
    unsafe { probe!([], ["fnop"], [],) };
    println!("PVTEST note fnop: {}", t(&rt::take()));
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note cr0 after: {v:#x}");
    rt::arm(Action::default());
    // SAFETY: x87 no-op.
    unsafe { probe!([], ["fnop"], [],) };
    println!("PVTEST note fnop 2: {}", t(&rt::take()));
    // SAFETY: fpu_taskswitch(1).
    unsafe { hc::hypercall3(nr::fpu_taskswitch, 1, 0, 0) };
    rt::arm(Action::default());
    // SAFETY: clts.
    unsafe { probe!([], ["clts"], [],) };
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note clts: {} cr0={v:#x}", t(&rt::take()));
    let (_, cr0) = read_cr!("cr0");
    rt::arm(Action::default());
    // SAFETY: set TS through mov to cr0.
    unsafe { probe!([], ["mov {v}, %cr0"], [], v = in(reg) cr0 | 8,) };
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note mov cr0|TS: {} cr0={v:#x}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: clear TS through mov to cr0.
    unsafe { probe!([], ["mov {v}, %cr0"], [], v = in(reg) cr0 & !8,) };
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note mov cr0&~TS: {} cr0={v:#x}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: attempt to clear WP.
    unsafe { probe!([], ["mov {v}, %cr0"], [], v = in(reg) cr0 & !(1 << 16),) };
    let (_, v) = read_cr!("cr0");
    println!("PVTEST note mov cr0&~WP: {} cr0={v:#x}", t(&rt::take()));
    let (_, cr4) = read_cr!("cr4");
    rt::arm(Action::default());
    // SAFETY: write cr4 same.
    unsafe { probe!([], ["mov {v}, %cr4"], [], v = in(reg) cr4,) };
    println!("PVTEST note mov cr4 same: {}", t(&rt::take()));

    // cli/sti/pushf/popf
    let fl: u64;
    // SAFETY: pushf.
    unsafe { core::arch::asm!("pushfq", "pop {f}", f = out(reg) fl) };
    println!("PVTEST note pushf: {fl:#x}");
    rt::arm(Action::default());
    // SAFETY: cli.
    unsafe { probe!([], ["cli"], [],) };
    println!("PVTEST note cli iopl0: {} mask={}", t(&rt::take()), rt::upcall_mask());
    rt::arm(Action::default());
    // SAFETY: sti.
    unsafe { probe!([], ["sti"], [],) };
    println!("PVTEST note sti iopl0: {} mask={}", t(&rt::take()), rt::upcall_mask());
    set_iopl(1);
    rt::arm(Action::default());
    // SAFETY: cli.
    unsafe { probe!([], ["cli"], [],) };
    println!("PVTEST note cli iopl1: {} mask={}", t(&rt::take()), rt::upcall_mask());
    rt::arm(Action::default());
    // SAFETY: sti.
    unsafe { probe!([], ["sti"], [],) };
    println!("PVTEST note sti iopl1: {} mask={}", t(&rt::take()), rt::upcall_mask());
    let fl: u64;
    // SAFETY: pushf.
    unsafe { core::arch::asm!("pushfq", "pop {f}", f = out(reg) fl) };
    println!("PVTEST note pushf iopl1: {fl:#x}");
    set_iopl(3);
    let fl: u64;
    // SAFETY: pushf.
    unsafe { core::arch::asm!("pushfq", "pop {f}", f = out(reg) fl) };
    println!("PVTEST note pushf iopl3: {fl:#x}");
    rt::arm(Action::default());
    // SAFETY: cli.
    unsafe { probe!([], ["cli"], [],) };
    println!("PVTEST note cli iopl3: {} mask={}", t(&rt::take()), rt::upcall_mask());
    set_iopl(0);
    let fl: u64;
    rt::arm(Action::default());
    // SAFETY: popf clearing IF, then pushf.
    unsafe { probe!([], ["pushfq", "andq $~0x200, (%rsp)", "popfq"], ["pushfq", "pop {f}"], f = out(reg) fl,) };
    println!("PVTEST note popf ~IF: {} after={fl:#x}", t(&rt::take()));

    // misc insns
    rt::arm(Action::default());
    // SAFETY: wbinvd.
    unsafe { probe!([], ["wbinvd"], [],) };
    println!("PVTEST note wbinvd: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: invlpg.
    unsafe { probe!([], ["invlpg ({a})"], [], a = in(reg) rt::test_page_va(),) };
    println!("PVTEST note invlpg: {}", t(&rt::take()));
    let (lo1, hi1, lo2, hi2): (u32, u32, u32, u32);
    rt::arm(Action::default());
    // SAFETY: rdtsc.
    unsafe { probe!([], ["rdtsc", "mov %eax, {a:e}", "mov %edx, {b:e}", "rdtsc"], [], a = out(reg) lo1, b = out(reg) hi1, out("eax") lo2, out("edx") hi2,) };
    let t1 = (u64::from(hi1) << 32) | u64::from(lo1);
    let t2 = (u64::from(hi2) << 32) | u64::from(lo2);
    println!("PVTEST note rdtsc: {} inc={}", t(&rt::take()), t2 > t1);
    let (lo, hi, aux): (u32, u32, u32);
    rt::arm(Action::default());
    // SAFETY: rdtscp.
    unsafe { probe!([], ["rdtscp"], [], out("eax") lo, out("edx") hi, out("ecx") aux,) };
    println!("PVTEST note rdtscp: {} {lo:#x} {hi:#x} aux={aux:#x}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: rdpmc 0.
    unsafe { probe!([], ["rdpmc"], [], in("ecx") 0, out("eax") _, out("edx") _,) };
    println!("PVTEST note rdpmc: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: xgetbv 0.
    unsafe { probe!([], ["xgetbv"], [], in("ecx") 0, out("eax") _, out("edx") _,) };
    println!("PVTEST note xgetbv: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: mov dr7.
    unsafe { probe!([], ["mov %dr7, {a}"], [], a = out(reg) _,) };
    println!("PVTEST note mov dr7: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: lidt (harmless: faults or is refused).
    unsafe { probe!(["sub $16, %rsp", "sidt (%rsp)"], ["lidt (%rsp)"], ["add $16, %rsp"],) };
    println!("PVTEST note lidt: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: ltr.
    unsafe { probe!([], ["ltr {a:x}"], [], a = in(reg) 0x28u64,) };
    println!("PVTEST note ltr: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: swapgs.
    unsafe { probe!([], ["swapgs"], [],) };
    println!("PVTEST note swapgs: {}", t(&rt::take()));
    rt::arm(Action::default());
    // SAFETY: rdfsbase.
    unsafe { probe!([], ["rdfsbase {a}"], [], a = out(reg) _,) };
    println!("PVTEST note rdfsbase: {}", t(&rt::take()));

    rt::restore_default_traps();
    rt::unmap_shared_info();
}
