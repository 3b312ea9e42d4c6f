//! Xen ELF notes: `elfnote.h`. Notes live in a `PT_NOTE` segment with name
//! `"Xen"`; numeric descriptors are 4 or 8 bytes.

/// The note name Xen notes carry (including the NUL the ELF name field holds).
pub const XEN_ELFNOTE_NAME: &[u8] = b"Xen\0";

/// `XEN_ELFNOTE_INFO`: NAME=VALUE pair (string).
pub const XEN_ELFNOTE_INFO: u32 = 0;
/// `XEN_ELFNOTE_ENTRY`: virtual entry point (numeric).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`: virtual address of the hypercall page.
pub const XEN_ELFNOTE_HYPERCALL_PAGE: u32 = 2;
/// `XEN_ELFNOTE_VIRT_BASE`: where the image is mapped (default 0).
pub const XEN_ELFNOTE_VIRT_BASE: u32 = 3;
/// `XEN_ELFNOTE_PADDR_OFFSET`: offset of ELF paddr from the real pseudo-physical address.
pub const XEN_ELFNOTE_PADDR_OFFSET: u32 = 4;
/// `XEN_ELFNOTE_XEN_VERSION`: Xen version the kernel works with (string).
pub const XEN_ELFNOTE_XEN_VERSION: u32 = 5;
/// `XEN_ELFNOTE_GUEST_OS` (string).
pub const XEN_ELFNOTE_GUEST_OS: u32 = 6;
/// `XEN_ELFNOTE_GUEST_VERSION` (string).
pub const XEN_ELFNOTE_GUEST_VERSION: u32 = 7;
/// `XEN_ELFNOTE_LOADER` (string, e.g. "generic").
pub const XEN_ELFNOTE_LOADER: u32 = 8;
/// `XEN_ELFNOTE_PAE_MODE` (x86/32 only, string).
pub const XEN_ELFNOTE_PAE_MODE: u32 = 9;
/// `XEN_ELFNOTE_FEATURES`: `|`-separated feature names, `!` = required (string).
pub const XEN_ELFNOTE_FEATURES: u32 = 10;
/// `XEN_ELFNOTE_BSD_SYMTAB`: load the symbol table ("yes"/"no").
pub const XEN_ELFNOTE_BSD_SYMTAB: u32 = 11;
/// `XEN_ELFNOTE_HV_START_LOW`: lowest address the hypervisor hole may begin at.
pub const XEN_ELFNOTE_HV_START_LOW: u32 = 12;
/// `XEN_ELFNOTE_L1_MFN_VALID`: mask/value pairs recognising L1 entries with valid MFNs.
pub const XEN_ELFNOTE_L1_MFN_VALID: u32 = 13;
/// `XEN_ELFNOTE_SUSPEND_CANCEL`: cooperative suspend cancellation (numeric).
pub const XEN_ELFNOTE_SUSPEND_CANCEL: u32 = 14;
/// `XEN_ELFNOTE_INIT_P2M`: non-default virtual address for the initial P2M.
pub const XEN_ELFNOTE_INIT_P2M: u32 = 15;
/// `XEN_ELFNOTE_MOD_START_PFN`: initrd may be passed unmapped, as a PFN.
pub const XEN_ELFNOTE_MOD_START_PFN: u32 = 16;
/// `XEN_ELFNOTE_SUPPORTED_FEATURES`: `XENFEAT_*` bitmap (numeric).
pub const XEN_ELFNOTE_SUPPORTED_FEATURES: u32 = 17;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: 32-bit physical entry for PVH.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// `XEN_ELFNOTE_PHYS32_RELOC`: PVH relocation constraints. Added after Xen
/// 4.17 (absent from the 4.17 header); listed so loaders can name it.
pub const XEN_ELFNOTE_PHYS32_RELOC: u32 = 19;
/// `XEN_ELFNOTE_MAX` as of Xen 4.17 (`XEN_ELFNOTE_PHYS32_ENTRY`).
pub const XEN_ELFNOTE_MAX: u32 = XEN_ELFNOTE_PHYS32_ENTRY;

/// `XEN_ELFNOTE_CRASH_INFO`: kexec/kdump crash information.
pub const XEN_ELFNOTE_CRASH_INFO: u32 = 0x100_0001;
/// `XEN_ELFNOTE_CRASH_REGS`: per-CPU registers not in the CORE note.
pub const XEN_ELFNOTE_CRASH_REGS: u32 = 0x100_0002;
/// `XEN_ELFNOTE_DUMPCORE_NONE`.
pub const XEN_ELFNOTE_DUMPCORE_NONE: u32 = 0x200_0000;
/// `XEN_ELFNOTE_DUMPCORE_HEADER`.
pub const XEN_ELFNOTE_DUMPCORE_HEADER: u32 = 0x200_0001;
/// `XEN_ELFNOTE_DUMPCORE_XEN_VERSION`.
pub const XEN_ELFNOTE_DUMPCORE_XEN_VERSION: u32 = 0x200_0002;
/// `XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION`.
pub const XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION: u32 = 0x200_0003;

/// The note's name without `XEN_ELFNOTE_`, for loader logs.
pub const fn name(note_type: u32) -> &'static str {
    match note_type {
        XEN_ELFNOTE_INFO => "INFO",
        XEN_ELFNOTE_ENTRY => "ENTRY",
        XEN_ELFNOTE_HYPERCALL_PAGE => "HYPERCALL_PAGE",
        XEN_ELFNOTE_VIRT_BASE => "VIRT_BASE",
        XEN_ELFNOTE_PADDR_OFFSET => "PADDR_OFFSET",
        XEN_ELFNOTE_XEN_VERSION => "XEN_VERSION",
        XEN_ELFNOTE_GUEST_OS => "GUEST_OS",
        XEN_ELFNOTE_GUEST_VERSION => "GUEST_VERSION",
        XEN_ELFNOTE_LOADER => "LOADER",
        XEN_ELFNOTE_PAE_MODE => "PAE_MODE",
        XEN_ELFNOTE_FEATURES => "FEATURES",
        XEN_ELFNOTE_BSD_SYMTAB => "BSD_SYMTAB",
        XEN_ELFNOTE_HV_START_LOW => "HV_START_LOW",
        XEN_ELFNOTE_L1_MFN_VALID => "L1_MFN_VALID",
        XEN_ELFNOTE_SUSPEND_CANCEL => "SUSPEND_CANCEL",
        XEN_ELFNOTE_INIT_P2M => "INIT_P2M",
        XEN_ELFNOTE_MOD_START_PFN => "MOD_START_PFN",
        XEN_ELFNOTE_SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        XEN_ELFNOTE_PHYS32_ENTRY => "PHYS32_ENTRY",
        XEN_ELFNOTE_PHYS32_RELOC => "PHYS32_RELOC",
        XEN_ELFNOTE_CRASH_INFO => "CRASH_INFO",
        XEN_ELFNOTE_CRASH_REGS => "CRASH_REGS",
        XEN_ELFNOTE_DUMPCORE_NONE => "DUMPCORE_NONE",
        XEN_ELFNOTE_DUMPCORE_HEADER => "DUMPCORE_HEADER",
        XEN_ELFNOTE_DUMPCORE_XEN_VERSION => "DUMPCORE_XEN_VERSION",
        XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION => "DUMPCORE_FORMAT_VERSION",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(name(XEN_ELFNOTE_HYPERCALL_PAGE), "HYPERCALL_PAGE");
        assert_eq!(name(XEN_ELFNOTE_PHYS32_ENTRY), "PHYS32_ENTRY");
        assert_eq!(name(99), "unknown");
    }
}
