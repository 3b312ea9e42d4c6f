//! Entering and leaving PV guests: the SYSCALL path, the return path, and the per-CPU stubs.
//!
//! A PV guest runs at CPL3. Every entry from it lands in the same place: a [`TrapFrame`] at the
//! top of the CPU's stack block, right below its `CpuInfo` (Xen's `guest_cpu_user_regs()`).
//! Interrupts and exceptions get there because the TSS's `rsp0` points at that spot. SYSCALL
//! does not switch stacks, so, as in Xen, `LSTAR` points at a small per-CPU stub that knows its
//! CPU's frame address as an immediate: it saves the guest `rax` and `rsp`, switches to the
//! hypervisor stack and jumps to the common code, which completes the frame in the same layout
//! the trap path produces. No `swapgs` is involved: GS belongs to the guest.
//!
//! [`TrapFrame`]: crate::trap::TrapFrame

use crate::trap::TrapFrame;

/// `entry_vector` recorded for SYSCALL entries (not a hardware vector).
pub const SYSCALL_VECTOR: u32 = 0x100;

/// Bytes of per-CPU stub code (one stub: LSTAR).
pub const STUB_LEN: usize = 39;

/// Builds the per-CPU SYSCALL stub: saves guest `rax` in the frame's SS slot and guest `rsp` in
/// its RSP slot, switches to the frame, and jumps to `common`.
///
/// ```text
/// movabs %rax, frame_top-8      48 a3 imm64
/// mov    %rsp, %rax             48 89 e0
/// movabs $frame_top-8, %rsp     48 bc imm64
/// push   %rax                   50
/// movabs $common, %rax          48 b8 imm64
/// jmp    *%rax                  ff e0
/// ```
pub fn syscall_stub(frame_top: u64, common: u64) -> [u8; STUB_LEN] {
    let mut b = [0u8; STUB_LEN];
    let ss_slot = frame_top - 8;
    b[0..2].copy_from_slice(&[0x48, 0xa3]);
    b[2..10].copy_from_slice(&ss_slot.to_le_bytes());
    b[10..13].copy_from_slice(&[0x48, 0x89, 0xe0]);
    b[13..15].copy_from_slice(&[0x48, 0xbc]);
    b[15..23].copy_from_slice(&ss_slot.to_le_bytes());
    b[23] = 0x50;
    b[24..26].copy_from_slice(&[0x48, 0xb8]);
    b[26..34].copy_from_slice(&common.to_le_bytes());
    b[34..36].copy_from_slice(&[0xff, 0xe0]);
    // Pad with int3: nothing should run past the jump.
    b[36..].fill(0xcc);
    b
}

/// The frame's address for a CPU whose frame area ends at `frame_top`.
pub const fn frame_at(frame_top: u64) -> u64 {
    frame_top - core::mem::size_of::<TrapFrame>() as u64
}

#[cfg(target_os = "none")]
mod imp {
    use crate::cpu::{msr, rdmsr, wrmsr};
    use crate::gdt::{FLAT_RING3_CS32, FLAT_RING3_CS64, FLAT_RING3_DS32, HYPERVISOR_CS};

    core::arch::global_asm!(
        r#"
        .section .text.xenolith_guest_entry, "ax"
        /* Reached from the per-CPU stub: rsp = frame_top - 16, [rsp] = guest rsp,
         * [rsp + 8] = guest rax, rcx = guest rip, r11 = guest rflags. */
        .global xenolith_syscall_common
xenolith_syscall_common:
        push %r11                         /* rflags */
        pushq ${cs64}                     /* cs */
        push %rcx                         /* rip */
        pushq $0                          /* error_code / entry_vector */
        movl $0x100, 4(%rsp)
        push %rdi
        push %rsi
        push %rdx
        push %rcx
        mov 8 * 9(%rsp), %rax             /* guest rax parked in the SS slot */
        movq ${ds32}, 8 * 9(%rsp)         /* ss */
        push %rax
        push %r8
        push %r9
        push %r10
        push %r11
        push %rbx
        push %rbp
        push %r12
        push %r13
        push %r14
        push %r15
        cld
        xor %ebp, %ebp                    /* terminates hypervisor stack traces */
        mov %rsp, %rdi
        sub $8, %rsp                      /* the frame is 8 mod 16; calls want 0 mod 16 */
        call xenolith_guest_syscall
        add $8, %rsp
        /* fall through: return to the guest with whatever the frame now holds */

        .global xenolith_restore_guest
xenolith_restore_guest:
        /* rsp = the frame (also entered here directly with rdi = frame) */
        pop %r15
        pop %r14
        pop %r13
        pop %r12
        pop %rbp
        pop %rbx
        pop %r11
        pop %r10
        pop %r9
        pop %r8
        pop %rax
        pop %rcx
        pop %rdx
        pop %rsi
        pop %rdi
        add $8, %rsp
        .global xenolith_guest_iretq
xenolith_guest_iretq:
        iretq
        /* Fixup (see uaccess::fixup): the guest context could not be loaded. */
        .global xenolith_guest_iretq_fixup
xenolith_guest_iretq_fixup:
        and $-16, %rsp
        call xenolith_guest_iret_fault
        ud2

        .global xenolith_enter_guest
xenolith_enter_guest:
        /* rdi = frame to resume: switch to it and restore */
        mov %rdi, %rsp
        jmp xenolith_restore_guest
        "#,
        cs64 = const FLAT_RING3_CS64 as u64,
        ds32 = const FLAT_RING3_DS32 as u64,
        options(att_syntax)
    );

    unsafe extern "C" {
        fn xenolith_syscall_common();
        fn xenolith_enter_guest(frame: u64) -> !;
    }

    /// Address of the common SYSCALL code the per-CPU stubs jump to.
    pub fn syscall_common_addr() -> u64 {
        xenolith_syscall_common as *const () as u64
    }

    /// Programs SYSCALL for this CPU: LSTAR at the CPU's stub, STAR with Xen's selectors, and
    /// the RFLAGS mask Xen uses (TF, IF, DF, NT, RF, VM and AC cleared on entry).
    pub fn init_syscall(stub_va: u64) {
        const EFER_SCE: u64 = 1;
        let star = (u64::from(FLAT_RING3_CS32) << 48) | (u64::from(HYPERVISOR_CS) << 32);
        let fmask: u64 =
            (1 << 8) | (1 << 9) | (1 << 10) | (1 << 14) | (1 << 16) | (1 << 17) | (1 << 18);
        // SAFETY: architectural SYSCALL MSRs, programmed with selectors that exist in this
        // CPU's GDT and a stub mapped executable at `stub_va`.
        unsafe {
            wrmsr(0xc000_0081, star);
            wrmsr(0xc000_0082, stub_va);
            wrmsr(0xc000_0083, stub_va); // CSTAR: 32-bit PV is not supported; same stub
            wrmsr(0xc000_0084, fmask);
            wrmsr(msr::EFER, rdmsr(msr::EFER) | EFER_SCE);
        }
    }

    /// Resumes guest execution from `frame` (which must be this CPU's guest frame or hold a
    /// valid CPL3 context).
    ///
    /// # Safety
    /// `frame` must hold a guest context whose CS/SS are the flat ring-3 selectors and whose
    /// address space (CR3) is loaded; the hypervisor stack above the frame is abandoned.
    pub unsafe fn enter_guest(frame: u64) -> ! {
        // SAFETY: per the contract, the frame is a complete ring-3 context.
        unsafe { xenolith_enter_guest(frame) }
    }
}

#[cfg(target_os = "none")]
pub use imp::{enter_guest, init_syscall, syscall_common_addr};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_encodes_addresses() {
        let s = syscall_stub(0xffff_8300_1234_ff00, 0xffff_82d0_4000_1000);
        assert_eq!(&s[0..2], &[0x48, 0xa3]);
        assert_eq!(
            u64::from_le_bytes(s[2..10].try_into().unwrap()),
            0xffff_8300_1234_fef8
        );
        assert_eq!(
            u64::from_le_bytes(s[15..23].try_into().unwrap()),
            0xffff_8300_1234_fef8
        );
        assert_eq!(s[23], 0x50);
        assert_eq!(
            u64::from_le_bytes(s[26..34].try_into().unwrap()),
            0xffff_82d0_4000_1000
        );
        assert_eq!(&s[34..36], &[0xff, 0xe0]);
    }

    #[test]
    fn frame_sits_below_top() {
        assert_eq!(frame_at(0x10_0000), 0x10_0000 - 168);
        assert_eq!(core::mem::size_of::<TrapFrame>(), 168);
    }
}
