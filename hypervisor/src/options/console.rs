//! `console=`, `loglvl=`/`guest_loglvl=` and `conring_size=`, from Xen 4.17
//! `xen/drivers/char/console.c` (`console_init_preirq`, `_parse_loglvl`, `printk_prefix_check`,
//! `console_init_ring`, `console_init_postirq`) and `xen/drivers/char/serial.c`
//! (`serial_parse_handle`).

use alloc::vec::Vec;
use core::fmt;

use super::{Diagnostic, DiagnosticKind, EINVAL};

/// Xen's default `console=` on x86 (`OPT_CONSOLE_STR` in `asm/config.h`). The command-line
/// document says `com1,vga`, but the code has said `vga` for many releases; we follow the code.
pub(crate) const DEFAULT_CONSOLE: &str = "vga";

/// A legacy PC serial port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ComPort {
    /// COM1 (I/O 0x3f8, IRQ 4 by default).
    Com1,
    /// COM2 (I/O 0x2f8, IRQ 3 by default).
    Com2,
}

impl ComPort {
    /// The option name (`com1`/`com2`).
    pub fn name(self) -> &'static str {
        match self {
            ComPort::Com1 => "com1",
            ComPort::Com2 => "com2",
        }
    }
}

/// Where Xen console output goes: the effective result of `console=`.
///
/// Like Xen, at most one serial port carries the console (`sercon_handle`): with
/// `console=com1,com2` the later one wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsoleSet {
    /// VGA text console (`vga`, or `pc` as a Xenolith alias).
    pub vga: bool,
    /// The serial console port, if any.
    pub serial: Option<ComPort>,
}

impl Default for ConsoleSet {
    fn default() -> Self {
        ConsoleSet::parse(DEFAULT_CONSOLE, [true, true], &mut Vec::new())
    }
}

impl ConsoleSet {
    /// True if no console output at all is configured.
    pub fn is_empty(&self) -> bool {
        !self.vga && self.serial.is_none()
    }

    /// Parses the final `console=` string the way `console_init_preirq` walks it.
    ///
    /// Xen matches `vga`, `pv`, `xen` and `none` as prefixes (`strncmp`), so `vgafoo` means
    /// `vga`; `none` only means "add nothing", it does not cancel other entries. Serial names go
    /// through `serial_parse_handle`: `com1`/`com2` with an optional `H`/`L` suffix (anything
    /// after is ignored), `dbgp`/`ehci`/`xhci` exactly, `dtuart` as a prefix. Anything else,
    /// including an empty entry, is reported as Xen does: `Bad console= option '...'`.
    ///
    /// `registered` says whether COM1/COM2 ended up configured: Xen cannot attach the console
    /// to a port whose `comN=` was rejected and reports that entry as bad too.
    pub(crate) fn parse(s: &str, registered: [bool; 2], diags: &mut Vec<Diagnostic>) -> ConsoleSet {
        let mut set = ConsoleSet {
            vga: false,
            serial: None,
        };
        for item in s.split(',') {
            let unsupported = |diags: &mut Vec<Diagnostic>| {
                diags.push(Diagnostic::new(
                    DiagnosticKind::UnsupportedConsole,
                    "console",
                    item,
                ));
            };
            if item.starts_with("vga") || item == "pc" {
                // `pc` is a Xenolith alias; Xen 4.17 would call it a bad option.
                set.vga = true;
            } else if item.starts_with("pv") || item.starts_with("xen") {
                // Xen's PV console (pv-shim) and debug-port console (`console=xen`).
                unsupported(diags);
            } else if item.starts_with("none") {
                // Nothing to add.
            } else if let Some(port) = parse_com(item).filter(|p| registered[*p as usize]) {
                if item.len() > 4 && matches!(item.as_bytes()[4], b'H' | b'L') {
                    // The high/low bit sharing of one port between two users.
                    unsupported(diags);
                }
                set.serial = Some(port);
            } else if matches!(item, "dbgp" | "ehci" | "xhci") || item.starts_with("dtuart") {
                // USB debug ports and the device-tree UART.
                unsupported(diags);
            } else {
                diags.push(Diagnostic::new(DiagnosticKind::BadConsole, "console", item));
            }
        }
        set
    }
}

/// `serial_parse_handle`'s `com` case: `com1...` or `com2...`.
fn parse_com(item: &str) -> Option<ComPort> {
    match item.as_bytes() {
        [b'c', b'o', b'm', b'1', ..] => Some(ComPort::Com1),
        [b'c', b'o', b'm', b'2', ..] => Some(ComPort::Com2),
        _ => None,
    }
}

/// Xen's `console_has(device)`: does any `console=` entry start with `device`?
pub(crate) fn console_has(console: &str, device: &str) -> bool {
    console.split(',').any(|item| item.starts_with(device))
}

impl fmt::Display for ConsoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.serial, self.vga) {
            (None, false) => f.write_str("none"),
            (None, true) => f.write_str("vga"),
            (Some(p), false) => f.write_str(p.name()),
            (Some(p), true) => write!(f, "{},vga", p.name()),
        }
    }
}

/// A message's severity, as in Xen's `XENLOG_ERR` (`<0>`) to `XENLOG_DEBUG` (`<3>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// `XENLOG_ERR`.
    Error = 0,
    /// `XENLOG_WARNING`.
    Warning = 1,
    /// `XENLOG_INFO`.
    Info = 2,
    /// `XENLOG_DEBUG`.
    Debug = 3,
}

/// What happens to a message of a given level (see [`LogLevels::disposition`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Printed unconditionally.
    Always,
    /// Printed subject to the printk rate limit.
    RateLimited,
    /// Dropped.
    Never,
}

/// A pair of thresholds from `loglvl=` or `guest_loglvl=`
/// (`<level>[/<rate-limited level>]`).
///
/// Thresholds are 0 (`none`) to 4 (`debug`/`all`). As in Xen's `printk_prefix_check`, a message
/// of level L is printed if L < `lower`, rate-limited if `lower` <= L < `upper`, dropped
/// otherwise. The parser keeps `upper >= lower`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogLevels {
    /// Threshold below which messages are always printed.
    pub lower: u8,
    /// Threshold below which messages are printed subject to rate limiting.
    pub upper: u8,
}

/// Xen's level names by threshold, as its hypfs view prints them (`lvl2opt`).
const THRESHOLD_NAMES: [&str; 5] = ["none", "error", "warning", "info", "all"];

impl LogLevels {
    /// Xen's release-build default for `loglvl`: `warning` (thresholds 2/2). Debug builds of
    /// Xen default to `all`.
    pub const XEN_DEFAULT: LogLevels = LogLevels { lower: 2, upper: 2 };
    /// Xen's release-build default for `guest_loglvl`: `none/warning` (0/2), i.e. guest-caused
    /// errors and warnings are rate-limited, the rest dropped.
    pub const GUEST_DEFAULT: LogLevels = LogLevels { lower: 0, upper: 2 };

    /// True if a message at `level` is printed unconditionally (below the lower threshold).
    pub fn prints(&self, level: LogLevel) -> bool {
        (level as u8) < self.lower
    }

    /// The full decision for a message at `level`.
    pub fn disposition(&self, level: LogLevel) -> Disposition {
        let l = level as u8;
        if l < self.lower {
            Disposition::Always
        } else if l < self.upper {
            Disposition::RateLimited
        } else {
            Disposition::Never
        }
    }

    /// Parses `<level>[/<level>]` (Xen's `_parse_loglvl`).
    ///
    /// Level names are matched as prefixes and an unrecognised name falls back to `warning`
    /// without consuming anything, so `loglvl=` alone means `warning` while `loglvl=bogus` is
    /// trailing garbage and rejected. Unlike Xen, which stores the fallback thresholds even
    /// when it then reports an error, a rejected value leaves the setting unchanged.
    pub(crate) fn parse(s: &str) -> Result<LogLevels, i32> {
        let (lower, rest) = parse_level(s);
        let mut upper = lower;
        let mut rest = rest;
        if let Some(r) = rest.strip_prefix('/') {
            (upper, rest) = parse_level(r);
        }
        if !rest.is_empty() {
            return Err(EINVAL);
        }
        Ok(LogLevels {
            lower,
            upper: upper.max(lower),
        })
    }
}

/// Xen's `__parse_loglvl`: first matching prefix, in Xen's order, else 2 (`warning`).
fn parse_level(s: &str) -> (u8, &str) {
    const LEVELS: [(&str, u8); 6] = [
        ("none", 0),
        ("error", 1),
        ("warning", 2),
        ("info", 3),
        ("debug", 4),
        ("all", 4),
    ];
    for (name, lvl) in LEVELS {
        if let Some(rest) = s.strip_prefix(name) {
            return (lvl, rest);
        }
    }
    (2, s)
}

impl fmt::Display for LogLevels {
    /// `lower/upper` by name, as Xen's hypfs shows it (e.g. `warning/warning`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |t: u8| THRESHOLD_NAMES.get(usize::from(t)).copied().unwrap_or("?");
        write!(f, "{}/{}", name(self.lower), name(self.upper))
    }
}

/// Size of Xen's static boot console ring (`_CONRING_SIZE`, 16 KiB in 4.17): the smallest ring
/// there ever is.
pub const CONRING_STATIC_SIZE: usize = 16 * 1024;

/// The console ring size Xen ends up with, given the `conring_size=` value (0 if not given),
/// the number of present CPUs and the `loglvl` lower threshold.
///
/// `console_init_postirq` sizes an unspecified ring as `nr_cpus << (9 + lower)` bytes (2 KiB per
/// CPU at the default `loglvl`), then `console_init_ring` allocates `max(request, 16 KiB)`
/// rounded up to a power-of-two number of 4 KiB pages. Not modelled: Xen halves the order
/// until the allocation succeeds.
pub(crate) fn effective_conring_size(requested: usize, nr_cpus: u32, lower: u8) -> usize {
    let request = if requested != 0 {
        requested
    } else {
        (nr_cpus as usize) << (9 + u32::from(lower))
    };
    if request == 0 {
        // Xen keeps the static ring when there is nothing to allocate.
        return CONRING_STATIC_SIZE;
    }
    // `PAGE_SIZE << get_order_from_bytes(max(request, conring_size))`.
    request
        .max(CONRING_STATIC_SIZE)
        .div_ceil(4096)
        .next_power_of_two()
        * 4096
}
