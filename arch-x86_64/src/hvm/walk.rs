//! Guest page-table walks: guest-linear to guest-physical addresses for every paging mode an
//! HVM guest can be in (paging off, 32-bit 2-level, PAE, 4- and 5-level long mode), and
//! guest-linear copies through the nested page tables on top.
//!
//! The walk only follows present bits: no accessed/dirty updates and no permission checks
//! (the hypervisor copies on the guest's behalf, as Xen's `hvm_copy_*_guest_linear` for a
//! kernel access). The core ([`translate`], [`for_each_linear_page`]) is generic over a
//! guest-physical reader so it is tested on the host.

use super::ControlState;
use super::nested::NestedTables;

const PAGE_SIZE: u64 = 4096;
/// Present bit of every paging-structure entry.
const PRESENT: u64 = 1 << 0;
/// Page-size bit of a PDE/PDPTE (a large page instead of a next-level table).
const PS: u64 = 1 << 7;
/// CR4.PSE (4 MiB pages in 32-bit paging) and CR4.PAE, CR4.LA57.
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
/// Physical-address bits of a PAE/long-mode entry (bits 51:12).
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Translates guest-linear `la` to a guest-physical address under the guest's paging mode
/// `ctl`, reading paging-structure entries with `read_u64` (8 aligned guest-physical bytes,
/// `None` if unreadable). `None` if a level is not present, unreadable, or `la` is not
/// canonical in long mode. Outside long mode `la` is truncated to 32 bits first.
pub fn translate(
    read_u64: impl Fn(u64) -> Option<u64>,
    ctl: &ControlState,
    la: u64,
) -> Option<u64> {
    if !ctl.paging() {
        return Some(la & 0xffff_ffff);
    }
    if ctl.long_mode() {
        return walk_long(&read_u64, ctl, la);
    }
    let la = la & 0xffff_ffff;
    if ctl.cr4 & CR4_PAE != 0 {
        walk_pae(&read_u64, ctl.cr3, la)
    } else {
        walk_32(&read_u64, ctl, la)
    }
}

/// A present entry of the table at `table` (page-aligned) indexed by `index`, 8-byte entries.
fn entry64(read_u64: &impl Fn(u64) -> Option<u64>, table: u64, index: u64) -> Option<u64> {
    let e = read_u64(table + index * 8)?;
    (e & PRESENT != 0).then_some(e)
}

/// A present 4-byte entry (32-bit paging), read through the aligned 8-byte reader.
fn entry32(read_u64: &impl Fn(u64) -> Option<u64>, table: u64, index: u64) -> Option<u64> {
    let at = table + index * 4;
    let e = (read_u64(at & !7)? >> ((at & 4) * 8)) & 0xffff_ffff;
    (e & PRESENT != 0).then_some(e)
}

/// 32-bit paging: page directory, then a page table or a 4 MiB page (CR4.PSE; PSE-36 puts
/// physical-address bits 39:32 in PDE bits 20:13).
fn walk_32(read_u64: &impl Fn(u64) -> Option<u64>, ctl: &ControlState, la: u64) -> Option<u64> {
    let pde = entry32(read_u64, ctl.cr3 & 0xffff_f000, la >> 22)?;
    if pde & PS != 0 && ctl.cr4 & CR4_PSE != 0 {
        let high = ((pde >> 13) & 0xff) << 32;
        return Some(high | (pde & 0xffc0_0000) | (la & 0x3f_ffff));
    }
    let pte = entry32(read_u64, pde & 0xffff_f000, (la >> 12) & 0x3ff)?;
    Some((pte & 0xffff_f000) | (la & 0xfff))
}

/// PAE paging: 4 PDPTEs at CR3 (32-byte aligned), then a page directory with 2 MiB pages or
/// page tables.
fn walk_pae(read_u64: &impl Fn(u64) -> Option<u64>, cr3: u64, la: u64) -> Option<u64> {
    let pdpte = entry64(read_u64, cr3 & 0xffff_ffe0, la >> 30)?;
    lower_levels(read_u64, pdpte & ADDR_MASK, la)
}

/// 4-level (or, with CR4.LA57, 5-level) long-mode paging with 1 GiB and 2 MiB pages.
fn walk_long(read_u64: &impl Fn(u64) -> Option<u64>, ctl: &ControlState, la: u64) -> Option<u64> {
    let la57 = ctl.cr4 & CR4_LA57 != 0;
    let bits = if la57 { 57 } else { 48 };
    // Canonical: bits 63..bits-1 all equal.
    let shift = 64 - bits;
    if (((la << shift) as i64) >> shift) as u64 != la {
        return None;
    }
    let mut table = ctl.cr3 & ADDR_MASK;
    if la57 {
        table = entry64(read_u64, table, (la >> 48) & 0x1ff)? & ADDR_MASK;
    }
    let pml4e = entry64(read_u64, table, (la >> 39) & 0x1ff)?;
    let pdpte = entry64(read_u64, pml4e & ADDR_MASK, (la >> 30) & 0x1ff)?;
    if pdpte & PS != 0 {
        return Some((pdpte & ADDR_MASK & !0x3fff_ffff) | (la & 0x3fff_ffff));
    }
    lower_levels(read_u64, pdpte & ADDR_MASK, la)
}

/// The page-directory and page-table levels shared by PAE and long mode.
fn lower_levels(read_u64: &impl Fn(u64) -> Option<u64>, pd: u64, la: u64) -> Option<u64> {
    let pde = entry64(read_u64, pd, (la >> 21) & 0x1ff)?;
    if pde & PS != 0 {
        return Some((pde & ADDR_MASK & !0x1f_ffff) | (la & 0x1f_ffff));
    }
    let pte = entry64(read_u64, pde & ADDR_MASK, (la >> 12) & 0x1ff)?;
    Some((pte & ADDR_MASK) | (la & 0xfff))
}

/// Calls `f(gpa, offset, n)` for each piece of guest-linear `[la, la + len)` that lies in one
/// guest page, translating each page once (outside long mode linear addresses wrap at 4 GiB).
/// Stops with false at the first page that does not translate or for which `f` returns false.
pub fn for_each_linear_page(
    read_u64: impl Fn(u64) -> Option<u64>,
    ctl: &ControlState,
    la: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, usize) -> bool,
) -> bool {
    let mut done = 0;
    while done < len {
        let at = la.wrapping_add(done as u64);
        let n = (PAGE_SIZE - at % PAGE_SIZE).min((len - done) as u64) as usize;
        let Some(gpa) = translate(&read_u64, ctl, at) else {
            return false;
        };
        if !f(gpa, done, n) {
            return false;
        }
        done += n;
    }
    true
}

/// Reads 8 guest-physical bytes through the nested tables.
fn nested_u64(nested: &NestedTables) -> impl Fn(u64) -> Option<u64> + '_ {
    move |gpa| {
        let mut b = [0u8; 8];
        nested.read(gpa, &mut b).then(|| u64::from_le_bytes(b))
    }
}

/// The guest-physical address of guest-linear `la` under the guest's paging state `ctl`.
pub fn linear_to_gpa(nested: &NestedTables, ctl: &ControlState, la: u64) -> Option<u64> {
    translate(nested_u64(nested), ctl, la)
}

/// Reads guest-linear bytes at `la` into `buf`; false if any byte does not translate (the
/// bytes of the pages before it are read).
pub fn read_linear(nested: &NestedTables, ctl: &ControlState, la: u64, buf: &mut [u8]) -> bool {
    let len = buf.len();
    for_each_linear_page(nested_u64(nested), ctl, la, len, |gpa, off, n| {
        nested.read(gpa, &mut buf[off..off + n])
    })
}

/// Writes `bytes` at guest-linear `la`; false if any byte does not translate (the bytes of the
/// pages before it are written).
pub fn write_linear(nested: &NestedTables, ctl: &ControlState, la: u64, bytes: &[u8]) -> bool {
    for_each_linear_page(nested_u64(nested), ctl, la, bytes.len(), |gpa, off, n| {
        nested.write(gpa, &bytes[off..off + n])
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::vec::Vec;

    const PG: u64 = 1 << 31;
    const PE: u64 = 1;
    const LME: u64 = 1 << 8;
    const LMA: u64 = 1 << 10;

    /// Sparse guest-physical memory of bytes.
    #[derive(Default)]
    struct Mem(RefCell<HashMap<u64, u8>>);

    impl Mem {
        fn w64(&self, gpa: u64, v: u64) {
            for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                self.0.borrow_mut().insert(gpa + i as u64, b);
            }
        }
        fn w32(&self, gpa: u64, v: u32) {
            for (i, b) in v.to_le_bytes().into_iter().enumerate() {
                self.0.borrow_mut().insert(gpa + i as u64, b);
            }
        }
        /// Makes `[gpa, gpa + len)` readable (zero) without changing what is there.
        fn back(&self, gpa: u64, len: u64) {
            for a in gpa..gpa + len {
                self.0.borrow_mut().entry(a).or_insert(0);
            }
        }
        fn read_u64(&self) -> impl Fn(u64) -> Option<u64> + '_ {
            move |gpa| {
                assert_eq!(gpa % 8, 0, "unaligned entry read at {gpa:#x}");
                let m = self.0.borrow();
                let mut b = [0u8; 8];
                for (i, x) in b.iter_mut().enumerate() {
                    *x = *m.get(&(gpa + i as u64))?;
                }
                Some(u64::from_le_bytes(b))
            }
        }
        fn tr(&self, ctl: &ControlState, la: u64) -> Option<u64> {
            translate(self.read_u64(), ctl, la)
        }
    }

    #[test]
    fn paging_off_is_identity_truncated_to_32_bits() {
        let m = Mem::default();
        let ctl = ControlState {
            cr0: PE,
            ..Default::default()
        };
        assert_eq!(m.tr(&ctl, 0x1234), Some(0x1234));
        assert_eq!(m.tr(&ctl, 0x1_0000_1234), Some(0x1234));
        assert_eq!(m.tr(&ctl, 0xffff_ffff), Some(0xffff_ffff));
    }

    fn ctl32(cr3: u64, cr4: u64) -> ControlState {
        ControlState {
            cr0: PE | PG,
            cr3,
            cr4,
            ..Default::default()
        }
    }

    #[test]
    fn two_level_paging_4k_and_4m() {
        let m = Mem::default();
        let pd = 0x10_000;
        let pt = 0x11_000;
        m.back(pd, 4096);
        m.back(pt, 4096);
        // 0x0040_3000 -> 0x7_7000 through a page table; the PDE is at an odd 4-byte slot.
        m.w32(pd + 4, (pt | 0x3) as u32);
        m.w32(pt + 3 * 4, 0x7_7003);
        // 0xc000_0000 -> 0x8_0000_0000 | 0x40_0000 via a 4 MiB page with PSE-36 bits.
        m.w32(pd + (0xc00 >> 2) * 4, 0x0040_0083 | (0x08 << 13));
        // Last slot of the directory (an odd 4-byte slot at the end of the page).
        m.w32(pd + 1023 * 4, 0x0080_0083);
        let ctl = ctl32(pd | 0x18, CR4_PSE);
        assert_eq!(m.tr(&ctl, 0x0040_3abc), Some(0x7_7abc));
        assert_eq!(m.tr(&ctl, 0xc012_3456), Some(0x8_0052_3456));
        assert_eq!(m.tr(&ctl, 0xffc0_0010), Some(0x0080_0010));
        // Not present: other PTEs and PDEs.
        assert_eq!(m.tr(&ctl, 0x0040_4000), None);
        assert_eq!(m.tr(&ctl, 0x0000_0000), None);
        // Upper bits of the linear address are ignored outside long mode.
        assert_eq!(m.tr(&ctl, 0xdead_0000_0040_3abc), Some(0x7_7abc));
        // Without CR4.PSE the PS bit is ignored: the PDE points at a page table.
        let no_pse = ctl32(pd, 0);
        // (The PSE-36 bits 20:13 are then address bits of that table.)
        m.back(0x41_0000, 4096);
        m.w32(0x41_0000 + 0x123 * 4, 0x9_9001);
        assert_eq!(m.tr(&no_pse, 0xc012_3456), Some(0x9_9456));
    }

    #[test]
    fn pae_paging_4k_and_2m() {
        let m = Mem::default();
        let pdpt = 0x20_0e0; // 32-byte aligned, not page-aligned
        let pd = 0x21_000;
        let pt = 0x22_000;
        m.back(pdpt, 32);
        m.back(pd, 4096);
        m.back(pt, 4096);
        m.w64(pdpt + 3 * 8, pd | 1);
        // 0xc000_5000 -> 0x1_2345_6000 (above 4 GiB) through a page table.
        m.w64(pd, pt | 3);
        m.w64(pt + 5 * 8, 0x8000_0001_2345_6003); // NX bit set: ignored
        // 0xc020_0000.. -> 2 MiB page at 0x60_0000.
        m.w64(pd + 8, 0x60_0083);
        let ctl = ctl32(pdpt, CR4_PAE);
        assert_eq!(m.tr(&ctl, 0xc000_5678), Some(0x1_2345_6678));
        assert_eq!(m.tr(&ctl, 0xc03f_ffff), Some(0x7f_ffff));
        assert_eq!(m.tr(&ctl, 0x0000_5678), None); // PDPTE 0 absent
        assert_eq!(m.tr(&ctl, 0xc040_0000), None); // PDE 2 absent
        assert_eq!(m.tr(&ctl, 0xc000_6000), None); // PTE absent
    }

    fn ctl64(cr3: u64, cr4: u64) -> ControlState {
        ControlState {
            cr0: PE | PG,
            cr3,
            cr4: CR4_PAE | cr4,
            efer: LME | LMA,
            cs_long: true,
            ..Default::default()
        }
    }

    #[test]
    fn long_mode_4k_2m_1g_and_canonical() {
        let m = Mem::default();
        let (l4, l3, l2, l1) = (0x30_000, 0x31_000, 0x32_000, 0x33_000);
        for t in [l4, l3, l2, l1] {
            m.back(t, 4096);
        }
        // 0xffff_8000_0000_0000 + ...: L4 slot 256.
        m.w64(l4 + 256 * 8, l3 | 3);
        m.w64(l3, l2 | 3);
        m.w64(l2, l1 | 3);
        m.w64(l1 + 511 * 8, 0x000f_ffff_ffff_f003 | (1 << 63));
        m.w64(l2 + 8, 0x1234_0000_0000 | 0x20_0000 | 0x83 | (1 << 12)); // 2 MiB, PAT bit
        m.w64(l3 + 8, 0x40_0000_0000 | 0x83); // 1 GiB
        // Low half: L4 slot 0 -> the same L3.
        m.w64(l4, l3 | 3);
        let ctl = ctl64(l4, 0);
        let hi = 0xffff_8000_0000_0000u64;
        assert_eq!(m.tr(&ctl, hi + 0x1f_f123), Some(0x000f_ffff_ffff_f123));
        assert_eq!(m.tr(&ctl, hi + 0x2a_bcde), Some(0x1234_002a_bcde));
        assert_eq!(m.tr(&ctl, hi + 0x4123_4567), Some(0x40_0123_4567));
        assert_eq!(m.tr(&ctl, 0x4123_4567), Some(0x40_0123_4567));
        // No 32-bit truncation in long mode.
        assert_eq!(m.tr(&ctl, 0x1_0000_0000), None);
        // Non-canonical.
        assert_eq!(m.tr(&ctl, 0x0000_8000_0000_0000), None);
        assert_eq!(m.tr(&ctl, 0x8000_0000_0000_0000), None);
        // Absent levels.
        assert_eq!(m.tr(&ctl, hi + 0x8000_0000), None);
        assert_eq!(m.tr(&ctl, hi + 0x1f_e000), None);
        assert_eq!(m.tr(&ctl, 0xffff_ff80_0000_0000), None);
    }

    #[test]
    fn five_level_paging() {
        let m = Mem::default();
        let (l5, l4, l3) = (0x40_000, 0x41_000, 0x42_000);
        for t in [l5, l4, l3] {
            m.back(t, 4096);
        }
        m.w64(l5 + 511 * 8, l4 | 3);
        m.w64(l4 + 511 * 8, l3 | 3);
        m.w64(l3 + 511 * 8, 0x80_0000_0000 | 0x83);
        let ctl = ctl64(l5, CR4_LA57);
        assert_eq!(m.tr(&ctl, 0xffff_ffff_ffff_f000), Some(0x80_3fff_f000));
        // Canonical with 57 bits (not with 48): walked, L5 slot 256 is absent.
        m.w64(l5 + 256 * 8, l4 | 3);
        assert_eq!(m.tr(&ctl, 0xff00_ffff_c000_0000), Some(0x80_0000_0000));
        // Not canonical with 57 bits.
        assert_eq!(m.tr(&ctl, 0xfe00_0000_0000_0000), None);
    }

    #[test]
    fn linear_pieces_cross_pages_and_wrap_outside_long_mode() {
        let m = Mem::default();
        let (pd, pt) = (0x10_000, 0x11_000);
        m.back(pd, 4096);
        m.back(pt, 4096);
        m.w32(pd, (pt | 3) as u32);
        // Linear pages 1 and 2 map to physical 0x5000 and 0x3000 (not contiguous).
        m.w32(pt + 4, 0x5003);
        m.w32(pt + 8, 0x3003);
        let ctl = ctl32(pd, 0);
        let mut pieces = Vec::new();
        assert!(for_each_linear_page(
            m.read_u64(),
            &ctl,
            0x1ffa,
            10,
            |gpa, off, n| {
                pieces.push((gpa, off, n));
                true
            }
        ));
        assert_eq!(pieces, [(0x5ffa, 0, 6), (0x3000, 6, 4)]);
        // Page 3 is unmapped: the first piece is visited, then false.
        pieces.clear();
        assert!(!for_each_linear_page(
            m.read_u64(),
            &ctl,
            0x2ffe,
            4,
            |gpa, off, n| {
                pieces.push((gpa, off, n));
                true
            }
        ));
        assert_eq!(pieces, [(0x3ffe, 0, 2)]);
        // The callback's refusal stops the walk.
        assert!(!for_each_linear_page(
            m.read_u64(),
            &ctl,
            0x1000,
            8192,
            |_, _, _| false
        ));
        // Empty ranges touch nothing.
        assert!(for_each_linear_page(
            m.read_u64(),
            &ctl,
            0x9000_0000,
            0,
            |_, _, _| false
        ));

        // Paging off: wraps from 0xffff_ffff to 0.
        let flat = ControlState {
            cr0: PE,
            ..Default::default()
        };
        pieces.clear();
        assert!(for_each_linear_page(
            m.read_u64(),
            &flat,
            0xffff_fffe,
            4,
            |gpa, off, n| {
                pieces.push((gpa, off, n));
                true
            }
        ));
        assert_eq!(pieces, [(0xffff_fffe, 0, 2), (0, 2, 2)]);
    }

    #[test]
    fn linear_pieces_stop_at_the_canonical_hole() {
        let m = Mem::default();
        let (l4, l3) = (0x30_000, 0x31_000);
        m.back(l4, 4096);
        m.back(l3, 4096);
        m.w64(l4 + 255 * 8, l3 | 3);
        m.w64(l3 + 511 * 8, 0x40_0000_0000 | 0x83);
        let ctl = ctl64(l4, 0);
        let mut pieces = Vec::new();
        assert!(!for_each_linear_page(
            m.read_u64(),
            &ctl,
            0x7fff_ffff_fffc,
            8,
            |gpa, off, n| {
                pieces.push((gpa, off, n));
                true
            }
        ));
        assert_eq!(pieces, [(0x40_3fff_fffc, 0, 4)]);
    }
}
