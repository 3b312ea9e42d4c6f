//! The 2-level event-channel ABI (Xen's `xen/common/event_2l.c`): pending and mask bitmaps in
//! `shared_info`, a per-vCPU selector word and upcall flag in `vcpu_info`.
//!
//! The bitmaps live in memory the guest writes concurrently, so every update is an atomic
//! read-modify-write, in Xen's order (pending, then mask, then selector, then upcall flag), which
//! the guest's scan relies on.
//!
//! [`TwoLevel`] is the ABI behind [`EventAbi`]. [`Shared`] is the older raw-address entry point
//! kept for callers that have not moved to the port table's ABI-aware functions; it runs the
//! same code.

use super::abi::{EventAbi, FifoPortState, Notify};
use super::guest::{EventMemory, GuestMem, SharedInfo, VcpuInfo, test_and_set_u64};
use core::sync::atomic::Ordering;
use xen_abi::errno::Errno;
use xen_abi::event_channel::EVTCHN_2L_NR_CHANNELS;

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

/// Bits per selector/bitmap word (`BITS_PER_EVTCHN_WORD` for a 64-bit guest).
const BITS_PER_WORD: u32 = 64;

fn bit(port: u32) -> u64 {
    1 << (port % BITS_PER_WORD)
}

/// Marks `port` pending; returns `(kick, newly_pending)` (`evtchn_2l_set_pending`). Without a
/// `vcpu_info` the bit is still set but nobody can be signalled.
fn set_pending(si: &SharedInfo, vi: Option<&VcpuInfo>, port: u32) -> (bool, bool) {
    if port >= EVTCHN_2L_NR_CHANNELS || test_and_set_u64(si.pending_word(port), port) {
        return (false, false);
    }
    let masked = si.mask_word(port).load(Ordering::SeqCst) & bit(port) != 0;
    let kick = !masked
        && vi.is_some_and(|vi| {
            !vi.test_and_set_selector(port / BITS_PER_WORD) && vi.mark_events_pending()
        });
    (kick, true)
}

/// Clears the mask; if the port is pending, signals it (`evtchn_2l_unmask`). Returns whether
/// the vCPU must be kicked.
fn unmask(si: &SharedInfo, vi: Option<&VcpuInfo>, port: u32) -> bool {
    if port >= EVTCHN_2L_NR_CHANNELS {
        return false;
    }
    let was_masked = si.mask_word(port).fetch_and(!bit(port), Ordering::SeqCst) & bit(port) != 0;
    was_masked
        && si.pending_word(port).load(Ordering::SeqCst) & bit(port) != 0
        && vi.is_some_and(|vi| {
            !vi.test_and_set_selector(port / BITS_PER_WORD) && vi.mark_events_pending()
        })
}

fn clear_pending(si: &SharedInfo, port: u32) {
    if port < EVTCHN_2L_NR_CHANNELS {
        si.pending_word(port)
            .fetch_and(!bit(port), Ordering::SeqCst);
    }
}

fn test_pending(si: &SharedInfo, port: u32) -> bool {
    port < EVTCHN_2L_NR_CHANNELS && si.pending_word(port).load(Ordering::SeqCst) & bit(port) != 0
}

/// Whether `port`'s 2-level pending bit is set (read when a domain switches to FIFO, which
/// carries pending events over).
pub(crate) fn pending_in_shared_info(mem: &dyn EventMemory, port: u32) -> bool {
    mem.shared_info()
        .and_then(SharedInfo::new)
        .is_some_and(|si| test_pending(&si, port))
}

/// The 2-level ABI: all its state is in guest memory.
#[derive(Clone, Copy, Debug, Default)]
pub struct TwoLevel;

impl EventAbi for TwoLevel {
    fn max_ports(&self) -> u32 {
        EVTCHN_2L_NR_CHANNELS
    }

    fn init_port(&mut self, _port: u32, _st: &mut FifoPortState) {}

    fn set_pending(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        _st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        let Some(si) = mem.shared_info().and_then(SharedInfo::new) else {
            return Notify::NONE;
        };
        let vi = mem.vcpu_info(vcpu).and_then(VcpuInfo::new);
        let (kick, newly) = set_pending(&si, vi.as_ref(), port);
        Notify {
            kick: kick.then_some(vcpu),
            poll: newly.then_some(port),
        }
    }

    fn clear_pending(&mut self, mem: &dyn EventMemory, port: u32) {
        if let Some(si) = mem.shared_info().and_then(SharedInfo::new) {
            clear_pending(&si, port);
        }
    }

    fn unmask(
        &mut self,
        mem: &dyn EventMemory,
        port: u32,
        _st: &mut FifoPortState,
        vcpu: u32,
    ) -> Notify {
        let Some(si) = mem.shared_info().and_then(SharedInfo::new) else {
            return Notify::NONE;
        };
        let vi = mem.vcpu_info(vcpu).and_then(VcpuInfo::new);
        Notify {
            kick: unmask(&si, vi.as_ref(), port).then_some(vcpu),
            poll: None,
        }
    }

    fn is_pending(&self, mem: &dyn EventMemory, port: u32) -> bool {
        pending_in_shared_info(mem, port)
    }

    fn is_masked(&self, mem: &dyn EventMemory, port: u32) -> bool {
        // Ports beyond the bitmaps count as masked, as in `evtchn_2l_is_masked`.
        mem.shared_info()
            .and_then(SharedInfo::new)
            .is_none_or(|si| {
                port >= EVTCHN_2L_NR_CHANNELS
                    || si.mask_word(port).load(Ordering::SeqCst) & bit(port) != 0
            })
    }

    fn is_busy(&self, _port: u32) -> bool {
        false
    }

    fn set_priority(&mut self, _st: &mut FifoPortState, _priority: u32) -> Result<(), Errno> {
        // The 2-level ABI has no `set_priority` op: `evtchn_port_set_priority` says -ENOSYS.
        Err(Errno::ENOSYS)
    }
}

/// A `shared_info` page and one vCPU's `vcpu_info`, by address (the raw-address entry point).
#[derive(Clone, Copy, Debug)]
pub struct Shared {
    /// Address of `shared_info` (4 KiB).
    pub shared_info: usize,
    /// Address of the vCPU's `vcpu_info` (64 bytes).
    pub vcpu_info: usize,
}

impl Shared {
    /// # Safety
    /// See [`Shared::set_pending`].
    unsafe fn views(&self) -> Option<(SharedInfo, Option<VcpuInfo>)> {
        // SAFETY: the caller guarantees both addresses map live pages for this call.
        let si = unsafe { GuestMem::from_raw(self.shared_info as *mut u8, 4096, 0) }
            .and_then(SharedInfo::new)?;
        // SAFETY: as above.
        let vi =
            unsafe { GuestMem::from_raw(self.vcpu_info as *mut u8, 64, 0) }.and_then(VcpuInfo::new);
        Some((si, vi))
    }

    /// Marks `port` pending; returns true if the vCPU must be told (`evtchn_2l_set_pending`
    /// followed by `vcpu_mark_events_pending`).
    ///
    /// # Safety
    /// The addresses must map the domain's `shared_info` and this vCPU's `vcpu_info`, and
    /// `port < 4096`.
    pub unsafe fn set_pending(&self, port: u32) -> bool {
        // SAFETY: caller contract.
        unsafe { self.views() }.is_some_and(|(si, vi)| set_pending(&si, vi.as_ref(), port).0)
    }

    /// `EVTCHNOP_unmask` (`evtchn_2l_unmask`): clears the mask and, if the port is pending,
    /// re-raises the upcall. Returns true if the vCPU must be told.
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn unmask(&self, port: u32) -> bool {
        // SAFETY: caller contract.
        unsafe { self.views() }.is_some_and(|(si, vi)| unmask(&si, vi.as_ref(), port))
    }

    /// Clears `port`'s pending bit (when a port is closed, as `evtchn_2l_clear_pending`).
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn clear_pending(&self, port: u32) {
        // SAFETY: caller contract.
        if let Some((si, _)) = unsafe { self.views() } {
            clear_pending(&si, port);
        }
    }

    /// Whether `port` is pending.
    ///
    /// # Safety
    /// As for [`Shared::set_pending`].
    pub unsafe fn is_pending(&self, port: u32) -> bool {
        // SAFETY: caller contract.
        unsafe { self.views() }.is_some_and(|(si, _)| test_pending(&si, port))
    }

    /// The upcall flag and mask: `(evtchn_upcall_pending, evtchn_upcall_mask)`.
    ///
    /// # Safety
    /// `vcpu_info` must be live.
    pub unsafe fn upcall_state(&self) -> (u8, u8) {
        // SAFETY: caller contract.
        let vi =
            unsafe { GuestMem::from_raw(self.vcpu_info as *mut u8, 64, 0) }.and_then(VcpuInfo::new);
        vi.map_or((0, 0), |vi| vi.upcall_state())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evtchn::testutil::TestDomain;
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

    #[test]
    fn abi_reports_kick_and_pollers_as_xen() {
        let d = TestDomain::new(2);
        let mut abi = TwoLevel;
        let mut st = FifoPortState::default();
        let n = abi.set_pending(&d, 130, &mut st, 1);
        assert_eq!(
            n,
            Notify {
                kick: Some(1),
                poll: Some(130)
            }
        );
        assert_eq!(d.selector(1), 1 << 2);
        assert_eq!(
            abi.set_pending(&d, 131, &mut st, 1),
            Notify {
                kick: None,
                poll: Some(131)
            },
            "selector already set: pollers only"
        );
        assert_eq!(abi.set_pending(&d, 131, &mut st, 1), Notify::NONE);
        d.clear_upcall(0);
        assert_eq!(
            abi.set_pending(&d, 3, &mut st, 0),
            Notify {
                kick: Some(0),
                poll: Some(3)
            }
        );
        assert!(abi.is_pending(&d, 3) && !abi.is_masked(&d, 3));
        abi.clear_pending(&d, 3);
        assert!(!abi.is_pending(&d, 3));
        assert!(abi.is_masked(&d, 4096) && !abi.is_pending(&d, 4096));
        assert_eq!(abi.set_pending(&d, 4096, &mut st, 0), Notify::NONE);
        assert_eq!(abi.set_priority(&mut st, 3), Err(Errno::ENOSYS));
    }

    #[test]
    fn abi_unmask_signals_only_a_pending_masked_port() {
        let d = TestDomain::new(1);
        let mut abi = TwoLevel;
        let mut st = FifoPortState::default();
        d.mask_2l(9);
        assert_eq!(
            abi.set_pending(&d, 9, &mut st, 0),
            Notify {
                kick: None,
                poll: Some(9)
            },
            "masked: pending (pollers see it) but no upcall"
        );
        assert_eq!(d.upcall(0), 0);
        assert_eq!(
            abi.unmask(&d, 9, &mut st, 0),
            Notify {
                kick: Some(0),
                poll: None
            }
        );
        assert_eq!(abi.unmask(&d, 9, &mut st, 0), Notify::NONE);
    }
}
