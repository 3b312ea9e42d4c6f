//! Memory management: the physical frame allocator, the RAM regions it manages, the heap.

pub mod buddy;
#[cfg(target_os = "none")]
pub mod heap;
pub mod regions;
