//! Intel VMX back-end: detection, VMXON, a VMCS per vCPU for a guest run as an unrestricted
//! guest on EPT (started in flat 32-bit protected mode: PVH's boot state), VMLAUNCH/VMRESUME,
//! event injection and the guest MSRs and XCR0 the hardware does not switch (Intel SDM vol.
//! 3C, ch. 23-28 and appendix A/B).
//!
//! Controls are computed from the TRUE capability MSRs when IA32_VMX_BASIC says they exist
//! (`(want | must1) & may1`, [`control_value`]). Written against what Bochs
//! (`corei7_skylake_x`) emulates as well as for hardware.
//!
//! A vCPU belongs to the CPU that created it: several VMCSs may be active on one CPU, and
//! every method makes its own VMCS current first (a per-CPU cache avoids needless VMPTRLDs).
//! The guest owns CR0 and CR4 except the bits VMX operation fixes (CR0.NE, CR4.VMXE) and the
//! cache-disable bits (CR0.CD/NW, which VM entries and exits leave as the host's); it reads
//! those from the read shadows; a guest write that changes one of those exits and is
//! handled here (the shadow follows, and the MOV runs again natively, so the hardware does
//! the mode switch: long mode, PAE PDPTE loading, TLB flushes). Because the guest changes
//! paging itself and the VMCS saves its PDPTEs at each exit, PAE paging without long mode
//! needs nothing from the hypervisor.

use super::nested::{FrameSource, NestedTables};
use super::{ControlState, Exit, GuestRegs, StartContext, Vcpu};
use super::{efer_lma, start_attr};
use crate::cpu::{rdmsr, read_cr0, read_cr3, read_cr4, write_cr4, wrmsr};
use crate::layout::phys_to_virt;
use crate::paging::{PAGE_SIZE, Pte};
use core::arch::x86_64::__cpuid;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

// MSRs.
const MSR_FEATURE_CONTROL: u32 = 0x3a;
const MSR_SYSENTER_CS: u32 = 0x174;
const MSR_SYSENTER_ESP: u32 = 0x175;
const MSR_SYSENTER_EIP: u32 = 0x176;
const MSR_PAT: u32 = 0x277;
const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_FS_BASE: u32 = 0xc000_0100;
const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_SHADOW_GS_BASE: u32 = 0xc000_0102;
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
const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_NW: u64 = 1 << 29;
const CR0_CD: u64 = 1 << 30;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_VMXE: u64 = 1 << 13;
const CR4_OSXSAVE: u64 = 1 << 18;
const EFER_SCE: u64 = 1 << 0;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;
const RFLAGS_IF: u64 = 1 << 9;
/// RFLAGS bits that may be 1 (the rest are reserved; bit 1 is always 1).
const RFLAGS_VALID: u64 = 0x003f_7fd5;
const RFLAGS_MBS: u64 = 1 << 1;
/// The reset value of IA32_PAT.
const PAT_RESET: u64 = 0x0007_0406_0007_0406;

// IA32_VMX_EPT_VPID_CAP bits.
const EPT_CAP_WALK4: u64 = 1 << 6;
const EPT_CAP_WB: u64 = 1 << 14;
const EPT_CAP_INVEPT: u64 = 1 << 20;
const EPT_CAP_INVEPT_SINGLE: u64 = 1 << 25;
const EPT_CAP_INVEPT_ALL: u64 = 1 << 26;
const VPID_CAP_INVVPID: u64 = 1 << 32;
const VPID_CAP_INVVPID_SINGLE: u64 = 1 << 41;
const VPID_CAP_INVVPID_ALL: u64 = 1 << 42;

// Control bits.
const PIN_EXTINT_EXITING: u32 = 1 << 0;
const PIN_NMI_EXITING: u32 = 1 << 3;
const PROC_INTR_WINDOW: u32 = 1 << 2;
const PROC_HLT_EXITING: u32 = 1 << 7;
const PROC_CR3_LOAD: u32 = 1 << 15;
const PROC_CR3_STORE: u32 = 1 << 16;
const PROC_CR8_LOAD: u32 = 1 << 19;
const PROC_CR8_STORE: u32 = 1 << 20;
const PROC_UNCOND_IO_EXITING: u32 = 1 << 24;
const PROC_MSR_BITMAPS: u32 = 1 << 28;
const PROC_SECONDARY: u32 = 1 << 31;
const PROC2_EPT: u32 = 1 << 1;
const PROC2_RDTSCP: u32 = 1 << 3;
const PROC2_VPID: u32 = 1 << 5;
const PROC2_UNRESTRICTED: u32 = 1 << 7;
const PROC2_INVPCID: u32 = 1 << 12;
const EXIT_HOST_ADDR_SPACE: u32 = 1 << 9;
const EXIT_SAVE_PAT: u32 = 1 << 18;
const EXIT_LOAD_PAT: u32 = 1 << 19;
const EXIT_SAVE_EFER: u32 = 1 << 20;
const EXIT_LOAD_EFER: u32 = 1 << 21;
const ENTRY_IA32E_GUEST: u32 = 1 << 9;
const ENTRY_LOAD_PAT: u32 = 1 << 14;
const ENTRY_LOAD_EFER: u32 = 1 << 15;

// Interruption-information fields (entry, exit, IDT vectoring): vector 7:0, type 10:8,
// error-code bit 11, valid bit 31.
const INTR_VALID: u32 = 1 << 31;
const INTR_ERROR_CODE: u32 = 1 << 11;
const INTR_TYPE_EXTINT: u32 = 0;
const INTR_TYPE_NMI: u32 = 2;
const INTR_TYPE_HW_EXCEPTION: u32 = 3;
const INTR_TYPE_SW_INTERRUPT: u32 = 4;
/// The bits an entry interruption-information field may have set (bits 30:12 are reserved).
const INTR_ENTRY_BITS: u32 = INTR_VALID | 0xfff;
/// Interruptibility state: blocking by STI (bit 0) and by MOV SS/POP SS (bit 1).
const BLOCKING_STI_MOVSS: u64 = 0b11;

// VMCS field encodings (SDM vol. 3D appendix B).
const VIRTUAL_PROCESSOR_ID: u64 = 0x0000;
const GUEST_ES_SELECTOR: u64 = 0x0800;
const HOST_ES_SELECTOR: u64 = 0x0c00;
const HOST_CS_SELECTOR: u64 = 0x0c02;
const HOST_SS_SELECTOR: u64 = 0x0c04;
const HOST_DS_SELECTOR: u64 = 0x0c06;
const HOST_FS_SELECTOR: u64 = 0x0c08;
const HOST_GS_SELECTOR: u64 = 0x0c0a;
const HOST_TR_SELECTOR: u64 = 0x0c0c;
const MSR_BITMAP: u64 = 0x2004;
const EPT_POINTER: u64 = 0x201a;
const GUEST_PHYSICAL_ADDRESS: u64 = 0x2400;
const VMCS_LINK_POINTER: u64 = 0x2800;
const GUEST_IA32_DEBUGCTL: u64 = 0x2802;
const GUEST_IA32_PAT: u64 = 0x2804;
const GUEST_IA32_EFER: u64 = 0x2806;
const GUEST_PDPTE0: u64 = 0x280a;
const HOST_IA32_PAT: u64 = 0x2c00;
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
const ENTRY_EXCEPTION_ERROR: u64 = 0x4018;
const ENTRY_INSTRUCTION_LEN: u64 = 0x401a;
const PROC_BASED_CONTROLS2: u64 = 0x401e;
const VM_INSTRUCTION_ERROR: u64 = 0x4400;
const EXIT_REASON: u64 = 0x4402;
const EXIT_INTERRUPTION_INFO: u64 = 0x4404;
const IDT_VECTORING_INFO: u64 = 0x4408;
const IDT_VECTORING_ERROR: u64 = 0x440a;
const EXIT_INSTRUCTION_LEN: u64 = 0x440c;
const GUEST_ES_LIMIT: u64 = 0x4800;
const GUEST_GDTR_LIMIT: u64 = 0x4810;
const GUEST_IDTR_LIMIT: u64 = 0x4812;
const GUEST_ES_AR: u64 = 0x4814;
const GUEST_CS_AR: u64 = 0x4816;
const GUEST_SS_AR: u64 = 0x4818;
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
const GUEST_CS_BASE: u64 = 0x6808;
const GUEST_FS_BASE: u64 = 0x680e;
const GUEST_GS_BASE: u64 = 0x6810;
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
const EXIT_EXCEPTION_NMI: u64 = 0;
const EXIT_EXTINT: u64 = 1;
const EXIT_TRIPLE_FAULT: u64 = 2;
const EXIT_INTERRUPT_WINDOW: u64 = 7;
const EXIT_CPUID: u64 = 10;
const EXIT_HLT: u64 = 12;
const EXIT_VMCALL: u64 = 18;
const EXIT_CR_ACCESS: u64 = 28;
const EXIT_IO: u64 = 30;
const EXIT_RDMSR: u64 = 31;
const EXIT_WRMSR: u64 = 32;
const EXIT_PAUSE: u64 = 40;
const EXIT_EPT_VIOLATION: u64 = 48;
const EXIT_XSETBV: u64 = 55;
/// Exit reason bit 31: the VM entry itself failed (invalid guest state, MSR loading, ...).
const EXIT_REASON_ENTRY_FAILURE: u64 = 1 << 31;

/// Exits handled inside [`Vcpu::run`] (CR0/CR4/CR8 accesses) before it returns anyway, so
/// that a guest looping on them still lets the hypervisor schedule.
const INTERNAL_EXITS_PER_RUN: usize = 64;

/// The value of a VMX control field: the `want`ed bits plus those the capability MSR value
/// `cap` forces to 1 (its low half), minus those it forbids (clear in its high half).
pub fn control_value(cap: u64, want: u32) -> u32 {
    let must1 = cap as u32;
    let may1 = (cap >> 32) as u32;
    (want | must1) & may1
}

/// The control value for capability MSR `cap_msr` with every bit of `want` (an error naming
/// `what` if one is not allowed) and those of `optional` the CPU allows.
fn control(
    cap_msr: u32,
    want: u32,
    optional: u32,
    what: &'static str,
) -> Result<u32, &'static str> {
    // SAFETY: the VMX capability MSRs exist once CPUID reports VMX (`detect` checked it).
    let cap = unsafe { rdmsr(cap_msr) };
    let v = control_value(cap, want | (optional & (cap >> 32) as u32));
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
    if may1 & PROC2_EPT == 0 || ept & EPT_CAP_WALK4 == 0 || ept & EPT_CAP_WB == 0 {
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

/// No VMCS is current (the per-CPU cache's empty value; never a frame address).
const NO_VMCS: u64 = u64::MAX;
/// CPUs whose current VMCS is cached (others VMPTRLD at every use).
const MAX_CPUS: usize = 256;
/// The VMCS current on each CPU, as far as this module made it so.
static CURRENT_VMCS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NO_VMCS) }; MAX_CPUS];

/// The executing CPU's number.
fn this_cpu() -> u32 {
    #[cfg(target_os = "none")]
    {
        crate::percpu::current().cpu
    }
    #[cfg(not(target_os = "none"))]
    {
        0
    }
}

/// The executing CPU's current-VMCS cache entry, if it has one.
fn current_vmcs_slot() -> Option<&'static AtomicU64> {
    CURRENT_VMCS.get(this_cpu() as usize)
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
        // VMXON leaves no VMCS current.
        if let Some(slot) = current_vmcs_slot() {
            slot.store(NO_VMCS, Ordering::Relaxed);
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
        if let Some(slot) = current_vmcs_slot() {
            slot.store(NO_VMCS, Ordering::Relaxed);
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
    // methods only, after `make_current`); VMWRITE touches nothing but that VMCS.
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

/// VMPTRLD: makes the VMCS at `pa` current on this CPU; false if the instruction failed.
///
/// # Safety
/// VMX root operation; `pa` is a VMCS with this CPU's revision, not active on another CPU.
unsafe fn vmptrld(pa: u64) -> bool {
    let ok: u8;
    // SAFETY: the caller guarantees the VMX state and the region.
    unsafe {
        core::arch::asm!(
            "vmptrld qword ptr [{p}]",
            "setna {ok}",
            p = in(reg) &pa,
            ok = out(reg_byte) ok,
            options(nostack)
        );
    }
    ok == 0
}

/// INVEPT of `kind` (1 single-context, 2 all-context) for EPT pointer `eptp`.
fn invept(kind: u64, eptp: u64) {
    let desc = [eptp, 0u64];
    // SAFETY: INVEPT only drops cached EPT translations; `kind` is one the CPU supports
    // (checked by the caller) and we are in VMX root operation.
    unsafe {
        core::arch::asm!(
            "invept {k}, [{d}]", k = in(reg) kind, d = in(reg) desc.as_ptr(), options(nostack)
        );
    }
}

/// INVEPT for `eptp`, single-context if the CPU has it (capabilities `ept_cap`), else
/// all-context; nothing without INVEPT.
fn invept_with(ept_cap: u64, eptp: u64) {
    if ept_cap & EPT_CAP_INVEPT != 0 {
        if ept_cap & EPT_CAP_INVEPT_SINGLE != 0 {
            invept(1, eptp);
        } else if ept_cap & EPT_CAP_INVEPT_ALL != 0 {
            invept(2, eptp);
        }
    }
}

/// Drops the translations the executing CPU cached through `ept` (guest-physical and
/// combined, for every VPID). Adding mappings needs no flush; after removing or narrowing
/// one, call this on every CPU that ran a vCPU on `ept` before any of them enters again.
/// The CPU must be in VMX root operation.
pub fn flush_ept(ept: &NestedTables) {
    // SAFETY: the capability MSR exists with VMX (we are in VMX operation).
    let cap = unsafe { rdmsr(MSR_VMX_EPT_VPID_CAP) };
    invept_with(cap, eptp(ept.root()));
}

/// INVVPID of `kind` (1 single-context, 2 all-context) for `vpid`.
fn invvpid(kind: u64, vpid: u16) {
    let desc = [u64::from(vpid), 0u64];
    // SAFETY: INVVPID only drops cached linear translations; `kind` is one the CPU supports
    // (checked by the caller) and we are in VMX root operation.
    unsafe {
        core::arch::asm!(
            "invvpid {k}, [{d}]", k = in(reg) kind, d = in(reg) desc.as_ptr(), options(nostack)
        );
    }
}

/// XCR0 of this CPU (CR4.OSXSAVE must be set).
fn xgetbv0() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: XGETBV of XCR0 is allowed whenever CR4.OSXSAVE is set (the caller checked it).
    unsafe {
        core::arch::asm!(
            "xgetbv", in("ecx") 0, out("eax") lo, out("edx") hi,
            options(nomem, nostack, preserves_flags)
        );
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Sets XCR0.
///
/// # Safety
/// CR4.OSXSAVE must be set and `value` valid for this CPU (x87 set, AVX only with SSE, only
/// supported components), or XSETBV raises #GP.
unsafe fn xsetbv0(value: u64) {
    // SAFETY: the caller guarantees a valid value.
    unsafe {
        core::arch::asm!(
            "xsetbv", in("ecx") 0, in("eax") value as u32, in("edx") (value >> 32) as u32,
            options(nomem, nostack, preserves_flags)
        );
    }
}

/// Disables interrupts; returns the previous RFLAGS for [`irq_restore`].
fn irq_save() -> u64 {
    let flags: u64;
    // SAFETY: reading RFLAGS and clearing IF (ring 0) affect nothing else.
    unsafe { core::arch::asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem)) };
    flags
}

/// Re-enables interrupts if `flags` (from [`irq_save`]) had IF set.
fn irq_restore(flags: u64) {
    if flags & RFLAGS_IF != 0 {
        // SAFETY: interrupts were enabled before `irq_save`; a pending one is taken now.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// The base of the descriptor for `sel` in the GDT at `gdt_base` (16-byte system descriptor).
fn descriptor_base(gdt_base: u64, sel: u16) -> u64 {
    let p = (gdt_base + u64::from(sel & !7)) as *const u64;
    // SAFETY: `sel` is the loaded TR selector, so its 16-byte descriptor lies in the live GDT.
    let (lo, hi) = unsafe { (p.read_volatile(), p.add(1).read_volatile()) };
    ((lo >> 16) & 0xff_ffff) | (((lo >> 56) & 0xff) << 24) | ((hi & 0xffff_ffff) << 32)
}

/// Whether `va` is canonical for 48-bit linear addresses.
fn canonical(va: u64) -> bool {
    ((va << 16) as i64 >> 16) as u64 == va
}

/// Whether every byte of a PAT value is a valid memory type (UC, WC, WT, WP, WB, UC-).
pub fn pat_valid(pat: u64) -> bool {
    pat.to_le_bytes()
        .iter()
        .all(|&t| matches!(t, 0 | 1 | 4 | 5 | 6 | 7))
}

/// Exception vectors that push an error code (`#DF`, `#TS`, `#NP`, `#SS`, `#GP`, `#PF`, `#AC`):
/// the VM-entry check's list.
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17)
}

/// MSRs the guest reads and writes without exits: the VMCS switches them.
const PASSTHROUGH_MSRS: [u32; 5] = [
    MSR_FS_BASE,
    MSR_GS_BASE,
    MSR_SYSENTER_CS,
    MSR_SYSENTER_ESP,
    MSR_SYSENTER_EIP,
];

/// Fills a 4 KiB MSR bitmap: every access intercepted except [`PASSTHROUGH_MSRS`].
/// Layout: read bitmaps for MSRs 0..0x1fff at 0x000 and 0xc0000000..0xc0001fff at 0x400,
/// write bitmaps at 0x800 and 0xc00; a set bit exits.
pub fn fill_msr_bitmap(bitmap: &mut [u8; 4096]) {
    bitmap.fill(0xff);
    for msr in PASSTHROUGH_MSRS {
        let (base, n) = if msr >= 0xc000_0000 {
            (0x400, msr - 0xc000_0000)
        } else {
            (0, msr)
        };
        let byte = base + (n / 8) as usize;
        let bit = 1u8 << (n % 8);
        bitmap[byte] &= !bit;
        bitmap[byte + 0x800] &= !bit;
    }
}

/// The next VPID to hand out (1..=0xffff, then round again).
static NEXT_VPID: AtomicU32 = AtomicU32::new(1);
/// VPIDs have been handed out twice: two vCPUs on a CPU may share one, so each flushes its
/// VPID's translations when it becomes current.
static VPIDS_WRAPPED: AtomicBool = AtomicBool::new(false);

/// A VPID for a new vCPU.
fn alloc_vpid() -> u16 {
    let n = NEXT_VPID.fetch_add(1, Ordering::Relaxed);
    if n > 0xffff {
        VPIDS_WRAPPED.store(true, Ordering::Relaxed);
    }
    ((n - 1) % 0xffff + 1) as u16
}

/// MSRs the VMCS does not switch that the guest's SYSCALL/SWAPGS use: loaded into the CPU
/// around each entry (the host's values are back before anything else runs).
const SWITCHED_MSRS: [u32; 4] = [MSR_STAR, MSR_LSTAR, MSR_SYSCALL_MASK, MSR_SHADOW_GS_BASE];
/// Index of KERNEL_GS_BASE in [`SWITCHED_MSRS`] (SWAPGS changes it without an exit).
const SWITCHED_SHADOW_GS: usize = 3;

/// An event to inject at the next VM entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Event {
    /// VM-entry interruption-information field (valid bit set).
    info: u32,
    /// Error code (when `info` has the deliver-error-code bit).
    error: u32,
    /// Instruction length (software interrupts and exceptions).
    len: u32,
}

/// A segment as the VMCS holds it: selector, access rights, limit, base.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seg {
    sel: u16,
    ar: u32,
    limit: u32,
    base: u64,
}

impl Seg {
    const fn flat(sel: u16, ar: u32) -> Self {
        Self {
            sel,
            ar,
            limit: 0xffff_ffff,
            base: 0,
        }
    }
}

/// Access rights bits: G (limit in 4 KiB units) and unusable.
const AR_G: u32 = 1 << 15;
const AR_UNUSABLE: u32 = 1 << 16;
/// Access rights: G, D/B, P, S, type 0xb (code, read, accessed); G, B, P, S, type 3 (data,
/// write, accessed); G, L, P, S, type 0xb (64-bit code); P, type 0xb (busy 32/64-bit TSS).
const CODE32: u32 = 0xc09b;
const DATA: u32 = 0xc093;
const CODE64: u32 = 0xa09b;
const TSS_BUSY: u32 = 0x8b;
const TSS: Seg = Seg {
    sel: 0,
    ar: TSS_BUSY,
    limit: 0x67,
    base: 0,
};
const LDTR_UNUSABLE: Seg = Seg {
    sel: 0,
    ar: AR_UNUSABLE,
    limit: 0,
    base: 0,
};

/// A vCPU's initial state apart from its GPRs: segments in VMCS encoding order (ES, CS, SS,
/// DS, FS, GS, LDTR, TR), GDTR/IDTR limits (bases 0), and CR0, CR3, CR4 and EFER as the
/// guest sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BootState {
    segs: [Seg; 8],
    dt_limit: u32,
    cr0: u64,
    cr3: u64,
    cr4: u64,
    efer: u64,
}

impl BootState {
    /// PVH's boot state (docs/misc/pvh.pandoc): 32-bit protected mode, paging off, flat
    /// segments, a busy 32-bit TSS, CR0 = PE | ET, CR4 = 0, EFER = 0.
    const PVH: Self = Self {
        segs: [
            Seg::flat(0x10, DATA),
            Seg::flat(0x08, CODE32),
            Seg::flat(0x10, DATA),
            Seg::flat(0x10, DATA),
            Seg::flat(0x10, DATA),
            Seg::flat(0x10, DATA),
            LDTR_UNUSABLE,
            TSS,
        ],
        dt_limit: 0xffff,
        cr0: CR0_PE | CR0_ET,
        cr3: 0,
        cr4: 0,
        efer: 0,
    };

    /// The state `VCPUOP_initialise` asks for, as Xen's `arch_set_info_hvm_guest` builds
    /// it: 64-bit mode with flat segments and no descriptor tables, or 32-bit mode with the
    /// given CS, DS, SS, ES, TR (FS and GS as DS). EFER.LMA follows LME and CR0.PG.
    fn from_context(ctx: &StartContext) -> Self {
        let segs = if ctx.long {
            let data = Seg::flat(0, DATA);
            [
                data,
                Seg::flat(0, CODE64),
                data,
                data,
                data,
                data,
                LDTR_UNUSABLE,
                TSS,
            ]
        } else {
            let seg = |i: usize| {
                let (base, limit, attr) = ctx.segs[i];
                let (ar, limit) = vmx_segment(start_attr(attr, i == 4), limit);
                Seg {
                    sel: 0,
                    ar,
                    limit,
                    base: u64::from(base),
                }
            };
            let (cs, ds, ss, es, tr) = (seg(0), seg(1), seg(2), seg(3), seg(4));
            [es, cs, ss, ds, ds, ds, LDTR_UNUSABLE, tr]
        };
        Self {
            segs,
            dt_limit: 0,
            cr0: ctx.cr0,
            cr3: ctx.cr3,
            cr4: ctx.cr4,
            efer: efer_lma(ctx.efer, ctx.cr0),
        }
    }
}

/// VMX access rights and limit for a segment with attributes `attr` in the packed
/// (VMCB/Xen `segment_register`) format and byte-granular `limit`: a segment that is not
/// present is unusable; for a present one G follows the limit as in Xen's
/// `hvm_get_segment_register` (set when a limit bit 31:20 is), and with G the limit's low
/// 12 bits are ones, as VM entry requires (the limit a 4 KiB-granular descriptor gives).
fn vmx_segment(attr: u16, limit: u32) -> (u32, u32) {
    let ar = u32::from(attr & 0xff) | (u32::from(attr & 0xf00) << 4);
    if attr & 0x80 == 0 {
        (ar | AR_UNUSABLE, limit)
    } else if limit >> 20 != 0 {
        (ar | AR_G, limit | 0xfff)
    } else {
        (ar & !AR_G, limit)
    }
}

/// One VMX vCPU: its VMCS and MSR bitmap, the guest GPRs the VMCS does not hold, and the
/// guest state kept in software (SYSCALL MSRs, XCR0, CR8, the interrupt being delivered).
///
/// It belongs to the CPU that created it: every method must run there (they panic
/// elsewhere), including `drop`, which VMCLEARs the VMCS before its frame may be freed.
pub struct VmxVcpu<'e> {
    vmcs_pa: u64,
    cpu: u32,
    launched: bool,
    regs: GuestRegs,
    _ept: &'e NestedTables,
    /// Primary processor-based controls without interrupt-window exiting.
    proc: u32,
    /// Whether interrupt-window exiting is on in the VMCS.
    window: bool,
    /// CR0/CR4 guest/host masks (the bits VMX operation fixes).
    cr0_mask: u64,
    cr4_mask: u64,
    /// VPID (0: VPIDs not used) and the INVVPID type that flushes it.
    vpid: u16,
    invvpid_kind: u64,
    /// PAT is switched by the VMCS; else the guest's is only kept in `pat`.
    pat_in_vmcs: bool,
    pat: u64,
    /// Guest values of [`SWITCHED_MSRS`], and CSTAR (never used by Intel CPUs: kept only).
    switched: [u64; 4],
    cstar: u64,
    /// The guest's XCR0 and CR8 (task priority, not used for delivery here).
    xcr0: u64,
    cr8: u64,
    /// External interrupt queued with [`Vcpu::inject_interrupt`] and not yet delivered.
    pending_irq: Option<u8>,
    /// Exception (or event whose delivery an exit interrupted) for the next entry.
    event: Option<Event>,
}

impl<'e> VmxVcpu<'e> {
    /// A vCPU in flat 32-bit protected mode at `entry` with stack `stack` (otherwise the state
    /// of [`VmxVcpu::new_pvh`]).
    pub fn new_flat32(
        vmx: &Vmx,
        frames: &mut impl FrameSource,
        ept: &'e NestedTables,
        entry: u32,
        stack: u32,
    ) -> Result<Self, &'static str> {
        let regs = GuestRegs {
            rip: u64::from(entry),
            rsp: u64::from(stack),
            rflags: RFLAGS_MBS,
            ..GuestRegs::default()
        };
        Self::new(vmx, frames, ept, regs, &BootState::PVH)
    }

    /// A vCPU at the PVH boot state (Xen's docs/misc/pvh.pandoc): 32-bit protected mode with
    /// paging off, CS a flat 32-bit code segment, DS/ES/SS/FS/GS flat data, TR a busy 32-bit
    /// TSS with base 0 and limit 0x67, CR0 = PE | ET and CR4 = 0 as the guest reads them,
    /// EFER 0, rflags 0x2, `rbx = start_info`, `rip = entry`; on `ept`.
    ///
    /// It exits on CPUID, HLT, VMCALL, all port I/O, every MSR but FS/GS base and SYSENTER_*,
    /// XSETBV, EPT violations, triple faults, physical interrupts and NMIs. Call on the CPU
    /// that will run it, with `vmx` enabled there for as long as the vCPU lives; it takes two
    /// frames from `frames` (VMCS, MSR bitmap) for the caller to free after dropping it.
    pub fn new_pvh(
        vmx: &Vmx,
        frames: &mut impl FrameSource,
        ept: &'e NestedTables,
        entry: u32,
        start_info: u32,
    ) -> Result<Self, &'static str> {
        let regs = GuestRegs {
            rip: u64::from(entry),
            rbx: u64::from(start_info),
            rflags: RFLAGS_MBS,
            ..GuestRegs::default()
        };
        Self::new(vmx, frames, ept, regs, &BootState::PVH)
    }

    /// A vCPU started with `VCPUOP_initialise` in the state `ctx` (as Xen's
    /// `arch_set_info_hvm_guest` sets it up), otherwise as [`VmxVcpu::new_pvh`]. The guest
    /// reads back `ctx.cr0` and `ctx.cr4` (the bits VMX fixes stay hidden behind the read
    /// shadows; CR4.VMXE is expected clear). With PAE paging outside long mode, the PDPTEs
    /// are loaded from guest memory at CR3, as a MOV to CR3 would.
    pub fn new_context(
        vmx: &Vmx,
        frames: &mut impl FrameSource,
        ept: &'e NestedTables,
        ctx: &StartContext,
    ) -> Result<Self, &'static str> {
        let regs = GuestRegs {
            rflags: (ctx.regs.rflags & RFLAGS_VALID) | RFLAGS_MBS,
            ..ctx.regs
        };
        Self::new(vmx, frames, ept, regs, &BootState::from_context(ctx))
    }

    /// The common constructor: the initial state `boot` with `regs`.
    fn new(
        vmx: &Vmx,
        frames: &mut impl FrameSource,
        ept: &'e NestedTables,
        regs: GuestRegs,
        boot: &BootState,
    ) -> Result<Self, &'static str> {
        let info = vmx.info;
        let vmcs_pa = frames.alloc_zeroed(0).ok_or("no memory for the VMCS")?;
        let bitmap_pa = frames
            .alloc_zeroed(0)
            .ok_or("no memory for the MSR bitmap")?;
        // SAFETY: both frames are ours and direct-mapped; VMCLEAR and VMPTRLD take a VMCS with
        // our revision, and we are in VMX root operation (`vmx`).
        let ok = unsafe {
            fill_msr_bitmap(&mut *(phys_to_virt(bitmap_pa) as *mut [u8; 4096]));
            (phys_to_virt(vmcs_pa) as *mut u32).write_volatile(info.revision);
            let pa = vmcs_pa;
            let ok: u8;
            core::arch::asm!(
                "vmclear qword ptr [{p}]",
                "setna {ok}",
                p = in(reg) &pa,
                ok = out(reg_byte) ok,
                options(nostack)
            );
            ok == 0 && vmptrld(vmcs_pa)
        };
        if !ok {
            return Err("VMCLEAR/VMPTRLD failed");
        }
        let cpu = this_cpu();
        if let Some(slot) = current_vmcs_slot() {
            slot.store(vmcs_pa, Ordering::Relaxed);
        }
        // From here on, dropping `v` VMCLEARs the VMCS (also on the error paths).
        let mut v = Self {
            vmcs_pa,
            cpu,
            launched: false,
            regs,
            _ept: ept,
            proc: 0,
            window: false,
            cr0_mask: 0,
            cr4_mask: 0,
            vpid: 0,
            invvpid_kind: 0,
            pat_in_vmcs: false,
            pat: PAT_RESET,
            switched: [0; 4],
            cstar: 0,
            xcr0: 1,
            cr8: 0,
            pending_irq: None,
            event: None,
        };
        v.setup_controls(info, eptp(ept.root()), bitmap_pa)?;
        v.setup_host_state()?;
        v.setup_guest_state(boot, ept);
        Ok(v)
    }

    /// Execution, exit and entry controls, and the TLB state of a new vCPU.
    fn setup_controls(
        &mut self,
        info: VmxInfo,
        eptp: u64,
        bitmap_pa: u64,
    ) -> Result<(), &'static str> {
        let (pin, proc, exit, entry) = if info.true_ctls {
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
        // SAFETY: the VMX capability MSRs exist with VMX.
        let (proc_cap, exit_cap, entry_cap, ept_cap) = unsafe {
            (
                rdmsr(proc),
                rdmsr(exit),
                rdmsr(entry),
                rdmsr(MSR_VMX_EPT_VPID_CAP),
            )
        };
        let pin = control(
            pin,
            PIN_EXTINT_EXITING | PIN_NMI_EXITING,
            0,
            "no external-interrupt/NMI exiting",
        )?;
        // CR8 accesses exit: without a TPR shadow they would reach the real APIC's TPR.
        let proc = control(
            proc,
            PROC_HLT_EXITING
                | PROC_UNCOND_IO_EXITING
                | PROC_SECONDARY
                | PROC_CR8_LOAD
                | PROC_CR8_STORE,
            PROC_MSR_BITMAPS,
            "no HLT/I/O/CR8 exiting",
        )?;
        if proc & (PROC_CR3_LOAD | PROC_CR3_STORE) != 0 {
            return Err("CR3 exiting cannot be turned off");
        }
        if (proc_cap >> 32) as u32 & PROC_INTR_WINDOW == 0 {
            return Err("no interrupt-window exiting");
        }
        let invvpid_kind = if ept_cap & VPID_CAP_INVVPID == 0 {
            0
        } else if ept_cap & VPID_CAP_INVVPID_SINGLE != 0 {
            1
        } else if ept_cap & VPID_CAP_INVVPID_ALL != 0 {
            2
        } else {
            0
        };
        // RDTSCP and INVPCID would #UD in the guest without their enables.
        let mut optional = PROC2_RDTSCP | PROC2_INVPCID;
        if invvpid_kind != 0 {
            optional |= PROC2_VPID;
        }
        let proc2 = control(
            MSR_VMX_PROCBASED_CTLS2,
            PROC2_EPT | PROC2_UNRESTRICTED,
            optional,
            "no EPT/unrestricted guest",
        )?;
        let pat_exit = EXIT_SAVE_PAT | EXIT_LOAD_PAT;
        self.pat_in_vmcs = (exit_cap >> 32) as u32 & pat_exit == pat_exit
            && (entry_cap >> 32) as u32 & ENTRY_LOAD_PAT != 0;
        let pat = if self.pat_in_vmcs { u32::MAX } else { 0 };
        let exit_ctl = control(
            exit,
            EXIT_HOST_ADDR_SPACE | EXIT_SAVE_EFER | EXIT_LOAD_EFER | (pat_exit & pat),
            0,
            "no 64-bit host/EFER exit controls",
        )?;
        let entry_ctl = control(
            entry,
            ENTRY_LOAD_EFER | (ENTRY_LOAD_PAT & pat),
            0,
            "no EFER entry control",
        )?;
        if entry_ctl & ENTRY_IA32E_GUEST != 0 {
            return Err("IA-32e mode guest forced on");
        }
        self.proc = proc;
        vmwrite(PIN_BASED_CONTROLS, u64::from(pin));
        vmwrite(PROC_BASED_CONTROLS, u64::from(proc));
        vmwrite(PROC_BASED_CONTROLS2, u64::from(proc2));
        vmwrite(EXIT_CONTROLS, u64::from(exit_ctl));
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
        if proc & PROC_MSR_BITMAPS != 0 {
            vmwrite(MSR_BITMAP, bitmap_pa);
        }
        vmwrite(EPT_POINTER, eptp);
        vmwrite(VMCS_LINK_POINTER, u64::MAX);
        // The EPT root may be a recycled frame: drop what this CPU cached under it.
        invept_with(ept_cap, eptp);
        if proc2 & PROC2_VPID != 0 {
            self.vpid = alloc_vpid();
            self.invvpid_kind = invvpid_kind;
            vmwrite(VIRTUAL_PROCESSOR_ID, u64::from(self.vpid));
            // Translations cached under a VPID's earlier owner go. Later, the guest's own
            // paging changes flush as on hardware, and removed EPT mappings by `flush_ept`.
            invvpid(invvpid_kind, self.vpid);
        }
        Ok(())
    }

    /// Host state: what this CPU runs with now (CR3 and CR4 are refreshed at each entry).
    fn setup_host_state(&mut self) -> Result<(), &'static str> {
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
        // SAFETY: these MSRs exist on every x86_64 CPU (PAT since the P6).
        unsafe {
            vmwrite(HOST_FS_BASE, rdmsr(MSR_FS_BASE));
            vmwrite(HOST_GS_BASE, rdmsr(MSR_GS_BASE));
            vmwrite(HOST_IA32_EFER, rdmsr(MSR_EFER));
            vmwrite(HOST_SYSENTER_CS, rdmsr(MSR_SYSENTER_CS));
            vmwrite(HOST_SYSENTER_ESP, rdmsr(MSR_SYSENTER_ESP));
            vmwrite(HOST_SYSENTER_EIP, rdmsr(MSR_SYSENTER_EIP));
            if self.pat_in_vmcs {
                vmwrite(HOST_IA32_PAT, rdmsr(MSR_PAT));
            }
        }
        // HOST_RSP and HOST_RIP are written by `vmenter` on every entry.
        Ok(())
    }

    /// Guest state: `boot` (registers apart), PDPTEs from `ept` where the entry needs them.
    fn setup_guest_state(&mut self, boot: &BootState, ept: &NestedTables) {
        for (i, seg) in boot.segs.into_iter().enumerate() {
            let i = 2 * i as u64;
            vmwrite(GUEST_ES_SELECTOR + i, u64::from(seg.sel));
            vmwrite(GUEST_ES_AR + i, u64::from(seg.ar));
            vmwrite(GUEST_ES_LIMIT + i, u64::from(seg.limit));
            vmwrite(GUEST_ES_BASE + i, seg.base);
        }
        vmwrite(GUEST_GDTR_BASE, 0);
        vmwrite(GUEST_GDTR_LIMIT, u64::from(boot.dt_limit));
        vmwrite(GUEST_IDTR_BASE, 0);
        vmwrite(GUEST_IDTR_LIMIT, u64::from(boot.dt_limit));
        // CR0: the guest's, plus the bits VMX operation fixes to 1 (NE; PE/PG are free for
        // an unrestricted guest), which the mask hides: the guest reads its own from the
        // shadow. CD and NW are masked too: VM entries and exits never change them, so they
        // stay the host's (a guest must not turn the host's caches off) and the guest reads
        // its own from the shadow. CR4: the fixed bits (VMXE), hidden the same way.
        // SAFETY: the fixed-bit MSRs exist with VMX.
        let (cr0_fixed0, cr4_fixed0) =
            unsafe { (rdmsr(MSR_VMX_CR0_FIXED0), rdmsr(MSR_VMX_CR4_FIXED0)) };
        let cr0_fixed = (cr0_fixed0 | CR0_NE) & !(CR0_PE | CR0_PG);
        self.cr0_mask = cr0_fixed | CR0_NW | CR0_CD;
        self.cr4_mask = cr4_fixed0 | CR4_VMXE;
        vmwrite(GUEST_CR0, (boot.cr0 & !self.cr0_mask) | cr0_fixed);
        vmwrite(CR0_GUEST_HOST_MASK, self.cr0_mask);
        vmwrite(CR0_READ_SHADOW, boot.cr0 & self.cr0_mask);
        vmwrite(GUEST_CR3, boot.cr3);
        vmwrite(GUEST_CR4, boot.cr4 | self.cr4_mask);
        vmwrite(CR4_GUEST_HOST_MASK, self.cr4_mask);
        vmwrite(CR4_READ_SHADOW, boot.cr4 & self.cr4_mask);
        vmwrite(GUEST_IA32_EFER, boot.efer);
        if boot.efer & EFER_LMA != 0 {
            let entry = vmread(ENTRY_CONTROLS) as u32 | ENTRY_IA32E_GUEST;
            vmwrite(ENTRY_CONTROLS, u64::from(entry));
        }
        // With EPT, an entry into PAE paging outside long mode takes the PDPTEs from the
        // VMCS (a MOV to CR3 in the guest reads them from memory instead).
        if boot.cr0 & CR0_PG != 0 && boot.cr4 & CR4_PAE != 0 && boot.efer & EFER_LMA == 0 {
            let mut pdptes = [0u8; 32];
            // Unbacked: not-present PDPTEs, the guest faults on its first access.
            if !ept.read(boot.cr3 & 0xffff_ffe0, &mut pdptes) {
                pdptes = [0; 32];
            }
            for (i, e) in pdptes.chunks_exact(8).enumerate() {
                let mut b = [0u8; 8];
                b.copy_from_slice(e);
                vmwrite(GUEST_PDPTE0 + 2 * i as u64, u64::from_le_bytes(b));
            }
        }
        vmwrite(GUEST_DR7, 0x400);
        vmwrite(GUEST_IA32_DEBUGCTL, 0);
        if self.pat_in_vmcs {
            vmwrite(GUEST_IA32_PAT, PAT_RESET);
        }
        vmwrite(GUEST_SYSENTER_CS, 0);
        vmwrite(GUEST_SYSENTER_ESP, 0);
        vmwrite(GUEST_SYSENTER_EIP, 0);
        vmwrite(GUEST_INTERRUPTIBILITY, 0);
        vmwrite(GUEST_ACTIVITY_STATE, 0);
        vmwrite(GUEST_PENDING_DBG, 0);
    }

    /// The VMCS's physical address.
    pub fn vmcs_pa(&self) -> u64 {
        self.vmcs_pa
    }

    /// The CPU this vCPU belongs to.
    pub fn cpu(&self) -> u32 {
        self.cpu
    }

    /// This vCPU's VPID (0 when VPIDs are not used).
    pub fn vpid(&self) -> u16 {
        self.vpid
    }

    /// Makes this vCPU's VMCS current on this CPU (VMPTRLD unless it already is).
    fn make_current(&self) {
        let cpu = this_cpu();
        assert!(
            cpu == self.cpu,
            "VMX vCPU of CPU {} used on CPU {cpu}",
            self.cpu
        );
        let slot = current_vmcs_slot();
        if slot.is_some_and(|s| s.load(Ordering::Relaxed) == self.vmcs_pa) {
            return;
        }
        // SAFETY: our VMCS, initialised by `new` on this CPU (checked above), which is in VMX
        // root operation for the vCPU's lifetime.
        let ok = unsafe { vmptrld(self.vmcs_pa) };
        assert!(ok, "VMPTRLD of {:#x} failed", self.vmcs_pa);
        if let Some(s) = slot {
            s.store(self.vmcs_pa, Ordering::Relaxed);
        }
        if self.vpid != 0 && VPIDS_WRAPPED.load(Ordering::Relaxed) {
            invvpid(self.invvpid_kind, self.vpid);
        }
    }

    /// Whether the guest runs 64-bit code (EFER.LMA and CS.L).
    fn long_mode_code(&self) -> bool {
        vmread(GUEST_IA32_EFER) & EFER_LMA != 0 && vmread(GUEST_CS_AR) & (1 << 13) != 0
    }

    /// Moves rip on by `len` bytes past a completed instruction, which ends any STI or MOV-SS
    /// interrupt shadow.
    fn advance(&mut self, len: u64) {
        let rip = self.regs.rip + len;
        self.regs.rip = if self.long_mode_code() {
            rip
        } else {
            rip & 0xffff_ffff
        };
        let blocking = vmread(GUEST_INTERRUPTIBILITY);
        if blocking & BLOCKING_STI_MOVSS != 0 {
            vmwrite(GUEST_INTERRUPTIBILITY, blocking & !BLOCKING_STI_MOVSS);
        }
    }

    /// Whether an external interrupt can be injected at the next entry.
    fn interruptible(&self) -> bool {
        self.regs.rflags & RFLAGS_IF != 0
            && vmread(GUEST_INTERRUPTIBILITY) & BLOCKING_STI_MOVSS == 0
            && vmread(GUEST_ACTIVITY_STATE) == 0
    }

    /// Programs the event injection of the next entry: an interrupted event or exception
    /// first, then the queued interrupt if the guest can take it now, else an exit as soon
    /// as it can (interrupt-window exiting).
    fn prepare_events(&mut self) {
        let mut slot_used = false;
        if let Some(ev) = self.event.take() {
            vmwrite(ENTRY_INTERRUPTION_INFO, u64::from(ev.info));
            vmwrite(ENTRY_EXCEPTION_ERROR, u64::from(ev.error));
            vmwrite(ENTRY_INSTRUCTION_LEN, u64::from(ev.len));
            slot_used = true;
        }
        let mut window = false;
        if let Some(vector) = self.pending_irq {
            if !slot_used && self.interruptible() {
                vmwrite(
                    ENTRY_INTERRUPTION_INFO,
                    u64::from(INTR_VALID | (INTR_TYPE_EXTINT << 8) | u32::from(vector)),
                );
                self.pending_irq = None;
            } else {
                window = true;
            }
        }
        if window != self.window {
            self.window = window;
            let proc = self.proc | if window { PROC_INTR_WINDOW } else { 0 };
            vmwrite(PROC_BASED_CONTROLS, u64::from(proc));
        }
    }

    /// Keeps the event whose delivery the last exit interrupted, to deliver it again.
    fn save_interrupted_event(&mut self) {
        let idt = vmread(IDT_VECTORING_INFO) as u32;
        if idt & INTR_VALID == 0 {
            return;
        }
        match (idt >> 8) & 7 {
            // Ours (physical interrupts exit before reaching the guest): queued again.
            INTR_TYPE_EXTINT => self.pending_irq = Some(idt as u8),
            // Never injected here; host NMIs exit before reaching the guest.
            INTR_TYPE_NMI => {}
            ty => {
                let error = if idt & INTR_ERROR_CODE != 0 {
                    vmread(IDT_VECTORING_ERROR) as u32
                } else {
                    0
                };
                let len = if ty >= INTR_TYPE_SW_INTERRUPT {
                    vmread(EXIT_INSTRUCTION_LEN) as u32
                } else {
                    0
                };
                self.event = Some(Event {
                    info: idt & INTR_ENTRY_BITS,
                    error,
                    len,
                });
            }
        }
    }

    /// One entry and exit: `None` when the exit was handled here and the guest may go on.
    fn enter_once(&mut self) -> Option<Exit> {
        let host_cr4 = read_cr4();
        // The hypervisor switches address spaces between runs (and may toggle CR4 bits).
        vmwrite(HOST_CR3, read_cr3());
        vmwrite(HOST_CR4, host_cr4);
        vmwrite(GUEST_RIP, self.regs.rip);
        vmwrite(GUEST_RSP, self.regs.rsp);
        vmwrite(GUEST_RFLAGS, (self.regs.rflags & RFLAGS_VALID) | 0x2);
        self.prepare_events();

        // With interrupts off from here until the host's MSRs and XCR0 are back: nothing else
        // may run with the guest's (a pending interrupt is taken at `irq_restore`).
        let flags = irq_save();
        let mut host_msrs = [0u64; SWITCHED_MSRS.len()];
        for (i, &msr) in SWITCHED_MSRS.iter().enumerate() {
            // SAFETY: these MSRs exist on every x86_64 CPU; the guest's values were checked
            // by `write_msr` (canonical, no reserved bits).
            unsafe {
                host_msrs[i] = rdmsr(msr);
                if self.switched[i] != host_msrs[i] {
                    wrmsr(msr, self.switched[i]);
                }
            }
        }
        let host_xcr0 = if host_cr4 & CR4_OSXSAVE != 0 {
            let x = xgetbv0();
            if x != self.xcr0 {
                // SAFETY: OSXSAVE is on; the guest's XCR0 was validated by the XSETBV
                // handler before `set_xcr0` (1, the reset value, is always valid).
                unsafe { xsetbv0(self.xcr0) };
            }
            Some(x)
        } else {
            None
        };
        // SAFETY: this vCPU's VMCS is current and consistent (`new`, `make_current`), and
        // `vmenter` restores every host register it does not declare clobbered.
        let rflags = unsafe { vmenter(&mut self.regs, self.launched) };
        if let Some(x) = host_xcr0.filter(|&x| x != self.xcr0) {
            // SAFETY: the host's own XCR0, read above.
            unsafe { xsetbv0(x) };
        }
        // SAFETY: as above; the guest may have changed KERNEL_GS_BASE with SWAPGS.
        unsafe {
            self.switched[SWITCHED_SHADOW_GS] = rdmsr(MSR_SHADOW_GS_BASE);
            for (i, &msr) in SWITCHED_MSRS.iter().enumerate() {
                if self.switched[i] != host_msrs[i] {
                    wrmsr(msr, host_msrs[i]);
                }
            }
        }
        irq_restore(flags);

        if rflags != 0 {
            // VMfailInvalid (CF) has no error number; VMfailValid (ZF) has one.
            let err = if rflags & 1 != 0 {
                0
            } else {
                vmread(VM_INSTRUCTION_ERROR)
            };
            return Some(Exit::EntryFailed(err));
        }
        self.launched = true;
        self.regs.rip = vmread(GUEST_RIP);
        self.regs.rsp = vmread(GUEST_RSP);
        self.regs.rflags = vmread(GUEST_RFLAGS);
        let reason = vmread(EXIT_REASON);
        if reason & EXIT_REASON_ENTRY_FAILURE != 0 {
            return Some(Exit::EntryFailed(reason));
        }
        self.save_interrupted_event();
        let q = vmread(EXIT_QUALIFICATION);
        Some(match reason & 0xffff {
            EXIT_CPUID => Exit::Cpuid,
            EXIT_HLT => Exit::Hlt,
            EXIT_VMCALL => Exit::Vmmcall,
            EXIT_EXTINT => Exit::ExternalInterrupt,
            EXIT_EXCEPTION_NMI => {
                let info = vmread(EXIT_INTERRUPTION_INFO) as u32;
                if info & INTR_VALID != 0 && (info >> 8) & 7 == INTR_TYPE_NMI {
                    // The NMI was the host's: hand it to the host's handler, which only logs
                    // it (hypervisor NMIs are ignored).
                    // SAFETY: vector 2 is the host's NMI gate (on its own IST stack).
                    unsafe { core::arch::asm!("int 2") };
                    Exit::Nmi
                } else {
                    Exit::Other(EXIT_EXCEPTION_NMI)
                }
            }
            EXIT_TRIPLE_FAULT => Exit::Shutdown,
            EXIT_INTERRUPT_WINDOW => Exit::InterruptWindow,
            EXIT_CR_ACCESS => return self.cr_access(q).then_some(Exit::Other(EXIT_CR_ACCESS)),
            EXIT_EPT_VIOLATION => Exit::NestedPageFault {
                gpa: vmread(GUEST_PHYSICAL_ADDRESS),
                error: q,
            },
            EXIT_IO if q & 0b1_0000 == 0 => Exit::Io {
                port: (q >> 16) as u16,
                size: (q & 7) as u8 + 1,
                write: q & 8 == 0,
            },
            EXIT_IO => Exit::IoString {
                port: (q >> 16) as u16,
                size: (q & 7) as u8 + 1,
                write: q & 8 == 0,
                rep: q & 0b10_0000 != 0,
            },
            EXIT_RDMSR => Exit::Msr { write: false },
            EXIT_WRMSR => Exit::Msr { write: true },
            EXIT_XSETBV => Exit::Xsetbv,
            EXIT_PAUSE => Exit::Pause,
            other => Exit::Other(other),
        })
    }

    /// Handles a control-register access exit (SDM table 28-3); true if it is not one this
    /// back-end causes (reported as `Exit::Other`).
    fn cr_access(&mut self, q: u64) -> bool {
        const MOV_TO_CR: u64 = 0;
        const MOV_FROM_CR: u64 = 1;
        let (cr, access, reg) = (q & 0xf, (q >> 4) & 3, ((q >> 8) & 0xf) as usize);
        let wide = self.long_mode_code();
        let value = self.regs.gpr(reg);
        let value = if wide { value } else { value & 0xffff_ffff };
        match (cr, access) {
            // A write changing a bit the host owns (NE, CD, NW): the shadow takes the guest's
            // value and the MOV runs again, now natively (owned bits keep the host's value).
            (0, MOV_TO_CR) => vmwrite(CR0_READ_SHADOW, value & self.cr0_mask),
            // VMX is not offered to the guest: setting CR4.VMXE faults, as without VMX.
            (4, MOV_TO_CR) if value & CR4_VMXE != 0 => self.inject_exception(13, Some(0)),
            (4, MOV_TO_CR) => vmwrite(CR4_READ_SHADOW, value & self.cr4_mask),
            // CR8 (64-bit mode only): a software TPR, so the guest never reaches the APIC's.
            (8, MOV_TO_CR) if value >> 4 != 0 => self.inject_exception(13, Some(0)),
            (8, MOV_TO_CR) => {
                self.cr8 = value;
                self.advance(vmread(EXIT_INSTRUCTION_LEN));
            }
            (8, MOV_FROM_CR) => {
                *self.regs.gpr_mut(reg) = self.cr8;
                self.advance(vmread(EXIT_INSTRUCTION_LEN));
            }
            _ => return true,
        }
        false
    }
}

impl Drop for VmxVcpu<'_> {
    fn drop(&mut self) {
        debug_assert_eq!(this_cpu(), self.cpu, "VMX vCPU dropped off its CPU");
        let pa = self.vmcs_pa;
        // SAFETY: VMCLEAR of our own VMCS in VMX root operation writes its state back to memory
        // and makes it neither active nor current; the frame is then free to be returned.
        unsafe {
            core::arch::asm!("vmclear qword ptr [{p}]", p = in(reg) &pa, options(nostack));
        }
        if let Some(slot) = current_vmcs_slot() {
            let _ = slot.compare_exchange(pa, NO_VMCS, Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

impl Vcpu for VmxVcpu<'_> {
    fn run(&mut self) -> Exit {
        for _ in 0..INTERNAL_EXITS_PER_RUN {
            // Again each time: interrupts were enabled since the last entry.
            self.make_current();
            if let Some(exit) = self.enter_once() {
                return exit;
            }
        }
        // Only internally handled exits so far: give the hypervisor a chance to schedule, as
        // after a physical interrupt; it runs the vCPU again.
        Exit::ExternalInterrupt
    }

    fn regs(&self) -> &GuestRegs {
        &self.regs
    }

    fn regs_mut(&mut self) -> &mut GuestRegs {
        &mut self.regs
    }

    fn skip_instruction(&mut self) -> Option<u8> {
        self.make_current();
        let len = vmread(EXIT_INSTRUCTION_LEN);
        if !(1..=15).contains(&len) {
            return None;
        }
        self.advance(len);
        Some(len as u8)
    }

    fn control(&self) -> ControlState {
        self.make_current();
        let cs_ar = vmread(GUEST_CS_AR);
        let shadowed = |value: u64, shadow: u64, mask: u64| (value & !mask) | (shadow & mask);
        ControlState {
            cr0: shadowed(vmread(GUEST_CR0), vmread(CR0_READ_SHADOW), self.cr0_mask),
            cr3: vmread(GUEST_CR3),
            cr4: shadowed(vmread(GUEST_CR4), vmread(CR4_READ_SHADOW), self.cr4_mask),
            efer: vmread(GUEST_IA32_EFER),
            cs_base: vmread(GUEST_CS_BASE),
            cs_long: cs_ar & (1 << 13) != 0,
            cs_db: cs_ar & (1 << 14) != 0,
            cpl: ((vmread(GUEST_SS_AR) >> 5) & 3) as u8,
        }
    }

    fn inject_interrupt(&mut self, vector: u8) -> bool {
        if self.pending_irq.is_some() {
            return false;
        }
        self.pending_irq = Some(vector);
        true
    }

    fn interrupt_pending(&self) -> bool {
        self.pending_irq.is_some()
    }

    fn inject_exception(&mut self, vector: u8, error: Option<u32>) {
        self.make_current();
        // Hardware exceptions are vectors 0-31 (2 is the NMI, its own type). The error code
        // goes with the vectors that have one, and only in protected mode (VM-entry checks).
        let ty = match vector {
            2 => INTR_TYPE_NMI,
            0..=31 => INTR_TYPE_HW_EXCEPTION,
            _ => return,
        };
        let with_error = has_error_code(vector) && vmread(GUEST_CR0) & CR0_PE != 0;
        let info = INTR_VALID
            | (ty << 8)
            | u32::from(vector)
            | if with_error { INTR_ERROR_CODE } else { 0 };
        // Replaces an interrupted exception or software event: the guest re-executes the
        // instruction that raised it. An interrupted external interrupt is queued apart.
        self.event = Some(Event {
            info,
            error: error.unwrap_or(0),
            len: 0,
        });
    }

    fn read_msr(&self, index: u32) -> Option<u64> {
        self.make_current();
        Some(match index {
            MSR_EFER => vmread(GUEST_IA32_EFER),
            MSR_PAT if self.pat_in_vmcs => vmread(GUEST_IA32_PAT),
            MSR_PAT => self.pat,
            MSR_FS_BASE => vmread(GUEST_FS_BASE),
            MSR_GS_BASE => vmread(GUEST_GS_BASE),
            MSR_CSTAR => self.cstar,
            MSR_SYSENTER_CS => vmread(GUEST_SYSENTER_CS),
            MSR_SYSENTER_ESP => vmread(GUEST_SYSENTER_ESP),
            MSR_SYSENTER_EIP => vmread(GUEST_SYSENTER_EIP),
            _ => {
                let i = SWITCHED_MSRS.iter().position(|&m| m == index)?;
                self.switched[i]
            }
        })
    }

    fn write_msr(&mut self, index: u32, value: u64) -> bool {
        self.make_current();
        match index {
            MSR_EFER => return self.write_efer(value),
            MSR_PAT if !pat_valid(value) => return false,
            MSR_PAT if self.pat_in_vmcs => vmwrite(GUEST_IA32_PAT, value),
            MSR_PAT => self.pat = value,
            MSR_FS_BASE | MSR_GS_BASE | MSR_SYSENTER_ESP | MSR_SYSENTER_EIP | MSR_LSTAR
            | MSR_CSTAR | MSR_SHADOW_GS_BASE
                if !canonical(value) =>
            {
                return false;
            }
            MSR_FS_BASE => vmwrite(GUEST_FS_BASE, value),
            MSR_GS_BASE => vmwrite(GUEST_GS_BASE, value),
            MSR_CSTAR => self.cstar = value,
            MSR_SYSENTER_CS => vmwrite(GUEST_SYSENTER_CS, value & 0xffff_ffff),
            MSR_SYSENTER_ESP => vmwrite(GUEST_SYSENTER_ESP, value),
            MSR_SYSENTER_EIP => vmwrite(GUEST_SYSENTER_EIP, value),
            // Intel: SFMASK's upper half is reserved.
            MSR_SYSCALL_MASK if value >> 32 != 0 => return false,
            _ => {
                let Some(i) = SWITCHED_MSRS.iter().position(|&m| m == index) else {
                    return false;
                };
                self.switched[i] = value;
            }
        }
        true
    }

    fn set_xcr0(&mut self, xcr0: u64) {
        self.xcr0 = xcr0;
    }
}

impl VmxVcpu<'_> {
    /// WRMSR of EFER: SCE, LME and NXE (if the CPU has NX) are the guest's; LME cannot change
    /// while paging is on; LMA follows CR0.PG and LME, as does the IA-32e-mode-guest entry
    /// control (also saved by the hardware at every exit).
    fn write_efer(&mut self, value: u64) -> bool {
        let nx =
            __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).edx & (1 << 20) != 0;
        let allowed = EFER_SCE | EFER_LME | EFER_LMA | if nx { EFER_NXE } else { 0 };
        if value & !allowed != 0 {
            return false;
        }
        let old = vmread(GUEST_IA32_EFER);
        let paging = vmread(GUEST_CR0) & CR0_PG != 0;
        if paging && (old ^ value) & EFER_LME != 0 {
            return false;
        }
        let lma = if paging { old & EFER_LMA } else { 0 };
        vmwrite(GUEST_IA32_EFER, (value & !EFER_LMA) | lma);
        let entry = vmread(ENTRY_CONTROLS) as u32 & !ENTRY_IA32E_GUEST;
        let ia32e = if lma != 0 { ENTRY_IA32E_GUEST } else { 0 };
        vmwrite(ENTRY_CONTROLS, u64::from(entry | ia32e));
        true
    }
}

/// Enters the guest of the current VMCS (VMLAUNCH, or VMRESUME once `launched`) with GPRs
/// from `regs`, and stores the guest's GPRs back there at the VM exit. Returns 0 after a VM
/// exit, or RFLAGS (CF or ZF set) if the entry instruction failed. Host RFLAGS (and so IF) is
/// restored afterwards: the caller's, so a physical interrupt that caused the exit is taken
/// once the caller enables interrupts again.
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
    fn segment_attributes_and_granularity_for_vmx() {
        // Packed type:4 s:1 dpl:2 p:1 avl:1 l:1 db:1 g:1 to access rights bits 7:0, 15:12.
        assert_eq!(vmx_segment(0xc9b, 0xffff_ffff), (0xc09b, 0xffff_ffff));
        assert_eq!(vmx_segment(0xa9b, 0xffff_ffff), (0xa09b, 0xffff_ffff));
        assert_eq!(vmx_segment(0x8b, 0x67), (0x8b, 0x67));
        assert_eq!(vmx_segment(0x1f3, 0xffff), (0x10f3, 0xffff));
        // G from the limit: cleared for limits below 1 MiB, set (low bits ones) above.
        assert_eq!(vmx_segment(0xc93, 0xf_ffff), (0x4093, 0xf_ffff));
        assert_eq!(vmx_segment(0x493, 0x10_0000), (0xc093, 0x10_0fff));
        assert_eq!(vmx_segment(0x493, 0x1234_5678), (0xc093, 0x1234_5fff));
        // Not present: unusable.
        assert_eq!(vmx_segment(0, 0), (AR_UNUSABLE, 0));
        assert_eq!(
            vmx_segment(0x13, 0xffff_ffff),
            (0x13 | AR_UNUSABLE, 0xffff_ffff)
        );
    }

    #[test]
    fn start_context_boot_states() {
        let long = StartContext {
            long: true,
            cr0: 0x8000_0011,
            cr3: 0x2000,
            cr4: 0x20,
            efer: EFER_LME,
            ..StartContext::default()
        };
        let b = BootState::from_context(&long);
        let data = Seg::flat(0, DATA);
        assert_eq!(
            b.segs,
            [
                data,
                Seg::flat(0, 0xa09b),
                data,
                data,
                data,
                data,
                LDTR_UNUSABLE,
                TSS
            ]
        );
        assert_eq!(
            (b.dt_limit, b.cr0, b.cr3, b.cr4),
            (0, 0x8000_0011, 0x2000, 0x20)
        );
        assert_eq!(b.efer, EFER_LME | EFER_LMA);

        let flat = StartContext {
            long: false,
            cr0: 0x11,
            segs: [
                (0, 0xffff_ffff, 0xc9a),
                (0, 0xffff_ffff, 0xc92),
                (0, 0xffff_ffff, 0xc92),
                (0x10, 0xfff, 0x92),
                (0x500, 0x67, 0x89),
            ],
            ..StartContext::default()
        };
        let b = BootState::from_context(&flat);
        let es = Seg {
            sel: 0,
            ar: 0x93,
            limit: 0xfff,
            base: 0x10,
        };
        let tr = Seg { base: 0x500, ..TSS };
        let cs = Seg::flat(0, CODE32);
        assert_eq!(b.segs, [es, cs, data, data, data, data, LDTR_UNUSABLE, tr]);
        assert_eq!((b.cr0, b.efer), (0x11, 0));
        // The PVH state is what it was.
        assert_eq!(BootState::PVH.segs[1], Seg::flat(0x08, CODE32));
        assert_eq!(BootState::PVH.segs[7], TSS);
        assert_eq!(BootState::PVH.cr0, 0x11);
    }

    #[test]
    fn ept_encoding() {
        // R, W, X, memory type 6 (WB).
        assert_eq!(EPT_LEAF_RWX_WB.bits(), 0b11_0111);
        assert_eq!((EPT_LEAF_RWX_WB.bits() >> 3) & 7, 6);
        assert_eq!(eptp(0x1234_5000), 0x1234_501e);
    }

    #[test]
    fn msr_bitmap_passes_only_vmcs_switched_msrs() {
        let mut b = [0u8; 4096];
        fill_msr_bitmap(&mut b);
        let intercepted = |msr: u32, write: bool| {
            let (base, n) = if msr >= 0xc000_0000 {
                (0x400, msr - 0xc000_0000)
            } else {
                (0, msr)
            };
            let byte = base + (n / 8) as usize + if write { 0x800 } else { 0 };
            b[byte] & (1 << (n % 8)) != 0
        };
        for write in [false, true] {
            for msr in PASSTHROUGH_MSRS {
                assert!(!intercepted(msr, write), "{msr:#x}");
            }
            for msr in [
                MSR_EFER,
                MSR_PAT,
                MSR_LSTAR,
                MSR_STAR,
                MSR_SHADOW_GS_BASE,
                0x10,
                0x1b,
            ] {
                assert!(intercepted(msr, write), "{msr:#x}");
            }
        }
        // SYSENTER_* share a byte, as do FS/GS base: two bytes per bitmap.
        assert_eq!(b.iter().filter(|&&x| x != 0xff).count(), 4);
    }

    #[test]
    fn pat_and_canonical_checks() {
        assert!(pat_valid(PAT_RESET));
        assert!(pat_valid(0x0105_0406_0007_0406));
        assert!(!pat_valid(0x0007_0406_0007_0402));
        assert!(!pat_valid(0x0807_0406_0007_0406));
        assert!(canonical(0xffff_8000_0000_0000));
        assert!(canonical(0x0000_7fff_ffff_f000));
        assert!(!canonical(0x0000_8000_0000_0000));
        assert!(!canonical(0xfff0_0000_0000_0000));
    }

    #[test]
    fn registers_by_exit_qualification_number() {
        let mut r = GuestRegs::default();
        *r.gpr_mut(0) = 1;
        *r.gpr_mut(3) = 2;
        *r.gpr_mut(4) = 3;
        *r.gpr_mut(15) = 4;
        assert_eq!((r.rax, r.rbx, r.rsp, r.r15), (1, 2, 3, 4));
        assert_eq!(r.gpr(3), 2);
        assert_eq!(r.gpr(15), 4);
        assert!(has_error_code(13) && has_error_code(8) && !has_error_code(6));
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
