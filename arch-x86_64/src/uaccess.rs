//! Raw copies to and from guest virtual memory that survive page faults (Xen's
//! `__copy_{to,from}_user` with an exception-table fixup).
//!
//! The copy runs on the guest's address space (its page tables include the hypervisor slots).
//! A fault inside the copy instruction does not reach the fatal-trap path: the page-fault
//! handler asks [`fixup`] for a continuation address, and the copy returns the number of bytes
//! it could not move. Range checks (that the guest address is outside the hypervisor's range)
//! are the caller's job.

// The copy: like Xen's `__copy_{to,from}_guest_ll`, copies of 16 bytes or more first align the
// destination to 8 bytes with `rep movsb` (the head), then move the bulk with `rep movsq` and
// the remaining 0-7 bytes (the tail) with `rep movsb`; shorter copies are all tail. Every
// instruction that touches the guest is in the fixup table, and the result stays byte-exact:
// - a fault in the head returns its bytes left (rcx) plus everything after it (rdx);
// - a fault in the bulk retries from the faulting word byte by byte (rcx = 8 * words left +
//   tail, then the tail's `rep movsb`), so the bytes of that word before the inaccessible one
//   are still copied and the tail's fault reports exactly the bytes from there on;
// - a fault in the tail returns its bytes left (rcx).
// A fault leaves rsi/rdi/rcx at the faulting element (the `rep` iteration restarts), and the
// trap handler resumes at the fixup with every other register as it was.
#[cfg(any(target_os = "none", test))]
core::arch::global_asm!(
    r#"
    .section .text.xenolith_uaccess, "ax"
    .global xenolith_copy_raw
    /* rdi = dst, rsi = src, rdx = len; returns in rax the bytes not copied */
xenolith_copy_raw:
    mov %rdx, %rcx
    cmp $15, %rdx
    jbe xenolith_copy_raw_insn_tail
    mov %rdi, %rcx
    neg %rcx
    and $7, %ecx
    sub %rcx, %rdx
    .global xenolith_copy_raw_insn_head
xenolith_copy_raw_insn_head:
    rep movsb
    mov %rdx, %rcx
    shr $3, %rcx
    and $7, %edx
    .global xenolith_copy_raw_insn_bulk
xenolith_copy_raw_insn_bulk:
    rep movsq
    mov %rdx, %rcx
    .global xenolith_copy_raw_insn_tail
xenolith_copy_raw_insn_tail:
    rep movsb
    xor %eax, %eax
    ret
    .global xenolith_copy_raw_fixup_head
xenolith_copy_raw_fixup_head:
    lea (%rcx,%rdx), %rax
    ret
    .global xenolith_copy_raw_fixup_bulk
xenolith_copy_raw_fixup_bulk:
    lea (%rdx,%rcx,8), %rcx
    jmp xenolith_copy_raw_insn_tail
    .global xenolith_copy_raw_fixup_tail
xenolith_copy_raw_fixup_tail:
    mov %rcx, %rax
    ret
    "#,
    options(att_syntax)
);

#[cfg(target_os = "none")]
core::arch::global_asm!(
    r#"
    .section .text.xenolith_uaccess, "ax"
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

#[cfg(any(target_os = "none", test))]
unsafe extern "C" {
    fn xenolith_copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize;
    fn xenolith_copy_raw_insn_head();
    fn xenolith_copy_raw_insn_bulk();
    fn xenolith_copy_raw_insn_tail();
    fn xenolith_copy_raw_fixup_head();
    fn xenolith_copy_raw_fixup_bulk();
    fn xenolith_copy_raw_fixup_tail();
}

#[cfg(target_os = "none")]
unsafe extern "C" {
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
#[cfg(any(target_os = "none", test))]
pub unsafe fn copy_raw(dst: *mut u8, src: *const u8, len: usize) -> usize {
    // SAFETY: the routine only moves bytes; faults on the guest side are fixed up.
    unsafe { xenolith_copy_raw(dst, src, len) }
}

/// The fixups of the copy routine's three instructions: (faulting rip, continuation).
#[cfg(any(target_os = "none", test))]
fn copy_fixups() -> [(u64, u64); 3] {
    [
        (
            xenolith_copy_raw_insn_head as *const () as u64,
            xenolith_copy_raw_fixup_head as *const () as u64,
        ),
        (
            xenolith_copy_raw_insn_bulk as *const () as u64,
            xenolith_copy_raw_fixup_bulk as *const () as u64,
        ),
        (
            xenolith_copy_raw_insn_tail as *const () as u64,
            xenolith_copy_raw_fixup_tail as *const () as u64,
        ),
    ]
}

/// The continuation for a fault at `rip`, if `rip` is a guarded guest access (Xen's
/// exception table).
#[cfg(target_os = "none")]
pub fn fixup(rip: u64) -> Option<u64> {
    let others = [
        (
            xenolith_load_user_gs_insn as *const () as u64,
            xenolith_load_user_gs_fixup as *const () as u64,
        ),
        (
            xenolith_guest_iretq as *const () as u64,
            xenolith_guest_iretq_fixup as *const () as u64,
        ),
    ];
    copy_fixups()
        .into_iter()
        .chain(others)
        .find(|&(at, _)| at == rip)
        .map(|(_, to)| to)
}

/// The copy on the host: a Linux process whose SIGSEGV handler plays the hypervisor's page-fault
/// handler (it resumes at [`copy_fixups`]' continuation), copying across the end of a mapping
/// into an inaccessible page from every offset, length and alignment that exercises the head,
/// the bulk and the tail.
#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use core::ffi::c_void;

    const PAGE: usize = 4096;
    const SIGSEGV: i32 = 11;
    const SA_SIGINFO: i32 = 4;
    /// Offset of `uc_mcontext.gregs[REG_RIP]` in x86-64 Linux's `ucontext_t`.
    const UC_RIP: usize = 168;

    /// glibc's `struct sigaction` on x86-64.
    #[repr(C)]
    struct SigAction {
        handler: usize,
        mask: [u64; 16],
        flags: i32,
        restorer: usize,
    }

    unsafe extern "C" {
        fn mmap(
            addr: *mut c_void,
            len: usize,
            prot: i32,
            flags: i32,
            fd: i32,
            off: i64,
        ) -> *mut c_void;
        fn mprotect(addr: *mut c_void, len: usize, prot: i32) -> i32;
        fn sigaction(sig: i32, act: *const SigAction, old: *mut SigAction) -> i32;
    }

    extern "C" fn on_segv(_sig: i32, _info: *mut c_void, uc: *mut c_void) {
        // SAFETY: the kernel passes a valid ucontext_t; gregs[REG_RIP] lies at UC_RIP.
        let rip = unsafe { &mut *(uc.cast::<u8>().add(UC_RIP).cast::<u64>()) };
        match copy_fixups().into_iter().find(|&(at, _)| at == *rip) {
            Some((_, to)) => *rip = to,
            None => {
                let dfl = SigAction {
                    handler: 0,
                    mask: [0; 16],
                    flags: 0,
                    restorer: 0,
                };
                // SAFETY: restores the default action; the fault repeats and kills the test.
                unsafe { sigaction(SIGSEGV, &dfl, core::ptr::null_mut()) };
            }
        }
    }

    /// Two pages: the first read-write, the second inaccessible.
    fn guarded_pages() -> *mut u8 {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            let act = SigAction {
                handler: on_segv as *const () as usize,
                mask: [0; 16],
                flags: SA_SIGINFO,
                restorer: 0,
            };
            // SAFETY: installs a handler that only redirects faults of the copy routine.
            let rc = unsafe { sigaction(SIGSEGV, &act, core::ptr::null_mut()) };
            assert_eq!(rc, 0);
        });
        // SAFETY: a fresh anonymous mapping (PROT_READ | PROT_WRITE, MAP_PRIVATE |
        // MAP_ANONYMOUS); its second page is then made inaccessible.
        unsafe {
            let p = mmap(core::ptr::null_mut(), 2 * PAGE, 3, 0x22, -1, 0);
            assert!(!p.is_null() && p as isize != -1, "mmap failed");
            assert_eq!(mprotect(p.cast::<u8>().add(PAGE).cast(), PAGE, 0), 0);
            p.cast()
        }
    }

    fn pattern(i: usize) -> u8 {
        (i as u8).wrapping_mul(37).wrapping_add(5)
    }

    #[test]
    fn copies_every_size_and_alignment() {
        let src: Vec<u8> = (0..200).map(pattern).collect();
        for len in 0..150 {
            for s_off in 0..8 {
                for d_off in 0..8 {
                    let mut dst = [0u8; 200];
                    // SAFETY: both buffers hold `len` bytes past their offsets.
                    let left = unsafe {
                        copy_raw(dst.as_mut_ptr().add(d_off), src[s_off..].as_ptr(), len)
                    };
                    assert_eq!(left, 0);
                    assert_eq!(&dst[d_off..d_off + len], &src[s_off..s_off + len]);
                    assert!(
                        dst[..d_off]
                            .iter()
                            .chain(&dst[d_off + len..])
                            .all(|&b| b == 0)
                    );
                }
            }
        }
    }

    #[test]
    fn fault_in_the_middle_reports_the_exact_bytes_left() {
        let pages = guarded_pages();
        let src: Vec<u8> = (0..256).map(pattern).collect();
        let mut buf = [0u8; 256];
        for before in 0..=48 {
            let at = PAGE - before;
            for len in [1usize, 7, 8, 9, 15, 16, 17, 23, 24, 31, 40, 64, 65, 100] {
                for align in 0..8 {
                    let want_left = len.saturating_sub(before);
                    let copied = len - want_left;
                    // To the guarded page, from a host buffer at every alignment.
                    // SAFETY: `pages` maps PAGE accessible bytes before `at`; faults beyond are
                    // fixed up; the source holds `len` bytes.
                    unsafe {
                        core::ptr::write_bytes(pages, 0, PAGE);
                        let left = copy_raw(pages.add(at), src[align..].as_ptr(), len);
                        assert_eq!(
                            left, want_left,
                            "to: before={before} len={len} align={align}"
                        );
                        let got = core::slice::from_raw_parts(pages.add(at), copied);
                        assert_eq!(got, &src[align..align + copied]);
                    }
                    // From the guarded page into a host buffer at every alignment.
                    // SAFETY: as above, in the other direction.
                    unsafe {
                        core::ptr::copy_nonoverlapping(src.as_ptr(), pages.add(at), copied);
                        buf.fill(0);
                        let left = copy_raw(buf.as_mut_ptr().add(align), pages.add(at), len);
                        assert_eq!(
                            left, want_left,
                            "from: before={before} len={len} align={align}"
                        );
                        assert_eq!(&buf[align..align + copied], &src[..copied]);
                        assert!(buf[align + copied..].iter().all(|&b| b == 0));
                    }
                }
            }
        }
    }
}
