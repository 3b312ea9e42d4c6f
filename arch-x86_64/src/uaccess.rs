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
    "#,
    options(att_syntax)
);

#[cfg(target_os = "none")]
unsafe extern "C" {
    fn xenolith_copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn xenolith_copy_raw_insn();
    fn xenolith_copy_raw_fixup();
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

/// The continuation for a fault at `rip`, if `rip` is a guarded guest access.
#[cfg(target_os = "none")]
pub fn fixup(rip: u64) -> Option<u64> {
    (rip == xenolith_copy_raw_insn as *const () as u64)
        .then_some(xenolith_copy_raw_fixup as *const () as u64)
}
