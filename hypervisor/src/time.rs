//! Time: TSC and LAPIC-timer calibration against the PIT, delays, and the one-shot timer.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use xenolith_arch::{apic, cpu, pit};

static TSC_KHZ: AtomicU64 = AtomicU64::new(0);
/// LAPIC timer ticks (divide-by-16) per millisecond.
static LAPIC_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
static TIMER_FIRED: AtomicU32 = AtomicU32::new(0);

/// Calibrates the TSC and LAPIC timer over 20 ms of PIT time; returns (TSC kHz, LAPIC kHz).
pub fn calibrate() -> (u64, u64) {
    const TICKS: u16 = 23_864; // 20 ms at 1.193182 MHz
    apic::timer_start(0, u32::MAX, true);
    let ((t0, l0), (t1, l1)) = pit::measure(TICKS, || (cpu::rdtsc(), apic::timer_current()));
    apic::timer_stop();
    let ns = u64::from(TICKS) * 1_000_000_000 / pit::PIT_HZ;
    let tsc_khz = (t1 - t0) * 1_000_000 / ns;
    let lapic_khz = u64::from(l0 - l1) * 1_000_000 / ns;
    TSC_KHZ.store(tsc_khz.max(1), Ordering::Relaxed);
    LAPIC_TICKS_PER_MS.store(lapic_khz.max(1), Ordering::Relaxed);
    (tsc_khz, lapic_khz)
}

/// TSC frequency in kHz (after calibration).
pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

/// Microseconds since `start_tsc`.
pub fn us_since(start_tsc: u64) -> u64 {
    (cpu::rdtsc() - start_tsc) * 1000 / tsc_khz().max(1)
}

/// Busy-waits `us` microseconds (falls back to a fixed 1 GHz guess before calibration).
pub fn delay_us(us: u64) {
    let khz = match tsc_khz() {
        0 => 1_000_000,
        k => k,
    };
    let start = cpu::rdtsc();
    let ticks = us * khz / 1000;
    while cpu::rdtsc() - start < ticks {
        core::hint::spin_loop();
    }
}

/// Arms this CPU's LAPIC timer (one-shot) to fire in `ns` nanoseconds (longer delays fire
/// early, at the counter's limit, and the handler re-arms).
pub fn arm_oneshot_ns(ns: u64) {
    let per_ms = LAPIC_TICKS_PER_MS.load(Ordering::Relaxed).max(1);
    let ticks = (u128::from(ns) * u128::from(per_ms) / 1_000_000).clamp(1, u128::from(u32::MAX));
    apic::timer_start(crate::traps::TIMER_VECTOR, ticks as u32, false);
}

/// Stops this CPU's LAPIC timer.
pub fn stop_oneshot() {
    apic::timer_stop();
}

/// Called from the timer vector.
pub fn timer_interrupt() {
    TIMER_FIRED.fetch_add(1, Ordering::Release);
}

/// Arms the LAPIC timer once for `us` microseconds and waits (halted) for its interrupt;
/// returns the measured latency in microseconds, or `None` if it never fired within 1 s.
pub fn oneshot_selftest(vector: u8, us: u64) -> Option<u64> {
    let before = TIMER_FIRED.load(Ordering::Acquire);
    let ticks =
        (LAPIC_TICKS_PER_MS.load(Ordering::Relaxed) * us / 1000).clamp(1, u64::from(u32::MAX));
    let start = cpu::rdtsc();
    apic::timer_start(vector, ticks as u32, false);
    while TIMER_FIRED.load(Ordering::Acquire) == before {
        if us_since(start) > 1_000_000 {
            apic::timer_stop();
            return None;
        }
        // Interrupts on: the timer interrupt ends the halt.
        cpu::idle_halt();
        x86_64::instructions::interrupts::disable();
    }
    Some(us_since(start))
}
