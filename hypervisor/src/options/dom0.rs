//! `dom0_mem` and `dom0_max_vcpus`: syntax and sizing rules from Xen 4.17
//! `xen/arch/x86/dom0_build.c` (`parse_amt`, `parse_dom0_mem`, `parse_dom0_max_vcpus`,
//! `dom0_max_vcpus`, `get_memsize`, `default_nr_pages`, `dom0_compute_nr_pages`).

use core::fmt;

use super::num::{self, Overflow};
use super::{EINVAL, EOVERFLOW};

/// Xen sizes dom0 in 4 KiB pages and drops any sub-page remainder when parsing.
const PAGE_SIZE: u64 = 4096;
const MIB: u64 = 1 << 20;

/// Xen's `MAX_VIRT_CPUS` on x86 (`xen/arch/x86/include/asm/config.h`): the vCPU cap for a PV
/// dom0, applied after the `dom0_max_vcpus` clamp.
pub const DOM0_MAX_VIRT_CPUS: u32 = 8192;

/// One `dom0_mem` amount: Xen's `struct memsize`, i.e. `[-](<size> | <frac>% | <size>+<frac>%)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemSize {
    /// The absolute part in bytes, rounded down to whole 4 KiB pages as Xen keeps only
    /// `nr_pages`.
    pub bytes: u64,
    /// The percentage-of-host-memory part (`0..100`).
    pub percent: u8,
    /// A leading `-`: the amount is "all available memory but this much".
    pub minus: bool,
}

impl MemSize {
    /// Xen's `get_memsize`: the amount in pages given `avail` pages.
    ///
    /// The subtraction wraps exactly like Xen's `unsigned long` arithmetic: "all but more than
    /// there is" yields a huge value that the final clamp to `avail` turns into "everything".
    fn pages(&self, avail: u64) -> u64 {
        let pages = (self.bytes / PAGE_SIZE).wrapping_add(u64::from(self.percent) * avail / 100);
        if self.minus {
            avail.wrapping_sub(pages)
        } else {
            pages
        }
    }

    /// True when Xen would treat this amount as "not given" (`get_memsize() == 0`).
    fn is_zero(&self) -> bool {
        !self.minus && self.bytes < PAGE_SIZE && self.percent == 0
    }
}

/// Formats a byte count in MiB when exact, else KiB (amounts are whole 4 KiB pages).
fn fmt_bytes(f: &mut fmt::Formatter<'_>, bytes: u64) -> fmt::Result {
    if bytes.is_multiple_of(MIB) {
        write!(f, "{} MiB", bytes / MIB)
    } else {
        write!(f, "{} KiB", bytes / 1024)
    }
}

impl fmt::Display for MemSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let both = self.bytes != 0 && self.percent != 0;
        if self.minus {
            f.write_str("all but ")?;
        }
        if self.minus && both {
            f.write_str("(")?;
        }
        if self.bytes != 0 || self.percent == 0 {
            fmt_bytes(f, self.bytes)?;
        }
        if both {
            f.write_str(" + ")?;
        }
        if self.percent != 0 {
            write!(f, "{}%", self.percent)?;
        }
        if self.minus && both {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Parsed `dom0_mem=List of ( min:<sz> | max:<sz> | <sz> )`.
///
/// Fields accumulate across repeated `dom0_mem=` options exactly like Xen's static
/// `dom0_size`/`dom0_min_size`/`dom0_max_size`: `dom0_mem=min:1G dom0_mem=2G` keeps the minimum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dom0Mem {
    /// `<sz>`: the amount to give dom0; `None` means Xen's default (all but a reserve).
    pub amount: Option<MemSize>,
    /// `min:<sz>`: lower bound; `None` means 0.
    pub min: Option<MemSize>,
    /// `max:<sz>`: upper bound and balloon limit; `None` means unlimited.
    pub max: Option<MemSize>,
}

impl Dom0Mem {
    /// The dom0 memory size in bytes that Xen would pick on a host with `total_ram_bytes`.
    ///
    /// Follows `dom0_compute_nr_pages`: the amount (or, if absent or zero, all but
    /// `min(avail / 16, 128 MiB)`), raised to `min`, lowered to `max`, then capped at `avail`;
    /// negative amounts and percentages are relative to `avail`.
    ///
    /// Simplified: `avail` is taken to be `total_ram_bytes` (in whole pages). Xen uses the free
    /// heap plus the boot modules on dom0's NUMA nodes, minus reservations for the extra vCPU
    /// structures, IOMMU page tables and shadow/HAP paging memory; it also clips PV dom0s whose
    /// kernels lack `XEN_ELFNOTE_INIT_P2M`, and pv-shim mode ignores `dom0_mem`. None of that
    /// is modelled here, so the caller should pass the memory actually available for dom0.
    pub fn resolve(&self, total_ram_bytes: u64) -> u64 {
        let avail = total_ram_bytes / PAGE_SIZE;
        let mut nr = self.amount.map_or(0, |a| a.pages(avail));
        if nr == 0 {
            // `default_nr_pages`: keep 1/16th of memory (at most 128 MiB) for DMA buffers etc.
            nr = avail - core::cmp::min(avail / 16, (128 * MIB) / PAGE_SIZE);
        }
        let min = self.min.map_or(0, |m| m.pages(avail));
        let max = self.max.map_or(u64::MAX, |m| m.pages(avail));
        // Same order as Xen: `max` wins over `min`, available memory wins over both.
        nr = nr.max(min).min(max).min(avail);
        nr * PAGE_SIZE
    }

    /// The balloon ceiling (`d->max_pages`) in bytes, if `max:` was given; Xen caps it at
    /// `UINT_MAX` pages.
    pub fn resolve_max(&self, total_ram_bytes: u64) -> Option<u64> {
        let avail = total_ram_bytes / PAGE_SIZE;
        self.max
            .map(|m| m.pages(avail).min(u64::from(u32::MAX)) * PAGE_SIZE)
    }

    /// Parses one `dom0_mem=` value on top of the current settings (Xen's `parse_dom0_mem`).
    ///
    /// Unlike Xen, a value with an error changes nothing: Xen keeps the items before the bad
    /// one, we keep the previous settings whole, so a rejected option is wholly ignored.
    pub(crate) fn parse_into(&mut self, s: &str) -> Result<(), i32> {
        let mut new = *self;
        let mut s = s;
        loop {
            let (slot, rest) = if let Some(r) = s.strip_prefix("min:") {
                (&mut new.min, r)
            } else if let Some(r) = s.strip_prefix("max:") {
                (&mut new.max, r)
            } else {
                (&mut new.amount, s)
            };
            let (size, rest) = parse_amt(rest)?;
            *slot = Some(size);
            // `parse_amt` stops only at the end or at a comma.
            match rest.strip_prefix(',') {
                Some(r) => s = r,
                None => break,
            }
        }
        *self = new;
        Ok(())
    }
}

/// Xen's `parse_amt`: `[-]<size>`, `[-]<frac>%` or `[-]<size>+<frac>%`, ending at `,` or the
/// end of the value. Returns the amount and the rest (empty or starting with `,`).
fn parse_amt(s: &str) -> Result<(MemSize, &str), i32> {
    let mut tmp = MemSize::default();
    let mut s = s;
    if let Some(r) = s.strip_prefix('-') {
        tmp.minus = true;
        s = r;
    }
    let mut items = 0;
    loop {
        // Xen insists on a digit: this rejects empty values, signs and quotes.
        if !s.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(EINVAL);
        }
        let (val, rest) = num::parse_size_and_unit(s).map_err(|Overflow| EOVERFLOW)?;
        s = rest;
        if let Some(r) = s.strip_prefix('%') {
            if val >= 100 {
                return Err(EINVAL);
            }
            tmp.percent = val as u8;
            s = r;
            // A percentage must be the last item.
            items += 1;
        } else {
            // The size must come first (`1G+25%`, not `25%+1G`).
            if items != 0 {
                return Err(EINVAL);
            }
            tmp.bytes = val & !(PAGE_SIZE - 1);
        }
        items += 1;
        match s.strip_prefix('+') {
            Some(r) if items < 2 => s = r,
            _ => break,
        }
    }
    if !(s.is_empty() || s.starts_with(',')) {
        return Err(EINVAL);
    }
    Ok((tmp, s))
}

impl fmt::Display for Dom0Mem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = "";
        if let Some(a) = self.amount.filter(|a| !a.is_zero()) {
            write!(f, "{a}")?;
            sep = ", ";
        }
        if let Some(m) = self.min {
            write!(f, "{sep}min {m}")?;
            sep = ", ";
        }
        if let Some(m) = self.max {
            write!(f, "{sep}max {m}")?;
            sep = ", ";
        }
        if sep.is_empty() {
            f.write_str("default (all but min(1/16, 128 MiB))")?;
        }
        Ok(())
    }
}

/// Parsed `dom0_max_vcpus=<N> | <min>-<max>`: dom0 gets one vCPU per pCPU, clamped to this
/// range (Xen's `opt_dom0_max_vcpus_min`/`_max`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuRange {
    /// Lower bound, at least 1 (Xen turns 0 into 1).
    pub min: u32,
    /// Upper bound; `u32::MAX` means unlimited.
    pub max: u32,
}

impl Default for VcpuRange {
    fn default() -> Self {
        VcpuRange {
            min: 1,
            max: u32::MAX,
        }
    }
}

impl VcpuRange {
    /// The number of dom0 vCPUs Xen would create with `nr_pcpus` usable pCPUs (Xen's
    /// `dom0_max_vcpus()`): `nr_pcpus` raised to `min`, lowered to `max`, capped at
    /// [`DOM0_MAX_VIRT_CPUS`].
    ///
    /// Simplified: Xen counts the pCPUs of dom0's NUMA nodes (`dom0_nodes=`) in cpupool 0, and
    /// caps a PVH dom0 at `HVM_MAX_VCPUS` instead; the caller passes the pCPU count to use.
    pub fn resolve(&self, nr_pcpus: u32) -> u32 {
        let mut n = nr_pcpus;
        if self.min > n {
            n = self.min;
        }
        if self.max < n {
            n = self.max;
        }
        n.min(DOM0_MAX_VIRT_CPUS)
    }

    /// Parses one `dom0_max_vcpus=` value on top of the current range (Xen's
    /// `parse_dom0_max_vcpus`): `N`, `N-`, `N-M` or `-M`; an omitted bound keeps its previous
    /// value, as Xen's statics do.
    ///
    /// Stricter than Xen, which accepts these silently: `min > max` (Xen lets `max` win), a
    /// maximum of 0 (Xen would build a dom0 without vCPUs), numbers beyond 32 bits (Xen
    /// truncates) and a single trailing junk character (`4x`, which Xen's parser skips).
    pub(crate) fn parse_into(&mut self, s: &str) -> Result<(), i32> {
        fn num(s: &str) -> Result<(u32, &str), i32> {
            num::strtou32(s, 0).map_err(|Overflow| EOVERFLOW)
        }
        let mut new = *self;
        let rest = if let Some(r) = s.strip_prefix('-') {
            let (max, rest) = num(r)?;
            new.max = max;
            rest
        } else {
            let (min, rest) = num(s)?;
            new.min = min.max(1);
            if rest.is_empty() {
                new.max = new.min;
                rest
            } else if let Some(r) = rest.strip_prefix('-') {
                if r.is_empty() {
                    r
                } else {
                    let (max, rest) = num(r)?;
                    new.max = max;
                    rest
                }
            } else {
                rest
            }
        };
        if !rest.is_empty() || new.max == 0 || new.min > new.max {
            return Err(EINVAL);
        }
        *self = new;
        Ok(())
    }
}

impl fmt::Display for VcpuRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == VcpuRange::default() {
            f.write_str("one per pCPU")
        } else if self.min == self.max {
            write!(f, "{}", self.min)
        } else if self.max == u32::MAX {
            write!(f, "{}-", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}
