//! The CMOS real-time clock, read once at boot for the guests' wall clock.

use x86_64::instructions::port::Port;

/// A date and time read from the RTC (UTC, as PC firmware under QEMU keeps it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtcTime {
    /// Full year.
    pub year: u32,
    /// 1-12.
    pub month: u32,
    /// 1-31.
    pub day: u32,
    /// 0-23.
    pub hour: u32,
    /// 0-59.
    pub min: u32,
    /// 0-59.
    pub sec: u32,
}

fn cmos(reg: u8) -> u8 {
    // SAFETY: ports 0x70/0x71 are the CMOS index/data pair; reading a register has no side
    // effects beyond the index latch (NMI-disable bit left clear, as firmware expects).
    unsafe {
        Port::<u8>::new(0x70).write(reg & 0x7f);
        Port::<u8>::new(0x71).read()
    }
}

/// Decodes a BCD byte.
pub const fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0xf)
}

/// Reads the RTC, waiting out an update in progress and re-reading until two reads agree.
pub fn read(century_reg: Option<u8>) -> RtcTime {
    let raw = || {
        for _ in 0..1_000_000 {
            if cmos(0x0a) & 0x80 == 0 {
                break;
            }
            core::hint::spin_loop();
        }
        [
            0x00,
            0x02,
            0x04,
            0x07,
            0x08,
            0x09,
            century_reg.unwrap_or(0x32),
        ]
        .map(cmos)
    };
    let mut r = raw();
    for _ in 0..8 {
        let again = raw();
        if again == r {
            break;
        }
        r = again;
    }
    let status_b = cmos(0x0b);
    let binary = status_b & 0x04 != 0;
    let h24 = status_b & 0x02 != 0;
    let dec = |v: u8| u32::from(if binary { v } else { from_bcd(v) });
    let pm = r[2] & 0x80 != 0;
    let mut hour = dec(r[2] & 0x7f);
    if !h24 {
        hour = (hour % 12) + if pm { 12 } else { 0 };
    }
    let century = if century_reg.is_some() { dec(r[6]) } else { 20 };
    RtcTime {
        year: century * 100 + dec(r[5]),
        month: dec(r[4]),
        day: dec(r[3]),
        hour,
        min: dec(r[1]),
        sec: dec(r[0]),
    }
}
