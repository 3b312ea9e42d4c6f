//! The Multiple APIC Description Table ("APIC"): local APICs (the CPUs), I/O APICs, and how
//! legacy ISA interrupts map to global system interrupts.

use alloc::vec::Vec;

use super::AcpiError;
use super::sdt::{SDT_HEADER_LEN, Table};

/// Most MADT entries parsed; the rest are dropped and [`Madt::truncated`] is set. Big machines
/// list a few entries per CPU, so this covers a few hundred CPUs.
pub const MAX_MADT_ENTRIES: usize = 1024;

/// Offset of the first interrupt controller structure.
const ENTRIES_OFFSET: u32 = SDT_HEADER_LEN + 8;

/// Longest prefix of an entry any known type needs.
const MAX_KNOWN_ENTRY: usize = 16;

/// Processor (x2)APIC flag: the processor is usable now.
pub const LAPIC_ENABLED: u32 = 1 << 0;
/// Processor (x2)APIC flag (ACPI 6.3+): not enabled now, but can be brought online later.
pub const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;

/// MADT flag: the machine also has dual 8259 PICs, which must be masked before using APICs.
pub const PCAT_COMPAT: u32 = 1 << 0;

/// Polarity bits of an MPS INTI flags field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Polarity {
    /// Conforms to the bus (ISA: active high).
    Conforming,
    /// Active high.
    ActiveHigh,
    /// Reserved encoding.
    Reserved,
    /// Active low.
    ActiveLow,
}

/// Trigger-mode bits of an MPS INTI flags field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerMode {
    /// Conforms to the bus (ISA: edge).
    Conforming,
    /// Edge triggered.
    Edge,
    /// Reserved encoding.
    Reserved,
    /// Level triggered.
    Level,
}

/// The MPS INTI flags of interrupt overrides and NMI entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntiFlags(pub u16);

impl IntiFlags {
    /// Decoded polarity.
    pub fn polarity(self) -> Polarity {
        match self.0 & 3 {
            0 => Polarity::Conforming,
            1 => Polarity::ActiveHigh,
            2 => Polarity::Reserved,
            _ => Polarity::ActiveLow,
        }
    }

    /// Decoded trigger mode.
    pub fn trigger_mode(self) -> TriggerMode {
        match (self.0 >> 2) & 3 {
            0 => TriggerMode::Conforming,
            1 => TriggerMode::Edge,
            2 => TriggerMode::Reserved,
            _ => TriggerMode::Level,
        }
    }
}

/// One interrupt controller structure of the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadtEntry {
    /// Type 0: a processor with an xAPIC.
    LocalApic {
        /// ACPI processor UID.
        processor_uid: u8,
        /// Local APIC id.
        apic_id: u8,
        /// [`LAPIC_ENABLED`], [`LAPIC_ONLINE_CAPABLE`].
        flags: u32,
    },
    /// Type 1: an I/O APIC.
    IoApic {
        /// I/O APIC id.
        id: u8,
        /// MMIO base address.
        address: u32,
        /// First global system interrupt it handles.
        gsi_base: u32,
    },
    /// Type 2: an ISA interrupt routed to a different GSI or with non-default polarity/trigger.
    InterruptSourceOverride {
        /// Bus (0 = ISA).
        bus: u8,
        /// Bus-relative IRQ.
        source: u8,
        /// Global system interrupt it is delivered on.
        gsi: u32,
        /// Polarity and trigger mode.
        flags: IntiFlags,
    },
    /// Type 3: a GSI wired to NMI.
    NmiSource {
        /// Polarity and trigger mode.
        flags: IntiFlags,
        /// Global system interrupt.
        gsi: u32,
    },
    /// Type 4: a local APIC LINT pin wired to NMI.
    LocalApicNmi {
        /// Processor UID, 0xff for all processors.
        processor_uid: u8,
        /// Polarity and trigger mode.
        flags: IntiFlags,
        /// LINT pin (0 or 1).
        lint: u8,
    },
    /// Type 5: 64-bit local APIC address, overriding the 32-bit one in the header.
    LocalApicAddressOverride {
        /// Physical address of the local APIC.
        address: u64,
    },
    /// Type 9: a processor with an x2APIC (id too large for type 0, or x2APIC-only platforms).
    LocalX2Apic {
        /// x2APIC id.
        x2apic_id: u32,
        /// [`LAPIC_ENABLED`], [`LAPIC_ONLINE_CAPABLE`].
        flags: u32,
        /// ACPI processor UID.
        processor_uid: u32,
    },
    /// Type 0xA: an x2APIC LINT pin wired to NMI.
    LocalX2ApicNmi {
        /// Polarity and trigger mode.
        flags: IntiFlags,
        /// Processor UID, 0xffffffff for all processors.
        processor_uid: u32,
        /// LINT pin (0 or 1).
        lint: u8,
    },
    /// Any other type (GIC structures, SAPIC, multiprocessor wakeup, ...), kept so a dump shows it.
    Unknown {
        /// Structure type.
        entry_type: u8,
        /// Structure length.
        length: u8,
    },
}

/// A parsed MADT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Madt {
    /// Physical address of the local APIC: the header's 32-bit value, or the type-5 override.
    pub local_apic_address: u64,
    /// MADT flags ([`PCAT_COMPAT`]).
    pub flags: u32,
    /// Interrupt controller structures, in table order.
    pub entries: Vec<MadtEntry>,
    /// The table had more than [`MAX_MADT_ENTRIES`] entries; the rest were not parsed.
    pub truncated: bool,
}

impl Madt {
    /// Whether legacy 8259 PICs are present (and must be masked).
    pub fn pcat_compat(&self) -> bool {
        self.flags & PCAT_COMPAT != 0
    }

    /// APIC ids of the usable CPUs (enabled, or online-capable), in table order, without
    /// duplicates.
    ///
    /// Firmware may describe a CPU with both a type-0 and a type-9 entry, so ids are
    /// deduplicated; the all-ones ids (0xff, 0xffffffff) are broadcast ids, never real CPUs.
    pub fn usable_cpus(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = Vec::new();
        for e in &self.entries {
            let (id, flags) = match *e {
                MadtEntry::LocalApic { apic_id, flags, .. } if apic_id != 0xff => {
                    (u32::from(apic_id), flags)
                }
                MadtEntry::LocalX2Apic {
                    x2apic_id, flags, ..
                } if x2apic_id != u32::MAX => (x2apic_id, flags),
                _ => continue,
            };
            if flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) != 0 && !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// The I/O APICs as `(id, mmio address, gsi base)`.
    pub fn io_apics(&self) -> impl Iterator<Item = (u8, u32, u32)> + '_ {
        self.entries.iter().filter_map(|e| match *e {
            MadtEntry::IoApic {
                id,
                address,
                gsi_base,
            } => Some((id, address, gsi_base)),
            _ => None,
        })
    }

    /// The interrupt source overrides as `(bus irq, gsi, flags)`.
    pub fn overrides(&self) -> impl Iterator<Item = (u8, u32, IntiFlags)> + '_ {
        self.entries.iter().filter_map(|e| match *e {
            MadtEntry::InterruptSourceOverride {
                source, gsi, flags, ..
            } => Some((source, gsi, flags)),
            _ => None,
        })
    }

    /// Parses a validated MADT.
    pub(crate) fn parse(t: &Table<'_>) -> Result<Self, AcpiError> {
        let mut local_apic_address = u64::from(t.u32(SDT_HEADER_LEN)?);
        let flags = t.u32(SDT_HEADER_LEN + 4)?;
        let mut entries = Vec::new();
        let mut truncated = false;

        let malformed = |offset| AcpiError::MalformedEntry {
            paddr: t.paddr(),
            signature: t.header().signature,
            offset,
        };
        let mut off = ENTRIES_OFFSET;
        while off < t.len() {
            if entries.len() == MAX_MADT_ENTRIES {
                truncated = true;
                break;
            }
            if !t.contains(off, 2) {
                return Err(malformed(off));
            }
            let [entry_type, length] = t.bytes::<2>(off)?;
            // A length below 2 would never advance; one past the end would read other memory.
            if length < 2 || !t.contains(off, u32::from(length)) {
                return Err(malformed(off));
            }
            let mut b = [0u8; MAX_KNOWN_ENTRY];
            let n = usize::from(length).min(MAX_KNOWN_ENTRY);
            t.read(off, &mut b[..n])?;
            let entry = decode(entry_type, length, &b).ok_or(malformed(off))?;
            if let MadtEntry::LocalApicAddressOverride { address } = entry {
                local_apic_address = address;
            }
            entries.push(entry);
            off += u32::from(length);
        }

        Ok(Self {
            local_apic_address,
            flags,
            entries,
            truncated,
        })
    }
}

/// Decodes one entry from its first bytes `b` (zero-padded to 16); `None` when `length` is too
/// short for a known type. Entries longer than expected are accepted, since later ACPI versions
/// append fields.
fn decode(entry_type: u8, length: u8, b: &[u8; MAX_KNOWN_ENTRY]) -> Option<MadtEntry> {
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
    let need = match entry_type {
        0 | 3 => 8,
        1 | 5 | 0xa => 12,
        2 => 10,
        4 => 6,
        9 => 16,
        _ => 2,
    };
    if length < need {
        return None;
    }
    Some(match entry_type {
        0 => MadtEntry::LocalApic {
            processor_uid: b[2],
            apic_id: b[3],
            flags: u32_at(4),
        },
        1 => MadtEntry::IoApic {
            id: b[2],
            address: u32_at(4),
            gsi_base: u32_at(8),
        },
        2 => MadtEntry::InterruptSourceOverride {
            bus: b[2],
            source: b[3],
            gsi: u32_at(4),
            flags: IntiFlags(u16_at(8)),
        },
        3 => MadtEntry::NmiSource {
            flags: IntiFlags(u16_at(2)),
            gsi: u32_at(4),
        },
        4 => MadtEntry::LocalApicNmi {
            processor_uid: b[2],
            flags: IntiFlags(u16_at(3)),
            lint: b[5],
        },
        5 => MadtEntry::LocalApicAddressOverride {
            address: u64::from(u32_at(4)) | u64::from(u32_at(8)) << 32,
        },
        9 => MadtEntry::LocalX2Apic {
            x2apic_id: u32_at(4),
            flags: u32_at(8),
            processor_uid: u32_at(12),
        },
        0xa => MadtEntry::LocalX2ApicNmi {
            flags: IntiFlags(u16_at(2)),
            processor_uid: u32_at(4),
            lint: b[8],
        },
        _ => MadtEntry::Unknown { entry_type, length },
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Machine, MadtBuilder};
    use super::super::sdt::Signature;
    use super::*;

    const BASE: u64 = Machine::ACPI_BASE + 0x3000;

    fn parse_at(m: &Machine) -> Result<Madt, AcpiError> {
        Madt::parse(&Table::load(m, BASE, Signature::MADT)?)
    }

    /// A typical 4-CPU desktop MADT: one CPU disabled, plus an x2APIC-only CPU.
    fn sample() -> MadtBuilder {
        MadtBuilder::new(0xfee0_0000, PCAT_COMPAT)
            .local_apic(0, 0, LAPIC_ENABLED)
            .local_apic(1, 2, LAPIC_ENABLED)
            .local_apic(2, 4, 0)
            .local_apic(3, 6, LAPIC_ONLINE_CAPABLE)
            .x2apic(0x100, LAPIC_ENABLED, 4)
            .io_apic(8, 0xfec0_0000, 0)
            .iso(0, 0, 2, 0)
            .iso(0, 9, 9, 0x000d)
            .nmi_source(0x0005, 23)
            .local_apic_nmi(0xff, 0x0005, 1)
            .x2apic_nmi(0x0005, u32::MAX, 1)
    }

    #[test]
    fn parses_typical_madt() {
        let mut m = Machine::pc();
        m.write(BASE, &sample().build());
        let madt = parse_at(&m).unwrap();
        assert_eq!(madt.local_apic_address, 0xfee0_0000);
        assert!(madt.pcat_compat());
        assert!(!madt.truncated);
        assert_eq!(madt.entries.len(), 11);
        assert_eq!(madt.usable_cpus(), [0, 2, 6, 0x100]);
        assert_eq!(madt.io_apics().collect::<Vec<_>>(), [(8, 0xfec0_0000, 0)]);
        let isos: Vec<_> = madt.overrides().collect();
        assert_eq!(isos[0], (0, 2, IntiFlags(0)));
        assert_eq!(isos[1].0, 9);
        assert_eq!(isos[1].2.polarity(), Polarity::ActiveHigh);
        assert_eq!(isos[1].2.trigger_mode(), TriggerMode::Level);
        assert_eq!(IntiFlags(0xf).polarity(), Polarity::ActiveLow);
        assert_eq!(IntiFlags(0x6).polarity(), Polarity::Reserved);
        assert_eq!(IntiFlags(0x8).trigger_mode(), TriggerMode::Reserved);
        assert_eq!(IntiFlags(0x4).trigger_mode(), TriggerMode::Edge);
        assert_eq!(IntiFlags(0).trigger_mode(), TriggerMode::Conforming);
        assert!(madt.entries.contains(&MadtEntry::NmiSource {
            flags: IntiFlags(5),
            gsi: 23
        }));
        assert!(madt.entries.contains(&MadtEntry::LocalApicNmi {
            processor_uid: 0xff,
            flags: IntiFlags(5),
            lint: 1
        }));
        assert!(madt.entries.contains(&MadtEntry::LocalX2ApicNmi {
            flags: IntiFlags(5),
            processor_uid: u32::MAX,
            lint: 1
        }));
        assert!(madt.entries.contains(&MadtEntry::LocalX2Apic {
            x2apic_id: 0x100,
            flags: LAPIC_ENABLED,
            processor_uid: 4
        }));
    }

    #[test]
    fn address_override_and_unknown_entries() {
        let mut m = Machine::pc();
        let madt = MadtBuilder::new(0xfee0_0000, 0)
            .raw(&[0x0b, 4, 0xaa, 0xbb]) // unknown type: kept as Unknown
            .lapic_override(0x1_fee0_0000)
            .local_apic(0, 0, LAPIC_ENABLED)
            .build();
        m.write(BASE, &madt);
        let madt = parse_at(&m).unwrap();
        assert_eq!(madt.local_apic_address, 0x1_fee0_0000);
        assert!(!madt.pcat_compat());
        assert_eq!(
            madt.entries[0],
            MadtEntry::Unknown {
                entry_type: 0xb,
                length: 4
            }
        );
    }

    #[test]
    fn duplicate_and_broadcast_ids_ignored() {
        let mut m = Machine::pc();
        let madt = MadtBuilder::new(0xfee0_0000, 0)
            .local_apic(0, 1, LAPIC_ENABLED)
            .x2apic(1, LAPIC_ENABLED, 0) // same CPU described twice
            .local_apic(1, 0xff, LAPIC_ENABLED)
            .x2apic(u32::MAX, LAPIC_ENABLED, 7)
            .build();
        m.write(BASE, &madt);
        assert_eq!(parse_at(&m).unwrap().usable_cpus(), [1]);
    }

    #[test]
    fn longer_entries_accepted() {
        let mut m = Machine::pc();
        // A type-0 entry with 4 extra bytes, as a future revision might have.
        let madt = MadtBuilder::new(0xfee0_0000, 0)
            .raw(&[0, 12, 5, 7, 1, 0, 0, 0, 0xee, 0xee, 0xee, 0xee])
            .local_apic(6, 9, LAPIC_ENABLED)
            .build();
        m.write(BASE, &madt);
        assert_eq!(parse_at(&m).unwrap().usable_cpus(), [7, 9]);
    }

    #[test]
    fn malformed_entries_rejected() {
        let cases: [&[u8]; 4] = [
            &[0, 0],                                // zero length: would loop forever
            &[0, 6, 0, 0, 1, 0],                    // type 0 needs 8 bytes
            &[9, 12, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], // type 9 needs 16
            &[1],                                   // a lone byte where an entry header should be
        ];
        for raw in cases {
            let mut m = Machine::pc();
            m.write(BASE, &MadtBuilder::new(0xfee0_0000, 0).raw(raw).build());
            assert!(
                matches!(
                    parse_at(&m),
                    Err(AcpiError::MalformedEntry { offset: 44, .. })
                ),
                "{raw:?}"
            );
        }
        // Entry length running past the end of the table.
        let mut m = Machine::pc();
        let madt = MadtBuilder::new(0xfee0_0000, 0)
            .local_apic(0, 0, 1)
            .raw(&[1, 40, 0, 0])
            .build();
        m.write(BASE, &madt);
        assert!(matches!(
            parse_at(&m),
            Err(AcpiError::MalformedEntry { offset: 52, .. })
        ));
    }

    #[test]
    fn too_short_for_header_fields() {
        let mut m = Machine::pc();
        m.write(BASE, &super::super::fixture::sdt(b"APIC", 1, &[0; 6]));
        assert!(matches!(parse_at(&m), Err(AcpiError::Truncated { .. })));
    }

    #[test]
    fn entry_count_capped() {
        let mut m = Machine::pc();
        let mut b = MadtBuilder::new(0xfee0_0000, 0);
        for i in 0..MAX_MADT_ENTRIES + 5 {
            b = b.x2apic(i as u32, LAPIC_ENABLED, i as u32);
        }
        m.write(BASE, &b.build());
        let madt = parse_at(&m).unwrap();
        assert!(madt.truncated);
        assert_eq!(madt.entries.len(), MAX_MADT_ENTRIES);
        assert_eq!(madt.usable_cpus().len(), MAX_MADT_ENTRIES);
    }
}
