//! 16550 UART driver for COM1/COM2 (polled output, non-blocking input).

use x86_64::instructions::port::Port;

/// Legacy I/O base of COM1.
pub const COM1_BASE: u16 = 0x3f8;
/// Legacy I/O base of COM2.
pub const COM2_BASE: u16 = 0x2f8;

/// Line parameters of a UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineConfig {
    /// Baud rate; 0 keeps what firmware programmed (Xen's `auto`).
    pub baud: u32,
    /// Data bits, 5-8.
    pub data_bits: u8,
    /// Parity: b'n', b'o', b'e', b'm' or b's'.
    pub parity: u8,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
}

impl Default for LineConfig {
    fn default() -> Self {
        Self {
            baud: 115_200,
            data_bits: 8,
            parity: b'n',
            stop_bits: 1,
        }
    }
}

impl LineConfig {
    /// The Line Control Register value (without DLAB) for these parameters.
    pub fn lcr(&self) -> u8 {
        let data = self.data_bits.clamp(5, 8) - 5;
        let stop = if self.stop_bits >= 2 { 1 << 2 } else { 0 };
        let parity = match self.parity {
            b'o' => 0b001 << 3,
            b'e' => 0b011 << 3,
            b'm' => 0b101 << 3,
            b's' => 0b111 << 3,
            _ => 0,
        };
        data | stop | parity
    }

    /// The divisor latch value for the standard 1.8432 MHz clock.
    pub fn divisor(&self) -> Option<u16> {
        if self.baud == 0 {
            return None;
        }
        u16::try_from((115_200 / self.baud).max(1)).ok()
    }
}

/// A 16550-compatible UART at an I/O port base.
#[derive(Clone, Copy, Debug)]
pub struct Uart {
    base: u16,
}

impl Uart {
    /// A UART at `base` (not yet initialised).
    pub const fn new(base: u16) -> Self {
        Self { base }
    }

    /// The I/O base.
    pub const fn base(&self) -> u16 {
        self.base
    }

    fn port(&self, reg: u16) -> Port<u8> {
        Port::new(self.base + reg)
    }

    /// Whether a UART answers at this base (scratch-register test).
    pub fn present(&self) -> bool {
        let mut scratch = self.port(7);
        // SAFETY: the scratch register of a UART has no side effects; on an absent UART the
        // port reads back 0xff and the write goes nowhere.
        unsafe {
            scratch.write(0x5a);
            scratch.read() == 0x5a
        }
    }

    /// Programs line parameters, enables FIFOs, and disables UART interrupts (output is polled).
    pub fn init(&self, cfg: &LineConfig) {
        // SAFETY: standard 16550 programming sequence on the UART's own registers.
        unsafe {
            self.port(1).write(0x00); // IER: no interrupts
            if let Some(div) = cfg.divisor() {
                self.port(3).write(0x80); // DLAB
                self.port(0).write(div as u8);
                self.port(1).write((div >> 8) as u8);
            }
            self.port(3).write(cfg.lcr());
            self.port(2).write(0xc7); // FIFO enable + clear, 14-byte threshold
            self.port(4).write(0x03); // DTR | RTS
        }
    }

    /// Interrupts on received data: IER's receive bit, and MCR's OUT2, which gates the
    /// UART's interrupt line on PC hardware.
    pub fn enable_rx_interrupt(&self) {
        // SAFETY: IER and MCR of this UART; output stays polled.
        unsafe {
            self.port(4).write(0x0b); // DTR | RTS | OUT2
            self.port(1).write(0x01); // IER: received data available
        }
    }

    /// Writes one byte, waiting for the transmitter holding register to empty.
    pub fn write_byte(&self, b: u8) {
        // SAFETY: polling LSR and writing THR of this UART.
        unsafe {
            let mut lsr = self.port(5);
            let mut spins = 0u32;
            // Bounded wait: a wedged or absent UART must not hang the hypervisor.
            while lsr.read() & 0x20 == 0 && spins < 1_000_000 {
                spins += 1;
                core::hint::spin_loop();
            }
            self.port(0).write(b);
        }
    }

    /// Reads a byte if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        // SAFETY: reading LSR and RBR of this UART.
        unsafe {
            if self.port(5).read() & 0x01 != 0 {
                Some(self.port(0).read())
            } else {
                None
            }
        }
    }

    /// Waits until everything written has left the shift register.
    pub fn flush(&self) {
        // SAFETY: polling LSR of this UART.
        unsafe {
            let mut lsr = self.port(5);
            let mut spins = 0u32;
            while lsr.read() & 0x40 == 0 && spins < 10_000_000 {
                spins += 1;
                core::hint::spin_loop();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcr_and_divisor() {
        let c = LineConfig::default();
        assert_eq!(c.lcr(), 0x03);
        assert_eq!(c.divisor(), Some(1));
        let c = LineConfig {
            baud: 9600,
            data_bits: 7,
            parity: b'e',
            stop_bits: 2,
        };
        assert_eq!(c.lcr(), 0x02 | 0x04 | 0x18);
        assert_eq!(c.divisor(), Some(12));
        assert_eq!(LineConfig { baud: 0, ..c }.divisor(), None);
    }
}
