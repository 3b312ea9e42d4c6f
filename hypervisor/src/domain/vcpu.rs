//! A virtual CPU and the PV state Xen keeps for it (`struct pv_vcpu`).

use super::Domain;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};
use xenolith_arch::trap::TrapFrame;

/// One guest trap-table entry (`trap_info`): where to deliver a vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Handler code selector.
    pub cs: u16,
    /// Flags: bits 0-1 DPL, bit 2 "clear the event mask on delivery" (`TI_SET_IF`).
    pub flags: u8,
    /// Handler address.
    pub address: u64,
}

/// Per-vCPU paravirtual state.
pub struct PvVcpu {
    /// In guest kernel mode (else guest user mode): Xen's `TF_kernel_mode`.
    pub kernel_mode: bool,
    /// Machine frame of the kernel-mode L4 (`guest_table`).
    pub guest_table: u64,
    /// Machine frame of the user-mode L4 (`guest_table_user`), 0 if none.
    pub guest_table_user: u64,
    /// The trap table, 256 vectors.
    pub trap_table: Vec<TrapInfo>,
    /// Event upcall entry (`CALLBACKTYPE_event`).
    pub event_callback: u64,
    /// Failsafe entry (`CALLBACKTYPE_failsafe`).
    pub failsafe_callback: u64,
    /// 64-bit SYSCALL entry from guest user mode (`CALLBACKTYPE_syscall`).
    pub syscall_callback: u64,
    /// Deliver the syscall callback with events masked (`CALLBACKF_mask_events`).
    pub syscall_mask_events: bool,
    /// Kernel stack for bounces from user mode (`stack_switch`).
    pub kernel_ss: u64,
    /// Kernel stack pointer for bounces from user mode.
    pub kernel_sp: u64,
    /// FS base.
    pub fs_base: u64,
    /// GS base while in kernel mode.
    pub gs_base_kernel: u64,
    /// GS base while in user mode.
    pub gs_base_user: u64,
    /// Direct-map address of this vCPU's `vcpu_info` (in shared_info or registered elsewhere).
    pub vcpu_info: u64,
    /// Virtual I/O privilege level (`PHYSDEVOP_set_iopl`), 0-3.
    pub iopl: u32,
    /// Virtual CR2: the last page-fault address delivered.
    pub cr2: u64,
    /// Guest's virtual CR0.TS (`fpu_taskswitch`).
    pub cr0_ts: bool,
    /// Single-shot timer expiry, system time in ns (`u64::MAX`: not set).
    pub timer_deadline: u64,
    /// Periodic timer period in ns (0: off).
    pub periodic_period: u64,
    /// Next periodic expiry (`u64::MAX`: off).
    pub periodic_next: u64,
    /// Guest address of the registered runstate area (0: none).
    pub runstate_area: u64,
    /// Frame holding a registered `vcpu_info` (0: it is in shared_info).
    pub vcpu_info_mfn: u64,
    /// The guest's GDT frames (`set_gdt`), each held as a descriptor page.
    pub gdt_frames: Vec<u64>,
    /// Entries in the guest's GDT.
    pub gdt_entries: u32,
    /// Virtual debug registers DR0-DR7 (4 and 5 unused).
    pub debugreg: [u64; 8],
    /// A multicall is being processed (re-entry is refused).
    pub in_multicall: bool,
    /// The guest's view of CR4 (PAE, MCE, OSFXSR, OSXMMEXCPT initially, as Xen shows).
    pub cr4: u64,
    /// The LDT the guest set with `MMUEXT_SET_LDT`: (linear base, entries).
    pub ldt: (u64, u64),
    /// Runstate accounting: system time of the last state change.
    pub runstate_entry: u64,
    /// Nanoseconds spent running before `runstate_entry`.
    pub time_running: u64,
    /// Nanoseconds spent blocked.
    pub time_blocked: u64,
}

/// A virtual CPU.
pub struct Vcpu {
    /// vCPU id within the domain.
    pub id: u32,
    /// Owning domain (domains live for the lifetime of the machine in this version).
    pub domain: *const Domain,
    /// Guest registers while not running (the live copy is the CPU's guest frame).
    pub regs: TrapFrame,
    /// PV state.
    pub pv: PvVcpu,
    /// The physical CPU whose run queue holds this vCPU: set when it is placed, changed only
    /// when a PV vCPU migrates within its affinity (under both run queues' locks); an HVM
    /// vCPU never moves. Once placed, accessed atomically (`sched::processor`).
    pub processor: u32,
    /// Not `_VPF_down`: the vCPU may run (`VCPUOP_up`; vCPU 0 starts up).
    pub up: AtomicBool,
    /// `is_initialised`: it has a register context (from the builder or `VCPUOP_initialise`).
    pub initialised: AtomicBool,
    /// In `SCHEDOP_poll`: any event raised in the domain must wake it (Xen's `poll_mask`).
    pub polling: AtomicBool,
    /// Blocked in `SCHEDOP_block` or `SCHEDOP_poll`: runnable again once its wake condition
    /// holds (see `sched`).
    pub blocked: AtomicBool,
    /// The ports a `SCHEDOP_poll` waits for (empty: a plain block).
    pub poll_ports: Vec<u32>,
    /// A `SCHEDOP_poll` timeout (system time; `u64::MAX`: none).
    pub poll_deadline: u64,
    /// FPU/SSE/AVX state while another vCPU uses this CPU's FPU.
    pub fpu: alloc::boxed::Box<xenolith_arch::fpu::FpuArea>,
    /// Its CPU is in it (guest or hypervisor context on its behalf); cleared once the CPU has
    /// left it for the idle loop (Xen's `is_running`).
    pub running: AtomicBool,
    /// HVM state of a PVH domain's vCPU (`None` for PV).
    #[cfg(target_os = "none")]
    pub hvm: Option<alloc::boxed::Box<crate::hvm::HvmVcpu>>,
}

// SAFETY: a vCPU's non-atomic state is only touched by the CPU that runs it, or by another vCPU
// of its domain while it is down (`VCPUOP_initialise`, `register_vcpu_info`); the rest is
// atomic.
unsafe impl Send for Vcpu {}
// SAFETY: as above; shared references are only used to read immutable identity fields.
unsafe impl Sync for Vcpu {}

impl Vcpu {
    /// A fresh vCPU with empty PV state.
    pub fn new(id: u32) -> Self {
        Self {
            id,
            domain: core::ptr::null(),
            regs: TrapFrame::default(),
            pv: PvVcpu {
                kernel_mode: true,
                guest_table: 0,
                guest_table_user: 0,
                trap_table: vec![TrapInfo::default(); 256],
                event_callback: 0,
                failsafe_callback: 0,
                syscall_callback: 0,
                syscall_mask_events: false,
                kernel_ss: 0,
                kernel_sp: 0,
                fs_base: 0,
                gs_base_kernel: 0,
                gs_base_user: 0,
                vcpu_info: 0,
                iopl: 0,
                cr2: 0,
                cr0_ts: false,
                timer_deadline: u64::MAX,
                periodic_period: 0,
                periodic_next: u64::MAX,
                runstate_area: 0,
                vcpu_info_mfn: 0,
                gdt_frames: Vec::new(),
                gdt_entries: 0,
                debugreg: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
                in_multicall: false,
                cr4: 0x660,
                ldt: (0, 0),
                runstate_entry: 0,
                time_running: 0,
                time_blocked: 0,
            },
            processor: id,
            up: AtomicBool::new(false),
            initialised: AtomicBool::new(false),
            polling: AtomicBool::new(false),
            running: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            poll_ports: Vec::new(),
            poll_deadline: u64::MAX,
            fpu: alloc::boxed::Box::new(xenolith_arch::fpu::FpuArea::initial()),
            #[cfg(target_os = "none")]
            hvm: None,
        }
    }

    /// Whether the vCPU is up (may run).
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// The owning domain.
    pub fn domain(&self) -> &Domain {
        self.domain_static()
    }

    /// The owning domain, for code that keeps it beyond the vCPU borrow (domains are never
    /// freed in this version).
    pub fn domain_static(&self) -> &'static Domain {
        // SAFETY: set when the domain is created; domains are leaked, never freed.
        unsafe { &*self.domain }
    }
}
