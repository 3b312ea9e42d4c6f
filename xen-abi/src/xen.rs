//! Core guest interface: `xen.h` (the x86_64 view). Hypercall numbers live in
//! [`crate::hypercall`]; architecture pieces in [`crate::arch_x86`].

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86::{ArchSharedInfo, ArchVcpuInfo, XEN_LEGACY_MAX_VCPUS, XenPfn, XenUlong};

/// `domid_t`.
pub type DomId = u16;

/// `XEN_GUEST_HANDLE(T)` on x86_64: `struct { T *p; }`, i.e. a plain 64-bit
/// guest virtual address (guest physical for HVM/PVH callers).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(transparent)]
pub struct GuestHandle(pub u64);
assert_layout!(GuestHandle, 8);

impl GuestHandle {
    /// A NULL handle (several ops use it to mean "just tell me the size").
    pub const NULL: Self = Self(0);

    /// `set_xen_guest_handle` from a raw guest address.
    pub const fn new(addr: u64) -> Self {
        Self(addr)
    }

    /// Handle for a pointer in the caller's own address space (guest side).
    pub fn from_ptr<T>(ptr: *const T) -> Self {
        Self(ptr as usize as u64)
    }

    /// The guest address.
    pub const fn addr(self) -> u64 {
        self.0
    }

    /// Whether the handle is NULL.
    pub const fn is_null(self) -> bool {
        self.0 == 0
    }
}

// ---------------------------------------------------------------------------
// Virtual interrupts.

/// `VIRQ_TIMER`: V. timebase update and/or requested timeout.
pub const VIRQ_TIMER: u32 = 0;
/// `VIRQ_DEBUG`: V. request guest to dump debug info.
pub const VIRQ_DEBUG: u32 = 1;
/// `VIRQ_CONSOLE`: G. (dom0) bytes received on the emergency console.
pub const VIRQ_CONSOLE: u32 = 2;
/// `VIRQ_DOM_EXC`: G. (dom0) exceptional event for some domain.
pub const VIRQ_DOM_EXC: u32 = 3;
/// `VIRQ_TBUF`: G. (dom0) trace buffer has records available.
pub const VIRQ_TBUF: u32 = 4;
/// `VIRQ_DEBUGGER`: G. (dom0) a domain has paused for debugging.
pub const VIRQ_DEBUGGER: u32 = 6;
/// `VIRQ_XENOPROF`: V. XenOprofile sample available.
pub const VIRQ_XENOPROF: u32 = 7;
/// `VIRQ_CON_RING`: G. (dom0) bytes received on the console ring.
pub const VIRQ_CON_RING: u32 = 8;
/// `VIRQ_PCPU_STATE`: G. (dom0) pCPU state changed.
pub const VIRQ_PCPU_STATE: u32 = 9;
/// `VIRQ_MEM_EVENT`: G. (dom0) a memory event has occurred.
pub const VIRQ_MEM_EVENT: u32 = 10;
/// `VIRQ_ARGO`: G. Argo interdomain message notification.
pub const VIRQ_ARGO: u32 = 11;
/// `VIRQ_ENOMEM`: G. (dom0) low on heap memory.
pub const VIRQ_ENOMEM: u32 = 12;
/// `VIRQ_XENPMU`: V. PMC interrupt.
pub const VIRQ_XENPMU: u32 = 13;
/// `VIRQ_ARCH_0`: first architecture-specific vIRQ.
pub const VIRQ_ARCH_0: u32 = 16;
/// `VIRQ_ARCH_1`.
pub const VIRQ_ARCH_1: u32 = 17;
/// `VIRQ_ARCH_2`.
pub const VIRQ_ARCH_2: u32 = 18;
/// `VIRQ_ARCH_3`.
pub const VIRQ_ARCH_3: u32 = 19;
/// `VIRQ_ARCH_4`.
pub const VIRQ_ARCH_4: u32 = 20;
/// `VIRQ_ARCH_5`.
pub const VIRQ_ARCH_5: u32 = 21;
/// `VIRQ_ARCH_6`.
pub const VIRQ_ARCH_6: u32 = 22;
/// `VIRQ_ARCH_7`.
pub const VIRQ_ARCH_7: u32 = 23;
/// `NR_VIRQS`.
pub const NR_VIRQS: u32 = 24;

// ---------------------------------------------------------------------------
// HYPERVISOR_mmu_update: command in ptr[1:0].

/// `MMU_NORMAL_PT_UPDATE`: checked `*ptr = val`, ptr is a machine address.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// `MMU_MACHPHYS_UPDATE`: ptr = MA of the frame whose M2P entry to set.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// `MMU_PT_UPDATE_PRESERVE_AD`: as normal, but keep the PTE's A/D bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;
/// `MMU_PT_UPDATE_NO_TRANSLATE`: as normal, `val` not translated through FD.
pub const MMU_PT_UPDATE_NO_TRANSLATE: u64 = 3;
/// Mask of the command bits in `mmu_update.ptr` (`ptr[1:0]`).
pub const MMU_CMD_MASK: u64 = 3;

/// `struct mmu_update` / `mmu_update_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MmuUpdate {
    /// Machine address of the PTE, command in bits 1:0.
    pub ptr: u64,
    /// New contents.
    pub val: u64,
}
assert_layout!(MmuUpdate, 16, ptr @ 0, val @ 8);

impl MmuUpdate {
    /// The `MMU_*` command encoded in `ptr[1:0]`.
    pub const fn cmd(&self) -> u64 {
        self.ptr & MMU_CMD_MASK
    }

    /// `ptr` without the command bits.
    pub const fn addr(&self) -> u64 {
        self.ptr & !MMU_CMD_MASK
    }
}

// ---------------------------------------------------------------------------
// HYPERVISOR_mmuext_op.

/// `MMUEXT_PIN_L1_TABLE`.
pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
/// `MMUEXT_PIN_L2_TABLE`.
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
/// `MMUEXT_PIN_L3_TABLE`.
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
/// `MMUEXT_PIN_L4_TABLE`.
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
/// `MMUEXT_UNPIN_TABLE`.
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
/// `MMUEXT_NEW_BASEPTR`: install a new (kernel) page-table base.
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
/// `MMUEXT_TLB_FLUSH_LOCAL`.
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
/// `MMUEXT_INVLPG_LOCAL`.
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;
/// `MMUEXT_TLB_FLUSH_MULTI`: flush the vCPUs in `vcpumask`.
pub const MMUEXT_TLB_FLUSH_MULTI: u32 = 8;
/// `MMUEXT_INVLPG_MULTI`.
pub const MMUEXT_INVLPG_MULTI: u32 = 9;
/// `MMUEXT_TLB_FLUSH_ALL`.
pub const MMUEXT_TLB_FLUSH_ALL: u32 = 10;
/// `MMUEXT_INVLPG_ALL`.
pub const MMUEXT_INVLPG_ALL: u32 = 11;
/// `MMUEXT_FLUSH_CACHE`.
pub const MMUEXT_FLUSH_CACHE: u32 = 12;
/// `MMUEXT_SET_LDT`.
pub const MMUEXT_SET_LDT: u32 = 13;
/// `MMUEXT_NEW_USER_BASEPTR` (x86_64): user-mode page-table base.
pub const MMUEXT_NEW_USER_BASEPTR: u32 = 15;
/// `MMUEXT_CLEAR_PAGE`.
pub const MMUEXT_CLEAR_PAGE: u32 = 16;
/// `MMUEXT_COPY_PAGE`.
pub const MMUEXT_COPY_PAGE: u32 = 17;
/// `MMUEXT_FLUSH_CACHE_GLOBAL`.
pub const MMUEXT_FLUSH_CACHE_GLOBAL: u32 = 18;
/// `MMUEXT_MARK_SUPER`.
pub const MMUEXT_MARK_SUPER: u32 = 19;
/// `MMUEXT_UNMARK_SUPER`.
pub const MMUEXT_UNMARK_SUPER: u32 = 20;

/// Low 32 bits of a union word read as the `unsigned int` member at offset 0
/// (native byte order, i.e. exactly what C union aliasing gives).
const fn union_u32_at0(word: u64) -> u32 {
    let b = word.to_ne_bytes();
    u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

/// A union word after storing an `unsigned int` member at offset 0 (the other
/// four bytes keep their old value, as in C).
const fn union_set_u32_at0(word: u64, v: u32) -> u64 {
    let mut b = word.to_ne_bytes();
    let n = v.to_ne_bytes();
    b[0] = n[0];
    b[1] = n[1];
    b[2] = n[2];
    b[3] = n[3];
    u64::from_ne_bytes(b)
}

/// `struct mmuext_op` / `mmuext_op_t`. `arg1` and `arg2` are the C unions,
/// kept raw; use the accessors named after the union members.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MmuextOp {
    /// `MMUEXT_*`.
    pub cmd: u32,
    /// Explicit padding before the 8-byte union.
    pub _pad0: u32,
    /// `union { xen_pfn_t mfn; unsigned long linear_addr; } arg1`.
    pub arg1: u64,
    /// `union { unsigned int nr_ents; XEN_GUEST_HANDLE(const_void) vcpumask;
    /// xen_pfn_t src_mfn; } arg2`.
    pub arg2: u64,
}
assert_layout!(MmuextOp, 24, cmd @ 0, arg1 @ 8, arg2 @ 16);

impl MmuextOp {
    /// An op whose `arg1` is `mfn` ([UN]PIN_TABLE, NEW_[USER_]BASEPTR, CLEAR_PAGE, [UN]MARK_SUPER).
    pub const fn with_mfn(cmd: u32, mfn: XenPfn) -> Self {
        Self {
            cmd,
            _pad0: 0,
            arg1: mfn,
            arg2: 0,
        }
    }

    /// An op whose `arg1` is `linear_addr` (INVLPG_LOCAL, INVLPG_ALL).
    pub const fn with_linear_addr(cmd: u32, linear_addr: u64) -> Self {
        Self {
            cmd,
            _pad0: 0,
            arg1: linear_addr,
            arg2: 0,
        }
    }

    /// `MMUEXT_SET_LDT`.
    pub const fn set_ldt(linear_addr: u64, nr_ents: u32) -> Self {
        Self {
            cmd: MMUEXT_SET_LDT,
            _pad0: 0,
            arg1: linear_addr,
            arg2: union_set_u32_at0(0, nr_ents),
        }
    }

    /// `MMUEXT_COPY_PAGE`.
    pub const fn copy_page(dst_mfn: XenPfn, src_mfn: XenPfn) -> Self {
        Self {
            cmd: MMUEXT_COPY_PAGE,
            _pad0: 0,
            arg1: dst_mfn,
            arg2: src_mfn,
        }
    }

    /// `arg1.mfn`.
    pub const fn mfn(&self) -> XenPfn {
        self.arg1
    }

    /// `arg1.linear_addr`.
    pub const fn linear_addr(&self) -> u64 {
        self.arg1
    }

    /// `arg2.nr_ents`: only the first four bytes of the union are the member.
    pub const fn nr_ents(&self) -> u32 {
        union_u32_at0(self.arg2)
    }

    /// Store `arg2.nr_ents` (the union's other four bytes are left alone).
    pub fn set_nr_ents(&mut self, nr_ents: u32) {
        self.arg2 = union_set_u32_at0(self.arg2, nr_ents);
    }

    /// `arg2.vcpumask`: guest pointer to a vCPU bitmap.
    pub const fn vcpumask(&self) -> GuestHandle {
        GuestHandle(self.arg2)
    }

    /// `arg2.src_mfn`.
    pub const fn src_mfn(&self) -> XenPfn {
        self.arg2
    }
}

// ---------------------------------------------------------------------------
// HYPERVISOR_update_va_mapping flags (`unsigned long`).

/// `UVMF_NONE`: no flushing at all.
pub const UVMF_NONE: u64 = 0;
/// `UVMF_TLB_FLUSH`: flush entire TLB(s).
pub const UVMF_TLB_FLUSH: u64 = 1;
/// `UVMF_INVLPG`: flush only one entry.
pub const UVMF_INVLPG: u64 = 2;
/// `UVMF_FLUSHTYPE_MASK`.
pub const UVMF_FLUSHTYPE_MASK: u64 = 3;
/// `UVMF_MULTI`: flush a subset of TLBs; OR in a pointer to a vCPU bitmap.
pub const UVMF_MULTI: u64 = 0;
/// `UVMF_LOCAL`: `UVMF_MULTI` with a NULL bitmap.
pub const UVMF_LOCAL: u64 = 0;
/// `UVMF_ALL`: flush all TLBs.
pub const UVMF_ALL: u64 = 1 << 2;

// ---------------------------------------------------------------------------
// HYPERVISOR_console_io.

/// `CONSOLEIO_write`.
pub const CONSOLEIO_write: u32 = 0;
/// `CONSOLEIO_read`.
pub const CONSOLEIO_read: u32 = 1;

// ---------------------------------------------------------------------------
// HYPERVISOR_vm_assist.

/// `VMASST_CMD_enable`.
pub const VMASST_CMD_enable: u32 = 0;
/// `VMASST_CMD_disable`.
pub const VMASST_CMD_disable: u32 = 1;
/// `VMASST_TYPE_4gb_segments` (x86/32 only).
pub const VMASST_TYPE_4gb_segments: u32 = 0;
/// `VMASST_TYPE_4gb_segments_notify` (x86/32 only).
pub const VMASST_TYPE_4gb_segments_notify: u32 = 1;
/// `VMASST_TYPE_writable_pagetables`: emulate writes to L1 PTEs.
pub const VMASST_TYPE_writable_pagetables: u32 = 2;
/// `VMASST_TYPE_pae_extended_cr3` (x86/PAE).
pub const VMASST_TYPE_pae_extended_cr3: u32 = 3;
/// `VMASST_TYPE_architectural_iopl`: sane virtual IOPL semantics.
pub const VMASST_TYPE_architectural_iopl: u32 = 4;
/// `VMASST_TYPE_runstate_update_flag`: set `XEN_RUNSTATE_UPDATE` during updates.
pub const VMASST_TYPE_runstate_update_flag: u32 = 5;
/// `VMASST_TYPE_m2p_strict` (x86_64): hide the M2P from user mode.
pub const VMASST_TYPE_m2p_strict: u32 = 32;

// ---------------------------------------------------------------------------
// Domain ids.

/// `DOMID_FIRST_RESERVED`: ids from here on are not ordinary domains.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
/// `DOMID_SELF`.
pub const DOMID_SELF: DomId = 0x7FF0;
/// `DOMID_IO`: restrict mappings to I/O memory.
pub const DOMID_IO: DomId = 0x7FF1;
/// `DOMID_XEN`: privileged mappings of Xen heap (e.g. the M2P).
pub const DOMID_XEN: DomId = 0x7FF2;
/// `DOMID_COW`: owner of sharable pages.
pub const DOMID_COW: DomId = 0x7FF3;
/// `DOMID_INVALID`: unknown owner.
pub const DOMID_INVALID: DomId = 0x7FF4;
/// `DOMID_IDLE`.
pub const DOMID_IDLE: DomId = 0x7FFF;
/// `DOMID_MASK`.
pub const DOMID_MASK: DomId = 0x7FFF;

// ---------------------------------------------------------------------------
// HYPERVISOR_multicall.

/// `struct multicall_entry` / `multicall_entry_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct MulticallEntry {
    /// Hypercall number.
    pub op: XenUlong,
    /// Return value written back by Xen.
    pub result: XenUlong,
    /// Arguments.
    pub args: [XenUlong; 6],
}
assert_layout!(MulticallEntry, 64, op @ 0, result @ 8, args @ 16);

/// `NR_EVENT_CHANNELS` (interface < 0x00040400): 2-level channels with a
/// 64-bit `xen_ulong_t`, i.e. `EVTCHN_2L_NR_CHANNELS`.
pub const NR_EVENT_CHANNELS: u32 = crate::event_channel::EVTCHN_2L_NR_CHANNELS;

// ---------------------------------------------------------------------------
// Time and per-vCPU shared data.

/// `XEN_PVCLOCK_TSC_STABLE_BIT`: `vcpu_time_info.flags`, TSC is stable.
pub const XEN_PVCLOCK_TSC_STABLE_BIT: u8 = 1;
/// `XEN_PVCLOCK_GUEST_STOPPED`: `vcpu_time_info.flags`, guest was paused.
pub const XEN_PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// `struct vcpu_time_info` / `vcpu_time_info_t` (interface > 0x040600 form
/// with `flags`). Seqlock-like: odd `version` means an update is in progress.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuTimeInfo {
    /// Update counter.
    pub version: u32,
    /// Padding.
    pub pad0: u32,
    /// TSC at last update.
    pub tsc_timestamp: u64,
    /// Nanoseconds since boot at `tsc_timestamp`.
    pub system_time: u64,
    /// Scale: ns = ((tsc delta << tsc_shift) * mul) >> 32.
    pub tsc_to_system_mul: u32,
    /// Signed shift applied before the multiply.
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*`.
    pub flags: u8,
    /// Padding.
    pub pad1: [u8; 2],
}
assert_layout!(VcpuTimeInfo, 32, version @ 0, pad0 @ 4, tsc_timestamp @ 8,
    system_time @ 16, tsc_to_system_mul @ 24, tsc_shift @ 28, flags @ 29, pad1 @ 30);

/// `struct vcpu_info` / `vcpu_info_t`: 64 bytes on x86.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct VcpuInfo {
    /// Written non-zero by Xen when an upcall is pending.
    pub evtchn_upcall_pending: u8,
    /// Guest's "interrupts disabled" flag for event upcalls.
    pub evtchn_upcall_mask: u8,
    /// Explicit padding (C aligns the next field to 8).
    pub _pad0: [u8; 6],
    /// Selector: bit n set means word n of `evtchn_pending` may have work.
    pub evtchn_pending_sel: XenUlong,
    /// Architecture part (`cr2`).
    pub arch: ArchVcpuInfo,
    /// Per-vCPU time.
    pub time: VcpuTimeInfo,
}
assert_layout!(VcpuInfo, 64, evtchn_upcall_pending @ 0, evtchn_upcall_mask @ 1,
    evtchn_pending_sel @ 8, arch @ 16, time @ 32);

/// `struct shared_info` / `shared_info_t` (x86_64): the shared page.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct SharedInfo {
    /// Legacy per-vCPU data for vCPUs 0..31.
    pub vcpu_info: [VcpuInfo; XEN_LEGACY_MAX_VCPUS],
    /// 2-level event channel PENDING bits.
    pub evtchn_pending: [XenUlong; 64],
    /// 2-level event channel MASK bits.
    pub evtchn_mask: [XenUlong; 64],
    /// Wallclock version counter (as `vcpu_time_info.version`).
    pub wc_version: u32,
    /// Wallclock seconds (low 32 bits).
    pub wc_sec: u32,
    /// Wallclock nanoseconds.
    pub wc_nsec: u32,
    /// Wallclock seconds, high 32 bits (here, not in `arch`, on non-i386).
    pub wc_sec_hi: u32,
    /// Architecture part.
    pub arch: ArchSharedInfo,
}
assert_layout!(SharedInfo, 3136, vcpu_info @ 0, evtchn_pending @ 2048, evtchn_mask @ 2560,
    wc_version @ 3072, wc_sec @ 3076, wc_nsec @ 3080, wc_sec_hi @ 3084, arch @ 3088);
const _: () = assert!(core::mem::size_of::<SharedInfo>() <= 4096);

impl SharedInfo {
    /// A zeroed shared page image.
    pub fn zeroed() -> Self {
        Self::new_zeroed()
    }

    /// Full 64-bit wallclock seconds (`wc_sec_hi:wc_sec`).
    pub const fn wc_sec64(&self) -> u64 {
        ((self.wc_sec_hi as u64) << 32) | self.wc_sec as u64
    }
}

// ---------------------------------------------------------------------------
// Start-of-day information (PV).

/// `MAX_GUEST_CMDLINE`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1;
/// `SIF_INITDOMAIN`: the initial control domain.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module package.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: tools understand a virtually mapped P2M.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;
/// `SIF_PM_MASK`: reserved for xen-pm options.
pub const SIF_PM_MASK: u32 = 0xFF << 8;

/// The dom0 member of `start_info.console`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct StartInfoConsoleDom0 {
    /// Offset of the `dom0_vga_console_info` within the start-info page.
    pub info_off: u32,
    /// Size of that structure.
    pub info_size: u32,
    /// Rest of the 16-byte union (not part of this member).
    pub _rest: [u32; 2],
}
assert_layout!(StartInfoConsoleDom0, 16, info_off @ 0, info_size @ 4);

/// The domU member of `start_info.console`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct StartInfoConsoleDomU {
    /// MFN of the console ring page.
    pub mfn: XenPfn,
    /// Event channel of the console.
    pub evtchn: u32,
    /// Tail padding of the C struct.
    pub _pad: u32,
}
assert_layout!(StartInfoConsoleDomU, 16, mfn @ 0, evtchn @ 8);

/// `union { struct { mfn; evtchn; } domU; struct { info_off; info_size; } dom0; } console`
/// of `start_info`, kept as raw words; pick a view with [`Self::domu`] / [`Self::dom0`].
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct StartInfoConsole {
    /// The union's bytes.
    pub raw: [u64; 2],
}
assert_layout!(StartInfoConsole, 16);

impl StartInfoConsole {
    /// Build the domU form.
    pub fn from_domu(mfn: XenPfn, evtchn: u32) -> Self {
        zerocopy::transmute!(StartInfoConsoleDomU {
            mfn,
            evtchn,
            _pad: 0
        })
    }

    /// Build the dom0 form.
    pub fn from_dom0(info_off: u32, info_size: u32) -> Self {
        zerocopy::transmute!(StartInfoConsoleDom0 {
            info_off,
            info_size,
            _rest: [0; 2]
        })
    }

    /// `console.domU`.
    pub fn domu(&self) -> StartInfoConsoleDomU {
        zerocopy::transmute!(*self)
    }

    /// `console.dom0`.
    pub fn dom0(&self) -> StartInfoConsoleDom0 {
        zerocopy::transmute!(*self)
    }

    /// Mutable `console.domU` view.
    pub fn domu_mut(&mut self) -> &mut StartInfoConsoleDomU {
        zerocopy::transmute_mut!(self)
    }

    /// Mutable `console.dom0` view.
    pub fn dom0_mut(&mut self) -> &mut StartInfoConsoleDom0 {
        zerocopy::transmute_mut!(self)
    }
}

/// `struct start_info` / `start_info_t` (x86_64): handed to a PV guest in
/// `%rsi` at entry. 1168 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded.
    pub magic: [u8; 32],
    /// Total pages allocated to the domain.
    pub nr_pages: u64,
    /// Machine address of the shared info page.
    pub shared_info: u64,
    /// `SIF_*`.
    pub flags: u32,
    /// Explicit padding before `store_mfn`.
    pub _pad0: u32,
    /// MFN of the xenstore ring page.
    pub store_mfn: XenPfn,
    /// Event channel for xenstore.
    pub store_evtchn: u32,
    /// Explicit padding before the 8-aligned console union.
    pub _pad1: u32,
    /// Console: domU ring or dom0 VGA info location.
    pub console: StartInfoConsole,
    /// Virtual address of the bootstrap page directory (initial boot only).
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// Virtual address of the page-frame (P2M) list.
    pub mfn_list: u64,
    /// Virtual address (or PFN with `SIF_MOD_START_PFN`) of the initrd.
    pub mod_start: u64,
    /// Size in bytes of the initrd.
    pub mod_len: u64,
    /// Command line (`int8_t` in C), NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First PFN of the initial P2M table (and its page tables).
    pub first_p2m_pfn: u64,
    /// Number of PFNs forming the initial P2M table.
    pub nr_p2m_frames: u64,
}
assert_layout!(StartInfo, 1168, magic @ 0, nr_pages @ 32, shared_info @ 40, flags @ 48,
    store_mfn @ 56, store_evtchn @ 64, console @ 72, pt_base @ 88, nr_pt_frames @ 96,
    mfn_list @ 104, mod_start @ 112, mod_len @ 120, cmd_line @ 128, first_p2m_pfn @ 1152,
    nr_p2m_frames @ 1160);

impl StartInfo {
    /// A zeroed start-info image.
    pub fn zeroed() -> Self {
        Self::new_zeroed()
    }

    /// The command line up to its NUL.
    pub fn cmd_line_bytes(&self) -> &[u8] {
        let n = self
            .cmd_line
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(MAX_GUEST_CMDLINE);
        &self.cmd_line[..n]
    }
}

/// `struct xen_multiboot_mod_list`: descriptor array at the start of a
/// `SIF_MULTIBOOT_MOD` package (terminated by `mod_start == 0`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenMultibootModList {
    /// First byte, relative to the package start.
    pub mod_start: u32,
    /// Last byte (inclusive).
    pub mod_end: u32,
    /// Command line address.
    pub cmdline: u32,
    /// Must be zero.
    pub pad: u32,
}
assert_layout!(XenMultibootModList, 16, mod_start @ 0, mod_end @ 4, cmdline @ 8, pad @ 12);

// ---------------------------------------------------------------------------
// Dom0 console info (`start_info.console.dom0`).

/// `XEN_VGATYPE_TEXT_MODE_3`.
pub const XEN_VGATYPE_TEXT_MODE_3: u8 = 0x03;
/// `XEN_VGATYPE_VESA_LFB`.
pub const XEN_VGATYPE_VESA_LFB: u8 = 0x23;
/// `XEN_VGATYPE_EFI_LFB`.
pub const XEN_VGATYPE_EFI_LFB: u8 = 0x70;

/// `dom0_vga_console_info.u.text_mode_3`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Dom0VgaTextMode3 {
    /// Font height in pixels.
    pub font_height: u16,
    /// Cursor column.
    pub cursor_x: u16,
    /// Cursor row.
    pub cursor_y: u16,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub columns: u16,
}
assert_layout!(Dom0VgaTextMode3, 10, font_height @ 0, cursor_x @ 2, cursor_y @ 4,
    rows @ 6, columns @ 8);

/// `dom0_vga_console_info.u.vesa_lfb` (interface >= 0x00040d00 form).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Dom0VgaVesaLfb {
    /// Width in pixels.
    pub width: u16,
    /// Height in pixels.
    pub height: u16,
    /// Bytes per scan line.
    pub bytes_per_line: u16,
    /// Bits per pixel.
    pub bits_per_pixel: u16,
    /// LFB physical address, low 32 bits.
    pub lfb_base: u32,
    /// LFB size in 64 KiB units.
    pub lfb_size: u32,
    /// Red field position.
    pub red_pos: u8,
    /// Red field size.
    pub red_size: u8,
    /// Green field position.
    pub green_pos: u8,
    /// Green field size.
    pub green_size: u8,
    /// Blue field position.
    pub blue_pos: u8,
    /// Blue field size.
    pub blue_size: u8,
    /// Reserved field position.
    pub rsvd_pos: u8,
    /// Reserved field size.
    pub rsvd_size: u8,
    /// VESA capabilities.
    pub gbl_caps: u32,
    /// Mode attributes.
    pub mode_attrs: u16,
    /// Padding.
    pub pad: u16,
    /// High 32 bits of `lfb_base`.
    pub ext_lfb_base: u32,
}
assert_layout!(Dom0VgaVesaLfb, 36, width @ 0, height @ 2, bytes_per_line @ 4,
    bits_per_pixel @ 6, lfb_base @ 8, lfb_size @ 12, red_pos @ 16, rsvd_size @ 23,
    gbl_caps @ 24, mode_attrs @ 28, pad @ 30, ext_lfb_base @ 32);

/// `dom0_vga_console_info_t` / `xen_vga_console_info`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct Dom0VgaConsoleInfo {
    /// `XEN_VGATYPE_*`.
    pub video_type: u8,
    /// Explicit padding before the 4-aligned union.
    pub _pad0: [u8; 3],
    /// `union { text_mode_3; vesa_lfb; } u`, raw.
    pub u: [u32; 9],
}
assert_layout!(Dom0VgaConsoleInfo, 40, video_type @ 0, u @ 4);

impl Dom0VgaConsoleInfo {
    /// `u.text_mode_3`.
    pub fn text_mode_3(&self) -> Dom0VgaTextMode3 {
        let mut v = Dom0VgaTextMode3::new_zeroed();
        v.as_mut_bytes()
            .copy_from_slice(&self.u.as_bytes()[..size_of::<Dom0VgaTextMode3>()]);
        v
    }

    /// Store `u.text_mode_3` (the union's remaining bytes are untouched).
    pub fn set_text_mode_3(&mut self, v: &Dom0VgaTextMode3) {
        self.u.as_mut_bytes()[..size_of::<Dom0VgaTextMode3>()].copy_from_slice(v.as_bytes());
    }

    /// `u.vesa_lfb`.
    pub fn vesa_lfb(&self) -> Dom0VgaVesaLfb {
        zerocopy::transmute!(self.u)
    }

    /// Store `u.vesa_lfb`.
    pub fn set_vesa_lfb(&mut self, v: Dom0VgaVesaLfb) {
        self.u = zerocopy::transmute!(v);
    }
}

/// `xen_domain_handle_t`: a domain's UUID.
pub type XenDomainHandle = [u8; 16];

/// `xen_uuid_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct XenUuid {
    /// Big-endian UUID bytes (`XEN_DEFINE_UUID` order).
    pub a: [u8; 16],
}
assert_layout!(XenUuid, 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mmuext_unions() {
        let op = MmuextOp::set_ldt(0xffff_8880_0000_0000, 17);
        assert_eq!(op.linear_addr(), 0xffff_8880_0000_0000);
        assert_eq!(op.nr_ents(), 17);
        // Bytes as a C compiler would lay them out on x86_64.
        assert_eq!(&op.as_bytes()[16..20], &17u32.to_ne_bytes());

        let mut op = MmuextOp {
            cmd: MMUEXT_SET_LDT,
            arg2: u64::MAX,
            ..Default::default()
        };
        assert_eq!(op.nr_ents(), u32::MAX);
        op.set_nr_ents(5);
        assert_eq!(op.nr_ents(), 5);
        // Upper half of the union is not part of nr_ents and stays as it was.
        assert_eq!(&op.as_bytes()[20..24], &[0xff; 4]);

        let op = MmuextOp::copy_page(1, 2);
        assert_eq!((op.mfn(), op.src_mfn()), (1, 2));
        let op = MmuextOp {
            cmd: MMUEXT_TLB_FLUSH_MULTI,
            arg2: 0x1000,
            ..Default::default()
        };
        assert_eq!(op.vcpumask(), GuestHandle::new(0x1000));
        assert_eq!(MmuextOp::with_mfn(MMUEXT_PIN_L4_TABLE, 9).mfn(), 9);
    }

    #[test]
    fn mmu_update_cmd() {
        let u = MmuUpdate {
            ptr: 0x1234_5000 | MMU_MACHPHYS_UPDATE,
            val: 7,
        };
        assert_eq!(u.cmd(), MMU_MACHPHYS_UPDATE);
        assert_eq!(u.addr(), 0x1234_5000);
    }

    #[test]
    fn start_info_console_views() {
        let mut si = StartInfo::zeroed();
        si.console = StartInfoConsole::from_domu(0xabcd, 3);
        assert_eq!(
            si.console.domu(),
            StartInfoConsoleDomU {
                mfn: 0xabcd,
                evtchn: 3,
                _pad: 0
            }
        );
        assert_eq!(&si.as_bytes()[72..80], &0xabcdu64.to_ne_bytes());
        assert_eq!(&si.as_bytes()[80..84], &3u32.to_ne_bytes());

        si.console = StartInfoConsole::from_dom0(0x800, 40);
        let d0 = si.console.dom0();
        assert_eq!((d0.info_off, d0.info_size), (0x800, 40));
        assert_eq!(&si.as_bytes()[72..76], &0x800u32.to_ne_bytes());
        assert_eq!(&si.as_bytes()[76..80], &40u32.to_ne_bytes());

        si.console.domu_mut().evtchn = 9;
        assert_eq!(si.console.domu().evtchn, 9);
        si.console.dom0_mut().info_size = 12;
        assert_eq!(si.console.dom0().info_size, 12);
    }

    #[test]
    fn start_info_cmdline() {
        let mut si = StartInfo::zeroed();
        si.cmd_line[..5].copy_from_slice(b"quiet");
        assert_eq!(si.cmd_line_bytes(), b"quiet");
    }

    #[test]
    fn vga_console_views() {
        let mut info = Dom0VgaConsoleInfo {
            video_type: XEN_VGATYPE_TEXT_MODE_3,
            ..Default::default()
        };
        let t = Dom0VgaTextMode3 {
            font_height: 16,
            cursor_x: 1,
            cursor_y: 2,
            rows: 25,
            columns: 80,
        };
        info.set_text_mode_3(&t);
        assert_eq!(info.text_mode_3(), t);
        assert_eq!(&info.as_bytes()[4..6], &16u16.to_ne_bytes());

        let v = Dom0VgaVesaLfb {
            width: 1024,
            height: 768,
            ext_lfb_base: 1,
            ..Default::default()
        };
        info.set_vesa_lfb(v);
        assert_eq!(info.vesa_lfb(), v);
        assert_eq!(&info.as_bytes()[36..40], &1u32.to_ne_bytes());
    }

    #[test]
    fn shared_info_wallclock() {
        let mut s = SharedInfo::zeroed();
        s.wc_sec = 5;
        s.wc_sec_hi = 1;
        assert_eq!(s.wc_sec64(), (1 << 32) | 5);
    }

    #[test]
    fn guest_handle() {
        let x = 5u32;
        let h = GuestHandle::from_ptr(&x);
        assert_eq!(h.addr(), &x as *const u32 as usize as u64);
        assert!(GuestHandle::NULL.is_null());
    }
}
