//! HVM interfaces: parameters (`hvm/params.h`), the basics of
//! `HYPERVISOR_hvm_op` (`hvm/hvm_op.h`) and the HVM vCPU start state
//! (`hvm/hvm_vcpu.h`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::DomId;

// ---------------------------------------------------------------------------
// hvm_op.h

/// `HVMOP_set_param`: arg is a `xen_hvm_param`.
pub const HVMOP_set_param: u32 = 0;
/// `HVMOP_get_param`: arg is a `xen_hvm_param`.
pub const HVMOP_get_param: u32 = 1;
/// `HVMOP_set_pci_intx_level`.
pub const HVMOP_set_pci_intx_level: u32 = 2;
/// `HVMOP_set_isa_irq_level`.
pub const HVMOP_set_isa_irq_level: u32 = 3;
/// `HVMOP_set_pci_link_route`.
pub const HVMOP_set_pci_link_route: u32 = 4;
/// `HVMOP_flush_tlbs`: arg must be NULL.
pub const HVMOP_flush_tlbs: u32 = 5;
/// `HVMOP_modified_memory` (tools).
pub const HVMOP_modified_memory: u32 = 7;
/// `HVMOP_set_mem_type` (tools).
pub const HVMOP_set_mem_type: u32 = 8;
/// `HVMOP_pagetable_dying`: arg is a `xen_hvm_pagetable_dying`.
pub const HVMOP_pagetable_dying: u32 = 9;
/// `HVMOP_get_time`: arg is a `xen_hvm_get_time`.
pub const HVMOP_get_time: u32 = 10;
/// `HVMOP_xentrace`.
pub const HVMOP_xentrace: u32 = 11;
/// `HVMOP_set_mem_access` (deprecated).
pub const HVMOP_set_mem_access: u32 = 12;
/// `HVMOP_get_mem_access` (deprecated).
pub const HVMOP_get_mem_access: u32 = 13;
/// `HVMOP_inject_trap` (tools).
pub const HVMOP_inject_trap: u32 = 14;
/// `HVMOP_get_mem_type`: arg is a `xen_hvm_get_mem_type`.
pub const HVMOP_get_mem_type: u32 = 15;
/// `HVMOP_inject_msi` (tools).
pub const HVMOP_inject_msi: u32 = 16;
/// `HVMOP_set_evtchn_upcall_vector` (x86): arg is a `xen_hvm_evtchn_upcall_vector`.
pub const HVMOP_set_evtchn_upcall_vector: u32 = 23;
/// `HVMOP_guest_request_vm_event`.
pub const HVMOP_guest_request_vm_event: u32 = 24;
/// `HVMOP_altp2m`.
pub const HVMOP_altp2m: u32 = 25;

/// `HVMMEM_ram_rw` (`hvmmem_type_t`).
pub const HVMMEM_ram_rw: u16 = 0;
/// `HVMMEM_ram_ro`.
pub const HVMMEM_ram_ro: u16 = 1;
/// `HVMMEM_mmio_dm`.
pub const HVMMEM_mmio_dm: u16 = 2;
/// `HVMMEM_unused` (was `HVMMEM_mmio_write_dm` before 0x00040700).
pub const HVMMEM_unused: u16 = 3;

/// `struct xen_hvm_param` / `xen_hvm_param_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenHvmParam {
    /// IN.
    pub domid: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// IN: `HVM_PARAM_*`.
    pub index: u32,
    /// IN/OUT.
    pub value: u64,
}
assert_layout!(XenHvmParam, 16, domid @ 0, index @ 4, value @ 8);

/// `struct xen_hvm_pagetable_dying` / `xen_hvm_pagetable_dying_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenHvmPagetableDying {
    /// Domain.
    pub domid: DomId,
    /// `pad[3]`.
    pub pad: [u16; 3],
    /// Guest-physical address of the top-level page table.
    pub gpa: u64,
}
assert_layout!(XenHvmPagetableDying, 16, domid @ 0, pad @ 2, gpa @ 8);

/// `struct xen_hvm_get_time` / `xen_hvm_get_time_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenHvmGetTime {
    /// OUT: ns since boot.
    pub now: u64,
}
assert_layout!(XenHvmGetTime, 8, now @ 0);

/// `struct xen_hvm_get_mem_type` / `xen_hvm_get_mem_type_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenHvmGetMemType {
    /// Domain.
    pub domid: DomId,
    /// OUT: `HVMMEM_*`.
    pub mem_type: u16,
    /// `pad[2]`.
    pub pad: [u16; 2],
    /// IN.
    pub pfn: u64,
}
assert_layout!(XenHvmGetMemType, 16, domid @ 0, mem_type @ 2, pad @ 4, pfn @ 8);

/// `struct xen_hvm_evtchn_upcall_vector` / `xen_hvm_evtchn_upcall_vector_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenHvmEvtchnUpcallVector {
    /// vCPU.
    pub vcpu: u32,
    /// Vector to deliver upcalls on.
    pub vector: u8,
    /// Tail padding.
    pub _pad0: [u8; 3],
}
assert_layout!(XenHvmEvtchnUpcallVector, 8, vcpu @ 0, vector @ 4);

// ---------------------------------------------------------------------------
// params.h

/// `HVM_PARAM_CALLBACK_IRQ`: how vCPU0 event notifications are delivered.
pub const HVM_PARAM_CALLBACK_IRQ: u32 = 0;
/// `HVM_PARAM_CALLBACK_IRQ_TYPE_MASK`: type lives in value[63:56].
pub const HVM_PARAM_CALLBACK_IRQ_TYPE_MASK: u64 = 0xFF00_0000_0000_0000;
/// `HVM_PARAM_CALLBACK_TYPE_GSI`: value[55:0] is a GSI (not 0).
pub const HVM_PARAM_CALLBACK_TYPE_GSI: u64 = 0;
/// `HVM_PARAM_CALLBACK_TYPE_PCI_INTX`: value encodes domain/bus/devfn/INTx.
pub const HVM_PARAM_CALLBACK_TYPE_PCI_INTX: u64 = 1;
/// `HVM_PARAM_CALLBACK_TYPE_VECTOR` (x86): value[7:0] is a vector.
pub const HVM_PARAM_CALLBACK_TYPE_VECTOR: u64 = 2;

/// The `HVM_PARAM_CALLBACK_TYPE_*` of a `HVM_PARAM_CALLBACK_IRQ` value.
pub const fn hvm_callback_type(value: u64) -> u64 {
    (value & HVM_PARAM_CALLBACK_IRQ_TYPE_MASK) >> 56
}

/// `HVM_PARAM_STORE_PFN`.
pub const HVM_PARAM_STORE_PFN: u32 = 1;
/// `HVM_PARAM_STORE_EVTCHN`.
pub const HVM_PARAM_STORE_EVTCHN: u32 = 2;
/// `HVM_PARAM_PAE_ENABLED`.
pub const HVM_PARAM_PAE_ENABLED: u32 = 4;
/// `HVM_PARAM_IOREQ_PFN`.
pub const HVM_PARAM_IOREQ_PFN: u32 = 5;
/// `HVM_PARAM_BUFIOREQ_PFN`.
pub const HVM_PARAM_BUFIOREQ_PFN: u32 = 6;
/// `HVM_PARAM_VIRIDIAN` (x86).
pub const HVM_PARAM_VIRIDIAN: u32 = 9;
/// `HVM_PARAM_TIMER_MODE`.
pub const HVM_PARAM_TIMER_MODE: u32 = 10;
/// `HVM_PARAM_HPET_ENABLED`.
pub const HVM_PARAM_HPET_ENABLED: u32 = 11;
/// `HVM_PARAM_IDENT_PT`.
pub const HVM_PARAM_IDENT_PT: u32 = 12;
/// `HVM_PARAM_DM_DOMAIN`: deprecated, tools only.
pub const HVM_PARAM_DM_DOMAIN: u32 = 13;
/// `HVM_PARAM_ACPI_S_STATE`.
pub const HVM_PARAM_ACPI_S_STATE: u32 = 14;
/// `HVM_PARAM_VM86_TSS`.
pub const HVM_PARAM_VM86_TSS: u32 = 15;
/// `HVM_PARAM_VPT_ALIGN`.
pub const HVM_PARAM_VPT_ALIGN: u32 = 16;
/// `HVM_PARAM_CONSOLE_PFN`.
pub const HVM_PARAM_CONSOLE_PFN: u32 = 17;
/// `HVM_PARAM_CONSOLE_EVTCHN`.
pub const HVM_PARAM_CONSOLE_EVTCHN: u32 = 18;
/// `HVM_PARAM_ACPI_IOPORTS_LOCATION`.
pub const HVM_PARAM_ACPI_IOPORTS_LOCATION: u32 = 19;
/// `HVM_PARAM_MEMORY_EVENT_CR0` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_CR0: u32 = 20;
/// `HVM_PARAM_MEMORY_EVENT_CR3` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_CR3: u32 = 21;
/// `HVM_PARAM_MEMORY_EVENT_CR4` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_CR4: u32 = 22;
/// `HVM_PARAM_MEMORY_EVENT_INT3` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_INT3: u32 = 23;
/// `HVM_PARAM_NESTEDHVM`.
pub const HVM_PARAM_NESTEDHVM: u32 = 24;
/// `HVM_PARAM_MEMORY_EVENT_SINGLE_STEP` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_SINGLE_STEP: u32 = 25;
/// `HVM_PARAM_BUFIOREQ_EVTCHN`: deprecated, tools only.
pub const HVM_PARAM_BUFIOREQ_EVTCHN: u32 = 26;
/// `HVM_PARAM_PAGING_RING_PFN`.
pub const HVM_PARAM_PAGING_RING_PFN: u32 = 27;
/// `HVM_PARAM_MONITOR_RING_PFN`.
pub const HVM_PARAM_MONITOR_RING_PFN: u32 = 28;
/// `HVM_PARAM_SHARING_RING_PFN`.
pub const HVM_PARAM_SHARING_RING_PFN: u32 = 29;
/// `HVM_PARAM_MEMORY_EVENT_MSR` (deprecated).
pub const HVM_PARAM_MEMORY_EVENT_MSR: u32 = 30;
/// `HVM_PARAM_TRIPLE_FAULT_REASON`: `SHUTDOWN_*` on triple fault.
pub const HVM_PARAM_TRIPLE_FAULT_REASON: u32 = 31;
/// `HVM_PARAM_IOREQ_SERVER_PFN`.
pub const HVM_PARAM_IOREQ_SERVER_PFN: u32 = 32;
/// `HVM_PARAM_NR_IOREQ_SERVER_PAGES`.
pub const HVM_PARAM_NR_IOREQ_SERVER_PAGES: u32 = 33;
/// `HVM_PARAM_VM_GENERATION_ID_ADDR`.
pub const HVM_PARAM_VM_GENERATION_ID_ADDR: u32 = 34;
/// `HVM_PARAM_ALTP2M`.
pub const HVM_PARAM_ALTP2M: u32 = 35;
/// `HVM_PARAM_X87_FIP_WIDTH`.
pub const HVM_PARAM_X87_FIP_WIDTH: u32 = 36;
/// `HVM_PARAM_VM86_TSS_SIZED`.
pub const HVM_PARAM_VM86_TSS_SIZED: u32 = 37;
/// `HVM_PARAM_MCA_CAP`.
pub const HVM_PARAM_MCA_CAP: u32 = 38;
/// `HVM_NR_PARAMS`.
pub const HVM_NR_PARAMS: u32 = 39;

/// `HVMPTM_delay_for_missed_ticks`.
pub const HVMPTM_delay_for_missed_ticks: u64 = 0;
/// `HVMPTM_no_delay_for_missed_ticks`.
pub const HVMPTM_no_delay_for_missed_ticks: u64 = 1;
/// `HVMPTM_no_missed_ticks_pending`.
pub const HVMPTM_no_missed_ticks_pending: u64 = 2;
/// `HVMPTM_one_missed_tick_pending`.
pub const HVMPTM_one_missed_tick_pending: u64 = 3;

/// `XEN_ALTP2M_disabled`.
pub const XEN_ALTP2M_disabled: u64 = 0;
/// `XEN_ALTP2M_mixed`.
pub const XEN_ALTP2M_mixed: u64 = 1;
/// `XEN_ALTP2M_external`.
pub const XEN_ALTP2M_external: u64 = 2;
/// `XEN_ALTP2M_limited`.
pub const XEN_ALTP2M_limited: u64 = 3;

/// `XEN_HVM_MCA_CAP_LMCE`.
pub const XEN_HVM_MCA_CAP_LMCE: u64 = 1 << 0;
/// `XEN_HVM_MCA_CAP_MASK`.
pub const XEN_HVM_MCA_CAP_MASK: u64 = XEN_HVM_MCA_CAP_LMCE;

// ---------------------------------------------------------------------------
// hvm_vcpu.h

/// `VCPU_HVM_MODE_32B`: `cpu_regs.x86_32` is used.
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: `cpu_regs.x86_64` is used (the vCPU starts in long mode).
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_32`: a vCPU started in 32-bit mode with the segments given.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuHvmX86_32 {
    /// `eax`.
    pub eax: u32,
    /// `ecx`.
    pub ecx: u32,
    /// `edx`.
    pub edx: u32,
    /// `ebx`.
    pub ebx: u32,
    /// `esp`.
    pub esp: u32,
    /// `ebp`.
    pub ebp: u32,
    /// `esi`.
    pub esi: u32,
    /// `edi`.
    pub edi: u32,
    /// `eip`.
    pub eip: u32,
    /// `eflags`.
    pub eflags: u32,
    /// `cr0`.
    pub cr0: u32,
    /// `cr3`.
    pub cr3: u32,
    /// `cr4`.
    pub cr4: u32,
    /// Must be zero.
    pub pad1: u32,
    /// `efer`.
    pub efer: u64,
    /// `cs_base`.
    pub cs_base: u32,
    /// `ds_base`.
    pub ds_base: u32,
    /// `ss_base`.
    pub ss_base: u32,
    /// `es_base`.
    pub es_base: u32,
    /// `tr_base`.
    pub tr_base: u32,
    /// `cs_limit`.
    pub cs_limit: u32,
    /// `ds_limit`.
    pub ds_limit: u32,
    /// `ss_limit`.
    pub ss_limit: u32,
    /// `es_limit`.
    pub es_limit: u32,
    /// `tr_limit`.
    pub tr_limit: u32,
    /// `cs_ar`: descriptor bits 40..=47 and 52..=55 packed into 12 bits.
    pub cs_ar: u16,
    /// `ds_ar`: descriptor bits 40..=47 and 52..=55 packed into 12 bits.
    pub ds_ar: u16,
    /// `ss_ar`: descriptor bits 40..=47 and 52..=55 packed into 12 bits.
    pub ss_ar: u16,
    /// `es_ar`: descriptor bits 40..=47 and 52..=55 packed into 12 bits.
    pub es_ar: u16,
    /// `tr_ar`: descriptor bits 40..=47 and 52..=55 packed into 12 bits.
    pub tr_ar: u16,
    /// Must be zero.
    pub pad2: [u16; 3],
}
assert_layout!(VcpuHvmX86_32, 120, eax @ 0, eip @ 32, eflags @ 36, cr0 @ 40, cr3 @ 44, cr4 @ 48,
    pad1 @ 52, efer @ 56, cs_base @ 64, tr_base @ 80, cs_limit @ 84, tr_limit @ 100, cs_ar @ 104,
    tr_ar @ 112, pad2 @ 114);

/// `struct vcpu_hvm_x86_64`: a vCPU started in long mode; the hypervisor sets the segments
/// itself (flat 64-bit code, flat data, a busy 64-bit TSS).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuHvmX86_64 {
    /// `rax`.
    pub rax: u64,
    /// `rcx`.
    pub rcx: u64,
    /// `rdx`.
    pub rdx: u64,
    /// `rbx`.
    pub rbx: u64,
    /// `rsp`.
    pub rsp: u64,
    /// `rbp`.
    pub rbp: u64,
    /// `rsi`.
    pub rsi: u64,
    /// `rdi`.
    pub rdi: u64,
    /// `rip`.
    pub rip: u64,
    /// `rflags`.
    pub rflags: u64,
    /// `cr0`.
    pub cr0: u64,
    /// `cr3`.
    pub cr3: u64,
    /// `cr4`.
    pub cr4: u64,
    /// `efer`.
    pub efer: u64,
}
assert_layout!(VcpuHvmX86_64, 112, rax @ 0, rip @ 64, rflags @ 72, cr0 @ 80, cr3 @ 88,
    cr4 @ 96, efer @ 104);

/// `struct vcpu_hvm_context` / `vcpu_hvm_context_t`, the `VCPUOP_initialise` argument of an
/// HVM vCPU. The union `cpu_regs` is 120 raw bytes (its larger member, `x86_32`; 8-aligned);
/// [`Self::x86_32`] and [`Self::x86_64`] read it as either member.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuHvmContext {
    /// `VCPU_HVM_MODE_*`.
    pub mode: u32,
    /// Must be zero.
    pub pad: u32,
    /// `union { struct vcpu_hvm_x86_32 x86_32; struct vcpu_hvm_x86_64 x86_64; }`, raw.
    pub cpu_regs: [u64; 15],
}
assert_layout!(VcpuHvmContext, 128, mode @ 0, pad @ 4, cpu_regs @ 8);

impl VcpuHvmContext {
    /// A [`VCPU_HVM_MODE_32B`] context with `regs`.
    pub fn from_x86_32(regs: &VcpuHvmX86_32) -> Self {
        let mut ctx = Self {
            mode: VCPU_HVM_MODE_32B,
            ..Self::default()
        };
        ctx.cpu_regs.as_mut_bytes().copy_from_slice(regs.as_bytes());
        ctx
    }

    /// A [`VCPU_HVM_MODE_64B`] context with `regs` (the rest of the union zero).
    pub fn from_x86_64(regs: &VcpuHvmX86_64) -> Self {
        let mut ctx = Self {
            mode: VCPU_HVM_MODE_64B,
            ..Self::default()
        };
        let b = regs.as_bytes();
        ctx.cpu_regs.as_mut_bytes()[..b.len()].copy_from_slice(b);
        ctx
    }

    /// `cpu_regs.x86_32` (a copy).
    pub fn x86_32(&self) -> VcpuHvmX86_32 {
        VcpuHvmX86_32::read_from_bytes(self.cpu_regs.as_bytes()).unwrap_or_default()
    }

    /// `cpu_regs.x86_64` (a copy).
    pub fn x86_64(&self) -> VcpuHvmX86_64 {
        VcpuHvmX86_64::read_from_prefix(self.cpu_regs.as_bytes())
            .map(|(r, _)| r)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_type() {
        let v = (HVM_PARAM_CALLBACK_TYPE_VECTOR << 56) | 0xf3;
        assert_eq!(hvm_callback_type(v), HVM_PARAM_CALLBACK_TYPE_VECTOR);
        assert_eq!(v & 0xff, 0xf3);
    }

    #[test]
    fn vcpu_hvm_context_union() {
        let r64 = VcpuHvmX86_64 {
            rip: 0x1000,
            efer: 0x500,
            ..VcpuHvmX86_64::default()
        };
        let c = VcpuHvmContext::from_x86_64(&r64);
        assert_eq!(c.mode, VCPU_HVM_MODE_64B);
        assert_eq!(c.x86_64(), r64);
        assert_eq!(&c.as_bytes()[8 + 64..8 + 72], &0x1000u64.to_ne_bytes());
        let r32 = VcpuHvmX86_32 {
            eip: 0x2000,
            tr_ar: 0x89,
            ..VcpuHvmX86_32::default()
        };
        let c = VcpuHvmContext::from_x86_32(&r32);
        assert_eq!(c.mode, VCPU_HVM_MODE_32B);
        assert_eq!(c.x86_32(), r32);
        assert_eq!(&c.as_bytes()[8 + 112..8 + 114], &0x89u16.to_ne_bytes());
    }
}
