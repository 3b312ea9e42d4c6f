//! Xen's number parsers: `simple_strtoull` and `parse_size_and_unit`.
//!
//! Both are ported byte for byte from Xen 4.17 (`xen/common/lib.c`; later trees moved them to
//! `xen/lib/strtoull.c` and `xen/lib/parse-size.c`). The one deliberate difference: Xen lets the
//! arithmetic wrap silently (`dom0_mem=99999999999T` becomes some unrelated small value), we
//! report [`Overflow`] so the caller can reject the value instead of acting on garbage.

/// A number did not fit in 64 bits (Xen would have wrapped it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Overflow;

/// Xen's `simple_strtoull(s, &end, base)`: returns the value and the unparsed rest.
///
/// Like Xen, no whitespace or sign is accepted, and no digit at all yields 0 with nothing
/// consumed. Base 0 auto-detects: a leading `0` means octal, `0x` followed by a hex digit means
/// hex, anything else decimal. Base 16 skips an optional `0x`.
pub(crate) fn strtoull(s: &str, base: u32) -> Result<(u64, &str), Overflow> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut base = base;
    if base == 0 {
        base = 10;
        if b.first() == Some(&b'0') {
            base = 8;
            i = 1;
            if matches!(b.get(1), Some(b'x' | b'X')) && b.get(2).is_some_and(u8::is_ascii_hexdigit)
            {
                i = 2;
                base = 16;
            }
        }
    } else if base == 16 && b.first() == Some(&b'0') && matches!(b.get(1), Some(b'x' | b'X')) {
        i = 2;
    }

    let mut result: u64 = 0;
    while let Some(digit) = b.get(i).and_then(|c| (*c as char).to_digit(16)) {
        if digit >= base {
            break;
        }
        result = result
            .checked_mul(u64::from(base))
            .and_then(|r| r.checked_add(u64::from(digit)))
            .ok_or(Overflow)?;
        i += 1;
    }
    // Only ASCII bytes were consumed, so `i` is a char boundary.
    Ok((result, &s[i..]))
}

/// Xen's `simple_strtoul(s, &end, base)` for an `unsigned int` destination; values that do not
/// fit in 32 bits are an [`Overflow`] (Xen would truncate them).
pub(crate) fn strtou32(s: &str, base: u32) -> Result<(u32, &str), Overflow> {
    let (v, rest) = strtoull(s, base)?;
    Ok((u32::try_from(v).map_err(|_| Overflow)?, rest))
}

/// Xen's `parse_size_and_unit(s, &end)`: a number with an optional `T`/`G`/`M`/`K`/`B` suffix
/// (either case); without one, the unit is KiB. Returns bytes and the unparsed rest.
///
/// As in Xen (with a non-NULL end pointer), a `%` suffix is left unconsumed and the number is
/// returned as is, unscaled, for `dom0_mem`'s percentage form. Any other unknown character also
/// stays unconsumed (so the caller sees trailing garbage) but the number is scaled by KiB.
pub(crate) fn parse_size_and_unit(s: &str) -> Result<(u64, &str), Overflow> {
    let (value, rest) = strtoull(s, 0)?;
    let (shift, consumed) = match rest.as_bytes().first() {
        Some(b'T' | b't') => (40, 1),
        Some(b'G' | b'g') => (30, 1),
        Some(b'M' | b'm') => (20, 1),
        Some(b'K' | b'k') => (10, 1),
        Some(b'B' | b'b') => (0, 1),
        Some(b'%') => (0, 0),
        _ => (10, 0),
    };
    if value > u64::MAX >> shift {
        return Err(Overflow);
    }
    Ok((value << shift, &rest[consumed..]))
}
