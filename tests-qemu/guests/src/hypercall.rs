//! Raw hypercalls the way a 64-bit PV kernel makes them without a hypercall page: `syscall` with
//! the hypercall number in `rax` and the arguments in `rdi`, `rsi`, `rdx`, `r10`, `r8` (what
//! Linux 6.1 and Xen's own hypercall page do). `syscall` clobbers `rcx` and `r11`; the argument
//! registers are treated as clobbered too (Xen debug builds scribble over them).

#[path = "hypercall_common.rs"]
mod common;
use common::hypercall_asm;
pub use common::{console_write, hypercall3};

use xen_abi::arch_x86::TrapInfo;
use xen_abi::hypercall as nr;
use xen_abi::sched::{
    SCHEDOP_block, SCHEDOP_shutdown, SHUTDOWN_crash, SHUTDOWN_poweroff, SchedShutdown,
};
use xen_abi::xen::{MmuUpdate, MmuextOp};

/// Makes hypercall `op` with five arguments and returns Xen's `rax`.
///
/// # Safety
/// Pointer arguments must be valid for whatever the hypercall reads or writes through them, and
/// the hypercall must not break the guest's own memory (e.g. by unmapping its code or stack).
#[inline(always)]
pub unsafe fn hypercall5(op: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the caller upholds the hypercall's contract; `syscall` from PV guest kernel mode
    // enters Xen's hypercall path and returns to the next instruction, clobbering only rcx/r11
    // (declared) besides the argument registers (declared as clobbered too).
    unsafe {
        hypercall_asm!(
            "syscall",
            [a1, a2, a3, a4, a5],
            inlateout("rax") op as i64 => ret,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    ret
}

/// `HYPERVISOR_sched_op(SCHEDOP_shutdown, {reason})`: does not return when it succeeds.
pub fn shutdown(reason: u32) -> i64 {
    let arg = SchedShutdown { reason };
    // SAFETY: `arg` is a valid sched_shutdown that Xen only reads.
    unsafe {
        hypercall3(
            nr::sched_op,
            u64::from(SCHEDOP_shutdown),
            &arg as *const _ as u64,
            0,
        )
    }
}

/// Powers the domain off; spins if Xen refuses.
pub fn poweroff() -> ! {
    shutdown(SHUTDOWN_poweroff);
    halt_forever()
}

/// Crashes the domain (`SHUTDOWN_crash`); spins if Xen refuses.
pub fn crash() -> ! {
    shutdown(SHUTDOWN_crash);
    halt_forever()
}

fn halt_forever() -> ! {
    loop {
        // SAFETY: SCHEDOP_block takes no argument; it just deschedules the vCPU.
        unsafe { hypercall3(nr::sched_op, u64::from(SCHEDOP_block), 0, 0) };
    }
}

/// `HYPERVISOR_xen_version(cmd, arg)`.
///
/// # Safety
/// `arg` must point to a buffer of the size `cmd` writes (or be null where `cmd` takes none).
pub unsafe fn xen_version(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(nr::xen_version, u64::from(cmd), arg as u64, 0) }
}

/// `HYPERVISOR_memory_op(cmd, arg)`.
///
/// # Safety
/// `arg` must be valid for `cmd` (a `domid_t` for the reservation queries, a
/// `xen_machphys_mapping` for `XENMEM_machphys_mapping`, nothing for `maximum_ram_page`).
pub unsafe fn memory_op(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(nr::memory_op, u64::from(cmd), arg as u64, 0) }
}

/// `HYPERVISOR_event_channel_op(cmd, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` takes.
pub unsafe fn event_channel_op(cmd: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(nr::event_channel_op, u64::from(cmd), arg as u64, 0) }
}

/// `HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`.
///
/// # Safety
/// `arg` must point to the structure `cmd` takes (or be null for commands without one).
pub unsafe fn vcpu_op(cmd: u32, vcpu: u32, arg: *mut u8) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(nr::vcpu_op, u64::from(cmd), u64::from(vcpu), arg as u64) }
}

/// `HYPERVISOR_update_va_mapping(va, pte, flags)`.
///
/// # Safety
/// Changing the mapping of `va` must not break anything the guest relies on.
pub unsafe fn update_va_mapping(va: u64, pte: u64, flags: u64) -> i64 {
    // SAFETY: forwarded contract.
    unsafe { hypercall3(nr::update_va_mapping, va, pte, flags) }
}

/// `HYPERVISOR_mmu_update(reqs, count, &done, domid)`; returns (rc, done).
///
/// # Safety
/// The requests must not break the guest's own mappings if Xen accepts them.
pub unsafe fn mmu_update(reqs: &[MmuUpdate], domid: u16) -> (i64, u32) {
    let mut done: u32 = 0;
    // SAFETY: `reqs` is readable, `done` writable; the caller vouches for the updates.
    let rc = unsafe {
        hypercall5(
            nr::mmu_update,
            reqs.as_ptr() as u64,
            reqs.len() as u64,
            &mut done as *mut u32 as u64,
            u64::from(domid),
            0,
        )
    };
    (rc, done)
}

/// `HYPERVISOR_mmuext_op(ops, count, &done, domid)`; returns (rc, done).
///
/// # Safety
/// The operations must not break the guest's own mappings if Xen accepts them.
pub unsafe fn mmuext_op(ops: &[MmuextOp], domid: u16) -> (i64, u32) {
    let mut done: u32 = 0;
    // SAFETY: `ops` is readable, `done` writable; the caller vouches for the operations.
    let rc = unsafe {
        hypercall5(
            nr::mmuext_op,
            ops.as_ptr() as u64,
            ops.len() as u64,
            &mut done as *mut u32 as u64,
            u64::from(domid),
            0,
        )
    };
    (rc, done)
}

/// `HYPERVISOR_set_trap_table(traps)` (the table ends with an entry whose address is 0).
///
/// # Safety
/// Every handler address must point to code that can take Xen's bounce frame.
pub unsafe fn set_trap_table(traps: &[TrapInfo]) -> i64 {
    // SAFETY: `traps` is readable; the caller vouches for the handlers.
    unsafe { hypercall3(nr::set_trap_table, traps.as_ptr() as u64, 0, 0) }
}
