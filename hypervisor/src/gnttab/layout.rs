//! Sizes and limits of the grant-table structures (Xen 4.17, x86).
//!
//! Everything a guest can observe through `GNTTABOP_query_size`, `setup_table` and the entry
//! counts derives from these numbers, so they are Xen's.

/// Bytes in a frame.
pub const PAGE_SIZE: usize = 4096;

/// `sizeof(grant_entry_v1_t)`.
pub const V1_ENTRY_SIZE: usize = 8;
/// `sizeof(grant_entry_v2_t)`.
pub const V2_ENTRY_SIZE: usize = 16;
/// `sizeof(grant_status_t)`.
pub const STATUS_ENTRY_SIZE: usize = 2;

/// Version-1 entries in a shared frame (`SHGNT_PER_PAGE_V1`).
pub const V1_ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / V1_ENTRY_SIZE) as u32;
/// Version-2 entries in a shared frame (`SHGNT_PER_PAGE_V2`).
pub const V2_ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / V2_ENTRY_SIZE) as u32;
/// Status words in a status frame (`STGNT_PER_PAGE`).
pub const STATUS_ENTRIES_PER_FRAME: u32 = (PAGE_SIZE / STATUS_ENTRY_SIZE) as u32;

/// Frames a table starts with and never shrinks below (x86 `INITIAL_NR_GRANT_FRAMES`).
pub const INITIAL_NR_GRANT_FRAMES: u32 = 1;
/// Xen's default `gnttab_max_frames`.
pub const DEFAULT_MAX_GRANT_FRAMES: u32 = 64;
/// Xen's default `gnttab_max_maptrack_frames`.
pub const DEFAULT_MAX_MAPTRACK_FRAMES: u32 = 1024;

/// Maptrack entries per maptrack frame (`MAPTRACK_PER_PAGE`: a page of 16-byte
/// `struct grant_mapping`). Handles are handed out a frame at a time, so this is guest-visible
/// in the handle numbers.
pub const MAPTRACK_PER_FRAME: u32 = 256;

/// `GNTTABOP_CONTINUATION_ARG_SHIFT`: `HYPERVISOR_grant_table_op` continuations carry an
/// argument (the `cache_flush` scan position) in the command above this bit. Effectively ABI:
/// a guest migrated in the middle of a continuation must find the same split.
pub const CONTINUATION_ARG_SHIFT: u32 = 12;
/// `GNTTABOP_CMD_MASK`: the command part of the first hypercall argument.
pub const CMD_MASK: u32 = (1 << CONTINUATION_ARG_SHIFT) - 1;

/// How many refs `GNTTABOP_cache_flush` scans per step before asking for a continuation
/// (`1 << GNTTABOP_CONTINUATION_ARG_SHIFT`).
pub const CACHE_FLUSH_SCAN_CHUNK: u32 = 1 << CONTINUATION_ARG_SHIFT;

/// Status frames needed for `grant_frames` version-2 shared frames (`grant_to_status_frames`).
pub const fn grant_to_status_frames(grant_frames: u32) -> u32 {
    (grant_frames * V2_ENTRIES_PER_FRAME).div_ceil(STATUS_ENTRIES_PER_FRAME)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_sizes() {
        assert_eq!(V1_ENTRIES_PER_FRAME, 512);
        assert_eq!(V2_ENTRIES_PER_FRAME, 256);
        assert_eq!(STATUS_ENTRIES_PER_FRAME, 2048);
        assert_eq!(grant_to_status_frames(1), 1);
        assert_eq!(grant_to_status_frames(8), 1);
        assert_eq!(grant_to_status_frames(9), 2);
        assert_eq!(grant_to_status_frames(64), 8);
    }
}
