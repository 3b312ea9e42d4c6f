//! The Xenolith hypervisor core: options, memory management, consoles, domains.
//!
//! Pure logic is host-testable (`cargo test -p xenolith --lib`); code that needs the machine is
//! compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]
#[cfg(test)]
extern crate std;

extern crate alloc;

pub mod console;
pub mod domain;
pub mod evtchn;
#[cfg(test)]
mod fuzz_rng;
pub mod gnttab;
pub mod guest_mem;
pub mod hvm;
#[cfg(target_os = "none")]
pub mod hvm_selftest;
#[cfg(target_os = "none")]
pub mod hypercall;
pub mod loader;
pub mod mm;
pub mod options;
pub mod pirq;
pub mod pv;
pub mod pvmm;
pub mod sched;
#[cfg(target_os = "none")]
pub mod setup;
#[cfg(target_os = "none")]
pub mod shutdown;
#[cfg(target_os = "none")]
pub mod smpboot;
#[cfg(target_os = "none")]
pub mod time;
#[cfg(target_os = "none")]
pub mod traps;
pub mod xenstore;
