//! The IDT and the trap entry stubs.
//!
//! Every vector enters through a 16-byte stub that normalises the frame (a zero error code where
//! the CPU pushes none, and the vector in the upper half of that slot, as Xen's `entry_vector`),
//! then `xenolith_trap_common` saves the registers in Xen's `cpu_user_regs` order and calls the
//! hypervisor's `xenolith_trap_handler(&mut TrapFrame)`.

/// Registers saved on trap entry, in the order of Xen's `struct cpu_user_regs` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
#[allow(missing_docs)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// Error code pushed by the CPU, or 0.
    pub error_code: u32,
    /// Vector number.
    pub entry_vector: u32,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Vectors for which the CPU pushes an error code.
pub const fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// The architectural name of an exception vector, as Xen's `vec_name` prints them.
pub const fn exception_name(vector: u32) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "nmi",
        3 => "int3",
        4 => "overflow",
        5 => "bounds",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        9 => "coprocessor segment",
        10 => "invalid tss",
        11 => "segment not found",
        12 => "stack error",
        13 => "general protection fault",
        14 => "page fault",
        16 => "fpu error",
        17 => "alignment check",
        18 => "machine check",
        19 => "simd error",
        20 => "virtualisation exception",
        21 => "control-flow protection",
        _ => "???",
    }
}

/// Page-fault error code bits.
pub mod pf {
    /// The fault was a protection violation (else: not present).
    pub const PRESENT: u32 = 1 << 0;
    /// Write access.
    pub const WRITE: u32 = 1 << 1;
    /// User-mode access.
    pub const USER: u32 = 1 << 2;
    /// Reserved bit set in a paging structure.
    pub const RSVD: u32 = 1 << 3;
    /// Instruction fetch.
    pub const INSN: u32 = 1 << 4;
}

#[cfg(target_os = "none")]
mod imp {
    use crate::gdt::{HYPERVISOR_CS, IST_DF, IST_MCE, IST_NMI};

    core::arch::global_asm!(
        r#"
        .section .text.xenolith_traps, "ax"
        .balign 16
        .global xenolith_trap_stubs
xenolith_trap_stubs:
        .set .Lvec, 0
        .rept 256
        .balign 16
        .if (.Lvec == 8) || ((.Lvec >= 10) && (.Lvec <= 14)) || (.Lvec == 17) || (.Lvec == 21) || (.Lvec == 29) || (.Lvec == 30)
        .else
        pushq $0
        .endif
        movl $.Lvec, 4(%rsp)
        jmp xenolith_trap_common
        .set .Lvec, .Lvec + 1
        .endr

xenolith_trap_common:
        cld
        push %rdi
        push %rsi
        push %rdx
        push %rcx
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
        mov %rsp, %rdi
        mov %rsp, %rbx
        and $-16, %rsp
        call xenolith_trap_handler
        mov %rbx, %rsp
        /* Same register restore and iretq as a return to a guest (guest_entry.rs). */
        jmp xenolith_restore_guest
        "#,
        options(att_syntax)
    );

    unsafe extern "C" {
        static xenolith_trap_stubs: [u8; 256 * 16];
    }

    /// One 16-byte IDT gate.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Gate {
        low: u64,
        high: u64,
    }

    #[repr(C, align(4096))]
    struct Idt([Gate; 256]);

    static mut IDT: Idt = Idt([Gate { low: 0, high: 0 }; 256]);

    fn gate(handler: u64, ist: u8, dpl: u8) -> Gate {
        let low = (handler & 0xffff)
            | (u64::from(HYPERVISOR_CS) << 16)
            | (u64::from(ist & 7) << 32)
            | (0xeu64 << 40) // 64-bit interrupt gate: IF cleared on entry
            | (u64::from(dpl & 3) << 45)
            | (1 << 47)
            | (((handler >> 16) & 0xffff) << 48);
        Gate {
            low,
            high: handler >> 32,
        }
    }

    /// Fills the shared IDT. Called once on the BSP before any CPU loads it.
    pub fn init() {
        let stubs = core::ptr::addr_of!(xenolith_trap_stubs) as u64;
        // SAFETY: runs once on the BSP before any other CPU exists or loads the IDT.
        let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
        for v in 0..256usize {
            let ist = match v {
                2 => IST_NMI,
                8 => IST_DF,
                18 => IST_MCE,
                _ => 0,
            };
            // int3, into and int $0x80 may be executed by PV guests (Xen's software-interrupt
            // gates); everything else a guest raises with `int` faults with #GP.
            let dpl = if matches!(v, 3 | 4 | 0x80) { 3 } else { 0 };
            idt.0[v] = gate(stubs + (v as u64) * 16, ist, dpl);
        }
    }

    /// Loads the IDT on the executing CPU.
    pub fn load() {
        let ptr = x86_64::structures::DescriptorTablePointer {
            limit: (core::mem::size_of::<Idt>() - 1) as u16,
            base: x86_64::VirtAddr::new(core::ptr::addr_of!(IDT) as u64),
        };
        // SAFETY: the IDT is a static filled by `init` with valid gates to the entry stubs.
        unsafe { x86_64::instructions::tables::lidt(&ptr) };
    }
}

#[cfg(target_os = "none")]
pub use imp::{init, load};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_matches_xen_cpu_user_regs_offsets() {
        // Offsets from xen/include/public/arch-x86/xen-x86_64.h (struct cpu_user_regs).
        assert_eq!(core::mem::offset_of!(TrapFrame, rax), 0x50);
        assert_eq!(core::mem::offset_of!(TrapFrame, rdi), 0x70);
        assert_eq!(core::mem::offset_of!(TrapFrame, error_code), 0x78);
        assert_eq!(core::mem::offset_of!(TrapFrame, entry_vector), 0x7c);
        assert_eq!(core::mem::offset_of!(TrapFrame, rip), 0x80);
        assert_eq!(core::mem::offset_of!(TrapFrame, ss), 0xa0);
    }

    #[test]
    fn error_code_vectors() {
        assert!(has_error_code(14) && has_error_code(8) && !has_error_code(3));
        assert_eq!(exception_name(14), "page fault");
    }
}
