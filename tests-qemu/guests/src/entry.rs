//! Entry, trap handling, the panic handler and the top-level flow.
//!
//! Xen enters `pvtest_start` in 64-bit guest kernel mode (ring 3, `FLAT_KERNEL_CS`) with a
//! valid one-page boot stack, `rsi` = the start_info VA and event upcalls masked. The guest moves
//! to a 64 KiB stack of its own, installs a trap table so that a fault prints a `PVTEST FATAL`
//! line (instead of Xen silently crashing the domain), and calls [`pvtest_main`].

use core::arch::global_asm;
use core::fmt::Write as _;

use crate::cmdline::Selection;
use crate::console::{CStr, Line, println};
use crate::hypercall::{crash, poweroff, set_trap_table};
use crate::suites::{ON_REQUEST, SUITES};
use crate::verdict::{Suite, Totals};
use xen_abi::arch_x86::{FLAT_KERNEL_CS, TrapInfo};
use xen_abi::xen::StartInfo;

/// Size of the guest's own stack.
const STACK_SIZE: usize = 64 * 1024;

/// Vectors with a handler: the architectural exceptions Xen may bounce to a PV guest (2, NMI,
/// goes through a callback instead; 9 and 15 are reserved).
const TRAP_VECTORS: [u8; 17] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19];

/// Bytes between two trap stubs (see `pvtest_trap_stubs`).
const TRAP_STUB_SIZE: u64 = 16;

global_asm!(
    ".pushsection .text.pvtest_entry, \"ax\"",
    ".global pvtest_start",
    "pvtest_start:",
    "    cld",
    "    lea pvtest_stack_top(%rip), %rsp",
    "    mov %rsi, %rdi",
    "    call {main}",
    "    ud2",
    // One 16-byte stub per vector 0..=19: vector in edi, bounce frame in rsi.
    ".balign 16",
    ".global pvtest_trap_stubs",
    "pvtest_trap_stubs:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19",
    "    .balign 16",
    "    mov $\\vec, %edi",
    "    jmp pvtest_trap_common",
    ".endr",
    "pvtest_trap_common:",
    "    mov %rsp, %rsi",
    "    and $-16, %rsp",
    "    call {trap}",
    "    ud2",
    ".popsection",
    ".pushsection .bss.pvtest_stack, \"aw\", @nobits",
    ".balign 16",
    "pvtest_stack:",
    ".skip {stack_size}",
    "pvtest_stack_top:",
    ".popsection",
    main = sym pvtest_main,
    trap = sym pvtest_trap,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    /// The first trap stub (vector `n`'s stub is `TRAP_STUB_SIZE * n` bytes further).
    static pvtest_trap_stubs: u8;
}

/// The trap-table entries for [`TRAP_VECTORS`] (what [`install_trap_table`] installs; the `smp`
/// suite also gives them to a second vCPU).
pub(crate) fn trap_entries() -> [TrapInfo; TRAP_VECTORS.len()] {
    let base = (&raw const pvtest_trap_stubs) as u64;
    TRAP_VECTORS.map(|vector| TrapInfo {
        vector,
        // Only the kernel may raise them with `int n`; #BP (3) and #OF (4) from anywhere.
        flags: if vector == 3 || vector == 4 { 3 } else { 0 },
        cs: FLAT_KERNEL_CS,
        _pad0: 0,
        address: base + TRAP_STUB_SIZE * u64::from(vector),
    })
}

/// Installs handlers for [`TRAP_VECTORS`].
pub(crate) fn install_trap_table() {
    let mut table = [TrapInfo::default(); TRAP_VECTORS.len() + 1];
    table[..TRAP_VECTORS.len()].copy_from_slice(&trap_entries());
    // SAFETY: every address is a stub in pvtest_trap_stubs, which takes any bounce frame and
    // never returns; the table ends with a zero-address entry.
    let rc = unsafe { set_trap_table(&table) };
    if rc != 0 {
        println!("PVTEST warning: set_trap_table returned {rc}");
    }
}

/// Whether Xen pushes an error code for `vector`.
fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// Reports a fault and crashes the domain. `frame` is Xen's bounce frame: rcx, r11, [error
/// code], rip, cs, rflags, rsp, ss.
extern "C" fn pvtest_trap(vector: u64, frame: *const u64) -> ! {
    // SAFETY: Xen wrote the bounce frame at `frame` on the current (guest kernel) stack.
    let word = |i: usize| unsafe { frame.add(i).read_volatile() };
    let mut line = Line::new();
    let _ = write!(line, "PVTEST FATAL trap vector={vector}");
    let mut i = 2;
    if has_error_code(vector) {
        let _ = write!(line, " error_code={:#x}", word(i));
        i += 1;
    }
    let _ = write!(line, " rip={:#x} rsp={:#x}", word(i), word(i + 3));
    line.emit();
    crash()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("PVTEST PANIC {info}");
    crash()
}

/// The guest proper: runs the selected suites and powers off.
extern "C" fn pvtest_main(si: *const StartInfo) -> ! {
    install_trap_table();
    // SAFETY: Xen passes a valid, mapped start_info that stays put; the guest never writes it.
    let si = unsafe { &*si };
    crate::console::init(si);
    println!("PVTEST start xenolith-pvtest");
    println!("PVTEST cmdline: {}", CStr(si.cmd_line_bytes()));

    let selection = Selection::parse(si.cmd_line_bytes());
    let mut totals = Totals::default();
    for (name, run) in SUITES {
        if selection.wants(name) {
            let mut suite = Suite::new(name);
            run(&mut suite, si);
            suite.finish(&mut totals);
        }
    }
    for (name, run) in ON_REQUEST {
        if selection.names().contains(&name.as_bytes()) {
            let mut suite = Suite::new(name);
            run(&mut suite, si);
            suite.finish(&mut totals);
        }
    }
    for &name in selection.names() {
        let known = SUITES.iter().chain(ON_REQUEST.iter());
        if !known.clone().any(|(known, _)| known.as_bytes() == name) {
            println!("PVTEST unknown suite {}", CStr(name));
            totals.failed += 1;
        }
    }
    println!(
        "PVTEST DONE suites={} passed={} failed={} skipped={}",
        totals.suites, totals.passed, totals.failed, totals.skipped
    );
    if si
        .cmd_line_bytes()
        .split(|b| b.is_ascii_whitespace())
        .any(|w| w == b"crash=unhandled-fault")
    {
        // Misbehave on purpose: no trap table, then a fault. The hypervisor must crash this
        // domain (and report it), never fault itself.
        println!("PVTEST crash: clearing the trap table and reading an unmapped address");
        // SAFETY: deliberately fatal for this guest; a null table clears the virtual IDT.
        unsafe { crate::hypercall::hypercall3(xen_abi::hypercall::set_trap_table, 0, 0, 0) };
        // SAFETY: as above: the read faults and there is no handler.
        unsafe { core::ptr::read_volatile(0x0000_7fff_dead_0000 as *const u64) };
    }
    if si
        .cmd_line_bytes()
        .split(|b| b.is_ascii_whitespace())
        .any(|w| w == b"crash=bad-iret")
    {
        // HYPERVISOR_iret to a non-canonical rip: the hypervisor must refuse it by crashing
        // this domain, never by faulting on its own return to the guest.
        println!("PVTEST crash: HYPERVISOR_iret to a non-canonical address");
        // SAFETY: deliberately fatal for this guest: the iret context (ss, rsp, rflags, cs,
        // rip, flags, rcx, r11, rax) is pushed as Linux's xen_iret does, then iret is called.
        unsafe {
            core::arch::asm!(
                "mov rax, rsp",
                "push 0xe02b",
                "push rax",
                "push 0x202",
                "push 0xe033",
                "mov rcx, 0x8000000000001000",
                "push rcx",
                "push 0",
                "push rcx",
                "push r11",
                "push rax",
                "mov eax, 23",
                "syscall",
                "ud2",
                options(noreturn)
            )
        };
    }
    poweroff()
}
