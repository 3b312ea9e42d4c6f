//! Starting dom0 from the first boot module (the second, if present, is its initrd).

use super::build::{self, KernelImage, Segment};
use crate::loader::xen_notes;
use crate::options::{self, Options};
use crate::printk;
use alloc::string::String;
use alloc::vec::Vec;
use xenolith_arch::layout::phys_to_virt;
use xenolith_boot::BootInfo;

/// The bytes of a boot module (reserved from the frame allocator, reachable in the direct map).
fn module_bytes(m: &xenolith_boot::Module) -> &'static [u8] {
    // SAFETY: module memory is excluded from the frame allocator and never freed, and the
    // direct map covers the low 4 GiB where loaders place modules.
    unsafe {
        core::slice::from_raw_parts(
            phys_to_virt(m.start) as *const u8,
            (m.end - m.start) as usize,
        )
    }
}

/// Builds dom0 and runs its vCPU 0 on this CPU. Returns only if dom0 cannot be built (the
/// reason is printed; the hypervisor stays up).
pub fn start(boot: &BootInfo, opts: &Options, available_bytes: u64) {
    let Some(kmod) = boot.modules.first() else {
        return;
    };
    printk!("*** Building a PV Dom0 ***\n");
    let image = module_bytes(kmod);
    let loaded = match crate::loader::inspect(image) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    printk!(
        "Dom0 kernel: {:?}, 64-bit, lsb, paddr {:#x} -> {:#x}\n",
        loaded.format,
        loaded.paddr_start,
        loaded.paddr_end
    );
    let info = &loaded.info;
    let segments: Vec<Segment<'_>> = loaded
        .segments
        .iter()
        .map(|seg| Segment {
            va: seg.dest,
            data: loaded.segment_data(seg),
            memsz: seg.memsz,
        })
        .collect();
    let kernel = KernelImage {
        segments,
        entry: info.entry,
        virt_base: info.virt_base,
        virt_kend: info.virt_kend,
        p2m_base: info.init_p2m,
        unmapped_initrd: info.mod_start_pfn,
        hypercall_page: info.hypercall_page,
        pae: info.pae_mode != xen_notes::PaeMode::No,
        pae_extended_cr3: info.pae_mode == xen_notes::PaeMode::ExtendedCr3,
    };
    let initrd = boot.modules.get(1).map(module_bytes);
    let mut cmdline = String::from(options::cook_cmdline(
        &kmod.cmdline,
        boot.loader_name.as_deref(),
    ));
    if !opts.dom0_extra.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&opts.dom0_extra);
    }
    let nr_pages = opts.dom0_mem.resolve(available_bytes) / 4096;
    let cpus = crate::smpboot::online_cpus();
    let nr_vcpus = nr_vcpus(opts, cpus.len() as u32);
    let d = match build::build_dom0(&kernel, initrd, &cmdline, nr_pages, nr_vcpus) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    printk!("Dom0 has maximum {nr_vcpus} VCPUs\n");
    printk!("Initial low memory virq threshold set at 0x4000 pages.\n");
    printk!("*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\n");
    // vCPU n runs on the n-th online CPU, pinned (whatever `dom0_vcpus_pin` says: there is no
    // migration yet). CPU 0 runs vCPU 0; the others wait in their idle loops for VCPUOP_up.
    for (v, &cpu) in d.vcpus.iter_mut().zip(cpus.iter()) {
        v.processor = cpu;
        // SAFETY: the domain is leaked ('static); each vCPU is handed to exactly one CPU.
        let v: &'static mut super::Vcpu = unsafe { &mut *(&mut **v as *mut super::Vcpu) };
        crate::sched::place(v);
    }
    crate::sched::idle_loop()
}

/// Dom0's vCPU count: `dom0_max_vcpus` applied to the online CPUs as Xen does, then capped at
/// one vCPU per online CPU, since vCPUs are pinned one per CPU until the scheduler can share
/// a CPU between vCPUs.
fn nr_vcpus(opts: &Options, online: u32) -> u32 {
    let want = opts.dom0_max_vcpus.resolve(online).max(1);
    if want > online {
        printk!(
            "Dom0: {want} vCPUs requested but only {online} CPUs online; dom0 gets {online} \
             (one vCPU per CPU until vCPUs can share a CPU)\n"
        );
    }
    want.min(online.max(1))
}

fn fail(e: &dyn core::fmt::Display) {
    printk!("Could not set up DOM0 guest OS: {e}\n");
}
