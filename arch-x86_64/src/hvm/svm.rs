//! AMD SVM back-end: detection, enabling, a VMCB for a PVH guest (32-bit protected mode,
//! paging off), nested paging, VMRUN with VMLOAD/VMSAVE around it, MSR and XCR0 handling and
//! event injection (AMD APM vol. 2, ch. 15 and appendix B).
//!
//! Written for what QEMU TCG emulates as well as for hardware: no nRIP save (instruction
//! lengths are decoded, [`super::insn_len`]), no flush-by-ASID (TLB_CONTROL=1 on every VMRUN),
//! no VMCB clean bits (all cleared on every VMRUN), no decode assists.

use super::nested::{FrameSource, NestedTables};
use super::{
    ControlState, Exit, GuestRegs, StartContext, Vcpu, efer_lma, insn_len, start_attr, walk,
};
use crate::cpu::{rdmsr, read_cr4, wrmsr};
use crate::layout::phys_to_virt;
use crate::paging::{PAGE_SIZE, Pte};
use core::arch::x86_64::{__cpuid, __cpuid_count};

// MSRs, named as in Xen's msr-index.h.
const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_CR_PAT: u32 = 0x277;
/// Physical address of the host state-save page used by VMRUN/#VMEXIT.
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;

// EFER bits.
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
const EFER_SVME: u64 = 1 << 12;
/// CR0.PG, CR4.OSXSAVE.
const X86_CR0_PG: u64 = 1 << 31;
/// RFLAGS bits that may be 1 (the rest are reserved; bit 1 is always 1).
const RFLAGS_VALID: u64 = 0x003f_7fd5;
const X86_EFLAGS_MBS: u64 = 1 << 1;
const X86_CR4_OSXSAVE: u64 = 1 << 18;

/// The MSRs VMLOAD/VMSAVE switch: the guest uses them directly (no MSR intercept), and
/// [`Vcpu::read_msr`]/[`Vcpu::write_msr`] see them in the VMCB.
const PASSTHROUGH_MSRS: [u32; 10] = [
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_SHADOW_GS_BASE,
    MSR_STAR,
    MSR_LSTAR,
    MSR_CSTAR,
    MSR_SYSCALL_MASK,
    MSR_IA32_SYSENTER_CS,
    MSR_IA32_SYSENTER_ESP,
    MSR_IA32_SYSENTER_EIP,
];

// VMCB control area offsets.
const C_INTERCEPT_MISC1: usize = 0x00c;
const C_INTERCEPT_MISC2: usize = 0x010;
const C_IOPM_BASE: usize = 0x040;
const C_MSRPM_BASE: usize = 0x048;
const C_ASID: usize = 0x058;
const C_TLB_CONTROL: usize = 0x05c;
const C_VINTR: usize = 0x060;
const C_INTERRUPT_SHADOW: usize = 0x068;
const C_EXITCODE: usize = 0x070;
const C_EXITINFO1: usize = 0x078;
const C_EXITINFO2: usize = 0x080;
const C_EXITINTINFO: usize = 0x088;
const C_NP_ENABLE: usize = 0x090;
const C_EVENTINJ: usize = 0x0a8;
const C_NCR3: usize = 0x0b0;
const C_VMCB_CLEAN: usize = 0x0c0;
// Intercept bits (Xen's GENERAL1_INTERCEPT_* / GENERAL2_INTERCEPT_*).
const MISC1_INTR: u32 = 1 << 0;
const MISC1_NMI: u32 = 1 << 1;
const MISC1_CPUID: u32 = 1 << 18;
const MISC1_HLT: u32 = 1 << 24;
const MISC1_INVLPGA: u32 = 1 << 26;
const MISC1_IOIO_PROT: u32 = 1 << 27;
const MISC1_MSR_PROT: u32 = 1 << 28;
const MISC1_SHUTDOWN: u32 = 1 << 31;
const MISC2_VMRUN: u32 = 1 << 0;
const MISC2_VMMCALL: u32 = 1 << 1;
const MISC2_VMLOAD: u32 = 1 << 2;
const MISC2_VMSAVE: u32 = 1 << 3;
const MISC2_STGI: u32 = 1 << 4;
const MISC2_CLGI: u32 = 1 << 5;
const MISC2_SKINIT: u32 = 1 << 6;
const MISC2_XSETBV: u32 = 1 << 13;
// Virtual interrupt control (the VINTR quadword).
/// V_IRQ: a virtual interrupt is pending; the CPU clears it when the guest takes it.
const V_IRQ: u64 = 1 << 8;
const V_INTR_PRIO_SHIFT: u32 = 16;
const V_INTR_PRIO_MASK: u64 = 0xf << V_INTR_PRIO_SHIFT;
/// V_IGN_TPR: deliver regardless of the guest's virtual TPR.
const V_IGN_TPR: u64 = 1 << 20;
/// V_INTR_MASKING: the host's RFLAGS.IF masks physical interrupts while the guest runs, the
/// guest's masks only virtual ones.
const V_INTR_MASKING: u64 = 1 << 24;
const V_INTR_VECTOR_SHIFT: u32 = 32;
const V_INTR_VECTOR_MASK: u64 = 0xff << V_INTR_VECTOR_SHIFT;
// EVENTINJ / EXITINTINFO format.
const EVENT_VECTOR: u64 = 0xff;
const EVENT_TYPE_SHIFT: u32 = 8;
const EVENT_TYPE: u64 = 7 << EVENT_TYPE_SHIFT;
const X86_EVENTTYPE_EXT_INTR: u64 = 0;
const X86_EVENTTYPE_HW_EXCEPTION: u64 = 3;
const X86_EVENTTYPE_SW_INTERRUPT: u64 = 4;
/// Error code valid.
const EVENT_EV: u64 = 1 << 11;
const EVENT_VALID: u64 = 1 << 31;
const EVENT_ERROR: u64 = 0xffff_ffff << 32;

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
const S_STAR: usize = 0x600;
const S_LSTAR: usize = 0x608;
const S_CSTAR: usize = 0x610;
const S_SFMASK: usize = 0x618;
const S_KERNEL_GS_BASE: usize = 0x620;
const S_SYSENTER_CS: usize = 0x628;
const S_SYSENTER_ESP: usize = 0x630;
const S_SYSENTER_EIP: usize = 0x638;
const S_G_PAT: usize = 0x668;
/// Offset of a segment image's base within it.
const SEG_BASE: usize = 8;
/// CS attribute bits (VMCB packed format): L (64-bit code) and D/B (32-bit default size).
const ATTR_L: u16 = 1 << 9;
const ATTR_DB: u16 = 1 << 10;

// Exit codes.
const VMEXIT_INTR: u64 = 0x60;
const VMEXIT_NMI: u64 = 0x61;
const VMEXIT_VINTR: u64 = 0x64;
const VMEXIT_CPUID: u64 = 0x72;
const VMEXIT_HLT: u64 = 0x78;
const VMEXIT_IOIO: u64 = 0x7b;
const VMEXIT_MSR: u64 = 0x7c;
const VMEXIT_SHUTDOWN: u64 = 0x7f;
const VMEXIT_VMMCALL: u64 = 0x81;
const VMEXIT_XSETBV: u64 = 0x8d;
const VMEXIT_NPF: u64 = 0x400;
/// VMRUN refused the guest state (-1).
const VMEXIT_INVALID: u64 = u64::MAX;
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

/// A segment register image: selector, attributes (VMCB packed format), limit, base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    sel: u16,
    attr: u16,
    limit: u32,
    base: u64,
}

impl Seg {
    const fn flat(sel: u16, attr: u16) -> Self {
        Self {
            sel,
            attr,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
}

/// A vCPU's initial state apart from its GPRs: segments (LDTR always unusable), GDTR/IDTR
/// (base 0), CPL, and control registers and EFER as the guest sees them (EFER without SVME).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BootState {
    cs: Seg,
    ds: Seg,
    es: Seg,
    ss: Seg,
    fs: Seg,
    gs: Seg,
    tr: Seg,
    dt_limit: u32,
    cpl: u8,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

/// Attributes: G, D/B, P, S, type 0xb (code, read, accessed); G, B, P, S, type 3 (data,
/// write, accessed); G, L, P, S, type 0xb (64-bit code); P, type 0xb (busy 32/64-bit TSS).
const CODE32: u16 = 0xc9b;
const DATA: u16 = 0xc93;
const CODE64: u16 = 0xa9b;
const TSS_BUSY: u16 = 0x8b;

impl BootState {
    /// PVH's boot state (docs/misc/pvh.pandoc): 32-bit protected mode, paging off, flat
    /// segments, a busy 32-bit TSS, CR0 = PE | ET.
    const PVH: Self = Self {
        cs: Seg::flat(0x08, CODE32),
        ds: Seg::flat(0x10, DATA),
        es: Seg::flat(0x10, DATA),
        ss: Seg::flat(0x10, DATA),
        fs: Seg::flat(0x10, DATA),
        gs: Seg::flat(0x10, DATA),
        tr: Seg {
            sel: 0,
            attr: TSS_BUSY,
            limit: 0x67,
            base: 0,
        },
        dt_limit: 0xffff,
        cpl: 0,
        cr0: 0x11,
        cr3: 0,
        cr4: 0,
        efer: 0,
    };

    /// The state `VCPUOP_initialise` asks for, as Xen's `arch_set_info_hvm_guest` builds
    /// it: 64-bit mode with flat segments and no descriptor tables, or 32-bit mode with the
    /// given CS, DS, SS, ES, TR (FS and GS as DS). EFER.LMA follows LME and CR0.PG.
    fn from_context(ctx: &StartContext) -> Self {
        let efer = efer_lma(ctx.efer, ctx.cr0);
        if ctx.long {
            let data = Seg::flat(0, DATA);
            return Self {
                cs: Seg::flat(0, CODE64),
                ds: data,
                es: data,
                ss: data,
                fs: data,
                gs: data,
                tr: Seg {
                    limit: 0x67,
                    ..Seg::flat(0, TSS_BUSY)
                },
                dt_limit: 0,
                cpl: 0,
                cr0: ctx.cr0,
                cr3: ctx.cr3,
                cr4: ctx.cr4,
                efer,
            };
        }
        let seg = |i: usize| {
            let (base, limit, attr) = ctx.segs[i];
            Seg {
                sel: 0,
                attr: start_attr(attr, i == 4),
                limit,
                base: u64::from(base),
            }
        };
        let (cs, ds, ss, es, tr) = (seg(0), seg(1), seg(2), seg(3), seg(4));
        Self {
            cs,
            ds,
            es,
            ss,
            fs: ds,
            gs: ds,
            tr,
            dt_limit: 0,
            cpl: ((ss.attr >> 5) & 3) as u8,
            cr0: ctx.cr0,
            cr3: ctx.cr3,
            cr4: ctx.cr4,
            efer,
        }
    }
}

/// One SVM vCPU: its VMCB, I/O and MSR permission maps, the host-state area VMSAVE/VMLOAD use
/// around VMRUN, the guest GPRs the VMCB does not hold and the guest's XCR0.
pub struct SvmVcpu<'n> {
    vmcb_pa: u64,
    iopm_pa: u64,
    /// VMCB-format page for the host's FS/GS/TR/LDTR and syscall MSRs while the guest runs.
    host_pa: u64,
    regs: GuestRegs,
    npt: &'n NestedTables,
    xcr0: u64,
}

impl<'n> SvmVcpu<'n> {
    /// A vCPU in the PVH boot state (Xen's docs/misc/pvh.pandoc) at `entry`, with `rbx` =
    /// `start_info` (the start-info structure's guest-physical address), on nested tables
    /// `npt`: 32-bit protected mode, paging off, flat segments, a busy 32-bit TSS.
    pub fn new_pvh(
        frames: &mut impl FrameSource,
        npt: &'n NestedTables,
        entry: u32,
        start_info: u32,
    ) -> Option<Self> {
        let mut v = Self::new_flat(frames, npt, entry)?;
        v.regs.rbx = u64::from(start_info);
        Some(v)
    }

    /// A vCPU in the PVH boot state at `entry` with stack `stack` (and rbx 0), as the
    /// self-test's hand-assembled guest expects.
    pub fn new_flat32(
        frames: &mut impl FrameSource,
        npt: &'n NestedTables,
        entry: u32,
        stack: u32,
    ) -> Option<Self> {
        let mut v = Self::new_flat(frames, npt, entry)?;
        v.regs.rsp = u64::from(stack);
        Some(v)
    }

    /// A vCPU started with `VCPUOP_initialise` in the state `ctx` (as Xen's
    /// `arch_set_info_hvm_guest` sets it up), otherwise as [`SvmVcpu::new_pvh`].
    pub fn new_context(
        frames: &mut impl FrameSource,
        npt: &'n NestedTables,
        ctx: &StartContext,
    ) -> Option<Self> {
        let regs = GuestRegs {
            rflags: (ctx.regs.rflags & RFLAGS_VALID) | X86_EFLAGS_MBS,
            ..ctx.regs
        };
        Self::new_state(frames, npt, regs, &BootState::from_context(ctx))
    }

    /// The PVH boot state at `entry`.
    fn new_flat(frames: &mut impl FrameSource, npt: &'n NestedTables, entry: u32) -> Option<Self> {
        let regs = GuestRegs {
            rip: u64::from(entry),
            rflags: X86_EFLAGS_MBS,
            ..GuestRegs::default()
        };
        Self::new_state(frames, npt, regs, &BootState::PVH)
    }

    /// The shared constructor: intercepts, permission maps, and the initial state `boot`
    /// with `regs`.
    fn new_state(
        frames: &mut impl FrameSource,
        npt: &'n NestedTables,
        regs: GuestRegs,
        boot: &BootState,
    ) -> Option<Self> {
        let vmcb_pa = frames.alloc_zeroed(0)?;
        let host_pa = frames.alloc_zeroed(0)?;
        // IOPM: 12 KiB; allocated as 16 KiB (order 2), every port intercepted.
        let iopm_pa = frames.alloc_zeroed(2)?;
        // SAFETY: the IOPM frames were just allocated for us and are direct-mapped.
        unsafe { core::ptr::write_bytes(phys_to_virt(iopm_pa) as *mut u8, 0xff, 3 * 4096) };
        // MSRPM: 8 KiB, every MSR intercepted but those VMLOAD/VMSAVE switch.
        let msrpm_pa = frames.alloc_zeroed(1)?;
        // SAFETY: the MSRPM frames were just allocated for us, are direct-mapped and not
        // referenced anywhere else yet.
        let msrpm = unsafe {
            core::slice::from_raw_parts_mut(phys_to_virt(msrpm_pa) as *mut u8, MSRPM_SIZE)
        };
        fill_msrpm(msrpm);
        let mut v = Self {
            vmcb_pa,
            iopm_pa,
            host_pa,
            regs,
            npt,
            xcr0: XCR0_X87,
        };
        v.w32(
            C_INTERCEPT_MISC1,
            MISC1_INTR
                | MISC1_NMI
                | MISC1_CPUID
                | MISC1_HLT
                | MISC1_INVLPGA
                | MISC1_IOIO_PROT
                | MISC1_MSR_PROT
                | MISC1_SHUTDOWN,
        );
        v.w32(
            C_INTERCEPT_MISC2,
            MISC2_VMRUN
                | MISC2_VMMCALL
                | MISC2_VMLOAD
                | MISC2_VMSAVE
                | MISC2_STGI
                | MISC2_CLGI
                | MISC2_SKINIT
                | MISC2_XSETBV,
        );
        v.w64(C_IOPM_BASE, iopm_pa);
        v.w64(C_MSRPM_BASE, msrpm_pa);
        v.w32(C_ASID, 1);
        v.w64(C_VINTR, V_INTR_MASKING);
        v.w64(C_NP_ENABLE, 1);
        v.w64(C_NCR3, npt.root());

        for (off, s) in [
            (S_CS, boot.cs),
            (S_DS, boot.ds),
            (S_ES, boot.es),
            (S_SS, boot.ss),
            (S_FS, boot.fs),
            (S_GS, boot.gs),
            (S_TR, boot.tr),
        ] {
            v.seg(off, s.sel, s.attr, s.limit, s.base);
        }
        v.seg(S_GDTR, 0, 0, boot.dt_limit, 0);
        v.seg(S_IDTR, 0, 0, boot.dt_limit, 0);
        v.seg(S_LDTR, 0, 0, 0, 0); // unusable (SVM does not check LDTR)
        v.w8(S_CPL, boot.cpl);
        // VMRUN requires EFER.SVME in the guest image too (APM "canonicalization and
        // consistency checks"); EFER accesses are intercepted and never show it.
        v.w64(S_EFER, boot.efer | EFER_SVME);
        v.w64(S_CR0, boot.cr0);
        v.w64(S_CR3, boot.cr3);
        v.w64(S_CR4, boot.cr4);
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

    fn r8(&self, off: usize) -> u8 {
        // SAFETY: as in `w8`.
        unsafe { self.field(off).read_volatile() }
    }

    fn r16(&self, off: usize) -> u16 {
        // SAFETY: as in `w16`.
        unsafe { self.field(off).cast::<u16>().read_volatile() }
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
        self.w64(off + SEG_BASE, base);
    }

    /// Where the VMCB keeps a guest MSR this back-end handles.
    fn msr_field(index: u32) -> Option<usize> {
        Some(match index {
            MSR_IA32_CR_PAT => S_G_PAT,
            MSR_FS_BASE => S_FS + SEG_BASE,
            MSR_GS_BASE => S_GS + SEG_BASE,
            MSR_SHADOW_GS_BASE => S_KERNEL_GS_BASE,
            MSR_STAR => S_STAR,
            MSR_LSTAR => S_LSTAR,
            MSR_CSTAR => S_CSTAR,
            MSR_SYSCALL_MASK => S_SFMASK,
            MSR_IA32_SYSENTER_CS => S_SYSENTER_CS,
            MSR_IA32_SYSENTER_ESP => S_SYSENTER_ESP,
            MSR_IA32_SYSENTER_EIP => S_SYSENTER_EIP,
            _ => return None,
        })
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
            VMEXIT_NMI => Exit::Nmi,
            VMEXIT_VINTR => Exit::InterruptWindow,
            VMEXIT_SHUTDOWN => Exit::Shutdown,
            VMEXIT_MSR => Exit::Msr {
                write: info1 & 1 != 0,
            },
            VMEXIT_XSETBV => Exit::Xsetbv,
            VMEXIT_NPF => Exit::NestedPageFault {
                gpa: info2,
                error: info1,
            },
            VMEXIT_IOIO => {
                let (port, write) = ((info1 >> 16) as u16, info1 & 1 == 0);
                let size = match (info1 >> 4) & 7 {
                    1 => 1,
                    2 => 2,
                    _ => 4,
                };
                if info1 & 0b100 == 0 {
                    Exit::Io { port, size, write }
                } else {
                    Exit::IoString {
                        port,
                        size,
                        write,
                        rep: info1 & 0b1000 != 0,
                    }
                }
            }
            VMEXIT_INVALID => Exit::EntryFailed(code),
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
        // TCG has no flush-by-ASID: flush the whole TLB on every entry. Nothing is cached
        // across VMRUNs either (clean bits all zero).
        self.w8(C_TLB_CONTROL, 1);
        self.w32(C_VMCB_CLEAN, 0);
        let host_xsave = read_cr4() & X86_CR4_OSXSAVE != 0;
        // SAFETY: SVM is enabled with a host save area (`Svm::enable`, the caller's duty),
        // the VMCB is a consistent image built by `new_flat` and kept so by the setters, the
        // host area is ours. With GIF clear no interrupt or NMI runs host code while XCR0 is
        // the guest's; the guest's XCR0 passed `set_xcr0`'s checks, and XSETBV is only used
        // while the host has CR4.OSXSAVE.
        unsafe {
            clgi();
            let host_xcr0 = if host_xsave { xgetbv0() } else { 0 };
            let swap = host_xsave && host_xcr0 != self.xcr0;
            if swap {
                xsetbv0(self.xcr0);
            }
            vmrun(self.vmcb_pa, self.host_pa, &mut self.regs);
            if swap {
                xsetbv0(host_xcr0);
            }
            stgi();
        }
        self.regs.rax = self.r64(S_RAX);
        self.regs.rip = self.r64(S_RIP);
        self.regs.rsp = self.r64(S_RSP);
        self.regs.rflags = self.r64(S_RFLAGS);
        // An event cut short by the exit is delivered again at the next entry.
        let again = reinjection(self.r64(C_EXITINTINFO), self.r64(C_VINTR));
        self.w64(C_EVENTINJ, again);
        self.exit()
    }

    fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut GuestRegs {
        &mut self.regs
    }

    fn skip_instruction(&mut self) -> Option<u8> {
        // No nRIP under TCG: decode the bytes at CS:rip through the guest's page tables.
        let ctl = self.control();
        let code64 = ctl.long_mode() && ctl.cs_long;
        let rip = self.regs.rip;
        let la = if code64 {
            rip
        } else {
            ctl.cs_base.wrapping_add(rip) & 0xffff_ffff
        };
        let mut bytes = [0u8; 15];
        // The instruction may end on the next page: read that one only if it is mapped.
        let first = ((PAGE_SIZE - la % PAGE_SIZE) as usize).min(bytes.len());
        let (head, tail) = bytes.split_at_mut(first);
        if !walk::read_linear(self.npt, &ctl, la, head) {
            return None;
        }
        let n = if walk::read_linear(self.npt, &ctl, la.wrapping_add(first as u64), tail) {
            bytes.len()
        } else {
            first
        };
        let len = insn_len(&bytes[..n])?;
        let next = rip.wrapping_add(u64::from(len));
        self.regs.rip = if code64 {
            next
        } else if ctl.cs_db {
            next & 0xffff_ffff
        } else {
            next & 0xffff
        };
        // A skipped instruction ends an STI/MOV SS interrupt shadow, as executing it would.
        self.w64(C_INTERRUPT_SHADOW, 0);
        Some(len)
    }

    fn control(&self) -> ControlState {
        let cs_attr = self.r16(S_CS + 2);
        ControlState {
            cr0: self.r64(S_CR0),
            cr3: self.r64(S_CR3),
            cr4: self.r64(S_CR4),
            efer: self.r64(S_EFER) & !EFER_SVME,
            cs_base: self.r64(S_CS + SEG_BASE),
            cs_long: cs_attr & ATTR_L != 0,
            cs_db: cs_attr & ATTR_DB != 0,
            cpl: self.r8(S_CPL),
        }
    }

    fn inject_interrupt(&mut self, vector: u8) -> bool {
        let vintr = self.r64(C_VINTR);
        if vintr & V_IRQ != 0 {
            return false;
        }
        // Delivered by the CPU once the guest's RFLAGS.IF allows, whatever its TPR.
        let vintr = (vintr & !(V_INTR_VECTOR_MASK | V_INTR_PRIO_MASK))
            | V_IRQ
            | V_INTR_PRIO_MASK
            | V_IGN_TPR
            | V_INTR_MASKING
            | (u64::from(vector) << V_INTR_VECTOR_SHIFT);
        self.w64(C_VINTR, vintr);
        true
    }

    fn interrupt_pending(&self) -> bool {
        self.r64(C_VINTR) & V_IRQ != 0
    }

    fn inject_exception(&mut self, vector: u8, error: Option<u32>) {
        let mut event =
            u64::from(vector) | (X86_EVENTTYPE_HW_EXCEPTION << EVENT_TYPE_SHIFT) | EVENT_VALID;
        if let Some(code) = error {
            event |= EVENT_EV | (u64::from(code) << 32);
        }
        self.w64(C_EVENTINJ, event);
    }

    fn read_msr(&self, index: u32) -> Option<u64> {
        if index == MSR_EFER {
            return Some(self.r64(S_EFER) & !EFER_SVME);
        }
        Self::msr_field(index).map(|off| self.r64(off))
    }

    fn write_msr(&mut self, index: u32, value: u64) -> bool {
        if index == MSR_EFER {
            let nx = __cpuid(0x8000_0001).edx & (1 << 20) != 0;
            let Some(efer) = efer_write(self.r64(S_EFER), value, self.r64(S_CR0), nx) else {
                return false;
            };
            self.w64(S_EFER, efer);
            return true;
        }
        let Some(off) = Self::msr_field(index) else {
            return false;
        };
        let ok = match index {
            MSR_IA32_CR_PAT => pat_valid(value),
            MSR_FS_BASE
            | MSR_GS_BASE
            | MSR_SHADOW_GS_BASE
            | MSR_LSTAR
            | MSR_CSTAR
            | MSR_IA32_SYSENTER_ESP
            | MSR_IA32_SYSENTER_EIP => canonical(value),
            // SFMASK is a 32-bit mask; the upper half is reserved.
            MSR_SYSCALL_MASK => value >> 32 == 0,
            _ => true,
        };
        if ok {
            self.w64(off, value);
        }
        ok
    }

    fn set_xcr0(&mut self, xcr0: u64) {
        // Defensive: a value XSETBV would refuse must not reach `run`'s XSETBV (a host #GP).
        if xcr0_valid(xcr0, xcr0_supported()) {
            self.xcr0 = xcr0;
        }
    }
}

/// 8 KiB MSR permission map: two bits (read, write) per MSR in three 2 KiB ranges.
const MSRPM_SIZE: usize = 8192;

/// Bit index of `msr`'s read-intercept bit in the MSR permission map (its write bit follows);
/// `None` for an MSR outside the mapped ranges (always intercepted).
fn msrpm_bit(msr: u32) -> Option<usize> {
    let (base, range) = match msr {
        0..=0x1fff => (0, 0),
        0xc000_0000..=0xc000_1fff => (0xc000_0000, 1),
        0xc001_0000..=0xc001_1fff => (0xc001_0000, 2),
        _ => return None,
    };
    Some(range * 0x800 * 8 + (msr - base) as usize * 2)
}

/// Intercepts every MSR but [`PASSTHROUGH_MSRS`].
fn fill_msrpm(map: &mut [u8]) {
    map.fill(0xff);
    for msr in PASSTHROUGH_MSRS {
        if let Some(bit) = msrpm_bit(msr) {
            // Both bits lie in one byte: `bit` is even.
            map[bit / 8] &= !(0b11 << (bit % 8));
        }
    }
}

/// The EVENTINJ value that delivers again the event EXITINTINFO `info` says was being
/// delivered at the exit (0: nothing to deliver). `vintr` is the VINTR control after the exit.
///
/// INTn, INT3 and INTO are not injected: rip still points at the instruction, which runs
/// again. A virtual interrupt still pending in V_IRQ is left to the CPU (QEMU keeps V_IRQ set
/// when delivering it exits; hardware clears it, and then it is injected here). QEMU also
/// reports an interrupt cut short as an exception of its vector: vectors 32 and up are
/// interrupts.
fn reinjection(info: u64, vintr: u64) -> u64 {
    if info & EVENT_VALID == 0 {
        return 0;
    }
    let vector = info & EVENT_VECTOR;
    let mut kind = (info & EVENT_TYPE) >> EVENT_TYPE_SHIFT;
    if kind == X86_EVENTTYPE_HW_EXCEPTION && vector >= 32 {
        kind = X86_EVENTTYPE_EXT_INTR;
    }
    let rerun = kind == X86_EVENTTYPE_SW_INTERRUPT
        || (kind == X86_EVENTTYPE_HW_EXCEPTION && (vector == 3 || vector == 4));
    let in_virq = kind == X86_EVENTTYPE_EXT_INTR
        && vintr & V_IRQ != 0
        && (vintr & V_INTR_VECTOR_MASK) >> V_INTR_VECTOR_SHIFT == vector;
    if rerun || in_virq {
        return 0;
    }
    let error = if kind == X86_EVENTTYPE_HW_EXCEPTION {
        info & (EVENT_EV | EVENT_ERROR)
    } else {
        0
    };
    vector | (kind << EVENT_TYPE_SHIFT) | EVENT_VALID | error
}

/// The guest EFER after the guest writes `value` over `cur` with CR0 `cr0`, or `None` where
/// the hardware would raise #GP: a reserved or unsupported bit, or LME changed while paging.
/// SVME stays set (VMRUN needs it) and LMA stays the hardware's.
fn efer_write(cur: u64, value: u64, cr0: u64, nx: bool) -> Option<u64> {
    let allowed = EFER_SCE | EFER_LME | EFER_LMA | if nx { EFER_NXE } else { 0 };
    if value & !allowed != 0 {
        return None;
    }
    if (value ^ cur) & EFER_LME != 0 && cr0 & X86_CR0_PG != 0 {
        return None;
    }
    Some((value & !EFER_LMA) | (cur & EFER_LMA) | EFER_SVME)
}

/// Whether every PAT entry is a valid memory type (UC, WC, WT, WP, WB, UC-).
fn pat_valid(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Whether `va` is canonical with 48 address bits.
fn canonical(va: u64) -> bool {
    (((va << 16) as i64) >> 16) as u64 == va
}

/// XCR0's x87, SSE and AVX bits.
const XCR0_X87: u64 = 1 << 0;
const XCR0_SSE: u64 = 1 << 1;
const XCR0_AVX: u64 = 1 << 2;

/// The XCR0 components the CPU supports (CPUID 0xd.0 edx:eax; x87 only without XSAVE).
fn xcr0_supported() -> u64 {
    if __cpuid(0).eax < 0xd || __cpuid(1).ecx & (1 << 26) == 0 {
        return XCR0_X87;
    }
    let l = __cpuid_count(0xd, 0);
    u64::from(l.eax) | u64::from(l.edx) << 32
}

/// Whether XSETBV accepts `xcr0`: x87 set, only supported components, AVX only with SSE.
fn xcr0_valid(xcr0: u64, supported: u64) -> bool {
    xcr0 & XCR0_X87 != 0 && xcr0 & !supported == 0 && (xcr0 & XCR0_AVX == 0 || xcr0 & XCR0_SSE != 0)
}

/// Clears GIF: no interrupt, NMI or SMI is taken until [`stgi`]. Then sets RFLAGS.IF, so
/// that VMRUN records the host's IF as set: with V_INTR_MASKING, that host IF is what lets a
/// physical interrupt end the guest's run (the INTR intercept); with it clear the guest would
/// run on with the host's timer held off. The interrupt is taken at [`stgi`].
///
/// # Safety
/// SVM must be enabled on this CPU, and [`stgi`] must follow; the caller accepts that
/// interrupts are enabled from [`stgi`] on.
unsafe fn clgi() {
    // SAFETY: the caller guarantees SVM is enabled (CLGI #UDs otherwise); STI only takes
    // effect for interrupts once GIF is set again.
    unsafe { core::arch::asm!("clgi", "sti", options(nomem, nostack)) };
}

/// Sets GIF again: interrupts held since [`clgi`] are taken now.
///
/// # Safety
/// SVM must be enabled on this CPU.
unsafe fn stgi() {
    // SAFETY: the caller guarantees SVM is enabled. Not `nomem`: pending interrupt handlers
    // run right here.
    unsafe { core::arch::asm!("stgi", options(nostack, preserves_flags)) };
}

/// XCR0.
///
/// # Safety
/// CR4.OSXSAVE must be set.
unsafe fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: the caller guarantees CR4.OSXSAVE, so XGETBV of XCR0 is defined.
    unsafe {
        core::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags));
    }
    u64::from(hi) << 32 | u64::from(lo)
}

/// Sets XCR0.
///
/// # Safety
/// CR4.OSXSAVE must be set and `xcr0` valid for this CPU; no live extended state may depend
/// on the components it turns off.
unsafe fn xsetbv0(xcr0: u64) {
    // SAFETY: the caller guarantees the preconditions.
    unsafe {
        core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") xcr0 as u32,
            in("edx") (xcr0 >> 32) as u32, options(nomem, nostack, preserves_flags));
    }
}

/// Enters the guest of the VMCB at `vmcb_pa` with GPRs from `regs`, and stores the guest's
/// GPRs back there at #VMEXIT. VMRUN does not switch FS, GS, TR, LDTR, KernelGSBase, STAR,
/// LSTAR, CSTAR, SFMASK or SYSENTER_*: the host's are saved into the VMCB-format page at
/// `host_pa` and the guest's loaded from its VMCB before VMRUN, and the other way round after
/// it, so a guest's WRMSR LSTAR never reaches the hypervisor's SYSCALL entry.
///
/// # Safety
/// SVM must be enabled on this CPU with a valid host save area, GIF must be clear (between
/// [`clgi`] and [`stgi`]: the host's TR, GS and syscall MSRs are the guest's in between), the
/// VMCB must be valid and `host_pa` a page of ours.
unsafe fn vmrun(vmcb_pa: u64, host_pa: u64, regs: &mut GuestRegs) {
    const _: () = assert!(core::mem::offset_of!(GuestRegs, r15) == 0x68);
    // SAFETY: the caller guarantees SVM state and GIF clear; rbx and rbp (which cannot be
    // named as operands) are saved on the stack, every other GPR is declared clobbered,
    // VMRUN/#VMEXIT restore rsp, rax, segment state, control registers and rflags of the host,
    // and VMLOAD of the host area restores what VMRUN does not.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "push rdi", // &mut GuestRegs
            "push rax", // VMCB physical address
            "push rsi", // host area physical address
            "mov rax, rsi",
            "vmsave rax",
            "mov rax, [rsp + 8]",
            "vmload rax",
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
            "vmsave rax",
            "push rdi",
            "mov rdi, [rsp + 24]",
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
            "pop rax",
            "vmload rax",
            "pop rax",
            "pop rdi",
            "pop rbx",
            "pop rbp",
            inout("rax") vmcb_pa => _,
            inout("rsi") host_pa => _,
            inout("rdi") core::ptr::from_mut(regs) => _,
            out("rcx") _, out("rdx") _,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msr_permission_map_passes_only_the_vmload_msrs() {
        assert_eq!(msrpm_bit(0), Some(0));
        assert_eq!(msrpm_bit(MSR_IA32_SYSENTER_CS), Some(0x174 * 2));
        assert_eq!(msrpm_bit(MSR_LSTAR), Some(0x800 * 8 + 0x82 * 2));
        assert_eq!(msrpm_bit(0xc001_0117), Some(0x1000 * 8 + 0x117 * 2));
        assert_eq!(msrpm_bit(0x2000), None);
        assert_eq!(msrpm_bit(0x4000_0000), None);
        let mut map = std::vec![0u8; MSRPM_SIZE];
        fill_msrpm(&mut map);
        let intercepted = |msr: u32, write: bool| {
            let bit = msrpm_bit(msr).unwrap() + usize::from(write);
            map[bit / 8] & (1 << (bit % 8)) != 0
        };
        for msr in PASSTHROUGH_MSRS {
            assert!(
                !intercepted(msr, false) && !intercepted(msr, true),
                "{msr:#x}"
            );
        }
        for msr in [
            MSR_EFER,
            MSR_IA32_CR_PAT,
            0x10,
            0x1b,
            0x173,
            0x177,
            0xc000_0103,
        ] {
            assert!(
                intercepted(msr, false) && intercepted(msr, true),
                "{msr:#x}"
            );
        }
        let clear = map.iter().map(|b| b.count_zeros()).sum::<u32>();
        assert_eq!(clear as usize, 2 * PASSTHROUGH_MSRS.len());
    }

    const EXT: u64 = X86_EVENTTYPE_EXT_INTR << EVENT_TYPE_SHIFT;
    const EXC: u64 = X86_EVENTTYPE_HW_EXCEPTION << EVENT_TYPE_SHIFT;
    const SOFT: u64 = X86_EVENTTYPE_SW_INTERRUPT << EVENT_TYPE_SHIFT;
    const NMI: u64 = 2 << EVENT_TYPE_SHIFT;

    #[test]
    fn events_cut_short_are_delivered_again() {
        let v = EVENT_VALID;
        assert_eq!(reinjection(0, 0), 0);
        assert_eq!(reinjection(0x30 | EXT, 0), 0); // not valid
        // #PF with its error code; reserved bits dropped.
        let pf = 14 | EXC | EVENT_EV | v | (0x2 << 32);
        assert_eq!(reinjection(pf | (1 << 20), 0), pf);
        // An exception without an error code, an NMI.
        assert_eq!(reinjection(13 | EXC | v, 0), 13 | EXC | v);
        assert_eq!(reinjection(2 | NMI | v, 0), 2 | NMI | v);
        // An external interrupt (hardware's report, V_IRQ already clear).
        assert_eq!(reinjection(0x30 | EXT | v, V_INTR_MASKING), 0x30 | EXT | v);
        // QEMU's report: an exception of vector >= 32, V_IRQ still set for it.
        let virq = V_IRQ | V_INTR_MASKING | (0x30 << V_INTR_VECTOR_SHIFT);
        assert_eq!(reinjection(0x30 | EXC | v, virq), 0);
        assert_eq!(reinjection(0x30 | EXT | v, virq), 0);
        // V_IRQ pending for another vector: this one is injected, as an interrupt.
        assert_eq!(reinjection(0x31 | EXC | v, virq), 0x31 | EXT | v);
        // INTn, INT3, INTO run again.
        assert_eq!(reinjection(0x80 | SOFT | v, 0), 0);
        assert_eq!(reinjection(3 | EXC | v, 0), 0);
        assert_eq!(reinjection(4 | EXC | v, 0), 0);
    }

    #[test]
    fn efer_writes_follow_the_hardware_rules() {
        let pg = X86_CR0_PG;
        // Paging off: LME may be set; SVME is kept, LMA is the hardware's.
        assert_eq!(
            efer_write(EFER_SVME, EFER_LME | EFER_SCE, 0x11, true),
            Some(EFER_SVME | EFER_LME | EFER_SCE)
        );
        assert_eq!(
            efer_write(EFER_SVME, EFER_LME | EFER_LMA, 0x11, true),
            Some(EFER_SVME | EFER_LME)
        );
        let long = EFER_SVME | EFER_LME | EFER_LMA;
        assert_eq!(
            efer_write(long, EFER_LME | EFER_NXE, pg | 1, true),
            Some(long | EFER_NXE)
        );
        // LME cannot change while paging; NXE needs NX; reserved bits and SVME refused.
        assert_eq!(efer_write(long, 0, pg | 1, true), None);
        assert_eq!(efer_write(EFER_SVME, EFER_LME, pg | 1, true), None);
        assert_eq!(efer_write(EFER_SVME, EFER_NXE, 0x11, false), None);
        assert_eq!(efer_write(EFER_SVME, EFER_SVME, 0x11, true), None);
        assert_eq!(efer_write(EFER_SVME, 1 << 1, 0x11, true), None);
        assert_eq!(efer_write(EFER_SVME, 1 << 63, 0x11, true), None);
    }

    #[test]
    fn start_context_64bit_is_flat_long_mode() {
        let ctx = StartContext {
            long: true,
            cr0: 0x8000_0011,
            cr3: 0x1000,
            cr4: 0x20,
            efer: EFER_LME | EFER_NXE,
            // Ignored in 64-bit mode.
            segs: [(0x1000, 0xfff, 0x9b); 5],
            ..StartContext::default()
        };
        let b = BootState::from_context(&ctx);
        assert_eq!(b.cs, Seg::flat(0, 0xa9b));
        for s in [b.ds, b.es, b.ss, b.fs, b.gs] {
            assert_eq!(s, Seg::flat(0, 0xc93));
        }
        assert_eq!((b.tr.attr, b.tr.limit, b.tr.base), (0x8b, 0x67, 0));
        assert_eq!((b.dt_limit, b.cpl), (0, 0));
        assert_eq!((b.cr0, b.cr3, b.cr4), (0x8000_0011, 0x1000, 0x20));
        assert_eq!(b.efer, EFER_LME | EFER_LMA | EFER_NXE);
    }

    #[test]
    fn start_context_32bit_takes_the_given_segments() {
        let ctx = StartContext {
            long: false,
            cr0: 0x11,
            efer: EFER_NXE,
            // CS, DS, SS, ES, TR; accessed/busy bits still clear.
            segs: [
                (0x100, 0xffff_ffff, 0xcba),
                (0x200, 0xf_ffff, 0x4b2),
                (0x300, 0xffff_ffff, 0xcb2),
                (0, 0, 0),
                (0x400, 0x67, 0x89),
            ],
            ..StartContext::default()
        };
        let b = BootState::from_context(&ctx);
        let seg = |base, limit, attr| Seg {
            sel: 0,
            attr,
            limit,
            base,
        };
        assert_eq!(b.cs, seg(0x100, 0xffff_ffff, 0xcbb));
        assert_eq!(b.ds, seg(0x200, 0xf_ffff, 0x4b3));
        assert_eq!(b.ss, seg(0x300, 0xffff_ffff, 0xcb3));
        assert_eq!(b.es, seg(0, 0, 0)); // null: left unusable
        assert_eq!(b.tr, seg(0x400, 0x67, 0x8b));
        assert_eq!((b.fs, b.gs), (b.ds, b.ds));
        assert_eq!((b.cpl, b.dt_limit), (1, 0));
        assert_eq!((b.cr0, b.efer), (0x11, EFER_NXE));
    }

    #[test]
    fn start_efer_lma_follows_lme_and_paging() {
        let pg = X86_CR0_PG | 1;
        assert_eq!(efer_lma(EFER_LME, pg), EFER_LME | EFER_LMA);
        assert_eq!(efer_lma(EFER_LME | EFER_LMA, 1), EFER_LME);
        assert_eq!(efer_lma(EFER_LMA | EFER_NXE, pg), EFER_NXE);
        assert_eq!(efer_lma(0, pg), 0);
    }

    #[test]
    fn pvh_boot_state_is_unchanged() {
        let b = BootState::PVH;
        assert_eq!(b.cs, Seg::flat(0x08, 0xc9b));
        assert_eq!(b.ss, Seg::flat(0x10, 0xc93));
        assert_eq!((b.tr.attr, b.tr.limit, b.dt_limit), (0x8b, 0x67, 0xffff));
        assert_eq!((b.cr0, b.cr3, b.cr4, b.efer), (0x11, 0, 0, 0));
    }

    #[test]
    fn pat_canonical_and_xcr0_checks() {
        assert!(pat_valid(0x0007_0406_0007_0406));
        assert!(pat_valid(0x0105_0401_0706_0500));
        assert!(!pat_valid(0x0007_0406_0007_0402));
        assert!(!pat_valid(0x0807_0406_0007_0406));
        assert!(canonical(0x0000_7fff_ffff_ffff));
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(!canonical(0x0000_8000_0000_0000));
        assert!(!canonical(0xfff0_0000_0000_0000));
        let all = XCR0_X87 | XCR0_SSE | XCR0_AVX;
        assert!(xcr0_valid(1, all));
        assert!(xcr0_valid(3, all));
        assert!(xcr0_valid(7, all));
        assert!(!xcr0_valid(0, all));
        assert!(!xcr0_valid(2, all));
        assert!(!xcr0_valid(5, all));
        assert!(!xcr0_valid(7, XCR0_X87 | XCR0_SSE));
    }
}
