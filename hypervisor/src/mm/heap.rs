//! The hypervisor heap: a linked-list allocator over a static arena in .bss.
//!
//! A static arena means `alloc` works from the first instruction of Rust code, before the frame
//! allocator exists (boot-info parsing and the allocator's own metadata need it).

use linked_list_allocator::LockedHeap;

/// Size of the boot heap arena.
pub const HEAP_SIZE: usize = 16 * 1024 * 1024;

#[repr(C, align(4096))]
struct Arena([u8; HEAP_SIZE]);

static mut ARENA: Arena = Arena([0; HEAP_SIZE]);

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Hands the arena to the allocator. Must run once, before the first allocation.
pub fn init() {
    let start = core::ptr::addr_of_mut!(ARENA).cast::<u8>();
    // SAFETY: the arena is a static used by nothing else, and `init` runs once on the BSP
    // before any allocation.
    unsafe { HEAP.lock().init(start, HEAP_SIZE) };
}

/// Bytes currently allocated and free in the heap.
pub fn usage() -> (usize, usize) {
    let h = HEAP.lock();
    (h.used(), h.free())
}
