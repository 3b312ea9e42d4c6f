//! Buddy allocator for physical 4 KiB frames.
//!
//! Blocks are `2^order` frames, naturally aligned (a block of order `k` starts at a PFN that is a
//! multiple of `2^k`), from order 0 (4 KiB) to [`MAX_ORDER`] (1 GiB).
//!
//! # Why the metadata lives in `BTreeSet`s
//!
//! The allocator is built before the frames it manages are mapped, so it must never touch them:
//! the classic intrusive free lists (a link stored in each free block) are out. Per-order bitmaps
//! would need one bit per frame of the whole physical address span, which is sparse on real
//! machines (RAM above 4 GiB, holes, hot-plug windows) and would itself need frames before the
//! allocator exists. A `BTreeSet<u64>` of free block PFNs per order costs memory proportional to
//! the number of free *blocks* (a handful per RAM range once coalesced), and gives O(log n)
//! insert, remove and buddy lookup, plus ordered iteration, which makes [`BuddyAllocator::alloc_below`]
//! a look at the first element of each order and lets `free` detect a double free by a range
//! query. Every operation is O(`MAX_ORDER` · log n).
//!
//! # Misuse
//!
//! Freeing a block that is misaligned, of an order above [`MAX_ORDER`], outside every range
//! given to [`BuddyAllocator::add_range`], or overlapping a block that is already free (a double
//! free) is a bug in the caller. It panics in debug builds (`debug_assert!`) so tests catch it;
//! release builds ignore the call, leaving the allocator consistent, because corrupting the free
//! sets would hand the same frame to two owners later, which is far worse than leaking it. The
//! allocator does not track live allocations, so freeing a block that spans two separate live
//! allocations (wrong order) cannot be detected.

use alloc::collections::{BTreeMap, BTreeSet};

/// Largest block order: `2^18` frames of 4 KiB = 1 GiB.
pub const MAX_ORDER: usize = 18;

/// One past the largest PFN a 64-bit physical address can name; ranges are clipped to it so that
/// `pfn + block size` arithmetic can never overflow.
const PFN_LIMIT: u64 = 1 << (64 - 12);

/// Number of frames in a block of `order`.
const fn block_pages(order: usize) -> u64 {
    1 << order
}

/// Physical frame allocator over a set of PFN ranges. See the module documentation.
pub struct BuddyAllocator {
    /// `free[k]` holds the first PFN of every free block of order `k`.
    free: [BTreeSet<u64>; MAX_ORDER + 1],
    /// Managed PFN ranges, `start -> end` (exclusive), adjacent ranges merged, so that a block
    /// coalesced across two `add_range` calls is still recognised as managed when freed.
    ranges: BTreeMap<u64, u64>,
    /// Free frames, kept in step with `free` so that `free_pages` is O(1).
    free_pages: u64,
    /// Frames in all managed ranges.
    total_pages: u64,
}

impl Default for BuddyAllocator {
    fn default() -> Self {
        Self::new()
    }
}

impl BuddyAllocator {
    /// An allocator managing no memory; usable in a `static`.
    pub const fn new() -> Self {
        Self {
            free: [const { BTreeSet::new() }; MAX_ORDER + 1],
            ranges: BTreeMap::new(),
            free_pages: 0,
            total_pages: 0,
        }
    }

    /// Hands the frames `[start_pfn, end_pfn)` to the allocator, as the largest aligned blocks
    /// that tile the range (merging with free neighbours from earlier ranges).
    ///
    /// An empty range is a no-op and PFNs beyond the 64-bit physical address space are clipped.
    /// Overlapping a range already managed is a caller bug: `debug_assert!`, otherwise ignored
    /// (the whole range), since freeing a frame twice would later hand it out twice.
    pub fn add_range(&mut self, start_pfn: u64, end_pfn: u64) {
        let end_pfn = end_pfn.min(PFN_LIMIT);
        if start_pfn >= end_pfn {
            return;
        }
        let overlaps = self.overlaps_managed(start_pfn, end_pfn);
        debug_assert!(
            !overlaps,
            "buddy: add_range({start_pfn:#x}, {end_pfn:#x}) overlaps a managed range"
        );
        if overlaps {
            return;
        }
        self.insert_range(start_pfn, end_pfn);
        self.total_pages += end_pfn - start_pfn;

        let mut pfn = start_pfn;
        while pfn < end_pfn {
            // Largest order allowed both by the alignment of `pfn` and by the frames left.
            let align_order = (pfn.trailing_zeros() as usize).min(MAX_ORDER);
            let fit_order = (63 - (end_pfn - pfn).leading_zeros()) as usize;
            let order = align_order.min(fit_order);
            self.release(pfn, order);
            pfn += block_pages(order);
        }
    }

    /// Allocates a block of `2^order` frames and returns its first PFN, or `None` when no block
    /// that large is free (or `order > MAX_ORDER`). Takes the lowest-addressed block of the
    /// smallest order that fits, which keeps allocations deterministic and large blocks intact.
    pub fn alloc(&mut self, order: usize) -> Option<u64> {
        self.alloc_below(order, u64::MAX)
    }

    /// Like [`alloc`](Self::alloc), but the whole block lies below `limit_pfn`: for memory that
    /// must be reachable with 32-bit addresses (the AP trampoline's page tables) or by DMA.
    pub fn alloc_below(&mut self, order: usize, limit_pfn: u64) -> Option<u64> {
        if order > MAX_ORDER {
            return None;
        }
        // Within an order the first (lowest) block is the only candidate worth checking: if its
        // first `2^order` frames are not below the limit, no later block's are either. The
        // lowest part of a larger block is what splitting keeps, so it may straddle the limit.
        let (found_order, pfn) = (order..=MAX_ORDER).find_map(|k| {
            let &pfn = self.free[k].first()?;
            (pfn + block_pages(order) <= limit_pfn).then_some((k, pfn))
        })?;
        self.free[found_order].remove(&pfn);
        // Split: keep the low half, give back the high half, until the block is `order`.
        for k in (order..found_order).rev() {
            self.free[k].insert(pfn + block_pages(k));
        }
        self.free_pages -= block_pages(order);
        Some(pfn)
    }

    /// Returns a block previously obtained from [`alloc`](Self::alloc) with the same `order`,
    /// merging it with its buddy as far as possible.
    ///
    /// Misuse (see the module documentation) panics in debug builds and is ignored in release.
    pub fn free(&mut self, pfn: u64, order: usize) {
        let valid = order <= MAX_ORDER
            && pfn & (block_pages(order) - 1) == 0
            && pfn < PFN_LIMIT
            && self.is_managed(pfn, pfn + block_pages(order))
            && !self.overlaps_free(pfn, pfn + block_pages(order));
        debug_assert!(valid, "buddy: invalid free of pfn {pfn:#x} order {order}");
        if valid {
            self.release(pfn, order);
        }
    }

    /// Frames currently free.
    pub fn free_pages(&self) -> u64 {
        self.free_pages
    }

    /// Frames managed in total (free or allocated).
    pub fn total_pages(&self) -> u64 {
        self.total_pages
    }

    /// Number of free blocks of each order, index = order: the boot-time heap dump.
    pub fn order_counts(&self) -> [u64; MAX_ORDER + 1] {
        core::array::from_fn(|k| self.free[k].len() as u64)
    }

    /// Inserts a known-valid free block, coalescing with free buddies.
    fn release(&mut self, mut pfn: u64, mut order: usize) {
        self.free_pages += block_pages(order);
        while order < MAX_ORDER {
            let buddy = pfn ^ block_pages(order);
            if !self.free[order].remove(&buddy) {
                break;
            }
            pfn &= !block_pages(order);
            order += 1;
        }
        self.free[order].insert(pfn);
    }

    /// Whether any free block intersects `[start, end)`. Blocks are aligned powers of two, so
    /// per order only the last block starting before `end` can intersect.
    fn overlaps_free(&self, start: u64, end: u64) -> bool {
        self.free.iter().enumerate().any(|(k, set)| {
            set.range(..end)
                .next_back()
                .is_some_and(|&b| b + block_pages(k) > start)
        })
    }

    /// Whether `[start, end)` lies entirely within one managed range.
    fn is_managed(&self, start: u64, end: u64) -> bool {
        self.ranges
            .range(..=start)
            .next_back()
            .is_some_and(|(_, &r_end)| end <= r_end)
    }

    /// Whether `[start, end)` intersects any managed range.
    fn overlaps_managed(&self, start: u64, end: u64) -> bool {
        self.ranges
            .range(..end)
            .next_back()
            .is_some_and(|(_, &r_end)| r_end > start)
    }

    /// Records a new (non-overlapping) managed range, merging with touching neighbours.
    fn insert_range(&mut self, mut start: u64, mut end: u64) {
        if let Some((&p_start, &p_end)) = self.ranges.range(..start).next_back()
            && p_end == start
        {
            self.ranges.remove(&p_start);
            start = p_start;
        }
        if let Some(n_end) = self.ranges.remove(&end) {
            end = n_end;
        }
        self.ranges.insert(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    /// Deterministic xorshift64 PRNG so the randomized test is reproducible.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Counts per order as a sparse list of (order, count), for readable assertions.
    fn counts(b: &BuddyAllocator) -> Vec<(usize, u64)> {
        b.order_counts()
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c != 0)
            .map(|(k, &c)| (k, c))
            .collect()
    }

    #[test]
    fn empty_allocator() {
        let mut b = BuddyAllocator::new();
        assert_eq!(b.free_pages(), 0);
        assert_eq!(b.total_pages(), 0);
        assert_eq!(b.alloc(0), None);
        assert_eq!(b.order_counts(), [0; MAX_ORDER + 1]);
        b.add_range(5, 5);
        b.add_range(7, 3);
        assert_eq!(b.total_pages(), 0);
    }

    #[test]
    fn add_range_uses_maximal_aligned_blocks() {
        let mut b = BuddyAllocator::new();
        // [3, 20): 3 (o0), 4..8 (o2), 8..16 (o3), 16..20 (o2).
        b.add_range(3, 20);
        assert_eq!(b.total_pages(), 17);
        assert_eq!(b.free_pages(), 17);
        assert_eq!(counts(&b), [(0, 1), (2, 2), (3, 1)]);

        // A 2 GiB range starting at 0 is two 1 GiB blocks: orders never exceed MAX_ORDER.
        let mut b = BuddyAllocator::new();
        b.add_range(0, 2 << MAX_ORDER);
        assert_eq!(counts(&b), [(MAX_ORDER, 2)]);
    }

    #[test]
    fn adjacent_ranges_coalesce() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 1);
        b.add_range(1, 2);
        b.add_range(2, 4);
        assert_eq!(counts(&b), [(2, 1)]);
        // The merged block crosses add_range boundaries and must still be freeable.
        assert_eq!(b.alloc(2), Some(0));
        b.free(0, 2);
        assert_eq!(counts(&b), [(2, 1)]);
    }

    #[test]
    fn allocations_are_aligned() {
        let mut b = BuddyAllocator::new();
        b.add_range(1, 1 << 12);
        for order in [0, 3, 1, 5, 2, 7, 0, 4] {
            let pfn = b.alloc(order).unwrap();
            assert_eq!(pfn % (1 << order), 0, "order {order} pfn {pfn:#x}");
            assert!((1..1 << 12).contains(&pfn));
        }
    }

    #[test]
    fn freeing_everything_restores_original_blocks() {
        let mut b = BuddyAllocator::new();
        b.add_range(3, 1000);
        b.add_range(4096, 4096 + 777);
        let before = b.order_counts();
        let total = b.free_pages();

        let mut live = Vec::new();
        while let Some(pfn) = b.alloc(0) {
            live.push(pfn);
        }
        assert_eq!(live.len() as u64, total);
        assert_eq!(b.free_pages(), 0);
        assert_eq!(b.order_counts(), [0; MAX_ORDER + 1]);

        // Free in an interleaved order so coalescing happens out of sequence.
        let (evens, odds): (Vec<_>, Vec<_>) = live.iter().partition(|&&p| p % 2 == 0);
        for &p in odds.iter().rev().chain(evens.iter()) {
            b.free(p, 0);
        }
        assert_eq!(b.order_counts(), before);
        assert_eq!(b.free_pages(), total);
    }

    #[test]
    fn split_and_merge() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 16);
        let a = b.alloc(0).unwrap();
        assert_eq!(a, 0);
        // Splitting 16 leaves one free block each of orders 0..=3.
        assert_eq!(counts(&b), [(0, 1), (1, 1), (2, 1), (3, 1)]);
        let c = b.alloc(2).unwrap();
        assert_eq!(c, 4);
        b.free(a, 0);
        assert_eq!(counts(&b), [(2, 1), (3, 1)]);
        b.free(c, 2);
        assert_eq!(counts(&b), [(4, 1)]);
    }

    #[test]
    fn alloc_below_respects_limit() {
        let mut b = BuddyAllocator::new();
        b.add_range(0x100, 0x200); // one order-8 block
        b.add_range(0x10_0000, 0x20_0000); // high memory, big blocks

        // Everything from the low range fits below 0x180 only if split.
        let p = b.alloc_below(4, 0x180).unwrap();
        assert!(p + 16 <= 0x180);
        assert_eq!(p, 0x100);
        // Block must lie wholly below the limit: order 8 below 0x1ff is impossible.
        assert_eq!(b.alloc_below(8, 0x1ff), None);
        // Nothing at all below the first managed frame.
        assert_eq!(b.alloc_below(0, 0x100), None);
        // A limit exactly at the end of a block admits it.
        assert_eq!(b.alloc_below(7, 0x200), Some(0x180));

        // Drain low memory; then the limit must make allocation fail though high memory is free.
        while b.alloc_below(0, 0x1000).is_some() {}
        assert_eq!(b.alloc_below(0, 0x1000), None);
        assert!(b.alloc(0).unwrap() >= 0x10_0000);
    }

    #[test]
    fn exhaustion_returns_none() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 8);
        assert_eq!(b.alloc(4), None);
        assert_eq!(b.alloc(MAX_ORDER + 1), None);
        assert_eq!(b.alloc(3), Some(0));
        assert_eq!(b.alloc(0), None);
        b.free(0, 3);
        assert_eq!(b.free_pages(), 8);
    }

    #[test]
    fn order_counts_match_free_pages() {
        let mut b = BuddyAllocator::new();
        b.add_range(0x12, 0x5_4321);
        let _ = b.alloc(3);
        let _ = b.alloc(9);
        let _ = b.alloc(0);
        let sum: u64 = b
            .order_counts()
            .iter()
            .enumerate()
            .map(|(k, &c)| c << k)
            .sum();
        assert_eq!(sum, b.free_pages());
        assert_eq!(b.free_pages(), b.total_pages() - 8 - 512 - 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid free")]
    fn double_free_panics_in_debug() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 64);
        let p = b.alloc(1).unwrap();
        b.free(p, 1);
        b.free(p, 1);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid free")]
    fn free_inside_free_block_panics_in_debug() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 64);
        b.free(8, 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid free")]
    fn misaligned_free_panics_in_debug() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 64);
        let _ = b.alloc(6);
        b.free(2, 2);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "invalid free")]
    fn unmanaged_free_panics_in_debug() {
        let mut b = BuddyAllocator::new();
        b.add_range(0, 64);
        b.free(128, 0);
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "overlaps a managed range")]
    fn overlapping_add_range_panics_in_debug() {
        let mut b = BuddyAllocator::new();
        b.add_range(10, 20);
        b.add_range(19, 30);
    }

    #[test]
    fn randomized_alloc_free() {
        const RANGES: [(u64, u64); 3] = [
            (0x9f, 0x1_0000),
            (0x1_0100, 0x4_8000),
            (0x10_0003, 0x10_2000),
        ];
        let mut b = BuddyAllocator::new();
        for (s, e) in RANGES {
            b.add_range(s, e);
        }
        let total: u64 = RANGES.iter().map(|(s, e)| e - s).sum();
        assert_eq!(b.total_pages(), total);
        let initial = b.order_counts();

        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        // Live allocations by first PFN -> (end PFN, order): lets each new block be checked
        // against its neighbours for overlap in O(log n).
        let mut live: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
        let mut live_pages = 0u64;
        let mut keys: Vec<u64> = Vec::new();

        for _ in 0..100_000 {
            let r = rng.below(100);
            if r < 55 || live.is_empty() {
                // Small orders dominate, as with guest memory; occasionally a big one.
                let order = match rng.below(16) {
                    0..=7 => 0,
                    8..=11 => rng.below(4) as usize,
                    12..=14 => rng.below(10) as usize,
                    _ => rng.below(MAX_ORDER as u64 + 1) as usize,
                };
                let limit = if rng.below(8) == 0 {
                    Some(rng.below(0x5_0000))
                } else {
                    None
                };
                let got = match limit {
                    Some(l) => b.alloc_below(order, l),
                    None => b.alloc(order),
                };
                let Some(pfn) = got else { continue };
                let end = pfn + (1 << order);
                assert_eq!(pfn % (1 << order), 0);
                if let Some(l) = limit {
                    assert!(end <= l);
                }
                assert!(
                    RANGES.iter().any(|&(s, e)| s <= pfn && end <= e),
                    "block {pfn:#x}+{order} outside managed memory"
                );
                if let Some((_, &(prev_end, _))) = live.range(..pfn).next_back() {
                    assert!(prev_end <= pfn, "overlap with previous block");
                }
                if let Some((&next, _)) = live.range(pfn..).next() {
                    assert!(end <= next, "overlap with next block");
                }
                live.insert(pfn, (end, order));
                keys.push(pfn);
                live_pages += 1 << order;
            } else {
                let i = rng.below(keys.len() as u64) as usize;
                let pfn = keys.swap_remove(i);
                let (_, order) = live.remove(&pfn).unwrap();
                b.free(pfn, order);
                live_pages -= 1 << order;
            }
            assert_eq!(b.free_pages() + live_pages, total);
        }

        for (pfn, (_, order)) in core::mem::take(&mut live) {
            b.free(pfn, order);
        }
        assert_eq!(b.free_pages(), total);
        assert_eq!(b.order_counts(), initial);
    }
}
