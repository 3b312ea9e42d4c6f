//! The console's output devices and its global state (bare-metal only).

use super::Level;
use super::conring::ConRing;
use super::line::LineState;
use crate::options::LogLevels;
use core::fmt::{self, Write};
use spin::Mutex;
use xenolith_arch::serial::{LineConfig, Uart};
use xenolith_arch::vga::VgaText;

/// Where console output goes.
pub struct Console {
    serial: [Option<Uart>; 2],
    vga: Option<VgaText>,
    ring: Option<ConRing>,
    line: LineState,
    /// `loglvl=` thresholds.
    levels: LogLevels,
}

static CONSOLE: Mutex<Console> = Mutex::new(Console {
    // Until options are parsed, COM1 at its legacy address carries early messages.
    serial: [Some(Uart::new(xenolith_arch::serial::COM1_BASE)), None],
    vga: None,
    ring: None,
    line: LineState::new(),
    levels: LogLevels::XEN_DEFAULT,
});

/// The console configuration chosen from the command line.
pub struct ConsoleConfig {
    /// COM1/COM2 port bases and line settings, if selected.
    pub serial: [Option<(u16, LineConfig)>; 2],
    /// Whether VGA text output is selected.
    pub vga: bool,
    /// Console ring size in bytes.
    pub conring_size: usize,
    /// `loglvl=` thresholds.
    pub levels: LogLevels,
}

/// Applies the console configuration (called once options are parsed).
pub fn configure(cfg: &ConsoleConfig) {
    let mut c = lock();
    for (slot, sel) in c.serial.iter_mut().zip(cfg.serial.iter()) {
        *slot = sel.map(|(base, line)| {
            let u = Uart::new(base);
            u.init(&line);
            u
        });
    }
    c.vga = cfg.vga.then(|| {
        // SAFETY: the low 4 GiB are identity-mapped during early boot; `relocate_vga` moves the
        // writer to the direct map before the identity map goes away.
        unsafe { VgaText::new(xenolith_arch::vga::VGA_TEXT_PHYS as *mut u16) }
    });
    c.ring = Some(match c.ring.take() {
        Some(r) => r.resized(cfg.conring_size),
        None => ConRing::new(cfg.conring_size),
    });
    c.levels = cfg.levels;
}

/// Turns on receive interrupts of the first selected serial port; returns its base (to find
/// its ISA IRQ), or `None` without a serial console.
pub fn enable_serial_rx() -> Option<u16> {
    let c = lock();
    let (u, base) = c.serial.iter().flatten().next().map(|u| (u, u.base()))?;
    u.enable_rx_interrupt();
    Some(base)
}

/// Takes one received byte from the serial console, if any is waiting.
pub fn serial_rx() -> Option<u8> {
    lock().serial.iter().flatten().next()?.read_byte()
}

/// Points the VGA writer at the direct map (after the switch to the hypervisor's page tables).
pub fn relocate_vga(direct_map_va: u64) {
    if let Some(v) = lock().vga.as_mut() {
        // SAFETY: the direct map covers the low 4 GiB, including the VGA buffer.
        unsafe { v.relocate(direct_map_va as *mut u16) };
    }
}

fn lock() -> spin::MutexGuard<'static, Console> {
    CONSOLE.lock()
}

impl Console {
    fn emit(&mut self, bytes: &[u8]) {
        for u in self.serial.iter().flatten() {
            for &b in bytes {
                if b == b'\n' {
                    u.write_byte(b'\r');
                }
                u.write_byte(b);
            }
        }
        if let Some(v) = self.vga.as_mut() {
            bytes.iter().for_each(|&b| v.write_byte(b));
        }
        if let Some(r) = self.ring.as_mut() {
            r.write(bytes);
        }
    }

    fn write_text(&mut self, text: &[u8]) {
        let mut line = core::mem::take(&mut self.line);
        line.feed(text, |b| self.emit(b));
        self.line = line;
    }
}

struct Writer<'a>(&'a mut Console);

impl Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_text(s.as_bytes());
        Ok(())
    }
}

/// Prints formatted text at `level` (the `printk!` back end).
pub fn print(level: Level, args: fmt::Arguments<'_>) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut c = lock();
        // Rate limiting is not implemented: rate-limited levels are printed.
        if c.levels.disposition(level) != crate::options::Disposition::Never {
            let _ = Writer(&mut c).write_fmt(args);
        }
    });
}

/// Prints even if another CPU died holding the console lock (fatal paths only).
pub fn print_fatal(args: fmt::Arguments<'_>) {
    for _ in 0..10_000_000 {
        if let Some(mut c) = CONSOLE.try_lock() {
            let _ = Writer(&mut c).write_fmt(args);
            return;
        }
        core::hint::spin_loop();
    }
    // SAFETY: the holder is presumed dead (we are on the way to halting the machine); taking
    // the lock over is the only way left to report the failure.
    unsafe { CONSOLE.force_unlock() };
    let _ = Writer(&mut lock()).write_fmt(args);
}

/// A copy of the console ring (oldest byte first), as `xl dmesg` would show it.
pub fn ring_contents() -> alloc::vec::Vec<u8> {
    x86_64::instructions::interrupts::without_interrupts(|| {
        lock()
            .ring
            .as_ref()
            .map(|r| r.contents())
            .unwrap_or_default()
    })
}

/// Reads a byte from the first serial port that has one (for debug keys, later issues).
pub fn poll_input() -> Option<u8> {
    lock().serial.iter().flatten().find_map(|u| u.read_byte())
}

/// Waits for serial output to drain (before reset or power-off).
pub fn flush() {
    if let Some(c) = CONSOLE.try_lock() {
        c.serial.iter().flatten().for_each(|u| u.flush());
    }
}

/// The first `rows` rows of the VGA text buffer as the VGA console wrote them (for the `vga`
/// self-test); empty when VGA output is not selected.
pub fn vga_rows(rows: usize) -> alloc::vec::Vec<alloc::string::String> {
    let c = lock();
    let Some(v) = c.vga.as_ref() else {
        return alloc::vec::Vec::new();
    };
    (0..rows)
        .map(|r| {
            let mut buf = [0u8; xenolith_arch::vga::COLS];
            let n = v.read_row(r, &mut buf);
            alloc::string::String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect()
}

/// Part of a domU's console output: `(dN) ` is printed first only when `line_start` (the
/// previous part ended a line), so a line written in pieces (a shell prompt, then what the user
/// types) stays one line with one prefix.
pub fn guest_write_part(domid: u16, bytes: &[u8], line_start: bool) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut c = lock();
        if line_start {
            c.emit(alloc::format!("(d{domid}) ").as_bytes());
        }
        c.emit(bytes);
    });
}

/// Text a guest printed with `console_io`. The hardware domain's text goes out as is (Xen
/// writes dom0's output straight to the console); other domains' lines get a `(dN) ` prefix.
pub fn guest_write(domid: u16, bytes: &[u8]) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut c = lock();
        if domid == 0 {
            c.emit(bytes);
            return;
        }
        let prefix = alloc::format!("(d{domid}) ");
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            c.emit(prefix.as_bytes());
            c.emit(chunk);
        }
    });
}
