//! Raw copies to and from guest virtual memory that survive page faults (Xen's
//! `__copy_{to,from}_user` with an exception-table fixup).
//!
//! The copy runs on the guest's address space (its page tables include the hypervisor slots).
//! A fault inside the copy instruction does not reach the fatal-trap path: the page-fault
//! handler asks [`fixup`] for a continuation address, and the copy returns the number of bytes
//! it could not move. Range checks (that the guest address is outside the hypervisor's range)
//! are the caller's job.

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.xenolith_uaccess, "ax"
    .global xenolith_copy_raw
    /* rdi = dst, rsi = src, rdx = len; returns in rax the bytes not copied */
xenolith_copy_raw:
    mov %rdx, %rcx
    .global xenolith_copy_raw_insn
xenolith_copy_raw_insn:
    rep movsb
    xor %eax, %eax
    ret
    .global xenolith_copy_raw_fixup
xenolith_copy_raw_fixup:
    mov %rcx, %rax
    ret

    /* edi = selector: load it as the guest's user-mode GS (the inactive GS base), as Xen's
     * SEGBASE_GS_USER_SEL; returns 0, or 1 if the selector faulted and null was loaded. */
    .global xenolith_load_user_gs
xenolith_load_user_gs:
    swapgs
    .global xenolith_load_user_gs_insn
xenolith_load_user_gs_insn:
    movl %edi, %gs
    swapgs
    xor %eax, %eax
    ret
    .global xenolith_load_user_gs_fixup
xenolith_load_user_gs_fixup:
    xor %edi, %edi
    movl %edi, %gs
    swapgs
    mov $1, %eax
    ret
    "#,
    options(att_syntax)
);

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn xenolith_copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn xenolith_copy_raw_insn();
    fn xenolith_copy_raw_fixup();
    fn xenolith_load_user_gs(sel: u32) -> u32;
    fn xenolith_load_user_gs_insn();
    fn xenolith_load_user_gs_fixup();
    fn xenolith_guest_iretq();
    fn xenolith_guest_iretq_fixup();
}

/// Loads `sel` into GS for guest user mode, leaving the kernel GS base active; returns false
/// if the selector faulted (then the null selector is loaded), as Xen's `SEGBASE_GS_USER_SEL`.
///
/// # Safety
/// The executing CPU must be running a PV vCPU in guest kernel mode (GS_BASE holds the guest
/// kernel's base, KERNEL_GS_BASE the user one).
#[cfg(target_os = "none")]
pub unsafe fn load_user_gs(sel: u16) -> bool {
    // SAFETY: the swapgs pair leaves the active base as it was; faults are fixed up.
    unsafe { xenolith_load_user_gs(u32::from(sel)) == 0 }
}

/// Copies `len` bytes from `src` to `dst`, either of which may be an unmapped guest address;
/// returns how many bytes were not copied (0 on success).
///
/// # Safety
/// The hypervisor-side buffer must be valid for `len` bytes; the guest-side address must have
/// been checked to lie in the guest's part of the address space, which must be loaded.
#[cfg(target_os = "none")]
pub unsafe fn copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize {
    // SAFETY: the routine only moves bytes; faults on the guest side are fixed up.
    unsafe { xenolith_copy_raw(dst, src, len) }
}

/// The continuation for a fault at `rip`, if `rip` is a guarded guest access (Xen's
/// exception table).
#[cfg(target_os = "none")]
pub fn fixup(rip: u64) -> Option<u64> {
    let table = [
        (
            xenolith_copy_raw_insn as *const (),
            xenolith_copy_raw_fixup as *const (),
        ),
        (
            xenolith_load_user_gs_insn as *const (),
            xenolith_load_user_gs_fixup as *const (),
        ),
        (
            xenolith_guest_iretq as *const (),
            xenolith_guest_iretq_fixup as *const (),
        ),
    ];
    table
        .iter()
        .find(|(at, _)| *at as u64 == rip)
        .map(|(_, to)| *to as u64)
}
