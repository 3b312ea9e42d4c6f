//! The S5 (soft-off) sleep type from the DSDT's `\_S5_` package, without an AML interpreter.
//!
//! Powering off needs `SLP_TYPa/b` for S5, which firmware provides only as AML:
//! `Name (_S5, Package () { a, b, ... })`. The encoding is regular enough to read directly:
//! `NameOp (0x08) "_S5_" PackageOp (0x12) PkgLength NumElements` followed by integer data
//! objects (`ZeroOp`, `OneOp`, `BytePrefix n`, ...). This is what small kernels do too.

/// The S5 sleep types for PM1a and PM1b control.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SleepType {
    /// `SLP_TYPa`.
    pub a: u8,
    /// `SLP_TYPb`.
    pub b: u8,
}

/// Reads one AML integer data object at `aml[*i]`, advancing `*i`.
fn integer(aml: &[u8], i: &mut usize) -> Option<u8> {
    let op = *aml.get(*i)?;
    *i += 1;
    match op {
        0x00 => Some(0),    // ZeroOp
        0x01 => Some(1),    // OneOp
        0xff => Some(0xff), // OnesOp
        0x0a => {
            // BytePrefix
            let v = *aml.get(*i)?;
            *i += 1;
            Some(v)
        }
        0x0b | 0x0c | 0x0e => {
            // WordPrefix, DWordPrefix, QWordPrefix: the sleep type is in the low byte
            let len = match op {
                0x0b => 2,
                0x0c => 4,
                _ => 8,
            };
            let v = *aml.get(*i)?;
            *i += len;
            Some(v)
        }
        _ => None,
    }
}

/// Finds `\_S5_` in the DSDT's AML (`dsdt` is the whole table, header included).
pub fn find_s5(dsdt: &[u8]) -> Option<SleepType> {
    let body = dsdt.get(36..)?;
    let pos = body.windows(4).position(|w| w == b"_S5_")?;
    // NameOp directly before, or NameOp then a root prefix `\`.
    let named = (pos >= 1 && body[pos - 1] == 0x08)
        || (pos >= 2 && body[pos - 2] == 0x08 && body[pos - 1] == b'\\');
    if !named || body.get(pos + 4) != Some(&0x12) {
        return None;
    }
    let mut i = pos + 5;
    let lead = *body.get(i)?;
    i += usize::from((lead & 0xc0) >> 6) + 1; // PkgLength
    i += 1; // NumElements
    let a = integer(body, &mut i)?;
    let b = integer(body, &mut i).unwrap_or(0);
    Some(SleepType { a, b })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsdt(aml: &[u8]) -> alloc::vec::Vec<u8> {
        let mut t = alloc::vec![0u8; 36];
        t[..4].copy_from_slice(b"DSDT");
        t.extend_from_slice(aml);
        t
    }

    #[test]
    fn qemu_style_s5() {
        // Name (_S5, Package (0x04) { Zero, Zero, Zero, Zero }) as QEMU's q35/pc DSDT has it.
        let t = dsdt(&[
            0x10, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x00, 0x00, 0x00,
        ]);
        assert_eq!(find_s5(&t), Some(SleepType { a: 0, b: 0 }));
    }

    #[test]
    fn byte_prefixed_values_and_root_prefix() {
        let t = dsdt(&[
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x07, 0x0a, 0x05, 0, 0,
        ]);
        assert_eq!(find_s5(&t), Some(SleepType { a: 7, b: 5 }));
    }

    #[test]
    fn rejects_non_package_and_truncation() {
        assert_eq!(
            find_s5(&dsdt(&[0x08, b'_', b'S', b'5', b'_', 0x0a, 0x05])),
            None
        );
        assert_eq!(find_s5(&dsdt(&[0x08, b'_', b'S', b'5', b'_', 0x12])), None);
        assert_eq!(find_s5(&dsdt(b"no sleep states here")), None);
        assert_eq!(find_s5(&[0u8; 10]), None);
    }
}
