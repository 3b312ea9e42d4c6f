//! HVM domains (PVH): guests run in hardware-virtualized mode on AMD SVM or Intel VMX, with
//! nested paging (NPT/EPT) for their guest-physical memory, and talk to the hypervisor through
//! the Xen HVM ABI: hypercalls by VMMCALL/VMCALL through the hypercall page, HVM parameters,
//! event-channel upcalls by vector, `shared_info` mapped with `XENMEM_add_to_physmap`.
//!
//! - [`build`]: the PVH domain builder (`hvm_start_info`, memory map, special pages);
//!   [`layout`], [`acpi`]: where its boot data go and the ACPI tables.
//! - [`context`]: `VCPUOP_initialise`'s `vcpu_hvm_context` for secondary vCPUs.
//! - [`vlapic`]: the minimal x2APIC.
//! - [`run`]: the vCPU loop (enter, exit, handle, deliver events, let the scheduler switch).
//! - [`exits`]: CPUID, MSR, port I/O, XSETBV.
//! - [`hypercall`]: the HVM hypercall table and `HYPERVISOR_hvm_op`.
//! - [`xlat`]: guest-virtual accesses for `copy_{from,to}_guest` while an HVM vCPU calls.
//!
//! The vendor back-ends live in `xenolith_arch::hvm`; one binary picks SVM or VMX from CPUID.

pub mod acpi;
#[cfg(target_os = "none")]
pub mod build;
pub mod context;
#[cfg(target_os = "none")]
pub mod exits;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod layout;
#[cfg(target_os = "none")]
pub mod run;
pub mod vlapic;
#[cfg(target_os = "none")]
pub mod xlat;

#[cfg(target_os = "none")]
pub use imp::*;

#[cfg(target_os = "none")]
mod imp {
    use crate::mm::frames;
    use crate::smpboot::NR_CPUS;
    use alloc::boxed::Box;
    use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
    use spin::Mutex;
    use xenolith_arch::hvm::nested::{FrameSource, NestedTables};
    use xenolith_arch::hvm::svm::Svm;
    use xenolith_arch::hvm::vmx::Vmx;
    use xenolith_arch::layout::phys_to_virt;

    /// Which hardware virtualization this machine uses for HVM guests.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Vendor {
        /// AMD SVM with nested paging.
        Svm,
        /// Intel VMX with EPT and unrestricted guest.
        Vmx,
    }

    impl Vendor {
        /// The vendor CPUID reports (SVM first: a CPU has at most one), if any.
        pub fn detect() -> Option<Vendor> {
            if xenolith_arch::hvm::svm::detect().is_ok() {
                Some(Vendor::Svm)
            } else if xenolith_arch::hvm::vmx::detect().is_ok() {
                Some(Vendor::Vmx)
            } else {
                None
            }
        }
    }

    /// Number of HVM parameters (`HVM_NR_PARAMS`).
    pub const HVM_NR_PARAMS: usize = 39;

    /// The HVM state of a domain.
    pub struct HvmDomain {
        /// The back-end its vCPUs run on.
        pub vendor: Vendor,
        /// Guest-physical to machine translation (NPT or EPT).
        pub p2m: NestedTables,
        /// The guest-physical memory map the guest was given (also `XENMEM_memory_map`).
        pub e820: alloc::vec::Vec<layout::E820Entry>,
        /// `HVM_PARAM_*` values.
        pub params: Mutex<[u64; HVM_NR_PARAMS]>,
    }

    use super::layout;

    /// The HVM state of a vCPU.
    pub struct HvmVcpu {
        /// The back-end vCPU, created on its CPU when it first runs.
        pub arch: Option<Box<dyn xenolith_arch::hvm::Vcpu>>,
        /// Entry point and `hvm_start_info` address for the first run (PVH boot state).
        pub boot: (u32, u32),
        /// Bytes of a line the guest is writing to the debug port 0xe9.
        pub e9_line: alloc::vec::Vec<u8>,
        /// This vCPU's event upcall vector (`HVMOP_set_evtchn_upcall_vector`; 0: none).
        pub upcall_vector: u8,
        /// Its local APIC (x2APIC mode).
        pub lapic: super::vlapic::Vlapic,
        /// The state `VCPUOP_initialise` gave a secondary vCPU (else it starts at `boot`).
        pub start: Option<xenolith_arch::hvm::StartContext>,
    }

    impl HvmVcpu {
        /// vCPU `id`, starting at `entry` with `ebx = start_info`.
        pub fn new(id: u32, entry: u32, start_info: u32) -> Self {
            Self {
                lapic: super::vlapic::Vlapic::new(id),
                arch: None,
                boot: (entry, start_info),
                e9_line: alloc::vec::Vec::new(),
                upcall_vector: 0,
                start: None,
            }
        }
    }

    /// Zeroed frames for nested tables and control blocks; they stay with the structure that
    /// took them (domains are not freed in this version, so neither are these).
    pub struct HostFrames;

    impl FrameSource for HostFrames {
        fn alloc_zeroed(&mut self, order: usize) -> Option<u64> {
            let pa = frames::alloc(order)?;
            // SAFETY: fresh frames for us alone, covered by the direct map.
            unsafe { core::ptr::write_bytes(phys_to_virt(pa) as *mut u8, 0, 4096 << order) };
            Some(pa)
        }
    }

    /// The machine frame behind a frame number a guest passes in a hypercall: a PV guest
    /// passes machine frames; an HVM guest passes guest frames, translated through its
    /// nested tables. `None` if nothing is mapped there.
    pub fn machine_frame(d: &crate::domain::Domain, frame: u64) -> Option<u64> {
        match d.hvm.as_ref() {
            None => Some(frame),
            Some(h) => {
                let gpa = frame.checked_mul(4096).filter(|&a| a < 1 << 48)?;
                h.p2m.translate(gpa).map(|pa| pa >> 12)
            }
        }
    }

    /// SVM is enabled on this CPU.
    static SVM_ON: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];
    /// This CPU's VMX root operation (leaked: it lasts as long as the machine).
    static VMX_ON: [AtomicPtr<Vmx>; NR_CPUS] =
        [const { AtomicPtr::new(core::ptr::null_mut()) }; NR_CPUS];

    /// Turns on the vendor's virtualization on this CPU (once) and creates the back-end vCPU
    /// for `hv` at its PVH boot state on the domain's nested tables.
    pub fn create_arch_vcpu(
        d: &'static HvmDomain,
        boot: (u32, u32),
        start: Option<&xenolith_arch::hvm::StartContext>,
    ) -> Result<Box<dyn xenolith_arch::hvm::Vcpu>, &'static str> {
        let cpu = xenolith_arch::percpu::current().cpu as usize;
        match d.vendor {
            Vendor::Svm => {
                if !SVM_ON[cpu].load(Ordering::Relaxed) {
                    // Stays enabled for the machine's lifetime (never `disable`d).
                    Svm::enable(&mut HostFrames)?;
                    SVM_ON[cpu].store(true, Ordering::Relaxed);
                }
                let v = match start {
                    Some(ctx) => {
                        xenolith_arch::hvm::svm::SvmVcpu::new_context(&mut HostFrames, &d.p2m, ctx)
                    }
                    None => xenolith_arch::hvm::svm::SvmVcpu::new_pvh(
                        &mut HostFrames,
                        &d.p2m,
                        boot.0,
                        boot.1,
                    ),
                }
                .ok_or("no memory for the VMCB")?;
                Ok(Box::new(v))
            }
            Vendor::Vmx => {
                let mut vmx = VMX_ON[cpu].load(Ordering::Relaxed);
                if vmx.is_null() {
                    let info = xenolith_arch::hvm::vmx::detect()?;
                    vmx = Box::into_raw(Box::new(Vmx::enable(info, &mut HostFrames)?));
                    VMX_ON[cpu].store(vmx, Ordering::Relaxed);
                }
                // SAFETY: leaked above, never freed; only this CPU uses its own entry.
                let vmx = unsafe { &*vmx };
                let v = match start {
                    Some(ctx) => xenolith_arch::hvm::vmx::VmxVcpu::new_context(
                        vmx,
                        &mut HostFrames,
                        &d.p2m,
                        ctx,
                    )?,
                    None => xenolith_arch::hvm::vmx::VmxVcpu::new_pvh(
                        vmx,
                        &mut HostFrames,
                        &d.p2m,
                        boot.0,
                        boot.1,
                    )?,
                };
                Ok(Box::new(v))
            }
        }
    }
}
