//! Multiboot2 boot-information parser.
//!
//! The loader leaves one contiguous block: `total_size` (u32), `reserved` (u32), then a sequence
//! of tags, each `{type: u32, size: u32, payload}` starting on an 8-byte boundary, terminated by
//! a type-0 tag. Every tag must lie within `total_size`; anything else is reported as malformed
//! rather than trusted.

use alloc::string::String;
use alloc::vec::Vec;

use crate::info::{
    BootInfo, BootInfoError, MAX_MEMORY_REGIONS, MAX_MODULES, MemoryRegion, Module, Protocol,
    addr_add, map_from_mem_sizes, read_c_string, read_exact, region,
};
use crate::physmem::PhysMemory;

/// Tag type: end of the tag list.
pub const TAG_END: u32 = 0;
/// Tag type: kernel command line.
pub const TAG_CMDLINE: u32 = 1;
/// Tag type: boot loader name.
pub const TAG_LOADER_NAME: u32 = 2;
/// Tag type: one boot module.
pub const TAG_MODULE: u32 = 3;
/// Tag type: basic lower/upper memory sizes in KiB.
pub const TAG_BASIC_MEMINFO: u32 = 4;
/// Tag type: e820-style memory map.
pub const TAG_MMAP: u32 = 6;
/// Tag type: copy of the ACPI 1.0 RSDP.
pub const TAG_ACPI_OLD: u32 = 14;
/// Tag type: copy of the ACPI 2.0+ RSDP (XSDP).
pub const TAG_ACPI_NEW: u32 = 15;

/// Smallest possible block: the 8-byte header plus an 8-byte end tag.
pub const MIN_TOTAL_SIZE: u32 = 16;
/// Largest block accepted. Real blocks are a few KiB (tens with an EFI memory map); a bigger
/// `total_size` means the pointer or header is wrong.
pub const MAX_TOTAL_SIZE: u32 = 1 << 20;

/// Size of the tag header (`type`, `size`).
const TAG_HEADER: u64 = 8;
/// Smallest memory-map entry: `base_addr` u64, `length` u64, `type` u32, `reserved` u32.
const MMAP_ENTRY_MIN_SIZE: u32 = 24;
/// Size of an ACPI 1.0 RSDP.
const RSDP_V1_LEN: u64 = 20;
/// Size of an ACPI 2.0+ XSDP.
const RSDP_V2_LEN: u64 = 36;
/// Largest RSDP tag payload copied. Real ones are 20 or 36 bytes; the cap stops a corrupt size
/// from turning into a large early-boot allocation.
const RSDP_MAX_LEN: u64 = 4096;

/// Reads a `u32` at `paddr`, mapping failure to [`BootInfoError::Unreadable`].
fn read_u32<M: PhysMemory + ?Sized>(mem: &M, paddr: u64) -> Result<u32, BootInfoError> {
    mem.read_u32(paddr)
        .ok_or(BootInfoError::Unreadable { paddr })
}

/// Reads a `u64` at `paddr`, mapping failure to [`BootInfoError::Unreadable`].
fn read_u64<M: PhysMemory + ?Sized>(mem: &M, paddr: u64) -> Result<u64, BootInfoError> {
    mem.read_u64(paddr)
        .ok_or(BootInfoError::Unreadable { paddr })
}

/// Reads a string that must be NUL-terminated within the `len` bytes at `paddr` (the rest of its
/// tag), so a string can never spill into the next tag.
fn tag_string<M: PhysMemory + ?Sized>(
    mem: &M,
    paddr: u64,
    len: u64,
) -> Result<String, BootInfoError> {
    let max = usize::try_from(len).unwrap_or(usize::MAX);
    read_c_string(mem, paddr, max).map(|(s, _)| s)
}

/// Parses the multiboot2 information block at `info_paddr`.
///
/// Unknown tags are skipped. If a singular tag (command line, loader name, memory map, basic
/// meminfo, RSDP) appears more than once, the last one wins. The memory map comes from the mmap
/// tag; without one (or with an empty one) it is synthesized from the basic meminfo tag like
/// multiboot1 does; with neither, parsing fails.
pub fn parse<M: PhysMemory + ?Sized>(info_paddr: u64, mem: &M) -> Result<BootInfo, BootInfoError> {
    // The spec places the block on an 8-byte boundary and tag alignment is defined in absolute
    // addresses; a misaligned pointer is therefore not a multiboot2 block.
    if !info_paddr.is_multiple_of(8) {
        return Err(BootInfoError::Malformed(
            "multiboot2 info block not 8-byte aligned",
        ));
    }
    let total = read_u32(mem, info_paddr)?;
    if total < MIN_TOTAL_SIZE {
        return Err(BootInfoError::Malformed("multiboot2 total_size too small"));
    }
    if total > MAX_TOTAL_SIZE {
        return Err(BootInfoError::Malformed("multiboot2 total_size too large"));
    }
    let total = u64::from(total);
    let block_end = addr_add(
        info_paddr,
        total,
        "multiboot2 info block wraps past the address space",
    )?;

    let mut cmdline = String::new();
    let mut loader_name = None;
    let mut modules = Vec::new();
    let mut meminfo = None;
    let mut mmap: Option<Vec<MemoryRegion>> = None;
    let mut rsdp_old = None;
    let mut rsdp_new = None;

    // Offsets are relative to the block and bounded by `total` <= 1 MiB, so sums of an offset and
    // a u32 cannot overflow u64, and `info_paddr + off` cannot exceed `block_end`.
    let mut off = TAG_HEADER;
    loop {
        if off + TAG_HEADER > total {
            return Err(BootInfoError::Malformed("multiboot2 end tag missing"));
        }
        let tag = info_paddr + off;
        let ty = read_u32(mem, tag)?;
        let size = u64::from(read_u32(mem, tag + 4)?);
        if size < TAG_HEADER {
            return Err(BootInfoError::Malformed(
                "multiboot2 tag smaller than its header",
            ));
        }
        if off + size > total {
            return Err(BootInfoError::Malformed(
                "multiboot2 tag runs past total_size",
            ));
        }
        let payload = tag + TAG_HEADER;
        let plen = size - TAG_HEADER;
        match ty {
            TAG_END => break,
            TAG_CMDLINE => cmdline = tag_string(mem, payload, plen)?,
            TAG_LOADER_NAME => loader_name = Some(tag_string(mem, payload, plen)?),
            TAG_MODULE => {
                if modules.len() == MAX_MODULES {
                    return Err(BootInfoError::TooMany {
                        what: "modules",
                        limit: MAX_MODULES,
                    });
                }
                modules.push(parse_module(mem, payload, plen)?);
            }
            TAG_BASIC_MEMINFO => {
                if plen < 8 {
                    return Err(BootInfoError::Malformed("multiboot2 meminfo tag too small"));
                }
                meminfo = Some((read_u32(mem, payload)?, read_u32(mem, payload + 4)?));
            }
            TAG_MMAP => mmap = Some(parse_mmap(mem, payload, plen)?),
            TAG_ACPI_OLD => rsdp_old = Some(copy_rsdp(mem, payload, plen, RSDP_V1_LEN)?),
            TAG_ACPI_NEW => rsdp_new = Some(copy_rsdp(mem, payload, plen, RSDP_V2_LEN)?),
            // Framebuffer, ELF sections, EFI tables, ... are not needed here.
            _ => {}
        }
        // Next tag starts at the following 8-byte boundary. `off + size` <= 1 MiB, so no overflow.
        off = (off + size + 7) & !7;
    }

    let mut memory_map = mmap.unwrap_or_default();
    if memory_map.is_empty()
        && let Some((lower, upper)) = meminfo
    {
        memory_map = map_from_mem_sizes(lower, upper);
    }
    if memory_map.is_empty() {
        return Err(BootInfoError::NoMemoryInfo);
    }
    // Stable sort: entries with equal bases keep the loader's order.
    memory_map.sort_by_key(|r| r.base);

    Ok(BootInfo {
        protocol: Protocol::Multiboot2,
        loader_name,
        cmdline,
        memory_map,
        modules,
        // ACPI 2.0+ gives the 64-bit XSDT address, so prefer it whatever the tag order.
        rsdp: rsdp_new.or(rsdp_old),
        // Strings and tables all live inside the block, so the block is the only range to keep.
        boot_data: alloc::vec![(info_paddr, block_end)],
    })
}

/// Parses a module tag payload: `mod_start` u32, `mod_end` u32 (exclusive), then the module's
/// NUL-terminated string, which must end inside the tag.
fn parse_module<M: PhysMemory + ?Sized>(
    mem: &M,
    payload: u64,
    plen: u64,
) -> Result<Module, BootInfoError> {
    // 8 bytes of addresses plus at least the string's NUL.
    if plen < 9 {
        return Err(BootInfoError::Malformed("multiboot2 module tag too small"));
    }
    let start = read_u32(mem, payload)?;
    let end = read_u32(mem, payload + 4)?;
    if end < start {
        return Err(BootInfoError::Malformed("module ends before it starts"));
    }
    let cmdline = tag_string(mem, payload + 8, plen - 8)?;
    Ok(Module {
        start: u64::from(start),
        end: u64::from(end),
        cmdline,
    })
}

/// Parses a memory-map tag payload: `entry_size` u32, `entry_version` u32, then entries. The
/// stride is `entry_size` (not a hard-coded 24) so future, longer entries still parse; trailing
/// bytes too short for a whole entry are ignored.
fn parse_mmap<M: PhysMemory + ?Sized>(
    mem: &M,
    payload: u64,
    plen: u64,
) -> Result<Vec<MemoryRegion>, BootInfoError> {
    if plen < 8 {
        return Err(BootInfoError::Malformed("multiboot2 mmap tag too small"));
    }
    let entry_size = read_u32(mem, payload)?;
    if entry_size < MMAP_ENTRY_MIN_SIZE {
        return Err(BootInfoError::Malformed(
            "multiboot2 mmap entry_size too small",
        ));
    }
    let entry_size = u64::from(entry_size);
    let count = (plen - 8) / entry_size;
    // Check before allocating or reading anything.
    if count > MAX_MEMORY_REGIONS as u64 {
        return Err(BootInfoError::TooMany {
            what: "memory map entries",
            limit: MAX_MEMORY_REGIONS,
        });
    }
    let first = payload + 8;
    let mut map = Vec::with_capacity(count as usize);
    for i in 0..count {
        // i * entry_size < plen <= 1 MiB: no overflow.
        let e = first + i * entry_size;
        let base = read_u64(mem, e)?;
        let len = read_u64(mem, e + 8)?;
        let ty = read_u32(mem, e + 16)?;
        map.push(region(base, len, ty)?);
    }
    Ok(map)
}

/// Copies an RSDP tag payload, which must hold at least `min` bytes (the RSDP structure of that
/// ACPI version) and at most [`RSDP_MAX_LEN`].
fn copy_rsdp<M: PhysMemory + ?Sized>(
    mem: &M,
    payload: u64,
    plen: u64,
    min: u64,
) -> Result<Vec<u8>, BootInfoError> {
    if plen < min {
        return Err(BootInfoError::Malformed("multiboot2 RSDP tag too small"));
    }
    if plen > RSDP_MAX_LEN {
        return Err(BootInfoError::Malformed("multiboot2 RSDP tag too large"));
    }
    let mut buf = alloc::vec![0u8; plen as usize];
    read_exact(mem, payload, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MB2_BOOTLOADER_MAGIC;
    use crate::info::test_support::{Image, fuzz};
    use crate::info::{MemoryKind, parse as parse_any};
    use crate::physmem::SliceMemory;

    const BASE: u64 = 0x9000;

    /// A tag to emit: type and payload. `size` is computed unless overridden.
    struct Tag {
        ty: u32,
        payload: Vec<u8>,
        size_override: Option<u32>,
    }

    fn tag(ty: u32, payload: Vec<u8>) -> Tag {
        Tag {
            ty,
            payload,
            size_override: None,
        }
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    fn module(start: u32, end: u32, s: &str) -> Tag {
        let mut p = Vec::new();
        p.extend_from_slice(&start.to_le_bytes());
        p.extend_from_slice(&end.to_le_bytes());
        p.extend_from_slice(&cstr(s));
        tag(TAG_MODULE, p)
    }

    fn meminfo(lower: u32, upper: u32) -> Tag {
        let mut p = Vec::new();
        p.extend_from_slice(&lower.to_le_bytes());
        p.extend_from_slice(&upper.to_le_bytes());
        tag(TAG_BASIC_MEMINFO, p)
    }

    fn mmap(entry_size: u32, entries: &[(u64, u64, u32)]) -> Tag {
        let mut p = Vec::new();
        p.extend_from_slice(&entry_size.to_le_bytes());
        p.extend_from_slice(&0u32.to_le_bytes());
        for &(base, len, ty) in entries {
            let mut e = Vec::new();
            e.extend_from_slice(&base.to_le_bytes());
            e.extend_from_slice(&len.to_le_bytes());
            e.extend_from_slice(&ty.to_le_bytes());
            e.resize(entry_size as usize, 0); // reserved + any extension bytes
            p.extend_from_slice(&e);
        }
        tag(TAG_MMAP, p)
    }

    /// ACPI 1.0 RSDP as QEMU/SeaBIOS builds it.
    fn rsdp_v1() -> Vec<u8> {
        let mut r = b"RSD PTR ".to_vec();
        r.push(0x42); // checksum (not verified here)
        r.extend_from_slice(b"BOCHS ");
        r.push(0); // revision
        r.extend_from_slice(&0x07fe_14d5u32.to_le_bytes());
        r
    }

    /// ACPI 2.0 XSDP.
    fn rsdp_v2() -> Vec<u8> {
        let mut r = rsdp_v1();
        r[15] = 2;
        r.extend_from_slice(&36u32.to_le_bytes());
        r.extend_from_slice(&0x07fe_1500u64.to_le_bytes());
        r.extend_from_slice(&[0x17, 0, 0, 0]);
        r
    }

    const QEMU_MMAP: [(u64, u64, u32); 6] = [
        (0, 0x9fc00, 1),
        (0x9fc00, 0x400, 2),
        (0xf0000, 0x10000, 2),
        (0x10_0000, 0x7ee_0000, 1),
        (0x7fe_0000, 0x2_0000, 2),
        (0xfffc_0000, 0x4_0000, 2),
    ];

    /// Tags in the order GRUB 2 emits them, with a few tags this parser does not use.
    fn grub_tags() -> Vec<Tag> {
        alloc::vec![
            tag(
                TAG_CMDLINE,
                cstr("/boot/xenolith.elf console=com1 dom0_mem=512M")
            ),
            tag(TAG_LOADER_NAME, cstr("GRUB 2.06")),
            module(
                0x0200_0000,
                0x0254_3210,
                "/boot/vmlinuz root=/dev/vda1 console=hvc0"
            ),
            module(0x0255_0000, 0x02a0_0000, "/boot/initrd.img"),
            meminfo(639, 129_920),
            tag(5, alloc::vec![0xff; 12]), // BIOS boot device: skipped
            mmap(24, &QEMU_MMAP),
            tag(8, alloc::vec![0; 24]), // framebuffer: skipped
            tag(TAG_ACPI_OLD, rsdp_v1()),
            tag(21, 0x0010_0000u32.to_le_bytes().to_vec()), // load base address: skipped
        ]
    }

    /// Lays `tags` out as a multiboot2 block at `BASE` (8-aligned, padded, end tag appended)
    /// and returns the image plus each tag's offset inside the block.
    fn build(tags: &[Tag]) -> (Image, Vec<u64>) {
        let mut block = alloc::vec![0u8; 8];
        let mut offsets = Vec::new();
        for t in tags {
            while !block.len().is_multiple_of(8) {
                block.push(0);
            }
            offsets.push(block.len() as u64);
            let size = t.size_override.unwrap_or(8 + t.payload.len() as u32);
            block.extend_from_slice(&t.ty.to_le_bytes());
            block.extend_from_slice(&size.to_le_bytes());
            block.extend_from_slice(&t.payload);
        }
        while !block.len().is_multiple_of(8) {
            block.push(0);
        }
        block.extend_from_slice(&TAG_END.to_le_bytes());
        block.extend_from_slice(&8u32.to_le_bytes());
        let total = block.len() as u32;
        block[0..4].copy_from_slice(&total.to_le_bytes());
        let mut img = Image::new(BASE);
        img.alloc(&block, 8);
        (img, offsets)
    }

    fn r(base: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { base, len, kind }
    }

    #[test]
    fn parses_grub_like_fixture() {
        let (img, _) = build(&grub_tags());
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.protocol, Protocol::Multiboot2);
        assert_eq!(
            info.cmdline,
            "/boot/xenolith.elf console=com1 dom0_mem=512M"
        );
        assert_eq!(info.loader_name.as_deref(), Some("GRUB 2.06"));
        assert_eq!(
            info.memory_map,
            [
                r(0, 0x9fc00, MemoryKind::Usable),
                r(0x9fc00, 0x400, MemoryKind::Reserved),
                r(0xf0000, 0x10000, MemoryKind::Reserved),
                r(0x10_0000, 0x7ee_0000, MemoryKind::Usable),
                r(0x7fe_0000, 0x2_0000, MemoryKind::Reserved),
                r(0xfffc_0000, 0x4_0000, MemoryKind::Reserved),
            ]
        );
        assert_eq!(
            info.modules,
            [
                Module {
                    start: 0x0200_0000,
                    end: 0x0254_3210,
                    cmdline: "/boot/vmlinuz root=/dev/vda1 console=hvc0".into(),
                },
                Module {
                    start: 0x0255_0000,
                    end: 0x02a0_0000,
                    cmdline: "/boot/initrd.img".into(),
                },
            ]
        );
        assert_eq!(info.rsdp, Some(rsdp_v1()));
        assert_eq!(
            info.boot_data,
            [(BASE, BASE + u64::from(img.get_u32(BASE)))]
        );
        assert_eq!(info.boot_data[0].1, BASE + img.bytes.len() as u64);
    }

    #[test]
    fn dispatch_through_magic() {
        let (img, _) = build(&grub_tags());
        assert_eq!(
            parse_any(MB2_BOOTLOADER_MAGIC, BASE, &img.mem()),
            parse(BASE, &img.mem())
        );
        // The same block handed over with the multiboot1 magic is read as an mb1 struct and
        // fails (its "flags" is total_size, with no usable memory information).
        assert!(parse_any(crate::MB1_BOOTLOADER_MAGIC, BASE, &img.mem()).is_err());
    }

    #[test]
    fn new_rsdp_preferred_in_either_order() {
        let mut tags = grub_tags();
        tags.push(tag(TAG_ACPI_NEW, rsdp_v2()));
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().rsdp, Some(rsdp_v2()));

        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_ACPI_OLD);
        tags.insert(0, tag(TAG_ACPI_NEW, rsdp_v2()));
        tags.push(tag(TAG_ACPI_OLD, rsdp_v1()));
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().rsdp, Some(rsdp_v2()));

        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_ACPI_OLD);
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().rsdp, None);
    }

    #[test]
    fn short_rsdp_tags_are_rejected() {
        let mut tags = grub_tags();
        tags.push(tag(TAG_ACPI_NEW, rsdp_v1())); // 20 bytes: too short for an XSDP
        let (img, _) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed("multiboot2 RSDP tag too small"))
        );
    }

    #[test]
    fn mmap_honours_entry_size_and_sorts() {
        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_MMAP);
        tags.push(mmap(
            40,
            &[
                (0x10_0000, 0x100_0000, 1),
                (0, 0x9f000, 1),
                (0xe_0000, 0x2_0000, 4),
                (0x1_0000_0000, 0x1000, 12),
            ],
        ));
        let (img, _) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()).unwrap().memory_map,
            [
                r(0, 0x9f000, MemoryKind::Usable),
                r(0xe_0000, 0x2_0000, MemoryKind::AcpiNvs),
                r(0x10_0000, 0x100_0000, MemoryKind::Usable),
                r(0x1_0000_0000, 0x1000, MemoryKind::Other(12)),
            ]
        );
    }

    #[test]
    fn meminfo_fallback_without_mmap() {
        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_MMAP);
        let (img, _) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()).unwrap().memory_map,
            [
                r(0, 639 * 1024, MemoryKind::Usable),
                r(0x10_0000, 129_920 * 1024, MemoryKind::Usable),
            ]
        );
        // An mmap tag with no entries also falls back.
        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_MMAP);
        tags.push(mmap(24, &[]));
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().memory_map.len(), 2);
        // Neither tag: no memory information.
        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_MMAP && t.ty != TAG_BASIC_MEMINFO);
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()), Err(BootInfoError::NoMemoryInfo));
    }

    #[test]
    fn minimal_block() {
        let (img, _) = build(&[meminfo(640, 0)]);
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.cmdline, "");
        assert_eq!(info.loader_name, None);
        assert!(info.modules.is_empty());
        assert_eq!(info.memory_map, [r(0, 640 * 1024, MemoryKind::Usable)]);
        assert_eq!(info.boot_data, [(BASE, BASE + 8 + 16 + 8)]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut tags = grub_tags();
        tags[0] = tag(TAG_CMDLINE, b"console=\xffcom1\0".to_vec());
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().cmdline, "console=?com1");
    }

    #[test]
    fn bad_total_size() {
        for total in [0, 8, 15, MAX_TOTAL_SIZE + 1, u32::MAX] {
            let (mut img, _) = build(&grub_tags());
            img.put_u32(BASE, total);
            assert!(
                matches!(parse(BASE, &img.mem()), Err(BootInfoError::Malformed(_))),
                "total_size {total}"
            );
        }
        // total_size larger than what is readable: the walk fails on an unreadable read or
        // finds its end tag first, but never reads beyond memory.
        let (mut img, _) = build(&grub_tags());
        let len = img.bytes.len() as u32;
        img.put_u32(BASE, len + 0x100);
        // The end tag is still found inside the readable part, so this parses; boot_data
        // reports the declared size.
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.boot_data, [(BASE, BASE + u64::from(len) + 0x100)]);
    }

    #[test]
    fn missing_end_tag() {
        let (mut img, _) = build(&grub_tags());
        // Shrink total_size so the end tag falls outside it.
        let len = img.bytes.len() as u32;
        img.put_u32(BASE, len - 8);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed("multiboot2 end tag missing"))
        );
        // Overwrite the end tag with an unknown tag of the same size.
        let (mut img, _) = build(&grub_tags());
        let end_tag = BASE + img.bytes.len() as u64 - 8;
        img.put_u32(end_tag, 0x77);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed("multiboot2 end tag missing"))
        );
    }

    #[test]
    fn tag_size_overflow_and_underflow() {
        for size in [u32::MAX, u32::MAX - 7, 0x8000_0000, MAX_TOTAL_SIZE] {
            let (mut img, offs) = build(&grub_tags());
            img.put_u32(BASE + offs[2] + 4, size);
            assert_eq!(
                parse(BASE, &img.mem()),
                Err(BootInfoError::Malformed(
                    "multiboot2 tag runs past total_size"
                )),
                "size {size:#x}"
            );
        }
        for size in [0, 7] {
            let (mut img, offs) = build(&grub_tags());
            img.put_u32(BASE + offs[1] + 4, size);
            assert_eq!(
                parse(BASE, &img.mem()),
                Err(BootInfoError::Malformed(
                    "multiboot2 tag smaller than its header"
                ))
            );
        }
    }

    #[test]
    fn truncated_and_misplaced() {
        let (img, _) = build(&grub_tags());
        // Every proper prefix of the block fails cleanly.
        for cut in 0..img.bytes.len() {
            let mem = SliceMemory {
                base: BASE,
                bytes: &img.bytes[..cut],
            };
            assert!(parse(BASE, &mem).is_err(), "prefix {cut}");
        }
        // Pointer outside the fixture.
        assert_eq!(
            parse(0x10_0000, &img.mem()),
            Err(BootInfoError::Unreadable { paddr: 0x10_0000 })
        );
        // Misaligned pointer.
        assert!(matches!(
            parse(BASE + 4, &img.mem()),
            Err(BootInfoError::Malformed(_))
        ));
        // A block at the top of the address space must not wrap.
        let top = !7u64;
        let mut bytes = alloc::vec![0u8; 8];
        bytes[0..4].copy_from_slice(&16u32.to_le_bytes());
        let mem = SliceMemory {
            base: top,
            bytes: &bytes,
        };
        assert!(parse(top, &mem).is_err());
    }

    #[test]
    fn unterminated_strings() {
        // The NUL must be inside the tag, even if the next bytes (padding) are zero.
        let mut tags = grub_tags();
        tags[0] = tag(TAG_CMDLINE, b"console=com1".to_vec());
        let (img, offs) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::UnterminatedString {
                paddr: BASE + offs[0] + 8
            })
        );
        // Same for a module string.
        let mut tags = grub_tags();
        let mut p = 0x100u32.to_le_bytes().to_vec();
        p.extend_from_slice(&0x200u32.to_le_bytes());
        p.extend_from_slice(b"abc");
        tags[2] = tag(TAG_MODULE, p);
        let (img, _) = build(&tags);
        assert!(matches!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::UnterminatedString { .. })
        ));
        // A 5000-byte name without NUL hits the 4096-byte cap.
        let mut tags = grub_tags();
        tags[1] = tag(TAG_LOADER_NAME, alloc::vec![b'g'; 5000]);
        let (img, offs) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::UnterminatedString {
                paddr: BASE + offs[1] + 8
            })
        );
    }

    #[test]
    fn huge_counts_are_rejected() {
        let mut tags = grub_tags();
        for i in 0..(MAX_MODULES as u32 - 2) {
            tags.push(module(i << 12, (i << 12) + 0x1000, "m"));
        }
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().modules.len(), MAX_MODULES);
        tags.push(module(0, 0, "one too many"));
        let (img, _) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::TooMany {
                what: "modules",
                limit: MAX_MODULES
            })
        );

        let entries: Vec<(u64, u64, u32)> = (0..129u64).map(|i| (i << 12, 0x1000, 1)).collect();
        let mut tags = grub_tags();
        tags.retain(|t| t.ty != TAG_MMAP);
        tags.push(mmap(24, &entries[..128]));
        let (img, _) = build(&tags);
        assert_eq!(parse(BASE, &img.mem()).unwrap().memory_map.len(), 128);
        tags.pop();
        tags.push(mmap(24, &entries));
        let (img, _) = build(&tags);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::TooMany {
                what: "memory map entries",
                limit: MAX_MEMORY_REGIONS
            })
        );
    }

    #[test]
    fn malformed_tag_payloads() {
        let check = |t: Tag, want: BootInfoError| {
            let mut tags = grub_tags();
            tags.push(t);
            let (img, _) = build(&tags);
            assert_eq!(parse(BASE, &img.mem()), Err(want));
        };
        let malformed = BootInfoError::Malformed;
        check(
            mmap(16, &[(0, 0x1000, 1)]),
            malformed("multiboot2 mmap entry_size too small"),
        );
        check(
            mmap(0, &[]),
            malformed("multiboot2 mmap entry_size too small"),
        );
        check(
            tag(TAG_MMAP, alloc::vec![24, 0, 0]),
            malformed("multiboot2 mmap tag too small"),
        );
        check(
            mmap(24, &[(u64::MAX - 0xfff, 0x2000, 2)]),
            malformed("memory map entry wraps past the address space"),
        );
        check(
            tag(TAG_MODULE, alloc::vec![0; 8]),
            malformed("multiboot2 module tag too small"),
        );
        check(
            module(0x2000, 0x1000, "backwards"),
            malformed("module ends before it starts"),
        );
        check(
            tag(TAG_BASIC_MEMINFO, alloc::vec![0; 4]),
            malformed("multiboot2 meminfo tag too small"),
        );
        check(
            tag(TAG_ACPI_OLD, alloc::vec![0; 5000]),
            malformed("multiboot2 RSDP tag too large"),
        );
        // A tag claiming to be shorter than its payload makes the walk land inside that
        // payload (here 0xff bytes then zero padding: a tag of size 0), which must fail.
        let mut tags = grub_tags();
        tags[5].size_override = Some(12);
        let (img, _) = build(&tags);
        assert!(parse(BASE, &img.mem()).is_err());
    }

    #[test]
    fn fuzz_mutations_never_panic() {
        let mut tags = grub_tags();
        tags.push(tag(TAG_ACPI_NEW, rsdp_v2()));
        let (img, _) = build(&tags);
        let ok = fuzz(0x5eed_0002, &img, 10_000, |mem| {
            parse_any(MB2_BOOTLOADER_MAGIC, BASE, mem)
        });
        assert!(ok > 100, "only {ok} mutants parsed");
        assert!(ok < 10_000, "no mutant was rejected");
    }
}
