//! `com1=`/`com2=`: the 16550 UART configuration syntax of Xen 4.17
//! `xen/drivers/char/ns16550.c` (`parse_positional`, `parse_namevalue_pairs`,
//! `ns16550_parse_port_config`, `ns16550_init`), with the x86 per-port defaults from
//! `xen/arch/x86/setup.c`.
//!
//! `<baud>[/<base-baud>][,[DPS][,[<io-base>][,[<irq>][,...]]]]` followed by optional
//! `name=value` pairs (`baud`, `clock-hz`, `data-bits`, `io-base`, `irq`, `parity`, `reg-shift`,
//! `reg-width`, `stop-bits`). PCI UARTs (`pci`, `amt`, `msi`, the BDF fields, `dev=`, `port=`,
//! `bridge=`) are Xen syntax Xenolith cannot honour; they are reported and the port left
//! unconfigured.

use alloc::format;
use alloc::string::String;
use core::fmt;

use super::console::ComPort;
use super::num::{self, Overflow};

/// Xen's `UART_CLOCK_HZ` (1.8432 MHz) divided by 16: the usual PC UART base baud rate.
pub const DEFAULT_BASE_BAUD: u32 = 115_200;

/// A baud rate, or `auto`: keep whatever the firmware or bootloader programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Baud {
    /// Read the divisor latch instead of programming it (Xen's `BAUD_AUTO`).
    Auto,
    /// A fixed rate in bits per second.
    Rate(u32),
}

/// Parity setting (the `P` of `DPS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parity {
    /// `n`.
    None,
    /// `o`.
    Odd,
    /// `e`.
    Even,
    /// `m`.
    Mark,
    /// `s`.
    Space,
}

impl Parity {
    /// Xen's `parse_parity_char`: unknown characters silently mean "none".
    fn from_char(c: Option<u8>) -> Parity {
        match c {
            Some(b'o') => Parity::Odd,
            Some(b'e') => Parity::Even,
            Some(b'm') => Parity::Mark,
            Some(b's') => Parity::Space,
            _ => Parity::None,
        }
    }

    fn as_char(self) -> char {
        match self {
            Parity::None => 'n',
            Parity::Odd => 'o',
            Parity::Even => 'e',
            Parity::Mark => 'm',
            Parity::Space => 's',
        }
    }
}

/// The effective configuration of one 16550 UART, as Xen would program it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialConfig {
    /// Line speed.
    pub baud: Baud,
    /// UART input clock divided by 16 (the `/<base-baud>` field).
    pub base_baud: u32,
    /// Data bits, 5 to 8.
    pub data_bits: u8,
    /// Parity.
    pub parity: Parity,
    /// Stop bits, 1 or 2.
    pub stop_bits: u8,
    /// I/O port base (values of 0x10000 and up are MMIO addresses in Xen).
    pub io_base: u64,
    /// IRQ line; 0 means polled mode.
    pub irq: u32,
    /// Register stride shift (`reg-shift=`), for MMIO UARTs.
    pub reg_shift: u8,
    /// Register access width in bytes, 1 or 4 (`reg-width=`), for MMIO UARTs.
    pub reg_width: u8,
}

impl SerialConfig {
    /// Xen's x86 defaults for `port` before `com1=`/`com2=` is applied: 8n1 at the legacy
    /// I/O base and IRQ, with the given baud.
    pub fn xen_default(port: ComPort, baud: Baud) -> SerialConfig {
        let (io_base, irq) = match port {
            ComPort::Com1 => (0x3f8, 4),
            ComPort::Com2 => (0x2f8, 3),
        };
        SerialConfig {
            baud,
            base_baud: DEFAULT_BASE_BAUD,
            data_bits: 8,
            parity: Parity::None,
            stop_bits: 1,
            io_base,
            irq,
            reg_shift: 0,
            reg_width: 1,
        }
    }
}

impl fmt::Display for SerialConfig {
    /// Xen's own positional syntax, e.g. `115200,8n1,0x3f8,4` or `auto/1500000,8n1,0x3f8,0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.baud {
            Baud::Auto => f.write_str("auto")?,
            Baud::Rate(r) => write!(f, "{r}")?,
        }
        if self.base_baud != DEFAULT_BASE_BAUD {
            write!(f, "/{}", self.base_baud)?;
        }
        write!(
            f,
            ",{}{}{},{:#x},{}",
            self.data_bits,
            self.parity.as_char(),
            self.stop_bits,
            self.io_base,
            self.irq
        )?;
        if self.reg_shift != 0 {
            write!(f, ",reg-shift={}", self.reg_shift)?;
        }
        if self.reg_width != 1 {
            write!(f, ",reg-width={}", self.reg_width)?;
        }
        Ok(())
    }
}

/// The port settings while parsing, with Xen's wide integer fields so that range errors can
/// be reported with the value the user wrote.
struct Work {
    /// `None` is Xen's `BAUD_AUTO`, `Some(0)` "not set".
    baud: Option<u64>,
    base_baud: u64,
    data_bits: u64,
    parity: Parity,
    stop_bits: u64,
    io_base: u64,
    irq: u64,
    reg_shift: u64,
    reg_width: u64,
}

/// Parses the final `com1=`/`com2=` string for `port` (Xen's `ns16550_init` and
/// `ns16550_parse_port_config`). `console_has_port` is whether `console=` names the port.
///
/// Returns `Ok(None)` when the port is not configured: no `comN=` and not a console (Xen does
/// not register it). Errors carry Xen's message (`ERROR: ...`); Xen then leaves the port
/// unregistered, and so do we.
pub(crate) fn parse_port(
    port: ComPort,
    conf: &str,
    console_has_port: bool,
) -> Result<Option<SerialConfig>, String> {
    let default = SerialConfig::xen_default(port, Baud::Auto);
    let mut w = Work {
        // Without a baud rate, a port used as console keeps the firmware's rate.
        baud: if console_has_port { None } else { Some(0) },
        base_baud: u64::from(default.base_baud),
        data_bits: u64::from(default.data_bits),
        parity: default.parity,
        stop_bits: u64::from(default.stop_bits),
        io_base: default.io_base,
        irq: u64::from(default.irq),
        reg_shift: u64::from(default.reg_shift),
        reg_width: u64::from(default.reg_width),
    };

    if conf.is_empty() {
        if !console_has_port {
            return Ok(None);
        }
    } else {
        let (positional, pairs) = split_positional(conf);
        parse_positional(&mut w, positional, port)?;
        if let Some(pairs) = pairs {
            parse_pairs(&mut w, pairs, port)?;
        }
    }
    sanity_check(&w).map(Some)
}

/// Where the positional part ends: at the last `,` before the first `=` (`parse_positional`'s
/// backwards scan). Without a `=` everything is positional.
fn split_positional(conf: &str) -> (&str, Option<&str>) {
    match conf.find('=') {
        None => (conf, None),
        Some(eq) => match conf[..eq].rfind(',') {
            Some(comma) => (&conf[..comma], Some(&conf[comma + 1..])),
            None => ("", Some(conf)),
        },
    }
}

fn overflow(port: ComPort) -> impl Fn(Overflow) -> String {
    move |Overflow| format!("ERROR: {}: number out of range", port.name())
}

fn unsupported(port: ComPort, what: &str) -> String {
    format!(
        "ERROR: {}: {what} is not supported by Xenolith",
        port.name()
    )
}

/// Steps over a leading `,` and says whether a non-empty field follows it.
///
/// Mirrors Xen's `*conf == ',' && *++conf != ','`, which steps over the comma either way.
fn next_field(conf: &mut &str) -> bool {
    match conf.strip_prefix(',') {
        Some(rest) => {
            *conf = rest;
            !rest.starts_with(',')
        }
        None => false,
    }
}

/// Xen's `parse_positional`. Junk after a field is ignored, as in Xen.
fn parse_positional(w: &mut Work, mut conf: &str, port: ComPort) -> Result<(), String> {
    let ovf = overflow(port);
    if let Some(rest) = conf.strip_prefix("auto") {
        w.baud = None;
        conf = rest;
    } else {
        let (baud, rest) = num::strtoull(conf, 10).map_err(&ovf)?;
        conf = rest;
        // A missing or zero baud keeps the default.
        if baud != 0 {
            w.baud = Some(baud);
        }
    }

    if let Some(rest) = conf.strip_prefix('/') {
        let (base, rest) = num::strtoull(rest, 0).map_err(&ovf)?;
        w.base_baud = base;
        conf = rest;
    }

    if next_field(&mut conf) {
        let (bits, rest) = num::strtoull(conf, 10).map_err(&ovf)?;
        w.data_bits = bits;
        if rest.is_empty() {
            return Err(String::from("ERROR: bad DPS setting"));
        }
        w.parity = Parity::from_char(rest.as_bytes().first().copied());
        let (stop, rest) = num::strtoull(&rest[1..], 10).map_err(&ovf)?;
        w.stop_bits = stop;
        conf = rest;
    }

    if next_field(&mut conf) {
        if conf.starts_with("pci") || conf.starts_with("amt") {
            return Err(unsupported(port, "PCI UART discovery ('pci'/'amt')"));
        }
        let (io, rest) = num::strtoull(conf, 0).map_err(&ovf)?;
        w.io_base = io;
        conf = rest;
    }

    if next_field(&mut conf) {
        if conf.starts_with("msi") {
            return Err(unsupported(port, "an MSI interrupt ('msi')"));
        }
        if conf.starts_with('-') {
            // Xen takes a negative IRQ as "no interrupt and no polling"; we have no such mode.
            return Err(format!("ERROR: {}: negative IRQ", port.name()));
        }
        let (irq, rest) = num::strtoull(conf, 10).map_err(&ovf)?;
        w.irq = irq;
        conf = rest;
    }

    if next_field(&mut conf) {
        return Err(unsupported(port, "a PCI port location"));
    }
    if next_field(&mut conf) {
        return Err(unsupported(port, "a PCI bridge location"));
    }
    Ok(())
}

/// Xen's `parse_namevalue_pairs`: comma-separated `name=value`; values are read with base
/// auto-detection and any trailing junk is ignored, as in Xen.
fn parse_pairs(w: &mut Work, pairs: &str, port: ComPort) -> Result<(), String> {
    let ovf = overflow(port);
    for token in pairs.split(',') {
        let Some((name, value)) = token.split_once('=') else {
            return Err(format!("ERROR: Invalid parameter: {token}"));
        };
        let number = || num::strtoull(value, 0).map(|(v, _)| v).map_err(&ovf);
        match name {
            // Xen's code reads `baud=auto` as 0; its documentation promises `auto`.
            "baud" if value.starts_with("auto") => w.baud = None,
            "baud" => w.baud = Some(number()?),
            "clock-hz" => w.base_baud = number()?,
            "data-bits" => w.data_bits = number()?,
            "io-base" => w.io_base = number()?,
            "irq" => w.irq = number()?,
            "parity" => w.parity = Parity::from_char(value.as_bytes().first().copied()),
            "reg-shift" => w.reg_shift = number()?,
            "reg-width" => w.reg_width = number()?,
            "stop-bits" => w.stop_bits = number()?,
            "dev" | "port" | "bridge" => {
                return Err(unsupported(port, "PCI UART selection"));
            }
            _ => return Err(format!("ERROR: Invalid parameter: {token}")),
        }
    }
    Ok(())
}

/// The checks at the end of `ns16550_parse_port_config`, in Xen's order (the hardware probe
/// `check_existence` is left to the driver).
fn sanity_check(w: &Work) -> Result<SerialConfig, String> {
    let baud = match w.baud {
        None => Baud::Auto,
        Some(b @ 1200..=115_200) => Baud::Rate(b as u32),
        Some(b) => return Err(format!("ERROR: Baud rate {b} outside supported range.")),
    };
    if !(5..=8).contains(&w.data_bits) {
        return Err(format!("ERROR: {} data bits are unsupported.", w.data_bits));
    }
    if w.reg_width != 1 && w.reg_width != 4 {
        return Err(String::from(
            "ERROR: Accepted values of reg_width are 1 and 4 only",
        ));
    }
    if !(1..=2).contains(&w.stop_bits) {
        return Err(format!("ERROR: {} stop bits are unsupported.", w.stop_bits));
    }
    if w.io_base == 0 {
        return Err(String::from("ERROR: I/O base address must be specified."));
    }
    // Xen stores these in `int`s; insist they fit rather than truncate.
    let base_baud = u32::try_from(w.base_baud)
        .ok()
        .filter(|b| *b != 0)
        .ok_or_else(|| format!("ERROR: base baud {} unsupported.", w.base_baud))?;
    let irq = u32::try_from(w.irq).map_err(|_| format!("ERROR: IRQ {} unsupported.", w.irq))?;
    let reg_shift = u8::try_from(w.reg_shift)
        .ok()
        .filter(|s| *s < 32)
        .ok_or_else(|| format!("ERROR: reg_shift {} unsupported.", w.reg_shift))?;
    Ok(SerialConfig {
        baud,
        base_baud,
        data_bits: w.data_bits as u8,
        parity: w.parity,
        stop_bits: w.stop_bits as u8,
        io_base: w.io_base,
        irq,
        reg_shift,
        reg_width: w.reg_width as u8,
    })
}
