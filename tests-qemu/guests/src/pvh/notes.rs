//! The Xen ELF notes (`.note.Xen`, its own PT_NOTE segment; see `pvhtest.ld`), laid out as
//! Xen's `elfnote.h` says: namesz, descsz, type, the name "Xen\0", the descriptor, each
//! 4-aligned.
//!
//! Xen 4.17's PVH dom0 builder (`hvm/dom0_build.c`) needs `PHYS32_ENTRY` (the 32-bit entry's
//! physical address) and, once `SUPPORTED_FEATURES` is present, its `XENFEAT_dom0` bit; libelf
//! also wants `XEN_VERSION` "xen-3.0" and `LOADER` "generic" (or `GUEST_OS` "linux").

use core::arch::global_asm;

#[path = "../elfnote_asm.rs"]
mod elfnote_asm;
use elfnote_asm::xen_note;

use xen_abi::elfnote::{
    XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PHYS32_ENTRY,
    XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_XEN_VERSION,
};
use xen_abi::features::XENFEAT_dom0;

global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    xen_note!("guest_os", ".asciz \"xenolith-pvhtest\""),
    xen_note!("guest_version", ".asciz \"0.1\""),
    xen_note!("xen_version", ".asciz \"xen-3.0\""),
    xen_note!("loader", ".asciz \"generic\""),
    xen_note!("phys32_entry", ".long pvhtest_start32"),
    xen_note!("supported_features", ".long {supported}"),
    ".popsection",
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    guest_version = const XEN_ELFNOTE_GUEST_VERSION,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    phys32_entry = const XEN_ELFNOTE_PHYS32_ENTRY,
    supported_features = const XEN_ELFNOTE_SUPPORTED_FEATURES,
    supported = const (1u32 << XENFEAT_dom0),
    options(att_syntax)
);
