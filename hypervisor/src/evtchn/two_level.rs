//! The 2-level event-channel ABI (Xen's `xen/common/event_2l.c`): pending and mask bitmaps in
//! `shared_info`, a per-vCPU selector word and upcall flag in `vcpu_info`.
//!
//! The bitmaps live in memory the guest writes concurrently, so every update is an atomic
//! read-modify-write, as Xen's `guest_test_and_set_bit`. The functions take the shared page and
//! the vCPU's `vcpu_info` as raw addresses so host tests can point them at a buffer.

use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// `shared_info.evtchn_pending` offset (x86_64).
pub const EVTCHN_PENDING: usize = 2048;
/// `shared_info.evtchn_mask` offset.
pub const EVTCHN_MASK: usize = 2560;
/// `vcpu_info.evtchn_upcall_pending` offset.
pub const UPCALL_PENDING: usize = 0;
/// `vcpu_info.evtchn_upcall_mask` offset.
pub const UPCALL_MASK: usize = 1;
/// `vcpu_info.evtchn_pending_sel` offset.
pub const PENDING_SEL: usize = 8;

/// A `shared_info` page and one vCPU's `vcpu_info`, by address.
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    /// Address of `shared_info` (4 KiB).
    pub shared_info: usize,
    /// Address of the vCPU's `vcpu_info` (64 bytes).
    pub vcpu_info: usize,
}

fn word(base: usize, off: usize, port: u32) -> &'static AtomicU64 {
    let at = base + off + (port as usize / 64) * 8;
    // SAFETY: callers of the `Shared` methods guarantee the addresses point to a live
    // shared_info page (the 4096-port bitmaps lie within it for ports < 4096) and vcpu_info.
    unsafe { &*(at as *const AtomicU64) }
}

fn test_and_set(w: &AtomicU64, bit: u32) -> bool {
    w.fetch_or(1 << (bit % 64), Ordering::SeqCst) & (1 << (bit % 64)) != 0
}

impl Shared {
    /// Marks `port` pending; returns true if the vCPU must be told (`evtchn_2l_set_pending`
    /// followed by `vcpu_mark_events_pending`).
    ///
    /// # Safety
    /// The addresses must map the domain's `shared_info` and this vCPU's `vcpu_info`, and
    /// `port < 4096`.
    pub unsafe fn set_pending(&self, port: u32) -> bool {
        if test_and_set(word(self.shared_info, EVTCHN_PENDING, port), port) {
            return false;
        }
        let masked = word(self.shared_info, EVTCHN_MASK, port).load(Ordering::SeqCst)
            & (1 << (port % 64))
            != 0;
        // SAFETY: caller contract.
        !masked && unsafe { self.mark_selector(port) }
    }

    /// Sets the selector bit of `port`'s word; if newly set, raises the upcall flag and
    /// returns true.
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    unsafe fn mark_selector(&self, port: u32) -> bool {
        // SAFETY: vcpu_info is live (caller contract); pending_sel is an aligned u64.
        let sel = unsafe { &*((self.vcpu_info + PENDING_SEL) as *const AtomicU64) };
        if test_and_set(sel, port / 64) {
            return false;
        }
        // SAFETY: as above.
        let pending = unsafe { &*((self.vcpu_info + UPCALL_PENDING) as *const AtomicU8) };
        pending.store(1, Ordering::SeqCst);
        true
    }

    /// `EVTCHNOP_unmask` (`evtchn_2l_unmask`): clears the mask and, if the port is pending,
    /// re-raises the upcall. Returns true if the vCPU must be told.
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn unmask(&self, port: u32) -> bool {
        let bit = 1u64 << (port % 64);
        let was_masked =
            word(self.shared_info, EVTCHN_MASK, port).fetch_and(!bit, Ordering::SeqCst) & bit != 0;
        let pending =
            word(self.shared_info, EVTCHN_PENDING, port).load(Ordering::SeqCst) & bit != 0;
        // SAFETY: caller contract.
        was_masked && pending && unsafe { self.mark_selector(port) }
    }

    /// Clears `port`'s pending bit (when a port is closed, as `evtchn_2l_clear_pending`).
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn clear_pending(&self, port: u32) {
        word(self.shared_info, EVTCHN_PENDING, port)
            .fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
    }

    /// Whether `port` is pending.
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn is_pending(&self, port: u32) -> bool {
        word(self.shared_info, EVTCHN_PENDING, port).load(Ordering::SeqCst) & (1 << (port % 64))
            != 0
    }

    /// The upcall flag and mask: `(evtchn_upcall_pending, evtchn_upcall_mask)`.
    ///
    /// # Safety
    /// `vcpu_info` must be live.
    pub unsafe fn upcall_state(&self) -> (u8, u8) {
        // SAFETY: caller contract.
        unsafe {
            (
                (*((self.vcpu_info + UPCALL_PENDING) as *const AtomicU8)).load(Ordering::SeqCst),
                (*((self.vcpu_info + UPCALL_MASK) as *const AtomicU8)).load(Ordering::SeqCst),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    struct Page(alloc::vec::Vec<u64>);

    fn page() -> (Page, Shared) {
        let p = Page(vec![0u64; 512]);
        let base = p.0.as_ptr() as usize;
        (
            p,
            Shared {
                shared_info: base,
                vcpu_info: base,
            },
        )
    }

    fn byte(p: &Page, off: usize) -> u8 {
        (p.0[off / 8] >> ((off % 8) * 8)) as u8
    }

    #[test]
    fn send_sets_pending_selector_and_upcall_once() {
        let (p, s) = page();
        // SAFETY: the buffer stands for both shared_info and vcpu_info (disjoint offsets).
        unsafe {
            assert!(s.set_pending(70));
            assert!(
                !s.set_pending(70),
                "already pending: no second notification"
            );
            assert!(!s.set_pending(71), "same selector word: already signalled");
            assert!(s.is_pending(71));
        }
        assert_eq!(p.0[EVTCHN_PENDING / 8 + 1], (1 << 6) | (1 << 7));
        assert_eq!(p.0[PENDING_SEL / 8], 1 << 1);
        assert_eq!(byte(&p, UPCALL_PENDING), 1);
    }

    #[test]
    fn masked_port_is_held_until_unmasked() {
        let (mut p, s) = page();
        p.0[EVTCHN_MASK / 8] = 1 << 5;
        // SAFETY: as above.
        unsafe {
            assert!(!s.set_pending(5), "masked: no upcall");
            assert_eq!(s.upcall_state().0, 0);
            assert!(s.unmask(5), "unmasking a pending port raises the upcall");
            assert_eq!(s.upcall_state().0, 1);
            assert!(!s.unmask(5), "not masked any more");
            s.clear_pending(5);
            assert!(!s.is_pending(5));
        }
    }
}
