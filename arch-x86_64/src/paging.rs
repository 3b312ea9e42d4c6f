//! 4-level x86_64 page tables: entry format and a mapper that builds and walks them.
//!
//! The mapper reaches table frames through [`TableAccess`], so the same code runs before the
//! direct map exists (identity-mapped boot tables), after it (direct map), and on the host in
//! tests (a fake physical memory).

use bitflags::bitflags;

bitflags! {
    /// Page-table entry flags.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Pte: u64 {
        /// Present.
        const PRESENT = 1 << 0;
        /// Writable.
        const RW = 1 << 1;
        /// User-accessible (CPL3).
        const USER = 1 << 2;
        /// Write-through.
        const PWT = 1 << 3;
        /// Cache disable.
        const PCD = 1 << 4;
        /// Accessed.
        const ACCESSED = 1 << 5;
        /// Dirty.
        const DIRTY = 1 << 6;
        /// Large page (in L2/L3 entries); PAT bit in L1 entries.
        const PSE = 1 << 7;
        /// Global (survives CR3 switches).
        const GLOBAL = 1 << 8;
        /// Execute disable.
        const NX = 1 << 63;
    }
}

/// Physical-address bits of an entry (bits 12-51).
pub const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Bytes in a 4 KiB page.
pub const PAGE_SIZE: u64 = 4096;

/// Size of a leaf mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageSize {
    /// 4 KiB, an L1 entry.
    Size4K,
    /// 2 MiB, an L2 entry with PSE.
    Size2M,
    /// 1 GiB, an L3 entry with PSE.
    Size1G,
}

impl PageSize {
    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        match self {
            PageSize::Size4K => 1 << 12,
            PageSize::Size2M => 1 << 21,
            PageSize::Size1G => 1 << 30,
        }
    }

    /// The table level holding the leaf (1 = L1).
    const fn level(self) -> u32 {
        match self {
            PageSize::Size4K => 1,
            PageSize::Size2M => 2,
            PageSize::Size1G => 3,
        }
    }
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// `va` or `pa` is not aligned to the page size, or `va` is not canonical.
    Misaligned,
    /// No frame for an intermediate table.
    NoMemory,
    /// A large page already covers part of the range.
    LargePageInTheWay,
}

/// How the mapper gets and reaches page-table frames.
pub trait TableAccess {
    /// A zeroed frame for a new table, as a physical address.
    fn alloc_table(&mut self) -> Option<u64>;
    /// A pointer through which the table at physical address `pa` can be read and written.
    fn table_ptr(&self, pa: u64) -> *mut [u64; 512];
}

/// Index of `va` in the table at `level` (4 = L4).
pub const fn table_index(va: u64, level: u32) -> usize {
    ((va >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Whether `va` is canonical for 4-level paging.
pub const fn is_canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == 0x1ffff
}

/// Builds and walks one address space rooted at `root` (the physical address of an L4).
pub struct Mapper<'a, A: TableAccess> {
    root: u64,
    access: &'a mut A,
}

impl<'a, A: TableAccess> Mapper<'a, A> {
    /// A mapper for the tables under `root`.
    pub fn new(root: u64, access: &'a mut A) -> Self {
        Self { root, access }
    }

    /// The root table's physical address.
    pub fn root(&self) -> u64 {
        self.root
    }

    fn entry(&self, table: u64, index: usize) -> *mut u64 {
        // SAFETY (of later derefs): `table_ptr` yields a valid 512-entry table; index < 512.
        self.access
            .table_ptr(table)
            .cast::<u64>()
            .wrapping_add(index)
    }

    fn read(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `entry` points into a live table frame provided by `TableAccess`.
        unsafe { self.entry(table, index).read_volatile() }
    }

    fn write(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as in `read`; the mapper is the only writer of these tables while it exists.
        unsafe { self.entry(table, index).write_volatile(value) }
    }

    /// The table below entry `index` of `table`, creating it with `inter` flags if absent.
    fn next_table(&mut self, table: u64, index: usize, inter: Pte) -> Result<u64, MapError> {
        let e = self.read(table, index);
        if e & Pte::PRESENT.bits() != 0 {
            if e & Pte::PSE.bits() != 0 {
                return Err(MapError::LargePageInTheWay);
            }
            // Widen permissions of an existing intermediate entry when a leaf needs them.
            let widened = e | (inter.bits() & (Pte::RW | Pte::USER).bits());
            if widened != e {
                self.write(table, index, widened);
            }
            return Ok(e & ADDR_MASK);
        }
        let new = self.access.alloc_table().ok_or(MapError::NoMemory)?;
        self.write(table, index, new | inter.bits());
        Ok(new)
    }

    /// Ensures the L4 entry `slot` points to a table (used to pre-create the shared hypervisor
    /// L3s, so that every guest L4 copying these slots sees later additions).
    pub fn ensure_l3(&mut self, slot: usize) -> Result<u64, MapError> {
        self.next_table(self.root, slot, Pte::PRESENT | Pte::RW)
    }

    /// Maps `va` to `pa` with one leaf of `size` and `flags` (PRESENT is implied; PSE is added
    /// for large pages). Replaces an existing leaf.
    pub fn map(&mut self, va: u64, pa: u64, size: PageSize, flags: Pte) -> Result<(), MapError> {
        let mask = size.bytes() - 1;
        if va & mask != 0 || pa & mask != 0 || !is_canonical(va) {
            return Err(MapError::Misaligned);
        }
        let inter = Pte::PRESENT | Pte::RW | (flags & Pte::USER);
        let mut table = self.root;
        for level in (size.level() + 1..=4).rev() {
            table = self.next_table(table, table_index(va, level), inter)?;
        }
        let mut leaf = flags | Pte::PRESENT;
        if size != PageSize::Size4K {
            leaf |= Pte::PSE;
        }
        self.write(
            table,
            table_index(va, size.level()),
            (pa & ADDR_MASK) | leaf.bits(),
        );
        Ok(())
    }

    /// Maps `[va, va + len)` to `[pa, pa + len)` with the largest pages alignment allows
    /// (1 GiB ones only if `allow_1g`).
    pub fn map_range(
        &mut self,
        va: u64,
        pa: u64,
        len: u64,
        flags: Pte,
        allow_1g: bool,
    ) -> Result<(), MapError> {
        if (va | pa | len) & (PAGE_SIZE - 1) != 0 {
            return Err(MapError::Misaligned);
        }
        let mut off = 0;
        while off < len {
            let (v, p, rest) = (va + off, pa + off, len - off);
            let fits = |s: PageSize| (v | p) & (s.bytes() - 1) == 0 && rest >= s.bytes();
            let size = if allow_1g && fits(PageSize::Size1G) {
                PageSize::Size1G
            } else if fits(PageSize::Size2M) {
                PageSize::Size2M
            } else {
                PageSize::Size4K
            };
            self.map(v, p, size, flags)?;
            off += size.bytes();
        }
        Ok(())
    }

    /// Removes the 4 KiB leaf for `va`, if any (caller flushes the TLB).
    pub fn unmap_4k(&mut self, va: u64) {
        let mut table = self.root;
        for level in (2..=4).rev() {
            let e = self.read(table, table_index(va, level));
            if e & Pte::PRESENT.bits() == 0 || e & Pte::PSE.bits() != 0 {
                return;
            }
            table = e & ADDR_MASK;
        }
        self.write(table, table_index(va, 1), 0);
    }

    /// Translates `va` to its physical address and leaf flags.
    pub fn translate(&self, va: u64) -> Option<(u64, Pte)> {
        let mut table = self.root;
        for level in (1..=4).rev() {
            let e = self.read(table, table_index(va, level));
            if e & Pte::PRESENT.bits() == 0 {
                return None;
            }
            let is_leaf = level == 1 || (level <= 3 && e & Pte::PSE.bits() != 0);
            if is_leaf {
                let size = 1u64 << (12 + 9 * (level - 1));
                let base = e & ADDR_MASK & !(size - 1);
                return Some((
                    base | (va & (size - 1)),
                    Pte::from_bits_retain(e & !ADDR_MASK),
                ));
            }
            table = e & ADDR_MASK;
        }
        None
    }

    /// Calls `f(va, pa, size, flags)` for every leaf mapping in `[from, to)` (for W^X audits).
    pub fn for_each_leaf(&self, mut f: impl FnMut(u64, u64, u64, Pte)) {
        self.walk(self.root, 4, 0, &mut f);
    }

    fn walk(&self, table: u64, level: u32, base: u64, f: &mut impl FnMut(u64, u64, u64, Pte)) {
        for i in 0..512usize {
            let e = self.read(table, i);
            if e & Pte::PRESENT.bits() == 0 {
                continue;
            }
            let mut va = base | ((i as u64) << (12 + 9 * (level - 1)));
            if level == 4 && i >= 256 {
                va |= 0xffff_0000_0000_0000; // sign-extend to canonical
            }
            let leaf = level == 1 || (level <= 3 && e & Pte::PSE.bits() != 0);
            if leaf {
                let size = 1u64 << (12 + 9 * (level - 1));
                f(
                    va,
                    e & ADDR_MASK,
                    size,
                    Pte::from_bits_retain(e & !ADDR_MASK),
                );
            } else {
                self.walk(e & ADDR_MASK, level - 1, va, f);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;
    use core::cell::UnsafeCell;

    /// Fake physical memory: table frames live in a vector; PA = 0x1000 * (index + 1).
    struct FakeTables {
        frames: Vec<Box<UnsafeCell<[u64; 512]>>>,
        limit: usize,
    }

    impl TableAccess for FakeTables {
        fn alloc_table(&mut self) -> Option<u64> {
            if self.frames.len() >= self.limit {
                return None;
            }
            self.frames.push(Box::new(UnsafeCell::new([0; 512])));
            Some(self.frames.len() as u64 * 0x1000)
        }
        fn table_ptr(&self, pa: u64) -> *mut [u64; 512] {
            self.frames[(pa / 0x1000 - 1) as usize].get()
        }
    }

    fn fake(limit: usize) -> (FakeTables, u64) {
        let mut t = FakeTables {
            frames: Vec::new(),
            limit,
        };
        let root = t.alloc_table().unwrap();
        (t, root)
    }

    #[test]
    fn map_and_translate_all_sizes() {
        let (mut t, root) = fake(64);
        let mut m = Mapper::new(root, &mut t);
        let xen = 0xffff_82d0_4000_0000;
        m.map(xen, 0x20_0000, PageSize::Size4K, Pte::GLOBAL)
            .unwrap();
        m.map(
            0xffff_8300_0000_0000,
            0,
            PageSize::Size1G,
            Pte::RW | Pte::NX,
        )
        .unwrap();
        m.map(
            0xffff_8300_4020_0000,
            0x4020_0000,
            PageSize::Size2M,
            Pte::RW,
        )
        .unwrap();
        assert_eq!(m.translate(xen + 0x123).unwrap().0, 0x20_0123);
        let (pa, fl) = m.translate(0xffff_8300_1234_5678).unwrap();
        assert_eq!(pa, 0x1234_5678);
        assert!(fl.contains(Pte::NX | Pte::RW | Pte::PSE));
        assert_eq!(m.translate(0xffff_8300_4030_0001).unwrap().0, 0x4030_0001);
        assert!(m.translate(0x1000).is_none());
        assert!(m.translate(xen + 0x1000).is_none());
    }

    #[test]
    fn rejects_misaligned_and_noncanonical() {
        let (mut t, root) = fake(64);
        let mut m = Mapper::new(root, &mut t);
        assert_eq!(
            m.map(0x1000, 0x1000, PageSize::Size2M, Pte::RW),
            Err(MapError::Misaligned)
        );
        assert_eq!(
            m.map(0x0000_8000_0000_0000, 0, PageSize::Size4K, Pte::RW),
            Err(MapError::Misaligned)
        );
    }

    #[test]
    fn large_page_blocks_small_mapping() {
        let (mut t, root) = fake(64);
        let mut m = Mapper::new(root, &mut t);
        m.map(0x4000_0000, 0, PageSize::Size1G, Pte::RW).unwrap();
        assert_eq!(
            m.map(0x4000_1000, 0, PageSize::Size4K, Pte::RW),
            Err(MapError::LargePageInTheWay)
        );
    }

    #[test]
    fn out_of_frames_is_reported() {
        let (mut t, root) = fake(2);
        let mut m = Mapper::new(root, &mut t);
        assert_eq!(
            m.map(0x1000, 0x1000, PageSize::Size4K, Pte::RW),
            Err(MapError::NoMemory)
        );
    }

    #[test]
    fn map_range_picks_large_pages_and_walk_sees_them() {
        let (mut t, root) = fake(64);
        let mut m = Mapper::new(root, &mut t);
        // 4K head, 2M middle pages, 4K tail.
        m.map_range(0x1f_f000, 0x1f_f000, 0x40_2000, Pte::RW | Pte::NX, false)
            .unwrap();
        let mut sizes = Vec::new();
        m.for_each_leaf(|va, pa, size, fl| {
            assert_eq!(va, pa);
            assert!(fl.contains(Pte::NX));
            sizes.push(size);
        });
        assert_eq!(sizes, [0x1000, 0x20_0000, 0x20_0000, 0x1000]);
        m.unmap_4k(0x1f_f000);
        assert!(m.translate(0x1f_f000).is_none());
        assert!(m.translate(0x20_0000).is_some());
    }

    #[test]
    fn user_leaf_widens_intermediates() {
        let (mut t, root) = fake(64);
        let mut m = Mapper::new(root, &mut t);
        m.map(0x1000, 0x5000, PageSize::Size4K, Pte::empty())
            .unwrap();
        m.map(0x2000, 0x6000, PageSize::Size4K, Pte::USER).unwrap();
        // The shared L4 entry now allows user access.
        let l4e = m.read(root, 0);
        assert_ne!(l4e & Pte::USER.bits(), 0);
    }
}
