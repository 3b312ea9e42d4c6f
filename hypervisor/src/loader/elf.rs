//! Bounds-checked ELF64 reader for the dom0 kernel (little-endian x86-64 executables only).
//!
//! Mirrors what Xen 4.17's libelf needs from a PV kernel (`xen/common/libelf/libelf-loader.c`,
//! `libelf-tools.c`): the header checks of `elf_init`, the loadable program headers of
//! `elf_parse_binary` (placed by `p_paddr`), note iteration and section lookup by name. Unlike
//! libelf, which quietly returns zeroes for out-of-range reads and marks the image "broken",
//! every read here is checked and a malformed image is an [`ElfError`] naming the problem: the
//! input is a boot module, and the hypervisor must never fault or panic on it.

use core::fmt;

/// `e_ident[EI_CLASS]` value of a 32-bit ELF file.
const ELFCLASS32: u8 = 1;
/// `e_ident[EI_CLASS]` value of a 64-bit ELF file.
const ELFCLASS64: u8 = 2;
/// `e_ident[EI_DATA]`: little-endian.
const ELFDATA2LSB: u8 = 1;
/// `e_ident[EI_DATA]`: big-endian.
const ELFDATA2MSB: u8 = 2;
/// `e_type` of an executable.
pub const ET_EXEC: u16 = 2;
/// `e_machine` of x86-64.
pub const EM_X86_64: u16 = 62;
/// `e_machine` of i386, named in errors because it is the likely mistake.
const EM_386: u16 = 3;

/// Program header type: loadable segment.
pub const PT_LOAD: u32 = 1;
/// Program header type: notes.
pub const PT_NOTE: u32 = 4;
/// Segment flag: executable.
pub const PF_X: u32 = 1;
/// Segment flag: writable.
pub const PF_W: u32 = 2;
/// Segment flag: readable.
pub const PF_R: u32 = 4;

/// Section type: symbol table.
pub const SHT_SYMTAB: u32 = 2;
/// Section type: string table.
pub const SHT_STRTAB: u32 = 3;
/// Section type: notes.
pub const SHT_NOTE: u32 = 7;
/// Section type: occupies no file space (`.bss`).
pub const SHT_NOBITS: u32 = 8;

/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of an ELF64 program header.
pub const PHDR_SIZE: usize = 56;
/// Size of an ELF64 section header.
pub const SHDR_SIZE: usize = 64;
/// Size of a note header (`namesz`, `descsz`, `type`; 32-bit words in both classes).
const NOTE_HDR_SIZE: usize = 12;

/// Everything that can be wrong with an ELF image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElfError {
    /// The image does not start with `\x7fELF`.
    NotElf,
    /// Shorter than an ELF header.
    TruncatedHeader {
        /// Bytes available.
        len: usize,
    },
    /// A 32-bit ELF: Xenolith only runs 64-bit PV kernels.
    Class32,
    /// `EI_CLASS` is neither 32 nor 64-bit.
    BadClass(u8),
    /// Big-endian ELF.
    BigEndian,
    /// `EI_DATA` is neither LSB nor MSB.
    BadDataEncoding(u8),
    /// `e_machine` is not x86-64.
    WrongMachine(u16),
    /// `e_type` is not `ET_EXEC`.
    NotExecutable(u16),
    /// `e_phentsize` / `e_shentsize` is not the ELF64 structure size.
    BadEntrySize {
        /// `"program"` or `"section"`.
        table: &'static str,
        /// The size the header claims.
        size: u16,
    },
    /// A header table lies (partly) outside the image.
    TableOutOfBounds {
        /// `"program"` or `"section"`.
        table: &'static str,
        /// Table file offset.
        offset: u64,
        /// Number of entries.
        count: u16,
        /// Image length.
        len: usize,
    },
    /// A loadable segment's file bytes lie outside the image.
    SegmentOutOfBounds {
        /// Program header index.
        index: usize,
        /// `p_offset`.
        offset: u64,
        /// `p_filesz`.
        filesz: u64,
        /// Image length.
        len: usize,
    },
    /// A loadable segment has more file bytes than memory bytes.
    FileszExceedsMemsz {
        /// Program header index.
        index: usize,
        /// `p_filesz`.
        filesz: u64,
        /// `p_memsz`.
        memsz: u64,
    },
    /// `p_paddr + p_memsz` wraps around the address space.
    SegmentWraps {
        /// Program header index.
        index: usize,
    },
    /// Two loadable segments claim the same physical (load) addresses.
    SegmentsOverlap {
        /// First program header index.
        first: usize,
        /// Second program header index.
        second: usize,
    },
    /// No loadable (`PT_LOAD` with R, W or X) segment at all.
    NoLoadableSegments,
    /// A section's file bytes lie outside the image.
    SectionOutOfBounds {
        /// Section index.
        index: usize,
    },
    /// A note's header, name or descriptor runs past the end of its note area.
    TruncatedNote {
        /// Offset of the note within its area.
        offset: usize,
    },
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(f, "not an ELF file"),
            Self::TruncatedHeader { len } => {
                write!(f, "ELF header truncated: {len} bytes, need {EHDR_SIZE}")
            }
            Self::Class32 => write!(f, "ELF class 32 not supported for a 64-bit PV kernel"),
            Self::BadClass(c) => write!(f, "invalid ELF class {c}"),
            Self::BigEndian => write!(f, "big-endian ELF not supported on x86-64"),
            Self::BadDataEncoding(d) => write!(f, "invalid ELF data encoding {d}"),
            Self::WrongMachine(m) if *m == EM_386 => {
                write!(f, "ELF machine {m} (i386) is not x86-64")
            }
            Self::WrongMachine(m) => write!(f, "ELF machine {m} is not x86-64 ({EM_X86_64})"),
            Self::NotExecutable(t) => {
                write!(f, "ELF type {t} is not an executable (ET_EXEC = {ET_EXEC})")
            }
            Self::BadEntrySize { table, size } => {
                write!(
                    f,
                    "ELF {table} header entry size {size} is not the ELF64 size"
                )
            }
            Self::TableOutOfBounds {
                table,
                offset,
                count,
                len,
            } => write!(
                f,
                "ELF {table} header table ({count} entries at {offset:#x}) overflows the \
                 {len}-byte image"
            ),
            Self::SegmentOutOfBounds {
                index,
                offset,
                filesz,
                len,
            } => write!(
                f,
                "ELF segment {index}: file bytes {offset:#x}+{filesz:#x} lie outside the \
                 {len}-byte image"
            ),
            Self::FileszExceedsMemsz {
                index,
                filesz,
                memsz,
            } => write!(
                f,
                "ELF segment {index}: filesz {filesz:#x} exceeds memsz {memsz:#x}"
            ),
            Self::SegmentWraps { index } => {
                write!(f, "ELF segment {index}: paddr + memsz wraps around")
            }
            Self::SegmentsOverlap { first, second } => {
                write!(f, "segments overlap: ELF segments {first} and {second}")
            }
            Self::NoLoadableSegments => write!(f, "ELF has no loadable segments"),
            Self::SectionOutOfBounds { index } => {
                write!(f, "ELF section {index} lies outside the image")
            }
            Self::TruncatedNote { offset } => {
                write!(
                    f,
                    "ELF note at offset {offset:#x} runs past the end of its note area"
                )
            }
        }
    }
}

/// Reads a little-endian integer of `N` bytes at `off`, or `None` past the end.
fn le<const N: usize>(data: &[u8], off: usize) -> Option<[u8; N]> {
    data.get(off..off.checked_add(N)?)?.try_into().ok()
}

/// Little-endian `u16` at `off`.
pub(crate) fn u16_at(data: &[u8], off: usize) -> Option<u16> {
    le::<2>(data, off).map(u16::from_le_bytes)
}

/// Little-endian `u32` at `off`.
pub(crate) fn u32_at(data: &[u8], off: usize) -> Option<u32> {
    le::<4>(data, off).map(u32::from_le_bytes)
}

/// Little-endian `u64` at `off`.
pub(crate) fn u64_at(data: &[u8], off: usize) -> Option<u64> {
    le::<8>(data, off).map(u64::from_le_bytes)
}

/// The `[offset, offset + size)` slice of `data`, or `None` if any of it is outside.
fn range(data: &[u8], offset: u64, size: u64) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    let size = usize::try_from(size).ok()?;
    data.get(start..start.checked_add(size)?)
}

/// The fields of the ELF64 file header that the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// `e_type`.
    pub e_type: u16,
    /// `e_machine`.
    pub e_machine: u16,
    /// `e_entry`: the fallback entry point when no ENTRY note exists.
    pub e_entry: u64,
    /// `e_phoff`.
    pub e_phoff: u64,
    /// `e_shoff`.
    pub e_shoff: u64,
    /// `e_ehsize`.
    pub e_ehsize: u16,
    /// `e_phnum`.
    pub e_phnum: u16,
    /// `e_shentsize`.
    pub e_shentsize: u16,
    /// `e_shnum`.
    pub e_shnum: u16,
    /// `e_shstrndx`.
    pub e_shstrndx: u16,
}

/// One ELF64 program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Index in the program header table.
    pub index: usize,
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags` (`PF_R | PF_W | PF_X`).
    pub p_flags: u32,
    /// `p_offset`.
    pub p_offset: u64,
    /// `p_vaddr`.
    pub p_vaddr: u64,
    /// `p_paddr`: where libelf places the segment (relative to the lowest one).
    pub p_paddr: u64,
    /// `p_filesz`.
    pub p_filesz: u64,
    /// `p_memsz`.
    pub p_memsz: u64,
    /// `p_align`.
    pub p_align: u64,
}

impl ProgramHeader {
    /// libelf's `elf_phdr_is_loadable`: a `PT_LOAD` with at least one of R, W, X. A `PT_LOAD`
    /// without permissions is ignored by Xen, so it is ignored here too.
    pub fn is_loadable(&self) -> bool {
        self.p_type == PT_LOAD && self.p_flags & (PF_R | PF_W | PF_X) != 0
    }
}

/// One ELF64 section header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SectionHeader {
    /// Index in the section header table.
    pub index: usize,
    /// `sh_name` (offset into the section name string table).
    pub sh_name: u32,
    /// `sh_type`.
    pub sh_type: u32,
    /// `sh_offset`.
    pub sh_offset: u64,
    /// `sh_size`.
    pub sh_size: u64,
    /// `sh_link`.
    pub sh_link: u32,
    /// `sh_addralign`.
    pub sh_addralign: u64,
}

/// A validated ELF64 x86-64 executable borrowed from its bytes.
///
/// [`Elf64::parse`] checks the header and both header tables, and every loadable segment
/// (file bytes inside the image, `filesz <= memsz`, no wrap-around, no two overlapping in
/// physical load address), so users may rely on those properties.
#[derive(Clone, Debug)]
pub struct Elf64<'a> {
    /// The whole image.
    data: &'a [u8],
    /// The decoded file header.
    header: FileHeader,
}

impl<'a> Elf64<'a> {
    /// Validates `data` as a 64-bit little-endian x86-64 executable.
    pub fn parse(data: &'a [u8]) -> Result<Self, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf);
        }
        if data.len() < EHDR_SIZE {
            return Err(ElfError::TruncatedHeader { len: data.len() });
        }
        match data[4] {
            ELFCLASS64 => {}
            ELFCLASS32 => return Err(ElfError::Class32),
            c => return Err(ElfError::BadClass(c)),
        }
        match data[5] {
            ELFDATA2LSB => {}
            ELFDATA2MSB => return Err(ElfError::BigEndian),
            d => return Err(ElfError::BadDataEncoding(d)),
        }
        // The length check above makes every header read below succeed; `unwrap_or(0)` only
        // keeps the code free of panicking paths.
        let h16 = |off| u16_at(data, off).unwrap_or(0);
        let h64 = |off| u64_at(data, off).unwrap_or(0);
        let header = FileHeader {
            e_type: h16(16),
            e_machine: h16(18),
            e_entry: h64(24),
            e_phoff: h64(32),
            e_shoff: h64(40),
            e_ehsize: h16(52),
            e_phnum: h16(56),
            e_shentsize: h16(58),
            e_shnum: h16(60),
            e_shstrndx: h16(62),
        };
        let e_phentsize = h16(54);
        if header.e_machine != EM_X86_64 {
            return Err(ElfError::WrongMachine(header.e_machine));
        }
        if header.e_type != ET_EXEC {
            return Err(ElfError::NotExecutable(header.e_type));
        }
        // libelf indexes tables by the entry size the file claims but reads fixed-layout
        // structures, so anything but the real size would make it read garbage.
        if header.e_phnum != 0 && usize::from(e_phentsize) != PHDR_SIZE {
            return Err(ElfError::BadEntrySize {
                table: "program",
                size: e_phentsize,
            });
        }
        if header.e_shnum != 0 && usize::from(header.e_shentsize) != SHDR_SIZE {
            return Err(ElfError::BadEntrySize {
                table: "section",
                size: header.e_shentsize,
            });
        }
        // elf_init's "phdr overflow" / "shdr overflow" checks.
        let table_fits = |offset: u64, count: u16, size: usize| {
            count == 0 || range(data, offset, u64::from(count) * size as u64).is_some()
        };
        if !table_fits(header.e_phoff, header.e_phnum, PHDR_SIZE) {
            return Err(ElfError::TableOutOfBounds {
                table: "program",
                offset: header.e_phoff,
                count: header.e_phnum,
                len: data.len(),
            });
        }
        if !table_fits(header.e_shoff, header.e_shnum, SHDR_SIZE) {
            return Err(ElfError::TableOutOfBounds {
                table: "section",
                offset: header.e_shoff,
                count: header.e_shnum,
                len: data.len(),
            });
        }
        let elf = Self { data, header };
        elf.check_segments()?;
        Ok(elf)
    }

    /// Checks every loadable segment on its own, then pairwise for overlap.
    fn check_segments(&self) -> Result<(), ElfError> {
        let mut any = false;
        for ph in self.loadable_segments() {
            any = true;
            if ph.p_filesz > ph.p_memsz {
                return Err(ElfError::FileszExceedsMemsz {
                    index: ph.index,
                    filesz: ph.p_filesz,
                    memsz: ph.p_memsz,
                });
            }
            if range(self.data, ph.p_offset, ph.p_filesz).is_none() {
                return Err(ElfError::SegmentOutOfBounds {
                    index: ph.index,
                    offset: ph.p_offset,
                    filesz: ph.p_filesz,
                    len: self.data.len(),
                });
            }
            if ph.p_paddr.checked_add(ph.p_memsz).is_none() {
                return Err(ElfError::SegmentWraps { index: ph.index });
            }
        }
        if !any {
            return Err(ElfError::NoLoadableSegments);
        }
        // Segments are copied to their p_paddr slot; overlapping ones would silently clobber
        // each other. At most 65535 headers, and kernels have a handful: O(n^2) is fine.
        for a in self.loadable_segments() {
            for b in self.loadable_segments().filter(|b| b.index > a.index) {
                let disjoint = a.p_memsz == 0
                    || b.p_memsz == 0
                    || a.p_paddr + a.p_memsz <= b.p_paddr
                    || b.p_paddr + b.p_memsz <= a.p_paddr;
                if !disjoint {
                    return Err(ElfError::SegmentsOverlap {
                        first: a.index,
                        second: b.index,
                    });
                }
            }
        }
        Ok(())
    }

    /// The image bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// The file header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// Program header `index`, if it exists.
    pub fn program_header(&self, index: usize) -> Option<ProgramHeader> {
        if index >= usize::from(self.header.e_phnum) {
            return None;
        }
        let base = usize::try_from(self.header.e_phoff)
            .ok()?
            .checked_add(index.checked_mul(PHDR_SIZE)?)?;
        let d = self.data;
        Some(ProgramHeader {
            index,
            p_type: u32_at(d, base)?,
            p_flags: u32_at(d, base + 4)?,
            p_offset: u64_at(d, base + 8)?,
            p_vaddr: u64_at(d, base + 16)?,
            p_paddr: u64_at(d, base + 24)?,
            p_filesz: u64_at(d, base + 32)?,
            p_memsz: u64_at(d, base + 40)?,
            p_align: u64_at(d, base + 48)?,
        })
    }

    /// All program headers in table order.
    pub fn program_headers(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        (0..usize::from(self.header.e_phnum)).filter_map(|i| self.program_header(i))
    }

    /// The loadable segments (see [`ProgramHeader::is_loadable`]) in table order.
    pub fn loadable_segments(&self) -> impl Iterator<Item = ProgramHeader> + '_ {
        self.program_headers().filter(ProgramHeader::is_loadable)
    }

    /// libelf's `elf->pstart` / `elf->pend`: the lowest `p_paddr` and the highest
    /// `p_paddr + p_memsz` over the loadable segments.
    pub fn paddr_range(&self) -> (u64, u64) {
        self.loadable_segments()
            .fold((u64::MAX, 0), |(lo, hi), ph| {
                (
                    lo.min(ph.p_paddr),
                    hi.max(ph.p_paddr.saturating_add(ph.p_memsz)),
                )
            })
    }

    /// The file bytes of a segment (`p_offset .. p_offset + p_filesz`), if inside the image.
    pub fn segment_data(&self, ph: &ProgramHeader) -> Option<&'a [u8]> {
        range(self.data, ph.p_offset, ph.p_filesz)
    }

    /// Section header `index`, if it exists.
    pub fn section_header(&self, index: usize) -> Option<SectionHeader> {
        if index >= usize::from(self.header.e_shnum) {
            return None;
        }
        let base = usize::try_from(self.header.e_shoff)
            .ok()?
            .checked_add(index.checked_mul(SHDR_SIZE)?)?;
        let d = self.data;
        Some(SectionHeader {
            index,
            sh_name: u32_at(d, base)?,
            sh_type: u32_at(d, base + 4)?,
            sh_offset: u64_at(d, base + 24)?,
            sh_size: u64_at(d, base + 32)?,
            sh_link: u32_at(d, base + 40)?,
            sh_addralign: u64_at(d, base + 48)?,
        })
    }

    /// All section headers in table order.
    pub fn section_headers(&self) -> impl Iterator<Item = SectionHeader> + '_ {
        (0..usize::from(self.header.e_shnum)).filter_map(|i| self.section_header(i))
    }

    /// The file bytes of a section. `SHT_NOBITS` sections have none (empty slice).
    pub fn section_data(&self, sh: &SectionHeader) -> Result<&'a [u8], ElfError> {
        if sh.sh_type == SHT_NOBITS {
            return Ok(&[]);
        }
        range(self.data, sh.sh_offset, sh.sh_size)
            .ok_or(ElfError::SectionOutOfBounds { index: sh.index })
    }

    /// A section's name from the section name string table, without the NUL; `None` when the
    /// file has no usable string table or the name offset is out of range.
    pub fn section_name(&self, sh: &SectionHeader) -> Option<&'a [u8]> {
        let strtab = self.section_header(usize::from(self.header.e_shstrndx))?;
        let table = self.section_data(&strtab).ok()?;
        let start = table.get(usize::try_from(sh.sh_name).ok()?..)?;
        let end = start.iter().position(|&b| b == 0)?;
        Some(&start[..end])
    }

    /// libelf's `elf_shdr_by_name`: the first section called `name`.
    pub fn section_by_name(&self, name: &[u8]) -> Option<SectionHeader> {
        self.section_headers()
            .find(|sh| self.section_name(sh) == Some(name))
    }
}

/// One note from a `PT_NOTE` segment or `SHT_NOTE` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Note<'a> {
    /// Offset of the note header within its note area.
    pub offset: usize,
    /// The owner name up to (not including) its first NUL: `b"Xen"` for Xen notes.
    pub name: &'a [u8],
    /// `n_type`.
    pub n_type: u32,
    /// The descriptor, exactly `descsz` bytes.
    pub desc: &'a [u8],
    /// The padding after the descriptor (up to the next note or the area's end). Producers
    /// that emit string notes with `.ascii` rely on its zeroes as the terminator.
    pub padding: &'a [u8],
}

/// Iterator over the notes of one note area; yields an error and stops at a note that does
/// not fit in the area.
#[derive(Clone, Debug)]
pub struct NoteIter<'a> {
    /// The note area.
    area: &'a [u8],
    /// Offset of the next note header.
    pos: usize,
    /// Padding granularity of name and descriptor (4 or 8).
    align: usize,
    /// Set after an error so iteration ends.
    done: bool,
}

impl<'a> NoteIter<'a> {
    /// Iterates the notes in `area`, a segment or section whose alignment is `area_align`.
    ///
    /// Xen 4.17 pads name and descriptor to 4 bytes whatever the container says, which is what
    /// Linux (and most producers) emit even in 64-bit files. Later libelf adopted GNU
    /// readelf's rule, 8-byte padding when the area is aligned to more than 4, which is
    /// identical for those files and also reads gABI-conforming 8-aligned note areas.
    pub fn new(area: &'a [u8], area_align: u64) -> Self {
        let align = if area_align > 4 { 8 } else { 4 };
        Self {
            area,
            pos: 0,
            align,
            done: false,
        }
    }

    /// Rounds `n` up to the padding granularity.
    fn pad(&self, n: usize) -> Option<usize> {
        n.checked_add(self.align - 1).map(|v| v & !(self.align - 1))
    }

    /// Decodes the note at `self.pos` and returns it with the offset of the next one.
    fn decode(&self) -> Option<(Note<'a>, usize)> {
        let at = self.pos;
        let namesz = usize::try_from(u32_at(self.area, at)?).ok()?;
        let descsz = usize::try_from(u32_at(self.area, at + 4)?).ok()?;
        let n_type = u32_at(self.area, at + 8)?;
        let name_start = at + NOTE_HDR_SIZE;
        let name_field = self.area.get(name_start..name_start.checked_add(namesz)?)?;
        let desc_start = self.pad(name_start.checked_add(namesz)?)?;
        let desc = self.area.get(desc_start..desc_start.checked_add(descsz)?)?;
        let desc_end = desc_start + descsz;
        let next = self.pad(desc_end)?;
        let padding = self
            .area
            .get(desc_end..next.min(self.area.len()))
            .unwrap_or_default();
        let name_len = name_field
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_field.len());
        let note = Note {
            offset: at,
            name: &name_field[..name_len],
            n_type,
            desc,
            padding,
        };
        Some((note, next))
    }
}

impl<'a> Iterator for NoteIter<'a> {
    type Item = Result<Note<'a>, ElfError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.area.len() {
            return None;
        }
        match self.decode() {
            Some((note, next)) => {
                // `next` is strictly greater than `pos` (a note header is 12 bytes), so the
                // loop always advances; a final note whose padding runs past the area is fine.
                self.pos = next;
                Some(Ok(note))
            }
            None => {
                self.done = true;
                Some(Err(ElfError::TruncatedNote { offset: self.pos }))
            }
        }
    }
}
