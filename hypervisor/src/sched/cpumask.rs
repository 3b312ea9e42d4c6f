//! Sets of physical CPUs: TLB-shootdown targets, and vCPU affinities with xl's `cpus=` syntax.

use core::fmt;

/// A set of physical CPUs (up to [`CpuMask::BITS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuMask([u64; CpuMask::BITS / 64]);

impl CpuMask {
    /// How many CPUs a mask can name (the hypervisor's `NR_CPUS`).
    pub const BITS: usize = 256;

    /// Every CPU (xl's `all`).
    pub const fn all() -> Self {
        CpuMask([u64::MAX; Self::BITS / 64])
    }

    /// Only `cpu`.
    pub fn of(cpu: u32) -> Self {
        let mut m = Self::default();
        m.set(cpu);
        m
    }

    /// Adds `cpu`.
    pub fn set(&mut self, cpu: u32) {
        if let Some(w) = self.0.get_mut(cpu as usize / 64) {
            *w |= 1 << (cpu % 64);
        }
    }

    /// Removes `cpu`.
    pub fn clear(&mut self, cpu: u32) {
        if let Some(w) = self.0.get_mut(cpu as usize / 64) {
            *w &= !(1 << (cpu % 64));
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.0
            .get(cpu as usize / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// How many CPUs are in the set.
    pub fn count(&self) -> u32 {
        self.0.iter().map(|w| w.count_ones()).sum()
    }

    /// The CPUs in both sets.
    pub fn and(&self, other: &CpuMask) -> CpuMask {
        let mut m = *self;
        for (w, o) in m.0.iter_mut().zip(other.0) {
            *w &= o;
        }
        m
    }

    /// The CPUs in the set, in order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(k, &w)| {
            let mut left = w;
            core::iter::from_fn(move || {
                (left != 0).then(|| {
                    let bit = left.trailing_zeros();
                    left &= left - 1;
                    k as u32 * 64 + bit
                })
            })
        })
    }

    /// The set as words (bit *n* of word *k*: CPU 64 *k* + *n*), for atomic copies.
    pub fn words(&self) -> [u64; Self::BITS / 64] {
        self.0
    }

    /// The set [`CpuMask::words`] gave.
    pub const fn from_words(words: [u64; Self::BITS / 64]) -> Self {
        CpuMask(words)
    }

    /// Parses xl's CPU list (`xl.cfg`'s `cpus="CPULIST"`): comma-separated items, each `all`,
    /// a CPU `N` or a range `N-M`, and `^N` or `^N-M` to take CPUs out again (`0-3,^1`).
    /// The result must name some CPU. xl's `nodes:` items are not supported (no NUMA).
    pub fn parse_list(s: &str) -> Option<CpuMask> {
        let mut m = CpuMask::default();
        for item in s.split(',') {
            let (remove, range) = match item.strip_prefix('^') {
                Some(r) => (true, r),
                None => (false, item),
            };
            let (lo, hi) = if range == "all" {
                (0, Self::BITS as u32 - 1)
            } else {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let cpu = |t: &str| t.parse::<u32>().ok().filter(|&c| (c as usize) < Self::BITS);
                (cpu(a)?, cpu(b)?)
            };
            if lo > hi {
                return None;
            }
            for c in lo..=hi {
                if remove {
                    m.clear(c);
                } else {
                    m.set(c);
                }
            }
        }
        (!m.is_empty()).then_some(m)
    }
}

/// xl's list form: `0-1,3`.
impl fmt::Display for CpuMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == CpuMask::all() {
            return f.write_str("all");
        }
        let mut first = true;
        let mut cpus = self.iter().peekable();
        while let Some(lo) = cpus.next() {
            let mut hi = lo;
            while cpus.next_if_eq(&(hi + 1)).is_some() {
                hi += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if hi == lo {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::CpuMask;
    use alloc::string::ToString;

    fn list(s: &str) -> Option<alloc::vec::Vec<u32>> {
        CpuMask::parse_list(s).map(|m| m.iter().collect())
    }

    #[test]
    fn xl_cpu_lists() {
        assert_eq!(list("1"), Some(alloc::vec![1]));
        assert_eq!(list("0-1"), Some(alloc::vec![0, 1]));
        assert_eq!(list("0-3,5,^1"), Some(alloc::vec![0, 2, 3, 5]));
        assert_eq!(list("2-5,^4"), Some(alloc::vec![2, 3, 5]));
        assert_eq!(list("all,^0-253"), Some(alloc::vec![254, 255]));
        assert_eq!(CpuMask::parse_list("all"), Some(CpuMask::all()));
        for bad in [
            "", "x", "1-", "-1", "3-1", "256", "0-256", "^0", "0,^0", "1,,2", " 1",
        ] {
            assert_eq!(CpuMask::parse_list(bad), None, "{bad}");
        }
    }

    #[test]
    fn sets_and_display() {
        let m = CpuMask::parse_list("0-2,7,9-10").unwrap();
        assert_eq!(m.to_string(), "0-2,7,9-10");
        assert_eq!(m.count(), 6);
        assert_eq!(m.and(&CpuMask::of(7)), CpuMask::of(7));
        assert!(m.and(&CpuMask::of(8)).is_empty());
        assert_eq!(CpuMask::all().to_string(), "all");
        assert_eq!(CpuMask::of(200).to_string(), "200");
        assert_eq!(CpuMask::all().count(), 256);
    }
}
