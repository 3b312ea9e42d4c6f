//! 64-bit paravirtualised guests: trap bounces, `HYPERVISOR_iret`, and (on bare metal) the
//! entry handlers.

pub mod bounce;
pub mod clock;
pub mod decode;
#[cfg(target_os = "none")]
pub mod emulate;
#[cfg(target_os = "none")]
pub mod entry;
#[cfg(target_os = "none")]
pub mod events;
#[cfg(test)]
mod fuzz_tests;
#[cfg(target_os = "none")]
pub mod time;
