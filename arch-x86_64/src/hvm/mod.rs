//! Hardware-assisted virtualization: one vendor-neutral vCPU interface with a normalised exit
//! enum, and the vendor back-ends behind it: AMD SVM ([`svm`]) and Intel VMX ([`vmx`]). One
//! binary picks one of them at runtime from CPUID.
//!
//! Guest-physical memory is described by nested page tables (SVM: NPT in the host paging
//! format; VMX: EPT), both built with [`crate::paging::Mapper`].

pub mod nested;
pub mod svm;
pub mod vmx;

/// Why a vCPU stopped running guest code, independent of the vendor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The guest executed CPUID (leaf in `rax`, subleaf in `rcx`); rip still points at it.
    Cpuid,
    /// The guest executed HLT; rip still points at it.
    Hlt,
    /// The guest executed VMMCALL/VMCALL (a hypercall); rip still points at it.
    Vmmcall,
    /// A port I/O instruction (not string, not REP); rip still points at it.
    Io {
        /// I/O port.
        port: u16,
        /// Access size in bytes (1, 2 or 4).
        size: u8,
        /// OUT (true) or IN (false).
        write: bool,
    },
    /// A guest-physical access that the nested page tables do not allow.
    NestedPageFault {
        /// The faulting guest-physical address.
        gpa: u64,
        /// The vendor's error code (SVM: the #PF-style code in EXITINFO1; VMX: the EPT
        /// violation's exit qualification).
        error: u64,
    },
    /// A physical interrupt arrived while the guest ran (the host handles it once resumed).
    ExternalInterrupt,
    /// The guest triple-faulted.
    Shutdown,
    /// Entering the guest failed. VMX: the VM-instruction error number (0 for VMfailInvalid),
    /// or the exit reason with bit 31 set for an entry that failed on guest state.
    EntryFailed(u64),
    /// Anything else: the vendor's raw exit code.
    Other(u64),
}

/// The guest's general-purpose registers plus rip, rsp and rflags (vendor-neutral).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GuestRegs {
    /// rbx (offset 0x00: the SVM entry code relies on this layout up to r15).
    pub rbx: u64,
    /// rcx.
    pub rcx: u64,
    /// rdx.
    pub rdx: u64,
    /// rsi.
    pub rsi: u64,
    /// rdi.
    pub rdi: u64,
    /// rbp.
    pub rbp: u64,
    /// r8.
    pub r8: u64,
    /// r9.
    pub r9: u64,
    /// r10.
    pub r10: u64,
    /// r11.
    pub r11: u64,
    /// r12.
    pub r12: u64,
    /// r13.
    pub r13: u64,
    /// r14.
    pub r14: u64,
    /// r15.
    pub r15: u64,
    /// rax (kept in the VMCB on SVM).
    pub rax: u64,
    /// rip.
    pub rip: u64,
    /// rsp.
    pub rsp: u64,
    /// rflags.
    pub rflags: u64,
}

/// A virtual CPU of a hardware-virtualized guest.
pub trait Vcpu {
    /// Runs the guest until the next exit.
    fn run(&mut self) -> Exit;
    /// The guest's registers as of the last exit.
    fn regs(&self) -> &GuestRegs;
    /// The guest's registers, to change before the next [`Vcpu::run`].
    fn regs_mut(&mut self) -> &mut GuestRegs;
    /// Moves rip past the instruction that caused the last exit (decoding it where the
    /// hardware does not report its length). Returns the length, or `None` if unknown.
    fn skip_instruction(&mut self) -> Option<u8>;
}

/// Length of the instruction starting with `bytes`, for the instructions that cause the exits
/// handled here (CPUID, HLT, VMMCALL, VMCALL, IN/OUT). `None` for anything else.
pub fn insn_len(bytes: &[u8]) -> Option<u8> {
    // Operand-size prefix (e.g. `out dx, ax` in 32-bit code).
    let (prefix, rest) = match bytes.first() {
        Some(0x66) => (1, &bytes[1..]),
        _ => (0, bytes),
    };
    let len = match rest {
        [0x0f, 0xa2, ..] => 2,              // cpuid
        [0xf4, ..] => 1,                    // hlt
        [0x0f, 0x01, 0xd9 | 0xc1, ..] => 3, // vmmcall / vmcall
        [0xe4..=0xe7, ..] => 2,             // in/out al/eax, imm8
        [0xec..=0xef, ..] => 1,             // in/out al/eax, dx
        _ => return None,
    };
    Some(prefix + len)
}

/// The 12-byte Xen signature returned in ebx, ecx, edx for CPUID leaf 0x40000000.
pub const XEN_CPUID_SIGNATURE: [u32; 3] = [0x566e_6558, 0x65584d4d, 0x4d4d566e];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_exiting_instructions() {
        assert_eq!(insn_len(&[0x0f, 0xa2]), Some(2));
        assert_eq!(insn_len(&[0xf4, 0x90]), Some(1));
        assert_eq!(insn_len(&[0x0f, 0x01, 0xd9]), Some(3));
        assert_eq!(insn_len(&[0x0f, 0x01, 0xc1]), Some(3));
        assert_eq!(insn_len(&[0xe6, 0xe9]), Some(2));
        assert_eq!(insn_len(&[0xee]), Some(1));
        assert_eq!(insn_len(&[0x66, 0xef]), Some(2));
        assert_eq!(insn_len(&[0x66, 0xe7, 0x80]), Some(3));
        assert_eq!(insn_len(&[0x90]), None);
        assert_eq!(insn_len(&[0x0f]), None);
        assert_eq!(insn_len(&[]), None);
    }

    #[test]
    fn xen_signature_spells_xenvmmxenvmm() {
        let mut s = [0u8; 12];
        for (i, w) in XEN_CPUID_SIGNATURE.iter().enumerate() {
            s[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(&s, b"XenVMMXenVMM");
    }
}
