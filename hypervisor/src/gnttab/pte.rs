//! The L1 entries of PV grant host mappings (Xen's `grant_to_pte_flags` and the check in
//! `replace_grant_pv_mapping`), for the page-table side implementing
//! [`GrantHost::create_host_mapping`](super::GrantHost::create_host_mapping) and
//! [`GrantHost::replace_host_mapping`](super::GrantHost::replace_host_mapping).

use crate::pvmm::{Mfn, PAGE_AVAIL, PAGE_GNTTAB, PAGE_PAT, entry_mfn};
use xen_abi::grant_table::{_GNTMAP_guest_avail0, GNTMAP_application_map, GNTMAP_readonly};
use xenolith_arch::paging::Pte;

/// `grant_to_pte_flags`: present, accessed, dirty, `_PAGE_GNTTAB` (so the entry can be told
/// from ordinary mappings and is refused if a guest writes it itself), no-execute when `nx`
/// (the CPU supports it), RW unless `GNTMAP_readonly`, USER with `GNTMAP_application_map`,
/// the guest's `GNTMAP_guest_avail` bits in the PTE's available bits, and the memory type of
/// `cache_flags` (`GTF_PWT`/`GTF_PCD`/`GTF_PAT`, bits 5-7 of the grant's flags).
///
/// The PV side then applies `pvmm::adjust_guest_l1e`, as Xen does.
pub fn grant_pte_flags(map_flags: u32, cache_flags: u16, nx: bool) -> u64 {
    let mut f = Pte::PRESENT.bits() | Pte::ACCESSED.bits() | Pte::DIRTY.bits() | PAGE_GNTTAB;
    if nx {
        f |= Pte::NX.bits();
    }
    if map_flags & GNTMAP_application_map != 0 {
        f |= Pte::USER.bits();
    }
    if map_flags & GNTMAP_readonly == 0 {
        f |= Pte::RW.bits();
    }
    f |= (u64::from(map_flags >> _GNTMAP_guest_avail0) << PAGE_AVAIL.trailing_zeros()) & PAGE_AVAIL;
    f | cache_attr_flags(cache_flags >> 5)
}

/// `cacheattr_to_pte_flags`: a 3-bit PAT index (PWT, PCD, PAT) to the L1 bits.
fn cache_attr_flags(attr: u16) -> u64 {
    let attr = u64::from(attr & 7);
    let mut f = 0;
    if attr & 1 != 0 {
        f |= Pte::PWT.bits();
    }
    if attr & 2 != 0 {
        f |= Pte::PCD.bits();
    }
    if attr & 4 != 0 {
        f |= PAGE_PAT;
    }
    f
}

/// The L1 entry mapping `mfn` for a grant mapping with `map_flags` (before
/// `adjust_guest_l1e`).
pub fn grant_pte(mfn: Mfn, map_flags: u32, cache_flags: u16, nx: bool) -> u64 {
    mfn << 12 | grant_pte_flags(map_flags, cache_flags, nx)
}

/// `replace_grant_pv_mapping`'s check that the entry being removed is the grant mapping of
/// `mfn`: the frame matches and so do the present and RW bits `map_flags` imply. (Other bits
/// may differ: the guest-available bits, the memory type, accessed/dirty.)
pub fn grant_pte_matches(pte: u64, mfn: Mfn, map_flags: u32) -> bool {
    let expected = grant_pte_flags(map_flags, 0, false);
    let checked = Pte::PRESENT.bits() | Pte::RW.bits();
    entry_mfn(pte) == mfn && (pte ^ expected) & checked == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use xen_abi::grant_table::{GNTMAP_host_map, GTF_PCD, GTF_PWT};

    #[test]
    fn writable_kernel_mapping() {
        let f = grant_pte_flags(GNTMAP_host_map, 0, true);
        assert_eq!(f, 0x63 | PAGE_GNTTAB | 1 << 63);
    }

    #[test]
    fn readonly_application_mapping_with_avail_bits_and_cache_type() {
        let flags = GNTMAP_host_map | GNTMAP_readonly | GNTMAP_application_map | 0b101 << 16;
        let f = grant_pte_flags(flags, GTF_PCD | GTF_PWT, false);
        assert_eq!(f & Pte::RW.bits(), 0);
        assert_ne!(f & Pte::USER.bits(), 0);
        assert_eq!(f & PAGE_AVAIL, 0b101 << 9);
        assert_eq!(f & (Pte::PCD.bits() | Pte::PWT.bits()), 0x18);
        assert_eq!(f & PAGE_PAT, 0);
    }

    #[test]
    fn replace_check_looks_at_frame_present_and_rw() {
        let pte = grant_pte(0x1234, GNTMAP_host_map, 0, true) | Pte::USER.bits();
        assert!(grant_pte_matches(pte, 0x1234, GNTMAP_host_map));
        assert!(!grant_pte_matches(pte, 0x1235, GNTMAP_host_map));
        assert!(!grant_pte_matches(
            pte,
            0x1234,
            GNTMAP_host_map | GNTMAP_readonly
        ));
        assert!(!grant_pte_matches(0, 0, GNTMAP_host_map));
    }
}
