//! The Xen interface version Xenolith reports (`xen_version`).

/// Major version reported by XENVER_version: Xenolith speaks the Xen 4.17 ABI.
pub const XEN_MAJOR: u32 = 4;
/// Minor version reported by XENVER_version.
pub const XEN_MINOR: u32 = 17;
/// `__XEN_INTERFACE_VERSION__` of Xen 4.17 (`xen/include/public/xen-compat.h`).
pub const XEN_INTERFACE_VERSION: u32 = 0x0004_0011;
