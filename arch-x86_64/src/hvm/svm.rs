//! AMD SVM back-end: detection, enabling, a VMCB for a flat 32-bit protected-mode guest,
//! nested paging and VMRUN (AMD APM vol. 2, ch. 15 and appendix B).
//!
//! Written for what QEMU TCG emulates as well as for hardware: no nRIP save (instruction
//! lengths are decoded, [`super::insn_len`]), no flush-by-ASID (TLB_CONTROL=1 on every VMRUN),
//! no VMCB clean bits.

use super::nested::{FrameSource, NestedTables};
use super::{Exit, GuestRegs, Vcpu, insn_len};
use crate::cpu::{rdmsr, wrmsr};
use crate::layout::phys_to_virt;
use crate::paging::{PAGE_SIZE, Pte};
use core::arch::x86_64::__cpuid;

/// EFER MSR and its SVM-enable bit.
const MSR_EFER: u32 = 0xc000_0080;
const EFER_SVME: u64 = 1 << 12;
/// Physical address of the host state-save page used by VMRUN/#VMEXIT.
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

// VMCB control area offsets.
const C_INTERCEPT_MISC1: usize = 0x00c;
const C_INTERCEPT_MISC2: usize = 0x010;
const C_IOPM_BASE: usize = 0x040;
const C_MSRPM_BASE: usize = 0x048;
const C_ASID: usize = 0x058;
const C_TLB_CONTROL: usize = 0x05c;
const C_VINTR: usize = 0x060;
const C_EXITCODE: usize = 0x070;
const C_EXITINFO1: usize = 0x078;
const C_EXITINFO2: usize = 0x080;
const C_NP_ENABLE: usize = 0x090;
const C_NCR3: usize = 0x0b0;
// Intercept bits.
const MISC1_INTR: u32 = 1 << 0;
const MISC1_CPUID: u32 = 1 << 18;
const MISC1_HLT: u32 = 1 << 24;
const MISC1_IOIO_PROT: u32 = 1 << 27;
const MISC1_SHUTDOWN: u32 = 1 << 31;
const MISC2_VMRUN: u32 = 1 << 0;
const MISC2_VMMCALL: u32 = 1 << 1;
/// V_INTR_MASKING: the host's RFLAGS.IF masks physical interrupts while the guest runs.
const VINTR_MASKING: u64 = 1 << 24;

// VMCB state-save area offsets.
const S_ES: usize = 0x400;
const S_CS: usize = 0x410;
const S_SS: usize = 0x420;
const S_DS: usize = 0x430;
const S_FS: usize = 0x440;
const S_GS: usize = 0x450;
const S_GDTR: usize = 0x460;
const S_LDTR: usize = 0x470;
const S_IDTR: usize = 0x480;
const S_TR: usize = 0x490;
const S_CPL: usize = 0x4cb;
const S_EFER: usize = 0x4d0;
const S_CR4: usize = 0x548;
const S_CR3: usize = 0x550;
const S_CR0: usize = 0x558;
const S_DR7: usize = 0x560;
const S_DR6: usize = 0x568;
const S_RFLAGS: usize = 0x570;
const S_RIP: usize = 0x578;
const S_RSP: usize = 0x5d8;
const S_RAX: usize = 0x5f8;
const S_G_PAT: usize = 0x668;

// Exit codes.
const VMEXIT_INTR: u64 = 0x60;
const VMEXIT_CPUID: u64 = 0x72;
const VMEXIT_HLT: u64 = 0x78;
const VMEXIT_IOIO: u64 = 0x7b;
const VMEXIT_SHUTDOWN: u64 = 0x7f;
const VMEXIT_VMMCALL: u64 = 0x81;
const VMEXIT_NPF: u64 = 0x400;

/// What CPUID says about SVM on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvmInfo {
    /// SVM revision (CPUID 0x8000_000A EAX[7:0]).
    pub revision: u32,
    /// Number of ASIDs.
    pub asids: u32,
    /// Nested paging.
    pub npt: bool,
    /// nRIP save (absent under QEMU TCG).
    pub nrip_save: bool,
}

/// Detects SVM with nested paging; the error says what is missing.
pub fn detect() -> Result<SvmInfo, &'static str> {
    // Leaves above the maximum return unspecified data: check the maximum first.
    let max_ext = __cpuid(0x8000_0000).eax;
    if max_ext < 0x8000_0001 {
        return Err("no SVM");
    }
    if __cpuid(0x8000_0001).ecx & (1 << 2) == 0 {
        return Err("no SVM");
    }
    if max_ext < 0x8000_000a {
        return Err("no SVM feature leaf");
    }
    let l = __cpuid(0x8000_000a);
    let info = SvmInfo {
        revision: l.eax & 0xff,
        asids: l.ebx,
        npt: l.edx & 1 != 0,
        nrip_save: l.edx & (1 << 3) != 0,
    };
    if !info.npt {
        return Err("no NPT");
    }
    Ok(info)
}

/// SVM enabled on the executing CPU (EFER.SVME and the host save area).
pub struct Svm {
    hsave_pa: u64,
}

impl Svm {
    /// Enables SVM on this CPU. Call only after [`detect`] succeeded.
    pub fn enable(frames: &mut impl FrameSource) -> Result<Self, &'static str> {
        let hsave_pa = frames
            .alloc_zeroed(0)
            .ok_or("no memory for the host save area")?;
        // SAFETY: EFER exists on every x86_64 CPU; setting SVME is allowed because `detect`
        // found SVM. VM_HSAVE_PA exists once SVM does, and the page is ours for as long as SVM
        // stays enabled (until `disable`).
        unsafe {
            wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
            wrmsr(MSR_VM_HSAVE_PA, hsave_pa);
        }
        Ok(Self { hsave_pa })
    }

    /// The host save page (to be freed by the caller after [`Svm::disable`]).
    pub fn hsave_pa(&self) -> u64 {
        self.hsave_pa
    }

    /// Turns SVM off again on this CPU (no vCPU may run afterwards).
    pub fn disable(self) {
        // SAFETY: clearing SVME is always allowed outside guest mode, which is where we are.
        unsafe { wrmsr(MSR_EFER, rdmsr(MSR_EFER) & !EFER_SVME) };
    }
}

/// NPT leaves: present, writable, user (nested walks are user accesses), executable.
const NPT_FLAGS: Pte = Pte::PRESENT.union(Pte::RW).union(Pte::USER);

/// Empty nested page tables in the host paging format (nCR3 points at their root).
pub fn npt(frames: &mut impl FrameSource) -> Option<NestedTables> {
    NestedTables::new(frames, NPT_FLAGS)
}

/// One SVM vCPU: its VMCB, I/O permission map and the guest GPRs the VMCB does not hold.
pub struct SvmVcpu<'n> {
    vmcb_pa: u64,
    iopm_pa: u64,
    regs: GuestRegs,
    npt: &'n NestedTables,
}

impl<'n> SvmVcpu<'n> {
    /// A vCPU in flat 32-bit protected mode (CS/DS/ES/SS base 0, limit 4 GiB, CR0.PE only,
    /// no guest paging) at `entry` with stack `stack`, on nested tables `npt`, intercepting
    /// CPUID, HLT, VMMCALL, all port I/O, shutdown and physical interrupts.
    pub fn new_flat32(
        frames: &mut impl FrameSource,
        npt: &'n NestedTables,
        entry: u32,
        stack: u32,
    ) -> Option<Self> {
        let vmcb_pa = frames.alloc_zeroed(0)?;
        // IOPM: 12 KiB; allocated as 16 KiB (order 2), every port intercepted.
        let iopm_pa = frames.alloc_zeroed(2)?;
        // SAFETY: the IOPM frames were just allocated for us and are direct-mapped.
        unsafe { core::ptr::write_bytes(phys_to_virt(iopm_pa) as *mut u8, 0xff, 3 * 4096) };
        // MSRPM: 8 KiB, zero (MSR_PROT is not intercepted; the field must still be valid).
        let msrpm_pa = frames.alloc_zeroed(1)?;
        let mut v = Self {
            vmcb_pa,
            iopm_pa,
            regs: GuestRegs {
                rip: u64::from(entry),
                rsp: u64::from(stack),
                rflags: 0x2,
                ..GuestRegs::default()
            },
            npt,
        };
        v.w32(
            C_INTERCEPT_MISC1,
            MISC1_INTR | MISC1_CPUID | MISC1_HLT | MISC1_IOIO_PROT | MISC1_SHUTDOWN,
        );
        v.w32(C_INTERCEPT_MISC2, MISC2_VMRUN | MISC2_VMMCALL);
        v.w64(C_IOPM_BASE, iopm_pa);
        v.w64(C_MSRPM_BASE, msrpm_pa);
        v.w32(C_ASID, 1);
        v.w64(C_VINTR, VINTR_MASKING);
        v.w64(C_NP_ENABLE, 1);
        v.w64(C_NCR3, npt.root());

        const CODE: u16 = 0xc9b; // G, D, P, S, type 0xb (code, read, accessed)
        const DATA: u16 = 0xc93; // G, B, P, S, type 0x3 (data, write, accessed)
        v.seg(S_CS, 0x08, CODE, 0xffff_ffff, 0);
        for s in [S_DS, S_ES, S_SS, S_FS, S_GS] {
            v.seg(s, 0x10, DATA, 0xffff_ffff, 0);
        }
        v.seg(S_GDTR, 0, 0, 0xffff, 0);
        v.seg(S_IDTR, 0, 0, 0xffff, 0);
        v.seg(S_LDTR, 0, 0x82, 0xffff, 0); // present LDT, empty
        v.seg(S_TR, 0, 0x8b, 0xffff, 0); // busy 32-bit TSS
        v.w8(S_CPL, 0);
        // VMRUN requires EFER.SVME in the guest image too (APM "canonicalization and
        // consistency checks"); the guest cannot observe it without RDMSR.
        v.w64(S_EFER, EFER_SVME);
        v.w64(S_CR0, 1); // PE
        v.w64(S_CR3, 0);
        v.w64(S_CR4, 0);
        v.w64(S_DR6, 0xffff_0ff0);
        v.w64(S_DR7, 0x400);
        v.w64(S_G_PAT, 0x0007_0406_0007_0406);
        Some(v)
    }

    /// The VMCB's physical address.
    pub fn vmcb_pa(&self) -> u64 {
        self.vmcb_pa
    }

    /// The I/O permission map's physical address (16 KiB block).
    pub fn iopm_pa(&self) -> u64 {
        self.iopm_pa
    }

    fn field(&self, off: usize) -> *mut u8 {
        (phys_to_virt(self.vmcb_pa) as *mut u8).wrapping_add(off)
    }

    fn w8(&mut self, off: usize, v: u8) {
        // SAFETY: `off` < 4096 and the VMCB page is ours and direct-mapped.
        unsafe { self.field(off).write_volatile(v) }
    }

    fn w16(&mut self, off: usize, v: u16) {
        // SAFETY: as in `w8`; every offset used is naturally aligned.
        unsafe { self.field(off).cast::<u16>().write_volatile(v) }
    }

    fn w32(&mut self, off: usize, v: u32) {
        // SAFETY: as in `w16`.
        unsafe { self.field(off).cast::<u32>().write_volatile(v) }
    }

    fn w64(&mut self, off: usize, v: u64) {
        // SAFETY: as in `w16`.
        unsafe { self.field(off).cast::<u64>().write_volatile(v) }
    }

    fn r64(&self, off: usize) -> u64 {
        // SAFETY: as in `w16`.
        unsafe { self.field(off).cast::<u64>().read_volatile() }
    }

    /// Writes a segment register image: selector, attributes (VMCB packed format), limit, base.
    fn seg(&mut self, off: usize, sel: u16, attr: u16, limit: u32, base: u64) {
        self.w16(off, sel);
        self.w16(off + 2, attr);
        self.w32(off + 4, limit);
        self.w64(off + 8, base);
    }

    fn exit(&self) -> Exit {
        let (code, info1, info2) = (
            self.r64(C_EXITCODE),
            self.r64(C_EXITINFO1),
            self.r64(C_EXITINFO2),
        );
        match code {
            VMEXIT_CPUID => Exit::Cpuid,
            VMEXIT_HLT => Exit::Hlt,
            VMEXIT_VMMCALL => Exit::Vmmcall,
            VMEXIT_INTR => Exit::ExternalInterrupt,
            VMEXIT_SHUTDOWN => Exit::Shutdown,
            VMEXIT_NPF => Exit::NestedPageFault {
                gpa: info2,
                error: info1,
            },
            // String and REP forms are reported raw until they are emulated.
            VMEXIT_IOIO if info1 & 0b1100 == 0 => Exit::Io {
                port: (info1 >> 16) as u16,
                size: match (info1 >> 4) & 7 {
                    1 => 1,
                    2 => 2,
                    _ => 4,
                },
                write: info1 & 1 == 0,
            },
            other => Exit::Other(other),
        }
    }
}

impl Vcpu for SvmVcpu<'_> {
    fn run(&mut self) -> Exit {
        let r = self.regs;
        self.w64(S_RAX, r.rax);
        self.w64(S_RIP, r.rip);
        self.w64(S_RSP, r.rsp);
        self.w64(S_RFLAGS, r.rflags);
        // TCG has no flush-by-ASID: flush the whole TLB on every entry.
        self.w8(C_TLB_CONTROL, 1);
        // SAFETY: SVM is enabled with a host save area (`Svm::enable`, the caller's duty as
        // documented on `new_flat32`'s users), the VMCB is a consistent image built by
        // `new_flat32`, and `vmrun` restores every host register it does not declare clobbered.
        unsafe { vmrun(self.vmcb_pa, &mut self.regs) };
        self.regs.rax = self.r64(S_RAX);
        self.regs.rip = self.r64(S_RIP);
        self.regs.rsp = self.r64(S_RSP);
        self.regs.rflags = self.r64(S_RFLAGS);
        self.exit()
    }

    fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut GuestRegs {
        &mut self.regs
    }

    fn skip_instruction(&mut self) -> Option<u8> {
        // No nRIP under TCG: decode. CS base plus rip is the guest-physical address while the
        // guest does not page (the only mode built so far).
        let cs_base = self.r64(S_CS + 8);
        let at = cs_base.wrapping_add(self.regs.rip) & 0xffff_ffff;
        let mut bytes = [0u8; 4];
        let n = (0..bytes.len())
            .take_while(|&i| self.npt.read(at + i as u64, &mut bytes[i..=i]))
            .count();
        let len = insn_len(&bytes[..n])?;
        self.regs.rip = (self.regs.rip + u64::from(len)) & 0xffff_ffff;
        Some(len)
    }
}

/// Enters the guest of the VMCB at `vmcb_pa` with GPRs from `regs`, and stores the guest's
/// GPRs back there at #VMEXIT. GIF is cleared around the switch and set again afterwards, so
/// physical interrupts pending at the exit are taken right after this returns.
///
/// # Safety
/// SVM must be enabled on this CPU with a valid host save area, and the VMCB must be valid.
unsafe fn vmrun(vmcb_pa: u64, regs: &mut GuestRegs) {
    const _: () = assert!(core::mem::offset_of!(GuestRegs, r15) == 0x68);
    // SAFETY: the caller guarantees SVM state; rbx and rbp (which cannot be named as operands)
    // are saved on the stack, every other GPR is declared clobbered, and VMRUN/#VMEXIT restore
    // rsp, rax, segment state, control registers and rflags of the host.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "push rdi", // &mut GuestRegs
            "push rax", // VMCB physical address
            "clgi",
            "mov rbx, [rdi + 0x00]",
            "mov rcx, [rdi + 0x08]",
            "mov rdx, [rdi + 0x10]",
            "mov rsi, [rdi + 0x18]",
            "mov rbp, [rdi + 0x28]",
            "mov r8,  [rdi + 0x30]",
            "mov r9,  [rdi + 0x38]",
            "mov r10, [rdi + 0x40]",
            "mov r11, [rdi + 0x48]",
            "mov r12, [rdi + 0x50]",
            "mov r13, [rdi + 0x58]",
            "mov r14, [rdi + 0x60]",
            "mov r15, [rdi + 0x68]",
            "mov rdi, [rdi + 0x20]",
            "vmrun rax",
            // Back in the host: rsp and rax (the VMCB address) are the host's again.
            "push rdi",
            "mov rdi, [rsp + 16]",
            "mov [rdi + 0x00], rbx",
            "mov [rdi + 0x08], rcx",
            "mov [rdi + 0x10], rdx",
            "mov [rdi + 0x18], rsi",
            "mov [rdi + 0x28], rbp",
            "mov [rdi + 0x30], r8",
            "mov [rdi + 0x38], r9",
            "mov [rdi + 0x40], r10",
            "mov [rdi + 0x48], r11",
            "mov [rdi + 0x50], r12",
            "mov [rdi + 0x58], r13",
            "mov [rdi + 0x60], r14",
            "mov [rdi + 0x68], r15",
            "pop qword ptr [rdi + 0x20]",
            "stgi",
            "pop rax",
            "pop rdi",
            "pop rbx",
            "pop rbp",
            inout("rax") vmcb_pa => _,
            inout("rdi") core::ptr::from_mut(regs) => _,
            out("rcx") _, out("rdx") _, out("rsi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
}

/// Whether a nested-page-fault error code says the translation itself was missing (P clear).
pub fn npf_not_present(error: u64) -> bool {
    error & 1 == 0
}

/// Page-aligns a guest-physical address.
pub fn gpa_page(gpa: u64) -> u64 {
    gpa & !(PAGE_SIZE - 1)
}
