//! Memory management: the physical frame allocator, the RAM regions it manages, the heap, and
//! the hypervisor's own page tables.

pub mod buddy;
#[cfg(target_os = "none")]
pub mod frames;
#[cfg(target_os = "none")]
pub mod frametable;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod m2p;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod physmem;
pub mod regions;
