//! 64-bit paravirtualised guests: trap bounces, `HYPERVISOR_iret`, and (on bare metal) the
//! entry handlers.

pub mod bounce;
#[cfg(target_os = "none")]
pub mod entry;
