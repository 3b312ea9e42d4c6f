//! The ACPI tables a PVH guest finds through `hvm_start_info.rsdp_paddr` (pure, host-tested),
//! shaped like the ones libxl builds for a PVH domU: a hardware-reduced FADT with an empty
//! DSDT, and a MADT listing one enabled local APIC per vCPU (APIC id = vCPU id) and no
//! IO-APIC. Linux needs the MADT to take its APIC path at all: without one it never sets up
//! its per-CPU clock events, the Xen timer included.
//!
//! Layout in one page at guest-physical `base`: RSDP (36 bytes), XSDT, FADT, DSDT, MADT.

use alloc::vec::Vec;

/// The local APIC's physical address in the MADT.
pub const LAPIC_BASE: u32 = 0xfee0_0000;
/// OEM id written into every table.
const OEM_ID: &[u8; 6] = b"XENLTH";
/// FADT flag: hardware-reduced ACPI (no PM timer, SCI, GPEs: a PVH guest has none).
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// FADT IA-PC boot flags: no VGA, no CMOS RTC (as libxl for PVH).
const FADT_BOOT_NO_VGA_NO_CMOS: u16 = (1 << 2) | (1 << 5);

/// The byte that makes `bytes` sum to zero, given its own slot holds 0.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, &b| a.wrapping_add(b)))
}

/// A standard table header (36 bytes) for `sig` of total `len` bytes and `revision`.
fn header(sig: &[u8; 4], len: usize, revision: u8) -> Vec<u8> {
    let mut t = alloc::vec![0u8; len];
    t[0..4].copy_from_slice(sig);
    t[4..8].copy_from_slice(&(len as u32).to_le_bytes());
    t[8] = revision;
    t[10..16].copy_from_slice(OEM_ID);
    t[16..24].copy_from_slice(b"XENOLITH");
    t[24..28].copy_from_slice(&1u32.to_le_bytes());
    t[28..32].copy_from_slice(b"XNLT");
    t[32..36].copy_from_slice(&1u32.to_le_bytes());
    t
}

/// Sets the checksum byte (offset 9) of a table.
fn seal(mut t: Vec<u8>) -> Vec<u8> {
    t[9] = 0;
    t[9] = checksum(&t);
    t
}

/// The tables for `nr_vcpus` vCPUs, to be placed at guest-physical `base` (8-byte aligned).
/// The RSDP is at `base`.
pub fn tables(base: u64, nr_vcpus: u32) -> Vec<u8> {
    let rsdp_len = 36;
    let xsdt_len = 36 + 2 * 8;
    let fadt_len = 276;
    let dsdt_len = 36;
    let madt_len = 44 + 8 * nr_vcpus as usize;
    let xsdt_at = base + rsdp_len as u64;
    let fadt_at = xsdt_at + xsdt_len as u64;
    let dsdt_at = fadt_at + fadt_len as u64;
    let madt_at = dsdt_at + dsdt_len as u64;

    let mut rsdp = alloc::vec![0u8; rsdp_len];
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(OEM_ID);
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&(rsdp_len as u32).to_le_bytes());
    rsdp[24..32].copy_from_slice(&xsdt_at.to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);

    let mut xsdt = header(b"XSDT", xsdt_len, 1);
    xsdt[36..44].copy_from_slice(&fadt_at.to_le_bytes());
    xsdt[44..52].copy_from_slice(&madt_at.to_le_bytes());

    // FADT revision 6 (ACPI 6.0): only the fields a hardware-reduced platform uses.
    let mut fadt = header(b"FACP", fadt_len, 6);
    fadt[40..44].copy_from_slice(&(dsdt_at as u32).to_le_bytes());
    fadt[109..111].copy_from_slice(&FADT_BOOT_NO_VGA_NO_CMOS.to_le_bytes());
    fadt[112..116].copy_from_slice(&FADT_HW_REDUCED_ACPI.to_le_bytes());
    fadt[131] = 0; // FADT minor version (6.0)
    fadt[140..148].copy_from_slice(&dsdt_at.to_le_bytes()); // X_DSDT

    // An empty DSDT: no devices (a PVH guest's devices are all paravirtual).
    let dsdt = header(b"DSDT", dsdt_len, 2);

    let mut madt = header(b"APIC", madt_len, 4);
    madt[36..40].copy_from_slice(&LAPIC_BASE.to_le_bytes());
    // Flags 0: no dual 8259 PICs.
    for i in 0..nr_vcpus as usize {
        let e = &mut madt[44 + 8 * i..52 + 8 * i];
        e[0] = 0; // Processor Local APIC
        e[1] = 8;
        e[2] = i as u8; // ACPI processor UID
        e[3] = i as u8; // APIC id
        e[4..8].copy_from_slice(&1u32.to_le_bytes()); // enabled
    }

    let mut out = rsdp;
    for t in [xsdt, fadt, dsdt, madt] {
        out.extend_from_slice(&seal(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, &x| a.wrapping_add(x))
    }

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn tables_chain_from_the_rsdp_with_valid_checksums() {
        let base = 0x12_3000;
        let t = tables(base, 2);
        assert!(t.len() <= 4096);
        assert_eq!(&t[0..8], b"RSD PTR ");
        assert_eq!(sum(&t[..20]), 0);
        assert_eq!(sum(&t[..36]), 0);
        let off = |pa: u64| (pa - base) as usize;
        let xsdt = off(u64_at(&t, 24));
        assert_eq!(&t[xsdt..xsdt + 4], b"XSDT");
        let xlen = u32_at(&t, xsdt + 4) as usize;
        assert_eq!(sum(&t[xsdt..xsdt + xlen]), 0);
        let entries: Vec<usize> = (0..(xlen - 36) / 8)
            .map(|i| off(u64_at(&t, xsdt + 36 + 8 * i)))
            .collect();
        let sigs: Vec<&[u8]> = entries.iter().map(|&e| &t[e..e + 4]).collect();
        assert_eq!(sigs, [b"FACP".as_slice(), b"APIC".as_slice()]);
        for &e in &entries {
            let len = u32_at(&t, e + 4) as usize;
            assert_eq!(sum(&t[e..e + len]), 0, "{:?}", &t[e..e + 4]);
        }
        let fadt = entries[0];
        assert_ne!(u32_at(&t, fadt + 112) & FADT_HW_REDUCED_ACPI, 0);
        let dsdt = off(u64_at(&t, fadt + 140));
        assert_eq!(&t[dsdt..dsdt + 4], b"DSDT");
        assert_eq!(sum(&t[dsdt..dsdt + 36]), 0);
        let madt = entries[1];
        assert_eq!(u32_at(&t, madt + 36), LAPIC_BASE);
        assert_eq!(u32_at(&t, madt + 4), 44 + 16);
        // Two enabled local APICs, ids 0 and 1.
        assert_eq!(&t[madt + 44..madt + 52], &[0, 8, 0, 0, 1, 0, 0, 0]);
        assert_eq!(&t[madt + 52..madt + 60], &[0, 8, 1, 1, 1, 0, 0, 0]);
    }
}
