//! x86 architecture ABI: `arch-x86/xen.h` together with its x86_64 half
//! `arch-x86/xen-x86_64.h` (the 64-bit guest view only).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `xen_pfn_t`: a (pseudo-)physical or machine frame number (`unsigned long`).
pub type XenPfn = u64;
/// `xen_ulong_t`: `unsigned long` of the 64-bit ABI.
pub type XenUlong = u64;
/// `xen_callback_t`: a callback entry point; on x86_64 just the `rip`.
pub type XenCallback = u64;
/// `tsc_timestamp_t`: an RDTSC value.
pub type TscTimestamp = u64;

// ---------------------------------------------------------------------------
// Hypercall transfer page (xen-x86_64.h comment).

/// Bytes per hypercall stub: guests `call hypercall_page + nr * 32`.
pub const HYPERCALL_ENTRY_SIZE: u64 = 32;

// ---------------------------------------------------------------------------
// Flat segment selectors (xen-x86_64.h): live in Xen's reserved GDT pages.

/// `FLAT_RING3_CS32`: 32-bit ring-3 code segment.
pub const FLAT_RING3_CS32: u16 = 0xe023;
/// `FLAT_RING3_CS64`: 64-bit ring-3 code segment.
pub const FLAT_RING3_CS64: u16 = 0xe033;
/// `FLAT_RING3_DS32`: 32-bit ring-3 data segment.
pub const FLAT_RING3_DS32: u16 = 0xe02b;
/// `FLAT_RING3_DS64`: 64-bit data segment is the NULL selector.
pub const FLAT_RING3_DS64: u16 = 0x0000;
/// `FLAT_RING3_SS32`: 32-bit ring-3 stack segment.
pub const FLAT_RING3_SS32: u16 = 0xe02b;
/// `FLAT_RING3_SS64`: 64-bit ring-3 stack segment.
pub const FLAT_RING3_SS64: u16 = 0xe02b;

/// `FLAT_KERNEL_DS64`: 64-bit PV kernels run in ring 3, so same as ring-3.
pub const FLAT_KERNEL_DS64: u16 = FLAT_RING3_DS64;
/// `FLAT_KERNEL_DS32`.
pub const FLAT_KERNEL_DS32: u16 = FLAT_RING3_DS32;
/// `FLAT_KERNEL_DS`.
pub const FLAT_KERNEL_DS: u16 = FLAT_KERNEL_DS64;
/// `FLAT_KERNEL_CS64`.
pub const FLAT_KERNEL_CS64: u16 = FLAT_RING3_CS64;
/// `FLAT_KERNEL_CS32`.
pub const FLAT_KERNEL_CS32: u16 = FLAT_RING3_CS32;
/// `FLAT_KERNEL_CS`.
pub const FLAT_KERNEL_CS: u16 = FLAT_KERNEL_CS64;
/// `FLAT_KERNEL_SS64`.
pub const FLAT_KERNEL_SS64: u16 = FLAT_RING3_SS64;
/// `FLAT_KERNEL_SS32`.
pub const FLAT_KERNEL_SS32: u16 = FLAT_RING3_SS32;
/// `FLAT_KERNEL_SS`.
pub const FLAT_KERNEL_SS: u16 = FLAT_KERNEL_SS64;

/// `FLAT_USER_DS64`.
pub const FLAT_USER_DS64: u16 = FLAT_RING3_DS64;
/// `FLAT_USER_DS32`.
pub const FLAT_USER_DS32: u16 = FLAT_RING3_DS32;
/// `FLAT_USER_DS`.
pub const FLAT_USER_DS: u16 = FLAT_USER_DS64;
/// `FLAT_USER_CS64`.
pub const FLAT_USER_CS64: u16 = FLAT_RING3_CS64;
/// `FLAT_USER_CS32`.
pub const FLAT_USER_CS32: u16 = FLAT_RING3_CS32;
/// `FLAT_USER_CS`.
pub const FLAT_USER_CS: u16 = FLAT_USER_CS64;
/// `FLAT_USER_SS64`.
pub const FLAT_USER_SS64: u16 = FLAT_RING3_SS64;
/// `FLAT_USER_SS32`.
pub const FLAT_USER_SS32: u16 = FLAT_RING3_SS32;
/// `FLAT_USER_SS`.
pub const FLAT_USER_SS: u16 = FLAT_USER_SS64;

// ---------------------------------------------------------------------------
// Virtual address layout reserved for the hypervisor (xen-x86_64.h).

/// `HYPERVISOR_VIRT_START`: start of the hole 64-bit PV guests must not map.
pub const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `HYPERVISOR_VIRT_END`.
pub const HYPERVISOR_VIRT_END: u64 = 0xFFFF_8800_0000_0000;
/// `MACH2PHYS_VIRT_START`: read-only M2P table visible to guests.
pub const MACH2PHYS_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// `MACH2PHYS_VIRT_END`.
pub const MACH2PHYS_VIRT_END: u64 = 0xFFFF_8040_0000_0000;
/// `MACH2PHYS_NR_ENTRIES`: 8-byte entries in the M2P window.
pub const MACH2PHYS_NR_ENTRIES: u64 = (MACH2PHYS_VIRT_END - MACH2PHYS_VIRT_START) >> 3;

// ---------------------------------------------------------------------------
// Segment descriptor tables (arch-x86/xen.h).

/// `FIRST_RESERVED_GDT_PAGE`: Xen owns the GDT from this page on.
pub const FIRST_RESERVED_GDT_PAGE: u32 = 14;
/// `FIRST_RESERVED_GDT_BYTE`.
pub const FIRST_RESERVED_GDT_BYTE: u32 = FIRST_RESERVED_GDT_PAGE * 4096;
/// `FIRST_RESERVED_GDT_ENTRY`.
pub const FIRST_RESERVED_GDT_ENTRY: u32 = FIRST_RESERVED_GDT_BYTE / 8;

/// `XEN_LEGACY_MAX_VCPUS`: `vcpu_info` slots embedded in `shared_info`.
pub const XEN_LEGACY_MAX_VCPUS: usize = 32;
/// `MAX_VIRT_CPUS`: the pre-4.x name of [`XEN_LEGACY_MAX_VCPUS`].
pub const MAX_VIRT_CPUS: usize = XEN_LEGACY_MAX_VCPUS;

/// `XEN_HAVE_PV_GUEST_ENTRY`: x86 has a PV entry ABI (`start_info`).
pub const XEN_HAVE_PV_GUEST_ENTRY: bool = true;
/// `XEN_HAVE_PV_UPCALL_MASK`: `vcpu_info.evtchn_upcall_mask` exists on x86.
pub const XEN_HAVE_PV_UPCALL_MASK: bool = true;

/// `XEN_EMULATE_PREFIX`: `ud2; .ascii "xen"` before an instruction (CPUID)
/// asks Xen to emulate it for a PV guest.
pub const XEN_EMULATE_PREFIX: [u8; 5] = [0x0f, 0x0b, 0x78, 0x65, 0x6e];

/// `XEN_HVM_DEBUGCONS_IOPORT`: the "port E9 hack" debug console.
pub const XEN_HVM_DEBUGCONS_IOPORT: u16 = 0xe9;

/// `VIRQ_MCA` (`arch-x86/xen-mca.h`): machine-check vIRQ for dom0 (`VIRQ_ARCH_0`).
pub const VIRQ_MCA: u32 = crate::xen::VIRQ_ARCH_0;

// ---------------------------------------------------------------------------
// HYPERVISOR_set_segment_base (xen-x86_64.h).

/// `SEGBASE_FS`: set the FS base.
pub const SEGBASE_FS: u32 = 0;
/// `SEGBASE_GS_USER`: set the user GS base.
pub const SEGBASE_GS_USER: u32 = 1;
/// `SEGBASE_GS_KERNEL`: set the kernel GS base.
pub const SEGBASE_GS_KERNEL: u32 = 2;
/// `SEGBASE_GS_USER_SEL`: load user %gs with the selector in base[15:0].
pub const SEGBASE_GS_USER_SEL: u32 = 3;

// ---------------------------------------------------------------------------
// vcpu_guest_context flags (arch-x86/xen.h, xen-x86_64.h).

/// `VGCF_I387_VALID`: `fpu_ctxt` holds valid state.
pub const VGCF_I387_VALID: u64 = 1 << 0;
/// `VGCF_IN_KERNEL`: vCPU is in guest-kernel mode.
pub const VGCF_IN_KERNEL: u64 = 1 << 2;
/// `_VGCF_i387_valid`: bit number of [`VGCF_i387_valid`].
pub const _VGCF_i387_valid: u32 = 0;
/// `VGCF_i387_valid`.
pub const VGCF_i387_valid: u64 = 1 << _VGCF_i387_valid;
/// `_VGCF_in_kernel`: bit number of [`VGCF_in_kernel`].
pub const _VGCF_in_kernel: u32 = 2;
/// `VGCF_in_kernel`.
pub const VGCF_in_kernel: u64 = 1 << _VGCF_in_kernel;
/// `_VGCF_failsafe_disables_events`.
pub const _VGCF_failsafe_disables_events: u32 = 3;
/// `VGCF_failsafe_disables_events`: mask events when entering the failsafe callback.
pub const VGCF_failsafe_disables_events: u64 = 1 << _VGCF_failsafe_disables_events;
/// `_VGCF_syscall_disables_events`.
pub const _VGCF_syscall_disables_events: u32 = 4;
/// `VGCF_syscall_disables_events`: mask events when entering the syscall callback.
pub const VGCF_syscall_disables_events: u64 = 1 << _VGCF_syscall_disables_events;
/// `_VGCF_online`.
pub const _VGCF_online: u32 = 5;
/// `VGCF_online`: vCPU is brought up by `VCPUOP_initialise` alone.
pub const VGCF_online: u64 = 1 << _VGCF_online;
/// `_VGCF_in_syscall` (x86_64): bit number of [`VGCF_in_syscall`].
pub const _VGCF_in_syscall: u32 = 8;
/// `VGCF_in_syscall`: `HYPERVISOR_iret` returns via SYSRET semantics.
pub const VGCF_in_syscall: u64 = 1 << _VGCF_in_syscall;
/// `VGCF_IN_SYSCALL`.
pub const VGCF_IN_SYSCALL: u64 = VGCF_in_syscall;

/// `xen_pfn_to_cr3`: x86_64 CR3 holds the frame number shifted by 12.
pub const fn xen_pfn_to_cr3(pfn: XenPfn) -> u64 {
    pfn << 12
}

/// `xen_cr3_to_pfn`.
pub const fn xen_cr3_to_pfn(cr3: u64) -> XenPfn {
    cr3 >> 12
}

// ---------------------------------------------------------------------------
// Structures.

/// `struct trap_info` / `trap_info_t`: one virtual IDT entry for
/// `HYPERVISOR_set_trap_table` (array terminated by `address == 0`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 0-1: DPL allowed to `int` into it; bit 2: clear event enable on entry.
    pub flags: u8,
    /// Code selector.
    pub cs: u16,
    /// Explicit padding (C aligns `address` to 8).
    pub _pad0: u32,
    /// Handler address.
    pub address: u64,
}
assert_layout!(TrapInfo, 16, vector @ 0, flags @ 1, cs @ 2, address @ 8);

impl TrapInfo {
    /// `TI_GET_DPL`.
    pub const fn dpl(&self) -> u8 {
        self.flags & 3
    }

    /// `TI_GET_IF`: non-zero when events are masked on entry (interrupt gate).
    pub const fn if_flag(&self) -> u8 {
        self.flags & 4
    }

    /// `TI_SET_DPL`: ORs like the C macro (it does not clear old bits).
    pub fn set_dpl(&mut self, dpl: u8) {
        self.flags |= dpl;
    }

    /// `TI_SET_IF`: ORs like the C macro.
    pub fn set_if(&mut self, masked: bool) {
        self.flags |= (masked as u8) << 2;
    }
}

/// `struct cpu_user_regs` (x86_64 guest view): the register frame of
/// `vcpu_guest_context`. The C anonymous unions (`rax`/`eax`) are plain `u64`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CpuUserRegs {
    /// `r15`.
    pub r15: u64,
    /// `r14`.
    pub r14: u64,
    /// `r13`.
    pub r13: u64,
    /// `r12`.
    pub r12: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `r11`.
    pub r11: u64,
    /// `r10`.
    pub r10: u64,
    /// `r9`.
    pub r9: u64,
    /// `r8`.
    pub r8: u64,
    /// `rax`.
    pub rax: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// Private to Xen.
    pub error_code: u32,
    /// Private to Xen.
    pub entry_vector: u32,
    /// `rip`.
    pub rip: u64,
    /// `cs`.
    pub cs: u16,
    /// `_pad0[1]`.
    pub _pad0: [u16; 1],
    /// Event mask saved on exception entry.
    pub saved_upcall_mask: u8,
    /// `_pad1[3]`.
    pub _pad1: [u8; 3],
    /// `rflags` (`IF == !saved_upcall_mask`).
    pub rflags: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `ss`.
    pub ss: u16,
    /// `_pad2[3]`.
    pub _pad2: [u16; 3],
    /// `es`.
    pub es: u16,
    /// `_pad3[3]`.
    pub _pad3: [u16; 3],
    /// `ds`.
    pub ds: u16,
    /// `_pad4[3]`.
    pub _pad4: [u16; 3],
    /// `fs` (non-zero takes precedence over `fs_base`).
    pub fs: u16,
    /// `_pad5[3]`.
    pub _pad5: [u16; 3],
    /// `gs` (non-zero takes precedence over `gs_base_user`).
    pub gs: u16,
    /// `_pad6[3]`.
    pub _pad6: [u16; 3],
}
assert_layout!(CpuUserRegs, 200,
    r15 @ 0, rbp @ 32, rbx @ 40, r11 @ 48, r8 @ 72, rax @ 80, rcx @ 88, rdx @ 96,
    rsi @ 104, rdi @ 112, error_code @ 120, entry_vector @ 124, rip @ 128, cs @ 136,
    saved_upcall_mask @ 140, rflags @ 144, rsp @ 152, ss @ 160, es @ 168, ds @ 176,
    fs @ 184, gs @ 192);

/// `struct iret_context` (x86_64): the frame a PV guest pushes before
/// `HYPERVISOR_iret`, lowest address (`rsp` at the hypercall) first.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct IretContext {
    /// `rax`.
    pub rax: u64,
    /// `r11`.
    pub r11: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `VGCF_in_syscall` or 0.
    pub flags: u64,
    /// `rip`.
    pub rip: u64,
    /// `cs`.
    pub cs: u64,
    /// `rflags`.
    pub rflags: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `ss`.
    pub ss: u64,
}
assert_layout!(IretContext, 72, rax @ 0, r11 @ 8, rcx @ 16, flags @ 24, rip @ 32,
    cs @ 40, rflags @ 48, rsp @ 56, ss @ 64);

/// `struct vcpu_guest_context` (x86_64 guest view, i.e. the `!__XEN__` branch
/// with `syscall_callback_eip`): argument of `VCPUOP_initialise` for PV vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct VcpuGuestContext {
    /// FXSAVE image (first so it can be 16-byte aligned).
    pub fpu_ctxt: [u8; 512],
    /// `VGCF_*`.
    pub flags: u64,
    /// User-level registers.
    pub user_regs: CpuUserRegs,
    /// Virtual IDT.
    pub trap_ctxt: [TrapInfo; 256],
    /// LDT linear address.
    pub ldt_base: u64,
    /// LDT entries.
    pub ldt_ents: u64,
    /// GDT machine frames.
    pub gdt_frames: [u64; 16],
    /// GDT entries.
    pub gdt_ents: u64,
    /// Virtual TSS SS1 (unused on x86_64 but still present).
    pub kernel_ss: u64,
    /// Virtual TSS SP1: kernel stack for ring transitions.
    pub kernel_sp: u64,
    /// CR0-CR7; ctrlreg[1] is the user page table on x86_64.
    pub ctrlreg: [u64; 8],
    /// DR0-DR7.
    pub debugreg: [u64; 8],
    /// Event upcall entry.
    pub event_callback_eip: u64,
    /// Failsafe callback entry.
    pub failsafe_callback_eip: u64,
    /// SYSCALL entry (Xen internally overlays compat CS values here).
    pub syscall_callback_eip: u64,
    /// `VMASST_TYPE_*` bitmap.
    pub vm_assist: u64,
    /// FS base.
    pub fs_base: u64,
    /// Kernel GS base.
    pub gs_base_kernel: u64,
    /// User GS base.
    pub gs_base_user: u64,
}
assert_layout!(VcpuGuestContext, 5168,
    fpu_ctxt @ 0, flags @ 512, user_regs @ 520, trap_ctxt @ 720, ldt_base @ 4816,
    ldt_ents @ 4824, gdt_frames @ 4832, gdt_ents @ 4960, kernel_ss @ 4968, kernel_sp @ 4976,
    ctrlreg @ 4984, debugreg @ 5048, event_callback_eip @ 5112, failsafe_callback_eip @ 5120,
    syscall_callback_eip @ 5128, vm_assist @ 5136, fs_base @ 5144, gs_base_kernel @ 5152,
    gs_base_user @ 5160);

/// `struct arch_vcpu_info` (x86_64): pads `vcpu_info` to 64 bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ArchVcpuInfo {
    /// Faulting address of the last page fault bounced to the guest.
    pub cr2: u64,
    /// Padding (`sizeof(vcpu_info_t) == 64`).
    pub pad: u64,
}
assert_layout!(ArchVcpuInfo, 16, cr2 @ 0, pad @ 8);

/// `struct arch_shared_info` (x86_64): P2M bookkeeping in `shared_info`.
/// No `wc_sec_hi` here: that lives in `shared_info` proper on 64-bit.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct ArchSharedInfo {
    /// Valid entries in the p2m anchored below.
    pub max_pfn: u64,
    /// MFN of the list of lists of P2M frames (0: unset, ~0: invalid, use `p2m_vaddr`).
    pub pfn_to_mfn_frame_list_list: XenPfn,
    /// NMI reason bits.
    pub nmi_reason: u64,
    /// CR3 (via `xen_pfn_to_cr3`) of the address space `p2m_vaddr` is valid in.
    pub p2m_cr3: u64,
    /// Virtual address of the linear p2m list.
    pub p2m_vaddr: u64,
    /// Seqcount of p2m mapping changes (odd: update in progress).
    pub p2m_generation: u64,
}
assert_layout!(ArchSharedInfo, 48, max_pfn @ 0, pfn_to_mfn_frame_list_list @ 8,
    nmi_reason @ 16, p2m_cr3 @ 24, p2m_vaddr @ 32, p2m_generation @ 40);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_info_flag_helpers() {
        let mut ti = TrapInfo {
            vector: 0x80,
            ..Default::default()
        };
        ti.set_dpl(3);
        ti.set_if(true);
        assert_eq!(ti.dpl(), 3);
        assert_eq!(ti.if_flag(), 4);
        assert_eq!(ti.flags, 7);
    }

    #[test]
    fn cr3_pfn_roundtrip() {
        assert_eq!(xen_pfn_to_cr3(0x1234), 0x123_4000);
        assert_eq!(xen_cr3_to_pfn(0x123_4000), 0x1234);
    }

    #[test]
    fn selectors_and_layout() {
        assert_eq!(FLAT_KERNEL_CS, 0xe033);
        assert_eq!(FLAT_KERNEL_SS, 0xe02b);
        assert_eq!(FLAT_USER_DS, 0);
        assert_eq!(MACH2PHYS_NR_ENTRIES, 0x40_0000_0000 / 8);
        assert_eq!(FIRST_RESERVED_GDT_ENTRY, 7168);
    }
}
