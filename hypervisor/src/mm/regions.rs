//! Turning the firmware memory map into the frame ranges the allocator may own.
//!
//! The boot loader reports usable RAM (possibly unsorted, overlapping or unaligned, depending on
//! firmware quality); the hypervisor knows which parts of it are already taken (its own image,
//! boot modules, boot information, the low 1 MiB). Only what is left, rounded inward to whole
//! pages, may be given to the buddy allocator.

use alloc::vec::Vec;

/// Size of a physical frame in bytes.
const PAGE_SIZE: u64 = 4096;

/// Returns usable RAM minus reserved ranges, as sorted, merged, non-overlapping byte ranges
/// `[start, end)` whose bounds are 4 KiB aligned; empty results are dropped.
///
/// Both inputs are byte ranges `[start, end)` in any order, possibly overlapping; empty or
/// inverted ranges are ignored. Usable ranges are merged *before* rounding so that RAM reported
/// in touching, unaligned pieces is not lost at the seams; the result is rounded inward *after*
/// subtraction, so a page partly reserved is never handed out.
pub fn free_ranges(usable: &[(u64, u64)], reserved: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let usable = normalize(usable);
    let reserved = normalize(reserved);

    let mut out = Vec::new();
    // Both lists are sorted and disjoint, so one forward sweep over `reserved` suffices.
    let mut r = 0;
    for (start, end) in usable {
        let mut cur = start;
        // Skip reserved ranges wholly before this usable range.
        while r < reserved.len() && reserved[r].1 <= cur {
            r += 1;
        }
        let mut i = r;
        while cur < end && i < reserved.len() && reserved[i].0 < end {
            let (rs, re) = reserved[i];
            if rs > cur {
                push_aligned(&mut out, cur, rs);
            }
            cur = cur.max(re);
            i += 1;
        }
        if cur < end {
            push_aligned(&mut out, cur, end);
        }
    }
    out
}

/// Sorts ranges and merges overlapping or touching ones, dropping empty/inverted ones.
fn normalize(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = ranges.iter().copied().filter(|&(s, e)| s < e).collect();
    v.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(v.len());
    for (s, e) in v {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// Pushes `[start, end)` shrunk inward to page boundaries, if anything is left.
fn push_aligned(out: &mut Vec<(u64, u64)>, start: u64, end: u64) {
    // A start in the last partial page of the address space has no aligned page after it.
    let Some(start) = start.checked_next_multiple_of(PAGE_SIZE) else {
        return;
    };
    let end = end & !(PAGE_SIZE - 1);
    if start < end {
        out.push((start, end));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn nothing_reserved() {
        assert_eq!(free_ranges(&[(0x1000, 0x9f000)], &[]), [(0x1000, 0x9f000)]);
        assert_eq!(free_ranges(&[], &[(0, 100)]), []);
    }

    #[test]
    fn typical_pc_map() {
        let usable = [
            (0, 0x9fc00),
            (MIB, 0x7fee_0000),
            (0x1_0000_0000, 0x2_8000_0000),
        ];
        let reserved = [
            (0, MIB),                   // low memory: trampoline, BIOS data
            (2 * MIB, 6 * MIB + 123),   // hypervisor image, unaligned end
            (0x1000_0000, 0x1040_0000), // dom0 kernel module
        ];
        assert_eq!(
            free_ranges(&usable, &reserved),
            [
                (MIB, 2 * MIB),
                (6 * MIB + 0x1000, 0x1000_0000),
                (0x1040_0000, 0x7fee_0000),
                (0x1_0000_0000, 0x2_8000_0000),
            ]
        );
    }

    #[test]
    fn unsorted_overlapping_and_touching_usable_merge() {
        let usable = [
            (0x5000, 0x8000),
            (0x1000, 0x3000),
            (0x2000, 0x4800),
            (0x4800, 0x5000),
        ];
        assert_eq!(free_ranges(&usable, &[]), [(0x1000, 0x8000)]);
        // Touching unaligned pieces merge before rounding, so the seam page survives.
        assert_eq!(
            free_ranges(&[(0x1000, 0x2800), (0x2800, 0x4000)], &[]),
            [(0x1000, 0x4000)]
        );
    }

    #[test]
    fn unaligned_ranges_shrink_inward() {
        assert_eq!(free_ranges(&[(0x1001, 0x5fff)], &[]), [(0x2000, 0x5000)]);
        // Less than a page after rounding: dropped.
        assert_eq!(free_ranges(&[(0x1001, 0x2fff)], &[]), []);
        assert_eq!(free_ranges(&[(0x1800, 0x2800)], &[]), []);
        // Unaligned reserved ranges take the whole pages they touch.
        assert_eq!(
            free_ranges(&[(0, 0x10000)], &[(0x3010, 0x4010)]),
            [(0, 0x3000), (0x5000, 0x10000)]
        );
    }

    #[test]
    fn reserved_touching_edges() {
        // Reserved exactly at the start and end of the usable range.
        assert_eq!(
            free_ranges(&[(0x1000, 0x9000)], &[(0x1000, 0x2000), (0x8000, 0x9000)]),
            [(0x2000, 0x8000)]
        );
        // Reserved touching from outside removes nothing.
        assert_eq!(
            free_ranges(&[(0x1000, 0x9000)], &[(0, 0x1000), (0x9000, 0xa000)]),
            [(0x1000, 0x9000)]
        );
    }

    #[test]
    fn nested_and_overlapping_reserved() {
        let reserved = [
            (0x4000, 0x6000),
            (0x3000, 0x8000),
            (0x7000, 0x9000),
            (0xc000, 0xd000),
        ];
        assert_eq!(
            free_ranges(&[(0, 0x10000)], &reserved),
            [(0, 0x3000), (0x9000, 0xc000), (0xd000, 0x10000)]
        );
    }

    #[test]
    fn reserved_spanning_several_usable_ranges() {
        let usable = [(0x1000, 0x3000), (0x5000, 0x7000), (0x9000, 0xb000)];
        assert_eq!(
            free_ranges(&usable, &[(0x2000, 0xa000)]),
            [(0x1000, 0x2000), (0xa000, 0xb000)]
        );
    }

    #[test]
    fn reserved_covering_everything() {
        let usable = [(0x1000, 0x3000), (MIB, 4 * MIB)];
        assert_eq!(free_ranges(&usable, &[(0, u64::MAX)]), []);
        assert_eq!(free_ranges(&usable, &[(0, 0x3000), (0x3000, 4 * MIB)]), []);
    }

    #[test]
    fn empty_and_inverted_inputs_ignored() {
        assert_eq!(
            free_ranges(
                &[(0x5000, 0x1000), (0x2000, 0x2000), (0x1000, 0x2000)],
                &[(0x9000, 0)]
            ),
            [(0x1000, 0x2000)]
        );
    }

    #[test]
    fn top_of_address_space() {
        assert_eq!(
            free_ranges(&[(u64::MAX - 0x2fff, u64::MAX)], &[]),
            [(u64::MAX - 0x2fff, u64::MAX - 0xfff)]
        );
        assert_eq!(free_ranges(&[(u64::MAX - 10, u64::MAX)], &[]), []);
    }

    #[test]
    fn output_is_sorted_disjoint_and_aligned() {
        // Small xorshift fuzz against a page-granular reference model.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..500 {
            let mut gen_ranges = |n: u64| -> Vec<(u64, u64)> {
                (0..next() % n)
                    .map(|_| {
                        let s = next() % 0x40_000;
                        (s, s + next() % 0x8000)
                    })
                    .collect()
            };
            let usable = gen_ranges(6);
            let reserved = gen_ranges(6);
            let got = free_ranges(&usable, &reserved);
            let union = normalize(&usable);
            for w in got.windows(2) {
                assert!(w[0].1 < w[1].0, "not sorted/disjoint/merged: {got:?}");
            }
            // Reference model: a page is free iff it lies wholly inside the union of usable
            // ranges and shares no byte with any reserved range.
            for page in 0..(0x48_000u64 / PAGE_SIZE) {
                let (ps, pe) = (page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
                let covered = union.iter().any(|&(s, e)| s <= ps && pe <= e);
                let hit = reserved.iter().any(|&(s, e)| s < e && s < pe && ps < e);
                let expect = covered && !hit;
                let is = got.iter().any(|&(s, e)| s <= ps && pe <= e);
                assert_eq!(
                    is, expect,
                    "page {ps:#x}: usable {usable:?} reserved {reserved:?}"
                );
            }
        }
    }
}
