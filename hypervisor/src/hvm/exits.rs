//! What an HVM guest cannot do itself: CPUID (the guest's CPU policy and Xen's leaves), MSRs
//! (the hypercall-page MSR and what the back-end does not pass through), port I/O (Xen's
//! debug port 0xe9; nothing else exists for a PVH guest) and XSETBV.

use super::HvmVcpu;
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

/// The guest's CPUID: the PV policy's host view (same hidden features), with what differs
/// for an HVM guest: Xen's HVM leaf, OSXSAVE from the guest's CR4, no local APIC (none is
/// emulated), the initial APIC id being the vCPU id.
pub fn cpuid(v: &Vcpu, ctl: &ControlState, leaf: u32, subleaf: u32) -> [u32; 4] {
    let d = v.domain();
    let mut r = crate::pv::emulate::guest_cpuid(leaf, subleaf, d.privileged);
    match leaf {
        // MMU_PT_UPDATE_PRESERVE_AD (ecx bit 0) is a PV feature.
        0x4000_0002 => r[2] = 0,
        0x4000_0004 => r = [HVM_FEATURES, v.id, u32::from(d.id), 0],
        // No PV-specific leaf for an HVM guest.
        0x4000_0005 => r = [0; 4],
        1 => {
            // OSXSAVE (ecx 27) mirrors the guest's CR4.OSXSAVE (bit 18).
            r[2] &= !(1 << 27);
            if ctl.cr4 & (1 << 18) != 0 {
                r[2] |= 1 << 27;
            }
            // No local APIC / x2APIC; MTRRs are not emulated either.
            r[3] &= !((1 << 9) | (1 << 12));
            r[2] &= !(1 << 21);
            r[1] = (r[1] & 0x00ff_ffff) | (v.id << 24);
        }
        _ => {}
    }
    r
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

/// Handles RDMSR/WRMSR. Returns false when the guest gets #GP instead (the caller injects
/// it and does not skip the instruction).
pub fn handle_msr(v: &Vcpu, arch: &mut dyn ArchVcpu, write: bool) -> bool {
    let regs = *arch.regs();
    let index = regs.rcx as u32;
    let value = (regs.rdx << 32) | (regs.rax & 0xffff_ffff);
    let d = v.domain();
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
            _ => arch.write_msr(index, value).then_some(0),
        }
    } else {
        match index {
            // The time-stamp counter (not offset: the guest shares the host's TSC).
            0x10 => Some(xenolith_arch::cpu::rdtsc()),
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
