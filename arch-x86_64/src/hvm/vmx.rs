//! Intel VMX back-end: detection, VMXON, a VMCS for a flat 32-bit protected-mode guest run as
//! an unrestricted guest on EPT, and VMLAUNCH/VMRESUME (Intel SDM vol. 3C, ch. 23-28 and
//! appendix A/B).
//!
//! Controls are computed from the TRUE capability MSRs when IA32_VMX_BASIC says they exist
//! (`(want | must1) & may1`, [`control_value`]). Written against what Bochs
//! (`corei7_skylake_x`) emulates as well as for hardware.

use super::nested::{FrameSource, NestedTables};
use super::{Exit, GuestRegs, Vcpu};
use crate::cpu::{rdmsr, read_cr0, read_cr3, read_cr4, write_cr4, wrmsr};
use crate::layout::phys_to_virt;
use crate::paging::{PAGE_SIZE, Pte};
use core::arch::x86_64::__cpuid;

// MSRs.
const MSR_FEATURE_CONTROL: u32 = 0x3a;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_VMX_BASIC: u32 = 0x480;
const MSR_VMX_PINBASED_CTLS: u32 = 0x481;
const MSR_VMX_PROCBASED_CTLS: u32 = 0x482;
const MSR_VMX_EXIT_CTLS: u32 = 0x483;
const MSR_VMX_ENTRY_CTLS: u32 = 0x484;
const MSR_VMX_CR0_FIXED0: u32 = 0x486;
const MSR_VMX_CR0_FIXED1: u32 = 0x487;
const MSR_VMX_CR4_FIXED0: u32 = 0x488;
const MSR_VMX_CR4_FIXED1: u32 = 0x489;
const MSR_VMX_PROCBASED_CTLS2: u32 = 0x48b;
const MSR_VMX_EPT_VPID_CAP: u32 = 0x48c;
const MSR_VMX_TRUE_PINBASED_CTLS: u32 = 0x48d;
const MSR_VMX_TRUE_PROCBASED_CTLS: u32 = 0x48e;
const MSR_VMX_TRUE_EXIT_CTLS: u32 = 0x48f;
const MSR_VMX_TRUE_ENTRY_CTLS: u32 = 0x490;

const FEATURE_CONTROL_LOCK: u64 = 1 << 0;
const FEATURE_CONTROL_VMX_OUTSIDE_SMX: u64 = 1 << 2;
const CR4_VMXE: u64 = 1 << 13;
const CR0_NE: u64 = 1 << 5;

// Control bits.
const PIN_EXTINT_EXITING: u32 = 1 << 0;
const PROC_HLT_EXITING: u32 = 1 << 7;
const PROC_UNCOND_IO_EXITING: u32 = 1 << 24;
const PROC_SECONDARY: u32 = 1 << 31;
const PROC2_EPT: u32 = 1 << 1;
const PROC2_UNRESTRICTED: u32 = 1 << 7;
const EXIT_HOST_ADDR_SPACE: u32 = 1 << 9;
const EXIT_SAVE_EFER: u32 = 1 << 20;
const EXIT_LOAD_EFER: u32 = 1 << 21;
const ENTRY_LOAD_EFER: u32 = 1 << 15;

// VMCS field encodings (SDM vol. 3D appendix B).
const GUEST_ES_SELECTOR: u64 = 0x0800;
const HOST_ES_SELECTOR: u64 = 0x0c00;
const HOST_CS_SELECTOR: u64 = 0x0c02;
const HOST_SS_SELECTOR: u64 = 0x0c04;
const HOST_DS_SELECTOR: u64 = 0x0c06;
const HOST_FS_SELECTOR: u64 = 0x0c08;
const HOST_GS_SELECTOR: u64 = 0x0c0a;
const HOST_TR_SELECTOR: u64 = 0x0c0c;
const EPT_POINTER: u64 = 0x201a;
const GUEST_PHYSICAL_ADDRESS: u64 = 0x2400;
const VMCS_LINK_POINTER: u64 = 0x2800;
const GUEST_IA32_DEBUGCTL: u64 = 0x2802;
const GUEST_IA32_EFER: u64 = 0x2806;
const HOST_IA32_EFER: u64 = 0x2c02;
const PIN_BASED_CONTROLS: u64 = 0x4000;
const PROC_BASED_CONTROLS: u64 = 0x4002;
const EXCEPTION_BITMAP: u64 = 0x4004;
const PAGE_FAULT_ERROR_MASK: u64 = 0x4006;
const PAGE_FAULT_ERROR_MATCH: u64 = 0x4008;
const CR3_TARGET_COUNT: u64 = 0x400a;
const EXIT_CONTROLS: u64 = 0x400c;
const EXIT_MSR_STORE_COUNT: u64 = 0x400e;
const EXIT_MSR_LOAD_COUNT: u64 = 0x4010;
const ENTRY_CONTROLS: u64 = 0x4012;
const ENTRY_MSR_LOAD_COUNT: u64 = 0x4014;
const ENTRY_INTERRUPTION_INFO: u64 = 0x4016;
const PROC_BASED_CONTROLS2: u64 = 0x401e;
const VM_INSTRUCTION_ERROR: u64 = 0x4400;
const EXIT_REASON: u64 = 0x4402;
const EXIT_INSTRUCTION_LEN: u64 = 0x440c;
const GUEST_ES_LIMIT: u64 = 0x4800;
const GUEST_GDTR_LIMIT: u64 = 0x4810;
const GUEST_IDTR_LIMIT: u64 = 0x4812;
const GUEST_ES_AR: u64 = 0x4814;
const GUEST_INTERRUPTIBILITY: u64 = 0x4824;
const GUEST_ACTIVITY_STATE: u64 = 0x4826;
const GUEST_SYSENTER_CS: u64 = 0x482a;
const HOST_SYSENTER_CS: u64 = 0x4c00;
const CR0_GUEST_HOST_MASK: u64 = 0x6000;
const CR4_GUEST_HOST_MASK: u64 = 0x6002;
const CR0_READ_SHADOW: u64 = 0x6004;
const CR4_READ_SHADOW: u64 = 0x6006;
const EXIT_QUALIFICATION: u64 = 0x6400;
const GUEST_CR0: u64 = 0x6800;
const GUEST_CR3: u64 = 0x6802;
const GUEST_CR4: u64 = 0x6804;
const GUEST_ES_BASE: u64 = 0x6806;
const GUEST_GDTR_BASE: u64 = 0x6816;
const GUEST_IDTR_BASE: u64 = 0x6818;
const GUEST_DR7: u64 = 0x681a;
const GUEST_RSP: u64 = 0x681c;
const GUEST_RIP: u64 = 0x681e;
const GUEST_RFLAGS: u64 = 0x6820;
const GUEST_PENDING_DBG: u64 = 0x6822;
const GUEST_SYSENTER_ESP: u64 = 0x6824;
const GUEST_SYSENTER_EIP: u64 = 0x6826;
const HOST_CR0: u64 = 0x6c00;
const HOST_CR3: u64 = 0x6c02;
const HOST_CR4: u64 = 0x6c04;
const HOST_FS_BASE: u64 = 0x6c06;
const HOST_GS_BASE: u64 = 0x6c08;
const HOST_TR_BASE: u64 = 0x6c0a;
const HOST_GDTR_BASE: u64 = 0x6c0c;
const HOST_IDTR_BASE: u64 = 0x6c0e;
const HOST_SYSENTER_ESP: u64 = 0x6c10;
const HOST_SYSENTER_EIP: u64 = 0x6c12;

// Basic exit reasons.
const EXIT_EXTINT: u64 = 1;
const EXIT_TRIPLE_FAULT: u64 = 2;
const EXIT_CPUID: u64 = 10;
const EXIT_HLT: u64 = 12;
const EXIT_VMCALL: u64 = 18;
const EXIT_IO: u64 = 30;
const EXIT_EPT_VIOLATION: u64 = 48;
/// Exit reason bit 31: the VM entry itself failed (invalid guest state, MSR loading, ...).
const EXIT_REASON_ENTRY_FAILURE: u64 = 1 << 31;

/// The value of a VMX control field: the `want`ed bits plus those the capability MSR value
/// `cap` forces to 1 (its low half), minus those it forbids (clear in its high half).
pub fn control_value(cap: u64, want: u32) -> u32 {
    let must1 = cap as u32;
    let may1 = (cap >> 32) as u32;
    (want | must1) & may1
}

/// Like [`control_value`], but an error if a wanted bit is not allowed.
fn control(cap_msr: u32, want: u32, what: &'static str) -> Result<u32, &'static str> {
    // SAFETY: the VMX capability MSRs exist once CPUID reports VMX (`detect` checked it).
    let cap = unsafe { rdmsr(cap_msr) };
    let v = control_value(cap, want);
    if v & want != want {
        return Err(what);
    }
    Ok(v)
}

/// What the capability MSRs say about VMX on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmxInfo {
    /// VMCS revision identifier (IA32_VMX_BASIC[30:0]).
    pub revision: u32,
    /// TRUE control capability MSRs exist (IA32_VMX_BASIC[55]).
    pub true_ctls: bool,
}

/// Detects VMX with EPT (4-level walk, write-back) and unrestricted guest, and makes sure
/// IA32_FEATURE_CONTROL allows VMXON (locking it with VMX on if firmware left it unlocked).
pub fn detect() -> Result<VmxInfo, &'static str> {
    if __cpuid(0).eax < 1 || __cpuid(1).ecx & (1 << 5) == 0 {
        return Err("no VMX");
    }
    // SAFETY: IA32_FEATURE_CONTROL exists on every CPU with VMX.
    let fc = unsafe { rdmsr(MSR_FEATURE_CONTROL) };
    if fc & FEATURE_CONTROL_LOCK == 0 {
        // SAFETY: the MSR is unlocked, so this write is allowed; enabling VMX outside SMX and
        // locking is what firmware normally does.
        unsafe {
            wrmsr(
                MSR_FEATURE_CONTROL,
                fc | FEATURE_CONTROL_LOCK | FEATURE_CONTROL_VMX_OUTSIDE_SMX,
            )
        };
    } else if fc & FEATURE_CONTROL_VMX_OUTSIDE_SMX == 0 {
        return Err("VMX disabled by firmware");
    }
    // SAFETY: the VMX capability MSRs exist once CPUID reports VMX.
    let (basic, proc, proc2, ept) = unsafe {
        (
            rdmsr(MSR_VMX_BASIC),
            rdmsr(MSR_VMX_PROCBASED_CTLS),
            rdmsr(MSR_VMX_PROCBASED_CTLS2),
            rdmsr(MSR_VMX_EPT_VPID_CAP),
        )
    };
    if (proc >> 32) as u32 & PROC_SECONDARY == 0 {
        return Err("no secondary controls");
    }
    let may1 = (proc2 >> 32) as u32;
    if may1 & PROC2_EPT == 0 || ept & (1 << 6) == 0 || ept & (1 << 14) == 0 {
        return Err("no EPT");
    }
    if may1 & PROC2_UNRESTRICTED == 0 {
        return Err("no unrestricted guest");
    }
    Ok(VmxInfo {
        revision: basic as u32 & 0x7fff_ffff,
        true_ctls: basic & (1 << 55) != 0,
    })
}

/// VMX operation entered on the executing CPU (CR4.VMXE set, VMXON done).
pub struct Vmx {
    info: VmxInfo,
    vmxon_pa: u64,
    old_cr4: u64,
}

impl Vmx {
    /// Enters VMX operation on this CPU. Call only after [`detect`] succeeded.
    pub fn enable(info: VmxInfo, frames: &mut impl FrameSource) -> Result<Self, &'static str> {
        let vmxon_pa = frames
            .alloc_zeroed(0)
            .ok_or("no memory for the VMXON region")?;
        // SAFETY: the frame was just allocated for us and is direct-mapped.
        unsafe { (phys_to_virt(vmxon_pa) as *mut u32).write_volatile(info.revision) };
        let old_cr4 = read_cr4();
        // SAFETY: the fixed-bit MSRs exist with VMX. CR0 and CR4 get the bits VMX operation
        // requires (NE, VMXE; PE/PG are already set in long mode), which change nothing else
        // for the host.
        let ok = unsafe {
            let cr0 = (read_cr0() | rdmsr(MSR_VMX_CR0_FIXED0) | CR0_NE) & rdmsr(MSR_VMX_CR0_FIXED1);
            core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nostack, preserves_flags));
            let cr4 = (old_cr4 | rdmsr(MSR_VMX_CR4_FIXED0) | CR4_VMXE) & rdmsr(MSR_VMX_CR4_FIXED1);
            write_cr4(cr4);
            let pa = vmxon_pa;
            let ok: u8;
            core::arch::asm!(
                "vmxon qword ptr [{p}]",
                "setna {ok}",
                p = in(reg) &pa,
                ok = out(reg_byte) ok,
                options(nostack)
            );
            ok == 0
        };
        if !ok {
            // SAFETY: VMXON failed, so we are not in VMX operation; restore CR4.
            unsafe { write_cr4(old_cr4) };
            return Err("VMXON failed");
        }
        Ok(Self {
            info,
            vmxon_pa,
            old_cr4,
        })
    }

    /// The VMXON region (to be freed by the caller after [`Vmx::disable`]).
    pub fn vmxon_pa(&self) -> u64 {
        self.vmxon_pa
    }

    /// Leaves VMX operation on this CPU (every VMCS must have been cleared: drop the vCPUs).
    pub fn disable(self) {
        // SAFETY: we are in VMX root operation (`enable`); VMXOFF leaves it, after which CR4.VMXE
        // may be cleared again.
        unsafe {
            core::arch::asm!("vmxoff", options(nostack));
            write_cr4(self.old_cr4 & !CR4_VMXE);
        }
    }
}

/// EPT permission and memory-type bits, spelled in [`Pte`] bits so that the host
/// [`Mapper`] builds EPT: bit 0 read (PRESENT), bit 1 write (RW), bit 2 execute (USER, which
/// the mapper also puts in intermediate entries), bits 5:3 memory type 6 = write-back
/// (PCD | ACCESSED) and bit 7 large page (PSE, added by the mapper).
pub const EPT_LEAF_RWX_WB: Pte = Pte::PRESENT
    .union(Pte::RW)
    .union(Pte::USER)
    .union(Pte::PCD)
    .union(Pte::ACCESSED);

/// The EPT pointer for a 4-level table at `root`: write-back, walk length 4.
pub const fn eptp(root: u64) -> u64 {
    root | (3 << 3) | 6
}

/// Empty extended page tables (4-level, write-back leaves; the EPT pointer is [`eptp`]).
pub fn ept(frames: &mut impl FrameSource) -> Option<NestedTables> {
    NestedTables::new(frames, EPT_LEAF_RWX_WB)
}

/// Whether an EPT-violation exit qualification says the translation was missing (the page
/// was neither readable, writable nor executable: bits 5:3 clear).
pub fn ept_not_present(qualification: u64) -> bool {
    qualification & 0b11_1000 == 0
}

/// A short description of a VM-instruction error number (SDM vol. 3C, 31.4).
pub fn instruction_error_name(n: u64) -> &'static str {
    match n {
        2 => "VMCLEAR with invalid address",
        4 => "VMLAUNCH with non-clear VMCS",
        5 => "VMRESUME with non-launched VMCS",
        7 => "VM entry with invalid control fields",
        8 => "VM entry with invalid host-state fields",
        9 => "VMPTRLD with invalid address",
        11 => "VMPTRLD with incorrect VMCS revision",
        12 => "VMREAD/VMWRITE of unsupported field",
        26 => "VM entry with events blocked by MOV SS",
        _ => "see SDM table 31-1",
    }
}

fn vmwrite(field: u64, value: u64) {
    // SAFETY: callers run in VMX root operation with this vCPU's VMCS current (VmxVcpu
    // methods only); VMWRITE touches nothing but that VMCS.
    unsafe {
        core::arch::asm!("vmwrite {f}, {v}", f = in(reg) field, v = in(reg) value, options(nostack))
    };
}

fn vmread(field: u64) -> u64 {
    let v: u64;
    // SAFETY: as in `vmwrite`.
    unsafe {
        core::arch::asm!("vmread {v}, {f}", f = in(reg) field, v = out(reg) v, options(nostack))
    };
    v
}

/// The base of the descriptor for `sel` in the GDT at `gdt_base` (16-byte system descriptor).
fn descriptor_base(gdt_base: u64, sel: u16) -> u64 {
    let p = (gdt_base + u64::from(sel & !7)) as *const u64;
    // SAFETY: `sel` is the loaded TR selector, so its 16-byte descriptor lies in the live GDT.
    let (lo, hi) = unsafe { (p.read_volatile(), p.add(1).read_volatile()) };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}

/// One VMX vCPU: its VMCS and the guest GPRs the VMCS does not hold.
pub struct VmxVcpu<'e> {
    vmcs_pa: u64,
    launched: bool,
    regs: GuestRegs,
    _ept: &'e NestedTables,
}

impl<'e> VmxVcpu<'e> {
    /// A vCPU in flat 32-bit protected mode (CS/DS/ES/SS/FS/GS base 0, limit 4 GiB, CR0.PE,
    /// no guest paging, so an unrestricted guest) at `entry` with stack `stack`, on `ept`,
    /// exiting on CPUID, HLT, VMCALL, all port I/O, EPT violations, triple faults and physical
    /// interrupts. The VMCS is made current on this CPU; `vmx` must stay enabled meanwhile.
    pub fn new_flat32(
        vmx: &Vmx,
        frames: &mut impl FrameSource,
        ept: &'e NestedTables,
        entry: u32,
        stack: u32,
    ) -> Result<Self, &'static str> {
        let info = vmx.info;
        let vmcs_pa = frames.alloc_zeroed(0).ok_or("no memory for the VMCS")?;
        // SAFETY: the frame is ours and direct-mapped; VMCLEAR and VMPTRLD take a VMCS with our
        // revision, and we are in VMX root operation (`vmx`).
        let ok = unsafe {
            (phys_to_virt(vmcs_pa) as *mut u32).write_volatile(info.revision);
            let pa = vmcs_pa;
            let ok: u8;
            core::arch::asm!(
                "vmclear qword ptr [{p}]",
                "jna 2f",
                "vmptrld qword ptr [{p}]",
                "2:",
                "setna {ok}",
                p = in(reg) &pa,
                ok = out(reg_byte) ok,
                options(nostack)
            );
            ok == 0
        };
        if !ok {
            return Err("VMCLEAR/VMPTRLD failed");
        }
        let v = Self {
            vmcs_pa,
            launched: false,
            regs: GuestRegs {
                rip: u64::from(entry),
                rsp: u64::from(stack),
                rflags: 0x2,
                ..GuestRegs::default()
            },
            _ept: ept,
        };

        let (pin, proc, exit, entry_msr) = if info.true_ctls {
            (
                MSR_VMX_TRUE_PINBASED_CTLS,
                MSR_VMX_TRUE_PROCBASED_CTLS,
                MSR_VMX_TRUE_EXIT_CTLS,
                MSR_VMX_TRUE_ENTRY_CTLS,
            )
        } else {
            (
                MSR_VMX_PINBASED_CTLS,
                MSR_VMX_PROCBASED_CTLS,
                MSR_VMX_EXIT_CTLS,
                MSR_VMX_ENTRY_CTLS,
            )
        };
        let pin = control(pin, PIN_EXTINT_EXITING, "no external-interrupt exiting")?;
        let proc = control(
            proc,
            PROC_HLT_EXITING | PROC_UNCOND_IO_EXITING | PROC_SECONDARY,
            "no HLT/I/O exiting",
        )?;
        let proc2 = control(
            MSR_VMX_PROCBASED_CTLS2,
            PROC2_EPT | PROC2_UNRESTRICTED,
            "no EPT/unrestricted guest",
        )?;
        let exit = control(
            exit,
            EXIT_HOST_ADDR_SPACE | EXIT_SAVE_EFER | EXIT_LOAD_EFER,
            "no 64-bit host/EFER exit controls",
        )?;
        let entry_ctl = control(entry_msr, ENTRY_LOAD_EFER, "no EFER entry control")?;
        vmwrite(PIN_BASED_CONTROLS, u64::from(pin));
        vmwrite(PROC_BASED_CONTROLS, u64::from(proc));
        vmwrite(PROC_BASED_CONTROLS2, u64::from(proc2));
        vmwrite(EXIT_CONTROLS, u64::from(exit));
        vmwrite(ENTRY_CONTROLS, u64::from(entry_ctl));
        for f in [
            EXCEPTION_BITMAP,
            PAGE_FAULT_ERROR_MASK,
            PAGE_FAULT_ERROR_MATCH,
            CR3_TARGET_COUNT,
            EXIT_MSR_STORE_COUNT,
            EXIT_MSR_LOAD_COUNT,
            ENTRY_MSR_LOAD_COUNT,
            ENTRY_INTERRUPTION_INFO,
        ] {
            vmwrite(f, 0);
        }
        vmwrite(EPT_POINTER, eptp(ept.root()));
        vmwrite(VMCS_LINK_POINTER, u64::MAX);

        // Host state: what this CPU runs with now.
        let (cs, ss, ds, es, fs, gs, tr): (u16, u16, u16, u16, u16, u16, u16);
        // SAFETY: reading segment selectors and TR has no side effects.
        unsafe {
            core::arch::asm!(
                "mov {0:x}, cs", "mov {1:x}, ss", "mov {2:x}, ds", "mov {3:x}, es",
                "mov {4:x}, fs", "mov {5:x}, gs", "str {6:x}",
                out(reg) cs, out(reg) ss, out(reg) ds, out(reg) es,
                out(reg) fs, out(reg) gs, out(reg) tr,
                options(nomem, nostack, preserves_flags)
            );
        }
        let mut gdtr = [0u8; 10];
        let mut idtr = [0u8; 10];
        // SAFETY: SGDT/SIDT store 10 bytes into the buffers given.
        unsafe {
            core::arch::asm!(
                "sgdt [{g}]", "sidt [{i}]",
                g = in(reg) gdtr.as_mut_ptr(), i = in(reg) idtr.as_mut_ptr(),
                options(nostack, preserves_flags)
            );
        }
        let base = |d: &[u8; 10]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&d[2..]);
            u64::from_le_bytes(b)
        };
        let (gdt_base, idt_base) = (base(&gdtr), base(&idtr));
        if tr == 0 {
            return Err("host TR not loaded");
        }
        for (f, s) in [
            (HOST_ES_SELECTOR, es),
            (HOST_CS_SELECTOR, cs),
            (HOST_SS_SELECTOR, ss),
            (HOST_DS_SELECTOR, ds),
            (HOST_FS_SELECTOR, fs),
            (HOST_GS_SELECTOR, gs),
            (HOST_TR_SELECTOR, tr),
        ] {
            vmwrite(f, u64::from(s & !7));
        }
        vmwrite(HOST_CR0, read_cr0());
        vmwrite(HOST_CR3, read_cr3());
        vmwrite(HOST_CR4, read_cr4());
        vmwrite(HOST_GDTR_BASE, gdt_base);
        vmwrite(HOST_IDTR_BASE, idt_base);
        vmwrite(HOST_TR_BASE, descriptor_base(gdt_base, tr));
        // SAFETY: these MSRs exist on every x86_64 CPU.
        unsafe {
            vmwrite(HOST_FS_BASE, rdmsr(MSR_FS_BASE));
            vmwrite(HOST_GS_BASE, rdmsr(MSR_GS_BASE));
            vmwrite(HOST_IA32_EFER, rdmsr(MSR_EFER));
            vmwrite(HOST_SYSENTER_CS, rdmsr(MSR_SYSENTER_CS));
            vmwrite(HOST_SYSENTER_ESP, rdmsr(MSR_SYSENTER_ESP));
            vmwrite(HOST_SYSENTER_EIP, rdmsr(MSR_SYSENTER_EIP));
        }
        // HOST_RSP and HOST_RIP are written by `vmenter` on every entry.

        // Guest state. Access rights: type, S, DPL, P, AVL, L, D/B, G, unusable (bit 16).
        const CODE: u64 = 0xc09b; // G, D, P, S, type 0xb (code, read, accessed)
        const DATA: u64 = 0xc093; // G, B, P, S, type 0x3 (data, write, accessed)
        // ES, CS, SS, DS, FS, GS, LDTR, TR in encoding order.
        let segs: [(u64, u64, u64); 8] = [
            (0x10, DATA, 0xffff_ffff),
            (0x08, CODE, 0xffff_ffff),
            (0x10, DATA, 0xffff_ffff),
            (0x10, DATA, 0xffff_ffff),
            (0x10, DATA, 0xffff_ffff),
            (0x10, DATA, 0xffff_ffff),
            (0, 1 << 16, 0),   // LDTR unusable
            (0, 0x8b, 0xffff), // busy 32-bit TSS
        ];
        for (i, (sel, ar, limit)) in segs.into_iter().enumerate() {
            let i = 2 * i as u64;
            vmwrite(GUEST_ES_SELECTOR + i, sel);
            vmwrite(GUEST_ES_AR + i, ar);
            vmwrite(GUEST_ES_LIMIT + i, limit);
            vmwrite(GUEST_ES_BASE + i, 0);
        }
        vmwrite(GUEST_GDTR_BASE, 0);
        vmwrite(GUEST_GDTR_LIMIT, 0xffff);
        vmwrite(GUEST_IDTR_BASE, 0);
        vmwrite(GUEST_IDTR_LIMIT, 0xffff);
        // CR0: PE, ET, NE (NE is fixed to 1 in VMX operation; PE/PG are free for an
        // unrestricted guest). CR4: VMXE is fixed to 1, hidden from the guest by the mask.
        // SAFETY: the fixed-bit MSRs exist with VMX.
        let (cr0_fixed0, cr4_fixed0) =
            unsafe { (rdmsr(MSR_VMX_CR0_FIXED0), rdmsr(MSR_VMX_CR4_FIXED0)) };
        let cr0 = 0x31 | (cr0_fixed0 & !0x8000_0001);
        vmwrite(GUEST_CR0, cr0);
        vmwrite(CR0_GUEST_HOST_MASK, CR0_NE);
        vmwrite(CR0_READ_SHADOW, 0);
        vmwrite(GUEST_CR3, 0);
        vmwrite(GUEST_CR4, cr4_fixed0);
        vmwrite(CR4_GUEST_HOST_MASK, cr4_fixed0);
        vmwrite(CR4_READ_SHADOW, 0);
        vmwrite(GUEST_DR7, 0x400);
        vmwrite(GUEST_IA32_DEBUGCTL, 0);
        vmwrite(GUEST_IA32_EFER, 0);
        vmwrite(GUEST_SYSENTER_CS, 0);
        vmwrite(GUEST_SYSENTER_ESP, 0);
        vmwrite(GUEST_SYSENTER_EIP, 0);
        vmwrite(GUEST_INTERRUPTIBILITY, 0);
        vmwrite(GUEST_ACTIVITY_STATE, 0);
        vmwrite(GUEST_PENDING_DBG, 0);
        Ok(v)
    }

    /// The VMCS's physical address.
    pub fn vmcs_pa(&self) -> u64 {
        self.vmcs_pa
    }

    fn exit(&self) -> Exit {
        let reason = vmread(EXIT_REASON);
        if reason & EXIT_REASON_ENTRY_FAILURE != 0 {
            return Exit::EntryFailed(reason);
        }
        let q = vmread(EXIT_QUALIFICATION);
        match reason & 0xffff {
            EXIT_CPUID => Exit::Cpuid,
            EXIT_HLT => Exit::Hlt,
            EXIT_VMCALL => Exit::Vmmcall,
            EXIT_EXTINT => Exit::ExternalInterrupt,
            EXIT_TRIPLE_FAULT => Exit::Shutdown,
            EXIT_EPT_VIOLATION => Exit::NestedPageFault {
                gpa: vmread(GUEST_PHYSICAL_ADDRESS),
                error: q,
            },
            // String and REP forms are reported raw until they are emulated.
            EXIT_IO if q & 0b11_0000 == 0 => Exit::Io {
                port: (q >> 16) as u16,
                size: (q & 7) as u8 + 1,
                write: q & 8 == 0,
            },
            other => Exit::Other(other),
        }
    }
}

impl Drop for VmxVcpu<'_> {
    fn drop(&mut self) {
        let pa = self.vmcs_pa;
        // SAFETY: VMCLEAR of our own VMCS in VMX root operation writes its state back to memory
        // and makes it not current; the frame is then free to be returned by the caller.
        unsafe {
            core::arch::asm!("vmclear qword ptr [{p}]", p = in(reg) &pa, options(nostack));
        }
    }
}

impl Vcpu for VmxVcpu<'_> {
    fn run(&mut self) -> Exit {
        vmwrite(GUEST_RIP, self.regs.rip);
        vmwrite(GUEST_RSP, self.regs.rsp);
        vmwrite(GUEST_RFLAGS, self.regs.rflags);
        // SAFETY: this vCPU's VMCS is current and consistent (`new_flat32`), and `vmenter`
        // restores every host register it does not declare clobbered.
        let flags = unsafe { vmenter(&mut self.regs, self.launched) };
        if flags != 0 {
            // VMfailInvalid (CF) has no error number; VMfailValid (ZF) has one.
            let err = if flags & 1 != 0 {
                0
            } else {
                vmread(VM_INSTRUCTION_ERROR)
            };
            return Exit::EntryFailed(err);
        }
        self.launched = true;
        self.regs.rip = vmread(GUEST_RIP);
        self.regs.rsp = vmread(GUEST_RSP);
        self.regs.rflags = vmread(GUEST_RFLAGS);
        self.exit()
    }

    fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut GuestRegs {
        &mut self.regs
    }

    fn skip_instruction(&mut self) -> Option<u8> {
        let len = vmread(EXIT_INSTRUCTION_LEN);
        if !(1..=15).contains(&len) {
            return None;
        }
        self.regs.rip = (self.regs.rip + len) & 0xffff_ffff;
        Some(len as u8)
    }
}

/// Enters the guest of the current VMCS (VMLAUNCH, or VMRESUME once `launched`) with GPRs
/// from `regs`, and stores the guest's GPRs back there at the VM exit. Returns 0 after a VM
/// exit, or RFLAGS (CF or ZF set) if the entry instruction failed. Host RFLAGS (and so IF) is
/// restored afterwards, so a physical interrupt that caused the exit is taken right after.
///
/// # Safety
/// The CPU must be in VMX root operation with a valid current VMCS whose host state is this
/// CPU's (HOST_RSP and HOST_RIP are written here).
unsafe fn vmenter(regs: &mut GuestRegs, launched: bool) -> u64 {
    const _: () = assert!(core::mem::offset_of!(GuestRegs, rax) == 0x70);
    let result: u64;
    // SAFETY: the caller guarantees the VMX state; rbx and rbp (which cannot be named as
    // operands) are saved on the stack with rflags, every other GPR is declared clobbered, and
    // the VM exit restores rsp (HOST_RSP), segments and control registers of the host.
    unsafe {
        core::arch::asm!(
            "push rbp",
            "push rbx",
            "pushfq",
            "push rdi", // &mut GuestRegs; HOST_RSP points here
            "mov rax, 0x6c14", // HOST_RSP
            "vmwrite rax, rsp",
            "lea rdx, [rip + 2f]",
            "mov rax, 0x6c16", // HOST_RIP
            "vmwrite rax, rdx",
            "test sil, sil", // launched? (MOVs below keep the flags)
            "mov rax, [rdi + 0x70]",
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
            "jnz 3f",
            "vmlaunch",
            "jmp 4f",
            "3:",
            "vmresume",
            "4:",
            // The entry instruction failed: return its RFLAGS.
            "pushfq",
            "pop rax",
            "jmp 5f",
            "2:",
            // VM exit: rsp is HOST_RSP, the GuestRegs pointer on top.
            "push rdi",
            "mov rdi, [rsp + 8]",
            "mov [rdi + 0x70], rax",
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
            "xor eax, eax",
            "5:",
            "pop rdi",
            "popfq",
            "pop rbx",
            "pop rbp",
            inout("rdi") core::ptr::from_mut(regs) => _,
            inout("rsi") u64::from(launched) => _,
            out("rax") result,
            out("rcx") _, out("rdx") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("r12") _, out("r13") _, out("r14") _, out("r15") _,
        );
    }
    result
}

/// Page-aligns a guest-physical address.
pub fn gpa_page(gpa: u64) -> u64 {
    gpa & !(PAGE_SIZE - 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paging::{Mapper, TableAccess};

    #[test]
    fn control_value_honours_must1_and_may1() {
        // must1 = bits 1, 2, 4; may1 = bits 0-4 and 31.
        let cap = (0x8000_001fu64 << 32) | 0x16;
        assert_eq!(control_value(cap, 0), 0x16);
        assert_eq!(control_value(cap, 1 | (1 << 31)), 0x8000_0017);
        // Bit 5 is not allowed: dropped, which `control` reports as an error.
        assert_eq!(control_value(cap, 1 << 5), 0x16);
    }

    #[test]
    fn ept_encoding() {
        // R, W, X, memory type 6 (WB).
        assert_eq!(EPT_LEAF_RWX_WB.bits(), 0b11_0111);
        assert_eq!((EPT_LEAF_RWX_WB.bits() >> 3) & 7, 6);
        assert_eq!(eptp(0x1234_5000), 0x1234_501e);
    }

    #[test]
    fn ept_violation_qualification() {
        // Write to a not-present page: bit 1 (write), bits 5:3 clear.
        assert!(ept_not_present(0x182));
        // Write to a read-only page: bit 3 (readable) set.
        assert!(!ept_not_present(0x18a));
    }

    #[test]
    fn ept_tables_via_mapper() {
        // A fake physical memory of 8 tables.
        struct Fake {
            mem: Vec<[u64; 512]>,
        }
        impl TableAccess for Fake {
            fn alloc_table(&mut self) -> Option<u64> {
                self.mem.push([0; 512]);
                Some((self.mem.len() as u64 - 1) << 12)
            }
            fn table_ptr(&self, pa: u64) -> *mut [u64; 512] {
                self.mem.as_ptr().wrapping_add((pa >> 12) as usize) as *mut [u64; 512]
            }
        }
        let mut f = Fake {
            mem: Vec::with_capacity(8),
        };
        f.mem.push([0; 512]);
        let mut m = Mapper::new(0, &mut f);
        m.map_range(0, 0x20_0000, 0x20_0000, EPT_LEAF_RWX_WB, false)
            .unwrap();
        m.map_range(0x40_0000, 0x99_9000, 0x1000, EPT_LEAF_RWX_WB, false)
            .unwrap();
        assert_eq!(m.translate(0x1234).map(|t| t.0), Some(0x20_1234));
        assert_eq!(m.translate(0x40_0010).map(|t| t.0), Some(0x99_9010));
        // Intermediate entries: R, W, X only (bits 7:3 reserved in EPT non-leaf entries).
        assert_eq!(f.mem[0][0] & 0xfff, 0b111);
        let l3 = (f.mem[0][0] >> 12) as usize;
        let l2 = (f.mem[l3][0] >> 12) as usize;
        // The 2 MiB leaf: RWX, WB, large page.
        assert_eq!(f.mem[l2][0] & 0xfff, 0b1011_0111);
        // The 4 KiB leaf under a new L1: no large-page bit.
        let l1 = (f.mem[l2][2] >> 12) as usize;
        assert_eq!(f.mem[l1][0] & 0xfff, 0b0011_0111);
    }
}
