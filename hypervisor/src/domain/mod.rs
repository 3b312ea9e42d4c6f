//! Domains and their vCPUs: identity, state, memory accounting, grant tables, and the PV
//! per-vCPU state the hypercalls manipulate.

#[cfg(target_os = "none")]
pub mod build;
#[cfg(target_os = "none")]
pub mod dom0;
pub mod domu_spec;
pub mod grants;
pub mod layout;
#[cfg(target_os = "none")]
pub mod list;
#[cfg(target_os = "none")]
pub mod registry;
#[cfg(target_os = "none")]
mod run;
#[cfg(target_os = "none")]
pub mod teardown;
pub mod vcpu;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
#[cfg(target_os = "none")]
pub use run::{
    crash, dump_guest, run_vcpu, save_segment_bases, set_cr2, set_upcall_mask, shutdown_remote,
    toggle_guest_mode, upcall_mask,
};
use spin::Mutex;
pub use vcpu::{PvVcpu, TrapInfo, Vcpu};

/// `SCHEDOP_shutdown` for the vCPU's domain.
#[cfg(target_os = "none")]
pub fn shutdown(v: &mut Vcpu, regs: &xenolith_arch::trap::TrapFrame, reason: u32) {
    run::shutdown_domain(v, regs, reason)
}

/// A shared ring page of a domU's and its event channel: the console ring
/// (`xencons_interface`) or the xenstore ring (`xenstore_domain_interface`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleRing {
    /// Machine frame of the ring page.
    pub mfn: u64,
    /// The domain's port for the console event channel.
    pub port: u32,
}

/// A domain id (`domid_t`).
pub type DomId = u16;

/// Why a domain stopped (`SHUTDOWN_*`), or that it is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DomainState {
    /// Has runnable or blocked vCPUs.
    Running,
    /// Shut down with a `SHUTDOWN_*` reason code.
    Shutdown(u32),
    /// Crashed (by the hypervisor, for a fault it could not deliver, or by `SHUTDOWN_crash`).
    Crashed,
}

impl fmt::Display for DomainState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DomainState::Running => f.write_str("running"),
            DomainState::Shutdown(r) => write!(f, "shutdown ({})", shutdown_reason_name(*r)),
            DomainState::Crashed => f.write_str("crashed"),
        }
    }
}

/// Xen's names for `SHUTDOWN_*` codes (`xen/include/public/sched.h`).
pub fn shutdown_reason_name(reason: u32) -> &'static str {
    match reason {
        0 => "poweroff",
        1 => "reboot",
        2 => "suspend",
        3 => "crash",
        4 => "watchdog",
        5 => "soft_reset",
        _ => "unknown",
    }
}

/// Mutable per-domain state.
pub struct DomainInner {
    /// Run state.
    pub state: DomainState,
    /// `VMASST_*` bits enabled with `vm_assist`.
    pub vm_assist: u64,
    /// Hypercall numbers already reported as unimplemented (to log each once).
    pub unknown_hypercalls_logged: u64,
    /// Latched PCI configuration address (port 0xcf8).
    pub pci_cf8: u32,
    /// Last CMOS index written to port 0x70.
    pub cmos_index: u8,
}

/// A domain.
pub struct Domain {
    /// Domain id.
    pub id: DomId,
    /// Name (dom0: "Domain-0").
    pub name: String,
    /// Whether it is the hardware/control domain.
    pub privileged: bool,
    /// Machine frame of `shared_info`.
    pub shared_info_mfn: u64,
    /// Pages allocated to the domain (`tot_pages`).
    pub tot_pages: u64,
    /// The allocation ceiling (`max_pages`).
    pub max_pages: u64,
    /// Highest guest frame number + 1.
    pub max_pfn: u64,
    /// Mutable state.
    pub inner: Mutex<DomainInner>,
    /// The domain shut down or crashed: its vCPUs must not run again (read on every return
    /// to the guest, so kept outside the lock).
    pub stopped: core::sync::atomic::AtomicBool,
    /// A stopped domU's memory went back to the free pool (`teardown`).
    pub relinquished: core::sync::atomic::AtomicBool,
    /// Event-channel ports.
    pub evtchn: Mutex<crate::evtchn::PortTable>,
    /// A domU's console ring, served by the hypervisor (dom0 uses `console_io`).
    pub console: Option<ConsoleRing>,
    /// A domU's xenstore ring, served by the hypervisor's store (`xenstore`).
    pub store: Option<ConsoleRing>,
    /// The grant table and the maptrack (see `grants`).
    pub grants: grants::DomainGrants,
    /// Pages gained (positive) or given away (negative) through `GNTTABOP_transfer` since the
    /// domain was built: its allocation is `tot_pages` plus this.
    pub transferred: core::sync::atomic::AtomicI64,
    /// The vCPUs, by id.
    pub vcpus: Vec<Box<Vcpu>>,
    /// HVM (PVH) state; `None` for a PV domain.
    #[cfg(target_os = "none")]
    pub hvm: Option<crate::hvm::HvmDomain>,
}

impl Domain {
    /// vCPU `id` as a raw pointer, for the code paths that may change a vCPU other than the
    /// caller (the CPU it is placed on, or a sibling while it is down under the domain lock).
    /// vCPU state is never reached through a shared reference while it changes: those paths
    /// go through this pointer only.
    pub fn vcpu_ptr(&self, id: u32) -> Option<*mut Vcpu> {
        self.vcpus
            .get(id as usize)
            .map(|b| core::ptr::from_ref::<Vcpu>(b).cast_mut())
    }

    /// Whether this is an HVM (PVH) domain.
    #[cfg(target_os = "none")]
    pub fn is_hvm(&self) -> bool {
        self.hvm.is_some()
    }

    /// The `(dN)`-style label used in log lines.
    pub fn label(&self) -> DomLabel {
        DomLabel(self.id)
    }
}

/// Formats as `dN`.
pub struct DomLabel(pub DomId);

impl fmt::Display for DomLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "d{}", self.0)
    }
}
