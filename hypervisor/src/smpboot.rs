//! Bringing up the application processors listed in the MADT.

use crate::mm::{frames, paging};
use crate::printk;
use crate::traps::SPURIOUS_VECTOR;
use alloc::boxed::Box;
use core::sync::atomic::{AtomicU32, Ordering};
use xenolith_arch::gdt::{CpuTables, IST_DF, IST_MCE, IST_NMI};
use xenolith_arch::layout::phys_to_virt;
use xenolith_arch::percpu::{self, CpuInfo, STACK_ORDER};
use xenolith_arch::smp::{ApParams, Trampoline, start_ap};
use xenolith_arch::{apic, trap};

/// Most CPUs the hypervisor drives (Xen's default `NR_CPUS` is larger; this is ample here).
pub const NR_CPUS: usize = 256;

/// CPUs that have completed start-up (the BSP included).
static ONLINE: AtomicU32 = AtomicU32::new(1);
/// APIC ids of the online CPUs, by logical CPU number.
static ONLINE_APIC_IDS: spin::Mutex<alloc::vec::Vec<u32>> =
    spin::Mutex::new(alloc::vec::Vec::new());

/// Records that logical CPU `cpu` is online with `apic_id`.
pub fn register_online(cpu: u32, apic_id: u32) {
    let mut ids = ONLINE_APIC_IDS.lock();
    if ids.len() <= cpu as usize {
        ids.resize(cpu as usize + 1, u32::MAX);
    }
    ids[cpu as usize] = apic_id;
    crate::sched::register_cpu(cpu, apic_id);
}

/// Logical numbers of the online CPUs, in order.
pub fn online_cpus() -> alloc::vec::Vec<u32> {
    ONLINE_APIC_IDS
        .lock()
        .iter()
        .enumerate()
        .filter(|&(_, &id)| id != u32::MAX)
        .map(|(cpu, _)| cpu as u32)
        .collect()
}

/// APIC ids of the online CPUs, by logical CPU number.
pub fn online_apic_ids() -> alloc::vec::Vec<u32> {
    ONLINE_APIC_IDS
        .lock()
        .iter()
        .copied()
        .filter(|&id| id != u32::MAX)
        .collect()
}

/// Builds a CPU's descriptor tables for the stack block at `base` and records them in its
/// `CpuInfo`.
fn new_cpu(cpu: u32, apic_id: u32, base: u64) -> &'static mut CpuTables {
    let ist = [IST_DF, IST_NMI, IST_MCE].map(|n| percpu::ist_top(base, n));
    let rsp0 = percpu::guest_frame_top(base);
    let tables = Box::leak(CpuTables::new_boxed(cpu, ist, rsp0));
    let info = CpuInfo {
        cpu,
        apic_id,
        stack_base: base,
        tables: &*tables as *const _ as u64,
        current_vcpu: core::sync::atomic::AtomicU64::new(0),
    };
    // SAFETY: `base` is the CPU's own aligned stack block, not yet in use by anyone else
    // (the BSP's block is in use by the BSP itself, which is the caller in that case, and
    // `CpuInfo` sits above its live stack frames).
    unsafe { percpu::init_block(base, info) };
    tables
}

/// Prepares the executing CPU to take entries from PV guests: its SYSCALL stub (generated with
/// this CPU's frame address, mapped executable) and, when the CPU has it, SMEP so that the
/// hypervisor never executes guest (user) pages.
pub fn init_guest_entry() -> Result<(), &'static str> {
    use xenolith_arch::guest_entry::{STUB_LEN, init_syscall, syscall_common_addr, syscall_stub};
    let info = percpu::current();
    let pa = frames::alloc(0).ok_or("no memory for the SYSCALL stub")?;
    let stub = syscall_stub(
        percpu::guest_frame_top(info.stack_base),
        syscall_common_addr(),
    );
    // SAFETY: the frame was just allocated and is reachable through the direct map.
    unsafe {
        let page = phys_to_virt(pa) as *mut u8;
        core::ptr::write_bytes(page, 0xcc, 4096);
        core::ptr::copy_nonoverlapping(stub.as_ptr(), page, STUB_LEN);
    }
    let va = paging::map_code_page(pa).map_err(|_| "cannot map the SYSCALL stub")?;
    init_syscall(va);
    // SAFETY: PAT exists on every x86_64 CPU; Xen's layout keeps index 0 WB and index 3 UC,
    // the two the hypervisor's own mappings use, and gives PV guests the layout they expect.
    unsafe {
        xenolith_arch::cpu::wrmsr(
            xenolith_arch::cpu::msr::PAT,
            crate::pv::emulate::XEN_MSR_PAT,
        )
    };
    enable_fpu_for_guests();
    if xenolith_arch::cpu::Features::detect().smep {
        // SAFETY: SMEP only forbids ring-0 execution of user pages; the hypervisor's code is
        // all in supervisor pages.
        unsafe { xenolith_arch::cpu::write_cr4(xenolith_arch::cpu::read_cr4() | (1 << 20)) };
    }
    Ok(())
}

/// Turns on what guests' FPU/SSE/AVX code needs: CR0.MP and NE (and AM, as Xen runs), CR4
/// OSFXSR/OSXMMEXCPT, and with XSAVE, CR4.OSXSAVE with XCR0 = x87|SSE|AVX as supported.
fn enable_fpu_for_guests() {
    use core::arch::x86_64::__cpuid_count;
    use xenolith_arch::cpu::{read_cr0, read_cr4, write_cr4};
    let xsave = __cpuid_count(1, 0).ecx & (1 << 26) != 0;
    // SAFETY: MP/NE/AM and the SSE enables are architectural and change nothing for the
    // hypervisor (soft-float); XSETBV sets only components CPUID says are supported.
    unsafe {
        let cr0 = read_cr0() | (1 << 1) | (1 << 5) | (1 << 18);
        core::arch::asm!("mov cr0, {}", in(reg) cr0, options(nostack));
        let mut cr4 = read_cr4() | (1 << 9) | (1 << 10);
        if xsave {
            cr4 |= 1 << 18;
        }
        write_cr4(cr4);
        if xsave {
            let supported = __cpuid_count(0xd, 0).eax & 0x7;
            core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") supported | 1, in("edx") 0u32, options(nostack));
        }
    }
}

/// Sets up the BSP's per-CPU state and descriptor tables on the boot stack block.
pub fn init_bsp(bsp_stack_base: u64, apic_id: u32) {
    let tables = new_cpu(0, apic_id, bsp_stack_base);
    trap::init();
    // SAFETY: the tables are leaked ('static) and this is CPU 0 in ring 0.
    unsafe { tables.load() };
    trap::load();
}

/// The high-half entry of an AP, reached from the trampoline on its new stack.
extern "C" fn ap_entry(cpu: u64) -> ! {
    let info = percpu::current();
    // SAFETY: the BSP allocated these tables for this CPU and leaked them; only this CPU
    // loads them.
    unsafe { (&mut *(info.tables as *mut CpuTables)).load() };
    trap::load();
    apic::enable_local(SPURIOUS_VECTOR);
    if let Err(e) = init_guest_entry() {
        printk!("CPU{cpu}: {e}; it will not run guests\n");
    }
    printk!("CPU{}: APIC id {} online\n", cpu, apic::id());
    register_online(cpu as u32, apic::id());
    ONLINE.fetch_add(1, Ordering::Release);
    // Wait for a vCPU to be placed here and brought up.
    crate::sched::idle_loop()
}

/// Starts every CPU in `apic_ids` other than the BSP (`bsp_apic`); returns how many CPUs are
/// online afterwards. `trampoline_pa` is a free page below 1 MiB.
pub fn bring_up(apic_ids: &[u32], bsp_apic: u32, trampoline_pa: u32, nx: bool) -> u32 {
    let others: alloc::vec::Vec<u32> = apic_ids
        .iter()
        .copied()
        .filter(|&id| id != bsp_apic)
        .take(NR_CPUS - 1)
        .collect();
    if others.is_empty() {
        return ONLINE.load(Ordering::Acquire);
    }
    if paging::map_identity(u64::from(trampoline_pa), 4096).is_err() {
        printk!("SMP: cannot map the AP trampoline; running on the BSP only\n");
        return ONLINE.load(Ordering::Acquire);
    }
    // SAFETY: the trampoline page is reserved for this purpose (below 1 MiB, outside the
    // frame allocator) and reachable through the direct map.
    let t = unsafe {
        Trampoline::install(
            phys_to_virt(u64::from(trampoline_pa)) as *mut u8,
            trampoline_pa,
        )
    };
    let efer = (1 << 8) | if nx { 1 << 11 } else { 0 };
    for (i, &apic_id) in others.iter().enumerate() {
        let cpu = i as u32 + 1;
        let Some(block_pa) = frames::alloc(STACK_ORDER) else {
            printk!("CPU{cpu}: no memory for its stack; not started\n");
            break;
        };
        let base = phys_to_virt(block_pa);
        new_cpu(cpu, apic_id, base);
        t.set_params(&ApParams {
            cr3: paging::root() as u32,
            efer,
            stack: percpu::stack_top(base),
            entry: ap_entry as *const () as u64,
            cpu: u64::from(cpu),
        });
        let before = ONLINE.load(Ordering::Acquire);
        start_ap(&t, apic_id, crate::time::delay_us);
        let start = xenolith_arch::cpu::rdtsc();
        while ONLINE.load(Ordering::Acquire) == before && crate::time::us_since(start) < 2_000_000 {
            core::hint::spin_loop();
        }
        if ONLINE.load(Ordering::Acquire) == before {
            printk!("CPU{cpu}: APIC id {apic_id} did not respond to INIT-SIPI-SIPI\n");
        }
    }
    paging::drop_low_mappings();
    ONLINE.load(Ordering::Acquire)
}
