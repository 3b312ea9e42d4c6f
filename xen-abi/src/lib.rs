//! The Xen guest ABI as Xenolith implements it, mirroring `xen/include/public/`.
//!
//! The single source of ABI truth for the hypervisor and the in-tree test guests.
#![no_std]
#![allow(non_upper_case_globals)]

pub mod errno;
pub mod hypercall;
pub mod version;
