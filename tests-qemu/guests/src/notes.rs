//! The Xen ELF notes (`.note.Xen`, its own PT_NOTE segment; see `pvtest.ld`), laid out as Xen's
//! `elfnote.h` says: namesz, descsz, type, the name "Xen\0", the descriptor, each 4-aligned.
//!
//! What Xen 4.17's libelf (`libelf-dominfo.c`) and PV dom0 builder (`pv/dom0_build.c`) require:
//! - `XEN_VERSION` starting with "xen-3.0", and `LOADER` "generic" (or `GUEST_OS` "linux");
//! - `VIRT_BASE` and `PADDR_OFFSET` (each PT_LOAD lands at `p_paddr + VIRT_BASE - PADDR_OFFSET`)
//!   and an `ENTRY` inside the loaded image;
//! - if `SUPPORTED_FEATURES` is present, the `XENFEAT_dom0` bit, or Xen refuses to build dom0.
//!
//! `PAE_MODE` "yes" makes Xen set `VMASST_TYPE_pae_extended_cr3` (reported back as
//! `XENFEAT_pae_pgdir_above_4gb`) and append "p" to the start_info magic, as for Linux.

use core::arch::global_asm;

#[path = "elfnote_asm.rs"]
mod elfnote_asm;
use elfnote_asm::xen_note;

use crate::mm::VIRT_BASE;
use xen_abi::elfnote::{
    XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_GUEST_OS, XEN_ELFNOTE_GUEST_VERSION,
    XEN_ELFNOTE_LOADER, XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE,
    XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};
use xen_abi::features::XENFEAT_dom0;

global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    xen_note!("guest_os", ".asciz \"xenolith-pvtest\""),
    xen_note!("guest_version", ".asciz \"0.1\""),
    xen_note!("xen_version", ".asciz \"xen-3.0\""),
    xen_note!("loader", ".asciz \"generic\""),
    xen_note!("virt_base", ".quad {virt_base_value}"),
    xen_note!("paddr_offset", ".quad 0"),
    xen_note!("entry", ".quad pvtest_start"),
    xen_note!(
        "features",
        ".asciz \"!writable_page_tables|pae_pgdir_above_4gb\""
    ),
    xen_note!("supported_features", ".long {supported}"),
    xen_note!("pae_mode", ".asciz \"yes\""),
    ".popsection",
    guest_os = const XEN_ELFNOTE_GUEST_OS,
    guest_version = const XEN_ELFNOTE_GUEST_VERSION,
    xen_version = const XEN_ELFNOTE_XEN_VERSION,
    loader = const XEN_ELFNOTE_LOADER,
    virt_base = const XEN_ELFNOTE_VIRT_BASE,
    virt_base_value = const VIRT_BASE,
    paddr_offset = const XEN_ELFNOTE_PADDR_OFFSET,
    entry = const XEN_ELFNOTE_ENTRY,
    features = const XEN_ELFNOTE_FEATURES,
    supported_features = const XEN_ELFNOTE_SUPPORTED_FEATURES,
    supported = const (1u32 << XENFEAT_dom0),
    pae_mode = const XEN_ELFNOTE_PAE_MODE,
    options(att_syntax)
);
