//! `cpuid`: Xen's CPUID leaves as an HVM guest sees them. Only fields that do not depend on
//! the host are printed (no TSC frequency, no hardware-assist bits).

use crate::hypercall::cpuid;
use crate::suites::Env;
use crate::verdict::{Hex, Suite};

/// Leaf base+4 (HVM features), `XEN_HVM_CPUID_*` bits that do not depend on the host CPU or
/// IOMMU: VCPU_ID_PRESENT (3), DOMID_PRESENT (4), UPCALL_VECTOR (6). APIC_ACCESS_VIRT (0),
/// X2APIC_VIRT (1), IOMMU_MAPPINGS (2) and EXT_DEST_ID (5) vary with the machine.
const HVM_STABLE_BITS: u32 = (1 << 3) | (1 << 4) | (1 << 6);

pub fn run(s: &mut Suite, env: &Env) {
    let base = env.leaves.base;
    s.check(
        "signature",
        true,
        format_args!("base={:#x} sig=XenVMMXenVMM", base),
    );
    s.expect_eq(
        "max_leaf",
        "max",
        Hex(u64::from(env.leaves.max - base)),
        Hex(5),
    );
    let (eax, ebx, ecx, edx) = cpuid(base + 1);
    s.check(
        "version",
        eax == 0x0004_0011,
        format_args!("eax={eax:#x} ebx={ebx:#x} ecx={ecx:#x} edx={edx:#x}"),
    );
    let (pages, msr, ecx, edx) = cpuid(base + 2);
    s.check(
        "hypercall_msr",
        pages == 1 && msr == 0x4000_0000,
        format_args!("pages={pages} msr={msr:#x} ecx={ecx:#x} edx={edx:#x}"),
    );
    let (eax, ebx, ecx, _) = cpuid(base + 4);
    crate::console::println!("PVHTEST info cpuid base+4 eax={eax:#x} ebx={ebx:#x} ecx={ecx:#x}");
    let stable = eax & HVM_STABLE_BITS;
    // ecx is the domain id: 0 for dom0, never 0 for a domU.
    let domid_ok = if env.domu { ecx != 0 } else { ecx == 0 };
    s.check(
        "hvm_features",
        stable == HVM_STABLE_BITS && ebx == 0 && domid_ok,
        format_args!("stable_bits={stable:#x} vcpu_id={ebx} domid={ecx}"),
    );
}
