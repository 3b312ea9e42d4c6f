//! ELF header, program header and note parsing.

use super::builder::*;
use crate::loader::elf::{Elf64, ElfError, NoteIter};
use crate::loader::{LoadError, inspect};

fn parse_err(img: &[u8]) -> ElfError {
    Elf64::parse(img).expect_err("must be rejected")
}

#[test]
fn linux_like_elf_parses() {
    let img = ElfBuilder::linux().build();
    let elf = Elf64::parse(&img).unwrap();
    let loads: Vec<_> = elf.loadable_segments().collect();
    assert_eq!(loads.len(), 3);
    assert_eq!(loads[0].p_paddr, TEXT_PADDR);
    assert_eq!(loads[0].p_filesz, 0x2000);
    assert_eq!(loads[0].p_memsz, 0x20_0000);
    assert_eq!(loads[2].p_filesz, 0);
    assert_eq!(elf.paddr_range(), (TEXT_PADDR, TEXT_PADDR + 0x38_0000));
    assert_eq!(
        elf.segment_data(&loads[1]).unwrap(),
        &pattern(0x1800, 2)[..]
    );
    assert_eq!(elf.section_by_name(b".notes").map(|s| s.sh_type), Some(7));
    assert!(elf.section_by_name(b"__xen_guest").is_none());
}

#[test]
fn not_elf() {
    assert_eq!(
        parse_err(b"MZ\x90\x00 not an ELF at all, long enough to be read"),
        ElfError::NotElf
    );
    assert_eq!(parse_err(b""), ElfError::NotElf);
    assert_eq!(ElfError::NotElf.to_string(), "not an ELF file");
    // And through the front end: no magic it knows.
    let e = inspect(b"MZ\x90\x00 not an ELF at all").unwrap_err();
    assert!(matches!(
        e,
        LoadError::UnknownFormat {
            bzimage: false,
            magic: [b'M', b'Z', 0x90, 0]
        }
    ));
    assert!(e.to_string().contains("4d 5a 90 00"), "{e}");
}

#[test]
fn truncated_header() {
    let img = ElfBuilder::linux().build();
    assert_eq!(parse_err(&img[..40]), ElfError::TruncatedHeader { len: 40 });
    // Header intact, program header table cut off.
    let e = parse_err(&img[..100]);
    assert!(
        matches!(
            e,
            ElfError::TableOutOfBounds {
                table: "program",
                ..
            }
        ),
        "{e:?}"
    );
    // Section header table cut off (it is at the end of the file).
    let e = parse_err(&img[..img.len() - 10]);
    assert!(
        matches!(
            e,
            ElfError::TableOutOfBounds {
                table: "section",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn every_prefix_is_rejected_without_panicking() {
    let img = ElfBuilder::linux().build();
    for len in 0..img.len() {
        assert!(Elf64::parse(&img[..len]).is_err(), "prefix {len} accepted");
        let _ = inspect(&img[..len]);
    }
}

#[test]
fn wrong_class_and_encoding() {
    let mut b = ElfBuilder::linux();
    b.class = 1;
    let e = parse_err(&b.build());
    assert_eq!(e, ElfError::Class32);
    assert_eq!(
        e.to_string(),
        "ELF class 32 not supported for a 64-bit PV kernel"
    );
    b.class = 7;
    assert_eq!(parse_err(&b.build()), ElfError::BadClass(7));
    let mut b = ElfBuilder::linux();
    b.data_enc = 2;
    assert_eq!(parse_err(&b.build()), ElfError::BigEndian);
}

#[test]
fn wrong_machine_and_type() {
    let mut b = ElfBuilder::linux();
    b.machine = 3;
    let e = parse_err(&b.build());
    assert_eq!(e, ElfError::WrongMachine(3));
    assert!(e.to_string().contains("i386"));
    let mut b = ElfBuilder::linux();
    b.e_type = 3; // ET_DYN
    assert_eq!(parse_err(&b.build()), ElfError::NotExecutable(3));
}

#[test]
fn bad_phentsize() {
    let mut img = ElfBuilder::linux().build();
    img[54] = 32;
    assert_eq!(
        parse_err(&img),
        ElfError::BadEntrySize {
            table: "program",
            size: 32
        }
    );
}

#[test]
fn overlapping_segments() {
    let mut b = ElfBuilder::linux();
    // Data segment starts inside the text segment's memsz.
    b.segments[1].paddr = TEXT_PADDR + 0x1f_f000;
    let e = parse_err(&b.build());
    assert_eq!(
        e,
        ElfError::SegmentsOverlap {
            first: 0,
            second: 1
        }
    );
    assert!(e.to_string().starts_with("segments overlap"));
    // Touching is fine.
    let mut b = ElfBuilder::linux();
    b.segments[1].paddr = TEXT_PADDR + 0x20_0000;
    Elf64::parse(&b.build()).unwrap();
    // A segment without permissions is not loadable, so cannot overlap (libelf ignores it).
    let mut b = ElfBuilder::linux();
    b.segments[1].paddr = TEXT_PADDR;
    b.segments[1].flags = 0;
    let img = b.build();
    let elf = Elf64::parse(&img).unwrap();
    assert_eq!(elf.loadable_segments().count(), 2);
}

#[test]
fn filesz_exceeds_memsz() {
    let mut b = ElfBuilder::linux();
    b.segments[1].memsz = 0x1000;
    assert_eq!(
        parse_err(&b.build()),
        ElfError::FileszExceedsMemsz {
            index: 1,
            filesz: 0x1800,
            memsz: 0x1000
        }
    );
}

#[test]
fn segment_outside_file_and_wrapping() {
    let mut img = ElfBuilder::linux().build();
    // p_offset of phdr 0 far past the end.
    img[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        parse_err(&img),
        ElfError::SegmentOutOfBounds { index: 0, .. }
    ));
    let mut b = ElfBuilder::linux();
    b.segments[2].paddr = u64::MAX - 0x1000;
    assert_eq!(parse_err(&b.build()), ElfError::SegmentWraps { index: 2 });
}

#[test]
fn no_loadable_segments() {
    let mut b = ElfBuilder::linux();
    b.segments.clear();
    assert_eq!(parse_err(&b.build()), ElfError::NoLoadableSegments);
}

#[test]
fn note_iteration_and_truncation() {
    let mut area = Vec::new();
    for (name, desc) in [(&b"Xen\0"[..], &b"abc\0"[..]), (b"GNU\0", b"12345")] {
        area.extend_from_slice(&(name.len() as u32).to_le_bytes());
        area.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        area.extend_from_slice(&7u32.to_le_bytes());
        area.extend_from_slice(name);
        area.extend_from_slice(desc);
        while !area.len().is_multiple_of(4) {
            area.push(0);
        }
    }
    let notes: Vec<_> = NoteIter::new(&area, 4).collect::<Result<_, _>>().unwrap();
    assert_eq!(notes.len(), 2);
    assert_eq!(notes[0].name, b"Xen");
    assert_eq!(notes[1].desc, b"12345");
    // Cutting the second descriptor short is an error, not a panic or a silent stop.
    let cut = &area[..area.len() - 4];
    let res: Vec<_> = NoteIter::new(cut, 4).collect();
    assert_eq!(res.len(), 2);
    assert_eq!(res[1], Err(ElfError::TruncatedNote { offset: 20 }));
    // A huge descsz must not overflow.
    let mut bad = area.clone();
    bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(NoteIter::new(&bad, 4).next().unwrap().is_err());
}
