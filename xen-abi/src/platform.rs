//! Platform operations for the hardware domain: `platform.h` (basics of
//! `HYPERVISOR_platform_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XENPF_INTERFACE_VERSION`: must be in every `xen_platform_op`.
pub const XENPF_INTERFACE_VERSION: u32 = 0x0300_0001;

/// `XENPF_settime32`.
pub const XENPF_settime32: u32 = 17;
/// `XENPF_add_memtype`.
pub const XENPF_add_memtype: u32 = 31;
/// `XENPF_del_memtype`.
pub const XENPF_del_memtype: u32 = 32;
/// `XENPF_read_memtype`.
pub const XENPF_read_memtype: u32 = 33;
/// `XENPF_microcode_update`.
pub const XENPF_microcode_update: u32 = 35;
/// `XENPF_platform_quirk`.
pub const XENPF_platform_quirk: u32 = 39;
/// `XENPF_get_cpu_version`.
pub const XENPF_get_cpu_version: u32 = 48;
/// `XENPF_efi_runtime_call`.
pub const XENPF_efi_runtime_call: u32 = 49;
/// `XENPF_firmware_info`.
pub const XENPF_firmware_info: u32 = 50;
/// `XENPF_enter_acpi_sleep`.
pub const XENPF_enter_acpi_sleep: u32 = 51;
/// `XENPF_change_freq`.
pub const XENPF_change_freq: u32 = 52;
/// `XENPF_getidletime`.
pub const XENPF_getidletime: u32 = 53;
/// `XENPF_set_processor_pminfo`.
pub const XENPF_set_processor_pminfo: u32 = 54;
/// `XENPF_get_cpuinfo`.
pub const XENPF_get_cpuinfo: u32 = 55;
/// `XENPF_cpu_online`.
pub const XENPF_cpu_online: u32 = 56;
/// `XENPF_cpu_offline`.
pub const XENPF_cpu_offline: u32 = 57;
/// `XENPF_cpu_hotadd`.
pub const XENPF_cpu_hotadd: u32 = 58;
/// `XENPF_mem_hotadd`.
pub const XENPF_mem_hotadd: u32 = 59;
/// `XENPF_core_parking`.
pub const XENPF_core_parking: u32 = 60;
/// `XENPF_resource_op`.
pub const XENPF_resource_op: u32 = 61;
/// `XENPF_settime64`.
pub const XENPF_settime64: u32 = 62;
/// `XENPF_get_symbol`.
pub const XENPF_get_symbol: u32 = 63;
/// `XENPF_settime` for interface >= 0x00040600.
pub const XENPF_settime: u32 = XENPF_settime64;

/// `XEN_PCPU_FLAGS_ONLINE`.
pub const XEN_PCPU_FLAGS_ONLINE: u32 = 1;
/// `XEN_PCPU_FLAGS_INVALID`: the queried `xen_cpuid` is not present.
pub const XEN_PCPU_FLAGS_INVALID: u32 = 2;
/// `XENPF_ACPI_SLEEP_EXTENDED`.
pub const XENPF_ACPI_SLEEP_EXTENDED: u32 = 0x0000_0001;

/// `struct xenpf_settime32` / `xenpf_settime32_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfSettime32 {
    /// IN.
    pub secs: u32,
    /// IN.
    pub nsecs: u32,
    /// IN.
    pub system_time: u64,
}
assert_layout!(XenpfSettime32, 16, secs @ 0, nsecs @ 4, system_time @ 8);

/// `struct xenpf_settime64` / `xenpf_settime64_t` (`xenpf_settime_t`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfSettime64 {
    /// IN.
    pub secs: u64,
    /// IN.
    pub nsecs: u32,
    /// Must be zero.
    pub mbz: u32,
    /// IN.
    pub system_time: u64,
}
assert_layout!(XenpfSettime64, 24, secs @ 0, nsecs @ 8, mbz @ 12, system_time @ 16);

/// `struct xenpf_enter_acpi_sleep` / `xenpf_enter_acpi_sleep_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfEnterAcpiSleep {
    /// PM1a control / sleep type A.
    pub val_a: u16,
    /// PM1b control / sleep type B.
    pub val_b: u16,
    /// Sn state to enter.
    pub sleep_state: u32,
    /// `XENPF_ACPI_SLEEP_*`.
    pub flags: u32,
}
assert_layout!(XenpfEnterAcpiSleep, 12, val_a @ 0, val_b @ 2, sleep_state @ 4, flags @ 8);

/// `struct xenpf_pcpuinfo` / `xenpf_pcpuinfo_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfPcpuinfo {
    /// IN.
    pub xen_cpuid: u32,
    /// OUT: highest present CPU id.
    pub max_present: u32,
    /// OUT: `XEN_PCPU_FLAGS_*`.
    pub flags: u32,
    /// OUT.
    pub apic_id: u32,
    /// OUT.
    pub acpi_id: u32,
}
assert_layout!(XenpfPcpuinfo, 20, xen_cpuid @ 0, max_present @ 4, flags @ 8, apic_id @ 12,
    acpi_id @ 16);

/// `struct xenpf_pcpu_version` / `xenpf_pcpu_version_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfPcpuVersion {
    /// IN.
    pub xen_cpuid: u32,
    /// OUT.
    pub max_present: u32,
    /// OUT: CPUID vendor string.
    pub vendor_id: [u8; 12],
    /// OUT.
    pub family: u32,
    /// OUT.
    pub model: u32,
    /// OUT.
    pub stepping: u32,
}
assert_layout!(XenpfPcpuVersion, 32, xen_cpuid @ 0, max_present @ 4, vendor_id @ 8,
    family @ 20, model @ 24, stepping @ 28);

/// `struct xenpf_cpu_ol` / `xenpf_cpu_ol_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenpfCpuOl {
    /// Physical CPU.
    pub cpuid: u32,
}
assert_layout!(XenpfCpuOl, 4, cpuid @ 0);

/// `struct xen_platform_op` / `xen_platform_op_t`. The union `u` is 128 raw
/// bytes (its `pad[128]` member sets the size; members are 8-aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenPlatformOp {
    /// `XENPF_*`.
    pub cmd: u32,
    /// [`XENPF_INTERFACE_VERSION`].
    pub interface_version: u32,
    /// The op-specific union, raw (use `zerocopy` to view it as a `Xenpf*`).
    pub u: [u64; 16],
}
assert_layout!(XenPlatformOp, 136, cmd @ 0, interface_version @ 4, u @ 8);

impl XenPlatformOp {
    /// An op with `u` holding `arg` (rest zero).
    pub fn new<T: IntoBytes + Immutable>(cmd: u32, arg: &T) -> Self {
        let mut op = Self {
            cmd,
            interface_version: XENPF_INTERFACE_VERSION,
            u: [0; 16],
        };
        let b = arg.as_bytes();
        op.u.as_mut_bytes()[..b.len()].copy_from_slice(b);
        op
    }

    /// Read `u` as a particular member (a copy).
    pub fn arg<T: FromBytes>(&self) -> Option<T> {
        T::read_from_prefix(self.u.as_bytes()).ok().map(|(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_union() {
        let st = XenpfSettime64 {
            secs: 1,
            nsecs: 2,
            mbz: 0,
            system_time: 3,
        };
        let op = XenPlatformOp::new(XENPF_settime64, &st);
        assert_eq!(op.interface_version, XENPF_INTERFACE_VERSION);
        assert_eq!(op.arg::<XenpfSettime64>(), Some(st));
        assert_eq!(&op.as_bytes()[8..16], &1u64.to_ne_bytes());
    }
}
