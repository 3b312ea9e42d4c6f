//! The hypervisor heap: a static arena in .bss, then more regions from the frame allocator.
//!
//! The static arena lets `alloc` work from the first instruction of Rust code, before the frame
//! allocator exists (boot-info parsing and the allocator's own metadata need it). Once frames
//! can be allocated, a large region is added: unpacking a dom0 kernel needs tens of MiB in one
//! piece (Debian's XZ kernel is 66 MB unpacked).

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::NonNull;
use linked_list_allocator::Heap;
use spin::Mutex;

/// Size of the boot heap arena.
pub const HEAP_SIZE: usize = 16 * 1024 * 1024;
const MAX_REGIONS: usize = 8;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

struct Heaps {
    regions: [Option<Heap>; MAX_REGIONS],
}

struct Global(Mutex<Heaps>);

#[global_allocator]
static HEAP: Global = Global(Mutex::new(Heaps {
    regions: [const { None }; MAX_REGIONS],
}));

// SAFETY: allocation and deallocation are serialised by the lock; each region hands out
// disjoint memory it owns, and a pointer is returned to the region that contains it.
unsafe impl GlobalAlloc for Global {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut h = self.0.lock();
        for r in h.regions.iter_mut().flatten() {
            if let Ok(p) = r.allocate_first_fit(layout) {
                return p.as_ptr();
            }
        }
        core::ptr::null_mut()
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut h = self.0.lock();
        if let Some(r) = h
            .regions
            .iter_mut()
            .flatten()
            .find(|r| r.bottom() <= ptr && ptr < r.top())
            && let Some(p) = NonNull::new(ptr)
        {
            // SAFETY: `ptr` was allocated from this region with `layout` (GlobalAlloc contract).
            unsafe { r.deallocate(p, layout) };
        }
    }
}

/// Adds `[start, start + size)` as a heap region.
///
/// # Safety
/// The memory must be mapped, writable, unused, and never used for anything else.
pub unsafe fn add_region(start: *mut u8, size: usize) -> bool {
    let mut h = HEAP.0.lock();
    let Some(slot) = h.regions.iter_mut().find(|r| r.is_none()) else {
        return false;
    };
    // SAFETY: the caller hands over exclusive ownership of the memory.
    *slot = Some(unsafe { Heap::new(start, size) });
    true
}

/// Hands the static arena to the allocator. Must run once, before the first allocation.
pub fn init() {
    let start = core::ptr::addr_of_mut!(ARENA).cast::<u8>();
    // SAFETY: the arena is a static used by nothing else, and `init` runs once on the BSP
    // before any allocation.
    unsafe { add_region(start, HEAP_SIZE) };
}

/// Bytes currently allocated and free, over all regions.
pub fn usage() -> (usize, usize) {
    let h = HEAP.0.lock();
    h.regions
        .iter()
        .flatten()
        .fold((0, 0), |(u, f), r| (u + r.used(), f + r.free()))
}
