//! Locating the multiboot1 and multiboot2 headers in an image and checking their load
//! addresses against the ELF program headers.
//!
//! Both loaders (QEMU `-kernel` for multiboot1, GRUB for either) load a Xenolith image through
//! the header's address fields rather than the ELF program headers: the file bytes from the
//! offset of `load_addr` up to `load_end_addr` are copied verbatim to `load_addr`, memory up to
//! `bss_end_addr` is zeroed, and execution starts at `entry_addr` in 32-bit protected mode.

use crate::elf::{Elf64, LoadLayout, check_kludge_invariant, read_u32};
use crate::error::{Error, Result};

/// Multiboot1 header magic.
pub const MB1_MAGIC: u32 = 0x1BAD_B002;
/// Multiboot1 headers must lie within this many bytes of the file start.
pub const MB1_SEARCH_LEN: usize = 8192;
/// Multiboot1 `flags` bit 16: the address fields are valid (the "a.out kludge").
pub const MB1_FLAG_ADDRESS: u32 = 1 << 16;
/// Multiboot2 header magic.
pub const MB2_MAGIC: u32 = 0xE852_50D6;
/// Multiboot2 headers must lie within this many bytes of the file start.
pub const MB2_SEARCH_LEN: usize = 32768;
/// Multiboot2 header tag: address.
pub const MB2_TAG_ADDRESS: u16 = 2;
/// Multiboot2 header tag: entry address.
pub const MB2_TAG_ENTRY: u16 = 3;
/// Loaders place nothing below 1 MiB (BIOS data, option ROMs, GRUB itself).
pub const MIN_LOAD_ADDR: u32 = 0x10_0000;

/// The address fields shared by the multiboot1 kludge and the multiboot2 address/entry tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressFields {
    /// Physical address of the header itself.
    pub header_addr: u32,
    /// Physical address of the first loaded byte.
    pub load_addr: u32,
    /// End of the loaded file bytes (0: up to the end of the file).
    pub load_end_addr: u32,
    /// End of the zero-filled area (0: none).
    pub bss_end_addr: u32,
    /// 32-bit entry point.
    pub entry_addr: u32,
}

/// A multiboot1 header found in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mb1Header {
    /// File offset of the magic.
    pub offset: usize,
    /// `flags`.
    pub flags: u32,
    /// `checksum`.
    pub checksum: u32,
    /// The address fields, when the header is long enough to hold them.
    pub address: Option<AddressFields>,
}

/// Finds the multiboot1 header: the magic at a 4-byte aligned offset in the first 8192 bytes,
/// with a valid checksum (candidates with a bad checksum are skipped, as loaders do).
pub fn find_mb1_header(image: &[u8]) -> Option<Mb1Header> {
    let limit = image.len().min(MB1_SEARCH_LEN);
    (0..limit.saturating_sub(11)).step_by(4).find_map(|off| {
        let magic = read_u32(image, off)?;
        let flags = read_u32(image, off + 4)?;
        let checksum = read_u32(image, off + 8)?;
        if magic != MB1_MAGIC || magic.wrapping_add(flags).wrapping_add(checksum) != 0 {
            return None;
        }
        let address = (off + 32 <= limit).then(|| AddressFields {
            header_addr: read_u32(image, off + 12).unwrap_or(0),
            load_addr: read_u32(image, off + 16).unwrap_or(0),
            load_end_addr: read_u32(image, off + 20).unwrap_or(0),
            bss_end_addr: read_u32(image, off + 24).unwrap_or(0),
            entry_addr: read_u32(image, off + 28).unwrap_or(0),
        });
        Some(Mb1Header {
            offset: off,
            flags,
            checksum,
            address,
        })
    })
}

/// One multiboot2 header tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mb2Tag {
    /// File offset of the tag.
    pub offset: usize,
    /// Tag type.
    pub ty: u16,
    /// Tag flags (bit 0: optional).
    pub flags: u16,
    /// Tag size in bytes (excluding padding).
    pub size: u32,
}

/// A multiboot2 header found in an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mb2Header {
    /// File offset of the magic.
    pub offset: usize,
    /// `architecture` (0 = i386 protected mode).
    pub architecture: u32,
    /// `header_length`.
    pub header_length: u32,
    /// The tags, in order, up to and including the end tag.
    pub tags: Vec<Mb2Tag>,
    /// The address tag (type 2), if present.
    pub address: Option<AddressFields>,
}

/// Finds the multiboot2 header: the magic at an 8-byte aligned offset in the first 32768 bytes
/// with a valid checksum, and parses its tags. Returns an error if a header with a valid
/// checksum has malformed tags; `Ok(None)` if there is none.
pub fn find_mb2_header(image: &[u8]) -> Result<Option<Mb2Header>> {
    let limit = image.len().min(MB2_SEARCH_LEN);
    for off in (0..limit.saturating_sub(15)).step_by(8) {
        let (Some(magic), Some(arch), Some(len), Some(sum)) = (
            read_u32(image, off),
            read_u32(image, off + 4),
            read_u32(image, off + 8),
            read_u32(image, off + 12),
        ) else {
            continue;
        };
        if magic != MB2_MAGIC || magic.wrapping_add(arch).wrapping_add(len).wrapping_add(sum) != 0 {
            continue;
        }
        return parse_mb2_tags(image, off, arch, len).map(Some);
    }
    Ok(None)
}

fn parse_mb2_tags(image: &[u8], off: usize, architecture: u32, len: u32) -> Result<Mb2Header> {
    let end = off + len as usize;
    if len < 16 + 8 || end > image.len() {
        return Err(Error::new(format!(
            "multiboot2 header at {off:#x}: header_length {len} is out of range"
        )));
    }
    if end > MB2_SEARCH_LEN {
        return Err(Error::new(format!(
            "multiboot2 header at {off:#x} (length {len}) extends past the first {MB2_SEARCH_LEN} bytes"
        )));
    }
    let mut tags = Vec::new();
    let mut address = None;
    let mut pos = off + 16;
    loop {
        if pos + 8 > end {
            return Err(Error::new(format!(
                "multiboot2 header at {off:#x}: no end tag within header_length {len}"
            )));
        }
        let word = read_u32(image, pos).unwrap_or(0);
        let (ty, flags) = ((word & 0xffff) as u16, (word >> 16) as u16);
        let size = read_u32(image, pos + 4).unwrap_or(0);
        if size < 8 || pos + size as usize > end {
            return Err(Error::new(format!(
                "multiboot2 tag type {ty} at {pos:#x} has bad size {size}"
            )));
        }
        tags.push(Mb2Tag {
            offset: pos,
            ty,
            flags,
            size,
        });
        match ty {
            0 => {
                if size != 8 {
                    return Err(Error::new(format!("multiboot2 end tag has size {size}")));
                }
                break;
            }
            MB2_TAG_ADDRESS if size >= 24 => {
                address = Some(AddressFields {
                    header_addr: read_u32(image, pos + 8).unwrap_or(0),
                    load_addr: read_u32(image, pos + 12).unwrap_or(0),
                    load_end_addr: read_u32(image, pos + 16).unwrap_or(0),
                    bss_end_addr: read_u32(image, pos + 20).unwrap_or(0),
                    entry_addr: 0,
                });
            }
            _ => {}
        }
        pos += (size as usize).next_multiple_of(8);
    }
    let entry = tags
        .iter()
        .find(|t| t.ty == MB2_TAG_ENTRY && t.size >= 12)
        .and_then(|t| read_u32(image, t.offset + 8));
    if let (Some(a), Some(e)) = (address.as_mut(), entry) {
        a.entry_addr = e;
    }
    Ok(Mb2Header {
        offset: off,
        architecture,
        header_length: len,
        tags,
        address,
    })
}

impl Mb2Header {
    /// The tag of type `ty`, if present.
    pub fn tag(&self, ty: u16) -> Option<&Mb2Tag> {
        self.tags.iter().find(|t| t.ty == ty)
    }
}

/// Checks a header's address fields against the ELF's PT_LOADs (which must satisfy the kludge
/// invariant, see [`check_kludge_invariant`]). `header_offset` is the header's file offset and
/// `what` names it in messages. The fields are consistent when:
/// - `header_addr` is where the header's file offset lands (same `p_offset - p_paddr`);
/// - `load_addr` is the lowest PT_LOAD physical address, at or above 1 MiB, and at or below
///   `header_addr`;
/// - `load_end_addr` (0 = end of file) covers every PT_LOAD's file bytes, stays within the file
///   and does not run past the image's memory end;
/// - `bss_end_addr` (0 = none) covers the image's memory end (up to page-alignment slack);
/// - `entry_addr` lies in the file bytes of an executable PT_LOAD.
pub fn check_address_fields(
    what: &str,
    header_offset: usize,
    f: &AddressFields,
    elf: &Elf64,
) -> Result<LoadLayout> {
    let layout = check_kludge_invariant(elf)?;
    let mut problems = Vec::new();
    let header_paddr = header_offset as i128 - layout.delta;
    if i128::from(f.header_addr) != header_paddr {
        problems.push(format!(
            "header_addr {:#x} but the header (file offset {header_offset:#x}) loads at {header_paddr:#x}",
            f.header_addr
        ));
    }
    if u64::from(f.load_addr) != layout.start {
        problems.push(format!(
            "load_addr {:#x} is not the lowest PT_LOAD paddr {:#x}",
            f.load_addr, layout.start
        ));
    }
    if f.load_addr < MIN_LOAD_ADDR {
        problems.push(format!("load_addr {:#x} is below 1 MiB", f.load_addr));
    }
    if f.load_addr > f.header_addr {
        problems.push(format!(
            "load_addr {:#x} is above header_addr {:#x}",
            f.load_addr, f.header_addr
        ));
    }
    let file_end_paddr = i128::from(elf.file_len) - layout.delta;
    let load_end = if f.load_end_addr == 0 {
        file_end_paddr
    } else {
        i128::from(f.load_end_addr)
    };
    if load_end < i128::from(layout.file_end) {
        problems.push(format!(
            "load_end_addr {load_end:#x} stops before the end of the PT_LOAD file bytes {:#x}",
            layout.file_end
        ));
    }
    if load_end > file_end_paddr {
        problems.push(format!(
            "load_end_addr {load_end:#x} is past the end of the file (which ends at paddr {file_end_paddr:#x})"
        ));
    }
    if load_end > i128::from(layout.mem_end) {
        problems.push(format!(
            "load_end_addr {load_end:#x} is past the end of the image in memory {:#x} (the loader \
             would copy non-loadable file contents over memory the image uses)",
            layout.mem_end
        ));
    }
    let bss_end = if f.bss_end_addr == 0 {
        load_end
    } else {
        i128::from(f.bss_end_addr)
    };
    let mem_end = i128::from(layout.mem_end);
    if bss_end < mem_end {
        problems.push(format!(
            "bss_end_addr {:#x} stops before the end of the PT_LOADs in memory {mem_end:#x}",
            f.bss_end_addr
        ));
    }
    if bss_end > i128::from(layout.mem_end.next_multiple_of(0x1000)) {
        problems.push(format!(
            "bss_end_addr {:#x} is beyond the end of the PT_LOADs in memory {mem_end:#x} (rounded \
             up to a page)",
            f.bss_end_addr
        ));
    }
    if bss_end < load_end {
        problems.push(format!(
            "bss_end_addr {bss_end:#x} is below load_end_addr {load_end:#x}"
        ));
    }
    if !layout.is_executable_paddr(u64::from(f.entry_addr)) {
        problems.push(format!(
            "entry_addr {:#x} is not inside the file bytes of an executable PT_LOAD",
            f.entry_addr
        ));
    }
    if problems.is_empty() {
        Ok(layout)
    } else {
        Err(Error::new(format!("{what}: {}", problems.join("; "))))
    }
}

/// Full multiboot1 check: header present (aligned, in the first 8 KiB, valid checksum), flags
/// bit 16 set, address fields consistent with the PT_LOADs.
pub fn check_mb1(image: &[u8]) -> Result<Mb1Header> {
    let elf = Elf64::parse(image)?;
    let h = find_mb1_header(image).ok_or_else(|| {
        Error::new("no multiboot1 header (magic 0x1BADB002 with a valid checksum at a 4-byte aligned offset in the first 8192 bytes)")
    })?;
    if h.flags & MB1_FLAG_ADDRESS == 0 {
        return Err(Error::new(format!(
            "multiboot1 header at {:#x}: flags {:#x} lack bit 16 (address fields), which an ELF64 \
             image needs",
            h.offset, h.flags
        )));
    }
    let f = h.address.ok_or_else(|| {
        Error::new(format!(
            "multiboot1 header at {:#x} has no room for the address fields within 8192 bytes",
            h.offset
        ))
    })?;
    check_address_fields("multiboot1 header", h.offset, &f, &elf)?;
    Ok(h)
}

/// Full multiboot2 check: header present (8-aligned, in the first 32 KiB, valid checksum, i386
/// architecture, well-formed tags ending in an end tag), with an address tag and an entry tag
/// consistent with the PT_LOADs.
pub fn check_mb2(image: &[u8]) -> Result<Mb2Header> {
    let elf = Elf64::parse(image)?;
    let h = find_mb2_header(image)?.ok_or_else(|| {
        Error::new("no multiboot2 header (magic 0xE85250D6 with a valid checksum at an 8-byte aligned offset in the first 32768 bytes)")
    })?;
    if h.architecture != 0 {
        return Err(Error::new(format!(
            "multiboot2 architecture {} is not 0 (i386)",
            h.architecture
        )));
    }
    let f = h
        .address
        .ok_or_else(|| Error::new("multiboot2 header has no address tag (type 2)"))?;
    if h.tag(MB2_TAG_ENTRY).is_none() {
        return Err(Error::new(
            "multiboot2 header has no entry address tag (type 3)",
        ));
    }
    check_address_fields("multiboot2 header", h.offset, &f, &elf)?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn put32(b: &mut [u8], off: usize, v: u32) {
        b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Rewrites the multiboot1 checksum after changing flags.
    fn fix_mb1_checksum(b: &mut [u8]) {
        let o = synth::MB1_OFFSET;
        let magic = read_u32(b, o).unwrap();
        let flags = read_u32(b, o + 4).unwrap();
        put32(b, o + 8, 0u32.wrapping_sub(magic.wrapping_add(flags)));
    }

    #[test]
    fn synthetic_headers_are_found_and_consistent() {
        let img = synth::tiny_kernel();
        let h1 = check_mb1(&img).unwrap();
        assert_eq!(h1.offset, synth::MB1_OFFSET);
        let f = h1.address.unwrap();
        assert_eq!(f.load_addr as u64, synth::LOAD_ADDR);
        assert_eq!(f.entry_addr as u64, synth::CODE_PADDR);
        let h2 = check_mb2(&img).unwrap();
        assert_eq!(h2.offset, synth::MB2_OFFSET);
        assert_eq!(h2.header_length as usize, synth::MB2_LEN);
        let types: Vec<u16> = h2.tags.iter().map(|t| t.ty).collect();
        assert_eq!(types, [2, 3, 0]);
        assert_eq!(h2.address.unwrap().entry_addr as u64, synth::CODE_PADDR);
        assert_eq!(
            h2.address.unwrap().header_addr,
            h1.address.unwrap().header_addr + 0x100
        );
    }

    #[test]
    fn mb1_bad_checksum_misaligned_or_too_late_is_not_found() {
        let mut img = synth::tiny_kernel();
        put32(&mut img, synth::MB1_OFFSET + 8, 0);
        assert!(find_mb1_header(&img).is_none());

        // Same header at an unaligned offset.
        let good = synth::tiny_kernel();
        let mut img = good.clone();
        img[synth::MB1_OFFSET..synth::MB1_OFFSET + 32].fill(0);
        img[0x302..0x302 + 32].copy_from_slice(&good[synth::MB1_OFFSET..synth::MB1_OFFSET + 32]);
        assert!(find_mb1_header(&img).is_none());

        // Past the first 8 KiB.
        let mut img = good.clone();
        img[synth::MB1_OFFSET..synth::MB1_OFFSET + 32].fill(0);
        img.resize(0x3000, 0);
        img[0x2000..0x2020].copy_from_slice(&good[synth::MB1_OFFSET..synth::MB1_OFFSET + 32]);
        assert!(find_mb1_header(&img).is_none());
    }

    #[test]
    fn mb1_without_kludge_flag_fails() {
        let mut img = synth::tiny_kernel();
        put32(&mut img, synth::MB1_OFFSET + 4, 1 << 1);
        fix_mb1_checksum(&mut img);
        let err = check_mb1(&img).unwrap_err();
        assert!(err.0.contains("bit 16"), "{err}");
    }

    #[test]
    fn mb1_inconsistent_fields_fail() {
        let o = synth::MB1_OFFSET;
        let cases: [(usize, u32, &str); 6] = [
            (12, synth::LOAD_ADDR as u32 + 0x104, "header_addr"),
            (16, synth::LOAD_ADDR as u32 + 0x1000, "load_addr"),
            (
                20,
                synth::CODE_PADDR as u32 + 4,
                "stops before the end of the PT_LOAD file bytes",
            ),
            (24, synth::CODE_PADDR as u32 + 0x800, "bss_end_addr"),
            (24, synth::CODE_PADDR as u32 + 0x3000, "beyond the end"),
            (28, synth::LOAD_ADDR as u32 + 0x10, "entry_addr"),
        ];
        for (field, value, needle) in cases {
            let mut img = synth::tiny_kernel();
            put32(&mut img, o + field, value);
            let err = check_mb1(&img).unwrap_err();
            assert!(err.0.contains(needle), "field +{field}: {err}");
        }
    }

    #[test]
    fn mb1_load_end_zero_means_end_of_file() {
        let mut img = synth::tiny_kernel();
        put32(&mut img, synth::MB1_OFFSET + 20, 0);
        check_mb1(&img).unwrap();
        // ...which is wrong once non-loadable data (symbols, debug info) follows the image.
        img.resize(img.len() + 0x2000, 0xcc);
        let err = check_mb1(&img).unwrap_err();
        assert!(
            err.0.contains("past the end of the image in memory"),
            "{err}"
        );
    }

    #[test]
    fn mb2_problems_are_reported() {
        let o = synth::MB2_OFFSET;
        // Bad checksum: not found at all.
        let mut img = synth::tiny_kernel();
        put32(&mut img, o + 12, 0);
        assert_eq!(find_mb2_header(&img).unwrap(), None);
        assert!(check_mb2(&img).is_err());

        // Address tag replaced by an unknown tag (type 9, same size).
        let mut img = synth::tiny_kernel();
        img[o + 16] = 9;
        let err = check_mb2(&img).unwrap_err();
        assert!(err.0.contains("address tag"), "{err}");

        // Entry tag type changed.
        let mut img = synth::tiny_kernel();
        img[o + 40] = 9;
        let err = check_mb2(&img).unwrap_err();
        assert!(err.0.contains("entry"), "{err}");

        // A tag size running past header_length.
        let mut img = synth::tiny_kernel();
        put32(&mut img, o + 20, 0x100);
        assert!(find_mb2_header(&img).is_err());

        // Wrong load address in the address tag.
        let mut img = synth::tiny_kernel();
        put32(&mut img, o + 28, 0x2000);
        let err = check_mb2(&img).unwrap_err();
        assert!(err.0.contains("load_addr"), "{err}");
    }
}
