//! The Xen guest ABI as Xenolith implements it, mirroring `xen/include/public/`.
//!
//! The single source of ABI truth for the hypervisor and the in-tree test guests.
//! Everything here is the x86_64 view of Xen 4.17's public headers: 64-bit PV
//! guests and HVM/PVH guests. One module per header; constants keep Xen's
//! spelling so they can be grepped against the C, and every structure carries a
//! compile-time check of its size and key offsets as computed from the C layout.
//!
//! Unions are modelled as raw words with accessor methods (reading through
//! native-endian byte views, i.e. exact C union semantics) so every type is
//! plain old data for `zerocopy`.
#![no_std]
#![allow(non_upper_case_globals)]
#![warn(missing_docs)]

/// Compile-time layout check: `assert_layout!(T, size, field @ offset, ...)`.
///
/// A wrong offset here silently breaks real guests, so every structure states
/// the numbers derived from the C layout and the build fails on any drift.
macro_rules! assert_layout {
    ($t:ty, $size:expr $(, $field:ident @ $off:expr)* $(,)?) => {
        const _: () = {
            assert!(core::mem::size_of::<$t>() == $size);
            $(assert!(core::mem::offset_of!($t, $field) == $off);)*
        };
    };
}

pub mod arch_x86;
pub mod callback;
pub mod console;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod features;
pub mod grant_table;
pub mod hvm;
pub mod hvm_start_info;
pub mod hypercall;
pub mod memory;
pub mod physdev;
pub mod platform;
pub mod sched;
pub mod vcpu;
pub mod version;
pub mod xen;

pub use xen::{DomId, GuestHandle};
