//! The maptrack table: a domain's record of the foreign grants it has mapped, indexed by the
//! handle `GNTTABOP_map_grant_ref` returns (Xen's `struct grant_mapping` array with its
//! per-vCPU free lists).
//!
//! Handles are guest-visible, so they are allocated exactly as Xen does: each vCPU has a free
//! list that always keeps one entry (its tail) so freed handles can be appended without
//! touching the head; a vCPU whose list runs dry adds a fresh maptrack frame of 256 handles
//! (the first one it returns directly, the rest go to its list); when the domain has
//! `max_maptrack_frames` frames, handles are stolen from other vCPUs' lists. Xen picks the
//! first victim at random; here it is the next vCPU, so runs are reproducible.

use super::layout::MAPTRACK_PER_FRAME;
use alloc::vec::Vec;
use xen_abi::DomId;
use xen_abi::grant_table::{GNTMAP_device_map, GNTMAP_host_map, GrantHandle, GrantRef};

/// End of a free list (`MAPTRACK_TAIL`).
const TAIL: u32 = u32::MAX;

/// One slot: a free-list link while free, a mapping while `flags` has
/// `GNTMAP_host_map`/`GNTMAP_device_map`.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// Free: the next free handle. In use: the grant reference.
    link_or_ref: u32,
    /// `GNTMAP_*` of the mapping (the low 16 bits, as Xen stores them); 0 while free or
    /// reserved.
    flags: u16,
    /// The granting domain.
    domid: DomId,
    /// The vCPU whose free list the slot returns to.
    vcpu: u32,
}

/// A mapping recorded under a handle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// The granting domain.
    pub domid: DomId,
    /// The grant reference in its table.
    pub gref: GrantRef,
    /// `GNTMAP_*` still in effect (host and/or device parts not yet unmapped).
    pub flags: u16,
}

/// A domain's maptrack table.
#[derive(Debug)]
pub struct Maptrack {
    slots: Vec<Slot>,
    max_frames: u32,
    heads: Vec<u32>,
    tails: Vec<u32>,
}

impl Maptrack {
    /// An empty table for a domain with `nr_vcpus` vCPUs that may grow to `max_frames`
    /// maptrack frames (`max_maptrack_frames`; 0 forbids mapping foreign grants at all).
    pub fn new(nr_vcpus: u32, max_frames: u32) -> Self {
        let n = nr_vcpus.max(1) as usize;
        Self {
            slots: Vec::new(),
            max_frames,
            heads: alloc::vec![TAIL; n],
            tails: alloc::vec![TAIL; n],
        }
    }

    /// Handles below this exist (`maptrack_limit`); anything at or above it is a bad handle.
    pub fn limit(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Maptrack frames in use.
    pub fn nr_frames(&self) -> u32 {
        self.limit() / MAPTRACK_PER_FRAME
    }

    /// The configured maximum.
    pub fn max_frames(&self) -> u32 {
        self.max_frames
    }

    fn vcpu_index(&self, vcpu: u32) -> usize {
        debug_assert!(
            (vcpu as usize) < self.heads.len(),
            "vcpu {vcpu} out of range"
        );
        (vcpu as usize).min(self.heads.len() - 1)
    }

    /// `_get_maptrack_handle`: pops `vcpu`'s head unless it is the last entry.
    fn pop(&mut self, vcpu: usize) -> Option<u32> {
        let head = self.heads[vcpu];
        if head == TAIL {
            return None;
        }
        let next = self.slots[head as usize].link_or_ref;
        if next == TAIL {
            // The last entry stays so that frees can always append behind it.
            return None;
        }
        self.heads[vcpu] = next;
        Some(head)
    }

    /// `steal_maptrack_handle`: a free handle from any vCPU's list, re-homed to `thief`.
    fn steal(&mut self, thief: usize) -> Option<u32> {
        let n = self.heads.len();
        let first = (thief + 1) % n;
        let mut victim = first;
        loop {
            if let Some(h) = self.pop(victim) {
                self.slots[h as usize].vcpu = thief as u32;
                return Some(h);
            }
            victim = (victim + 1) % n;
            if victim == first {
                return None;
            }
        }
    }

    /// `get_maptrack_handle`: reserves a handle for a mapping `vcpu` is about to make. Its
    /// slot stays empty (a bad handle for unmap) until the map completes. `None` when the
    /// table is full (`GNTST_no_space`).
    pub fn get_handle(&mut self, vcpu: u32) -> Option<GrantHandle> {
        let v = self.vcpu_index(vcpu);
        if let Some(h) = self.pop(v) {
            return Some(h);
        }
        if self.nr_frames() >= self.max_frames {
            if self.tails[v] == TAIL {
                // This vCPU never had a list: steal one entry to be its tail sentinel first.
                let sentinel = self.steal(v)?;
                self.slots[sentinel as usize].link_or_ref = TAIL;
                self.tails[v] = sentinel;
                if self.heads[v] == TAIL {
                    self.heads[v] = sentinel;
                }
            }
            return self.steal(v);
        }

        // A new frame: its first handle is returned, the others go on the head of the list.
        let first = self.limit();
        self.slots.extend((0..MAPTRACK_PER_FRAME).map(|i| Slot {
            link_or_ref: first + i + 1,
            flags: 0,
            domid: 0,
            vcpu: v as u32,
        }));
        let last = first + MAPTRACK_PER_FRAME - 1;
        if self.tails[v] == TAIL {
            self.tails[v] = last;
        }
        self.slots[last as usize].link_or_ref = self.heads[v];
        self.heads[v] = first + 1;
        Some(first)
    }

    /// `put_maptrack_handle`: returns `handle` to the tail of the list of the vCPU it belongs
    /// to. Its slot must be empty.
    pub fn put_handle(&mut self, handle: GrantHandle) {
        let slot = &mut self.slots[handle as usize];
        debug_assert_eq!(slot.flags, 0, "freeing live maptrack handle {handle}");
        slot.flags = 0;
        slot.link_or_ref = TAIL;
        let v = slot.vcpu as usize;
        let old_tail = self.tails[v];
        self.tails[v] = handle;
        if old_tail == TAIL {
            self.heads[v] = handle;
        } else {
            self.slots[old_tail as usize].link_or_ref = handle;
        }
    }

    /// Records the mapping behind a reserved handle (the last step of a successful map).
    pub(crate) fn record(&mut self, handle: GrantHandle, domid: DomId, gref: GrantRef, flags: u32) {
        let slot = &mut self.slots[handle as usize];
        slot.domid = domid;
        slot.link_or_ref = gref;
        // As in Xen the mapping keeps the low 16 bits; the guest-available PTE bits above are
        // only needed when the host mapping is created.
        slot.flags = flags as u16;
    }

    /// The mapping behind `handle`, if it is one (below the limit, non-zero flags).
    pub fn mapping(&self, handle: GrantHandle) -> Option<Mapping> {
        let slot = self.slots.get(handle as usize)?;
        (slot.flags != 0).then_some(Mapping {
            domid: slot.domid,
            gref: slot.link_or_ref,
            flags: slot.flags,
        })
    }

    /// Clears `bits` of a mapping's flags (one half of it was unmapped). When neither host nor
    /// device part is left the slot is emptied and `true` returned: the caller puts the handle.
    pub(crate) fn clear(&mut self, handle: GrantHandle, bits: u16) -> bool {
        let slot = &mut self.slots[handle as usize];
        slot.flags &= !bits;
        if slot.flags & (GNTMAP_host_map | GNTMAP_device_map) as u16 == 0 {
            slot.flags = 0;
            return true;
        }
        false
    }

    /// Forgets a mapping without returning its handle (domain teardown).
    pub(crate) fn forget(&mut self, handle: GrantHandle) {
        self.slots[handle as usize].flags = 0;
    }

    /// Live mappings, highest handle first (the order Xen releases them in).
    pub fn mappings(&self) -> impl Iterator<Item = (GrantHandle, Mapping)> + '_ {
        (0..self.limit())
            .rev()
            .filter_map(|h| Some((h, self.mapping(h)?)))
            .filter(|(_, m)| m.flags & (GNTMAP_host_map | GNTMAP_device_map) as u16 != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_frame_hands_out_255_handles_on_one_vcpu() {
        let mut mt = Maptrack::new(1, 1);
        let handles: Vec<_> = core::iter::from_fn(|| mt.get_handle(0)).collect();
        // Xen's list keeps its last entry as the tail sentinel.
        assert_eq!(handles.len(), 255);
        assert_eq!(handles[..3], [0, 1, 2]);
        assert_eq!(*handles.last().unwrap(), 254);
        assert_eq!(mt.limit(), 256);
    }

    #[test]
    fn second_frame_chains_to_the_old_list() {
        let mut mt = Maptrack::new(1, 2);
        let handles: Vec<_> = core::iter::from_fn(|| mt.get_handle(0)).collect();
        // 255 from the first frame, then 256..=511 (the new frame's last entry links back to
        // 255, which becomes the sentinel).
        assert_eq!(handles.len(), 2 * 256 - 1);
        assert_eq!(handles[255], 256);
        assert_eq!(*handles.last().unwrap(), 511);
    }

    #[test]
    fn freed_handles_are_reused_after_the_remaining_free_ones() {
        let mut mt = Maptrack::new(1, 1);
        let a = mt.get_handle(0).unwrap();
        let b = mt.get_handle(0).unwrap();
        assert_eq!((a, b), (0, 1));
        mt.put_handle(a);
        // FIFO: 2 comes next, 0 goes behind the sentinel (255).
        assert_eq!(mt.get_handle(0), Some(2));
        let rest: Vec<_> = core::iter::from_fn(|| mt.get_handle(0)).collect();
        assert_eq!(rest.last(), Some(&255));
        assert!(!rest.contains(&0));
        // After 255 is handed out, 0 is the new sentinel.
        assert_eq!(mt.get_handle(0), None);
    }

    #[test]
    fn no_frames_means_no_handles() {
        let mut mt = Maptrack::new(2, 0);
        assert_eq!(mt.get_handle(0), None);
        assert_eq!(mt.get_handle(1), None);
    }

    #[test]
    fn full_table_steals_from_other_vcpus() {
        let mut mt = Maptrack::new(2, 1);
        // vCPU 0 creates the only frame; vCPU 1 must steal a sentinel, then a handle.
        assert_eq!(mt.get_handle(0), Some(0));
        let h = mt.get_handle(1).unwrap();
        assert_eq!(h, 2, "1 became vCPU 1's sentinel, 2 is its first handle");
        mt.record(h, 7, 3, GNTMAP_host_map);
        assert_eq!(
            mt.mapping(h),
            Some(Mapping {
                domid: 7,
                gref: 3,
                flags: GNTMAP_host_map as u16
            })
        );
        assert!(mt.clear(h, GNTMAP_host_map as u16));
        mt.put_handle(h);
        // Returned to vCPU 1's list, behind its sentinel.
        assert_eq!(mt.get_handle(1), Some(1));
    }
}
