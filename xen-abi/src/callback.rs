//! Guest callbacks: `callback.h` (`HYPERVISOR_callback_op`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::arch_x86::XenCallback;

/// `CALLBACKTYPE_event`: event (upcall) delivery.
pub const CALLBACKTYPE_event: u16 = 0;
/// `CALLBACKTYPE_failsafe`: guest state could not be restored by Xen.
pub const CALLBACKTYPE_failsafe: u16 = 1;
/// `CALLBACKTYPE_syscall`: SYSCALL by a 64-bit guest application.
pub const CALLBACKTYPE_syscall: u16 = 2;
/// `CALLBACKTYPE_sysenter_deprecated`: x86/32 supervisor_mode_kernel only.
pub const CALLBACKTYPE_sysenter_deprecated: u16 = 3;
/// `CALLBACKTYPE_nmi`: NMI delivery.
pub const CALLBACKTYPE_nmi: u16 = 4;
/// `CALLBACKTYPE_sysenter`: SYSENTER by 32-bit guest apps on Intel CPUs.
pub const CALLBACKTYPE_sysenter: u16 = 5;
/// `CALLBACKTYPE_syscall32`: SYSCALL by 32-bit guest apps on AMD CPUs.
pub const CALLBACKTYPE_syscall32: u16 = 7;

/// `_CALLBACKF_mask_events`.
pub const _CALLBACKF_mask_events: u16 = 0;
/// `CALLBACKF_mask_events`: mask events on entry (ignored for event/NMI, always masked).
pub const CALLBACKF_mask_events: u16 = 1 << _CALLBACKF_mask_events;

/// `CALLBACKOP_register`: arg is a `callback_register`.
pub const CALLBACKOP_register: u32 = 0;
/// `CALLBACKOP_unregister`: arg is a `callback_unregister`.
pub const CALLBACKOP_unregister: u32 = 1;

/// `struct callback_register` / `callback_register_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CallbackRegister {
    /// `CALLBACKTYPE_*`.
    pub type_: u16,
    /// `CALLBACKF_*`.
    pub flags: u16,
    /// Explicit padding before the 8-byte address.
    pub _pad0: u32,
    /// Entry point.
    pub address: XenCallback,
}
assert_layout!(CallbackRegister, 16, type_ @ 0, flags @ 2, address @ 8);

/// `struct callback_unregister` / `callback_unregister_t`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct CallbackUnregister {
    /// `CALLBACKTYPE_*`.
    pub type_: u16,
    /// Unused.
    pub _unused: u16,
}
assert_layout!(CallbackUnregister, 4, type_ @ 0, _unused @ 2);
