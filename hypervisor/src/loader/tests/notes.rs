//! Xen notes, `__xen_guest`, feature strings, address checks and the dom0 checks.

use super::builder::*;
use crate::loader::elf::Elf64;
use crate::loader::xen_notes::{self, *};
use crate::loader::{LoadError, inspect};

fn info_of(b: &ElfBuilder) -> Result<XenGuestInfo, NoteError> {
    let img = b.build();
    let elf = Elf64::parse(&img).expect("valid ELF");
    xen_notes::parse(&elf)
}

fn features(s: &str) -> Result<(u32, u32), NoteError> {
    let (mut sup, mut req) = ([0u32], [0u32]);
    parse_features(s.as_bytes(), &mut sup, &mut req)?;
    Ok((sup[0], req[0]))
}

#[test]
fn linux_notes_8_byte_numerics() {
    let info = info_of(&ElfBuilder::linux()).unwrap();
    assert_eq!(info.entry, ENTRY);
    assert_eq!(info.virt_base, VIRT_BASE);
    assert_eq!(info.paddr_offset, 0);
    assert_eq!(info.virt_offset, VIRT_BASE);
    assert_eq!(info.hypercall_page, Some(HYPERCALL));
    assert_eq!(info.init_p2m, Some(INIT_P2M));
    assert!(info.mod_start_pfn);
    assert!(info.suspend_cancel);
    assert_eq!(info.phys32_entry, Some(0x100_0300));
    assert_eq!(info.guest_os, "linux");
    assert_eq!(info.guest_version, "2.6");
    assert_eq!(info.loader, "generic");
    assert_eq!(info.xen_version, "xen-3.0");
    assert_eq!(info.pae_mode, PaeMode::ExtendedCr3);
    assert_eq!(info.l1_mfn_valid, vec![(1, 1)]);
    assert_eq!(info.hv_start_low, None);
    // "!writable_page_tables" plus SUPPORTED_FEATURES 0x8801.
    assert_eq!(info.features_supported, [0x8801]);
    assert_eq!(info.features_required, [0x1]);
    assert!(info.supports(XENFEAT_DOM0));
    assert!(info.has_supported_features_note);
    assert_eq!(info.virt_kstart, VIRT_BASE + TEXT_PADDR);
    assert_eq!(info.virt_kend, VIRT_BASE + TEXT_PADDR + 0x38_0000);
    assert_eq!(info.source, NoteSource::Segments);
    // The GNU note is skipped, every Xen note recorded in order.
    assert_eq!(info.notes.len(), 16);
    assert_eq!(info.notes[0].to_string(), "ELF: note: GUEST_OS = \"linux\"");
    assert_eq!(
        info.notes[3].to_string(),
        "ELF: note: VIRT_BASE = 0xffffffff80000000"
    );
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
}

#[test]
fn numerics_4_byte_and_odd_sizes() {
    // A low-mapped kernel whose notes all fit in 32 bits.
    let mut b = ElfBuilder::linux();
    for s in &mut b.segments {
        s.vaddr -= VIRT_BASE;
    }
    b.set_note(num_note(XEN_ELFNOTE_VIRT_BASE, 0, 4));
    b.set_note(num_note(XEN_ELFNOTE_PADDR_OFFSET, 0, 4));
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, TEXT_PADDR + 0x40, 4));
    b.set_note(num_note(XEN_ELFNOTE_HYPERCALL_PAGE, TEXT_PADDR + 0x1000, 4));
    b.set_note(num_note(XEN_ELFNOTE_INIT_P2M, 0x4000_0000, 4));
    let info = info_of(&b).unwrap();
    assert_eq!(info.virt_base, 0);
    assert_eq!(info.entry, TEXT_PADDR + 0x40);
    assert_eq!(info.hypercall_page, Some(TEXT_PADDR + 0x1000));
    assert_eq!(info.virt_kstart, TEXT_PADDR);
    // 1- and 2-byte numerics are read too; anything else reads as 0, as in libelf.
    b.set_note(num_note(XEN_ELFNOTE_MOD_START_PFN, 1, 1));
    b.set_note(num_note(XEN_ELFNOTE_SUSPEND_CANCEL, 0x100, 2));
    b.set_note(num_note(XEN_ELFNOTE_HV_START_LOW, 0xf5_80_00_00, 3));
    let info = info_of(&b).unwrap();
    assert!(info.mod_start_pfn);
    assert!(info.suspend_cancel);
    assert_eq!(info.hv_start_low, Some(0));
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("HV_START_LOW: 3-byte")),
        "{:?}",
        info.warnings
    );
}

#[test]
fn missing_xen_version() {
    let mut b = ElfBuilder::linux();
    b.remove_note(XEN_ELFNOTE_XEN_VERSION);
    let e = info_of(&b).unwrap_err();
    assert_eq!(e, NoteError::UnsupportedXenVersion(String::new()));
    assert_eq!(
        e.to_string(),
        "Xen will only load images built for Xen v3.0 (Not '')"
    );
    b.set_note(str_note(XEN_ELFNOTE_XEN_VERSION, "xen-2.0"));
    assert_eq!(
        info_of(&b).unwrap_err(),
        NoteError::UnsupportedXenVersion("xen-2.0".into())
    );
    // libelf compares only the first 7 characters.
    b.set_note(str_note(XEN_ELFNOTE_XEN_VERSION, "xen-3.0-unstable"));
    info_of(&b).unwrap();
}

#[test]
fn guest_os_and_loader_rules() {
    let mut b = ElfBuilder::linux();
    b.remove_note(XEN_ELFNOTE_LOADER);
    b.set_note(str_note(XEN_ELFNOTE_GUEST_OS, "NetBSD"));
    let e = info_of(&b).unwrap_err();
    assert_eq!(
        e,
        NoteError::UnsupportedGuest {
            loader: String::new(),
            guest_os: "NetBSD".into()
        }
    );
    assert!(e.to_string().contains("(Not '' and 'NetBSD')"));
    // LOADER=generic admits any OS...
    b.set_note(str_note(XEN_ELFNOTE_LOADER, "generic"));
    info_of(&b).unwrap();
    // ...and GUEST_OS=linux* any loader.
    b.set_note(str_note(XEN_ELFNOTE_LOADER, "elf"));
    b.set_note(str_note(XEN_ELFNOTE_GUEST_OS, "linux-pv"));
    info_of(&b).unwrap();
}

#[test]
fn no_notes_at_all() {
    let mut b = ElfBuilder::linux();
    b.notes.clear();
    let e = info_of(&b).unwrap_err();
    assert_eq!(e, NoteError::NotXenImage);
    assert!(
        e.to_string()
            .contains("No ELF notes or '__xen_guest' section found")
    );
    // Notes present but none from Xen: libelf gets past the first check and fails later.
    b.notes = vec![NoteSpec {
        name: b"GNU\0".to_vec(),
        n_type: 3,
        desc: vec![1; 20],
    }];
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::UnsupportedGuest { .. }
    ));
}

#[test]
fn entry_outside_image() {
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, VIRT_BASE + 0x10_0000, 8));
    let e = info_of(&b).unwrap_err();
    assert!(
        matches!(e, NoteError::AddressesOutOfBounds { entry, .. } if entry == VIRT_BASE + 0x10_0000)
    );
    assert!(
        e.to_string()
            .starts_with("ELF start or entries are out of bounds")
    );
    // Past the end of the image.
    let kend = VIRT_BASE + TEXT_PADDR + 0x38_0000;
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, kend + 1, 8));
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::AddressesOutOfBounds { .. }
    ));
    // The end of the image itself is still accepted (libelf uses `>`).
    b.set_note(num_note(
        XEN_ELFNOTE_ENTRY,
        VIRT_BASE + TEXT_PADDR + 0x38_0000,
        8,
    ));
    info_of(&b).unwrap();
    // Without an ENTRY note, e_entry is used (here the physical address: out of bounds).
    b.remove_note(XEN_ELFNOTE_ENTRY);
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::AddressesOutOfBounds { .. }
    ));
}

#[test]
fn virt_base_above_kernel_and_p2m_inside() {
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_VIRT_BASE, VIRT_BASE + 0x200_0000, 8));
    b.set_note(num_note(XEN_ELFNOTE_PADDR_OFFSET, 0x200_0000, 8));
    // kstart = 0x1000000 + VIRT_BASE < virt_base.
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::AddressesOutOfBounds { .. }
    ));
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(
        XEN_ELFNOTE_INIT_P2M,
        VIRT_BASE + TEXT_PADDR + 0x1000,
        8,
    ));
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::P2mInsideKernel { .. }
    ));
}

#[test]
fn paddr_offset_defaults() {
    let mut b = ElfBuilder::linux();
    b.remove_note(XEN_ELFNOTE_VIRT_BASE);
    assert_eq!(
        info_of(&b).unwrap_err(),
        NoteError::PaddrOffsetWithoutVirtBase
    );
    // Neither: VIRT_BASE 0, PADDR_OFFSET 0, so the kernel is mapped at its p_paddr.
    b.remove_note(XEN_ELFNOTE_PADDR_OFFSET);
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, TEXT_PADDR, 8));
    b.remove_note(XEN_ELFNOTE_HYPERCALL_PAGE);
    b.remove_note(XEN_ELFNOTE_INIT_P2M);
    let info = info_of(&b).unwrap();
    assert_eq!(
        (info.virt_base, info.paddr_offset, info.virt_kstart),
        (0, 0, TEXT_PADDR)
    );
    assert!(
        info.warnings
            .iter()
            .any(|w| w == "ELF: VIRT_BASE unset, using 0")
    );
    // Notes interface with only VIRT_BASE: PADDR_OFFSET defaults to 0.
    let mut b = ElfBuilder::linux();
    b.remove_note(XEN_ELFNOTE_PADDR_OFFSET);
    let info = info_of(&b).unwrap();
    assert_eq!(info.paddr_offset, 0);
    assert!(
        info.warnings
            .iter()
            .any(|w| w == "ELF_PADDR_OFFSET unset, using 0x0")
    );
}

#[test]
fn unset_addr_value_means_unset() {
    // libelf cannot tell a note holding UNSET_ADDR from no note.
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_INIT_P2M, u64::MAX, 8));
    assert_eq!(info_of(&b).unwrap().init_p2m, None);
}

#[test]
fn feature_strings() {
    assert_eq!(features("").unwrap(), (0, 0));
    assert_eq!(features("writable_page_tables").unwrap(), (1, 0));
    assert_eq!(features("!writable_page_tables").unwrap(), (1, 1));
    assert_eq!(
        features("writable_descriptor_tables|!auto_translated_physmap|pae_pgdir_above_4gb|!dom0")
            .unwrap(),
        (0b10110 | 1 << 11, 0b100 | 1 << 11)
    );
    assert_eq!(
        features("hvm_callback_vector|supervisor_mode_kernel").unwrap(),
        (1 << 8 | 1 << 3, 0)
    );
    // Unknown names are ignored, empty ones too, unless required.
    assert_eq!(
        features("||gnttab_map_avoid_flush|dom0|").unwrap(),
        (1 << 11, 0)
    );
    let e = features("dom0|!no_such_feature").unwrap_err();
    assert_eq!(
        e,
        NoteError::UnknownRequiredFeature("no_such_feature".into())
    );
    assert!(e.to_string().contains("'no_such_feature'"));
    // Names are compared whole: a prefix does not count.
    assert_eq!(features("dom").unwrap(), (0, 0));
    // libelf cuts names at 63 bytes and carries on with the rest as the next name.
    let long = format!("{}dom0", "x".repeat(63));
    assert_eq!(features(&long).unwrap(), (1 << 11, 0));
    // Stops at a NUL.
    assert_eq!(features("dom0\0!bogus").unwrap(), (1 << 11, 0));
}

#[test]
fn feature_notes_combine_and_can_fail() {
    let mut b = ElfBuilder::linux();
    b.set_note(str_note(
        XEN_ELFNOTE_FEATURES,
        "!writable_page_tables|pae_pgdir_above_4gb",
    ));
    b.set_note(num_note(XEN_ELFNOTE_SUPPORTED_FEATURES, 1 << 11, 4));
    let info = info_of(&b).unwrap();
    assert_eq!(info.features_supported, [1 | 1 << 4 | 1 << 11]);
    assert_eq!(info.features_required, [1]);
    b.set_note(str_note(XEN_ELFNOTE_FEATURES, "!mystery"));
    assert_eq!(
        info_of(&b).unwrap_err(),
        NoteError::UnknownRequiredFeature("mystery".into())
    );
    // SUPPORTED_FEATURES whose size is not a multiple of 4 contributes nothing (libelf).
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_SUPPORTED_FEATURES, 0x8801, 2));
    assert_eq!(
        info_of(&b).unwrap().features_supported,
        [1],
        "only FEATURES' bit"
    );
    b.set_note(num_note(XEN_ELFNOTE_SUPPORTED_FEATURES, 0x8801, 8));
    assert_eq!(info_of(&b).unwrap().features_supported, [0x8801]);
}

#[test]
fn unknown_and_foreign_notes() {
    let mut b = ElfBuilder::linux();
    b.notes.push(num_note(99, 5, 4));
    b.notes.push(num_note(XEN_ELFNOTE_INFO, 5, 4));
    // A "Xen" note with a different owner name is someone else's.
    b.notes.push(NoteSpec {
        name: b"XenX\0".to_vec(),
        n_type: 1,
        desc: vec![0; 8],
    });
    let info = info_of(&b).unwrap();
    assert_eq!(info.entry, ENTRY);
    assert!(
        info.warnings
            .contains(&"ELF: note: unknown (0x63)".to_string())
    );
    assert!(
        info.warnings
            .contains(&"ELF: note: unknown (0x0)".to_string())
    );
}

#[test]
fn string_notes_pae_and_unterminated() {
    let mut b = ElfBuilder::linux();
    b.set_note(str_note(XEN_ELFNOTE_PAE_MODE, "bimodal"));
    assert_eq!(info_of(&b).unwrap().pae_mode, PaeMode::Bimodal);
    b.set_note(str_note(XEN_ELFNOTE_PAE_MODE, "no"));
    assert_eq!(info_of(&b).unwrap().pae_mode, PaeMode::No);
    // `.ascii` without NUL, as Linux emits FEATURES: the zero padding terminates it.
    let raw = |desc: &[u8]| NoteSpec {
        name: b"Xen\0".to_vec(),
        n_type: XEN_ELFNOTE_GUEST_OS,
        desc: desc.to_vec(),
    };
    b.set_note(raw(b"linux"));
    let info = info_of(&b).unwrap();
    assert_eq!(info.guest_os, "linux");
    assert!(info.warnings.is_empty(), "{:?}", info.warnings);
    // No NUL in descriptor or padding: taken whole, with a warning.
    b.set_note(raw(b"linux-pv"));
    let info = info_of(&b).unwrap();
    assert_eq!(info.guest_os, "linux-pv");
    assert!(
        info.warnings
            .iter()
            .any(|w| w.contains("not NUL-terminated"))
    );
}

#[test]
fn notes_from_sections_when_no_note_segment() {
    let mut b = ElfBuilder::linux();
    b.placement = NotePlacement::SectionOnly;
    let info = info_of(&b).unwrap();
    assert_eq!(info.source, NoteSource::Sections);
    assert_eq!(info.entry, ENTRY);
    // A note segment with p_offset 0 is skipped (binutils bug), so sections are used.
    let mut b = ElfBuilder::linux();
    b.zero_note_offset = true;
    assert_eq!(info_of(&b).unwrap().source, NoteSource::Sections);
}

#[test]
fn eight_byte_aligned_note_area() {
    let mut b = ElfBuilder::linux();
    b.note_align = 8;
    let info = info_of(&b).unwrap();
    assert_eq!(info.entry, ENTRY);
    assert_eq!(info.guest_version, "2.6");
}

#[test]
fn truncated_note_area_is_an_error() {
    let b = ElfBuilder::linux();
    let mut img = b.build();
    // Shrink the PT_NOTE segment's filesz by 3: the last note no longer fits.
    let ph = 64 + 3 * 56;
    let fsz = u64::from_le_bytes(img[ph + 32..ph + 40].try_into().unwrap());
    img[ph + 32..ph + 40].copy_from_slice(&(fsz - 3).to_le_bytes());
    let elf = Elf64::parse(&img).unwrap();
    assert!(matches!(xen_notes::parse(&elf), Err(NoteError::Elf(_))));
}

fn legacy(guest: &str) -> ElfBuilder {
    let mut b = ElfBuilder::linux();
    b.notes.clear();
    b.placement = NotePlacement::SectionOnly;
    // Old kernels put the virtual address in p_paddr.
    for s in &mut b.segments {
        s.paddr = s.vaddr;
    }
    b.entry = VIRT_BASE + TEXT_PADDR + 0x40;
    b.xen_guest = Some(guest.as_bytes().to_vec());
    b
}

#[test]
fn legacy_xen_guest_section() {
    let b = legacy(
        "GUEST_OS=linux,GUEST_VER=2.6,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,\
         ELF_PADDR_OFFSET=0xffffffff80000000,HYPERCALL_PAGE=0x1001,LOADER=generic,\
         FEATURES=writable_page_tables|!pae_pgdir_above_4gb,PAE=yes[extended-cr3],BSD_SYMTAB",
    );
    let info = info_of(&b).unwrap();
    assert_eq!(info.source, NoteSource::LegacyGuestInfo);
    assert_eq!(info.virt_base, VIRT_BASE);
    assert_eq!(info.paddr_offset, VIRT_BASE);
    assert_eq!(info.virt_offset, 0);
    assert_eq!(info.virt_kstart, VIRT_BASE + TEXT_PADDR);
    // A page number, relative to VIRT_BASE.
    assert_eq!(info.hypercall_page, Some(VIRT_BASE + 0x100_1000));
    assert_eq!(
        info.entry,
        VIRT_BASE + TEXT_PADDR + 0x40,
        "e_entry without VIRT_ENTRY"
    );
    assert_eq!(info.features_supported, [1 | 1 << 4]);
    assert_eq!(info.features_required, [1 << 4]);
    assert_eq!(info.pae_mode, PaeMode::ExtendedCr3);
    assert_eq!(info.guest_version, "2.6");
    assert!(info.bsd_symtab);
    assert_eq!(info.notes[0].to_string(), "ELF: GUEST_OS=\"linux\"");
    assert_eq!(info.notes.len(), 10);
}

#[test]
fn legacy_paddr_offset_defaults_to_virt_base() {
    let b = legacy("GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,PAE=yes");
    let info = info_of(&b).unwrap();
    assert_eq!(info.paddr_offset, VIRT_BASE);
    assert_eq!(info.virt_kstart, VIRT_BASE + TEXT_PADDR);
    assert_eq!(info.pae_mode, PaeMode::Yes);
    assert_eq!(info.hypercall_page, None);
    // VIRT_ENTRY, decimal and octal numbers.
    let b = legacy(&format!(
        "GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE={},ELF_PADDR_OFFSET=0,VIRT_ENTRY={}",
        VIRT_BASE,
        VIRT_BASE + TEXT_PADDR + 0x80
    ));
    let mut b = b;
    for s in &mut b.segments {
        s.paddr -= VIRT_BASE;
    }
    let info = info_of(&b).unwrap();
    assert_eq!(info.entry, VIRT_BASE + TEXT_PADDR + 0x80);
    assert_eq!(info.paddr_offset, 0);
}

#[test]
fn legacy_bad_values() {
    let b = legacy("GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0x1ffffffffffffffff");
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::NumberOverflow { .. }
    ));
    let b = legacy("GUEST_OS=linux,XEN_VER=xen-3.0,FEATURES=!bogus");
    assert_eq!(
        info_of(&b).unwrap_err(),
        NoteError::UnknownRequiredFeature("bogus".into())
    );
    let b = legacy("GUEST_OS=plan9,XEN_VER=xen-3.0");
    assert!(matches!(
        info_of(&b).unwrap_err(),
        NoteError::UnsupportedGuest { .. }
    ));
    // Over-long keys are split at 31 bytes like libelf; the pieces are unknown keys.
    let b = legacy(&format!(
        "{}=1,GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000",
        "K".repeat(40)
    ));
    let info = info_of(&b).unwrap();
    assert_eq!(info.notes[0].name.len(), 31);
    assert_eq!(info.notes[1].name, "KKKKKKKKK");
}

#[test]
fn bsd_symtab_extends_the_kernel() {
    let mut b = ElfBuilder::linux();
    b.set_note(str_note(XEN_ELFNOTE_BSD_SYMTAB, "yes"));
    b.symtab = Some((0x30, 0x11));
    let info = info_of(&b).unwrap();
    let pend = TEXT_PADDR + 0x38_0000;
    // 272 bytes of headers, then the tables rounded to 8.
    assert_eq!(
        info.bsd_symtab_range,
        Some((pend, pend + 272 + 0x30 + 0x18))
    );
    assert_eq!(info.virt_kend, VIRT_BASE + pend + 272 + 0x30 + 0x18);
    // Asked for but absent: no change.
    b.symtab = None;
    let info = info_of(&b).unwrap();
    assert_eq!(info.bsd_symtab_range, None);
    assert_eq!(info.virt_kend, VIRT_BASE + pend);
}

#[test]
fn dom0_checks() {
    // SUPPORTED_FEATURES without dom0.
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_SUPPORTED_FEATURES, 0x8001, 4));
    let e = inspect(&b.build()).unwrap_err();
    assert_eq!(e, LoadError::NotDom0Capable);
    assert_eq!(e.to_string(), "Kernel does not support Dom0 operation");
    // Without the note, no claim is checked (old kernels).
    b.remove_note(XEN_ELFNOTE_SUPPORTED_FEATURES);
    inspect(&b.build()).unwrap();
    // Ring-0 kernels cannot be PV dom0.
    let mut b = ElfBuilder::linux();
    b.set_note(str_note(XEN_ELFNOTE_FEATURES, "!supervisor_mode_kernel"));
    assert_eq!(
        inspect(&b.build()).unwrap_err(),
        LoadError::SupervisorModeRequired
    );
    // Mapped over Xen's own range.
    let mut b = ElfBuilder::linux();
    let base = 0xffff_8400_0000_0000;
    b.set_note(num_note(XEN_ELFNOTE_VIRT_BASE, base, 8));
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, base + TEXT_PADDR, 8));
    b.set_note(num_note(XEN_ELFNOTE_HYPERCALL_PAGE, base + TEXT_PADDR, 8));
    let e = inspect(&b.build()).unwrap_err();
    assert!(matches!(e, LoadError::OverlapsXenArea { start, .. } if start == base));
    assert!(
        e.to_string()
            .starts_with("DOM0 image overlaps with Xen private area")
    );
    // Non-canonical.
    let base = 0x0000_8000_0000_0000;
    b.set_note(num_note(XEN_ELFNOTE_VIRT_BASE, base, 8));
    b.set_note(num_note(XEN_ELFNOTE_ENTRY, base + TEXT_PADDR, 8));
    b.set_note(num_note(XEN_ELFNOTE_HYPERCALL_PAGE, base + TEXT_PADDR, 8));
    assert!(matches!(
        inspect(&b.build()).unwrap_err(),
        LoadError::NonCanonical { .. }
    ));
    // Hypercall page below the mapping.
    let mut b = ElfBuilder::linux();
    b.set_note(num_note(XEN_ELFNOTE_HYPERCALL_PAGE, 0x1000, 8));
    let e = inspect(&b.build()).unwrap_err();
    assert!(matches!(
        e,
        LoadError::BadHypercallPage {
            address: 0x1000,
            ..
        }
    ));
}

#[test]
fn inspect_summary_and_segments() {
    let img = ElfBuilder::linux().build();
    let k = inspect(&img).unwrap();
    assert!(
        matches!(k.elf, std::borrow::Cow::Borrowed(_)),
        "plain ELF is not copied"
    );
    assert_eq!(k.segments.len(), 3);
    assert_eq!(k.segments[0].dest, VIRT_BASE + TEXT_PADDR);
    assert_eq!(k.segments[1].dest, VIRT_BASE + TEXT_PADDR + 0x20_0000);
    assert_eq!(k.segment_data(&k.segments[0]), &pattern(0x2000, 1)[..]);
    assert_eq!(
        k.virt_range(),
        (VIRT_BASE + TEXT_PADDR, VIRT_BASE + TEXT_PADDR + 0x38_0000)
    );
    assert_eq!(k.entry(), ENTRY);
    let s = k.to_string();
    for line in [
        "Dom0 kernel image: ELF (",
        "ELF: phdr: paddr=0x1000000 memsz=0x200000",
        "ELF: memory: 0x1000000 -> 0x1380000",
        "ELF: note: ENTRY = 0xffffffff810001c0",
        "ELF: note: FEATURES = \"!writable_page_tables\"",
        "    virt_kstart      = 0xffffffff81000000",
        "    p2m_base         = 0x8000000000",
        " Xen  kernel: 64-bit, lsb",
        " Dom0 kernel: 64-bit, PAE, lsb, paddr 0x1000000 -> 0x1380000",
        " Segment 0: R-X file ",
        " ENTRY ADDRESS: 0xffffffff810001c0",
    ] {
        assert!(s.contains(line), "missing {line:?} in\n{s}");
    }
}

#[test]
fn a_pvh_kernel_loads_at_its_physical_addresses() {
    let img = ElfBuilder::linux().build();
    let k = crate::loader::inspect_pvh(&img, true).unwrap();
    assert_eq!(k.info.phys32_entry, Some(0x100_0300));
    assert!(k.segments.iter().all(|s| s.dest == s.paddr));
    // The PV view of the same kernel places it at VIRT_BASE.
    let pv = inspect(&img).unwrap();
    assert!(pv.segments.iter().all(|s| s.dest == s.paddr + VIRT_BASE));
    let mut b = ElfBuilder::linux();
    b.remove_note(XEN_ELFNOTE_PHYS32_ENTRY);
    assert_eq!(
        crate::loader::inspect_pvh(&b.build(), false).unwrap_err(),
        LoadError::NoPhys32Entry
    );
}
