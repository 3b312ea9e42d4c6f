//! Guest time arithmetic: the TSC-to-nanoseconds scale Xen publishes in `vcpu_time_info`
//! (`set_time_scale` / `scale_delta` in `xen/arch/x86/time.c`) and the RTC date conversion
//! for the wall clock.

/// A TSC scale: `ns = ((delta << shift, or >> -shift) * mul_frac) >> 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeScale {
    /// `tsc_to_system_mul`.
    pub mul_frac: u32,
    /// `tsc_shift`.
    pub shift: i8,
}

impl TimeScale {
    /// The scale for a clock of `ticks_per_sec` (Xen's `set_time_scale`).
    pub fn new(ticks_per_sec: u64) -> Self {
        const NS_PER_SEC: u64 = 1_000_000_000;
        let mut tps64 = ticks_per_sec.max(1);
        let mut shift: i8 = 0;
        while tps64 > NS_PER_SEC * 2 {
            tps64 >>= 1;
            shift -= 1;
        }
        let mut tps32 = tps64 as u32;
        while u64::from(tps32) <= NS_PER_SEC {
            tps32 <<= 1;
            shift += 1;
        }
        let mul_frac = ((NS_PER_SEC << 32) / u64::from(tps32)) as u32;
        Self { mul_frac, shift }
    }

    /// Converts a tick delta to nanoseconds (Xen's `scale_delta`).
    pub fn scale(&self, delta: u64) -> u64 {
        let d = if self.shift < 0 {
            delta >> (-self.shift)
        } else {
            delta << self.shift
        };
        ((u128::from(d) * u128::from(self.mul_frac)) >> 32) as u64
    }
}

/// Seconds since the Unix epoch for a civil date and time (UTC).
pub fn unix_seconds(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> u64 {
    // Days from civil (Howard Hinnant's algorithm), valid for the Gregorian calendar.
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec)).max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_round_trips_common_frequencies() {
        for hz in [
            1_000_000u64,
            1_193_182,
            2_450_000_000,
            3_000_000_000,
            4_999_999_999,
        ] {
            let s = TimeScale::new(hz);
            let ns = s.scale(hz); // one second of ticks
            assert!(
                (999_999_000..=1_000_000_001).contains(&ns),
                "{hz} Hz gave {ns} ns"
            );
        }
    }

    #[test]
    fn scale_matches_xen_for_a_2ghz_tsc() {
        // 2 GHz: tps64 = 2e9 is not > 2e9, so no right shift; tps32 > 1e9: shift 0,
        // mul = 2^32 / 2 = 0x80000000.
        assert_eq!(
            TimeScale::new(2_000_000_000),
            TimeScale {
                mul_frac: 0x8000_0000,
                shift: 0
            }
        );
        // 1 GHz: doubled once to exceed 1e9 -> shift 1, mul = 2^31.
        assert_eq!(
            TimeScale::new(1_000_000_000),
            TimeScale {
                mul_frac: 0x8000_0000,
                shift: 1
            }
        );
    }

    #[test]
    fn epoch_conversion() {
        assert_eq!(unix_seconds(1970, 1, 1, 0, 0, 0), 0);
        assert_eq!(unix_seconds(2000, 3, 1, 0, 0, 0), 951_868_800);
        assert_eq!(unix_seconds(2026, 11, 25, 17, 20, 5), 1_795_627_205);
    }
}
