//! Feature flags reported by `XENVER_get_features`: `features.h`. Values are
//! bit numbers within submap 0.

/// `XENFEAT_writable_page_tables`: guest may write its page tables directly.
pub const XENFEAT_writable_page_tables: u32 = 0;
/// `XENFEAT_writable_descriptor_tables`.
pub const XENFEAT_writable_descriptor_tables: u32 = 1;
/// `XENFEAT_auto_translated_physmap`: Xen handles P2M translation.
pub const XENFEAT_auto_translated_physmap: u32 = 2;
/// `XENFEAT_supervisor_mode_kernel`: guest kernel runs in ring 0.
pub const XENFEAT_supervisor_mode_kernel: u32 = 3;
/// `XENFEAT_pae_pgdir_above_4gb`.
pub const XENFEAT_pae_pgdir_above_4gb: u32 = 4;
/// `XENFEAT_mmu_pt_update_preserve_ad`: `MMU_PT_UPDATE_PRESERVE_AD` available.
pub const XENFEAT_mmu_pt_update_preserve_ad: u32 = 5;
/// `XENFEAT_highmem_assist`: `MMUEXT_{CLEAR,COPY}_PAGE` available.
pub const XENFEAT_highmem_assist: u32 = 6;
/// `XENFEAT_gnttab_map_avail_bits`: `GNTMAP_guest_avail*` honoured.
pub const XENFEAT_gnttab_map_avail_bits: u32 = 7;
/// `XENFEAT_hvm_callback_vector`.
pub const XENFEAT_hvm_callback_vector: u32 = 8;
/// `XENFEAT_hvm_safe_pvclock`.
pub const XENFEAT_hvm_safe_pvclock: u32 = 9;
/// `XENFEAT_hvm_pirqs`.
pub const XENFEAT_hvm_pirqs: u32 = 10;
/// `XENFEAT_dom0`: operation as dom0 supported.
pub const XENFEAT_dom0: u32 = 11;
/// `XENFEAT_grant_map_identity`: deprecated, commented out in the header; reserved.
pub const XENFEAT_grant_map_identity: u32 = 12;
/// `XENFEAT_memory_op_vnode_supported`.
pub const XENFEAT_memory_op_vnode_supported: u32 = 13;
/// `XENFEAT_ARM_SMCCC_supported`.
pub const XENFEAT_ARM_SMCCC_supported: u32 = 14;
/// `XENFEAT_linux_rsdp_unrestricted`: PVH RSDP may be above 1 MiB.
pub const XENFEAT_linux_rsdp_unrestricted: u32 = 15;
/// `XENFEAT_not_direct_mapped`.
pub const XENFEAT_not_direct_mapped: u32 = 16;
/// `XENFEAT_direct_mapped`.
pub const XENFEAT_direct_mapped: u32 = 17;
/// `XENFEAT_runstate_phys_area`: Xen 4.18+, not part of the 4.17 ABI.
pub const XENFEAT_runstate_phys_area: u32 = 18;
/// `XENFEAT_vcpu_time_phys_area`: Xen 4.18+, not part of the 4.17 ABI.
pub const XENFEAT_vcpu_time_phys_area: u32 = 19;
/// `XENFEAT_dm_msix_all_writes`: Xen 4.19+, not part of the 4.17 ABI.
pub const XENFEAT_dm_msix_all_writes: u32 = 20;

/// `XENFEAT_NR_SUBMAPS`.
pub const XENFEAT_NR_SUBMAPS: u32 = 1;

/// Names as used in `XEN_ELFNOTE_FEATURES` strings (without `XENFEAT_`),
/// indexed by bit number; `None` for unassigned bits.
pub const XENFEAT_NAMES: [Option<&str>; 21] = [
    Some("writable_page_tables"),
    Some("writable_descriptor_tables"),
    Some("auto_translated_physmap"),
    Some("supervisor_mode_kernel"),
    Some("pae_pgdir_above_4gb"),
    Some("mmu_pt_update_preserve_ad"),
    Some("highmem_assist"),
    Some("gnttab_map_avail_bits"),
    Some("hvm_callback_vector"),
    Some("hvm_safe_pvclock"),
    Some("hvm_pirqs"),
    Some("dom0"),
    None,
    Some("memory_op_vnode_supported"),
    Some("ARM_SMCCC_supported"),
    Some("linux_rsdp_unrestricted"),
    Some("not_direct_mapped"),
    Some("direct_mapped"),
    Some("runstate_phys_area"),
    Some("vcpu_time_phys_area"),
    Some("dm_msix_all_writes"),
];

/// Bit number for a feature name from an ELF-note feature string.
pub fn xenfeat_by_name(name: &str) -> Option<u32> {
    XENFEAT_NAMES
        .iter()
        .position(|n| *n == Some(name))
        .map(|i| i as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(xenfeat_by_name("dom0"), Some(XENFEAT_dom0));
        assert_eq!(
            xenfeat_by_name("direct_mapped"),
            Some(XENFEAT_direct_mapped)
        );
        assert_eq!(xenfeat_by_name("grant_map_identity"), None);
        assert_eq!(
            XENFEAT_NAMES[XENFEAT_writable_page_tables as usize],
            Some("writable_page_tables")
        );
    }
}
