//! The Xenolith hypervisor core: options, memory management, consoles, domains.
//!
//! Pure logic is host-testable (`cargo test -p xenolith --lib`); code that needs the machine is
//! compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod mm;
pub mod options;
