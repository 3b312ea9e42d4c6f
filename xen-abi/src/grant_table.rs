//! Grant tables: `grant_table.h` (`HYPERVISOR_grant_table_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86::XenPfn;
use crate::xen::{DomId, GuestHandle};

/// `grant_ref_t`.
pub type GrantRef = u32;
/// `grant_handle_t`.
pub type GrantHandle = u32;
/// `grant_status_t`: v2 status-frame entry.
pub type GrantStatus = u16;

/// `struct grant_entry_v1` / `grant_entry_v1_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GrantEntryV1 {
    /// `GTF_*` [XEN,GST].
    pub flags: u16,
    /// Domain being granted access [GST].
    pub domid: DomId,
    /// GFN to map / transfer into, or transferred MFN [GST/XEN].
    pub frame: u32,
}
assert_layout!(GrantEntryV1, 8, flags @ 0, domid @ 2, frame @ 4);

/// `GNTTAB_NR_RESERVED_ENTRIES`: entries preserved across version changes.
pub const GNTTAB_NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`.
pub const GNTTAB_RESERVED_CONSOLE: GrantRef = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const GNTTAB_RESERVED_XENSTORE: GrantRef = 1;

/// `GTF_invalid`.
pub const GTF_invalid: u16 = 0;
/// `GTF_permit_access`.
pub const GTF_permit_access: u16 = 1;
/// `GTF_accept_transfer`.
pub const GTF_accept_transfer: u16 = 2;
/// `GTF_transitive`.
pub const GTF_transitive: u16 = 3;
/// `GTF_type_mask`.
pub const GTF_type_mask: u16 = 3;
/// `_GTF_readonly`.
pub const _GTF_readonly: u16 = 2;
/// `GTF_readonly`: grantee may only map read-only.
pub const GTF_readonly: u16 = 1 << _GTF_readonly;
/// `_GTF_reading`.
pub const _GTF_reading: u16 = 3;
/// `GTF_reading`: currently mapped for reading [XEN].
pub const GTF_reading: u16 = 1 << _GTF_reading;
/// `_GTF_writing`.
pub const _GTF_writing: u16 = 4;
/// `GTF_writing`: currently mapped for writing [XEN].
pub const GTF_writing: u16 = 1 << _GTF_writing;
/// `_GTF_PWT`.
pub const _GTF_PWT: u16 = 5;
/// `GTF_PWT`: x86 cache attribute for mappings of the grant.
pub const GTF_PWT: u16 = 1 << _GTF_PWT;
/// `_GTF_PCD`.
pub const _GTF_PCD: u16 = 6;
/// `GTF_PCD`.
pub const GTF_PCD: u16 = 1 << _GTF_PCD;
/// `_GTF_PAT`.
pub const _GTF_PAT: u16 = 7;
/// `GTF_PAT`.
pub const GTF_PAT: u16 = 1 << _GTF_PAT;
/// `_GTF_sub_page`.
pub const _GTF_sub_page: u16 = 8;
/// `GTF_sub_page`: grant only a byte range (copy only).
pub const GTF_sub_page: u16 = 1 << _GTF_sub_page;
/// `_GTF_transfer_committed`.
pub const _GTF_transfer_committed: u16 = 2;
/// `GTF_transfer_committed`: Xen committed to the transfer.
pub const GTF_transfer_committed: u16 = 1 << _GTF_transfer_committed;
/// `_GTF_transfer_completed`.
pub const _GTF_transfer_completed: u16 = 3;
/// `GTF_transfer_completed`: frame field now holds the transferred frame.
pub const GTF_transfer_completed: u16 = 1 << _GTF_transfer_completed;

/// `struct grant_entry_header` / `grant_entry_header_t`: common v1/v2 prefix.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GrantEntryHeader {
    /// `GTF_*`.
    pub flags: u16,
    /// Grantee.
    pub domid: DomId,
}
assert_layout!(GrantEntryHeader, 4, flags @ 0, domid @ 2);

/// `union grant_entry_v2` / `grant_entry_v2_t`: 16 raw bytes (8-aligned, as
/// the C union with its `uint64_t` members). Accessors give each member view.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GrantEntryV2 {
    /// The union's bytes as two words.
    pub raw: [u64; 2],
}
assert_layout!(GrantEntryV2, 16);

impl GrantEntryV2 {
    fn get<const N: usize>(&self, off: usize) -> [u8; N] {
        let mut b = [0u8; N];
        b.copy_from_slice(&self.as_bytes()[off..off + N]);
        b
    }

    fn put(&mut self, off: usize, v: &[u8]) {
        self.as_mut_bytes()[off..off + v.len()].copy_from_slice(v);
    }

    /// `hdr`.
    pub fn hdr(&self) -> GrantEntryHeader {
        GrantEntryHeader {
            flags: u16::from_ne_bytes(self.get(0)),
            domid: u16::from_ne_bytes(self.get(2)),
        }
    }

    /// Store `hdr` (bytes 0..4 only).
    pub fn set_hdr(&mut self, hdr: GrantEntryHeader) {
        self.put(0, hdr.as_bytes());
    }

    /// `full_page.frame`.
    pub fn full_page_frame(&self) -> u64 {
        u64::from_ne_bytes(self.get(8))
    }

    /// Fill the `full_page` member (header, zero `pad0`, frame).
    pub fn set_full_page(&mut self, hdr: GrantEntryHeader, frame: u64) {
        self.set_hdr(hdr);
        self.put(4, &0u32.to_ne_bytes());
        self.put(8, &frame.to_ne_bytes());
    }

    /// `sub_page` as `(page_off, length, frame)`.
    pub fn sub_page(&self) -> (u16, u16, u64) {
        (
            u16::from_ne_bytes(self.get(4)),
            u16::from_ne_bytes(self.get(6)),
            u64::from_ne_bytes(self.get(8)),
        )
    }

    /// Fill the `sub_page` member.
    pub fn set_sub_page(&mut self, hdr: GrantEntryHeader, page_off: u16, length: u16, frame: u64) {
        self.set_hdr(hdr);
        self.put(4, &page_off.to_ne_bytes());
        self.put(6, &length.to_ne_bytes());
        self.put(8, &frame.to_ne_bytes());
    }

    /// `transitive` as `(trans_domid, gref)`.
    pub fn transitive(&self) -> (DomId, GrantRef) {
        (
            u16::from_ne_bytes(self.get(4)),
            u32::from_ne_bytes(self.get(8)),
        )
    }

    /// Fill the `transitive` member (zero `pad0`; bytes 12..16 untouched).
    pub fn set_transitive(&mut self, hdr: GrantEntryHeader, trans_domid: DomId, gref: GrantRef) {
        self.set_hdr(hdr);
        self.put(4, &trans_domid.to_ne_bytes());
        self.put(6, &0u16.to_ne_bytes());
        self.put(8, &gref.to_ne_bytes());
    }
}

// ---------------------------------------------------------------------------
// Operations.

/// `GNTTABOP_map_grant_ref`.
pub const GNTTABOP_map_grant_ref: u32 = 0;
/// `GNTTABOP_unmap_grant_ref`.
pub const GNTTABOP_unmap_grant_ref: u32 = 1;
/// `GNTTABOP_setup_table`.
pub const GNTTABOP_setup_table: u32 = 2;
/// `GNTTABOP_dump_table`.
pub const GNTTABOP_dump_table: u32 = 3;
/// `GNTTABOP_transfer`.
pub const GNTTABOP_transfer: u32 = 4;
/// `GNTTABOP_copy`.
pub const GNTTABOP_copy: u32 = 5;
/// `GNTTABOP_query_size`.
pub const GNTTABOP_query_size: u32 = 6;
/// `GNTTABOP_unmap_and_replace`.
pub const GNTTABOP_unmap_and_replace: u32 = 7;
/// `GNTTABOP_set_version`.
pub const GNTTABOP_set_version: u32 = 8;
/// `GNTTABOP_get_status_frames`.
pub const GNTTABOP_get_status_frames: u32 = 9;
/// `GNTTABOP_get_version`.
pub const GNTTABOP_get_version: u32 = 10;
/// `GNTTABOP_swap_grant_ref`.
pub const GNTTABOP_swap_grant_ref: u32 = 11;
/// `GNTTABOP_cache_flush`.
pub const GNTTABOP_cache_flush: u32 = 12;

/// `struct gnttab_map_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabMapGrantRef {
    /// IN: VA or (with `GNTMAP_contains_pte`) PTE machine address.
    pub host_addr: u64,
    /// IN: `GNTMAP_*`.
    pub flags: u32,
    /// IN.
    pub ref_: GrantRef,
    /// IN: granting domain.
    pub dom: DomId,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// OUT.
    pub handle: GrantHandle,
    /// OUT: device-visible address.
    pub dev_bus_addr: u64,
}
assert_layout!(GnttabMapGrantRef, 32, host_addr @ 0, flags @ 8, ref_ @ 12, dom @ 16,
    status @ 18, handle @ 20, dev_bus_addr @ 24);

/// `struct gnttab_unmap_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabUnmapGrantRef {
    /// IN.
    pub host_addr: u64,
    /// IN.
    pub dev_bus_addr: u64,
    /// IN.
    pub handle: GrantHandle,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Tail padding.
    pub _pad0: u16,
}
assert_layout!(GnttabUnmapGrantRef, 24, host_addr @ 0, dev_bus_addr @ 8, handle @ 16, status @ 20);

/// `struct gnttab_setup_table`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabSetupTable {
    /// IN.
    pub dom: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// IN.
    pub nr_frames: u32,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Explicit padding.
    pub _pad1: [u16; 3],
    /// OUT: `XEN_GUEST_HANDLE(xen_pfn_t)` receiving the frame list.
    pub frame_list: GuestHandle,
}
assert_layout!(GnttabSetupTable, 24, dom @ 0, nr_frames @ 4, status @ 8, frame_list @ 16);

/// `struct gnttab_dump_table`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabDumpTable {
    /// IN.
    pub dom: DomId,
    /// OUT.
    pub status: i16,
}
assert_layout!(GnttabDumpTable, 4, dom @ 0, status @ 2);

/// `struct gnttab_transfer`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabTransfer {
    /// IN.
    pub mfn: XenPfn,
    /// IN.
    pub domid: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// IN.
    pub ref_: GrantRef,
    /// OUT.
    pub status: i16,
    /// Tail padding.
    pub _pad1: [u16; 3],
}
assert_layout!(GnttabTransfer, 24, mfn @ 0, domid @ 8, ref_ @ 12, status @ 16);

/// `_GNTCOPY_source_gref`.
pub const _GNTCOPY_source_gref: u16 = 0;
/// `GNTCOPY_source_gref`: source is a grant reference, else a GMFN.
pub const GNTCOPY_source_gref: u16 = 1 << _GNTCOPY_source_gref;
/// `_GNTCOPY_dest_gref`.
pub const _GNTCOPY_dest_gref: u16 = 1;
/// `GNTCOPY_dest_gref`.
pub const GNTCOPY_dest_gref: u16 = 1 << _GNTCOPY_dest_gref;

/// `struct gnttab_copy_ptr`. `u` is `union { grant_ref_t ref; xen_pfn_t gmfn; }`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabCopyPtr {
    /// The union, raw.
    pub u: u64,
    /// Domain owning the frame.
    pub domid: DomId,
    /// Byte offset in the frame.
    pub offset: u16,
    /// Tail padding.
    pub _pad0: u32,
}
assert_layout!(GnttabCopyPtr, 16, u @ 0, domid @ 8, offset @ 10);

impl GnttabCopyPtr {
    /// Pointer via a grant reference (`GNTCOPY_*_gref` set).
    pub fn with_gref(gref: GrantRef, domid: DomId, offset: u16) -> Self {
        let mut p = Self {
            u: 0,
            domid,
            offset,
            _pad0: 0,
        };
        p.set_gref(gref);
        p
    }

    /// Pointer via a GMFN.
    pub const fn with_gmfn(gmfn: XenPfn, domid: DomId, offset: u16) -> Self {
        Self {
            u: gmfn,
            domid,
            offset,
            _pad0: 0,
        }
    }

    /// `u.ref`: first four bytes of the union.
    pub fn gref(&self) -> GrantRef {
        let b = self.u.to_ne_bytes();
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Store `u.ref`.
    pub fn set_gref(&mut self, gref: GrantRef) {
        let mut b = self.u.to_ne_bytes();
        b[..4].copy_from_slice(&gref.to_ne_bytes());
        self.u = u64::from_ne_bytes(b);
    }

    /// `u.gmfn`.
    pub const fn gmfn(&self) -> XenPfn {
        self.u
    }
}

/// `struct gnttab_copy`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabCopy {
    /// IN.
    pub source: GnttabCopyPtr,
    /// IN.
    pub dest: GnttabCopyPtr,
    /// IN: bytes to copy.
    pub len: u16,
    /// IN: `GNTCOPY_*`.
    pub flags: u16,
    /// OUT.
    pub status: i16,
    /// Tail padding.
    pub _pad0: u16,
}
assert_layout!(GnttabCopy, 40, source @ 0, dest @ 16, len @ 32, flags @ 34, status @ 36);

/// `struct gnttab_query_size`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabQuerySize {
    /// IN.
    pub dom: DomId,
    /// Explicit padding.
    pub _pad0: u16,
    /// OUT.
    pub nr_frames: u32,
    /// OUT.
    pub max_nr_frames: u32,
    /// OUT.
    pub status: i16,
    /// Tail padding.
    pub _pad1: u16,
}
assert_layout!(GnttabQuerySize, 16, dom @ 0, nr_frames @ 4, max_nr_frames @ 8, status @ 12);

/// `struct gnttab_unmap_and_replace`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabUnmapAndReplace {
    /// IN.
    pub host_addr: u64,
    /// IN.
    pub new_addr: u64,
    /// IN.
    pub handle: GrantHandle,
    /// OUT.
    pub status: i16,
    /// Tail padding.
    pub _pad0: u16,
}
assert_layout!(GnttabUnmapAndReplace, 24, host_addr @ 0, new_addr @ 8, handle @ 16, status @ 20);

/// `struct gnttab_set_version`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabSetVersion {
    /// IN/OUT: 1 or 2.
    pub version: u32,
}
assert_layout!(GnttabSetVersion, 4, version @ 0);

/// `struct gnttab_get_status_frames`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabGetStatusFrames {
    /// IN.
    pub nr_frames: u32,
    /// IN.
    pub dom: DomId,
    /// OUT.
    pub status: i16,
    /// OUT: `XEN_GUEST_HANDLE(uint64_t)`.
    pub frame_list: GuestHandle,
}
assert_layout!(GnttabGetStatusFrames, 16, nr_frames @ 0, dom @ 4, status @ 6, frame_list @ 8);

/// `struct gnttab_get_version`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabGetVersion {
    /// IN.
    pub dom: DomId,
    /// Padding.
    pub pad: u16,
    /// OUT.
    pub version: u32,
}
assert_layout!(GnttabGetVersion, 8, dom @ 0, pad @ 2, version @ 4);

/// `struct gnttab_swap_grant_ref`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabSwapGrantRef {
    /// IN.
    pub ref_a: GrantRef,
    /// IN.
    pub ref_b: GrantRef,
    /// OUT.
    pub status: i16,
    /// Tail padding.
    pub _pad0: u16,
}
assert_layout!(GnttabSwapGrantRef, 12, ref_a @ 0, ref_b @ 4, status @ 8);

/// `GNTTAB_CACHE_CLEAN`.
pub const GNTTAB_CACHE_CLEAN: u32 = 1;
/// `GNTTAB_CACHE_INVAL`.
pub const GNTTAB_CACHE_INVAL: u32 = 1 << 1;
/// `GNTTAB_CACHE_SOURCE_GREF`: `a` is a grant ref, else `dev_bus_addr`.
pub const GNTTAB_CACHE_SOURCE_GREF: u32 = 1 << 31;

/// `struct gnttab_cache_flush`. `a` is `union { uint64_t dev_bus_addr; grant_ref_t ref; }`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct GnttabCacheFlush {
    /// The union, raw.
    pub a: u64,
    /// Offset from start of grant.
    pub offset: u16,
    /// Size within the grant.
    pub length: u16,
    /// `GNTTAB_CACHE_*`.
    pub op: u32,
}
assert_layout!(GnttabCacheFlush, 16, a @ 0, offset @ 8, length @ 10, op @ 12);

impl GnttabCacheFlush {
    /// `a.dev_bus_addr`.
    pub const fn dev_bus_addr(&self) -> u64 {
        self.a
    }

    /// `a.ref`: first four bytes of the union.
    pub fn gref(&self) -> GrantRef {
        let b = self.a.to_ne_bytes();
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
    }
}

// ---------------------------------------------------------------------------
// Map flags and status codes.

/// `_GNTMAP_device_map`.
pub const _GNTMAP_device_map: u32 = 0;
/// `GNTMAP_device_map`: map for I/O devices.
pub const GNTMAP_device_map: u32 = 1 << _GNTMAP_device_map;
/// `_GNTMAP_host_map`.
pub const _GNTMAP_host_map: u32 = 1;
/// `GNTMAP_host_map`: map for host CPUs.
pub const GNTMAP_host_map: u32 = 1 << _GNTMAP_host_map;
/// `_GNTMAP_readonly`.
pub const _GNTMAP_readonly: u32 = 2;
/// `GNTMAP_readonly`.
pub const GNTMAP_readonly: u32 = 1 << _GNTMAP_readonly;
/// `_GNTMAP_application_map`.
pub const _GNTMAP_application_map: u32 = 3;
/// `GNTMAP_application_map`: host mapping usable by the current application too.
pub const GNTMAP_application_map: u32 = 1 << _GNTMAP_application_map;
/// `_GNTMAP_contains_pte`.
pub const _GNTMAP_contains_pte: u32 = 4;
/// `GNTMAP_contains_pte`: `host_addr` is the machine address of a PTE.
pub const GNTMAP_contains_pte: u32 = 1 << _GNTMAP_contains_pte;
/// `_GNTMAP_guest_avail0`.
pub const _GNTMAP_guest_avail0: u32 = 16;
/// `GNTMAP_guest_avail_mask`: bits copied into available PTE bits.
pub const GNTMAP_guest_avail_mask: u32 = !0u32 << _GNTMAP_guest_avail0;

/// `GNTST_okay`.
pub const GNTST_okay: i16 = 0;
/// `GNTST_general_error`.
pub const GNTST_general_error: i16 = -1;
/// `GNTST_bad_domain`.
pub const GNTST_bad_domain: i16 = -2;
/// `GNTST_bad_gntref`.
pub const GNTST_bad_gntref: i16 = -3;
/// `GNTST_bad_handle`.
pub const GNTST_bad_handle: i16 = -4;
/// `GNTST_bad_virt_addr`.
pub const GNTST_bad_virt_addr: i16 = -5;
/// `GNTST_bad_dev_addr`.
pub const GNTST_bad_dev_addr: i16 = -6;
/// `GNTST_no_device_space`.
pub const GNTST_no_device_space: i16 = -7;
/// `GNTST_permission_denied`.
pub const GNTST_permission_denied: i16 = -8;
/// `GNTST_bad_page`.
pub const GNTST_bad_page: i16 = -9;
/// `GNTST_bad_copy_arg`.
pub const GNTST_bad_copy_arg: i16 = -10;
/// `GNTST_address_too_big`.
pub const GNTST_address_too_big: i16 = -11;
/// `GNTST_eagain`.
pub const GNTST_eagain: i16 = -12;
/// `GNTST_no_space`.
pub const GNTST_no_space: i16 = -13;

/// `GNTTABOP_error_msgs`, indexed by `-status`.
pub const GNTTABOP_error_msgs: [&str; 14] = [
    "okay",
    "undefined error",
    "unrecognised domain id",
    "invalid grant reference",
    "invalid mapping handle",
    "invalid virtual address",
    "invalid device address",
    "no spare translation slot in the I/O MMU",
    "permission denied",
    "bad page",
    "copy arguments cross page boundary",
    "page address size too large",
    "operation not done; try again",
    "out of space",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_entry_views() {
        let hdr = GrantEntryHeader {
            flags: GTF_permit_access | GTF_sub_page,
            domid: 4,
        };
        let mut e = GrantEntryV2::default();
        e.set_sub_page(hdr, 0x100, 0x80, 0xdead);
        assert_eq!(e.hdr(), hdr);
        assert_eq!(e.sub_page(), (0x100, 0x80, 0xdead));
        assert_eq!(e.full_page_frame(), 0xdead);
        assert_eq!(&e.as_bytes()[0..2], &hdr.flags.to_ne_bytes());
        assert_eq!(&e.as_bytes()[2..4], &4u16.to_ne_bytes());
        assert_eq!(&e.as_bytes()[4..6], &0x100u16.to_ne_bytes());

        e.set_full_page(
            GrantEntryHeader {
                flags: GTF_permit_access,
                domid: 0,
            },
            77,
        );
        assert_eq!(e.full_page_frame(), 77);
        assert_eq!(&e.as_bytes()[4..8], &[0; 4]);

        e.set_transitive(
            GrantEntryHeader {
                flags: GTF_transitive,
                domid: 1,
            },
            2,
            33,
        );
        assert_eq!(e.transitive(), (2, 33));
        assert_eq!(e.hdr().flags & GTF_type_mask, GTF_transitive);
    }

    #[test]
    fn copy_ptr_union() {
        let p = GnttabCopyPtr::with_gref(0x1234_5678, 3, 16);
        assert_eq!(p.gref(), 0x1234_5678);
        assert_eq!(&p.as_bytes()[0..4], &0x1234_5678u32.to_ne_bytes());
        let p = GnttabCopyPtr::with_gmfn(0x1_0000_0001, 0, 0);
        assert_eq!(p.gmfn(), 0x1_0000_0001);
        let f = GnttabCacheFlush {
            a: 0xffff_ffff_0000_0005,
            ..Default::default()
        };
        assert_eq!(f.gref(), 5);
        assert_eq!(f.dev_bus_addr(), 0xffff_ffff_0000_0005);
    }

    #[test]
    fn status_messages() {
        assert_eq!(
            GNTTABOP_error_msgs[(-GNTST_no_space) as usize],
            "out of space"
        );
        assert_eq!(GNTMAP_guest_avail_mask, 0xffff_0000);
    }
}
