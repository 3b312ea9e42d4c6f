//! Hardware-assisted virtualization: one vendor-neutral vCPU interface with a normalised exit
//! enum, and the vendor back-ends behind it: AMD SVM ([`svm`]) and Intel VMX ([`vmx`]). One
//! binary picks one of them at runtime from CPUID.
//!
//! Guest-physical memory is described by nested page tables (SVM: NPT in the host paging
//! format; VMX: EPT), both built with [`crate::paging::Mapper`].

pub mod mmio;
pub mod nested;
pub mod svm;
pub mod vmx;
pub mod walk;

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
    /// A string port I/O instruction (INS/OUTS, with or without REP); rip still points at it.
    /// The operands are the guest's: count in rcx (REP), memory at rsi (OUTS) or rdi (INS),
    /// direction from RFLAGS.DF.
    IoString {
        /// I/O port.
        port: u16,
        /// Element size in bytes (1, 2 or 4).
        size: u8,
        /// OUTS (true) or INS (false).
        write: bool,
        /// REP prefix.
        rep: bool,
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
    /// The guest executed RDMSR (`write: false`) or WRMSR (`write: true`) on an MSR the
    /// back-end does not pass through: index in `rcx`, value in `edx:eax`; rip still points
    /// at it.
    Msr {
        /// WRMSR (true) or RDMSR (false).
        write: bool,
    },
    /// The guest executed XSETBV (register index in `rcx`, value in `edx:eax`); rip still
    /// points at it. The back-end loads the value set with [`Vcpu::set_xcr0`] around each
    /// entry, so the host's XCR0 is never the guest's.
    Xsetbv,
    /// An NMI arrived while the guest ran (the back-end has let the host take it).
    Nmi,
    /// The guest executed PAUSE (spin-wait hint); rip still points at it.
    Pause,
    /// The guest can now take the interrupt queued with [`Vcpu::inject_interrupt`] (a
    /// back-end that needs a window exit to deliver it); just run again.
    InterruptWindow,
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

impl GuestRegs {
    /// General-purpose register `n` in the instruction encoding's numbering (rax, rcx, rdx,
    /// rbx, rsp, rbp, rsi, rdi, r8-r15).
    pub fn gpr_mut(&mut self, n: usize) -> &mut u64 {
        match n & 15 {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => &mut self.rsp,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        }
    }

    /// General-purpose register `n` (numbered as in [`GuestRegs::gpr_mut`]).
    pub fn gpr(&self, n: usize) -> u64 {
        let mut copy = *self;
        *copy.gpr_mut(n)
    }
}

/// EFER with LMA set exactly when LME and CR0.PG are (the hardware's rule; Xen's
/// `arch_set_info_hvm_guest` sets LMA with LME, and 64-bit contexts always have PG).
pub fn efer_lma(efer: u64, cr0: u64) -> u64 {
    const EFER_LME: u64 = 1 << 8;
    const EFER_LMA: u64 = 1 << 10;
    let lma = efer & EFER_LME != 0 && cr0 & (1 << 31) != 0;
    (efer & !EFER_LMA) | if lma { EFER_LMA } else { 0 }
}

/// A start context's segment attributes (packed format) as loaded: a present segment
/// accessed, a present TSS (`tr`) busy, as Xen's `arch_set_info_hvm_guest` marks them.
pub fn start_attr(attr: u16, tr: bool) -> u16 {
    match (attr & (1 << 7) != 0, tr) {
        (false, _) => attr,
        (true, true) => attr | 2,
        (true, false) => attr | 1,
    }
}

/// The guest's control state, as needed to walk its page tables and decode its instructions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControlState {
    /// CR0 as the guest runs with it (PE bit 0, PG bit 31).
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4 as the guest sees it (PAE bit 5, PSE bit 4, LA57 bit 12).
    pub cr4: u64,
    /// EFER as the guest sees it (LME bit 8, LMA bit 10, NXE bit 11; never SVME).
    pub efer: u64,
    /// CS base.
    pub cs_base: u64,
    /// CS.L: the guest runs 64-bit code.
    pub cs_long: bool,
    /// CS.D/B: 32-bit default operand size outside 64-bit mode.
    pub cs_db: bool,
    /// Current privilege level.
    pub cpl: u8,
}

impl ControlState {
    /// Whether the guest is in long mode (EFER.LMA).
    pub fn long_mode(&self) -> bool {
        self.efer & (1 << 10) != 0
    }

    /// Whether guest paging is on (CR0.PG).
    pub fn paging(&self) -> bool {
        self.cr0 & (1 << 31) != 0
    }
}

/// A register state to start a vCPU in, from Xen's `vcpu_hvm_context` (`VCPUOP_initialise`
/// for an HVM vCPU), already checked by the hypervisor for what Xen refuses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartContext {
    /// `VCPU_HVM_MODE_64B`: long mode with flat 64-bit CS and flat data segments (the
    /// guest's GDT is not loaded); otherwise `VCPU_HVM_MODE_32B` with [`StartContext::segs`].
    pub long: bool,
    /// General-purpose registers, rip, rsp, rflags.
    pub regs: GuestRegs,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER.
    pub efer: u64,
    /// 32-bit mode: CS, DS, SS, ES, TR as (base, limit, attributes), the attributes in
    /// Xen's `segment_register` format (type:4 s:1 dpl:2 p:1 avl:1 l:1 db:1 g:1, i.e. the
    /// VMCB's packed format). Unused in 64-bit mode.
    pub segs: [(u32, u32, u16); 5],
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
    /// The guest's control registers, EFER and CS state as of the last exit.
    fn control(&self) -> ControlState;
    /// Queues external interrupt `vector`, delivered once the guest can take interrupts
    /// (RFLAGS.IF set, no interrupt shadow). One at a time: false (nothing queued) while an
    /// earlier one is still waiting.
    fn inject_interrupt(&mut self, vector: u8) -> bool;
    /// Whether an interrupt queued with [`Vcpu::inject_interrupt`] has not been taken yet.
    fn interrupt_pending(&self) -> bool;
    /// Injects exception `vector` (with `error` code, if the vector has one) at the next
    /// entry, e.g. #GP(0) for an MSR the guest may not touch.
    fn inject_exception(&mut self, vector: u8, error: Option<u32>);
    /// Reads a guest MSR the back-end keeps in its control block (EFER without SVME, PAT,
    /// FS/GS/kernel-GS base, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS/ESP/EIP); `None` for
    /// any other.
    fn read_msr(&self, index: u32) -> Option<u64>;
    /// Writes such an MSR (EFER keeps the back-end's required bits, LMA follows the
    /// hardware rules); false for any other MSR or a value the hardware would refuse.
    fn write_msr(&mut self, index: u32, value: u64) -> bool;
    /// The XCR0 the guest runs with (set by the generic XSETBV handler after validation).
    fn set_xcr0(&mut self, xcr0: u64);
}

/// Length of the instruction starting with `bytes`, for the instructions that cause the exits
/// handled here (CPUID, HLT, VMMCALL, VMCALL, IN/OUT, RDMSR, WRMSR, XSETBV, PAUSE), with any
/// legacy prefixes and a REX prefix. `None` for anything else.
///
/// REX bytes (0x40-0x4f) are `inc`/`dec` outside 64-bit mode, instructions that never exit, so
/// an exiting instruction starting with one is always a REX-prefixed 64-bit instruction.
pub fn insn_len(bytes: &[u8]) -> Option<u8> {
    /// The architectural maximum instruction length.
    const MAX_LEN: usize = 15;
    let mut i = 0;
    let mut rep = false;
    while let Some(&b) = bytes.get(i) {
        match b {
            // Operand/address size, segment overrides, REPNE.
            0x66 | 0x67 | 0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf2 => {}
            0xf3 => rep = true,
            _ => break,
        }
        i += 1;
    }
    if let Some(0x40..=0x4f) = bytes.get(i) {
        i += 1;
    }
    let len = match bytes.get(i..)? {
        [0x0f, 0xa2, ..] => 2,                     // cpuid
        [0x0f, 0x30 | 0x32, ..] => 2,              // wrmsr / rdmsr
        [0x0f, 0x01, 0xd9 | 0xc1 | 0xd1, ..] => 3, // vmmcall / vmcall / xsetbv
        [0xf4, ..] => 1,                           // hlt
        [0x90, ..] if rep => 1,                    // pause (rep nop)
        [0xe4..=0xe7, ..] => 2,                    // in/out al/eax, imm8
        [0xec..=0xef, ..] => 1,                    // in/out al/eax, dx
        [0x6c..=0x6f, ..] => 1,                    // ins / outs
        _ => return None,
    };
    let total = i + len;
    (total <= MAX_LEN).then_some(total as u8)
}

/// The 12-byte Xen signature returned in ebx, ecx, edx for CPUID leaf 0x40000000.
pub const XEN_CPUID_SIGNATURE: [u32; 3] = [0x566e_6558, 0x65584d4d, 0x4d4d566e];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_of_exiting_instructions() {
        assert_eq!(insn_len(&[0x0f, 0xa2]), Some(2));
        assert_eq!(insn_len(&[0xf3, 0x6e]), Some(2)); // rep outsb
        assert_eq!(insn_len(&[0x66, 0x6d]), Some(2)); // insw
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
    fn lengths_of_msr_xsetbv_and_pause() {
        assert_eq!(insn_len(&[0x0f, 0x32]), Some(2)); // rdmsr
        assert_eq!(insn_len(&[0x0f, 0x30, 0xc3]), Some(2)); // wrmsr
        assert_eq!(insn_len(&[0x0f, 0x01, 0xd1]), Some(3)); // xsetbv
        assert_eq!(insn_len(&[0xf3, 0x90]), Some(2)); // pause
        assert_eq!(insn_len(&[0x0f, 0x01, 0xd0]), None); // xgetbv does not exit
        assert_eq!(insn_len(&[0x0f, 0x31]), None); // rdtsc does not exit
        assert_eq!(insn_len(&[0xf3]), None);
    }

    #[test]
    fn lengths_with_prefixes() {
        // REX prefixes in 64-bit code.
        assert_eq!(insn_len(&[0x48, 0x0f, 0x30]), Some(3));
        assert_eq!(insn_len(&[0x41, 0xef]), Some(2));
        assert_eq!(insn_len(&[0x4f, 0xe5, 0x71]), Some(3));
        // Operand-size prefix then REX (REX must come last).
        assert_eq!(insn_len(&[0x66, 0x48, 0xed]), Some(3));
        assert_eq!(insn_len(&[0x66, 0x40, 0xe7, 0x80]), Some(4));
        // Legacy prefixes stack; a REX before a legacy prefix is not a prefix of it.
        assert_eq!(insn_len(&[0x2e, 0x66, 0xee]), Some(3));
        assert_eq!(insn_len(&[0x48, 0x66, 0xee]), None);
        assert_eq!(insn_len(&[0x48, 0x48, 0xee]), None);
        // A REX alone or before an instruction that does not exit.
        assert_eq!(insn_len(&[0x48]), None);
        assert_eq!(insn_len(&[0x48, 0x90]), None);
        // Longer than 15 bytes.
        let mut long = [0x66u8; 16];
        long[15] = 0xee;
        assert_eq!(insn_len(&long), None);
        assert_eq!(insn_len(&long[2..]), Some(14));
        assert_eq!(insn_len(&long[1..]), Some(15));
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
