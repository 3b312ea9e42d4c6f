//! Xen's `struct vcpu_hvm_context` (`xen/include/public/hvm/hvm_vcpu.h`): the argument of
//! `VCPUOP_initialise` for an HVM (PVH) vCPU. `mode` selects which member of the register union
//! the hypervisor reads. xen-abi does not have it (only the PV `vcpu_guest_context`), so the
//! guest defines the layout here.

/// `VCPU_HVM_MODE_32B`: the 32-bit fields are used.
pub const VCPU_HVM_MODE_32B: u32 = 0;
/// `VCPU_HVM_MODE_64B`: the 64-bit fields are used (the vCPU starts in long mode).
pub const VCPU_HVM_MODE_64B: u32 = 1;

/// `struct vcpu_hvm_x86_32` (120 bytes). The `*_ar` fields are descriptor bits 40..=47 and
/// 52..=55 packed into 12 bits.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct VcpuHvmX86_32 {
    pub eax: u32,
    pub ecx: u32,
    pub edx: u32,
    pub ebx: u32,
    pub esp: u32,
    pub ebp: u32,
    pub esi: u32,
    pub edi: u32,
    pub eip: u32,
    pub eflags: u32,
    pub cr0: u32,
    pub cr3: u32,
    pub cr4: u32,
    pub pad1: u32,
    pub efer: u64,
    pub cs_base: u32,
    pub ds_base: u32,
    pub ss_base: u32,
    pub es_base: u32,
    pub tr_base: u32,
    pub cs_limit: u32,
    pub ds_limit: u32,
    pub ss_limit: u32,
    pub es_limit: u32,
    pub tr_limit: u32,
    pub cs_ar: u16,
    pub ds_ar: u16,
    pub ss_ar: u16,
    pub es_ar: u16,
    pub tr_ar: u16,
    pub pad2: [u16; 3],
}

/// `struct vcpu_hvm_x86_64` (112 bytes). The hypervisor sets the segments itself: flat 64-bit
/// code, flat data, a busy 64-bit TSS.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct VcpuHvmX86_64 {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rsp: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rip: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

/// The `cpu_regs` union.
#[repr(C)]
#[derive(Clone, Copy)]
pub union CpuRegs {
    pub x86_32: VcpuHvmX86_32,
    pub x86_64: VcpuHvmX86_64,
}

/// `struct vcpu_hvm_context` (128 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct VcpuHvmContext {
    pub mode: u32,
    pub pad: u32,
    pub cpu_regs: CpuRegs,
}

impl VcpuHvmContext {
    /// A `VCPU_HVM_MODE_64B` context with `regs`.
    pub fn x86_64(regs: VcpuHvmX86_64) -> Self {
        // Zero the whole union first: the 32-bit member is longer than the 64-bit one.
        let mut cpu_regs = CpuRegs {
            x86_32: VcpuHvmX86_32::default(),
        };
        cpu_regs.x86_64 = regs;
        VcpuHvmContext {
            mode: VCPU_HVM_MODE_64B,
            pad: 0,
            cpu_regs,
        }
    }

    /// A `VCPU_HVM_MODE_32B` context with `regs`.
    pub fn x86_32(regs: VcpuHvmX86_32) -> Self {
        VcpuHvmContext {
            mode: VCPU_HVM_MODE_32B,
            pad: 0,
            cpu_regs: CpuRegs { x86_32: regs },
        }
    }
}

const _: () = assert!(core::mem::size_of::<VcpuHvmX86_32>() == 120);
const _: () = assert!(core::mem::size_of::<VcpuHvmX86_64>() == 112);
const _: () = assert!(core::mem::size_of::<VcpuHvmContext>() == 128);
