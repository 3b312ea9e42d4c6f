//! `struct page_info`: the per-frame reference counts and type, with Xen's bit encoding
//! (`xen/arch/x86/include/asm/mm.h`).
//!
//! The encodings are Xen's on purpose: a debugger or a port of more of `mm.c` can compare
//! `count_info`/`type_info` values with Xen's directly.

use super::{DOMID_INVALID, DOMID_IO, DomId};

/// `PG_shift(idx)`: bit position of a flag counted from the top of a 64-bit word.
const fn pg_shift(idx: u32) -> u32 {
    64 - idx
}

/// `PG_mask(x, idx)`.
const fn pg_mask(x: u64, idx: u32) -> u64 {
    x << pg_shift(idx)
}

/// `PGT_type_mask`: the frame's current type, bits 61-63 (see [`PageType`]).
pub const PGT_TYPE_MASK: u64 = pg_mask(7, 3);
/// `PGT_locked`: the frame is locked for a PTE update (`page_lock`). Unused in the
/// single-threaded model, kept for the encoding.
pub const PGT_LOCKED: u64 = pg_mask(1, 4);
/// `PGT_pinned`: the owning guest pinned the frame to its type (holds one general and one type
/// reference).
pub const PGT_PINNED: u64 = pg_mask(1, 5);
/// `PGT_validated`: the frame has been validated for its current type.
pub const PGT_VALIDATED: u64 = pg_mask(1, 6);
/// `PGT_partial`: partially (de)validated. Never set by this non-preemptible model.
pub const PGT_PARTIAL: u64 = pg_mask(1, 8);
/// `PGT_non_coherent`: mapped writable with a non-coherent (WC) memory type; the cache must be
/// flushed before the frame is used as anything but a writable page (XSA-402).
pub const PGT_NON_COHERENT: u64 = pg_mask(1, 9);
/// `PGT_count_mask`: the type reference count, bits 0-54.
pub const PGT_COUNT_MASK: u64 = (1 << pg_shift(9)) - 1;

/// `PGC_allocated`: the frame is allocated to its owner (holds one general reference).
pub const PGC_ALLOCATED: u64 = pg_mask(1, 1);
/// `PGC_xen_heap`: a Xen-heap frame (shared with a guest by `share_xen_page_with_guest`).
pub const PGC_XEN_HEAP: u64 = pg_mask(1, 2);
/// `PGC_extra`: an extra, not reference-counted, domain page.
pub const PGC_EXTRA: u64 = pg_mask(1, 7);
/// `PGC_count_mask`: the general reference count, bits 0-55.
pub const PGC_COUNT_MASK: u64 = (1 << pg_shift(8)) - 1;

/// A frame's type (`PGT_none` .. `PGT_writable_page`). The types are mutually exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum PageType {
    /// `PGT_none`: no special use.
    None = 0,
    /// `PGT_l1_page_table`.
    L1 = 1,
    /// `PGT_l2_page_table`.
    L2 = 2,
    /// `PGT_l3_page_table`.
    L3 = 3,
    /// `PGT_l4_page_table` (`PGT_root_page_table` for 64-bit guests).
    L4 = 4,
    /// `PGT_seg_desc_page`: used as a GDT or LDT page.
    SegDesc = 5,
    /// `PGT_shared_page`: a copy-on-write shareable page (HVM memory sharing).
    Shared = 6,
    /// `PGT_writable_page`: has writable mappings.
    Writable = 7,
}

impl PageType {
    /// The type's bits in `type_info`.
    pub const fn bits(self) -> u64 {
        (self as u64) << 61
    }

    /// The type encoded in a `type_info` value.
    pub const fn from_type_info(type_info: u64) -> Self {
        match (type_info & PGT_TYPE_MASK) >> 61 {
            0 => PageType::None,
            1 => PageType::L1,
            2 => PageType::L2,
            3 => PageType::L3,
            4 => PageType::L4,
            5 => PageType::SegDesc,
            6 => PageType::Shared,
            _ => PageType::Writable,
        }
    }

    /// The page-table level of an L1..L4 type.
    pub const fn level(self) -> Option<Level> {
        match self {
            PageType::L1 => Some(Level::L1),
            PageType::L2 => Some(Level::L2),
            PageType::L3 => Some(Level::L3),
            PageType::L4 => Some(Level::L4),
            _ => None,
        }
    }
}

/// A page-table level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Level 1: maps 4 KiB pages.
    L1 = 1,
    /// Level 2.
    L2 = 2,
    /// Level 3.
    L3 = 3,
    /// Level 4: the root (`PGT_root_page_table`).
    L4 = 4,
}

impl Level {
    /// The frame type of a table at this level.
    pub const fn page_type(self) -> PageType {
        match self {
            Level::L1 => PageType::L1,
            Level::L2 => PageType::L2,
            Level::L3 => PageType::L3,
            Level::L4 => PageType::L4,
        }
    }

    /// The level the entries of a table at this level point to (`None` for L1, whose entries
    /// map data frames).
    pub const fn lower(self) -> Option<Level> {
        match self {
            Level::L1 => None,
            Level::L2 => Some(Level::L1),
            Level::L3 => Some(Level::L2),
            Level::L4 => Some(Level::L3),
        }
    }
}

/// Per-frame information: one entry of the frame table, indexed by MFN.
///
/// Xen's `struct page_info` is 32 bytes (a list link, `count_info`, `type_info`, the owner as
/// a compressed pointer and a union of `tlbflush_timestamp` with the validation progress and
/// `linear_pt_count`). The list link belongs to the allocator and the validation progress to
/// preemptible validation, so this is 24 bytes. The fields are public raw words in Xen's
/// encoding, because the frame table is built and handed between owners by the allocator
/// (`assign_pages`, `free_domheap_page`); the counting itself must go through this module's
/// functions.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// `count_info`: `PGC_*` flags and the general reference count.
    pub count_info: u64,
    /// `type_info`: the [`PageType`], `PGT_*` flags and the type reference count.
    pub type_info: u64,
    /// Owning domain ([`DOMID_INVALID`] for none, `NULL` in Xen).
    pub owner: DomId,
    /// `linear_pt_count`: positive = how many same-level (linear) entries this table has;
    /// negative = in how many same-level tables this table is used as a linear mapping.
    pub linear_pt_count: i16,
    /// `tlbflush_timestamp`, for TLB-flush filtering on type changes (not used yet).
    pub tlbflush_timestamp: u32,
}

const _: () = assert!(core::mem::size_of::<PageInfo>() == 24);

impl PageInfo {
    /// A frame nobody owns: free, or hypervisor-private (counts zero, so no reference can be
    /// taken on it).
    pub const FREE: PageInfo = PageInfo {
        count_info: 0,
        type_info: 0,
        owner: DOMID_INVALID,
        linear_pt_count: 0,
        tlbflush_timestamp: 0,
    };

    /// A frame allocated to `owner` (`assign_pages`): `PGC_allocated` and one reference, no
    /// type.
    pub const fn assigned(owner: DomId) -> Self {
        PageInfo {
            count_info: PGC_ALLOCATED | 1,
            owner,
            ..Self::FREE
        }
    }

    /// An I/O frame inside the frame table (`assign_io_page`): owned by [`DOMID_IO`], pinned
    /// writable by its own type reference.
    pub const fn io() -> Self {
        PageInfo {
            count_info: PGC_ALLOCATED | 1,
            type_info: PageType::Writable.bits() | PGT_VALIDATED | 1,
            owner: DOMID_IO,
            ..Self::FREE
        }
    }

    /// A Xen-heap frame shared with `owner` (`share_xen_page_with_guest`): read-only frames get
    /// type `PGT_none`, writable ones `PGT_writable_page`, either pinned by one type
    /// reference.
    pub const fn xen_shared(owner: DomId, writable: bool) -> Self {
        let ty = if writable {
            PageType::Writable
        } else {
            PageType::None
        };
        PageInfo {
            count_info: PGC_XEN_HEAP | PGC_ALLOCATED | 1,
            type_info: ty.bits() | PGT_VALIDATED | 1,
            owner,
            ..Self::FREE
        }
    }

    /// The general reference count.
    pub const fn count(&self) -> u64 {
        self.count_info & PGC_COUNT_MASK
    }

    /// The type reference count.
    pub const fn type_count(&self) -> u64 {
        self.type_info & PGT_COUNT_MASK
    }

    /// The current type.
    pub const fn page_type(&self) -> PageType {
        PageType::from_type_info(self.type_info)
    }

    /// Whether the frame is validated for its current type.
    pub const fn is_validated(&self) -> bool {
        self.type_info & PGT_VALIDATED != 0
    }

    /// Whether the frame is pinned to its type.
    pub const fn is_pinned(&self) -> bool {
        self.type_info & PGT_PINNED != 0
    }

    /// `is_special_page`: a Xen-heap or extra page, whose memory type may not be changed.
    pub const fn is_special(&self) -> bool {
        self.count_info & (PGC_XEN_HEAP | PGC_EXTRA) != 0
    }

    /// `page_lock`'s precondition: validated for its type with a non-zero, non-saturated type
    /// count, i.e. a table whose entries may be updated in place.
    pub(crate) const fn lockable(&self) -> bool {
        let nx = self.type_info.wrapping_add(1);
        self.is_validated() && self.type_count() != 0 && nx & PGT_COUNT_MASK != 0
    }
}
