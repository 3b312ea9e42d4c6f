//! Guest memory as the event ABIs see it: byte ranges the guest writes concurrently, reached
//! only through atomics and only inside their bounds.
//!
//! [`GuestMem`] is the one place that turns an address into references. Its constructor is
//! `unsafe` (the caller vouches that the range stays mapped while the value lives); every
//! access after that is safe and bounds-checked, so nothing the guest writes into its pages
//! (LINK fields, queue heads, bitmaps) can steer the hypervisor outside them: the offsets
//! used here are computed by this module from hypervisor-side state, never read from guest
//! memory.
//!
//! In the hypervisor a `GuestMem` is a direct-map address of a frame the domain owns (with a
//! writable type reference held for as long as the ABI keeps it, as Xen's `map_guest_page`);
//! host tests back it with leaked heap buffers.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use xen_abi::xen::{SharedInfo as SharedInfoLayout, VcpuInfo as VcpuInfoLayout};

/// A range of guest memory, 8-byte aligned, accessed only atomically.
///
/// `frame` is an opaque token for the owner (the hypervisor stores the MFN there so it can drop
/// its page reference when the ABI gives the range back); this module never interprets it.
#[derive(Debug)]
pub struct GuestMem {
    base: NonNull<u8>,
    len: usize,
    frame: u64,
}

// SAFETY: a GuestMem is an address range that its creator guaranteed stays valid while the value
// lives (see `from_raw`); all accesses are atomic, so using it from any CPU is sound.
unsafe impl Send for GuestMem {}
// SAFETY: as above: shared references only ever produce atomic accesses.
unsafe impl Sync for GuestMem {}

impl GuestMem {
    /// Wraps `len` bytes at `base`. Returns `None` if `base` is null or not 8-byte aligned.
    ///
    /// # Safety
    /// `base..base + len` must be readable and writable memory that stays mapped, and that the
    /// hypervisor accesses only atomically, for as long as the returned value (or a
    /// [`GuestMem::sub`] range of it) lives.
    pub unsafe fn from_raw(base: *mut u8, len: usize, frame: u64) -> Option<Self> {
        let base = NonNull::new(base)?;
        (base.as_ptr() as usize)
            .is_multiple_of(8)
            .then_some(Self { base, len, frame })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The owner's token given to [`GuestMem::from_raw`].
    pub fn frame(&self) -> u64 {
        self.frame
    }

    /// The sub-range `offset..offset + len`, keeping the frame token, if it lies inside and
    /// `offset` is 8-byte aligned.
    pub fn sub(self, offset: usize, len: usize) -> Option<Self> {
        let end = offset.checked_add(len)?;
        if end > self.len || !offset.is_multiple_of(8) {
            return None;
        }
        // The new base stays inside the original allocation, so it is non-null.
        let base = NonNull::new(self.base.as_ptr().wrapping_add(offset))?;
        Some(Self {
            base,
            len,
            frame: self.frame,
        })
    }

    /// Checks that an `size`-byte access at `offset` is aligned and in bounds, and returns its
    /// address. Offsets come from this crate's own arithmetic, so a failure is a hypervisor bug.
    fn at(&self, offset: usize, size: usize) -> *mut u8 {
        assert!(
            offset.is_multiple_of(size)
                && offset.checked_add(size).is_some_and(|end| end <= self.len),
            "guest memory access at {offset}+{size} outside {} bytes",
            self.len
        );
        self.base.as_ptr().wrapping_add(offset)
    }

    /// The byte at `offset`.
    pub fn u8_at(&self, offset: usize) -> &AtomicU8 {
        let p = self.at(offset, 1);
        // SAFETY: in bounds (checked by `at`); valid while `self` lives (constructor contract).
        unsafe { AtomicU8::from_ptr(p) }
    }

    /// The aligned 32-bit word at byte `offset`.
    pub fn u32_at(&self, offset: usize) -> &AtomicU32 {
        let p = self.at(offset, 4).cast::<u32>();
        // SAFETY: in bounds and 4-aligned (base is 8-aligned, offset checked by `at`); valid
        // while `self` lives.
        unsafe { AtomicU32::from_ptr(p) }
    }

    /// The aligned 64-bit word at byte `offset`.
    pub fn u64_at(&self, offset: usize) -> &AtomicU64 {
        let p = self.at(offset, 8).cast::<u64>();
        // SAFETY: in bounds and 8-aligned (checked by `at`); valid while `self` lives.
        unsafe { AtomicU64::from_ptr(p) }
    }
}

/// The guest memory an event ABI reaches through the domain rather than through its own
/// mappings: the `shared_info` page and each vCPU's `vcpu_info` (8-byte aligned, as
/// [`GuestMem::from_raw`] requires). `None` means "not there" (no such vCPU, or a domain being
/// torn down); the ABIs then drop what they would have written, as Xen does for a vCPU
/// without a control block.
pub trait EventMemory {
    /// The domain's `shared_info` page (4096 bytes).
    fn shared_info(&self) -> Option<GuestMem>;
    /// vCPU `vcpu`'s `vcpu_info` (64 bytes), wherever the guest registered it.
    fn vcpu_info(&self, vcpu: u32) -> Option<GuestMem>;
}

/// No guest memory at all: for callers that only change port state.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMemory;

impl EventMemory for NoMemory {
    fn shared_info(&self) -> Option<GuestMem> {
        None
    }

    fn vcpu_info(&self, _vcpu: u32) -> Option<GuestMem> {
        None
    }
}

/// Atomically sets `bit` of `word`; returns whether it was already set (Xen's
/// `guest_test_and_set_bit`).
pub(crate) fn test_and_set_u64(word: &AtomicU64, bit: u32) -> bool {
    let m = 1u64 << (bit % 64);
    word.fetch_or(m, Ordering::SeqCst) & m != 0
}

/// As [`test_and_set_u64`] for a 32-bit event word.
pub(crate) fn test_and_set_u32(word: &AtomicU32, bit: u32) -> bool {
    let m = 1u32 << (bit % 32);
    word.fetch_or(m, Ordering::SeqCst) & m != 0
}

/// Whether `bit` of `word` is set.
pub(crate) fn test_u32(word: &AtomicU32, bit: u32) -> bool {
    word.load(Ordering::SeqCst) & (1 << (bit % 32)) != 0
}

/// A vCPU's `vcpu_info`: the upcall flag, the upcall mask and the 2-level selector.
pub struct VcpuInfo(GuestMem);

impl VcpuInfo {
    const PENDING: usize = core::mem::offset_of!(VcpuInfoLayout, evtchn_upcall_pending);
    const MASK: usize = core::mem::offset_of!(VcpuInfoLayout, evtchn_upcall_mask);
    const SEL: usize = core::mem::offset_of!(VcpuInfoLayout, evtchn_pending_sel);

    /// The view, if `mem` is large enough for a `vcpu_info`.
    pub fn new(mem: GuestMem) -> Option<Self> {
        (mem.len() >= core::mem::size_of::<VcpuInfoLayout>()).then_some(Self(mem))
    }

    /// Xen's `vcpu_mark_events_pending`: sets `evtchn_upcall_pending`; returns true if it was
    /// clear, i.e. the vCPU must be kicked.
    pub fn mark_events_pending(&self) -> bool {
        self.0.u8_at(Self::PENDING).fetch_or(1, Ordering::SeqCst) & 1 == 0
    }

    /// Sets selector bit `bit` (2-level); returns whether it was already set.
    pub fn test_and_set_selector(&self, bit: u32) -> bool {
        test_and_set_u64(self.0.u64_at(Self::SEL), bit)
    }

    /// `(evtchn_upcall_pending, evtchn_upcall_mask)`.
    pub fn upcall_state(&self) -> (u8, u8) {
        (
            self.0.u8_at(Self::PENDING).load(Ordering::SeqCst),
            self.0.u8_at(Self::MASK).load(Ordering::SeqCst),
        )
    }
}

/// The 2-level bitmaps of `shared_info`.
pub struct SharedInfo(GuestMem);

impl SharedInfo {
    const PENDING: usize = core::mem::offset_of!(SharedInfoLayout, evtchn_pending);
    const MASK: usize = core::mem::offset_of!(SharedInfoLayout, evtchn_mask);

    /// The view, if `mem` covers a `shared_info`.
    pub fn new(mem: GuestMem) -> Option<Self> {
        (mem.len() >= core::mem::size_of::<SharedInfoLayout>()).then_some(Self(mem))
    }

    /// The `evtchn_pending` word holding `port` (`port` < 4096, else the access panics).
    pub fn pending_word(&self, port: u32) -> &AtomicU64 {
        self.0.u64_at(Self::PENDING + (port as usize / 64) * 8)
    }

    /// The `evtchn_mask` word holding `port`.
    pub fn mask_word(&self, port: u32) -> &AtomicU64 {
        self.0.u64_at(Self::MASK + (port as usize / 64) * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::testutil::TestPage;

    #[test]
    fn accesses_are_bounded_and_aligned() {
        let page = TestPage::new();
        let m = page.mem(7);
        assert_eq!((m.len(), m.frame()), (4096, 7));
        m.u32_at(4092).store(5, Ordering::SeqCst);
        assert_eq!(page.u32(1023), 5);
        let cb = page.mem(7).sub(4024, 72).unwrap();
        assert_eq!(cb.frame(), 7);
        cb.u32_at(68).store(9, Ordering::SeqCst);
        assert_eq!(page.u32(1023), 9, "a sub-range addresses the same bytes");
        assert!(page.mem(0).sub(4032, 72).is_none(), "crosses the end");
        assert!(page.mem(0).sub(4, 8).is_none(), "misaligned");
        assert!(page.mem(0).sub(usize::MAX, 8).is_none(), "overflow");
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn out_of_bounds_access_panics_instead_of_touching_memory() {
        let page = TestPage::new();
        let cb = page.mem(0).sub(0, 72).unwrap();
        cb.u32_at(72);
    }

    #[test]
    fn unaligned_or_null_base_is_refused() {
        // SAFETY: never dereferenced: both are refused before any access.
        unsafe {
            assert!(GuestMem::from_raw(core::ptr::null_mut(), 8, 0).is_none());
            assert!(GuestMem::from_raw(core::ptr::without_provenance_mut(8), 8, 0).is_some());
            assert!(GuestMem::from_raw(core::ptr::without_provenance_mut(4), 8, 0).is_none());
        }
    }
}
