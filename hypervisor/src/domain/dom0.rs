//! Starting the boot-time domains: dom0 from the first boot module (the second, if it is not a
//! domU description, is its initrd), then every domU described by a later module.

use super::build::{self, KernelImage, Segment};
use super::domu_spec::{self, DomuSpec};
use crate::loader::{LoadedKernel, xen_notes};
use crate::options::{self, Options};
use crate::printk;
use crate::sched::CpuMask;
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

/// What the builder needs of a checked kernel.
fn kernel_image<'a>(loaded: &'a LoadedKernel<'_>) -> KernelImage<'a> {
    let info = &loaded.info;
    KernelImage {
        segments: loaded
            .segments
            .iter()
            .map(|seg| Segment {
                va: seg.dest,
                data: loaded.segment_data(seg),
                memsz: seg.memsz,
            })
            .collect(),
        entry: info.entry,
        virt_base: info.virt_base,
        virt_kend: info.virt_kend,
        p2m_base: info.init_p2m,
        unmapped_initrd: info.mod_start_pfn,
        hypercall_page: info.hypercall_page,
        pae: info.pae_mode != xen_notes::PaeMode::No,
        pae_extended_cr3: info.pae_mode == xen_notes::PaeMode::ExtendedCr3,
    }
}

/// Builds dom0 and the boot-time domUs and enters this CPU's idle loop, which runs dom0's
/// vCPU 0. Returns only if dom0 cannot be built (the reason is printed; the hypervisor stays
/// up).
pub fn start(boot: &BootInfo, opts: &Options, available_bytes: u64) {
    let Some(kmod) = boot.modules.first() else {
        return;
    };
    let cooked: Vec<String> = boot
        .modules
        .iter()
        .map(|m| {
            String::from(options::cook_cmdline(
                &m.cmdline,
                boot.loader_name.as_deref(),
            ))
        })
        .collect();
    if opts.dom0_pvh {
        return start_pvh(boot, opts, available_bytes, &cooked);
    }
    printk!("*** Building a PV Dom0 ***\n");
    let loaded = match crate::loader::inspect(module_bytes(kmod)) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    printk!(
        "Dom0 kernel: {:?}, 64-bit, lsb, paddr {:#x} -> {:#x}\n",
        loaded.format,
        loaded.paddr_start,
        loaded.paddr_end
    );
    let kernel = kernel_image(&loaded);
    let dom0_initrd = boot
        .modules
        .get(1)
        .filter(|_| !domu_spec::is_domu(&cooked[1]));
    let initrd = dom0_initrd.map(module_bytes);
    let cmdline = dom0_cmdline(&cooked[0], opts);
    let cfg = dom0_config(opts, available_bytes);
    let d = match build::build_pv(&kernel, initrd, &cmdline, &cfg) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    drop(loaded);
    run_boot_domains(boot, &cooked, d, dom0_initrd.is_some(), opts.dom0_vcpus_pin)
}

/// Dom0's command line: its module's, plus what follows ` -- ` on Xen's.
fn dom0_cmdline(module_cmdline: &str, opts: &Options) -> String {
    let mut cmdline = String::from(module_cmdline);
    if !opts.dom0_extra.is_empty() {
        cmdline.push(' ');
        cmdline.push_str(&opts.dom0_extra);
    }
    cmdline
}

/// Dom0's size from `dom0_mem` and `dom0_max_vcpus`.
fn dom0_config(opts: &Options, available_bytes: u64) -> build::DomainConfig<'static> {
    // What the hypervisor still allocates once dom0 has its memory (shared_info pages, vCPU
    // state, domUs' bookkeeping) stays out of what `dom0_mem` may take, as Xen keeps its own
    // allocations out of `avail` in `dom0_compute_nr_pages`.
    const HYPERVISOR_RESERVE: u64 = 8 << 20;
    let nr_pages = opts
        .dom0_mem
        .resolve(available_bytes.saturating_sub(HYPERVISOR_RESERVE))
        / 4096;
    let cpus = crate::smpboot::online_cpus();
    build::DomainConfig {
        id: 0,
        name: "Domain-0",
        privileged: true,
        nr_pages,
        // Dom0 may grow without limit unless `dom0_mem=max:` says otherwise (Xen: ~0U).
        max_pages: u64::from(u32::MAX),
        nr_vcpus: opts.dom0_max_vcpus.resolve(cpus.len() as u32).max(1),
    }
}

/// Registers the built dom0 `d`, places its vCPUs (each pinned to its CPU with
/// `dom0_vcpus_pin`, `pin`), starts the domUs and runs this CPU's share of them; does not
/// return.
fn run_boot_domains(
    boot: &BootInfo,
    cooked: &[String],
    d: &'static mut super::Domain,
    dom0_has_initrd: bool,
    pin: bool,
) -> ! {
    printk!("Dom0 has maximum {} VCPUs\n", d.vcpus.len());
    printk!("Initial low memory virq threshold set at 0x4000 pages.\n");
    printk!("*** Serial input to DOM0 (type 'CTRL-a' three times to switch input)\n");
    // vCPUs go round-robin over the online CPUs (dom0's vCPU n on the n-th CPU), each on the
    // next CPU its affinity allows.
    let mut free_cpus = crate::smpboot::online_cpus().into_iter().cycle();
    super::registry::insert(register(d));
    let affinity = if pin {
        Affinity::PinToPlacement
    } else {
        Affinity::Cpus(CpuMask::all())
    };
    place(d, &mut free_cpus, affinity);
    let first_domu = if dom0_has_initrd { 2 } else { 1 };
    start_domus(boot, cooked, first_domu, &mut free_cpus);
    // Every boot-time domain exists: from now on idle CPUs may take waiting vCPUs.
    crate::sched::allow_migration();
    crate::sched::idle_loop()
}

/// `dom0=pvh`: dom0 as a PVH domain (its kernel needs `XEN_ELFNOTE_PHYS32_ENTRY`).
fn start_pvh(boot: &BootInfo, opts: &Options, available_bytes: u64, cooked: &[String]) {
    printk!("*** Building a PVH Dom0 ***\n");
    let Some(kmod) = boot.modules.first() else {
        return;
    };
    let loaded = match crate::loader::inspect_pvh(module_bytes(kmod), true) {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    let initrd = boot
        .modules
        .get(1)
        .filter(|_| !domu_spec::is_domu(&cooked[1]))
        .map(module_bytes);
    let modules: Vec<&[u8]> = initrd.into_iter().collect();
    let cmdline = dom0_cmdline(&cooked[0], opts);
    let cfg = dom0_config(opts, available_bytes);
    let d = match crate::hvm::build::build_pvh(&loaded, &modules, &cmdline, &cfg) {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    drop(loaded);
    run_boot_domains(boot, cooked, d, !modules.is_empty(), opts.dom0_vcpus_pin)
}

/// A shared view of a domain being set up, for the registry.
fn register(d: &super::Domain) -> &'static super::Domain {
    // SAFETY: domains are leaked ('static) and never freed; the builder's mutable access
    // that follows (`place`) only sets `processor` before any vCPU runs or is looked up.
    unsafe { &*(d as *const super::Domain) }
}

/// Where a domain's vCPUs may run (their hard affinity).
#[derive(Clone, Copy)]
enum Affinity {
    /// Each on the CPU it is placed on (`dom0_vcpus_pin`, Xen: vCPU n on pCPU n).
    PinToPlacement,
    /// Any of these CPUs (a domU's `cpus=`; dom0 unpinned: all).
    Cpus(CpuMask),
}

/// Places `d`'s vCPUs round-robin on the next CPUs of `cpus` (an endless cycle over the online
/// CPUs) that their `affinity` allows, and wakes those CPUs. The affinity must name an online
/// CPU.
fn place(d: &mut super::Domain, cpus: &mut impl Iterator<Item = u32>, affinity: Affinity) {
    for v in d.vcpus.iter_mut() {
        let Some(cpu) = (match affinity {
            Affinity::PinToPlacement => cpus.next(),
            Affinity::Cpus(mask) => cpus.find(|&c| mask.contains(c)),
        }) else {
            break;
        };
        v.processor = cpu;
        let mask = match affinity {
            Affinity::PinToPlacement => CpuMask::of(cpu),
            Affinity::Cpus(mask) => mask,
        };
        let p: *mut super::Vcpu = &mut **v;
        // SAFETY: domains are leaked ('static) and never freed; each vCPU is handed to
        // exactly one run queue, from which a CPU takes it to run it.
        crate::sched::place(unsafe { &mut *p }, mask);
        // SAFETY: as above; only the atomics and `processor` are read.
        crate::sched::kick(unsafe { &*p });
    }
}

/// Builds and starts the domU described by each module from `first` on (modules named as
/// some domU's initrd excepted). A bad description, kernel or lack of memory skips that domain
/// with a message; the others still start.
fn start_domus(
    boot: &BootInfo,
    cooked: &[String],
    first: usize,
    cpus: &mut impl Iterator<Item = u32>,
) {
    let mut initrds: Vec<usize> = Vec::new();
    let mut next_id = 1u16;
    let mut ordinal = 0;
    for (index, cmdline) in cooked.iter().enumerate().skip(first) {
        if initrds.contains(&index) {
            continue;
        }
        if !domu_spec::is_domu(cmdline) {
            printk!("Boot module {index} is not used (no 'domU' description)\n");
            continue;
        }
        ordinal += 1;
        let spec = match domu_spec::parse(cmdline, index, cooked.len(), ordinal) {
            Ok(s) => s,
            Err(e) => {
                printk!("domU in boot module {index}: {e}; not started\n");
                continue;
            }
        };
        if let Some(i) = spec.initrd {
            initrds.push(i);
        }
        let initrd = spec.initrd.map(|i| module_bytes(&boot.modules[i]));
        match start_domu(&boot.modules[index], initrd, &spec, next_id, cpus) {
            Ok(()) => next_id += 1,
            Err(e) => printk!(
                "domU '{}' (boot module {index}): {e}; not started\n",
                spec.name
            ),
        }
    }
}

/// Builds one domU with id `id` and places its vCPUs.
fn start_domu(
    module: &xenolith_boot::Module,
    initrd: Option<&[u8]>,
    spec: &DomuSpec,
    id: u16,
    cpus: &mut impl Iterator<Item = u32>,
) -> Result<(), String> {
    use alloc::string::ToString;
    let pvh = spec.kind == domu_spec::DomainKind::Pvh;
    let online = crate::smpboot::online_cpus();
    if !online.iter().any(|&c| spec.cpus.contains(c)) {
        return Err(alloc::format!("cpus={} names no online CPU", spec.cpus));
    }
    let bytes = module_bytes(module);
    let loaded = if pvh {
        crate::loader::inspect_pvh(bytes, false)
    } else {
        crate::loader::inspect_domu(bytes)
    }
    .map_err(|e| e.to_string())?;
    let nr_pages = spec.memory_mib * 256;
    let cfg = build::DomainConfig {
        id,
        name: &spec.name,
        privileged: false,
        nr_pages,
        max_pages: nr_pages,
        nr_vcpus: spec.vcpus,
    };
    let d = if pvh {
        let modules: Vec<&[u8]> = initrd.into_iter().collect();
        crate::hvm::build::build_pvh(&loaded, &modules, &spec.cmdline, &cfg)
    } else {
        build::build_pv(&kernel_image(&loaded), initrd, &spec.cmdline, &cfg)
    }
    .map_err(|e| e.to_string())?;
    // Round-robin within the affinity (the cycle is endless, and the affinity names a CPU).
    let taken: Vec<u32> = (0..spec.vcpus)
        .filter_map(|_| cpus.find(|&c| spec.cpus.contains(c)))
        .collect();
    if let Some(ring) = d.store {
        // The hypervisor answers its xenstore requests (there is no xenstored).
        let store =
            crate::xenstore::Store::for_domain(id, &spec.name, spec.memory_mib * 1024, spec.vcpus);
        crate::xenstore::ring::attach(id, store, ring.mfn, ring.port);
    }
    printk!(
        "d{id}: {} domU '{}' built: {} MiB, {} vCPU(s) on CPU(s) {:?} (cpus={}), kernel {:?}, command line \"{}\"\n",
        if pvh { "PVH" } else { "PV" },
        spec.name,
        spec.memory_mib,
        spec.vcpus,
        taken,
        spec.cpus,
        loaded.format,
        spec.cmdline
    );
    // Known to the registry before any of its vCPUs can run (they look other domains up).
    super::registry::insert(register(d));
    crate::sched::set_params(
        id,
        crate::sched::SchedParams {
            weight: spec.weight,
            cap: spec.cap,
        },
    );
    place(d, &mut taken.into_iter(), Affinity::Cpus(spec.cpus));
    Ok(())
}

fn fail(e: &dyn core::fmt::Display) {
    printk!("Could not set up DOM0 guest OS: {e}\n");
}
