//! [`GrantMemory`] over the direct map, for the hypervisor's [`super::GrantHost`]
//! implementation to delegate to.

use super::layout::PAGE_SIZE;
use super::memory::{GrantMemory, Loc};
use crate::pvmm::Mfn;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering};
use xenolith_arch::layout::phys_to_virt;

/// Shared grant frames reached through the direct map. Every access is sequentially
/// consistent: these words are the hypervisor's half of a protocol with the guest (see
/// `gnttab::flags`), and the orderings there are stated as full barriers.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirectMapMemory;

impl DirectMapMemory {
    fn ptr<T>(at: Loc) -> *mut T {
        debug_assert!(at.offset + core::mem::size_of::<T>() <= PAGE_SIZE);
        debug_assert_eq!(at.offset % core::mem::align_of::<T>(), 0);
        (phys_to_virt(at.mfn << 12) + at.offset as u64) as *mut T
    }

    fn u16(at: Loc) -> &'static AtomicU16 {
        // SAFETY: grant frames are RAM frames, all of which the direct map covers, and stay
        // allocated while the table (or copy/map) using them exists; the offset is aligned and
        // inside the frame (checked above). Other accesses (the guest's) are atomic or racy
        // guest stores, which the hardware keeps word-atomic for aligned words.
        unsafe { AtomicU16::from_ptr(Self::ptr(at)) }
    }

    fn u32(at: Loc) -> &'static AtomicU32 {
        // SAFETY: as in `u16`.
        unsafe { AtomicU32::from_ptr(Self::ptr(at)) }
    }

    fn u64(at: Loc) -> &'static AtomicU64 {
        // SAFETY: as in `u16`.
        unsafe { AtomicU64::from_ptr(Self::ptr(at)) }
    }
}

impl GrantMemory for DirectMapMemory {
    fn load_u16(&self, at: Loc) -> u16 {
        Self::u16(at).load(Ordering::SeqCst)
    }

    fn load_u32(&self, at: Loc) -> u32 {
        Self::u32(at).load(Ordering::SeqCst)
    }

    fn load_u64(&self, at: Loc) -> u64 {
        Self::u64(at).load(Ordering::SeqCst)
    }

    fn store_u16(&self, at: Loc, val: u16) {
        Self::u16(at).store(val, Ordering::SeqCst)
    }

    fn store_u32(&self, at: Loc, val: u32) {
        Self::u32(at).store(val, Ordering::SeqCst)
    }

    fn store_u64(&self, at: Loc, val: u64) {
        Self::u64(at).store(val, Ordering::SeqCst)
    }

    fn cmpxchg_u32(&self, at: Loc, expected: u32, new: u32) -> u32 {
        match Self::u32(at).compare_exchange(expected, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(v) | Err(v) => v,
        }
    }

    fn and_u16(&self, at: Loc, mask: u16) {
        Self::u16(at).fetch_and(mask, Ordering::SeqCst);
    }

    fn or_u16(&self, at: Loc, bits: u16) {
        Self::u16(at).fetch_or(bits, Ordering::SeqCst);
    }

    fn zero_frame(&self, mfn: Mfn) {
        // SAFETY: a grant frame, covered by the direct map (see `u16`); zeroing races only with
        // the guest's own writes to its table, which a version switch discards anyway.
        unsafe { core::ptr::write_bytes(Self::ptr::<u8>(Loc { mfn, offset: 0 }), 0, PAGE_SIZE) }
    }
}

/// `memcpy` between two frames through the direct map, for [`super::GrantHost::copy_bytes`].
pub fn copy_frame_bytes(dest: Mfn, dest_offset: usize, src: Mfn, src_offset: usize, len: usize) {
    assert!(dest_offset + len <= PAGE_SIZE && src_offset + len <= PAGE_SIZE);
    let d = DirectMapMemory::ptr::<u8>(Loc {
        mfn: dest,
        offset: dest_offset,
    });
    let s = DirectMapMemory::ptr::<u8>(Loc {
        mfn: src,
        offset: src_offset,
    });
    // SAFETY: both ranges lie within RAM frames the caller holds references on (so they are
    // mapped by the direct map and not freed meanwhile); `copy` tolerates overlap (a copy within
    // one frame).
    unsafe { core::ptr::copy(s, d, len) }
}
