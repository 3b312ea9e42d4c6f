//! Access to the frames a guest shares with the hypervisor: the shared grant entries and the
//! version-2 status words.
//!
//! The granting guest writes its entries while other CPUs pin them, so every access is one
//! atomic load, store or read-modify-write of a naturally aligned word, in the byte order of
//! the machine (little-endian). Nothing here caches guest-written values: callers read a word,
//! decide, and publish their decision with a compare-and-swap that fails if the guest changed
//! the word in between.

use crate::pvmm::Mfn;

/// A naturally aligned word in a frame: the frame and the byte offset in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The frame.
    pub mfn: Mfn,
    /// Byte offset in the frame; a multiple of the access size.
    pub offset: usize,
}

impl Loc {
    /// The word `bytes` further on in the same frame.
    pub const fn add(self, bytes: usize) -> Self {
        Self {
            mfn: self.mfn,
            offset: self.offset + bytes,
        }
    }
}

/// Atomic access to words of frames that a guest may write concurrently.
///
/// In the hypervisor the frames are reached through the direct map (see `DirectMapMemory`,
/// bare-metal builds only); in host tests through a fake that can inject guest writes between
/// the hypervisor's accesses. Offsets are always aligned to the access size and inside the
/// frame; frames are always ones the grant code was given by [`super::GrantHost`].
pub trait GrantMemory {
    /// Atomically loads the `u16` at `at`.
    fn load_u16(&self, at: Loc) -> u16;
    /// Atomically loads the `u32` at `at`.
    fn load_u32(&self, at: Loc) -> u32;
    /// Atomically loads the `u64` at `at`.
    fn load_u64(&self, at: Loc) -> u64;
    /// Atomically stores `val` at `at`.
    fn store_u16(&self, at: Loc, val: u16);
    /// Atomically stores `val` at `at`.
    fn store_u32(&self, at: Loc, val: u32);
    /// Atomically stores `val` at `at`.
    fn store_u64(&self, at: Loc, val: u64);
    /// Compare-and-swap (`cmpxchg`): stores `new` if the word is `expected`. Returns the value
    /// found, which equals `expected` exactly when the store happened.
    fn cmpxchg_u32(&self, at: Loc, expected: u32, new: u32) -> u32;
    /// Atomically ANDs `mask` into the `u16` at `at` (`lock andw`: Xen's `gnttab_clear_flags`,
    /// confined to the two flag bytes so it never clobbers the guest's `domid`).
    fn and_u16(&self, at: Loc, mask: u16);
    /// Atomically ORs `bits` into the `u16` at `at`.
    fn or_u16(&self, at: Loc, bits: u16);
    /// Zeroes the whole frame (`clear_page`).
    fn zero_frame(&self, mfn: Mfn);
}
