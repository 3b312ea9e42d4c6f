//! End-to-end tests: whole firmware table sets, from RSDP discovery to parsed tables, including
//! broken firmware and a mutation fuzz test.

use alloc::vec;
use alloc::vec::Vec;

use super::fixture::{
    FadtBuilder, Machine, MadtBuilder, hpet, rsdp_v1, rsdp_v2, rsdt, sdt, set_checksum, xsdt,
};
use super::madt::{LAPIC_ENABLED, PCAT_COMPAT};
use super::*;

const BASE: u64 = Machine::ACPI_BASE;
const RSDT: u64 = BASE;
const XSDT: u64 = BASE + 0x800;
const MADT: u64 = BASE + 0x3000;
const FADT: u64 = BASE + 0x5000;
const HPET: u64 = BASE + 0x6000;
const SSDT: u64 = BASE + 0x7000;
const RSDP: u64 = 0xf_6a50;

/// The tables listed by both root tables, in order.
const LISTED: [u64; 4] = [FADT, MADT, HPET, SSDT];

/// A 4-CPU MADT (CPU 2 disabled) with an x2APIC CPU, an IO-APIC and the usual ISOs.
fn madt() -> Vec<u8> {
    MadtBuilder::new(0xfee0_0000, PCAT_COMPAT)
        .local_apic(0, 0, LAPIC_ENABLED)
        .local_apic(1, 1, LAPIC_ENABLED)
        .local_apic(2, 2, 0)
        .local_apic(3, 3, LAPIC_ENABLED)
        .x2apic(0x200, LAPIC_ENABLED, 4)
        .io_apic(4, 0xfec0_0000, 0)
        .iso(0, 0, 2, 0)
        .iso(0, 9, 9, 0xd)
        .local_apic_nmi(0xff, 5, 1)
        .build()
}

/// A PC with a complete ACPI 2.0+ table set: RSDP (v2) in the BIOS area, RSDT and XSDT listing
/// FADT, MADT, HPET and an SSDT.
fn machine() -> Machine {
    let mut m = Machine::pc();
    m.write(RSDP, &rsdp_v2(RSDT as u32, XSDT));
    m.write(RSDT, &rsdt(&LISTED.map(|a| a as u32)));
    m.write(XSDT, &xsdt(&LISTED));
    m.write(MADT, &madt());
    m.write(FADT, &FadtBuilder::v6().build());
    m.write(HPET, &hpet(0x8086_a201, 0xfed0_0000));
    m.write(SSDT, &sdt(b"SSDT", 2, &[0xa5; 64]));
    m
}

fn check_full(t: &AcpiTables) {
    let madt = t.madt.as_ref().unwrap();
    assert_eq!(madt.usable_cpus(), [0, 1, 3, 0x200]);
    assert_eq!(madt.local_apic_address, 0xfee0_0000);
    assert!(madt.pcat_compat());
    let fadt = t.fadt.as_ref().unwrap();
    assert_eq!(fadt.sci_interrupt, 9);
    assert!(fadt.pm_timer.unwrap().is_32bit);
    assert!(fadt.reset_supported());
    let hpet = t.hpet.as_ref().unwrap();
    assert_eq!(hpet.base_address.mmio_address(), Some(0xfed0_0000));
    assert_eq!(t.root.find(Signature(*b"SSDT")), Some(SSDT));
}

#[test]
fn full_acpi2_machine() {
    let m = machine();
    let rsdp = find_rsdp(&m).unwrap();
    assert_eq!(rsdp, RSDP);
    let t = parse(&m, rsdp).unwrap();
    assert_eq!(t.revision, 2);
    assert_eq!(t.root.kind, RootKind::Xsdt);
    assert_eq!(t.root.address, XSDT);
    assert_eq!(t.root.entries.len(), 4);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    check_full(&t);
}

#[test]
fn acpi1_machine_uses_rsdt() {
    let mut m = machine();
    m.write(RSDP, &[0; 36]);
    m.write(0xe_0000, &rsdp_v1(RSDT as u32));
    let t = parse(&m, find_rsdp(&m).unwrap()).unwrap();
    assert_eq!(t.revision, 0);
    assert_eq!(t.root.kind, RootKind::Rsdt);
    check_full(&t);
}

#[test]
fn rsdp_copy_from_multiboot2() {
    let m = machine();
    let t = parse_from_rsdp_copy(&m, &rsdp_v2(RSDT as u32, XSDT)).unwrap();
    assert_eq!(t.root.kind, RootKind::Xsdt);
    check_full(&t);
    // A v1 copy (multiboot2 "old ACPI" tag).
    let t = parse_from_rsdp_copy(&m, &rsdp_v1(RSDT as u32)).unwrap();
    assert_eq!(t.root.kind, RootKind::Rsdt);
    // A bad copy.
    assert_eq!(
        parse_from_rsdp_copy(&m, &[0; 20]).err(),
        Some(AcpiError::RsdpSignature)
    );
}

#[test]
fn xsdt_zero_address_uses_rsdt() {
    let mut m = machine();
    m.write(RSDP, &rsdp_v2(RSDT as u32, 0));
    let t = parse(&m, RSDP).unwrap();
    assert_eq!(t.root.kind, RootKind::Rsdt);
    assert!(t.errors.is_empty());
}

#[test]
fn broken_xsdt_falls_back_to_rsdt() {
    let mut m = machine();
    let mut bad = xsdt(&LISTED);
    bad[40] ^= 1;
    m.write(XSDT, &bad);
    let t = parse(&m, RSDP).unwrap();
    assert_eq!(t.root.kind, RootKind::Rsdt);
    assert_eq!(
        t.errors,
        [TableError {
            signature: Signature::XSDT,
            address: XSDT,
            error: AcpiError::BadChecksum {
                paddr: XSDT,
                signature: Signature::XSDT
            },
        }]
    );
    check_full(&t);

    // Without an RSDT to fall back on, the XSDT error is fatal.
    m.write(RSDP, &rsdp_v2(0, XSDT));
    assert!(matches!(
        parse(&m, RSDP),
        Err(AcpiError::BadChecksum { .. })
    ));

    // With both broken, the XSDT's error is reported.
    m.write(RSDP, &rsdp_v2(RSDT as u32, XSDT));
    m.write(RSDT, &[0; 36]);
    assert_eq!(
        parse(&m, RSDP).err(),
        Some(AcpiError::BadChecksum {
            paddr: XSDT,
            signature: Signature::XSDT
        })
    );
}

#[test]
fn root_pointer_errors() {
    let mut m = machine();
    // No root table at all.
    m.write(RSDP, &rsdp_v1(0));
    assert_eq!(parse(&m, RSDP).err(), Some(AcpiError::NoRootTable));
    // RSDT pointing at the MADT: wrong signature.
    m.write(RSDP, &rsdp_v1(MADT as u32));
    assert_eq!(
        parse(&m, RSDP).err(),
        Some(AcpiError::BadSignature {
            paddr: MADT,
            expected: Signature::RSDT,
            found: Signature::MADT
        })
    );
    // RSDT pointing outside memory.
    m.write(RSDP, &rsdp_v1(0xc000_0000));
    assert_eq!(
        parse(&m, RSDP).err(),
        Some(AcpiError::Unreadable { paddr: 0xc000_0000 })
    );
    // No RSDP where we were told.
    assert_eq!(parse(&m, RSDP + 16).err(), Some(AcpiError::RsdpSignature));
    assert_eq!(
        parse(&m, 0x1_0000_0000).err(),
        Some(AcpiError::Unreadable {
            paddr: 0x1_0000_0000
        })
    );
}

#[test]
fn one_bad_table_does_not_cost_the_others() {
    let mut m = machine();
    let mut bad = madt();
    bad[50] ^= 0x40;
    m.write(MADT, &bad);
    let mut short = hpet(0, 0);
    short.truncate(40);
    short[4..8].copy_from_slice(&40u32.to_le_bytes());
    set_checksum(&mut short, 9);
    m.write(HPET, &short);
    let t = parse(&m, RSDP).unwrap();
    assert_eq!(t.madt, None);
    assert_eq!(t.hpet, None);
    assert!(t.fadt.is_some());
    let sigs: Vec<_> = t.errors.iter().map(|e| (e.signature, e.address)).collect();
    assert_eq!(sigs, [(Signature::MADT, MADT), (Signature::HPET, HPET)]);
    assert!(matches!(t.errors[0].error, AcpiError::BadChecksum { .. }));
    assert!(matches!(t.errors[1].error, AcpiError::Truncated { .. }));
}

#[test]
fn second_copy_used_when_first_is_bad() {
    let mut m = machine();
    let mut bad = madt();
    bad[60] ^= 1;
    m.write(MADT, &bad);
    let good2 = BASE + 0x9000;
    m.write(good2, &madt());
    m.write(XSDT, &xsdt(&[FADT, MADT, good2]));
    let t = parse(&m, RSDP).unwrap();
    assert_eq!(t.madt.unwrap().usable_cpus().len(), 4);
    assert_eq!(t.errors.len(), 1);
}

#[test]
fn table_length_beyond_memory() {
    let mut m = machine();
    // A MADT at the very end of the ACPI region claiming more bytes than exist.
    let at = BASE + Machine::ACPI_SIZE - 64;
    let mut t = madt();
    t.truncate(64);
    t[4..8].copy_from_slice(&0x400u32.to_le_bytes());
    m.write(at, &t);
    m.write(XSDT, &xsdt(&[FADT, at]));
    let t = parse(&m, RSDP).unwrap();
    assert_eq!(t.madt, None);
    assert!(matches!(t.errors[0].error, AcpiError::Unreadable { .. }));
}

#[test]
fn display_is_informative() {
    use alloc::format;
    let e = AcpiError::BadChecksum {
        paddr: 0x7fee_3000,
        signature: Signature::MADT,
    };
    assert_eq!(format!("{e}"), "APIC at 0x7fee3000: checksum mismatch");
    for e in [
        AcpiError::RsdpTruncated,
        AcpiError::RsdpSignature,
        AcpiError::RsdpChecksum,
        AcpiError::RsdpLength { length: 3 },
        AcpiError::NoRootTable,
        AcpiError::Unreadable { paddr: 1 },
        AcpiError::BadSignature {
            paddr: 1,
            expected: Signature::FADT,
            found: Signature([0; 4]),
        },
        AcpiError::BadLength {
            paddr: 1,
            signature: Signature::HPET,
            length: 2,
        },
        AcpiError::Truncated {
            paddr: 1,
            signature: Signature::HPET,
            offset: 2,
        },
        AcpiError::MalformedEntry {
            paddr: 1,
            signature: Signature::MADT,
            offset: 2,
        },
    ] {
        assert!(!format!("{e}").is_empty());
    }
}

/// Deterministic xorshift64 PRNG.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Recomputes the checksum of the table at `paddr` over its (possibly mutated) length, when that
/// length lies within the fixture's memory, so mutations get past checksum validation and reach
/// the parsers.
fn fix_table_checksum(m: &mut Machine, paddr: u64) {
    let Some(len) = m.read_u32(paddr + 4) else {
        return;
    };
    let mut bytes = vec![0u8; len.min(0x1_0000) as usize];
    if !m.read_bytes(paddr, &mut bytes) || bytes.len() < 10 {
        return;
    }
    set_checksum(&mut bytes, 9);
    m.write(paddr + 9, &[bytes[9]]);
}

/// Mutates random bytes of every table (half the time with checksums repaired afterwards) and
/// runs every entry point: none may panic, and successful results must respect the caps.
#[test]
fn mutation_fuzz() {
    let mut m = machine();
    // (address, span) of every structure worth mutating; spans run a little past each table so
    // lengths and entries reaching beyond it are exercised too.
    let spans: Vec<(u64, usize)> = [
        (RSDP, 36),
        (RSDT, rsdt(&[0; 4]).len()),
        (XSDT, xsdt(&[0; 4]).len()),
        (MADT, madt().len()),
        (FADT, 276),
        (HPET, 56),
    ]
    .into_iter()
    .map(|(a, l)| (a, l + 16))
    .collect();
    let pristine: Vec<Vec<u8>> = spans.iter().map(|&(a, l)| m.read(a, l)).collect();

    let mut rng = XorShift(0xdead_beef_cafe_f00d);
    let mut parsed = 0;
    for _ in 0..10_000 {
        for _ in 0..1 + rng.below(6) {
            let (base, len) = spans[rng.below(spans.len() as u64) as usize];
            let at = base + rng.below(len as u64);
            let v = match rng.below(6) {
                0 => 0,
                1 => 0xff,
                2 => 1,
                _ => rng.next() as u8,
            };
            m.write(at, &[v]);
        }
        if rng.below(2) == 0 {
            for &(base, _) in &spans[1..] {
                fix_table_checksum(&mut m, base);
            }
            let mut r = m.read(RSDP, 36);
            set_checksum(&mut r[..20], 8);
            set_checksum(&mut r, 32);
            m.write(RSDP, &r);
        }

        let _ = find_rsdp(&m);
        let copy = m.read(RSDP, 36);
        let results = [parse(&m, RSDP), parse_from_rsdp_copy(&m, &copy)];
        for t in results.iter().flatten() {
            parsed += 1;
            assert!(t.root.entries.len() <= sdt::MAX_TABLES);
            if let Some(madt) = &t.madt {
                assert!(madt.entries.len() <= madt::MAX_MADT_ENTRIES);
                let _ = madt.usable_cpus();
            }
        }

        for (&(base, _), bytes) in spans.iter().zip(&pristine) {
            m.write(base, bytes);
        }
    }
    // The fuzz is only meaningful if a good share of mutants still parse.
    assert!(parsed > 1000, "only {parsed} mutants parsed");
}
