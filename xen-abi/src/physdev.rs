//! Physical device operations: `physdev.h` (`HYPERVISOR_physdev_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86::XenPfn;
use crate::xen::{DomId, GuestHandle};

/// `PHYSDEVOP_IRQ_UNMASK_NOTIFY`: obsolete since 0x00030202.
pub const PHYSDEVOP_IRQ_UNMASK_NOTIFY: u32 = 4;
/// `PHYSDEVOP_irq_status_query`.
pub const PHYSDEVOP_irq_status_query: u32 = 5;
/// `PHYSDEVOP_set_iopl`.
pub const PHYSDEVOP_set_iopl: u32 = 6;
/// `PHYSDEVOP_set_iobitmap`.
pub const PHYSDEVOP_set_iobitmap: u32 = 7;
/// `PHYSDEVOP_apic_read`.
pub const PHYSDEVOP_apic_read: u32 = 8;
/// `PHYSDEVOP_apic_write`.
pub const PHYSDEVOP_apic_write: u32 = 9;
/// `PHYSDEVOP_alloc_irq_vector`.
pub const PHYSDEVOP_alloc_irq_vector: u32 = 10;
/// `PHYSDEVOP_free_irq_vector`.
pub const PHYSDEVOP_free_irq_vector: u32 = 11;
/// `PHYSDEVOP_eoi`.
pub const PHYSDEVOP_eoi: u32 = 12;
/// `PHYSDEVOP_map_pirq`.
pub const PHYSDEVOP_map_pirq: u32 = 13;
/// `PHYSDEVOP_unmap_pirq`.
pub const PHYSDEVOP_unmap_pirq: u32 = 14;
/// `PHYSDEVOP_manage_pci_add`.
pub const PHYSDEVOP_manage_pci_add: u32 = 15;
/// `PHYSDEVOP_manage_pci_remove`.
pub const PHYSDEVOP_manage_pci_remove: u32 = 16;
/// `PHYSDEVOP_pirq_eoi_gmfn_v1`.
pub const PHYSDEVOP_pirq_eoi_gmfn_v1: u32 = 17;
/// `PHYSDEVOP_restore_msi`.
pub const PHYSDEVOP_restore_msi: u32 = 19;
/// `PHYSDEVOP_manage_pci_add_ext`.
pub const PHYSDEVOP_manage_pci_add_ext: u32 = 20;
/// `PHYSDEVOP_setup_gsi`.
pub const PHYSDEVOP_setup_gsi: u32 = 21;
/// `PHYSDEVOP_get_free_pirq`.
pub const PHYSDEVOP_get_free_pirq: u32 = 23;
/// `PHYSDEVOP_pci_mmcfg_reserved`.
pub const PHYSDEVOP_pci_mmcfg_reserved: u32 = 24;
/// `PHYSDEVOP_pci_device_add`.
pub const PHYSDEVOP_pci_device_add: u32 = 25;
/// `PHYSDEVOP_pci_device_remove`.
pub const PHYSDEVOP_pci_device_remove: u32 = 26;
/// `PHYSDEVOP_restore_msi_ext`.
pub const PHYSDEVOP_restore_msi_ext: u32 = 27;
/// `PHYSDEVOP_pirq_eoi_gmfn_v2`.
pub const PHYSDEVOP_pirq_eoi_gmfn_v2: u32 = 28;
/// `PHYSDEVOP_dbgp_op`.
pub const PHYSDEVOP_dbgp_op: u32 = 29;
/// `PHYSDEVOP_prepare_msix`.
pub const PHYSDEVOP_prepare_msix: u32 = 30;
/// `PHYSDEVOP_release_msix`.
pub const PHYSDEVOP_release_msix: u32 = 31;
/// `PHYSDEVOP_pirq_eoi_gmfn` for interface >= 0x00040200.
pub const PHYSDEVOP_pirq_eoi_gmfn: u32 = PHYSDEVOP_pirq_eoi_gmfn_v2;

/// `_XENIRQSTAT_needs_eoi`.
pub const _XENIRQSTAT_needs_eoi: u32 = 0;
/// `XENIRQSTAT_needs_eoi`: call `PHYSDEVOP_eoi` after servicing.
pub const XENIRQSTAT_needs_eoi: u32 = 1 << _XENIRQSTAT_needs_eoi;
/// `_XENIRQSTAT_shared`.
pub const _XENIRQSTAT_shared: u32 = 1;
/// `XENIRQSTAT_shared`: IRQ shared by multiple guests.
pub const XENIRQSTAT_shared: u32 = 1 << _XENIRQSTAT_shared;

/// `MAP_PIRQ_TYPE_MSI`.
pub const MAP_PIRQ_TYPE_MSI: i32 = 0x0;
/// `MAP_PIRQ_TYPE_GSI`.
pub const MAP_PIRQ_TYPE_GSI: i32 = 0x1;
/// `MAP_PIRQ_TYPE_UNKNOWN`.
pub const MAP_PIRQ_TYPE_UNKNOWN: i32 = 0x2;
/// `MAP_PIRQ_TYPE_MSI_SEG`.
pub const MAP_PIRQ_TYPE_MSI_SEG: i32 = 0x3;
/// `MAP_PIRQ_TYPE_MULTI_MSI`.
pub const MAP_PIRQ_TYPE_MULTI_MSI: i32 = 0x4;

/// `XEN_PCI_MMCFG_RESERVED`.
pub const XEN_PCI_MMCFG_RESERVED: u32 = 0x1;
/// `XEN_PCI_DEV_EXTFN`.
pub const XEN_PCI_DEV_EXTFN: u32 = 0x1;
/// `XEN_PCI_DEV_VIRTFN`.
pub const XEN_PCI_DEV_VIRTFN: u32 = 0x2;
/// `XEN_PCI_DEV_PXM`.
pub const XEN_PCI_DEV_PXM: u32 = 0x4;

/// `PHYSDEVOP_DBGP_RESET_PREPARE`.
pub const PHYSDEVOP_DBGP_RESET_PREPARE: u8 = 1;
/// `PHYSDEVOP_DBGP_RESET_DONE`.
pub const PHYSDEVOP_DBGP_RESET_DONE: u8 = 2;
/// `PHYSDEVOP_DBGP_BUS_UNKNOWN`.
pub const PHYSDEVOP_DBGP_BUS_UNKNOWN: u8 = 0;
/// `PHYSDEVOP_DBGP_BUS_PCI`.
pub const PHYSDEVOP_DBGP_BUS_PCI: u8 = 1;

macro_rules! physdev_struct {
    ($(#[$m:meta])* $name:ident, $size:expr, { $($(#[$fm:meta])* $f:ident : $t:ty = $off:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[repr(C)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
        assert_layout!($name, $size $(, $f @ $off)*);
    };
}

physdev_struct!(
    /// `struct physdev_eoi`.
    PhysdevEoi, 4, {
    /// IN.
    irq: u32 = 0,
});

physdev_struct!(
    /// `struct physdev_pirq_eoi_gmfn`.
    PhysdevPirqEoiGmfn, 8, {
    /// IN: page used as a "needs EOI" bitmap indexed by PIRQ.
    gmfn: XenPfn = 0,
});

physdev_struct!(
    /// `struct physdev_irq_status_query`.
    PhysdevIrqStatusQuery, 8, {
    /// IN.
    irq: u32 = 0,
    /// OUT: `XENIRQSTAT_*`.
    flags: u32 = 4,
});

physdev_struct!(
    /// `struct physdev_set_iopl`.
    PhysdevSetIopl, 4, {
    /// IN: 0..3.
    iopl: u32 = 0,
});

physdev_struct!(
    /// `struct physdev_set_iobitmap`.
    PhysdevSetIobitmap, 16, {
    /// IN: `XEN_GUEST_HANDLE(uint8)`.
    bitmap: GuestHandle = 0,
    /// IN.
    nr_ports: u32 = 8,
    /// Tail padding.
    _pad0: u32 = 12,
});

physdev_struct!(
    /// `struct physdev_apic`.
    PhysdevApic, 16, {
    /// IN.
    apic_physbase: u64 = 0,
    /// IN.
    reg: u32 = 8,
    /// IN or OUT.
    value: u32 = 12,
});

physdev_struct!(
    /// `struct physdev_irq`.
    PhysdevIrq, 8, {
    /// IN.
    irq: u32 = 0,
    /// IN or OUT.
    vector: u32 = 4,
});

physdev_struct!(
    /// `struct physdev_map_pirq`.
    PhysdevMapPirq, 40, {
    /// IN.
    domid: DomId = 0,
    /// Explicit padding.
    _pad0: u16 = 2,
    /// IN: `MAP_PIRQ_TYPE_*`.
    type_: i32 = 4,
    /// IN.
    index: i32 = 8,
    /// IN or OUT.
    pirq: i32 = 12,
    /// IN (high 16 bits: segment for MSI_SEG/MULTI_MSI).
    bus: i32 = 16,
    /// IN.
    devfn: i32 = 20,
    /// IN (OUT for MULTI_MSI).
    entry_nr: i32 = 24,
    /// Explicit padding.
    _pad1: u32 = 28,
    /// IN.
    table_base: u64 = 32,
});

physdev_struct!(
    /// `struct physdev_unmap_pirq`.
    PhysdevUnmapPirq, 8, {
    /// IN.
    domid: DomId = 0,
    /// Explicit padding.
    _pad0: u16 = 2,
    /// IN.
    pirq: i32 = 4,
});

physdev_struct!(
    /// `struct physdev_manage_pci` (same layout as `struct physdev_restore_msi`).
    PhysdevManagePci, 2, {
    /// IN.
    bus: u8 = 0,
    /// IN.
    devfn: u8 = 1,
});

physdev_struct!(
    /// `struct physdev_manage_pci_ext`.
    PhysdevManagePciExt, 16, {
    /// IN.
    bus: u8 = 0,
    /// IN.
    devfn: u8 = 1,
    /// Explicit padding.
    _pad0: u16 = 2,
    /// IN.
    is_extfn: u32 = 4,
    /// IN.
    is_virtfn: u32 = 8,
    /// IN: `physfn.bus`.
    physfn_bus: u8 = 12,
    /// IN: `physfn.devfn`.
    physfn_devfn: u8 = 13,
    /// Tail padding.
    _pad1: u16 = 14,
});

physdev_struct!(
    /// `struct physdev_setup_gsi`.
    PhysdevSetupGsi, 8, {
    /// IN.
    gsi: i32 = 0,
    /// IN.
    triggering: u8 = 4,
    /// IN.
    polarity: u8 = 5,
    /// Tail padding.
    _pad0: u16 = 6,
});

physdev_struct!(
    /// `struct physdev_get_free_pirq`.
    PhysdevGetFreePirq, 8, {
    /// IN: `MAP_PIRQ_TYPE_*`.
    type_: i32 = 0,
    /// OUT.
    pirq: u32 = 4,
});

physdev_struct!(
    /// `struct physdev_pci_mmcfg_reserved`.
    PhysdevPciMmcfgReserved, 16, {
    /// MMCONFIG base.
    address: u64 = 0,
    /// PCI segment.
    segment: u16 = 8,
    /// First bus.
    start_bus: u8 = 10,
    /// Last bus.
    end_bus: u8 = 11,
    /// `XEN_PCI_MMCFG_*`.
    flags: u32 = 12,
});

physdev_struct!(
    /// `struct physdev_pci_device_add` without its flexible `optarr[]` tail.
    PhysdevPciDeviceAdd, 12, {
    /// IN.
    seg: u16 = 0,
    /// IN.
    bus: u8 = 2,
    /// IN.
    devfn: u8 = 3,
    /// IN: `XEN_PCI_DEV_*`.
    flags: u32 = 4,
    /// IN: `physfn.bus`.
    physfn_bus: u8 = 8,
    /// IN: `physfn.devfn`.
    physfn_devfn: u8 = 9,
    /// Padding before `optarr` (4-aligned).
    _pad0: u16 = 10,
});

physdev_struct!(
    /// `struct physdev_pci_device`.
    PhysdevPciDevice, 4, {
    /// IN.
    seg: u16 = 0,
    /// IN.
    bus: u8 = 2,
    /// IN.
    devfn: u8 = 3,
});

physdev_struct!(
    /// `struct physdev_dbgp_op`.
    PhysdevDbgpOp, 6, {
    /// IN: `PHYSDEVOP_DBGP_RESET_*`.
    op: u8 = 0,
    /// IN: `PHYSDEVOP_DBGP_BUS_*`.
    bus: u8 = 1,
    /// IN: `u.pci`.
    pci: PhysdevPciDevice = 2,
});
