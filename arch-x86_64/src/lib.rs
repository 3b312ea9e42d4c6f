//! x86_64 hardware layer of Xenolith.
//!
//! Pure logic (table parsers, page-table entry formats) builds and is tested on the host; code
//! that touches the machine is compiled only for the bare-metal target.
#![cfg_attr(not(test), no_std)]
#[cfg(test)]
extern crate std;

extern crate alloc;

pub mod acpi;
pub mod apic;
pub mod cpu;
pub mod fpu;
pub mod gdt;
pub mod guest_entry;
pub mod hvm;
pub mod layout;
pub mod paging;
pub mod percpu;
pub mod pit;
pub mod rtc;
pub mod serial;
pub mod smp;
pub mod trap;
pub mod uaccess;
pub mod vga;
