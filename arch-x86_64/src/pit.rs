//! The 8254 PIT, used once at boot as the reference clock to calibrate the TSC and LAPIC timer.

use x86_64::instructions::port::Port;

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;

/// Busy-waits `ticks` PIT ticks (at most 65535) on channel 2, calling `sample` at the start and
/// at the end; returns what the two calls gave.
pub fn measure<T>(ticks: u16, mut sample: impl FnMut() -> T) -> (T, T) {
    // SAFETY: channel 2 and port 0x61 belong to the PC speaker path, unused by the hypervisor
    // otherwise; programming them has no effect beyond the counter.
    unsafe {
        let mut p61 = Port::<u8>::new(0x61);
        let v = p61.read();
        p61.write((v & !0x02) | 0x01); // gate on, speaker off
        Port::<u8>::new(0x43).write(0xb0); // channel 2, lobyte/hibyte, mode 0
        let mut ch2 = Port::<u8>::new(0x42);
        ch2.write(ticks as u8);
        ch2.write((ticks >> 8) as u8);
        // Restart the count by toggling the gate, so the measured interval starts now.
        let v = p61.read();
        p61.write(v & !0x01);
        p61.write(v | 0x01);
        let start = sample();
        let mut spins: u64 = 0;
        while p61.read() & 0x20 == 0 && spins < 1_000_000_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        let end = sample();
        (start, end)
    }
}
