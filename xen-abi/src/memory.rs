//! Memory reservation and information: `memory.h` (`HYPERVISOR_memory_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::arch_x86::{XenPfn, XenUlong};
use crate::xen::{DomId, GuestHandle};

/// `XENMEM_increase_reservation`: arg is a `xen_memory_reservation`.
pub const XENMEM_increase_reservation: u32 = 0;
/// `XENMEM_decrease_reservation`.
pub const XENMEM_decrease_reservation: u32 = 1;
/// `XENMEM_maximum_ram_page`: arg NULL, never fails.
pub const XENMEM_maximum_ram_page: u32 = 2;
/// `XENMEM_current_reservation`: arg is a `domid_t`.
pub const XENMEM_current_reservation: u32 = 3;
/// `XENMEM_maximum_reservation`: arg is a `domid_t`.
pub const XENMEM_maximum_reservation: u32 = 4;
/// `XENMEM_machphys_mfn_list`: arg is a `xen_machphys_mfn_list`.
pub const XENMEM_machphys_mfn_list: u32 = 5;
/// `XENMEM_populate_physmap`.
pub const XENMEM_populate_physmap: u32 = 6;
/// `XENMEM_add_to_physmap`: arg is a `xen_add_to_physmap`.
pub const XENMEM_add_to_physmap: u32 = 7;
/// `XENMEM_memory_map`: arg is a `xen_memory_map` (pseudo-physical E820).
pub const XENMEM_memory_map: u32 = 9;
/// `XENMEM_machine_memory_map`: host E820 (privileged).
pub const XENMEM_machine_memory_map: u32 = 10;
/// `XENMEM_exchange`: arg is a `xen_memory_exchange` (PV only).
pub const XENMEM_exchange: u32 = 11;
/// `XENMEM_machphys_mapping`: arg is a `xen_machphys_mapping`.
pub const XENMEM_machphys_mapping: u32 = 12;
/// `XENMEM_set_memory_map`: arg is a `xen_foreign_memory_map`.
pub const XENMEM_set_memory_map: u32 = 13;
/// `XENMEM_maximum_gpfn`: arg is a `domid_t`.
pub const XENMEM_maximum_gpfn: u32 = 14;
/// `XENMEM_remove_from_physmap`: arg is a `xen_remove_from_physmap`.
pub const XENMEM_remove_from_physmap: u32 = 15;
/// `XENMEM_set_pod_target`.
pub const XENMEM_set_pod_target: u32 = 16;
/// `XENMEM_get_pod_target`.
pub const XENMEM_get_pod_target: u32 = 17;
/// `XENMEM_get_sharing_freed_pages` (tools).
pub const XENMEM_get_sharing_freed_pages: u32 = 18;
/// `XENMEM_get_sharing_shared_pages` (tools).
pub const XENMEM_get_sharing_shared_pages: u32 = 19;
/// `XENMEM_paging_op` (tools).
pub const XENMEM_paging_op: u32 = 20;
/// `XENMEM_access_op` (tools).
pub const XENMEM_access_op: u32 = 21;
/// `XENMEM_sharing_op` (tools).
pub const XENMEM_sharing_op: u32 = 22;
/// `XENMEM_add_to_physmap_batch`: arg is a `xen_add_to_physmap_batch`.
pub const XENMEM_add_to_physmap_batch: u32 = 23;
/// `XENMEM_claim_pages` (privileged).
pub const XENMEM_claim_pages: u32 = 24;
/// `XENMEM_machphys_compat_mfn_list`.
pub const XENMEM_machphys_compat_mfn_list: u32 = 25;
/// `XENMEM_get_vnumainfo`: arg is a `xen_vnuma_topology_info`.
pub const XENMEM_get_vnumainfo: u32 = 26;
/// `XENMEM_reserved_device_memory_map` (tools).
pub const XENMEM_reserved_device_memory_map: u32 = 27;
/// `XENMEM_acquire_resource`: arg is a `xen_mem_acquire_resource`.
pub const XENMEM_acquire_resource: u32 = 28;

/// `XENMEMF_address_bits(x)`: restrict allocations to `x` address bits.
pub const fn xenmemf_address_bits(bits: u32) -> u32 {
    bits
}
/// `XENMEMF_get_address_bits(x)`.
pub const fn xenmemf_get_address_bits(flags: u32) -> u32 {
    flags & 0xff
}
/// `XENMEMF_node(x)`: allocate from NUMA node `x`.
pub const fn xenmemf_node(node: u32) -> u32 {
    (node + 1) << 8
}
/// `XENMEMF_get_node(x)`.
pub const fn xenmemf_get_node(flags: u32) -> u32 {
    ((flags >> 8).wrapping_sub(1)) & 0xff
}
/// `XENMEMF_populate_on_demand`.
pub const XENMEMF_populate_on_demand: u32 = 1 << 16;
/// `XENMEMF_exact_node_request`.
pub const XENMEMF_exact_node_request: u32 = 1 << 17;
/// `XENMEMF_exact_node(n)`.
pub const fn xenmemf_exact_node(node: u32) -> u32 {
    xenmemf_node(node) | XENMEMF_exact_node_request
}
/// `XENMEMF_vnode`: the node is a virtual node.
pub const XENMEMF_vnode: u32 = 1 << 18;

/// `struct xen_memory_reservation` / `xen_memory_reservation_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryReservation {
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`: extent bases (IN and/or OUT).
    pub extent_start: GuestHandle,
    /// Number of extents.
    pub nr_extents: XenUlong,
    /// Each extent is 2^extent_order pages.
    pub extent_order: u32,
    /// `XENMEMF_*`.
    pub mem_flags: u32,
    /// Target domain (DOMID_SELF unless privileged).
    pub domid: DomId,
    /// Tail padding.
    pub _pad0: [u16; 3],
}
assert_layout!(XenMemoryReservation, 32, extent_start @ 0, nr_extents @ 8, extent_order @ 16,
    mem_flags @ 20, domid @ 24);

/// `struct xen_memory_exchange` / `xen_memory_exchange_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryExchange {
    /// IN: extents to give up.
    pub in_: XenMemoryReservation,
    /// IN/OUT: new extents.
    pub out: XenMemoryReservation,
    /// OUT: extents exchanged (must be 0 on entry).
    pub nr_exchanged: XenUlong,
}
assert_layout!(XenMemoryExchange, 72, in_ @ 0, out @ 32, nr_exchanged @ 64);

/// `struct xen_memory_domain`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryDomain {
    /// Domain queried.
    pub domid: DomId,
}
assert_layout!(XenMemoryDomain, 2, domid @ 0);

/// `struct xen_machphys_mfn_list` / `xen_machphys_mfn_list_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMachphysMfnList {
    /// IN: capacity of `extent_start`.
    pub max_extents: u32,
    /// Explicit padding.
    pub _pad0: u32,
    /// `XEN_GUEST_HANDLE(xen_pfn_t)`: 2 MiB M2P extent MFNs.
    pub extent_start: GuestHandle,
    /// OUT.
    pub nr_extents: u32,
    /// Tail padding.
    pub _pad1: u32,
}
assert_layout!(XenMachphysMfnList, 24, max_extents @ 0, extent_start @ 8, nr_extents @ 16);

/// `struct xen_machphys_mapping` / `xen_machphys_mapping_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMachphysMapping {
    /// Start of the M2P window.
    pub v_start: XenUlong,
    /// End of the M2P window.
    pub v_end: XenUlong,
    /// Highest MFN that can be looked up.
    pub max_mfn: XenUlong,
}
assert_layout!(XenMachphysMapping, 24, v_start @ 0, v_end @ 8, max_mfn @ 16);

/// `XENMAPSPACE_shared_info`.
pub const XENMAPSPACE_shared_info: u32 = 0;
/// `XENMAPSPACE_grant_table`.
pub const XENMAPSPACE_grant_table: u32 = 1;
/// `XENMAPSPACE_gmfn`.
pub const XENMAPSPACE_gmfn: u32 = 2;
/// `XENMAPSPACE_gmfn_range`: `XENMEM_add_to_physmap` only.
pub const XENMAPSPACE_gmfn_range: u32 = 3;
/// `XENMAPSPACE_gmfn_foreign`: `XENMEM_add_to_physmap_batch` only.
pub const XENMAPSPACE_gmfn_foreign: u32 = 4;
/// `XENMAPSPACE_dev_mmio`: Arm only.
pub const XENMAPSPACE_dev_mmio: u32 = 5;

/// `XENMAPIDX_grant_table_status`: `idx` flag selecting v2 status frames.
pub const XENMAPIDX_grant_table_status: u64 = 0x8000_0000;

/// `struct xen_add_to_physmap` / `xen_add_to_physmap_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenAddToPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// Pages for `XENMAPSPACE_gmfn_range`.
    pub size: u16,
    /// `XENMAPSPACE_*`.
    pub space: u32,
    /// Index into the space.
    pub idx: XenUlong,
    /// GPFN where the page appears.
    pub gpfn: XenPfn,
}
assert_layout!(XenAddToPhysmap, 24, domid @ 0, size @ 2, space @ 4, idx @ 8, gpfn @ 16);

/// `struct xen_add_to_physmap_batch` / `xen_add_to_physmap_batch_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenAddToPhysmapBatch {
    /// IN.
    pub domid: DomId,
    /// IN: `XENMAPSPACE_*`.
    pub space: u16,
    /// IN: number of pages.
    pub size: u16,
    /// IN: `u.foreign_domid` (gmfn_foreign) / `u.res0` (0 otherwise).
    pub foreign_domid: DomId,
    /// IN: `XEN_GUEST_HANDLE(xen_ulong_t)` indexes.
    pub idxs: GuestHandle,
    /// IN: `XEN_GUEST_HANDLE(xen_pfn_t)` target GPFNs.
    pub gpfns: GuestHandle,
    /// OUT: `XEN_GUEST_HANDLE(int)` per-index errors.
    pub errs: GuestHandle,
}
assert_layout!(XenAddToPhysmapBatch, 32, domid @ 0, space @ 2, size @ 4, foreign_domid @ 6,
    idxs @ 8, gpfns @ 16, errs @ 24);

/// `struct xen_remove_from_physmap` / `xen_remove_from_physmap_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenRemoveFromPhysmap {
    /// Domain whose physmap changes.
    pub domid: DomId,
    /// Explicit padding.
    pub _pad0: [u16; 3],
    /// GPFN to unmap.
    pub gpfn: XenPfn,
}
assert_layout!(XenRemoveFromPhysmap, 16, domid @ 0, gpfn @ 8);

/// `struct xen_memory_map` / `xen_memory_map_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemoryMap {
    /// IN: capacity in entries; OUT: entries stored.
    pub nr_entries: u32,
    /// Explicit padding.
    pub _pad0: u32,
    /// `XEN_GUEST_HANDLE(void)`: array of [`E820Entry`].
    pub buffer: GuestHandle,
}
assert_layout!(XenMemoryMap, 16, nr_entries @ 0, buffer @ 8);

/// One entry of the `XENMEM_memory_map` buffer: the BIOS INT 15h/E820 format,
/// 20 bytes packed (what Linux's `struct e820_entry` and Xen's `e820entry` are).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    FromBytes,
    IntoBytes,
    Immutable,
    KnownLayout,
    Unaligned,
)]
#[repr(C, packed)]
pub struct E820Entry {
    /// Base address.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_*` type.
    pub type_: u32,
}
assert_layout!(E820Entry, 20, addr @ 0, size @ 8, type_ @ 16);

/// E820 type: usable RAM (ACPI address range type 1, as `XEN_HVM_MEMMAP_TYPE_RAM`).
pub const E820_RAM: u32 = crate::hvm_start_info::XEN_HVM_MEMMAP_TYPE_RAM;
/// E820 type: reserved (ACPI type 2).
pub const E820_RESERVED: u32 = crate::hvm_start_info::XEN_HVM_MEMMAP_TYPE_RESERVED;
/// E820 type: ACPI reclaimable (ACPI type 3).
pub const E820_ACPI: u32 = crate::hvm_start_info::XEN_HVM_MEMMAP_TYPE_ACPI;
/// E820 type: ACPI NVS (ACPI type 4).
pub const E820_NVS: u32 = crate::hvm_start_info::XEN_HVM_MEMMAP_TYPE_NVS;
/// E820 type: unusable (ACPI type 5).
pub const E820_UNUSABLE: u32 = crate::hvm_start_info::XEN_HVM_MEMMAP_TYPE_UNUSABLE;

/// `struct xen_foreign_memory_map` / `xen_foreign_memory_map_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenForeignMemoryMap {
    /// Target domain.
    pub domid: DomId,
    /// Explicit padding.
    pub _pad0: [u16; 3],
    /// The map.
    pub map: XenMemoryMap,
}
assert_layout!(XenForeignMemoryMap, 24, domid @ 0, map @ 8);

/// `struct xen_pod_target` / `xen_pod_target_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenPodTarget {
    /// IN.
    pub target_pages: u64,
    /// OUT.
    pub tot_pages: u64,
    /// OUT.
    pub pod_cache_pages: u64,
    /// OUT.
    pub pod_entries: u64,
    /// IN.
    pub domid: DomId,
    /// Tail padding.
    pub _pad0: [u16; 3],
}
assert_layout!(XenPodTarget, 40, target_pages @ 0, tot_pages @ 8, pod_cache_pages @ 16,
    pod_entries @ 24, domid @ 32);

/// `XENMEM_resource_ioreq_server`.
pub const XENMEM_resource_ioreq_server: u16 = 0;
/// `XENMEM_resource_grant_table`.
pub const XENMEM_resource_grant_table: u16 = 1;
/// `XENMEM_resource_vmtrace_buf`.
pub const XENMEM_resource_vmtrace_buf: u16 = 2;
/// `XENMEM_resource_grant_table_id_shared`.
pub const XENMEM_resource_grant_table_id_shared: u32 = 0;
/// `XENMEM_resource_grant_table_id_status`.
pub const XENMEM_resource_grant_table_id_status: u32 = 1;
/// `XENMEM_resource_ioreq_server_frame_bufioreq`.
pub const XENMEM_resource_ioreq_server_frame_bufioreq: u64 = 0;
/// `XENMEM_resource_ioreq_server_frame_ioreq(n)`.
pub const fn xenmem_resource_ioreq_server_frame_ioreq(n: u64) -> u64 {
    1 + n
}

/// `struct xen_mem_acquire_resource` / `xen_mem_acquire_resource_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMemAcquireResource {
    /// IN: owning domain.
    pub domid: DomId,
    /// IN: `XENMEM_resource_*`.
    pub type_: u16,
    /// IN: type-specific id.
    pub id: u32,
    /// IN/OUT: frames to map (0 with NULL list: query size).
    pub nr_frames: u32,
    /// Must be zero.
    pub pad: u32,
    /// IN: first frame index.
    pub frame: u64,
    /// IN/OUT: `XEN_GUEST_HANDLE(xen_pfn_t)`.
    pub frame_list: GuestHandle,
}
assert_layout!(XenMemAcquireResource, 32, domid @ 0, type_ @ 2, id @ 4, nr_frames @ 8,
    pad @ 12, frame @ 16, frame_list @ 24);

/// `struct xen_vmemrange` / `xen_vmemrange_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenVmemrange {
    /// Start address.
    pub start: u64,
    /// End address.
    pub end: u64,
    /// Flags.
    pub flags: u32,
    /// Virtual node id.
    pub nid: u32,
}
assert_layout!(XenVmemrange, 24, start @ 0, end @ 8, flags @ 16, nid @ 20);

/// `struct xen_vnuma_topology_info` / `xen_vnuma_topology_info_t`. The three
/// handle unions (`h` / `uint64_t pad`) are 8 bytes each.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenVnumaTopologyInfo {
    /// IN.
    pub domid: DomId,
    /// Padding.
    pub pad: u16,
    /// IN/OUT.
    pub nr_vnodes: u32,
    /// IN/OUT.
    pub nr_vcpus: u32,
    /// IN/OUT.
    pub nr_vmemranges: u32,
    /// OUT: `XEN_GUEST_HANDLE(uint)` distance table.
    pub vdistance: GuestHandle,
    /// OUT: `XEN_GUEST_HANDLE(uint)` vCPU-to-vnode map.
    pub vcpu_to_vnode: GuestHandle,
    /// OUT: `XEN_GUEST_HANDLE(xen_vmemrange_t)`.
    pub vmemrange: GuestHandle,
}
assert_layout!(XenVnumaTopologyInfo, 40, domid @ 0, nr_vnodes @ 4, nr_vcpus @ 8,
    nr_vmemranges @ 12, vdistance @ 16, vcpu_to_vnode @ 24, vmemrange @ 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memflags() {
        assert_eq!(xenmemf_node(0), 0x100);
        assert_eq!(xenmemf_get_node(xenmemf_node(3)), 3);
        assert_eq!(
            xenmemf_get_address_bits(xenmemf_address_bits(32) | XENMEMF_vnode),
            32
        );
        assert_eq!(xenmemf_exact_node(1), 0x200 | (1 << 17));
    }

    #[test]
    fn e820_is_packed() {
        let e = E820Entry {
            addr: 0x1000,
            size: 0x2000,
            type_: E820_RAM,
        };
        let b = e.as_bytes();
        assert_eq!(&b[16..20], &1u32.to_ne_bytes());
        let arr = [e, e];
        assert_eq!(arr.as_bytes().len(), 40);
    }
}
