//! The IDT: a stub for each exception vector 0..=31 and for the event-channel callback
//! vector. Every stub pushes (error code or 0, vector) and enters [`pvhtest_interrupt`] with
//! the caller-saved registers saved, so a handler may return to the interrupted code.
//!
//! Exceptions are fatal (`PVHTEST FATAL ...`, then `SHUTDOWN_crash`) unless a [`probe`] is
//! running, in which case the faulting access is skipped and the fault reported to the probe.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::boot::CODE64_SEL;
use crate::console::println;
use crate::hypercall::crash;

/// The vector Xen injects for event-channel upcalls (`HVM_PARAM_CALLBACK_TYPE_VECTOR`).
pub const CALLBACK_VECTOR: u8 = 0xf3;

global_asm!(
    ".pushsection .text.pvhtest_idt, \"ax\"",
    // Vectors without an error code push a 0 in its place.
    ".irp vec, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,{cb}",
    "pvhtest_vec_\\vec:",
    "    push $0",
    "    push $\\vec",
    "    jmp pvhtest_vec_common",
    ".endr",
    ".irp vec, 8,10,11,12,13,14,17,21,29,30",
    "pvhtest_vec_\\vec:",
    "    push $\\vec",
    "    jmp pvhtest_vec_common",
    ".endr",
    "pvhtest_vec_common:",
    "    push %rax",
    "    push %rcx",
    "    push %rdx",
    "    push %rsi",
    "    push %rdi",
    "    push %r8",
    "    push %r9",
    "    push %r10",
    "    push %r11",
    "    lea 72(%rsp), %rdi",
    "    push %rbp",
    "    mov %rsp, %rbp",
    "    and $-16, %rsp",
    "    call {handler}",
    "    mov %rbp, %rsp",
    "    pop %rbp",
    "    pop %r11",
    "    pop %r10",
    "    pop %r9",
    "    pop %r8",
    "    pop %rdi",
    "    pop %rsi",
    "    pop %rdx",
    "    pop %rcx",
    "    pop %rax",
    "    add $16, %rsp",
    "    iretq",
    ".popsection",
    // The stub addresses: vectors 0..=31, then the callback vector.
    ".pushsection .rodata.pvhtest_vec_table, \"a\"",
    ".balign 8",
    ".global pvhtest_vec_table",
    "pvhtest_vec_table:",
    ".irp vec, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,{cb}",
    "    .quad pvhtest_vec_\\vec",
    ".endr",
    ".popsection",
    cb = const CALLBACK_VECTOR,
    handler = sym pvhtest_interrupt,
    options(att_syntax)
);

unsafe extern "C" {
    /// 33 stub addresses: vectors 0..=31, then [`CALLBACK_VECTOR`].
    static pvhtest_vec_table: [u64; 33];
}

/// One 16-byte IDT gate.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_lo: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_hi: u32,
    _reserved: u32,
}

impl Gate {
    const EMPTY: Gate = Gate {
        offset_lo: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_hi: 0,
        _reserved: 0,
    };

    /// A present DPL-0 64-bit interrupt gate (IF cleared on entry) to `handler`.
    fn interrupt(handler: u64) -> Gate {
        Gate {
            offset_lo: handler as u16,
            selector: CODE64_SEL,
            ist: 0,
            type_attr: 0x8e,
            offset_mid: (handler >> 16) as u16,
            offset_hi: (handler >> 32) as u32,
            _reserved: 0,
        }
    }
}

#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::EMPTY; 256]);

/// Fills and loads the IDT.
pub fn install() {
    // SAFETY: the table is link-time data of 33 addresses.
    let stubs = unsafe { &pvhtest_vec_table };
    let set = |vector: usize, stub: u64| {
        // SAFETY: called once at boot, before interrupts are enabled and before anything else
        // touches the IDT; `vector` < 256.
        unsafe { (&raw mut IDT.0[vector]).write(Gate::interrupt(stub)) };
    };
    for (vector, &stub) in stubs[..32].iter().enumerate() {
        set(vector, stub);
    }
    set(usize::from(CALLBACK_VECTOR), stubs[32]);
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let ptr = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: (&raw const IDT) as u64,
    };
    // SAFETY: the IDT is static and every present gate points at a stub above.
    unsafe { asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack)) };
}

/// The frame the stubs build: vector, error code, then the CPU's rip, cs, rflags, rsp, ss.
const VECTOR: usize = 0;
const ERROR_CODE: usize = 1;
const RIP: usize = 2;
const RSP: usize = 5;

/// Where a running probe resumes after a fault (0: no probe).
static PROBE_RESUME: AtomicU64 = AtomicU64::new(0);
/// The last fault a probe saw: vector + 1 (0: none), and its error code.
static PROBE_VECTOR: AtomicU64 = AtomicU64::new(0);
static PROBE_ERROR: AtomicU64 = AtomicU64::new(0);

/// A fault seen by a probe.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u64,
    pub error_code: u64,
}

/// Reads the u64 at `addr`; a fault instead gives `Err` (with the value unread).
pub fn probe_read(addr: u64) -> Result<u64, Fault> {
    let value: u64;
    PROBE_VECTOR.store(0, Ordering::SeqCst);
    // SAFETY: the caller picks an identity-mapped address; a fault there is caught by
    // pvhtest_interrupt, which resumes at label 2 (value then is whatever rax held).
    unsafe {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov [{resume}], {tmp}",
            "xor eax, eax",
            "mov rax, [{addr}]",
            "2:",
            "mov qword ptr [{resume}], 0",
            addr = in(reg) addr,
            resume = in(reg) PROBE_RESUME.as_ptr(),
            tmp = out(reg) _,
            out("rax") value,
            options(nostack)
        );
    }
    probe_result(value)
}

/// Writes `value` to the u64 at `addr`; a fault gives `Err`.
pub fn probe_write(addr: u64, value: u64) -> Result<(), Fault> {
    PROBE_VECTOR.store(0, Ordering::SeqCst);
    // SAFETY: as for probe_read.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 2f]",
            "mov [{resume}], {tmp}",
            "mov [{addr}], {value}",
            "2:",
            "mov qword ptr [{resume}], 0",
            addr = in(reg) addr,
            value = in(reg) value,
            resume = in(reg) PROBE_RESUME.as_ptr(),
            tmp = out(reg) _,
            options(nostack)
        );
    }
    probe_result(())
}

fn probe_result<T>(ok: T) -> Result<T, Fault> {
    match PROBE_VECTOR.swap(0, Ordering::SeqCst) {
        0 => Ok(ok),
        v => Err(Fault {
            vector: v - 1,
            error_code: PROBE_ERROR.load(Ordering::SeqCst),
        }),
    }
}

/// Every vector's handler. `frame` is the stub's frame (see [`VECTOR`]).
extern "C" fn pvhtest_interrupt(frame: *mut u64) {
    // SAFETY: the stub passes its own frame on the current stack.
    let word = |i: usize| unsafe { frame.add(i).read_volatile() };
    let vector = word(VECTOR);
    if vector == u64::from(CALLBACK_VECTOR) {
        crate::events::upcall();
        return;
    }
    let resume = PROBE_RESUME.swap(0, Ordering::SeqCst);
    if resume != 0 && vector < 32 {
        PROBE_ERROR.store(word(ERROR_CODE), Ordering::SeqCst);
        PROBE_VECTOR.store(vector + 1, Ordering::SeqCst);
        // SAFETY: as above; the probe's resume label is in the same function as the access.
        unsafe { frame.add(RIP).write_volatile(resume) };
        return;
    }
    let cr2: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack)) };
    println!(
        "PVHTEST FATAL exception vector={vector} error_code={:#x} rip={:#x} rsp={:#x} cr2={cr2:#x}",
        word(ERROR_CODE),
        word(RIP),
        word(RSP)
    );
    crash()
}
