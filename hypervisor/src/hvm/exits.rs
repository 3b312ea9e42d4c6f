//! What an HVM guest cannot do itself: CPUID (the guest's CPU policy and Xen's leaves), MSRs
//! (the hypercall-page MSR and what the back-end does not pass through), port I/O (Xen's
//! debug port 0xe9; nothing else exists for a PVH guest) and XSETBV.

use super::HvmVcpu;
use super::vlapic::{Effect, MSR_APIC_BASE, X2APIC_FIRST, X2APIC_LAST};
use crate::domain::Vcpu;
use crate::printk;
use xenolith_arch::hvm::{ControlState, GuestRegs, Vcpu as ArchVcpu};

/// `#GP` and `#UD`.
pub const GP: u8 = 13;
/// Invalid opcode.
pub const UD: u8 = 6;

/// Xen's hypercall-page MSR (CPUID leaf 0x40000002 ebx).
const MSR_HYPERCALL_PAGE: u32 = 0x4000_0000;
/// Xen's HVM debug console port (`XEN_HVM_DEBUGCONS_IOPORT`).
const DEBUGCONS_PORT: u16 = 0xe9;
/// `XEN_HVM_CPUID_VCPU_ID_PRESENT | XEN_HVM_CPUID_DOMID_PRESENT |
/// XEN_HVM_CPUID_UPCALL_VECTOR` (`HVMOP_set_evtchn_upcall_vector` is available).
const HVM_FEATURES: u32 = (1 << 3) | (1 << 4) | (1 << 6);

/// The guest's CPUID (Xen's HVM policy, simplified): the host's leaves with what is not
/// virtualized here hidden, and Xen's leaves at 0x40000000. The local APIC and x2APIC are
/// shown (see `vlapic`); hidden: TSC deadline, MTRRs, machine checks, performance counters,
/// thermal/power management, MONITOR/MWAIT, VMX/SVM/SMX, TSX, RDTSCP/RDPID (TSC_AUX is not
/// switched), PKU, and the speculation-control MSRs (not switched either). OSXSAVE follows the
/// guest's CR4; the initial APIC id is the vCPU id.
pub fn cpuid(v: &Vcpu, ctl: &ControlState, leaf: u32, subleaf: u32) -> [u32; 4] {
    let d = v.domain();
    if (0x4000_0000..0x4000_0100).contains(&leaf) {
        let mut r = crate::pv::emulate::guest_cpuid(leaf, subleaf, d.privileged);
        match leaf {
            // MMU_PT_UPDATE_PRESERVE_AD (ecx bit 0) is a PV feature.
            0x4000_0002 => r[2] = 0,
            0x4000_0004 => r = [HVM_FEATURES, v.id, u32::from(d.id), 0],
            // No PV-specific leaf for an HVM guest.
            0x4000_0005 => r = [0; 4],
            _ => {}
        }
        return r;
    }
    let max_basic = core::arch::x86_64::__cpuid(0).eax;
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    let in_range = if leaf >= 0x8000_0000 {
        leaf <= max_ext
    } else {
        leaf <= max_basic
    };
    if !in_range {
        return [0; 4];
    }
    let h = core::arch::x86_64::__cpuid_count(leaf, subleaf);
    let (a, mut b, mut c, mut dx) = (h.eax, h.ebx, h.ecx, h.edx);
    let bits = |list: &[u32]| list.iter().fold(0u32, |m, &i| m | (1 << i));
    match leaf {
        1 => {
            // ecx: DTES64, MONITOR, DS-CPL, VMX, SMX, EST, TM2, PDCM, TSC-deadline.
            c &= !bits(&[2, 3, 4, 5, 6, 7, 8, 15, 24, 27]);
            if ctl.cr4 & (1 << 18) != 0 {
                c |= 1 << 27;
            }
            c |= (1 << 31) | (1 << 21);
            // edx: MCE, MTRR, MCA, PSN, DS, ACPI, TM, PBE; the APIC is there.
            dx &= !bits(&[7, 12, 14, 18, 21, 22, 29, 31]);
            dx |= 1 << 9;
            b = (b & 0x00ff_ffff) | (v.id << 24);
        }
        // MONITOR/MWAIT, power management, performance monitoring, SVM.
        5 | 6 | 0xa | 0x8000_000a => return [0; 4],
        // Topology: one thread per core, one core per package; x2APIC id = vCPU id.
        0xb | 0x1f => {
            return match subleaf {
                0 => [0, 1, 0x100, v.id],
                1 => [0, 1, 0x201, v.id],
                _ => [0, 0, subleaf & 0xff, v.id],
            };
        }
        7 if subleaf == 0 => {
            // ebx: HLE, RTM, MPX, RDT-A/PQM; ecx: PKU, OSPKE, WAITPKG; edx: the speculation
            // controls (IBRS/IBPB, STIBP, L1D_FLUSH, ARCH_CAPABILITIES, SSBD), MD_CLEAR kept.
            b &= !bits(&[4, 11, 12, 14, 15]);
            c &= !bits(&[3, 4, 5, 22]);
            dx &= !bits(&[26, 27, 28, 29, 31]);
        }
        0xd if subleaf == 0 => {
            let (mut a, d) = (a, 0);
            a &= crate::pv::emulate::GUEST_XCR0_MASK as u32;
            return [a, b, c, d];
        }
        0x8000_0001 => {
            // ecx: SVM, SKINIT, WDT, LWP; edx: RDTSCP.
            c &= !bits(&[2, 12, 13, 15]);
            dx &= !bits(&[27]);
        }
        0x8000_0008 => {
            // ebx: IBPB, IBRS, STIBP, SSBD, VIRT_SSBD and their "always on"/"preferred" bits.
            b &= !bits(&[12, 14, 15, 16, 17, 18, 24, 25, 26]);
        }
        _ => {}
    }
    [a, b, c, dx]
}

/// Handles CPUID: fills rax..rdx. The caller skips the instruction.
pub fn handle_cpuid(v: &Vcpu, ctl: &ControlState, regs: &mut GuestRegs) {
    let r = cpuid(v, ctl, regs.rax as u32, regs.rcx as u32);
    regs.rax = u64::from(r[0]);
    regs.rbx = u64::from(r[1]);
    regs.rcx = u64::from(r[2]);
    regs.rdx = u64::from(r[3]);
}

/// Xen's HVM hypercall page: a 32-byte stub per hypercall, `mov eax, nr; vmcall|vmmcall;
/// ret`, with `HYPERVISOR_iret` as `ud2` (not available to HVM guests).
pub fn hypercall_page(vmx: bool) -> [u8; 4096] {
    let mut p = [0xccu8; 4096];
    for (nr, stub) in p.chunks_exact_mut(32).enumerate() {
        stub[0] = 0xb8;
        stub[1..5].copy_from_slice(&(nr as u32).to_le_bytes());
        stub[5..8].copy_from_slice(&[0x0f, 0x01, if vmx { 0xc1 } else { 0xd9 }]);
        stub[8] = 0xc3;
    }
    let iret = xen_abi::hypercall::iret as usize * 32;
    p[iret..iret + 2].copy_from_slice(&[0x0f, 0x0b]);
    p
}

/// `MSR_IA32_UCODE_REV` / `MSR_AMD_PATCHLEVEL`.
const MSR_UCODE_REV: u32 = 0x8b;
/// `MSR_IA32_PLATFORM_ID` (Intel).
const MSR_PLATFORM_ID: u32 = 0x17;
/// `MSR_IA32_MISC_ENABLE` (Intel).
const MSR_MISC_ENABLE: u32 = 0x1a0;
/// `MSR_K8_HWCR` (AMD).
const MSR_K8_HWCR: u32 = 0xc001_0015;

/// Whether the domain runs on Intel (VMX) hardware.
fn is_intel(d: &crate::domain::Domain) -> bool {
    d.hvm
        .as_ref()
        .is_some_and(|h| h.vendor == super::Vendor::Vmx)
}

/// `MISC_ENABLE` as an Intel guest reads it (Xen's `guest_misc_enable`): fast strings, no
/// BTS, no PEBS; `None` (#GP) elsewhere.
fn misc_enable(d: &crate::domain::Domain) -> Option<u64> {
    is_intel(d).then_some((1 << 0) | (1 << 11) | (1 << 12))
}

/// Handles RDMSR/WRMSR. Returns false when the guest gets #GP instead (the caller injects
/// it and does not skip the instruction).
pub fn handle_msr(
    d: &crate::domain::Domain,
    hv: &mut HvmVcpu,
    arch: &mut dyn ArchVcpu,
    write: bool,
) -> bool {
    let regs = *arch.regs();
    let index = regs.rcx as u32;
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let result = if write {
        match index {
            MSR_HYPERCALL_PAGE => {
                // gfn in bits 12+, the page index (only one page) in bits 0-11.
                let Some(h) = d.hvm.as_ref() else {
                    return false;
                };
                if value & 0xfff != 0 {
                    return false;
                }
                let page = hypercall_page(h.vendor == super::Vendor::Vmx);
                // Xen ignores a gfn it cannot map (the guest then has no page).
                let _ = h.p2m.write(value & !0xfff, &page);
                Some(0)
            }
            MSR_APIC_BASE => hv.lapic.set_base(value).then_some(0),
            X2APIC_FIRST..=X2APIC_LAST => match hv.lapic.write(index, value) {
                Some(Effect::IpiElsewhere(dest, vector)) => {
                    printk!(
                        "{}: IPI to APIC id {dest} (vector {vector:#x}) dropped: \
                         no other vCPU runs\n",
                        d.label()
                    );
                    Some(0)
                }
                Some(Effect::None) => Some(0),
                None => None,
            },
            // Microcode revision: writing 0 before CPUID is Intel's way to read it.
            MSR_UCODE_REV if value == 0 => Some(0),
            // Writes that keep the value the guest reads are accepted.
            MSR_MISC_ENABLE if Some(value) == misc_enable(d) => Some(0),
            _ => arch.write_msr(index, value).then_some(0),
        }
    } else {
        match index {
            // The time-stamp counter (not offset: the guest shares the host's TSC).
            0x10 => Some(xenolith_arch::cpu::rdtsc()),
            MSR_APIC_BASE => Some(hv.lapic.base()),
            X2APIC_FIRST..=X2APIC_LAST => hv.lapic.read(index),
            // No microcode revision or platform id to report (Xen's HVM view: 0).
            MSR_UCODE_REV => Some(0),
            MSR_PLATFORM_ID if is_intel(d) => Some(0),
            MSR_MISC_ENABLE => misc_enable(d),
            // AMD's hardware configuration: nothing enabled for the guest.
            MSR_K8_HWCR if !is_intel(d) => Some(0),
            _ => arch.read_msr(index),
        }
    };
    match result {
        Some(val) => {
            if !write {
                let r = arch.regs_mut();
                r.rax = val & 0xffff_ffff;
                r.rdx = val >> 32;
            }
            true
        }
        None => false,
    }
}

/// Handles an I/O port access: 0xe9 prints the guest's line as `(dN) text` (Xen's
/// `hvm_print_line`); other ports read as all ones and drop writes (no devices).
pub fn handle_io(
    d: &crate::domain::Domain,
    hv: &mut HvmVcpu,
    regs: &mut GuestRegs,
    port: u16,
    size: u8,
    write: bool,
) {
    if write {
        if port == DEBUGCONS_PORT {
            let b = regs.rax as u8;
            if b == b'\n' || hv.e9_line.len() >= 256 {
                printk!(
                    "({}) {}\n",
                    d.label(),
                    alloc::string::String::from_utf8_lossy(&hv.e9_line)
                );
                hv.e9_line.clear();
            } else if b != b'\r' {
                hv.e9_line.push(b);
            }
        }
    } else {
        let mask = match size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        };
        // `in eax` zero-extends into rax; 8/16-bit forms keep the upper bits.
        regs.rax = if size == 4 { mask } else { regs.rax | mask };
    }
}

/// Validates an XSETBV (index `ecx`, value `edx:eax`): true if it may be set.
pub fn xsetbv_ok(regs: &GuestRegs, cpl: u8) -> Option<u64> {
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let host = u64::from(core::arch::x86_64::__cpuid_count(0xd, 0).eax)
        & crate::pv::emulate::GUEST_XCR0_MASK;
    let ok = cpl == 0
        && regs.rcx as u32 == 0
        && value & 1 != 0
        && value & !host == 0
        && (value & 4 == 0 || value & 2 != 0);
    ok.then_some(value)
}
