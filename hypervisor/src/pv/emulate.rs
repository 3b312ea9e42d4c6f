//! Emulating what a PV guest kernel (at CPL3) may not execute itself (Xen's
//! `xen/arch/x86/pv/emul-priv-op.c`, `emul-inv-op.c` and `traps.c`):
//! forced-emulation CPUID on #UD, and on #GP: software interrupts allowed by the guest's trap
//! table, port I/O, `cli`/`sti`, MSRs and control registers.

use super::decode::{self, Insn, IoSize};
use crate::domain::Vcpu;
use crate::guest_mem::copy_from_guest;
use core::arch::x86_64::__cpuid_count;
use xenolith_arch::cpu::{self, msr, rdmsr};
use xenolith_arch::trap::TrapFrame;

/// Xen's PAT layout (`XEN_MSR_PAT`): WB, WT, UC-, UC, WC, WP. PV guests' PTE cache bits index
/// this table, so the hypervisor programs it on every CPU.
pub const XEN_MSR_PAT: u64 = 0x0000_0501_0007_0406;

/// The instruction bytes at the guest's `rip` (up to 15; fewer near an unmapped page).
fn fetch(regs: &TrapFrame) -> ([u8; 15], usize) {
    let mut b = [0u8; 15];
    for n in (1..=15).rev() {
        if copy_from_guest(&mut b[..n], regs.rip).is_ok() {
            return (b, n);
        }
    }
    (b, 0)
}

/// Guest view of CPUID (Xen's PV policy, simplified: host values with what PV guests cannot
/// use hidden, and Xen's leaves at 0x40000000).
pub fn guest_cpuid(leaf: u32, subleaf: u32, dom0: bool) -> [u32; 4] {
    if (0x4000_0000..0x4000_0100).contains(&leaf) {
        return match leaf - 0x4000_0000 {
            // Max leaf and "XenVMMXenVMM".
            0 => [0x4000_0005, 0x566e_6558, 0x6558_4d4d, 0x4d4d_566e],
            1 => [
                (xen_abi::version::XEN_MAJOR << 16) | xen_abi::version::XEN_MINOR,
                0,
                0,
                0,
            ],
            // One hypercall page, written through MSR 0x40000000; ecx = 1 (Xen 4.17).
            2 => [1, 0x4000_0000, 1, 0],
            // TSC leaf, sub-leaf 0: "TSC stable" mode flags as Xen reports them.
            3 if subleaf == 0 => [0x4, 0, 0, 0],
            // PV-specific leaf: the feature bits Xen 4.17 reports in ebx.
            5 => [0, 0x1f, 0, 0],
            _ => [0; 4],
        };
    }
    let r = __cpuid_count(leaf, subleaf);
    let (mut a, mut b, mut c, mut d) = (r.eax, r.ebx, r.ecx, r.edx);
    match leaf {
        1 => {
            // Hide VMX, SMX, EST, TM2, DS-CPL, MONITOR, DTES64, PDCM, PCID, x2APIC,
            // TSC-deadline; report a hypervisor.
            c &= !((1 << 2)
                | (1 << 3)
                | (1 << 4)
                | (1 << 5)
                | (1 << 6)
                | (1 << 7)
                | (1 << 8)
                | (1 << 15)
                | (1 << 17)
                | (1 << 21)
                | (1 << 24));
            c |= 1 << 31;
            // Hide VME, DE, PSE, PGE, PSE36, DS, ACPI, TM, PBE; MTRR only for dom0. The APIC
            // bit stays, as Xen 4.17 shows it (Linux's dom0 parses the MADT's IO-APICs only
            // with it, and maps its legacy IRQs to PIRQs through them).
            d &= !((1 << 1)
                | (1 << 2)
                | (1 << 3)
                | (1 << 13)
                | (1 << 17)
                | (1 << 21)
                | (1 << 22)
                | (1 << 29)
                | (1 << 31));
            if !dom0 {
                d &= !(1 << 12);
            }
            // No initial APIC id for PV vCPUs (Xen's guest_cpuid: only HVM gets one), so every
            // vCPU reads 0 whichever CPU it runs on.
            b &= 0x00ff_ffff;
        }
        7 if subleaf == 0 => {
            // Hide FSGSBASE, SMEP, INVPCID, SMAP (a PV kernel runs at CPL3), and UMIP,
            // PKU, OSPKE, which a PV guest cannot control.
            b &= !((1 << 0) | (1 << 7) | (1 << 10) | (1 << 20));
            c &= !((1 << 2) | (1 << 3) | (1 << 4));
        }
        // XSAVE: only the components the hypervisor enables in XCR0 (x87, SSE, AVX).
        0xd if subleaf == 0 => {
            a &= GUEST_XCR0_MASK as u32;
            d = 0;
        }
        0x8000_0001 => {
            // Hide SVM, CR8_LEGACY, PSE, PGE, PSE36 and 1 GiB pages.
            c &= !((1 << 2) | (1 << 4));
            d &= !((1 << 3) | (1 << 13) | (1 << 17) | (1 << 26));
        }
        _ => {}
    }
    [a, b, c, d]
}

fn reg_mut(regs: &mut TrapFrame, n: u8) -> &mut u64 {
    match n & 15 {
        0 => &mut regs.rax,
        1 => &mut regs.rcx,
        2 => &mut regs.rdx,
        3 => &mut regs.rbx,
        4 => &mut regs.rsp,
        5 => &mut regs.rbp,
        6 => &mut regs.rsi,
        7 => &mut regs.rdi,
        8 => &mut regs.r8,
        9 => &mut regs.r9,
        10 => &mut regs.r10,
        11 => &mut regs.r11,
        12 => &mut regs.r12,
        13 => &mut regs.r13,
        14 => &mut regs.r14,
        _ => &mut regs.r15,
    }
}

/// Makes the real CR0.TS follow the vCPU's virtual TS, so FPU use raises #NM for the guest.
pub fn sync_cr0_ts(v: &Vcpu) {
    let cr0 = cpu::read_cr0();
    let want = if v.pv.cr0_ts {
        cr0 | (1 << 3)
    } else {
        cr0 & !(1 << 3)
    };
    if want != cr0 {
        // SAFETY: only TS changes; the hypervisor itself never uses the FPU.
        unsafe { core::arch::asm!("mov cr0, {}", in(reg) want, options(nostack)) };
    }
}

/// #UD from the guest: the forced-emulation CPUID. Returns true if handled.
pub fn invalid_op(v: &mut Vcpu, regs: &mut TrapFrame) -> bool {
    let (b, n) = fetch(regs);
    let Some(len) = decode::forced_cpuid(&b[..n]) else {
        return false;
    };
    let r = guest_cpuid(regs.rax as u32, regs.rcx as u32, v.domain().privileged);
    regs.rax = u64::from(r[0]);
    regs.rbx = u64::from(r[1]);
    regs.rcx = u64::from(r[2]);
    regs.rdx = u64::from(r[3]);
    regs.rip += len as u64;
    true
}

/// Xen's `iopl_ok`: the guest kernel counts as ring 1, user mode as ring 3.
fn iopl_ok(v: &Vcpu) -> bool {
    let cpl = if v.pv.kernel_mode { 1 } else { 3 };
    cpl <= v.pv.iopl
}

/// Ports the hardware domain may not touch directly (Xen's `dom0_setup_permissions`): the
/// PIC, PIT, ELCR, PCI configuration mechanism and the hypervisor's own serial console.
fn port_denied(port: u32) -> bool {
    matches!(port, 0x20 | 0x21 | 0xa0 | 0xa1 | 0x40..=0x43 | 0x4d0 | 0x4d1 | 0xcf8..=0xcff | 0x3f8..=0x3ff)
}

fn io_read(v: &Vcpu, port: u32, size: IoSize) -> u32 {
    use x86_64::instructions::port::Port;
    if v.domain().privileged {
        // PCI configuration mechanism #1: the address register is latched per domain and
        // the data window forwarded with it (Xen's guest_io_read for 0xcf8/0xcfc).
        if port == 0xcf8 && size == IoSize::Dword {
            return v.domain().inner.lock().pci_cf8;
        }
        if port & !3 == 0xcfc {
            let cf8 = v.domain().inner.lock().pci_cf8;
            if cf8 & (1 << 31) == 0 {
                return u32::MAX;
            }
            // SAFETY: the hardware domain owns PCI configuration space; the address comes
            // from its own latch.
            unsafe {
                Port::<u32>::new(0xcf8).write(cf8);
                let p = port as u16;
                return match size {
                    IoSize::Byte => u32::from(Port::<u8>::new(p).read()),
                    IoSize::Word => u32::from(Port::<u16>::new(p).read()),
                    IoSize::Dword => Port::<u32>::new(p).read(),
                };
            }
        }
        // The CMOS index reads back as last written (the hardware register is write-only).
        if port == 0x70 && size == IoSize::Byte {
            return u32::from(v.domain().inner.lock().cmos_index);
        }
    }
    if !v.domain().privileged || (port..port + size.bytes()).any(port_denied) {
        return u32::MAX; // no device there, as far as the guest can tell
    }
    let port = port as u16;
    // SAFETY: a port the hardware domain owns (the denied ranges are excluded above).
    unsafe {
        match size {
            IoSize::Byte => u32::from(Port::<u8>::new(port).read()),
            IoSize::Word => u32::from(Port::<u16>::new(port).read()),
            IoSize::Dword => Port::<u32>::new(port).read(),
        }
    }
}

fn io_write(v: &Vcpu, port: u32, size: IoSize, val: u32) {
    use x86_64::instructions::port::Port;
    if v.domain().privileged {
        if port == 0xcf8 && size == IoSize::Dword {
            v.domain().inner.lock().pci_cf8 = val;
            return;
        }
        if port & !3 == 0xcfc {
            let cf8 = v.domain().inner.lock().pci_cf8;
            if cf8 & (1 << 31) != 0 {
                // SAFETY: as in `io_read`.
                unsafe {
                    Port::<u32>::new(0xcf8).write(cf8);
                    let p = port as u16;
                    match size {
                        IoSize::Byte => Port::<u8>::new(p).write(val as u8),
                        IoSize::Word => Port::<u16>::new(p).write(val as u16),
                        IoSize::Dword => Port::<u32>::new(p).write(val),
                    }
                }
            }
            return;
        }
        if port == 0x70 && size == IoSize::Byte {
            v.domain().inner.lock().cmos_index = val as u8;
        }
    }
    if !v.domain().privileged || (port..port + size.bytes()).any(port_denied) {
        return; // dropped
    }
    let port = port as u16;
    // SAFETY: as in `io_read`.
    unsafe {
        match size {
            IoSize::Byte => Port::<u8>::new(port).write(val as u8),
            IoSize::Word => Port::<u16>::new(port).write(val as u16),
            IoSize::Dword => Port::<u32>::new(port).write(val),
        }
    }
}

/// XCR0 components PV guests may enable (x87, SSE, AVX), as set up at boot.
pub const GUEST_XCR0_MASK: u64 = 0x7;

/// The host's IA32_MISC_ENABLE.
fn misc_enable_host() -> u64 {
    // SAFETY: IA32_MISC_ENABLE exists on the CPUs Xenolith runs on; reading has no effect.
    unsafe { rdmsr(0x1a0) }
}

/// Machine-check banks of the virtual MCE (`GUEST_MC_BANK_NUM`).
const VMCE_BANKS: u64 = 2;

fn read_msr(v: &Vcpu, index: u32) -> Option<u64> {
    Some(match index {
        msr::FS_BASE => v.pv.fs_base,
        msr::GS_BASE => {
            if v.pv.kernel_mode {
                v.pv.gs_base_kernel
            } else {
                v.pv.gs_base_user
            }
        }
        msr::SHADOW_GS_BASE => {
            if v.pv.kernel_mode {
                v.pv.gs_base_user
            } else {
                v.pv.gs_base_kernel
            }
        }
        // SAFETY: EFER exists on every x86_64 CPU. Unknown bits and SVME are hidden.
        msr::EFER => (unsafe { rdmsr(msr::EFER) }) & 0xd01 & !(1 << 12),
        msr::PAT => XEN_MSR_PAT,
        // The default local APIC, enabled, BSP (Xen's fixed view for PV guests).
        msr::APIC_BASE => 0xfee0_0000 | (1 << 11) | if v.id == 0 { 1 << 8 } else { 0 },
        // IA32_MISC_ENABLE: the host's, without PERF_AVAIL/MONITOR, plus BTS/PEBS
        // unavailable and xTPR disabled.
        0x1a0 => (misc_enable_host() & !((1 << 7) | (1 << 18))) | (1 << 11) | (1 << 12) | (1 << 23),
        // Microcode revision: the host's.
        // SAFETY: IA32_BIOS_SIGN_ID exists on every x86_64 CPU; reading has no effect.
        0x8b => unsafe { rdmsr(0x8b) },
        // PLATFORM_INFO, MISC_FEATURES_ENABLES, the hypercall-page MSR: read as 0.
        0xce | 0x140 | 0x4000_0000 => 0,
        0x10 => cpu::rdtsc(),
        // Virtual machine check (Xen's vMCE): two banks, nothing logged.
        0x179 => VMCE_BANKS,
        0x17a | 0x17b => 0,
        i if (0x400..0x400 + 4 * VMCE_BANKS as u32).contains(&i) => 0,
        _ => return None,
    })
}

fn write_msr(v: &mut Vcpu, index: u32, val: u64) -> bool {
    let canonical = xenolith_arch::paging::is_canonical(val);
    match index {
        msr::FS_BASE | msr::GS_BASE | msr::SHADOW_GS_BASE if !canonical => false,
        msr::FS_BASE => {
            v.pv.fs_base = val;
            // SAFETY: canonical value for the running vCPU.
            unsafe { cpu::wrmsr(msr::FS_BASE, val) };
            true
        }
        msr::GS_BASE | msr::SHADOW_GS_BASE => {
            let kernel = v.pv.kernel_mode == (index == msr::GS_BASE);
            if kernel {
                v.pv.gs_base_kernel = val
            } else {
                v.pv.gs_base_user = val
            }
            // SAFETY: canonical value for the running vCPU.
            unsafe { cpu::wrmsr(index, val) };
            true
        }
        // Writing back the value it reads is accepted; anything else is refused. PAT is
        // fixed for PV guests: every write faults.
        msr::EFER | 0x1a0 => read_msr(v, index) == Some(val),
        // vMCE: control and status writes are accepted (status only when clearing).
        0x17a | 0x17b => true,
        i if (0x400..0x400 + 4 * VMCE_BANKS as u32).contains(&i) => i % 4 != 1 || val == 0,
        _ => false,
    }
}

/// #GP(0) from the guest kernel: emulates a privileged instruction. Returns true if done.
pub fn privileged_op(v: &mut Vcpu, regs: &mut TrapFrame) -> bool {
    let (b, n) = fetch(regs);
    let Some(dec) = decode::decode(&b[..n]) else {
        return false;
    };
    // Only port I/O and cli/sti (gated by the virtual IOPL) are for guest user mode; every
    // other privileged instruction is emulated for the guest kernel only (Xen).
    let io_class = matches!(
        dec.insn,
        Insn::In { .. } | Insn::Out { .. } | Insn::Cli | Insn::Sti
    );
    if !io_class && !v.pv.kernel_mode {
        return false;
    }
    match dec.insn {
        Insn::In { port, size } | Insn::Out { port, size } => {
            if !iopl_ok(v) {
                return false;
            }
            let port = port.map_or(regs.rdx as u32 & 0xffff, u32::from);
            if let Insn::In { .. } = dec.insn {
                let data = io_read(v, port, size);
                regs.rax = match size {
                    IoSize::Byte => (regs.rax & !0xff) | u64::from(data & 0xff),
                    IoSize::Word => (regs.rax & !0xffff) | u64::from(data & 0xffff),
                    IoSize::Dword => u64::from(data),
                };
            } else {
                io_write(v, port, size, regs.rax as u32);
            }
        }
        // With I/O privilege, Xen makes cli/sti no-ops: the guest masks events through
        // vcpu_info, never through the real IF.
        Insn::Cli | Insn::Sti => {
            if !iopl_ok(v) {
                return false;
            }
        }
        Insn::Clts => {
            v.pv.cr0_ts = false;
            sync_cr0_ts(v);
        }
        // Cache flushes only make sense for the hardware domain; others are ignored.
        Insn::Wbinvd => {
            if v.domain().privileged {
                // SAFETY: WBINVD only writes back and invalidates caches.
                unsafe { core::arch::asm!("wbinvd", options(nostack)) };
            }
        }
        Insn::MovFromCr { cr, reg } => {
            let val = match cr {
                0 => (cpu::read_cr0() & !(1 << 3)) | if v.pv.cr0_ts { 1 << 3 } else { 0 },
                2 => v.pv.cr2,
                3 => {
                    (if v.pv.kernel_mode {
                        v.pv.guest_table
                    } else {
                        v.pv.guest_table_user
                    }) << 12
                }
                4 => v.pv.cr4,
                _ => return false,
            };
            *reg_mut(regs, reg) = val;
        }
        Insn::MovToCr { cr: 0, reg } => {
            // Only TS may change (Xen: other bits must match).
            let val = *reg_mut(regs, reg);
            let cur = cpu::read_cr0() & !(1 << 3);
            if val & !(1 << 3) != cur {
                return false;
            }
            v.pv.cr0_ts = val & (1 << 3) != 0;
            sync_cr0_ts(v);
        }
        Insn::MovToCr { cr: 4, reg } => {
            // Xen's pv_fixup_guest_cr4: keep what a PV guest may control, never fault.
            let allowed = (1 << 2) | (1 << 6) | (1 << 9) | (1 << 10) | (1 << 18);
            v.pv.cr4 = (*reg_mut(regs, reg) & allowed) | (1 << 5);
        }
        Insn::MovToCr { cr: 3, reg } => {
            let mfn = *reg_mut(regs, reg) >> 12;
            let dom = v.domain().id;
            let mut env = crate::mm::frametable::lock();
            if crate::pvmm::new_baseptr(&mut env, dom, dom, &mut v.pv.guest_table, mfn).is_err() {
                return false;
            }
            // SAFETY: just validated as this domain's L4 with the hypervisor slots.
            unsafe { cpu::write_cr3(v.pv.guest_table << 12) };
            // As MMUEXT_NEW_BASEPTR: the old address space's global user mappings go too.
            cpu::flush_tlb_global();
        }
        Insn::MovToCr { .. } => return false,
        Insn::MovFromDr { dr, reg } => {
            let val = match dr {
                0..=3 | 6 | 7 => v.pv.debugreg[usize::from(dr)],
                4 => v.pv.debugreg[6],
                5 => v.pv.debugreg[7],
                _ => return false,
            };
            *reg_mut(regs, reg) = val;
        }
        Insn::MovToDr { dr, reg } => {
            let val = *reg_mut(regs, reg);
            match dr {
                0..=3 if crate::guest_mem::range_ok(val, 1) => v.pv.debugreg[usize::from(dr)] = val,
                6 => v.pv.debugreg[6] = (val & 0xffff_ffff & !0xffff_1ff0) | 0xffff_0ff0,
                7 => v.pv.debugreg[7] = (val & 0xffff_ffff & !0xd800) | 0x400,
                _ => return false,
            }
        }
        Insn::Rdmsr => match read_msr(v, regs.rcx as u32) {
            Some(val) => {
                regs.rax = val & 0xffff_ffff;
                regs.rdx = val >> 32;
            }
            None => return false,
        },
        Insn::Wrmsr => {
            let val = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
            if !write_msr(v, regs.rcx as u32, val) {
                return false;
            }
        }
        Insn::Xsetbv => {
            let val = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
            let supported =
                u64::from(core::arch::x86_64::__cpuid_count(0xd, 0).eax) & GUEST_XCR0_MASK;
            // XCR0 only; x87 always on; AVX needs SSE; nothing beyond what is enabled.
            if regs.rcx as u32 != 0
                || val & 1 == 0
                || val & !supported != 0
                || (val & 4 != 0 && val & 2 == 0)
            {
                return false;
            }
            // SAFETY: a valid XCR0 value, checked above against the supported components.
            unsafe {
                core::arch::asm!("xsetbv", in("ecx") 0u32, in("eax") val as u32, in("edx") (val >> 32) as u32, options(nostack))
            };
        }
        Insn::Rdtsc | Insn::Rdtscp | Insn::Hlt => return false,
    }
    regs.rip += dec.len as u64;
    true
}

/// A write fault on a read-only mapping of one of the guest's own L1 page tables: emulate the
/// store through the page-type rules (Xen's `ptwr_do_page_fault`). Returns true if done.
pub fn ptwr_fault(v: &mut Vcpu, regs: &mut TrapFrame, cr2: u64) -> bool {
    use crate::mm::frametable;
    use crate::pvmm::{self, FrameEnv, Ptwr};
    use decode::PteWrite;
    // Present + write, not reserved-bit or fetch, from guest kernel mode.
    const PRESENT: u32 = 1;
    const WRITE: u32 = 2;
    const RSVD: u32 = 8;
    const FETCH: u32 = 16;
    if regs.error_code & (PRESENT | WRITE | RSVD | FETCH) != PRESENT | WRITE || !v.pv.kernel_mode {
        return false;
    }
    let (b, n) = fetch(regs);
    let Some(w) = decode::decode_write(&b[..n]) else {
        return false;
    };
    let dom = v.domain().id;
    let mut env = frametable::lock();
    // Walk the guest's current tables to the PTE mapping cr2: it must be present, read-only,
    // and map an L1 table of this domain (checked inside `ptwr_emulated_update`).
    let mut table = v.pv.guest_table;
    for level in (1..=4u32).rev() {
        let e = env.read_entry(table, ((cr2 >> (12 + 9 * (level - 1))) & 511) as usize);
        if e & 1 == 0 || (level > 1 && level < 4 && e & 0x80 != 0) {
            return false;
        }
        if level == 1 && e & 2 != 0 {
            return false;
        }
        table = (e & 0x000f_ffff_ffff_f000) >> 12;
    }
    let l1 = table;
    let offset = (cr2 & 0xfff) as usize;
    let mask = if w.size == 8 {
        u64::MAX
    } else {
        (1u64 << (w.size * 8)) - 1
    };
    let current = env.read_entry(l1, offset / 8) >> ((offset % 8) * 8) & mask;
    let (val, old) = match w.op {
        PteWrite::MovReg { reg } | PteWrite::Xchg { reg } => (*reg_mut(regs, reg) & mask, None),
        PteWrite::MovImm { imm } => (imm & mask, None),
        PteWrite::Cmpxchg { reg } => (*reg_mut(regs, reg) & mask, Some(regs.rax & mask)),
        // Read-modify-write forms: computed on the current entry, written as a cmpxchg so a
        // concurrent change is not lost (the guest retries nothing: Xen's emulator loops).
        PteWrite::AluImm { or, imm } => (
            if or { current | imm } else { current & imm } & mask,
            Some(current),
        ),
        PteWrite::AluReg { or, reg } => {
            let v = *reg_mut(regs, reg) & mask;
            (if or { current | v } else { current & v }, Some(current))
        }
        PteWrite::BitImm { set, bit } => {
            let b = 1u64 << (u32::from(bit) % (w.size as u32 * 8));
            (if set { current | b } else { current & !b }, Some(current))
        }
    };
    match pvmm::ptwr_emulated_update(&mut env, dom, l1, offset, val, w.size, old) {
        Ptwr::Okay => {
            match w.op {
                PteWrite::Xchg { reg } => *reg_mut(regs, reg) = current,
                PteWrite::Cmpxchg { .. } => regs.rflags |= 1 << 6, // ZF: exchanged
                _ => {}
            }
        }
        Ptwr::CmpxchgFailed { current } => {
            if !matches!(w.op, PteWrite::Cmpxchg { .. }) {
                // A read-modify-write lost a race: re-execute the instruction.
                return true;
            }
            regs.rax = (regs.rax & !mask) | current;
            regs.rflags &= !(1 << 6);
        }
        Ptwr::Unhandleable => return false,
    }
    regs.rip += w.len as u64;
    true
}
