//! Guest user mode for the suites and benchmarks that need it. The guest's kernel L4 also
//! becomes its user L4 (a 64-bit PV guest's mappings all carry `_PAGE_USER`, since its kernel
//! runs in ring 3 too), so the image's code runs in user mode as it is.
//!
//! [`enter`] saves the callee-saved registers and `rsp`, and enters user mode with
//! `HYPERVISOR_iret` (events stay masked: the context's IF is clear). Whatever brings the CPU
//! back to kernel mode (a syscall callback, a trap handler) ends with `jmp pvtest_user_leave`,
//! which unwinds to [`enter`]'s caller. Entries from user mode run on [`KERNEL_STACK`], given to
//! `stack_switch` by [`setup`].

use core::arch::global_asm;
use core::sync::atomic::AtomicU64;

use xen_abi::arch_x86::{FLAT_KERNEL_SS, FLAT_USER_CS, FLAT_USER_SS};
use xen_abi::hypercall as nr;
use xen_abi::xen::{DOMID_SELF, MMUEXT_NEW_USER_BASEPTR, MmuextOp, StartInfo};

use crate::hypercall as hc;
use crate::mm;

#[repr(C, align(16))]
struct Stack([u8; 16384]);

/// The kernel stack the hypervisor switches to when user mode traps or makes a syscall.
static mut KERNEL_STACK: Stack = Stack([0; 16384]);
/// The user-mode stack.
static mut USER_STACK: Stack = Stack([0; 16384]);

/// `rsp` of `pvtest_user_enter` (after its pushes) while user mode runs.
static SAVED_RSP: AtomicU64 = AtomicU64::new(0);

global_asm!(
    ".pushsection .text.pvtest_user, \"ax\"",
    ".balign 16",
    ".global pvtest_user_enter",
    // rdi = user rip, rsi = user rsp, rdx = user rax, rcx = user rcx, r8 = user rbx (hypercalls
    // preserve rbx; rax and rcx come from the iret context).
    "pvtest_user_enter:",
    "    push %rbx",
    "    push %rbp",
    "    push %r12",
    "    push %r13",
    "    push %r14",
    "    push %r15",
    "    mov %rsp, {saved_rsp}(%rip)",
    "    mov %r8, %rbx",
    // iret_context, lowest address first: rax, r11, rcx, flags, rip, cs, rflags, rsp, ss.
    "    pushq ${user_ss}",
    "    push %rsi",
    "    pushq $2",
    "    pushq ${user_cs}",
    "    push %rdi",
    "    pushq $0",
    "    push %rcx",
    "    pushq $0",
    "    push %rdx",
    "    mov ${iret}, %eax",
    "    syscall",
    "    ud2",
    // Jumped to in kernel mode: back to pvtest_user_enter's caller.
    ".global pvtest_user_leave",
    "pvtest_user_leave:",
    "    mov {saved_rsp}(%rip), %rsp",
    "    pop %r15",
    "    pop %r14",
    "    pop %r13",
    "    pop %r12",
    "    pop %rbp",
    "    pop %rbx",
    "    ret",
    ".popsection",
    user_ss = const FLAT_USER_SS,
    user_cs = const FLAT_USER_CS,
    iret = const nr::iret,
    saved_rsp = sym SAVED_RSP,
    options(att_syntax)
);

unsafe extern "C" {
    fn pvtest_user_enter(rip: u64, rsp: u64, rax: u64, rcx: u64, rbx: u64);
}

/// Runs user code at `rip` on the user stack with the given `rax`, `rcx` and `rbx`; returns in
/// kernel mode once the code's way back jumps to `pvtest_user_leave`.
///
/// # Safety
/// [`setup`] has succeeded, and every way back from the user code (its syscall callback, the
/// trap handlers that may run) ends with `jmp pvtest_user_leave`.
pub unsafe fn enter(rip: u64, rax: u64, rcx: u64, rbx: u64) {
    // Leave room above rsp: user code may read a few bytes there (`lgdt (%rsp)` reads ten).
    let user_rsp = (&raw const USER_STACK) as u64 + core::mem::size_of::<Stack>() as u64 - 64;
    // SAFETY: per the contract, the routine returns in kernel mode on this stack with the
    // callee-saved registers restored (the others are clobbered, as for any call).
    unsafe { pvtest_user_enter(rip, user_rsp, rax, rcx, rbx) };
}

fn mmuext(op: MmuextOp) -> i64 {
    // SAFETY: sets the user base pointer to the guest's own kernel L4, or clears it; neither
    // changes the kernel's mappings.
    unsafe { hc::mmuext_op(&[op], DOMID_SELF).0 }
}

/// Sets up user mode: the kernel stack for entries from user mode and the user page tables
/// (the kernel's own L4). Returns the failing step.
pub fn setup(si: &StartInfo) -> Result<(), (&'static str, i64)> {
    let kernel_sp = (&raw const KERNEL_STACK) as u64 + core::mem::size_of::<Stack>() as u64;
    // SAFETY: stack_switch only records the kernel stack for later entries from user mode.
    let rc = unsafe { hc::hypercall3(nr::stack_switch, u64::from(FLAT_KERNEL_SS), kernel_sp, 0) };
    if rc != 0 {
        return Err(("stack_switch", rc));
    }
    let l4 = mm::p2m(si)[mm::va_to_pfn(si.pt_base) as usize];
    let rc = mmuext(MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, l4));
    if rc != 0 {
        return Err(("new_user_baseptr", rc));
    }
    Ok(())
}

/// Drops the user page tables again (the kernel's L4 keeps its own type reference).
pub fn clear_user_baseptr() -> i64 {
    mmuext(MmuextOp::with_mfn(MMUEXT_NEW_USER_BASEPTR, 0))
}
