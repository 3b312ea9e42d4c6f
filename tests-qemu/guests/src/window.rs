//! Page windows and spare frames for the memory checks.
//!
//! A window is a page of the image whose virtual address the checks point at any frame
//! (read-only or writable) with `update_va_mapping`, and point back at its own frame afterwards.
//! Spare frames are the domain's highest pfns: far beyond the initial mapping (which only
//! covers the first few MiB), so nothing maps them and they hold nothing.

use core::ptr;
use core::sync::atomic::{AtomicU64, Ordering};

use xen_abi::xen::{StartInfo, UVMF_INVLPG};

use crate::hypercall as hc;
use crate::mm::{self, _PAGE_ACCESSED, _PAGE_PRESENT, _PAGE_RW, PAGE_SIZE};

/// Dirty bit of a PTE.
pub const _PAGE_DIRTY: u64 = 1 << 6;

/// Number of windows.
pub const COUNT: usize = 4;

/// A page of the image.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The windows' own pages: only accessed through raw pointers, since their mappings change.
static mut WINDOWS: [Page; COUNT] = [const { Page([0; 4096]) }; COUNT];

/// Each window's original PTE (0: not captured yet).
static ORIGINAL: [AtomicU64; COUNT] = [const { AtomicU64::new(0) }; COUNT];

/// Window `i`'s virtual address.
pub fn va(i: usize) -> u64 {
    assert!(i < COUNT);
    (&raw const WINDOWS) as u64 + i as u64 * PAGE_SIZE
}

/// Window `i`'s original PTE, captured from the page tables before the first remap.
fn original(si: &StartInfo, i: usize) -> Option<u64> {
    let v = ORIGINAL[i].load(Ordering::SeqCst);
    if v != 0 {
        return Some(v);
    }
    let pte = mm::walk(si, va(i)).ok()?.value;
    (pte & _PAGE_PRESENT != 0).then(|| {
        ORIGINAL[i].store(pte, Ordering::SeqCst);
        pte
    })
}

/// A PTE for `mfn`: present, accessed, plus read-write and dirty if `writable`.
pub fn pte(mfn: u64, writable: bool) -> u64 {
    let rw = if writable { _PAGE_RW | _PAGE_DIRTY } else { 0 };
    (mfn * PAGE_SIZE) | _PAGE_PRESENT | _PAGE_ACCESSED | rw
}

/// Points window `i` at `mfn`; returns update_va_mapping's result.
pub fn map(si: &StartInfo, i: usize, mfn: u64, writable: bool) -> i64 {
    if original(si, i).is_none() {
        return -1;
    }
    map_pte(i, pte(mfn, writable), UVMF_INVLPG)
}

/// Points window `i` at PTE `pte` with update_va_mapping `flags`.
pub fn map_pte(i: usize, pte: u64, flags: u64) -> i64 {
    // SAFETY: only the window's mapping changes; windows are never accessed as Rust objects.
    unsafe { hc::update_va_mapping(va(i), pte, flags) }
}

/// Points window `i` back at its own frame.
pub fn restore(si: &StartInfo, i: usize) -> i64 {
    match original(si, i) {
        // SAFETY: as for map_pte; this is the window's initial mapping.
        Some(pte) => unsafe { hc::update_va_mapping(va(i), pte, UVMF_INVLPG) },
        None => -1,
    }
}

/// Reads word `idx` (0..512) of window `i`.
pub fn read(i: usize, idx: usize) -> u64 {
    assert!(idx < 512);
    // SAFETY: the window is always mapped (to its own frame or one the checks chose).
    unsafe { ptr::read_volatile((va(i) + idx as u64 * 8) as *const u64) }
}

/// Writes word `idx` of window `i` (only while it is mapped writable).
pub fn write(i: usize, idx: usize, value: u64) {
    assert!(idx < 512);
    // SAFETY: callers only write while the window maps a frame writable.
    unsafe { ptr::write_volatile((va(i) + idx as u64 * 8) as *mut u64, value) }
}

/// Fills window `i` (mapped writable) with `f(idx)`.
pub fn fill(i: usize, f: impl Fn(usize) -> u64) {
    for idx in 0..512 {
        write(i, idx, f(idx));
    }
}

/// A spare frame: `(pfn, mfn)` of the domain's `k`-th highest pfn, if it is really unmapped.
pub fn spare(si: &StartInfo, k: u64) -> Option<(u64, u64)> {
    let pfn = si.nr_pages.checked_sub(1 + k)?;
    if pfn < 1024 {
        return None;
    }
    let mapped = matches!(mm::walk(si, mm::pfn_to_va(pfn)), Ok(e) if e.value & _PAGE_PRESENT != 0);
    (!mapped).then(|| (pfn, mm::p2m(si)[pfn as usize]))
}
