//! vCPU operations: `vcpu.h` (`HYPERVISOR_vcpu_op(cmd, vcpuid, arg)`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::xen::GuestHandle;

/// `VCPUOP_initialise`: arg is a `vcpu_guest_context` (PV).
pub const VCPUOP_initialise: u32 = 0;
/// `VCPUOP_up`.
pub const VCPUOP_up: u32 = 1;
/// `VCPUOP_down`.
pub const VCPUOP_down: u32 = 2;
/// `VCPUOP_is_up`: returns 1 if up.
pub const VCPUOP_is_up: u32 = 3;
/// `VCPUOP_get_runstate_info`: arg is a `vcpu_runstate_info`.
pub const VCPUOP_get_runstate_info: u32 = 4;
/// `VCPUOP_register_runstate_memory_area`.
pub const VCPUOP_register_runstate_memory_area: u32 = 5;
/// `VCPUOP_set_periodic_timer`: arg is a `vcpu_set_periodic_timer`.
pub const VCPUOP_set_periodic_timer: u32 = 6;
/// `VCPUOP_stop_periodic_timer`.
pub const VCPUOP_stop_periodic_timer: u32 = 7;
/// `VCPUOP_set_singleshot_timer`: arg is a `vcpu_set_singleshot_timer`.
pub const VCPUOP_set_singleshot_timer: u32 = 8;
/// `VCPUOP_stop_singleshot_timer`.
pub const VCPUOP_stop_singleshot_timer: u32 = 9;
/// `VCPUOP_register_vcpu_info`: arg is a `vcpu_register_vcpu_info`.
pub const VCPUOP_register_vcpu_info: u32 = 10;
/// `VCPUOP_send_nmi`.
pub const VCPUOP_send_nmi: u32 = 11;
/// `VCPUOP_get_physid`: arg is a `vcpu_get_physid`.
pub const VCPUOP_get_physid: u32 = 12;
/// `VCPUOP_register_vcpu_time_memory_area`.
pub const VCPUOP_register_vcpu_time_memory_area: u32 = 13;
/// `VCPUOP_register_runstate_phys_area`: added in Xen 4.18, not part of 4.17.
pub const VCPUOP_register_runstate_phys_area: u32 = 14;
/// `VCPUOP_register_vcpu_time_phys_area`: added in Xen 4.18, not part of 4.17.
pub const VCPUOP_register_vcpu_time_phys_area: u32 = 15;

/// `RUNSTATE_running`.
pub const RUNSTATE_running: i32 = 0;
/// `RUNSTATE_runnable`.
pub const RUNSTATE_runnable: i32 = 1;
/// `RUNSTATE_blocked`.
pub const RUNSTATE_blocked: i32 = 2;
/// `RUNSTATE_offline`.
pub const RUNSTATE_offline: i32 = 3;

/// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while Xen updates a
/// guest-mapped copy (with `VMASST_TYPE_runstate_update_flag`).
pub const XEN_RUNSTATE_UPDATE: u64 = 1 << 63;

/// `struct vcpu_runstate_info` / `vcpu_runstate_info_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRunstateInfo {
    /// `RUNSTATE_*`.
    pub state: i32,
    /// Explicit padding.
    pub _pad0: u32,
    /// System time the current state was entered.
    pub state_entry_time: u64,
    /// Nanoseconds spent in each state.
    pub time: [u64; 4],
}
assert_layout!(VcpuRunstateInfo, 48, state @ 0, state_entry_time @ 8, time @ 16);

/// `struct vcpu_register_runstate_memory_area`: `addr` is
/// `union { XEN_GUEST_HANDLE(vcpu_runstate_info_t) h; struct vcpu_runstate_info *v; uint64_t p; }`,
/// all the same 8 bytes on x86_64.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// Guest virtual address of the area.
    pub addr: GuestHandle,
}
assert_layout!(VcpuRegisterRunstateMemoryArea, 8, addr @ 0);

/// `struct vcpu_set_periodic_timer` / `vcpu_set_periodic_timer_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuSetPeriodicTimer {
    /// Period in ns.
    pub period_ns: u64,
}
assert_layout!(VcpuSetPeriodicTimer, 8, period_ns @ 0);

/// `_VCPU_SSHOTTMR_future`.
pub const _VCPU_SSHOTTMR_future: u32 = 0;
/// `VCPU_SSHOTTMR_future`: fail with -ETIME if the timeout already passed.
pub const VCPU_SSHOTTMR_future: u32 = 1 << _VCPU_SSHOTTMR_future;

/// `struct vcpu_set_singleshot_timer` / `vcpu_set_singleshot_timer_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    /// `VCPU_SSHOTTMR_*`.
    pub flags: u32,
    /// Tail padding.
    pub _pad0: u32,
}
assert_layout!(VcpuSetSingleshotTimer, 16, timeout_abs_ns @ 0, flags @ 8);

/// `struct vcpu_register_vcpu_info` / `vcpu_register_vcpu_info_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRegisterVcpuInfo {
    /// Frame (MFN for PV, GFN for HVM) holding the `vcpu_info`.
    pub mfn: u64,
    /// Offset within that page (must not cross the page).
    pub offset: u32,
    /// Unused.
    pub rsvd: u32,
}
assert_layout!(VcpuRegisterVcpuInfo, 16, mfn @ 0, offset @ 8, rsvd @ 12);

/// `struct vcpu_get_physid` / `vcpu_get_physid_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuGetPhysid {
    /// x86: `[31:0]` APIC id, `[63:32]` ACPI id.
    pub phys_id: u64,
}
assert_layout!(VcpuGetPhysid, 8, phys_id @ 0);

impl VcpuGetPhysid {
    /// `xen_vcpu_physid_to_x86_apicid`.
    pub const fn x86_apicid(&self) -> u32 {
        self.phys_id as u32
    }

    /// `xen_vcpu_physid_to_x86_acpiid`.
    pub const fn x86_acpiid(&self) -> u32 {
        (self.phys_id >> 32) as u32
    }
}

/// `struct vcpu_register_time_memory_area`: `addr` is a union of handle,
/// pointer and `uint64_t p`, all 8 bytes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuRegisterTimeMemoryArea {
    /// Guest virtual address of the secondary `vcpu_time_info`.
    pub addr: GuestHandle,
}
assert_layout!(VcpuRegisterTimeMemoryArea, 8, addr @ 0);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn physid_split() {
        let p = VcpuGetPhysid {
            phys_id: (7 << 32) | 3,
        };
        assert_eq!((p.x86_apicid(), p.x86_acpiid()), (3, 7));
    }
}
