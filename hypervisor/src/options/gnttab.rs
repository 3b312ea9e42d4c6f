//! The grant-table options of Xen 4.17 `xen/common/grant_table.c`: `gnttab_max_frames=`,
//! `gnttab_max_maptrack_frames=` (`integer_runtime_param`) and `gnttab=` (`parse_gnttab`).
//!
//! Xenolith also takes `max_grant_frames=` and `max_maptrack_frames=` as aliases of the first
//! two: those are the names of the per-domain settings in `xl.cfg`, whose defaults these
//! options are (Xen itself does not know them on its command line).

use super::{EINVAL, EOVERFLOW, num, parse_bool};

/// The grant-table settings every domain is created with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gnttab {
    /// `gnttab_max_frames=`: shared frames a domain's table may grow to. Default 64.
    pub max_frames: u32,
    /// `gnttab_max_maptrack_frames=`: maptrack frames a domain may use for its mappings of
    /// other domains' grants. Default 1024.
    pub max_maptrack_frames: u32,
    /// `gnttab=max-ver:<n>`: the highest version `GNTTABOP_set_version` accepts, 1 or 2.
    /// Default 2.
    pub max_version: u32,
    /// `gnttab=transitive=<bool>`: transitive grants allowed (Xenolith refuses them either
    /// way). Default true.
    pub transitive: bool,
    /// `gnttab=transfer=<bool>`: `GNTTABOP_transfer` available (else `-EOPNOTSUPP`). Default
    /// true.
    pub transfer: bool,
}

impl Gnttab {
    /// Xen 4.17's x86 defaults (`gnttab=max-ver:2,transitive,transfer`, 64 frames, 1024
    /// maptrack frames).
    pub const XEN_DEFAULT: Gnttab = Gnttab {
        max_frames: 64,
        max_maptrack_frames: 1024,
        max_version: 2,
        transitive: true,
        transfer: true,
    };

    /// `parse_gnttab`: a comma-separated list of `max-ver:<n>` (or `max_ver:<n>`), `n` 1 or
    /// 2, and the booleans `transitive` and `transfer` (`name`, `no-name`, `name=<bool>`).
    /// Every valid item is applied; if any item is bad the result is `-EINVAL` (Xen's rc).
    pub fn parse_into(&mut self, s: &str) -> Result<(), i32> {
        let mut rc = Ok(());
        for item in s.split(',') {
            if let Some(v) = item
                .strip_prefix("max-ver:")
                .or_else(|| item.strip_prefix("max_ver:"))
            {
                // simple_strtol(.., 10), and the whole rest must be the number.
                match parse_signed_decimal(v) {
                    Some(ver @ (1 | 2)) => self.max_version = ver as u32,
                    _ => rc = Err(EINVAL),
                }
            } else if let Some(b) = parse_boolean("transitive", item) {
                match b {
                    Some(b) => self.transitive = b,
                    None => rc = Err(EINVAL),
                }
            } else if let Some(b) = parse_boolean("transfer", item) {
                match b {
                    Some(b) => self.transfer = b,
                    None => rc = Err(EINVAL),
                }
            } else {
                rc = Err(EINVAL);
            }
        }
        rc
    }
}

impl Default for Gnttab {
    fn default() -> Self {
        Self::XEN_DEFAULT
    }
}

/// `simple_strtol(s, &e, 10)` with `*e == '\0'` required: an optional `-` and decimal
/// digits, nothing else (an empty number is 0 only if nothing follows, as in Xen).
fn parse_signed_decimal(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    let (v, rest) = num::strtoull(digits, 10).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let v = i64::try_from(v).ok()?;
    Some(if neg { -v } else { v })
}

/// Xen's `parse_boolean(name, s, e)` for one list item: `None` if the item is not about
/// `name` at all; `Some(None)` if it names it with a value that is not a boolean (Xen's -2,
/// or an inexact match with `no-`, which Xen reports as no match and then as a bad item);
/// otherwise the value.
fn parse_boolean(name: &str, item: &str) -> Option<Option<bool>> {
    let (neg, rest) = match item.strip_prefix("no-") {
        Some(r) => (true, r),
        None => (false, item),
    };
    let tail = rest.strip_prefix(name)?;
    if tail.is_empty() {
        return Some(Some(!neg));
    }
    if neg {
        return None;
    }
    Some(parse_bool(tail.strip_prefix('=')?))
}

/// An `integer_runtime_param` into an `unsigned int` (Xen's `OPT_UINT`: `simple_strtoll(v,
/// &s, 0)`, then `assign_integer_param`): a number in C syntax (decimal, `0x` hex, `0`
/// octal), optionally negative. Values outside both `0..=u32::MAX` and the `i32` range are
/// `-EOVERFLOW`; a negative value in `i32` range wraps as in C (`-1` is 4294967295). Trailing
/// characters are `-EINVAL`, and an empty value is 0 (`gnttab_max_frames` alone, or with
/// `no-`), as in Xen.
///
/// Where Xen assigns the number and then reports trailing garbage, Xenolith only reports it
/// and keeps the previous value, as for its other options.
pub(super) fn parse_uint_param(v: &str) -> Result<u32, i32> {
    let (neg, digits) = match v.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, v),
    };
    let (n, rest) = num::strtoull(digits, 0).map_err(|_| EOVERFLOW)?;
    if !rest.is_empty() {
        return Err(EINVAL);
    }
    let val = if neg { n.wrapping_neg() } else { n };
    if val > u64::from(u32::MAX) && val < i64::from(i32::MIN) as u64 {
        return Err(EOVERFLOW);
    }
    Ok(val as u32)
}

/// The settings of the command line the hypervisor booted with, recorded by
/// [`super::parse`] for the domain builder (which is not handed the parsed options).
#[cfg(target_os = "none")]
static BOOTED: spin::Mutex<Gnttab> = spin::Mutex::new(Gnttab::XEN_DEFAULT);

/// Records the settings of the boot command line.
#[cfg(target_os = "none")]
pub(super) fn record(g: &Gnttab) {
    *BOOTED.lock() = *g;
}

/// The grant-table settings of the boot command line (Xen's defaults before it is parsed).
#[cfg(target_os = "none")]
pub fn booted() -> Gnttab {
    *BOOTED.lock()
}
