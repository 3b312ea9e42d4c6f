//! The hypervisor console: `(XEN) `-prefixed lines to the selected serial ports and VGA, every
//! printed line kept in the console ring.
//!
//! Levels follow Xen's `XENLOG_*`: a message is printed when its level is at or below the
//! console threshold (`loglvl=`); plain `printk!` uses Xen's default level, `XENLOG_WARNING`.

pub mod conring;
pub mod line;

#[cfg(target_os = "none")]
pub mod input;
#[cfg(target_os = "none")]
pub mod keys;
#[cfg(target_os = "none")]
pub mod ring;
#[cfg(target_os = "none")]
mod sink;
#[cfg(target_os = "none")]
pub use sink::*;

pub use crate::options::LogLevel as Level;

/// Prints a line at Xen's default level (`XENLOG_WARNING`), like Xen's unprefixed `printk`.
#[macro_export]
macro_rules! printk {
    ($($arg:tt)*) => {
        $crate::console::print($crate::console::Level::Warning, format_args!($($arg)*))
    };
}

/// Prints at an explicit level: `printk_lvl!(Info, "...")`.
#[macro_export]
macro_rules! printk_lvl {
    ($lvl:ident, $($arg:tt)*) => {
        $crate::console::print($crate::console::Level::$lvl, format_args!($($arg)*))
    };
}

/// Host builds have no console: messages go to stderr in tests.
#[cfg(not(target_os = "none"))]
pub fn print(_level: Level, args: core::fmt::Arguments<'_>) {
    extern crate std;
    std::eprint!("(XEN) {args}");
}
