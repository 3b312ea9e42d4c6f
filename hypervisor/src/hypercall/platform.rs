//! `physdev_op`, `platform_op` and the debug-register hypercalls (the parts implemented so far).

use super::Ctx;
use crate::guest_mem::{copy_from_guest, copy_to_guest, read_guest, write_guest};
use crate::pirq::NR_PIRQS;
use xen_abi::errno::Errno;
use xen_abi::physdev::{
    MAP_PIRQ_TYPE_GSI, PHYSDEVOP_alloc_irq_vector, PHYSDEVOP_eoi, PHYSDEVOP_get_free_pirq,
    PHYSDEVOP_irq_status_query, PHYSDEVOP_map_pirq, PHYSDEVOP_set_iopl, PHYSDEVOP_setup_gsi,
    PHYSDEVOP_unmap_pirq, PhysdevEoi, PhysdevGetFreePirq, PhysdevIrq, PhysdevMapPirq,
    PhysdevSetupGsi, PhysdevUnmapPirq,
};
use xen_abi::platform::XENPF_INTERFACE_VERSION;
use xen_abi::platform::{XENPF_get_cpu_version, XENPF_get_cpuinfo};

/// `physdev_op(cmd, arg)`.
pub fn do_physdev_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    match a[0] as u32 {
        PHYSDEVOP_set_iopl => {
            let mut b = [0u8; 4];
            copy_from_guest(&mut b, a[1])?;
            let iopl = u32::from_le_bytes(b);
            if iopl > 3 {
                return Err(Errno::EINVAL);
            }
            ctx.vcpu.pv.iopl = iopl;
            Ok(0)
        }
        PHYSDEVOP_irq_status_query => {
            // struct physdev_irq_status_query { uint32_t irq; uint32_t flags; }: no pIRQs are
            // routed yet, so every valid one needs no EOI; out-of-range ones are refused.
            let mut b = [0u8; 8];
            copy_from_guest(&mut b, a[1])?;
            if u32::from_le_bytes(b[..4].try_into().unwrap_or_default()) >= NR_PIRQS {
                return Err(Errno::EINVAL);
            }
            copy_to_guest(a[1] + 4, &0u32.to_le_bytes())?;
            Ok(0)
        }
        PHYSDEVOP_alloc_irq_vector => {
            // Xen keeps vectors to itself: this is a dummy that hands the IRQ back as the
            // "vector" (`struct physdev_irq { uint32_t irq; uint32_t vector; }`).
            let mut op: PhysdevIrq = read_guest(a[1])?;
            op.vector = op.irq;
            write_guest(a[1], &op)?;
            Ok(0)
        }
        cmd @ (PHYSDEVOP_map_pirq
        | PHYSDEVOP_unmap_pirq
        | PHYSDEVOP_setup_gsi
        | PHYSDEVOP_eoi
        | PHYSDEVOP_get_free_pirq) => pirq_op(ctx, cmd, a[1]),
        _ => Err(Errno::ENOSYS),
    }
}

/// The PIRQ operations of `physdev_op` (Xen's `physdev_map_pirq`, `physdev_unmap_pirq`,
/// `PHYSDEVOP_setup_gsi`, `PHYSDEVOP_eoi`, `PHYSDEVOP_get_free_pirq`), for GSIs of the
/// hardware domain: the mappings are kept (`crate::pirq`); the interrupts are not routed yet.
fn pirq_op(ctx: &mut Ctx<'_>, cmd: u32, arg: u64) -> Result<i64, Errno> {
    let d = ctx.vcpu.domain();
    let own = |domid: u16| domid == xen_abi::xen::DOMID_SELF || domid == d.id;
    match cmd {
        PHYSDEVOP_map_pirq => {
            let mut op: PhysdevMapPirq = read_guest(arg)?;
            if !own(op.domid) {
                // Mapping for another domain is the control domain's, for its device models.
                return Err(if d.privileged {
                    Errno::ESRCH
                } else {
                    Errno::EPERM
                });
            }
            if !d.privileged {
                return Err(Errno::EPERM);
            }
            if op.type_ != MAP_PIRQ_TYPE_GSI {
                // MSIs need PCI device tracking (not implemented).
                return Err(Errno::EINVAL);
            }
            let pirq = crate::pirq::with(d.id, |t| {
                t.map_gsi(op.index, op.pirq, crate::pirq::nr_gsis())
            })?;
            op.pirq = pirq as i32;
            write_guest(arg, &op)?;
            Ok(0)
        }
        PHYSDEVOP_unmap_pirq => {
            let op: PhysdevUnmapPirq = read_guest(arg)?;
            if !own(op.domid) || !d.privileged {
                return Err(Errno::EPERM);
            }
            let pirq = u32::try_from(op.pirq).map_err(|_| Errno::EINVAL)?;
            crate::pirq::with(d.id, |t| t.unmap(pirq))?;
            Ok(0)
        }
        PHYSDEVOP_setup_gsi => {
            let op: PhysdevSetupGsi = read_guest(arg)?;
            if !d.privileged {
                return Err(Errno::EPERM);
            }
            if op.gsi < 0 || op.gsi as u32 >= crate::pirq::nr_gsis() {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        PHYSDEVOP_eoi => {
            let op: PhysdevEoi = read_guest(arg)?;
            if !crate::pirq::with(d.id, |t| t.is_mapped(op.irq)) {
                return Err(Errno::EINVAL);
            }
            Ok(0)
        }
        _ => {
            let mut op: PhysdevGetFreePirq = read_guest(arg)?;
            if !d.privileged {
                return Err(Errno::EPERM);
            }
            // Above the GSIs, as Xen hands MSIs their PIRQs.
            op.pirq = crate::pirq::with(d.id, |t| t.free_pirq(crate::pirq::nr_gsis()))?;
            write_guest(arg, &op)?;
            Ok(0)
        }
    }
}

/// `platform_op(op)`: hardware-domain only; the interface version must match.
pub fn do_platform_op(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    if !ctx.vcpu.domain().privileged {
        return Err(Errno::EPERM);
    }
    let mut b = [0u8; 8];
    copy_from_guest(&mut b, a[0])?;
    if u32::from_le_bytes(b[4..8].try_into().unwrap_or_default()) != XENPF_INTERFACE_VERSION {
        return Err(Errno::EACCES);
    }
    // The union starts at offset 8 of struct xen_platform_op.
    let cmd = u32::from_le_bytes(b[..4].try_into().unwrap_or_default());
    let u = a[0] + 8;
    let cpus = crate::smpboot::online_apic_ids();
    match cmd {
        XENPF_get_cpuinfo => {
            // struct xenpf_pcpuinfo { xen_cpuid, max_present, flags, apic_id, acpi_id }
            let mut id = [0u8; 4];
            copy_from_guest(&mut id, u)?;
            let cpu = u32::from_le_bytes(id) as usize;
            let max_present = cpus.len().saturating_sub(1) as u32;
            let (flags, apic) = match cpus.get(cpu) {
                Some(&apic) => (1u32, apic), // XEN_PCPU_FLAGS_ONLINE
                None => (2u32, 0u32),        // XEN_PCPU_FLAGS_INVALID
            };
            let mut out = [0u8; 16];
            out[..4].copy_from_slice(&max_present.to_le_bytes());
            out[4..8].copy_from_slice(&flags.to_le_bytes());
            if flags == 1 {
                out[8..12].copy_from_slice(&apic.to_le_bytes());
                out[12..16].copy_from_slice(&apic.to_le_bytes()); // ACPI id = APIC id (MADT order)
            }
            copy_to_guest(u + 4, &out[..if flags == 1 { 16 } else { 8 }])?;
            Ok(0)
        }
        XENPF_get_cpu_version => {
            // struct xenpf_pcpu_version { xen_cpuid, max_present, vendor_id[12], family, model,
            // stepping }: the boot CPU's identification (all CPUs are alike here).
            let max_present = cpus.len().saturating_sub(1) as u32;
            let leaf0 = core::arch::x86_64::__cpuid(0);
            let sig = core::arch::x86_64::__cpuid(1).eax;
            let base_family = (sig >> 8) & 0xf;
            let family = if base_family == 0xf {
                base_family + ((sig >> 20) & 0xff)
            } else {
                base_family
            };
            let model = ((sig >> 4) & 0xf)
                | if base_family >= 6 {
                    ((sig >> 16) & 0xf) << 4
                } else {
                    0
                };
            let mut out = alloc::vec::Vec::with_capacity(28);
            out.extend_from_slice(&max_present.to_le_bytes());
            for r in [leaf0.ebx, leaf0.edx, leaf0.ecx] {
                out.extend_from_slice(&r.to_le_bytes());
            }
            for v in [family, model, sig & 0xf] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            copy_to_guest(u + 4, &out)?;
            Ok(0)
        }
        _ => Err(Errno::ENOSYS),
    }
}

/// `get_debugreg(reg)` (Xen's `do_get_debugreg`): the vCPU's virtual debug registers; DR4
/// and DR5 alias DR6 and DR7 (the guest cannot set CR4.DE).
pub fn do_get_debugreg(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let dr = &ctx.vcpu.pv.debugreg;
    match a[0] {
        r @ (0..=3 | 6 | 7) => Ok(dr[r as usize] as i64),
        4 => Ok(dr[6] as i64),
        5 => Ok(dr[7] as i64),
        _ => Err(Errno::ENODEV),
    }
}

/// `set_debugreg(reg, value)` (Xen's `set_debugreg`): addresses must be the guest's, DR6/DR7
/// are 32-bit with their architectural fixed bits, and DR7 may not enable general detect or
/// I/O breakpoints (CR4.DE is off for PV guests). Values are kept, not loaded into hardware.
pub fn do_set_debugreg(ctx: &mut Ctx<'_>, a: [u64; 5]) -> Result<i64, Errno> {
    let (reg, value) = (a[0], a[1]);
    let dr = &mut ctx.vcpu.pv.debugreg;
    match reg {
        0..=3 => {
            if !crate::guest_mem::range_ok(value, 1) {
                return Err(Errno::EPERM);
            }
            dr[reg as usize] = value;
        }
        4 | 6 => {
            if value >> 32 != 0 {
                return Err(Errno::EINVAL);
            }
            dr[6] = (value & !(1 << 12)) | 0xffff_0ff0;
        }
        5 | 7 => {
            if value >> 32 != 0 {
                return Err(Errno::EINVAL);
            }
            const GENERAL_DETECT: u64 = 1 << 13;
            let io_breakpoint = (0..4).any(|i| (value >> (16 + 4 * i)) & 3 == 2);
            if value & 0xff != 0 && (io_breakpoint || value & GENERAL_DETECT != 0) {
                return Err(Errno::EPERM);
            }
            if value & GENERAL_DETECT != 0 {
                return Err(Errno::EPERM);
            }
            dr[7] = (value & !((1 << 12) | (1 << 14) | (1 << 15))) | 0x400;
        }
        _ => return Err(Errno::ENODEV),
    }
    Ok(0)
}
