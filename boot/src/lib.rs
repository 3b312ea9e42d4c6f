//! Boot layer: multiboot1/multiboot2 headers, the 32-bit entry that switches to long mode, and
//! parsers that turn either protocol's boot information into one neutral [`info::BootInfo`].
//!
//! The parsers are pure and read physical memory through [`PhysMemory`], so host tests feed them
//! byte fixtures.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

#[cfg(target_os = "none")]
mod entry;
#[cfg(test)]
mod fuzz_tests;
pub mod info;
pub mod mb1;
pub mod mb2;
pub mod physmem;

pub use info::{BootInfo, MemoryKind, MemoryRegion, Module, Protocol};
pub use physmem::{PhysMemory, SliceMemory};

/// Value in EAX when a multiboot1 loader enters the kernel.
pub const MB1_BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// Value in EAX when a multiboot2 loader enters the kernel.
pub const MB2_BOOTLOADER_MAGIC: u32 = 0x36d7_6289;
