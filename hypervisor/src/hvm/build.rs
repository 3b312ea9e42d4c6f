//! Building a PVH domain (Xen's `dom0_construct_pvh` for dom0, libxl's PVH build for a domU):
//! RAM at guest-physical 0 behind nested page tables, the kernel at its ELF physical
//! addresses, `hvm_start_info` with the command line, modules and memory map, and vCPU 0 at
//! the `XEN_ELFNOTE_PHYS32_ENTRY` point in 32-bit protected mode.

use super::layout::{CONSOLE_PFN, PAGE, PvhLayout, STORE_PFN};
use super::{HVM_NR_PARAMS, HostFrames, HvmDomain, HvmVcpu, Vendor};
use crate::domain::build::{BuildError, DomainConfig, allocate, new_shared_info};
use crate::domain::{ConsoleRing, Domain, DomainInner, DomainState, Vcpu};
use crate::loader::LoadedKernel;
use crate::mm::{frametable, m2p};
use crate::pvmm::{FrameEnv, PageInfo};
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use spin::Mutex;
use xen_abi::hvm::{
    HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN, HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN,
};
use xen_abi::xen::{SIF_INITDOMAIN, SIF_PRIVILEGED};
use xenolith_arch::hvm::nested::NestedTables;

/// Builds a PVH domain from `kernel` (which has a PHYS32 entry) with `modules` (an initrd).
pub fn build_pvh(
    kernel: &LoadedKernel<'_>,
    modules: &[&[u8]],
    cmdline: &str,
    cfg: &DomainConfig<'_>,
) -> Result<&'static mut Domain, BuildError> {
    let entry = kernel.info.phys32_entry.ok_or(BuildError::Hvm(
        "the kernel has no XEN_ELFNOTE_PHYS32_ENTRY",
    ))?;
    let vendor = Vendor::detect().ok_or(BuildError::Hvm("neither SVM nor VMX is available"))?;
    let (nr_pages, id) = (cfg.nr_pages, cfg.id);
    let lens: Vec<u64> = modules.iter().map(|m| m.len() as u64).collect();
    let layout = PvhLayout::compute(
        nr_pages * PAGE,
        kernel.paddr_end,
        cmdline.len() as u64,
        &lens,
    )
    .map_err(|e| match e {
        super::layout::LayoutError::TooSmall => BuildError::TooSmall,
        super::layout::LayoutError::TooLarge => {
            BuildError::Hvm("more memory than fits below the MMIO hole (3840 MiB)")
        }
    })?;
    for s in &kernel.segments {
        if s.paddr.saturating_add(s.memsz) > layout.ram {
            return Err(BuildError::SegmentOutside(s.paddr));
        }
    }
    let p2m = match vendor {
        Vendor::Svm => xenolith_arch::hvm::svm::npt(&mut HostFrames),
        Vendor::Vmx => xenolith_arch::hvm::vmx::ept(&mut HostFrames),
    }
    .ok_or(BuildError::NoMemory)?;
    let ram = allocate(nr_pages)?;
    {
        let mut env = frametable::lock();
        for (pfn, &mfn) in ram.iter().enumerate() {
            m2p::set(mfn, pfn as u64);
            if let Some(p) = env.page_mut(mfn) {
                *p = PageInfo::assigned(id);
            }
        }
    }
    map_ram(&p2m, &ram)?;
    for s in &kernel.segments {
        write(&p2m, s.paddr, kernel.segment_data(s))?;
    }
    for (m, &at) in modules.iter().zip(&layout.modules) {
        write(&p2m, at, m)?;
    }
    // Xen 4.17 gives its PVH dom0 a version-0 start_info (memory map by hypercall); libxl
    // gives a domU version 1 with the memory map. Both get ACPI tables.
    let version = if cfg.privileged { 0 } else { 1 };
    let mut si = layout.start_info_bytes(modules.len() as u32, version);
    if cfg.privileged {
        si[8..12].copy_from_slice(&(SIF_PRIVILEGED | SIF_INITDOMAIN).to_le_bytes());
    }
    write(
        &p2m,
        layout.acpi,
        &super::acpi::tables(layout.acpi, cfg.nr_vcpus),
    )?;
    write(&p2m, layout.start_info, &si)?;
    write(&p2m, layout.modlist, &layout.modlist_bytes(&lens))?;
    write(&p2m, layout.memmap, &layout.memmap_bytes())?;
    let mut line = Vec::from(cmdline.as_bytes());
    line.push(0);
    write(&p2m, layout.cmdline, &line)?;

    let shared_info = new_shared_info()?;
    if let Some(p) = frametable::lock().page_mut(shared_info >> 12) {
        *p = PageInfo::xen_shared(id, true);
    }
    let mut params = [0u64; HVM_NR_PARAMS];
    let mut ports = crate::evtchn::PortTable::new(cfg.nr_vcpus);
    let (mut console, mut store) = (None, None);
    if !cfg.privileged {
        // The xenstore and console rings in the special-page window, their ports unbound
        // and offered to dom0, as libxl sets them up (xenstore's port first).
        let offer = crate::evtchn::PortState::Unbound { remote: 0 };
        for (pfn, pfn_param, port_param, slot) in [
            (
                STORE_PFN,
                HVM_PARAM_STORE_PFN,
                HVM_PARAM_STORE_EVTCHN,
                &mut store,
            ),
            (
                CONSOLE_PFN,
                HVM_PARAM_CONSOLE_PFN,
                HVM_PARAM_CONSOLE_EVTCHN,
                &mut console,
            ),
        ] {
            let mfn = allocate(1)?[0];
            if let Some(p) = frametable::lock().page_mut(mfn) {
                *p = PageInfo::assigned(id);
            }
            p2m.map(&mut HostFrames, pfn * PAGE, mfn * PAGE, PAGE)
                .map_err(|_| BuildError::NoMemory)?;
            let port = ports.alloc(offer).map_err(|_| BuildError::NoMemory)?;
            params[pfn_param as usize] = pfn;
            params[port_param as usize] = u64::from(port);
            *slot = Some(ConsoleRing { mfn, port });
        }
    }
    let grants = crate::domain::grants::DomainGrants::new(
        id,
        cfg.nr_vcpus,
        crate::domain::grants::config_from(&crate::options::gnttab_booted()),
    )
    .map_err(BuildError::GrantTable)?;
    let d = Box::leak(Box::new(Domain {
        id,
        name: String::from(cfg.name),
        privileged: cfg.privileged,
        shared_info_mfn: shared_info >> 12,
        tot_pages: nr_pages,
        max_pages: cfg.max_pages,
        max_pfn: nr_pages,
        inner: Mutex::new(DomainInner {
            state: DomainState::Running,
            vm_assist: 0,
            unknown_hypercalls_logged: 0,
            pci_cf8: 0,
            cmos_index: 0,
        }),
        stopped: AtomicBool::new(false),
        relinquished: AtomicBool::new(false),
        evtchn: Mutex::new(ports),
        console,
        store,
        grants,
        transferred: AtomicI64::new(0),
        vcpus: Vec::new(),
        hvm: Some(HvmDomain {
            vendor,
            p2m,
            e820: layout.e820.clone(),
            params: Mutex::new(params),
        }),
    }));
    let vcpu_info = xenolith_arch::layout::phys_to_virt(shared_info);
    for vid in 0..cfg.nr_vcpus {
        let mut v = Box::new(Vcpu::new(vid));
        v.domain = d as *const Domain;
        if vid < 32 {
            v.pv.vcpu_info = vcpu_info + u64::from(vid) * 64;
        }
        // Secondary vCPUs start down; bringing them up (`VCPUOP_initialise` with a
        // `vcpu_hvm_context`) is not supported yet, so they stay down.
        let boot = if vid == 0 {
            (entry, layout.start_info as u32)
        } else {
            (0, 0)
        };
        v.hvm = Some(Box::new(HvmVcpu::new(vid, boot.0, boot.1)));
        if vid == 0 {
            v.initialised.store(true, Ordering::Relaxed);
            v.up.store(true, Ordering::Release);
        }
        d.vcpus.push(v);
    }
    Ok(d)
}

/// Maps the domain's RAM frames `ram` (pfn order) at guest-physical 0, one 4 KiB leaf each:
/// the guest may later replace or remove any single page (`add_to_physmap`,
/// `decrease_reservation`), which a 2 MiB leaf would not allow without splitting.
fn map_ram(p2m: &NestedTables, ram: &[u64]) -> Result<(), BuildError> {
    for (gfn, &mfn) in ram.iter().enumerate() {
        p2m.map(&mut HostFrames, gfn as u64 * PAGE, mfn * PAGE, PAGE)
            .map_err(|_| BuildError::NoMemory)?;
    }
    Ok(())
}

/// Writes `bytes` at guest-physical `gpa` of the domain being built.
fn write(p2m: &NestedTables, gpa: u64, bytes: &[u8]) -> Result<(), BuildError> {
    if p2m.write(gpa, bytes) {
        Ok(())
    } else {
        Err(BuildError::TooSmall)
    }
}
