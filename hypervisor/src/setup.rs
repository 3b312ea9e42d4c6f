//! The boot sequence on the BSP: from the loader's hand-off to an idle, fully brought-up machine.

use crate::console::{self, ConsoleConfig};
use crate::mm::physmem::{DirectMemory, IdentityMemory};
use crate::mm::{frames, paging, regions};
use crate::options::{self, Baud, Options, Parity};
use crate::traps::{SPURIOUS_VECTOR, TIMER_VECTOR};
use crate::{printk, printk_lvl, shutdown, smpboot, time};
use alloc::string::String;
use alloc::vec::Vec;
use xenolith_arch::acpi::{self, AcpiTables};
use xenolith_arch::apic;
use xenolith_arch::cpu::{self, Features};
use xenolith_arch::layout::{IMAGE_LOAD_BASE, image_virt_to_phys, phys_to_virt};
use xenolith_arch::serial::LineConfig;
use xenolith_boot::{BootInfo, MemoryKind};

unsafe extern "C" {
    static xenolith_bsp_stack_bottom: u8;
    static __xenolith_image_end: u8;
}

const MIB: u64 = 1 << 20;

/// Called by `xenolith_entry64` on the BSP boot stack with the loader's magic and info address.
#[unsafe(no_mangle)]
extern "C" fn xenolith_start(magic: u32, info: u32) -> ! {
    crate::mm::heap::init();
    let bsp_block = core::ptr::addr_of!(xenolith_bsp_stack_bottom) as u64;
    let features = Features::detect();
    smpboot::init_bsp(bsp_block, features.initial_apic_id);

    let boot = match xenolith_boot::info::parse(magic, u64::from(info), &IdentityMemory) {
        Ok(b) => b,
        Err(e) => {
            printk!("Cannot parse the boot information (magic {magic:#x}): {e}\n");
            shutdown::fatal_stop();
        }
    };
    let cmdline = options::cook_cmdline(&boot.cmdline, boot.loader_name.as_deref());
    let (opts, diags) = options::parse(cmdline);
    shutdown::set_noreboot(opts.noreboot);
    console::configure(&console_config(&opts));

    printk!(
        "Xenolith version {} (Xen {}.{} ABI)\n",
        env!("CARGO_PKG_VERSION"),
        xen_abi::version::XEN_MAJOR,
        xen_abi::version::XEN_MINOR
    );
    printk!(
        "Bootloader: {}\n",
        boot.loader_name.as_deref().unwrap_or("unknown")
    );
    printk!("Command line: {cmdline}\n");
    printk!(
        "Boot protocol: {}\n",
        match boot.protocol {
            xenolith_boot::Protocol::Multiboot1 => "multiboot1",
            xenolith_boot::Protocol::Multiboot2 => "multiboot2",
        }
    );
    for d in &diags {
        printk!("{d}\n");
    }
    printk!("Xen-e820 RAM map:\n");
    for r in &boot.memory_map {
        printk!("{}\n", xenolith_boot::info::format_ram_map_line(r));
    }

    printk_lvl!(
        Info,
        "CPU features: vendor {}, NX {}, 1G pages {}, x2APIC {}, SVM {}, VMX {}, {} physical address bits\n",
        if features.amd {
            "AMD"
        } else if features.intel {
            "Intel"
        } else {
            "other"
        },
        features.nx,
        features.page1g,
        features.x2apic,
        features.svm,
        features.vmx,
        features.phys_bits
    );
    crate::hypercall::memory_op::MACHINE_MEMORY_MAP.call_once(|| boot.memory_map.clone());
    init_frames(&boot);
    init_paging(&boot, &features);
    grow_heap();
    init_m2p(&boot);

    if let Err(e) = smpboot::init_guest_entry() {
        printk!("CPU0: {e}\n");
        shutdown::fatal_stop();
    }
    let acpi = init_acpi(&boot);
    let cpus = init_apic(&features, acpi.as_ref());
    init_time();

    let trampoline = trampoline_page(&boot);
    let bsp_apic = apic::id();
    printk!("CPU0: APIC id {bsp_apic} online\n");
    smpboot::register_online(0, bsp_apic);
    let online = match trampoline {
        Some(pa) => smpboot::bring_up(&cpus, bsp_apic, pa, features.nx),
        None => {
            printk!("SMP: no free page below 1 MiB for the AP trampoline\n");
            1
        }
    };
    printk!("Brought up {online} CPUs\n");

    report_dom0(&opts, &boot, online);
    let (heap_used, heap_free) = crate::mm::heap::usage();
    printk_lvl!(
        Debug,
        "Heap: {heap_used} bytes used, {heap_free} bytes free\n"
    );
    run_selftests(&opts);
    printk!("Xenolith boot complete\n");
    if opts.selftest.iter().any(|t| t == "exit") {
        selftest_exit(0x10);
    }
    if opts.selftest.iter().any(|t| t == "poweroff") {
        printk!("selftest: powering off through ACPI S5\n");
        shutdown::poweroff();
    }
    let (free_pages, _, _) = frames::stats();
    crate::domain::dom0::start(&boot, &opts, free_pages * 4096);
    loop {
        cpu::idle_halt();
    }
}

/// The console setup the options ask for.
fn console_config(o: &Options) -> ConsoleConfig {
    let line = |s: &options::SerialConfig| LineConfig {
        baud: match s.baud {
            Baud::Auto => 0,
            Baud::Rate(r) => r,
        },
        data_bits: s.data_bits,
        parity: match s.parity {
            Parity::None => b'n',
            Parity::Odd => b'o',
            Parity::Even => b'e',
            Parity::Mark => b'm',
            Parity::Space => b's',
        },
        stop_bits: s.stop_bits,
    };
    let port = |p: options::ComPort, cfg: &Option<options::SerialConfig>| {
        let cfg = cfg.unwrap_or_else(|| options::SerialConfig::xen_default(p, Baud::Auto));
        (cfg.io_base as u16, line(&cfg))
    };
    let mut serial = [None, None];
    match o.console.serial {
        Some(p @ options::ComPort::Com1) => serial[0] = Some(port(p, &o.com1)),
        Some(p @ options::ComPort::Com2) => serial[1] = Some(port(p, &o.com2)),
        None => {}
    }
    ConsoleConfig {
        serial,
        vga: o.console.vga,
        conring_size: o.effective_conring_size(1),
        levels: o.loglvl,
    }
}

/// Hands usable RAM, minus what the image, modules, boot data and low 1 MiB occupy, to the
/// frame allocator, and prints its per-order picture.
fn init_frames(boot: &BootInfo) {
    let usable: Vec<(u64, u64)> = boot
        .memory_map
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
        .map(|r| (r.base, r.end()))
        .collect();
    let image_end = image_virt_to_phys(core::ptr::addr_of!(__xenolith_image_end) as u64);
    let mut reserved = alloc::vec![(0, MIB), (IMAGE_LOAD_BASE, image_end)];
    reserved.extend(boot.modules.iter().map(|m| (m.start, m.end)));
    reserved.extend(boot.boot_data.iter().copied());
    let free = regions::free_ranges(&usable, &reserved);
    frames::add_ranges(&free);
    let (free_pages, total, orders) = frames::stats();
    printk!(
        "Frame allocator: {} of {} pages free ({} MiB), {} ranges\n",
        free_pages,
        total,
        free_pages * 4096 / MIB,
        free.len()
    );
    let mut line = String::from("Free blocks by order:");
    for (order, n) in orders.iter().enumerate().filter(|(_, n)| **n != 0) {
        use core::fmt::Write;
        let _ = write!(line, " {order}:{n}");
    }
    printk!("{line}\n");
}

/// Adds a large heap region from the frame allocator: a quarter of free memory, at most
/// 256 MiB, as one naturally aligned block (unpacking a dom0 kernel needs it in one piece).
fn grow_heap() {
    let (free, _, _) = frames::stats();
    let mut order = 16usize; // 256 MiB
    while order > 9 && (1u64 << order) > free / 4 {
        order -= 1;
    }
    match frames::alloc(order) {
        Some(pa) => {
            let bytes = 4096usize << order;
            // SAFETY: a fresh block from the frame allocator, mapped by the direct map, handed
            // to the heap for good.
            let added = unsafe { crate::mm::heap::add_region(phys_to_virt(pa) as *mut u8, bytes) };
            if added {
                printk_lvl!(Info, "Heap: added {} MiB at {pa:#x}\n", bytes >> 20);
            }
        }
        None => printk!("Heap: no memory to grow the heap; large dom0 kernels will not unpack\n"),
    }
}

/// Creates the machine-to-phys table and the frame table for all RAM.
fn init_m2p(boot: &BootInfo) {
    let max_page = boot
        .memory_map
        .iter()
        .filter(|r| r.kind == MemoryKind::Usable)
        .map(|r| r.end().div_ceil(4096))
        .max()
        .unwrap_or(0);
    if let Err(e) = crate::mm::m2p::init(max_page) {
        printk!("Cannot create the M2P table: {e:?}\n");
        shutdown::fatal_stop();
    }
    if let Err(e) = crate::mm::frametable::init(max_page, &boot.memory_map) {
        printk!("Cannot create the frame table: {e:?}\n");
        shutdown::fatal_stop();
    }
}

/// Builds the hypervisor page tables (W^X, direct map) and switches to them.
fn init_paging(boot: &BootInfo, f: &Features) {
    let direct: Vec<(u64, u64)> = boot
        .memory_map
        .iter()
        .filter(|r| {
            matches!(
                r.kind,
                MemoryKind::Usable | MemoryKind::AcpiReclaimable | MemoryKind::AcpiNvs
            )
        })
        .map(|r| (r.base, r.end()))
        .collect();
    match paging::build_and_switch(&direct, f.nx, f.page1g) {
        Ok(rep) => {
            console::relocate_vga(phys_to_virt(xenolith_arch::vga::VGA_TEXT_PHYS));
            printk!(
                "Paging: hypervisor L4 at {:#x}; {} leaf mappings, {} writable+executable (W^X {}), NX {}\n",
                rep.root,
                rep.leaves,
                rep.wx_violations,
                if rep.wx_violations == 0 {
                    "holds"
                } else {
                    "VIOLATED"
                },
                if f.nx { "on" } else { "unavailable" },
            );
        }
        Err(e) => {
            printk!("Cannot build the hypervisor page tables: {e:?}\n");
            shutdown::fatal_stop();
        }
    }
}

/// Finds and parses the ACPI tables (RSDP from multiboot2 if given, else the BIOS areas).
fn init_acpi(boot: &BootInfo) -> Option<AcpiTables> {
    let mem = DirectMemory {
        limit: paging::direct_map_limit(),
    };
    let parsed = match &boot.rsdp {
        Some(copy) => acpi::parse_from_rsdp_copy(&mem, copy),
        None => match acpi::rsdp::find_rsdp(&mem) {
            Some(pa) => acpi::parse(&mem, pa),
            None => {
                printk!("ACPI: no RSDP found; assuming one CPU\n");
                return None;
            }
        },
    };
    match parsed {
        Ok(t) => {
            printk!(
                "ACPI: {:?} at {:#x}, {} tables\n",
                t.root.kind,
                t.root.address,
                t.root.entries.len()
            );
            for e in &t.root.entries {
                printk!("ACPI: {} {:#x}\n", e.signature, e.address);
            }
            for e in &t.errors {
                printk!(
                    "ACPI: table {} at {:#x} ignored: {}\n",
                    e.signature,
                    e.address,
                    e.error
                );
            }
            if let Some(f) = &t.fadt {
                if f.reset_supported()
                    && let Some(port) = f.reset_register.and_then(|r| r.io_port())
                {
                    shutdown::set_acpi_reset(port, f.reset_value);
                }
                init_poweroff(&mem, f);
            }
            Some(t)
        }
        Err(e) => {
            printk!("ACPI: unusable tables ({e}); assuming one CPU\n");
            None
        }
    }
}

/// Finds the S5 sleep type in the DSDT so that a dom0 poweroff can turn the machine off.
fn init_poweroff(mem: &DirectMemory, f: &acpi::Fadt) {
    use xenolith_boot::PhysMemory;
    let pm1a = f.pm1a_control.and_then(|g| g.io_port());
    let pm1b = f.pm1b_control.and_then(|g| g.io_port());
    let (Some(dsdt), Some(pm1a)) = (f.dsdt, pm1a) else {
        printk!("ACPI: no DSDT or PM1a control block: power-off unavailable\n");
        return;
    };
    let len = mem.read_u32(dsdt + 4).unwrap_or(0).min(1 << 20) as usize;
    let mut aml = alloc::vec![0u8; len];
    if len < 36 || !mem.read_bytes(dsdt, &mut aml) {
        printk!("ACPI: DSDT at {dsdt:#x} unreadable: power-off unavailable\n");
        return;
    }
    match acpi::s5::find_s5(&aml) {
        Some(s5) => {
            shutdown::set_acpi_poweroff(pm1a, pm1b, s5.a, s5.b);
            printk_lvl!(
                Info,
                "ACPI: S5 sleep type {}/{}, PM1a control port {pm1a:#x}\n",
                s5.a,
                s5.b
            );
        }
        None => printk!("ACPI: no \\_S5_ package in the DSDT: power-off unavailable\n"),
    }
}

/// Enables the BSP's local APIC (x2APIC when available), masks the PIC and IO-APICs; returns the
/// APIC ids of the usable CPUs.
fn init_apic(f: &Features, acpi: Option<&AcpiTables>) -> Vec<u32> {
    let madt = acpi.and_then(|a| a.madt.as_ref());
    let lapic_pa = madt.map_or(0xfee0_0000, |m| m.local_apic_address);
    let mmio = if f.x2apic {
        0
    } else {
        paging::ioremap(lapic_pa, 4096).unwrap_or_else(|e| {
            printk!("Cannot map the local APIC: {e:?}\n");
            shutdown::fatal_stop()
        })
    };
    apic::set_mode(f.x2apic, mmio);
    apic::enable_local(SPURIOUS_VECTOR);
    apic::mask_pic();
    printk!(
        "Using APIC driver {} (local APIC at {lapic_pa:#x})\n",
        if f.x2apic {
            "x2apic"
        } else {
            "default (xAPIC)"
        }
    );
    let mut cpus = Vec::new();
    if let Some(m) = madt {
        let mut ioapics = Vec::new();
        for (id, addr, gsi_base) in m.io_apics() {
            match paging::ioremap(u64::from(addr), 4096) {
                Ok(va) => {
                    // SAFETY: the IO-APIC window was just mapped uncached at `va`.
                    let n = unsafe { apic::mask_ioapic(va) };
                    printk!(
                        "IOAPIC[{id}]: at {addr:#x}, GSI {gsi_base}-{}, all {n} pins masked\n",
                        gsi_base + n - 1
                    );
                    ioapics.push((va, gsi_base, n));
                }
                Err(e) => printk!("IOAPIC[{id}]: cannot map {addr:#x}: {e:?}\n"),
            }
        }
        crate::pirq::set_nr_gsis(
            ioapics
                .iter()
                .map(|&(_, base, n)| base + n)
                .max()
                .unwrap_or(16),
        );
        route_serial_irq(m, &ioapics);
        cpus = m.usable_cpus();
        printk!("ACPI: MADT lists {} usable CPUs\n", cpus.len());
    }
    if cpus.is_empty() {
        cpus.push(apic::id());
    }
    cpus
}

/// Routes the serial console's ISA IRQ (COM1: 4, COM2: 3, through the MADT's overrides) to
/// the console-input vector on this CPU, so typed keys reach the hypervisor (Xen's serial
/// console input: debug keys and the domains' consoles).
fn route_serial_irq(m: &xenolith_arch::acpi::madt::Madt, ioapics: &[(u64, u32, u32)]) {
    use xenolith_arch::acpi::madt::{Polarity, TriggerMode};
    let Some(base) = crate::console::enable_serial_rx() else {
        return;
    };
    let irq: u8 = match base {
        0x3f8 | 0x3e8 => 4,
        0x2f8 | 0x2e8 => 3,
        _ => return,
    };
    let (gsi, flags) = m
        .overrides()
        .find(|&(src, _, _)| src == irq)
        .map_or((u32::from(irq), None), |(_, gsi, f)| (gsi, Some(f)));
    let level = flags.is_some_and(|f| f.trigger_mode() == TriggerMode::Level);
    let low = flags.is_some_and(|f| f.polarity() == Polarity::ActiveLow);
    let Some(&(va, gsi_base, _)) = ioapics.iter().find(|&&(_, b, n)| (b..b + n).contains(&gsi))
    else {
        printk!("Serial input: no IO-APIC pin for IRQ {irq} (GSI {gsi}); input disabled\n");
        return;
    };
    // SAFETY: the IO-APIC window is mapped uncached and the pin is in its range.
    unsafe {
        apic::ioapic_route(
            va,
            gsi - gsi_base,
            crate::console::input::SERIAL_VECTOR,
            apic::id(),
            level,
            low,
        )
    };
    printk!("Serial input: IRQ {irq} (GSI {gsi}) -> CPU0\n");
}

/// Calibrates the clocks and proves the one-shot timer interrupt works.
fn init_time() {
    let (tsc_khz, lapic_khz) = time::calibrate();
    crate::pv::time::init(tsc_khz);
    printk!(
        "Detected {}.{:03} MHz processor.\n",
        tsc_khz / 1000,
        tsc_khz % 1000
    );
    printk!(
        "LAPIC timer: {}.{:03} MHz (divide-by-16), calibrated against the PIT\n",
        lapic_khz / 1000,
        lapic_khz % 1000
    );
    match time::oneshot_selftest(TIMER_VECTOR, 1000) {
        Some(us) => printk!("Timer: one-shot LAPIC interrupt (1000 us requested) after {us} us\n"),
        None => printk!("Timer: one-shot LAPIC interrupt did not arrive within 1 s\n"),
    }
}

/// A free page below 1 MiB for the AP trampoline: usable per the memory map and holding no
/// boot data or module. The highest such page below the EBDA is taken.
fn trampoline_page(boot: &BootInfo) -> Option<u32> {
    let busy = |pa: u64| {
        boot.boot_data
            .iter()
            .chain(
                boot.modules
                    .iter()
                    .map(|m| (m.start, m.end))
                    .collect::<Vec<_>>()
                    .iter(),
            )
            .any(|&(s, e)| pa < e && s < pa + 4096)
    };
    let usable = |pa: u64| {
        boot.memory_map
            .iter()
            .any(|r| r.kind == MemoryKind::Usable && r.base <= pa && pa + 4096 <= r.end())
    };
    (1..0x9fu64)
        .rev()
        .map(|n| n << 12)
        .find(|&pa| usable(pa) && !busy(pa))
        .map(|pa| pa as u32)
}

/// Prints the dom0 settings and the first module (building dom0 comes with the PV runtime).
fn report_dom0(o: &Options, boot: &BootInfo, online: u32) {
    // Module strings start with the file name, as the hypervisor's own does (Xen cooks both).
    let args = |m: &xenolith_boot::Module| -> String {
        String::from(options::cook_cmdline(
            &m.cmdline,
            boot.loader_name.as_deref(),
        ))
    };
    let (_, total_pages, _) = frames::stats();
    let total = total_pages * 4096;
    let mem = o.dom0_mem.resolve(total);
    printk!(
        "Dom0 memory: {} MiB (dom0_mem={}; {} MiB available)\n",
        mem / MIB,
        o.dom0_mem,
        total / MIB
    );
    printk!(
        "Dom0 vCPUs: {} (dom0_max_vcpus={}; {} pCPUs)\n",
        o.dom0_max_vcpus.resolve(online),
        o.dom0_max_vcpus,
        online
    );
    printk!(
        "Dom0 vCPU pinning: {}\n",
        if o.dom0_vcpus_pin { "on" } else { "off" }
    );
    printk!("Scheduler: {} ({})\n", o.sched.name(), o.sched.opt_name());
    match boot.modules.first() {
        Some(m) => printk!(
            "Dom0 kernel: module 0, {} bytes at {:#x}, command line \"{}\"\n",
            m.end - m.start,
            m.start,
            args(m)
        ),
        None => printk!("No dom0 kernel (no multiboot module given)\n"),
    }
    for (i, m) in boot.modules.iter().enumerate().skip(1) {
        printk!(
            "Module {i}: {} bytes at {:#x}, command line \"{}\"\n",
            m.end - m.start,
            m.start,
            args(m)
        );
    }
}

/// Test-only behaviour selected with `selftest=` (documented in docs/boot-options.md).
fn run_selftests(o: &Options) {
    for t in &o.selftest {
        match t.as_str() {
            "conring" => {
                let ring = console::ring_contents();
                printk!("--- conring begin ---\n");
                for line in ring.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    printk!("{}\n", String::from_utf8_lossy(line));
                }
                printk!("--- conring end ---\n");
            }
            "fault" => {
                printk!("selftest: writing to unmapped address 0xdeadbeef000\n");
                // SAFETY: deliberately faulting is the point of this test option; the address
                // is canonical and unmapped, so the write raises #PF and the fatal path runs.
                unsafe { core::ptr::write_volatile(0x0dea_dbee_f000 as *mut u64, 1) };
            }
            "exit" | "poweroff" => {} // handled after the boot-complete line
            "svm" => crate::hvm_selftest::run_svm(),
            "vmx" => crate::hvm_selftest::run_vmx(),
            "hvm" => crate::hvm_selftest::run_hvm(),
            "ud" => {
                printk!("selftest: executing ud2\n");
                // SAFETY: raising #UD on purpose exercises the generic fatal-trap report.
                unsafe { core::arch::asm!("ud2") };
            }
            "vga" => {
                let rows = console::vga_rows(4);
                if rows.is_empty() {
                    printk!("selftest: VGA console not selected\n");
                }
                for (i, r) in rows.iter().enumerate() {
                    printk!("selftest: VGA row {i}: {r}\n");
                }
            }
            other => printk_lvl!(Warning, "selftest: unknown test \"{other}\" ignored\n"),
        }
    }
}

/// Ends a QEMU run through `isa-debug-exit` (port 0xf4): QEMU exits with `(code << 1) | 1`.
/// Without that device the write goes nowhere and the CPU idles as usual.
fn selftest_exit(code: u8) {
    console::flush();
    // SAFETY: port 0xf4 is unused on the PC platform except by QEMU's isa-debug-exit device,
    // which test runs add on purpose.
    unsafe { x86_64::instructions::port::Port::<u8>::new(0xf4).write(code) };
}
