//! A minimal ELF64 reader (file header and program headers only; no `readelf`) and the
//! multiboot1 "address kludge" invariant.
//!
//! With the kludge a loader copies the file verbatim from one offset to one physical address
//! instead of interpreting the program headers, so the image is only loaded correctly if every
//! PT_LOAD sits at the same distance between file offset and physical address, and the segments
//! follow each other in physical memory without overlapping.

use crate::error::{Error, Result};

/// `p_type` of a loadable segment.
pub const PT_LOAD: u32 = 1;
/// `p_flags` bit: executable.
pub const PF_X: u32 = 1;
/// `e_machine` for x86-64.
pub const EM_X86_64: u16 = 62;
/// Size of the ELF64 file header.
pub const EHDR_SIZE: usize = 64;
/// Size of one ELF64 program header.
pub const PHDR_SIZE: usize = 56;

/// One program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramHeader {
    /// Segment type (`PT_LOAD` = 1).
    pub p_type: u32,
    /// Permission flags (`PF_X` = 1, W = 2, R = 4).
    pub p_flags: u32,
    /// File offset of the segment's bytes.
    pub p_offset: u64,
    /// Virtual address.
    pub p_vaddr: u64,
    /// Physical (load) address.
    pub p_paddr: u64,
    /// Bytes present in the file.
    pub p_filesz: u64,
    /// Bytes in memory (the excess over `p_filesz` is zero-filled).
    pub p_memsz: u64,
    /// Alignment.
    pub p_align: u64,
}

impl ProgramHeader {
    /// Whether this is a PT_LOAD segment.
    pub fn is_load(&self) -> bool {
        self.p_type == PT_LOAD
    }

    /// Whether the segment is executable.
    pub fn is_exec(&self) -> bool {
        self.p_flags & PF_X != 0
    }

    /// `p_offset - p_paddr`, the distance the kludge requires to be the same for all PT_LOADs.
    pub fn offset_delta(&self) -> i128 {
        i128::from(self.p_offset) - i128::from(self.p_paddr)
    }

    /// End of the segment's file-backed bytes in physical memory (exclusive).
    pub fn paddr_file_end(&self) -> u64 {
        self.p_paddr.saturating_add(self.p_filesz)
    }

    /// End of the segment in physical memory (exclusive).
    pub fn paddr_mem_end(&self) -> u64 {
        self.p_paddr.saturating_add(self.p_memsz)
    }
}

/// The parts of an ELF64 file the checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elf64 {
    /// `e_type` (2 = executable).
    pub e_type: u16,
    /// `e_machine` (62 = x86-64).
    pub e_machine: u16,
    /// `e_entry`.
    pub entry: u64,
    /// All program headers, in file order.
    pub program_headers: Vec<ProgramHeader>,
    /// Length of the file.
    pub file_len: u64,
}

fn u16_at(b: &[u8], off: usize) -> Result<u16> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| Error::new(format!("ELF truncated at offset {off:#x}")))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32> {
    let s = b
        .get(off..off + 4)
        .ok_or_else(|| Error::new(format!("ELF truncated at offset {off:#x}")))?;
    Ok(u32::from_le_bytes(s.try_into().expect("4 bytes")))
}

fn u64_at(b: &[u8], off: usize) -> Result<u64> {
    let s = b
        .get(off..off + 8)
        .ok_or_else(|| Error::new(format!("ELF truncated at offset {off:#x}")))?;
    Ok(u64::from_le_bytes(s.try_into().expect("8 bytes")))
}

/// Reads a little-endian `u32` at `off`, if in bounds.
pub fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    u32_at(b, off).ok()
}

impl Elf64 {
    /// Parses the file header and program headers of a little-endian ELF64 image.
    pub fn parse(bytes: &[u8]) -> Result<Elf64> {
        if bytes.len() < EHDR_SIZE || &bytes[0..4] != b"\x7fELF" {
            return Err(Error::new("not an ELF file"));
        }
        if bytes[4] != 2 {
            return Err(Error::new(format!("ELF class {} is not ELF64", bytes[4])));
        }
        if bytes[5] != 1 {
            return Err(Error::new("ELF is not little-endian"));
        }
        let e_type = u16_at(bytes, 0x10)?;
        let e_machine = u16_at(bytes, 0x12)?;
        let entry = u64_at(bytes, 0x18)?;
        let phoff = u64_at(bytes, 0x20)?;
        let phentsize = usize::from(u16_at(bytes, 0x36)?);
        let phnum = usize::from(u16_at(bytes, 0x38)?);
        if phnum > 0 && phentsize < PHDR_SIZE {
            return Err(Error::new(format!("e_phentsize {phentsize} is too small")));
        }
        let phoff = usize::try_from(phoff).map_err(|_| Error::new("e_phoff out of range"))?;
        let mut program_headers = Vec::with_capacity(phnum);
        for i in 0..phnum {
            let base = phentsize
                .checked_mul(i)
                .and_then(|o| o.checked_add(phoff))
                .ok_or_else(|| Error::new("program header table out of range"))?;
            program_headers.push(ProgramHeader {
                p_type: u32_at(bytes, base)?,
                p_flags: u32_at(bytes, base + 4)?,
                p_offset: u64_at(bytes, base + 8)?,
                p_vaddr: u64_at(bytes, base + 16)?,
                p_paddr: u64_at(bytes, base + 24)?,
                p_filesz: u64_at(bytes, base + 32)?,
                p_memsz: u64_at(bytes, base + 40)?,
                p_align: u64_at(bytes, base + 48)?,
            });
        }
        Ok(Elf64 {
            e_type,
            e_machine,
            entry,
            program_headers,
            file_len: bytes.len() as u64,
        })
    }

    /// The PT_LOAD segments, in file order.
    pub fn load_segments(&self) -> Vec<ProgramHeader> {
        self.program_headers
            .iter()
            .filter(|p| p.is_load())
            .copied()
            .collect()
    }
}

/// Formats a signed value as `0x..` / `-0x..`.
pub fn signed_hex(v: i128) -> String {
    if v < 0 {
        format!("-{:#x}", v.unsigned_abs())
    } else {
        format!("{v:#x}")
    }
}

/// The physical layout of an image whose PT_LOADs satisfy the kludge invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadLayout {
    /// The common `p_offset - p_paddr`.
    pub delta: i128,
    /// Lowest physical address of any PT_LOAD.
    pub start: u64,
    /// End (exclusive) of the last file-backed byte in physical memory.
    pub file_end: u64,
    /// End (exclusive) of the image in memory, including zero-filled parts.
    pub mem_end: u64,
    /// The PT_LOADs sorted by physical address.
    pub segments: Vec<ProgramHeader>,
}

impl LoadLayout {
    /// The file offset that holds physical address `paddr` (may be out of the file).
    pub fn file_offset_of(&self, paddr: u64) -> i128 {
        i128::from(paddr) + self.delta
    }

    /// Whether `paddr` lies in the file-backed part of an executable segment.
    pub fn is_executable_paddr(&self, paddr: u64) -> bool {
        self.segments
            .iter()
            .any(|s| s.is_exec() && s.p_paddr <= paddr && paddr < s.paddr_file_end())
    }
}

/// Checks the multiboot1 address-kludge invariant on an ELF image and returns its layout:
/// - there is at least one PT_LOAD;
/// - every PT_LOAD has the same `p_offset - p_paddr`, and its file bytes lie inside the file;
/// - `p_filesz <= p_memsz`;
/// - sorted by `p_paddr`, segments do not overlap, and the hole before each one is smaller
///   than its alignment (at least 4 KiB), i.e. they are contiguous up to alignment padding;
/// - everything is below 4 GiB (multiboot loaders are 32-bit).
pub fn check_kludge_invariant(elf: &Elf64) -> Result<LoadLayout> {
    let mut segs = elf.load_segments();
    let first = *segs
        .first()
        .ok_or_else(|| Error::new("no PT_LOAD segments"))?;
    let delta = first.offset_delta();
    let mut problems = Vec::new();
    for s in &segs {
        if s.offset_delta() != delta {
            problems.push(format!(
                "PT_LOAD at paddr {:#x} (p_offset {:#x}) has p_offset - p_paddr = {}, expected {} \
                 (first PT_LOAD: p_offset {:#x}, p_paddr {:#x})",
                s.p_paddr,
                s.p_offset,
                signed_hex(s.offset_delta()),
                signed_hex(delta),
                first.p_offset,
                first.p_paddr
            ));
        }
        if s.p_filesz > s.p_memsz {
            problems.push(format!(
                "PT_LOAD at paddr {:#x} has p_filesz {:#x} > p_memsz {:#x}",
                s.p_paddr, s.p_filesz, s.p_memsz
            ));
        }
        if s.p_offset
            .checked_add(s.p_filesz)
            .is_none_or(|e| e > elf.file_len)
        {
            problems.push(format!(
                "PT_LOAD at paddr {:#x}: file bytes [{:#x}, +{:#x}) extend past the end of the \
                 file ({:#x})",
                s.p_paddr, s.p_offset, s.p_filesz, elf.file_len
            ));
        }
        if s.p_paddr.checked_add(s.p_memsz).is_none_or(|e| e > 1 << 32) {
            problems.push(format!(
                "PT_LOAD at paddr {:#x} (memsz {:#x}) does not end below 4 GiB",
                s.p_paddr, s.p_memsz
            ));
        }
    }
    segs.sort_by_key(|s| s.p_paddr);
    for pair in segs.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let a_end = a.paddr_mem_end();
        if b.p_paddr < a_end {
            problems.push(format!(
                "PT_LOADs overlap in physical memory: [{:#x}, {:#x}) and [{:#x}, {:#x})",
                a.p_paddr,
                a_end,
                b.p_paddr,
                b.paddr_mem_end()
            ));
        } else {
            let gap = b.p_paddr - a_end;
            let allowed = b.p_align.max(0x1000);
            if gap >= allowed {
                problems.push(format!(
                    "PT_LOADs are not contiguous: a hole of {gap:#x} bytes between {a_end:#x} and \
                     {:#x} (alignment {:#x})",
                    b.p_paddr, b.p_align
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::new(problems.join("\n")));
    }
    Ok(LoadLayout {
        delta,
        start: segs[0].p_paddr,
        file_end: segs.iter().map(|s| s.paddr_file_end()).max().unwrap_or(0),
        mem_end: segs.iter().map(|s| s.paddr_mem_end()).max().unwrap_or(0),
        segments: segs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn patch_u64(b: &mut [u8], off: usize, v: u64) {
        b[off..off + 8].copy_from_slice(&v.to_le_bytes());
    }

    fn phdr_field(i: usize, field: usize) -> usize {
        synth::PHDR_OFFSET + i * PHDR_SIZE + field
    }

    #[test]
    fn parses_synthetic_elf() {
        let img = synth::tiny_kernel();
        let elf = Elf64::parse(&img).unwrap();
        assert_eq!(elf.e_machine, EM_X86_64);
        assert_eq!(elf.e_type, 2);
        assert_eq!(elf.entry, synth::ENTRY_VADDR);
        assert_eq!(elf.file_len, img.len() as u64);
        let loads = elf.load_segments();
        assert_eq!(loads.len(), 2);
        assert_eq!(loads[0].p_paddr, synth::LOAD_ADDR);
        assert_eq!(loads[0].p_offset, 0);
        assert!(!loads[0].is_exec());
        assert_eq!(loads[1].p_paddr, synth::CODE_PADDR);
        assert!(loads[1].is_exec());
        assert_eq!(loads[1].p_memsz, synth::CODE_MEMSZ);
        // The non-PT_LOAD (GNU_STACK) header is parsed but not a load segment.
        assert_eq!(elf.program_headers.len(), 3);
    }

    #[test]
    fn rejects_non_elf64() {
        assert!(
            Elf64::parse(b"not an elf at all, definitely not one at all.....................")
                .is_err()
        );
        let mut img = synth::tiny_kernel();
        img[4] = 1; // ELFCLASS32
        assert!(Elf64::parse(&img).is_err());
        let img = synth::tiny_kernel();
        assert!(
            Elf64::parse(&img[..EHDR_SIZE + 10]).is_err(),
            "truncated phdrs"
        );
    }

    #[test]
    fn synthetic_elf_satisfies_the_invariant() {
        let elf = Elf64::parse(&synth::tiny_kernel()).unwrap();
        let layout = check_kludge_invariant(&elf).unwrap();
        assert_eq!(layout.delta, -i128::from(synth::LOAD_ADDR));
        assert_eq!(layout.start, synth::LOAD_ADDR);
        assert_eq!(layout.mem_end, synth::CODE_PADDR + synth::CODE_MEMSZ);
        assert!(layout.is_executable_paddr(synth::CODE_PADDR));
        assert!(!layout.is_executable_paddr(synth::LOAD_ADDR));
    }

    #[test]
    fn detects_a_different_offset_delta() {
        let mut img = synth::tiny_kernel();
        // Move the code segment's physical address up a page: same file offset, new delta.
        patch_u64(&mut img, phdr_field(1, 24), synth::CODE_PADDR + 0x1000);
        let err = check_kludge_invariant(&Elf64::parse(&img).unwrap()).unwrap_err();
        assert!(err.0.contains("p_offset - p_paddr"), "{err}");
    }

    #[test]
    fn detects_overlap_and_holes() {
        // Overlap: the first segment grows into the second in memory.
        let mut img = synth::tiny_kernel();
        patch_u64(&mut img, phdr_field(0, 40), 0x1800);
        let err = check_kludge_invariant(&Elf64::parse(&img).unwrap()).unwrap_err();
        assert!(err.0.contains("overlap"), "{err}");

        // Hole: move the code segment 1 MiB up, keeping the delta (so it leaves the file too).
        let mut img = synth::tiny_kernel();
        patch_u64(&mut img, phdr_field(1, 8), 0x1000 + 0x10_0000);
        patch_u64(&mut img, phdr_field(1, 24), synth::CODE_PADDR + 0x10_0000);
        let err = check_kludge_invariant(&Elf64::parse(&img).unwrap()).unwrap_err();
        assert!(err.0.contains("not contiguous"), "{err}");
        assert!(err.0.contains("past the end of the file"), "{err}");
    }

    #[test]
    fn detects_filesz_above_memsz_and_no_loads() {
        let mut img = synth::tiny_kernel();
        patch_u64(&mut img, phdr_field(0, 32), 0x2000);
        let err = check_kludge_invariant(&Elf64::parse(&img).unwrap()).unwrap_err();
        assert!(err.0.contains("p_filesz"), "{err}");

        let mut img = synth::tiny_kernel();
        for i in 0..3 {
            img[phdr_field(i, 0)..phdr_field(i, 4)].copy_from_slice(&6u32.to_le_bytes());
        }
        assert!(check_kludge_invariant(&Elf64::parse(&img).unwrap()).is_err());
    }
}
