//! The Root System Description Pointer: finding it in BIOS memory and validating it.

use xenolith_boot::PhysMemory;

use super::AcpiError;

/// The RSDP signature.
const SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// Length of the ACPI 1.0 RSDP, covered by the first checksum.
const V1_LEN: usize = 20;
/// Length of the ACPI 2.0+ RSDP.
const V2_LEN: usize = 36;
/// Largest `length` accepted for a v2 RSDP. The spec fixes it at 36; a little slack tolerates
/// odd firmware without letting a corrupt value make us read far.
const MAX_LEN: usize = 256;

/// Physical address of the BIOS data area word holding the EBDA segment.
const EBDA_SEGMENT_PTR: u64 = 0x40e;
/// How much of the EBDA the spec says to search.
const EBDA_SEARCH_LEN: u64 = 1024;
/// The BIOS read-only area searched after the EBDA.
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);

/// A validated RSDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rsdp {
    /// 0 for ACPI 1.0; 2 for ACPI 2.0 and later.
    pub revision: u8,
    /// OEM identifier.
    pub oem_id: [u8; 6],
    /// Physical address of the RSDT (32-bit; may be 0 on 64-bit-only firmware).
    pub rsdt_address: u32,
    /// Physical address of the XSDT: present for revision >= 2 with a non-zero address.
    pub xsdt_address: Option<u64>,
}

/// Validates an RSDP held in `bytes` (e.g. the copy a multiboot2 loader hands over): signature,
/// the ACPI 1.0 checksum over 20 bytes and, for revision >= 2, the extended checksum over
/// `length` bytes.
pub fn parse_rsdp_bytes(bytes: &[u8]) -> Result<Rsdp, AcpiError> {
    let Some(v1) = bytes.first_chunk::<V1_LEN>() else {
        return Err(AcpiError::RsdpTruncated);
    };
    if &v1[..8] != SIGNATURE {
        return Err(AcpiError::RsdpSignature);
    }
    if checksum(v1) != 0 {
        return Err(AcpiError::RsdpChecksum);
    }
    let revision = v1[15];
    let mut oem_id = [0; 6];
    oem_id.copy_from_slice(&v1[9..15]);
    let rsdt_address = u32::from_le_bytes([v1[16], v1[17], v1[18], v1[19]]);

    let xsdt_address = if revision >= 2 {
        let Some(v2) = bytes.first_chunk::<V2_LEN>() else {
            return Err(AcpiError::RsdpTruncated);
        };
        let length = u32::from_le_bytes([v2[20], v2[21], v2[22], v2[23]]);
        let len = length as usize;
        if !(V2_LEN..=MAX_LEN).contains(&len) {
            return Err(AcpiError::RsdpLength { length });
        }
        let Some(whole) = bytes.get(..len) else {
            return Err(AcpiError::RsdpTruncated);
        };
        if checksum(whole) != 0 {
            return Err(AcpiError::RsdpChecksum);
        }
        let mut x = [0; 8];
        x.copy_from_slice(&v2[24..32]);
        Some(u64::from_le_bytes(x)).filter(|&a| a != 0)
    } else {
        None
    };

    Ok(Rsdp {
        revision,
        oem_id,
        rsdt_address,
        xsdt_address,
    })
}

/// Reads and validates the RSDP at physical address `paddr`.
pub fn read_rsdp(mem: &dyn PhysMemory, paddr: u64) -> Result<Rsdp, AcpiError> {
    let mut buf = [0u8; MAX_LEN];
    // Read only as much as the structure claims, so a v1 RSDP in the last 20 bytes of readable
    // memory is still found.
    if !mem.read_bytes(paddr, &mut buf[..V1_LEN]) {
        return Err(AcpiError::Unreadable { paddr });
    }
    let mut len = V1_LEN;
    if buf[15] >= 2 {
        let ext = paddr.checked_add(V1_LEN as u64);
        let length = ext
            .and_then(|a| mem.read_u32(a))
            .ok_or(AcpiError::Unreadable { paddr })?;
        len = (length as usize).clamp(V2_LEN, MAX_LEN);
        if !mem.read_bytes(paddr, &mut buf[..len]) {
            return Err(AcpiError::Unreadable { paddr });
        }
    }
    parse_rsdp_bytes(&buf[..len])
}

/// Searches the legacy BIOS areas for the RSDP, as the ACPI spec prescribes for IA-PC: the
/// first 1 KiB of the EBDA, then 0xE0000–0xFFFFF, on 16-byte boundaries. A candidate counts only
/// if its checksums are valid, since the signature alone also occurs in BIOS code and strings.
pub fn find_rsdp(mem: &dyn PhysMemory) -> Option<u64> {
    let ebda = mem
        .read_u16(EBDA_SEGMENT_PTR)
        .map(|seg| u64::from(seg) << 4)
        .filter(|&base| base != 0);
    ebda.and_then(|base| scan(mem, base, base + EBDA_SEARCH_LEN))
        .or_else(|| scan(mem, BIOS_AREA.0, BIOS_AREA.1))
}

/// Scans `[start, end)` on 16-byte boundaries for a valid RSDP.
fn scan(mem: &dyn PhysMemory, start: u64, end: u64) -> Option<u64> {
    (start..end).step_by(16).find(|&paddr| {
        let mut sig = [0u8; 8];
        mem.read_bytes(paddr, &mut sig) && &sig == SIGNATURE && read_rsdp(mem, paddr).is_ok()
    })
}

/// Sum of bytes modulo 256: ACPI structures are valid when this is zero.
pub(crate) fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Machine, rsdp_v1, rsdp_v2};
    use super::*;
    use alloc::vec;

    #[test]
    fn v1_bytes() {
        let r = parse_rsdp_bytes(&rsdp_v1(0x7fee_1000)).unwrap();
        assert_eq!(r.revision, 0);
        assert_eq!(&r.oem_id, b"XENOLT");
        assert_eq!(r.rsdt_address, 0x7fee_1000);
        assert_eq!(r.xsdt_address, None);
    }

    #[test]
    fn v2_bytes() {
        let r = parse_rsdp_bytes(&rsdp_v2(0x7fee_1000, 0x7fee_2000)).unwrap();
        assert_eq!(r.revision, 2);
        assert_eq!(r.xsdt_address, Some(0x7fee_2000));
        // A zero XSDT address means "use the RSDT".
        assert_eq!(
            parse_rsdp_bytes(&rsdp_v2(0x1000, 0)).unwrap().xsdt_address,
            None
        );
    }

    #[test]
    fn rejects_bad_rsdp_bytes() {
        let good = rsdp_v2(0x1000, 0x2000);
        assert_eq!(parse_rsdp_bytes(&good[..19]), Err(AcpiError::RsdpTruncated));
        assert_eq!(parse_rsdp_bytes(&good[..30]), Err(AcpiError::RsdpTruncated));

        let mut bad = good.clone();
        bad[0] = b'X';
        assert_eq!(parse_rsdp_bytes(&bad), Err(AcpiError::RsdpSignature));

        // First checksum broken.
        let mut bad = good.clone();
        bad[16] ^= 1;
        assert_eq!(parse_rsdp_bytes(&bad), Err(AcpiError::RsdpChecksum));

        // Only the extended part broken: the v1 checksum still passes.
        let mut bad = good.clone();
        bad[24] ^= 1;
        assert_eq!(parse_rsdp_bytes(&bad), Err(AcpiError::RsdpChecksum));

        // Absurd length, with both checksums patched up so only the length is wrong.
        let mut bad = good.clone();
        bad[20..24].copy_from_slice(&0x1000u32.to_le_bytes());
        bad[32] = 0;
        bad[32] = 0u8.wrapping_sub(checksum(&bad));
        assert_eq!(
            parse_rsdp_bytes(&bad),
            Err(AcpiError::RsdpLength { length: 0x1000 })
        );

        // Length beyond the provided copy.
        let mut bad = good;
        bad[20] = 40;
        bad[32] = 0;
        bad[32] = 0u8.wrapping_sub(checksum(&bad));
        assert_eq!(parse_rsdp_bytes(&bad), Err(AcpiError::RsdpTruncated));
    }

    #[test]
    fn finds_rsdp_in_ebda_first() {
        let mut m = Machine::pc();
        m.write(0x40e, &0x9fc0u16.to_le_bytes());
        m.write(0x9fc40, &rsdp_v2(0x7fee_1000, 0x7fee_2000));
        m.write(0xf_6a50, &rsdp_v1(0x7fee_3000));
        assert_eq!(find_rsdp(&m), Some(0x9fc40));
    }

    #[test]
    fn finds_rsdp_in_bios_area() {
        let mut m = Machine::pc();
        m.write(0x40e, &0x9fc0u16.to_le_bytes());
        m.write(0xf_6a50, &rsdp_v1(0x7fee_3000));
        assert_eq!(find_rsdp(&m), Some(0xf_6a50));
        assert_eq!(read_rsdp(&m, 0xf_6a50).unwrap().rsdt_address, 0x7fee_3000);
    }

    #[test]
    fn skips_invalid_candidates() {
        let mut m = Machine::pc();
        // Signature only (e.g. in a BIOS string), v1 with a bad checksum, v2 with a bad
        // extended checksum, unaligned copy: all skipped; the valid one after them is found.
        m.write(0xe_0000, b"RSD PTR ");
        let mut bad = rsdp_v1(0x1000);
        bad[19] ^= 0xff;
        m.write(0xe_1000, &bad);
        let mut bad = rsdp_v2(0x1000, 0x2000);
        bad[30] ^= 1;
        m.write(0xe_2000, &bad);
        m.write(0xe_3008, &rsdp_v1(0x1000));
        assert_eq!(find_rsdp(&m), None);
        m.write(0xf_0000, &rsdp_v2(0x1000, 0x2000));
        assert_eq!(find_rsdp(&m), Some(0xf_0000));
    }

    #[test]
    fn v1_at_end_of_readable_memory() {
        // Only 20 bytes readable after the candidate: enough for a v1 RSDP, which must be found
        // without reading the 36 bytes of a v2 one.
        let mut m = Machine {
            regions: vec![(0xe_0000, vec![0; 0x1000 + 20])],
        };
        m.write(0xe_1000, &rsdp_v1(0x1234));
        assert_eq!(find_rsdp(&m), Some(0xe_1000));
        // A v2 RSDP cut off by the end of memory is not.
        let mut m = Machine {
            regions: vec![(0xe_0000, vec![0; 0x1000 + 20])],
        };
        m.write(0xe_1000, &rsdp_v2(0x1234, 0x5678)[..20]);
        assert_eq!(find_rsdp(&m), None);
    }

    #[test]
    fn no_rsdp_and_unreadable_memory() {
        assert_eq!(find_rsdp(&Machine::pc()), None);
        // Memory that holds nothing at all: every read fails, nothing is found.
        let empty = Machine { regions: vec![] };
        assert_eq!(find_rsdp(&empty), None);
        assert_eq!(
            read_rsdp(&empty, 0xe_0000),
            Err(AcpiError::Unreadable { paddr: 0xe_0000 })
        );
    }
}
