//! The global physical frame allocator (a buddy allocator behind a lock).

use super::buddy::{BuddyAllocator, MAX_ORDER};
use spin::Mutex;

static FRAMES: Mutex<BuddyAllocator> = Mutex::new(BuddyAllocator::new());

/// Bytes in a frame.
pub const FRAME_SIZE: u64 = 4096;

/// Hands the byte ranges `[start, end)` (page-aligned) to the allocator.
pub fn add_ranges(ranges: &[(u64, u64)]) {
    let mut f = FRAMES.lock();
    for &(s, e) in ranges {
        f.add_range(s / FRAME_SIZE, e / FRAME_SIZE);
    }
}

/// Allocates `2^order` contiguous frames; returns the physical address of the first.
pub fn alloc(order: usize) -> Option<u64> {
    FRAMES.lock().alloc(order).map(|pfn| pfn * FRAME_SIZE)
}

/// Allocates `2^order` contiguous frames wholly below physical address `limit`.
pub fn alloc_below(order: usize, limit: u64) -> Option<u64> {
    FRAMES
        .lock()
        .alloc_below(order, limit / FRAME_SIZE)
        .map(|pfn| pfn * FRAME_SIZE)
}

/// Returns frames obtained from [`alloc`].
pub fn free(pa: u64, order: usize) {
    FRAMES.lock().free(pa / FRAME_SIZE, order);
}

/// (free pages, total pages, free blocks per order).
pub fn stats() -> (u64, u64, [u64; MAX_ORDER + 1]) {
    let f = FRAMES.lock();
    (f.free_pages(), f.total_pages(), f.order_counts())
}
