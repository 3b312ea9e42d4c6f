//! Version information: `version.h` (`HYPERVISOR_xen_version`) plus the
//! interface version of `xen-compat.h`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Major version reported by XENVER_version: Xenolith speaks the Xen 4.17 ABI.
pub const XEN_MAJOR: u32 = 4;
/// Minor version reported by XENVER_version.
pub const XEN_MINOR: u32 = 17;
/// `XENVER_version`'s return value: `major << 16 | minor`.
pub const XEN_VERSION_WORD: u32 = (XEN_MAJOR << 16) | XEN_MINOR;

/// `__XEN_LATEST_INTERFACE_VERSION__` of Xen 4.17 (`xen-compat.h`). Not the
/// release number: it was last bumped to 0x00040e00 for Xen 4.14.
pub const XEN_LATEST_INTERFACE_VERSION: u32 = 0x0004_0e00;
/// `__XEN_INTERFACE_VERSION__` the structures in this crate are written for:
/// the latest one, as Xen itself is built.
pub const XEN_INTERFACE_VERSION: u32 = XEN_LATEST_INTERFACE_VERSION;

/// `XENVER_version`: arg NULL, returns major:minor (16:16).
pub const XENVER_version: u32 = 0;
/// `XENVER_extraversion`: arg is `xen_extraversion_t`.
pub const XENVER_extraversion: u32 = 1;
/// `XENVER_compile_info`: arg is `xen_compile_info_t`.
pub const XENVER_compile_info: u32 = 2;
/// `XENVER_capabilities`: arg is `xen_capabilities_info_t`.
pub const XENVER_capabilities: u32 = 3;
/// `XENVER_changeset`: arg is `xen_changeset_info_t`.
pub const XENVER_changeset: u32 = 4;
/// `XENVER_platform_parameters`: arg is `xen_platform_parameters_t`.
pub const XENVER_platform_parameters: u32 = 5;
/// `XENVER_get_features`: arg is `xen_feature_info_t`.
pub const XENVER_get_features: u32 = 6;
/// `XENVER_pagesize`: arg NULL, returns the host page size.
pub const XENVER_pagesize: u32 = 7;
/// `XENVER_guest_handle`: arg is `xen_domain_handle_t`.
pub const XENVER_guest_handle: u32 = 8;
/// `XENVER_commandline`: arg is `xen_commandline_t`.
pub const XENVER_commandline: u32 = 9;
/// `XENVER_build_id`: arg is `xen_build_id_t`; returns bytes written.
pub const XENVER_build_id: u32 = 10;

/// `XEN_EXTRAVERSION_LEN`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// `XEN_CAPABILITIES_INFO_LEN`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// `XEN_CHANGESET_INFO_LEN`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// Size of `xen_commandline_t`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// `xen_extraversion_t` (`char[16]`).
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];
/// `xen_capabilities_info_t` (`char[1024]`).
pub type XenCapabilitiesInfo = [u8; XEN_CAPABILITIES_INFO_LEN];
/// `xen_changeset_info_t` (`char[64]`).
pub type XenChangesetInfo = [u8; XEN_CHANGESET_INFO_LEN];
/// `xen_commandline_t` (`char[1024]`).
pub type XenCommandline = [u8; XEN_COMMANDLINE_LEN];

/// `struct xen_compile_info` / `xen_compile_info_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenCompileInfo {
    /// Compiler string.
    pub compiler: [u8; 64],
    /// Builder.
    pub compile_by: [u8; 16],
    /// Build domain.
    pub compile_domain: [u8; 32],
    /// Build date.
    pub compile_date: [u8; 32],
}
assert_layout!(XenCompileInfo, 144, compiler @ 0, compile_by @ 64, compile_domain @ 80,
    compile_date @ 112);

/// `struct xen_platform_parameters` / `xen_platform_parameters_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenPlatformParameters {
    /// Start of the hypervisor virtual-address hole.
    pub virt_start: u64,
}
assert_layout!(XenPlatformParameters, 8, virt_start @ 0);

/// `struct xen_feature_info` / `xen_feature_info_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenFeatureInfo {
    /// IN: which 32-bit submap.
    pub submap_idx: u32,
    /// OUT: the submap (`XENFEAT_*` bits).
    pub submap: u32,
}
assert_layout!(XenFeatureInfo, 8, submap_idx @ 0, submap @ 4);

/// `struct xen_build_id` header: `uint32_t len` followed by `buf[]`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenBuildIdHeader {
    /// IN: size of the buffer that follows.
    pub len: u32,
}
assert_layout!(XenBuildIdHeader, 4, len @ 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_word() {
        assert_eq!(XEN_VERSION_WORD, 0x0004_0011);
        assert_eq!(XEN_VERSION_WORD >> 16, XEN_MAJOR);
    }
}
