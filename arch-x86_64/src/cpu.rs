//! CPU identification, control registers and MSRs.

use raw_cpuid::CpuId;

/// The CPU features the hypervisor cares about, read once per CPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    /// Vendor is AMD (or Hygon): SVM path.
    pub amd: bool,
    /// Vendor is Intel: VMX path.
    pub intel: bool,
    /// Execute-disable bit in page tables.
    pub nx: bool,
    /// 1 GiB pages.
    pub page1g: bool,
    /// Global pages.
    pub pge: bool,
    /// x2APIC mode.
    pub x2apic: bool,
    /// Invariant TSC.
    pub invariant_tsc: bool,
    /// TSC-deadline LAPIC timer mode.
    pub tsc_deadline: bool,
    /// Hardware virtualization: VMX.
    pub vmx: bool,
    /// Hardware virtualization: SVM.
    pub svm: bool,
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Initial APIC id of this CPU (CPUID leaf 1).
    pub initial_apic_id: u32,
    /// Physical address width in bits.
    pub phys_bits: u8,
}

impl Features {
    /// Reads the features of the executing CPU.
    pub fn detect() -> Self {
        let cpuid = CpuId::new();
        let mut f = Features::default();
        if let Some(v) = cpuid.get_vendor_info() {
            let s = v.as_str();
            f.amd = s == "AuthenticAMD" || s == "HygonGenuine";
            f.intel = s == "GenuineIntel";
        }
        if let Some(fi) = cpuid.get_feature_info() {
            f.pge = fi.has_pge();
            f.x2apic = fi.has_x2apic();
            f.tsc_deadline = fi.has_tsc_deadline();
            f.vmx = fi.has_vmx();
            f.initial_apic_id = u32::from(fi.initial_local_apic_id());
        }
        if let Some(ext) = cpuid.get_extended_processor_and_feature_identifiers() {
            f.nx = ext.has_execute_disable();
            f.page1g = ext.has_1gib_pages();
            f.svm = ext.has_svm();
        }
        if let Some(ext) = cpuid.get_extended_feature_info() {
            f.smep = ext.has_smep();
        }
        if let Some(apm) = cpuid.get_advanced_power_mgmt_info() {
            f.invariant_tsc = apm.has_invariant_tsc();
        }
        f.phys_bits = cpuid
            .get_processor_capacity_feature_info()
            .map(|c| c.physical_address_bits())
            .unwrap_or(36);
        f
    }
}

/// Reads a model-specific register.
///
/// # Safety
/// The MSR must exist on this CPU, or the read raises #GP.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    // SAFETY: the caller guarantees the MSR exists.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).read() }
}

/// Writes a model-specific register.
///
/// # Safety
/// The MSR must exist and the value must be valid and safe for the system state.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: the caller guarantees the write is valid.
    unsafe { x86_64::registers::model_specific::Msr::new(msr).write(value) }
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no side effects and is allowed at CPL0.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Reads CR2 (the faulting linear address of the last page fault).
pub fn read_cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads CR0.
pub fn read_cr0() -> u64 {
    let v: u64;
    // SAFETY: reading CR0 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr0", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads CR3.
pub fn read_cr3() -> u64 {
    let v: u64;
    // SAFETY: reading CR3 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr3", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Reads CR4.
pub fn read_cr4() -> u64 {
    let v: u64;
    // SAFETY: reading CR4 has no side effects.
    unsafe {
        core::arch::asm!("mov {}, cr4", out(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// Writes CR3, switching address space and flushing non-global TLB entries.
///
/// # Safety
/// `value` must point to a valid PML4 that maps the executing code, stack and all live data.
pub unsafe fn write_cr3(value: u64) {
    // SAFETY: the caller guarantees the new tables map everything in use.
    unsafe { core::arch::asm!("mov cr3, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Writes CR4.
///
/// # Safety
/// The new value must be supported by the CPU and consistent with the paging state.
pub unsafe fn write_cr4(value: u64) {
    // SAFETY: the caller guarantees the value is valid.
    unsafe { core::arch::asm!("mov cr4, {}", in(reg) value, options(nostack, preserves_flags)) };
}

/// Flushes this CPU's non-global TLB entries (reloads CR3 with its current value).
pub fn flush_tlb_local() {
    // SAFETY: rewriting CR3 with its current value only drops cached translations.
    unsafe { write_cr3(read_cr3()) };
}

/// Flushes the whole TLB, global entries included (toggles CR4.PGE when it is set).
pub fn flush_tlb_global() {
    let cr4 = read_cr4();
    if cr4 & (1 << 7) != 0 {
        // SAFETY: clearing and restoring PGE only drops cached translations.
        unsafe {
            write_cr4(cr4 & !(1 << 7));
            write_cr4(cr4);
        }
    } else {
        flush_tlb_local();
    }
}

/// Invalidates the TLB entry of one linear address.
pub fn invlpg(va: u64) {
    // SAFETY: INVLPG only drops a cached translation.
    unsafe { core::arch::asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Halts until the next interrupt, with interrupts enabled atomically (`sti; hlt`).
pub fn idle_halt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}

/// Halts forever with interrupts disabled (NMIs may still arrive and return here).
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// MSR numbers used by the hypervisor.
pub mod msr {
    /// IA32_APIC_BASE.
    pub const APIC_BASE: u32 = 0x1b;
    /// IA32_EFER.
    pub const EFER: u32 = 0xc000_0080;
    /// IA32_PAT.
    pub const PAT: u32 = 0x277;
    /// IA32_TSC_DEADLINE.
    pub const TSC_DEADLINE: u32 = 0x6e0;
    /// FS base.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS base.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// Kernel GS base (SWAPGS).
    pub const SHADOW_GS_BASE: u32 = 0xc000_0102;
}
