//! Multiboot 0.6.96 (multiboot1) boot-information parser.
//!
//! The loader leaves a fixed-layout `multiboot_info` structure in memory whose `flags` word says
//! which fields are valid; the variable parts (strings, module array, memory map) hang off 32-bit
//! physical pointers. Everything is read through [`PhysMemory`] and bounds-checked, so a bad
//! pointer yields an error rather than a fault.

use alloc::string::String;
use alloc::vec::Vec;

use crate::info::{
    BootInfo, BootInfoError, MAX_MEMORY_REGIONS, MAX_MODULES, MAX_STRING_LEN, MemoryRegion, Module,
    Protocol, addr_add, map_from_mem_sizes, normalize_ranges, push_range, read_c_string,
    read_exact, region,
};
use crate::physmem::PhysMemory;

/// `flags` bit 0: `mem_lower`/`mem_upper` are valid.
pub const FLAG_MEM: u32 = 1 << 0;
/// `flags` bit 2: `cmdline` is valid.
pub const FLAG_CMDLINE: u32 = 1 << 2;
/// `flags` bit 3: `mods_count`/`mods_addr` are valid.
pub const FLAG_MODS: u32 = 1 << 3;
/// `flags` bit 6: `mmap_length`/`mmap_addr` are valid.
pub const FLAG_MMAP: u32 = 1 << 6;
/// `flags` bit 9: `boot_loader_name` is valid.
pub const FLAG_LOADER_NAME: u32 = 1 << 9;

/// Size of the full 0.6.96 `multiboot_info` structure (through the framebuffer colour info at
/// offsets 110..116). This is what `boot_data` reserves, since a loader may have filled it all.
pub const INFO_SIZE: u64 = 116;

/// Bytes of the structure this parser actually reads: everything up to the VBE fields (offset
/// 88). Pre-framebuffer loaders only provide this much, so we must not require more.
const INFO_READ_SIZE: usize = 88;

/// Size of one entry in the module array (`mod_start`, `mod_end`, `string`, `reserved`).
const MODULE_ENTRY_SIZE: u64 = 16;

/// Payload of a memory-map entry after its `size` field: `base_addr` u64, `length` u64,
/// `type` u32. An entry whose `size` is smaller cannot hold these fields.
const MMAP_ENTRY_MIN_SIZE: u32 = 20;

// Field offsets within `multiboot_info`, from the 0.6.96 specification.
const OFF_FLAGS: usize = 0;
const OFF_MEM_LOWER: usize = 4;
const OFF_MEM_UPPER: usize = 8;
const OFF_CMDLINE: usize = 16;
const OFF_MODS_COUNT: usize = 20;
const OFF_MODS_ADDR: usize = 24;
const OFF_MMAP_LENGTH: usize = 44;
const OFF_MMAP_ADDR: usize = 48;
const OFF_BOOT_LOADER_NAME: usize = 64;

/// Reads a little-endian `u32` field out of the copied info structure. Offsets are the constants
/// above, all below [`INFO_READ_SIZE`], so the slice access cannot fail.
fn field(info: &[u8; INFO_READ_SIZE], off: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&info[off..off + 4]);
    u32::from_le_bytes(b)
}

/// Reads a NUL-terminated string at `paddr`, recording the bytes it occupies in `boot_data`.
/// A null pointer means "no string": physical address 0 holds the real-mode IVT, never a string.
fn string_at<M: PhysMemory + ?Sized>(
    mem: &M,
    paddr: u32,
    boot_data: &mut Vec<(u64, u64)>,
) -> Result<Option<String>, BootInfoError> {
    if paddr == 0 {
        return Ok(None);
    }
    let paddr = u64::from(paddr);
    let (s, len) = read_c_string(mem, paddr, MAX_STRING_LEN)?;
    push_range(boot_data, paddr, len)?;
    Ok(Some(s))
}

/// Parses the multiboot1 information structure at `info_paddr`.
///
/// The memory map comes from the `mmap_*` fields when bit 6 is set and the map is non-empty;
/// otherwise it is synthesized from `mem_lower`/`mem_upper` (bit 0) as `[0, mem_lower KiB)` and
/// `[1 MiB, 1 MiB + mem_upper KiB)`, both usable. Having neither is an error, since the
/// hypervisor cannot guess where RAM is.
pub fn parse<M: PhysMemory + ?Sized>(info_paddr: u64, mem: &M) -> Result<BootInfo, BootInfoError> {
    let mut info = [0u8; INFO_READ_SIZE];
    read_exact(mem, info_paddr, &mut info)?;
    let flags = field(&info, OFF_FLAGS);

    let mut boot_data = Vec::new();
    push_range(&mut boot_data, info_paddr, INFO_SIZE)?;

    let cmdline = if flags & FLAG_CMDLINE != 0 {
        string_at(mem, field(&info, OFF_CMDLINE), &mut boot_data)?.unwrap_or_default()
    } else {
        String::new()
    };

    let loader_name = if flags & FLAG_LOADER_NAME != 0 {
        string_at(mem, field(&info, OFF_BOOT_LOADER_NAME), &mut boot_data)?
    } else {
        None
    };

    let modules = if flags & FLAG_MODS != 0 {
        parse_modules(
            mem,
            field(&info, OFF_MODS_COUNT),
            field(&info, OFF_MODS_ADDR),
            &mut boot_data,
        )?
    } else {
        Vec::new()
    };

    let mut memory_map = if flags & FLAG_MMAP != 0 {
        parse_mmap(
            mem,
            field(&info, OFF_MMAP_ADDR),
            field(&info, OFF_MMAP_LENGTH),
            &mut boot_data,
        )?
    } else {
        Vec::new()
    };
    if memory_map.is_empty() && flags & FLAG_MEM != 0 {
        memory_map = map_from_mem_sizes(field(&info, OFF_MEM_LOWER), field(&info, OFF_MEM_UPPER));
    }
    if memory_map.is_empty() {
        return Err(BootInfoError::NoMemoryInfo);
    }
    // Stable sort: entries with equal bases keep the loader's order.
    memory_map.sort_by_key(|r| r.base);

    normalize_ranges(&mut boot_data);
    Ok(BootInfo {
        protocol: Protocol::Multiboot1,
        loader_name,
        cmdline,
        memory_map,
        modules,
        rsdp: None,
        boot_data,
    })
}

/// Reads the `count`-entry module array at `addr` and each module's string.
fn parse_modules<M: PhysMemory + ?Sized>(
    mem: &M,
    count: u32,
    addr: u32,
    boot_data: &mut Vec<(u64, u64)>,
) -> Result<Vec<Module>, BootInfoError> {
    // Check the count before allocating or looping: a garbage count must not cost 4 G reads.
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > MAX_MODULES {
        return Err(BootInfoError::TooMany {
            what: "modules",
            limit: MAX_MODULES,
        });
    }
    let addr = u64::from(addr);
    push_range(boot_data, addr, count as u64 * MODULE_ENTRY_SIZE)?;

    let mut modules = Vec::with_capacity(count);
    for i in 0..count as u64 {
        let at = addr_add(
            addr,
            i * MODULE_ENTRY_SIZE,
            "module array wraps past the address space",
        )?;
        let mut entry = [0u8; MODULE_ENTRY_SIZE as usize];
        read_exact(mem, at, &mut entry)?;
        let word =
            |o: usize| u32::from_le_bytes([entry[o], entry[o + 1], entry[o + 2], entry[o + 3]]);
        let (start, end, string) = (word(0), word(4), word(8));
        if end < start {
            return Err(BootInfoError::Malformed("module ends before it starts"));
        }
        let cmdline = string_at(mem, string, boot_data)?.unwrap_or_default();
        modules.push(Module {
            start: u64::from(start),
            end: u64::from(end),
            cmdline,
        });
    }
    Ok(modules)
}

/// Walks the memory-map buffer `[addr, addr + length)`. Each entry starts with a `size` field
/// that does not count itself, so the next entry is at `+ size + 4`; loaders may use a larger
/// `size` than the 20 bytes we read, and we honour it.
fn parse_mmap<M: PhysMemory + ?Sized>(
    mem: &M,
    addr: u32,
    length: u32,
    boot_data: &mut Vec<(u64, u64)>,
) -> Result<Vec<MemoryRegion>, BootInfoError> {
    let start = u64::from(addr);
    let end = start + u64::from(length); // two u32s cannot overflow u64
    push_range(boot_data, start, u64::from(length))?;

    let mut map = Vec::new();
    let mut at = start;
    while at < end {
        if map.len() == MAX_MEMORY_REGIONS {
            return Err(BootInfoError::TooMany {
                what: "memory map entries",
                limit: MAX_MEMORY_REGIONS,
            });
        }
        let size = mem
            .read_u32(at)
            .ok_or(BootInfoError::Unreadable { paddr: at })?;
        if size < MMAP_ENTRY_MIN_SIZE {
            return Err(BootInfoError::Malformed("memory map entry too small"));
        }
        // `size` >= 20 guarantees progress, and the entry cap bounds the number of iterations.
        let next = at + 4 + u64::from(size);
        if next > end {
            return Err(BootInfoError::Malformed(
                "memory map entry runs past mmap_length",
            ));
        }
        let mut e = [0u8; MMAP_ENTRY_MIN_SIZE as usize];
        read_exact(mem, at + 4, &mut e)?;
        let mut b8 = [0u8; 8];
        b8.copy_from_slice(&e[0..8]);
        let base = u64::from_le_bytes(b8);
        b8.copy_from_slice(&e[8..16]);
        let len = u64::from_le_bytes(b8);
        let kind = u32::from_le_bytes([e[16], e[17], e[18], e[19]]);
        map.push(region(base, len, kind)?);
        at = next;
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MB1_BOOTLOADER_MAGIC;
    use crate::info::test_support::{Image, fuzz};
    use crate::info::{MemoryKind, parse as parse_any};

    const BASE: u64 = 0x9000;

    /// Where the interesting parts of a built fixture ended up, so tests can check `boot_data`
    /// and corrupt specific fields.
    struct Layout {
        info: u64,
        cmdline: u64,
        loader: u64,
        mods: u64,
        mod_strings: Vec<u64>,
        mmap: u64,
        mmap_len: u32,
    }

    /// What a fixture should contain; defaults mirror what GRUB 2 passes on a 128 MiB QEMU VM.
    struct Mb1Builder {
        flags: u32,
        mem_lower: u32,
        mem_upper: u32,
        cmdline: &'static str,
        loader: &'static str,
        modules: Vec<(u32, u32, &'static str)>,
        /// (size field, base, len, type)
        mmap: Vec<(u32, u64, u64, u32)>,
    }

    impl Mb1Builder {
        fn grub() -> Self {
            Self {
                flags: FLAG_MEM | FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP | FLAG_LOADER_NAME,
                mem_lower: 639,
                mem_upper: 129_920,
                cmdline: "/boot/xenolith.elf console=com1 dom0_mem=512M",
                loader: "GRUB 2.06",
                modules: alloc::vec![
                    (
                        0x0200_0000,
                        0x0254_3210,
                        "/boot/vmlinuz root=/dev/vda1 console=hvc0"
                    ),
                    (0x0255_0000, 0x02a0_0000, "/boot/initrd.img"),
                ],
                mmap: alloc::vec![
                    (20, 0, 0x9fc00, 1),
                    (20, 0x9fc00, 0x400, 2),
                    (20, 0xf0000, 0x10000, 2),
                    (20, 0x10_0000, 0x7ee_0000, 1),
                    (20, 0x7fe_0000, 0x2_0000, 2),
                    (20, 0xfffc_0000, 0x4_0000, 2),
                ],
            }
        }

        /// Lays the structure out at `BASE` like a loader would: the info struct first, then
        /// strings, the module array and the memory map buffer.
        fn build(&self) -> (Image, Layout) {
            let mut img = Image::new(BASE);
            let info = img.alloc(&[0u8; INFO_SIZE as usize], 8);
            let cmdline = img.alloc_str(self.cmdline);
            let loader = img.alloc_str(self.loader);
            let mod_strings: Vec<u64> = self.modules.iter().map(|m| img.alloc_str(m.2)).collect();
            let mut mods = Vec::new();
            for (m, &s) in self.modules.iter().zip(&mod_strings) {
                for w in [m.0, m.1, s as u32, 0] {
                    mods.extend_from_slice(&w.to_le_bytes());
                }
            }
            let mods = img.alloc(&mods, 4);
            let mut mmap = Vec::new();
            for &(size, base, len, ty) in &self.mmap {
                let mut e = Vec::new();
                e.extend_from_slice(&size.to_le_bytes());
                e.extend_from_slice(&base.to_le_bytes());
                e.extend_from_slice(&len.to_le_bytes());
                e.extend_from_slice(&ty.to_le_bytes());
                e.resize(size as usize + 4, 0xee); // padding a larger `size` declares
                mmap.extend_from_slice(&e);
            }
            let mmap_len = mmap.len() as u32;
            let mmap = img.alloc(&mmap, 4);
            // Trailing slack so "pointer just past the end" tests have something to point at.
            img.alloc(&[0u8; 8], 1);

            img.put_u32(info + OFF_FLAGS as u64, self.flags);
            img.put_u32(info + OFF_MEM_LOWER as u64, self.mem_lower);
            img.put_u32(info + OFF_MEM_UPPER as u64, self.mem_upper);
            img.put_u32(info + OFF_CMDLINE as u64, cmdline as u32);
            img.put_u32(info + OFF_MODS_COUNT as u64, self.modules.len() as u32);
            img.put_u32(info + OFF_MODS_ADDR as u64, mods as u32);
            img.put_u32(info + OFF_MMAP_LENGTH as u64, mmap_len);
            img.put_u32(info + OFF_MMAP_ADDR as u64, mmap as u32);
            img.put_u32(info + OFF_BOOT_LOADER_NAME as u64, loader as u32);
            let layout = Layout {
                info,
                cmdline,
                loader,
                mods,
                mod_strings,
                mmap,
                mmap_len,
            };
            (img, layout)
        }
    }

    fn region(base: u64, len: u64, kind: MemoryKind) -> MemoryRegion {
        MemoryRegion { base, len, kind }
    }

    #[test]
    fn parses_grub_like_fixture() {
        let (img, l) = Mb1Builder::grub().build();
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.protocol, Protocol::Multiboot1);
        assert_eq!(
            info.cmdline,
            "/boot/xenolith.elf console=com1 dom0_mem=512M"
        );
        assert_eq!(info.loader_name.as_deref(), Some("GRUB 2.06"));
        assert_eq!(info.rsdp, None);
        assert_eq!(
            info.memory_map,
            [
                region(0, 0x9fc00, MemoryKind::Usable),
                region(0x9fc00, 0x400, MemoryKind::Reserved),
                region(0xf0000, 0x10000, MemoryKind::Reserved),
                region(0x10_0000, 0x7ee_0000, MemoryKind::Usable),
                region(0x7fe_0000, 0x2_0000, MemoryKind::Reserved),
                region(0xfffc_0000, 0x4_0000, MemoryKind::Reserved),
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
        // Everything was packed back to back from BASE, so the pieces merge into one range
        // except for alignment gaps; check coverage piece by piece instead of guessing.
        let covered = |s: u64, e: u64| info.boot_data.iter().any(|&(a, b)| a <= s && e <= b);
        assert!(covered(l.info, l.info + INFO_SIZE));
        assert!(covered(l.cmdline, l.cmdline + 46)); // 45 chars + NUL
        assert!(covered(l.loader, l.loader + 10));
        assert!(covered(l.mods, l.mods + 32));
        assert!(covered(l.mmap, l.mmap + u64::from(l.mmap_len)));
        for (&s, m) in l.mod_strings.iter().zip(&info.modules) {
            assert!(covered(s, s + m.cmdline.len() as u64 + 1));
        }
        // ...and nothing beyond the mmap buffer (the trailing slack is not boot data).
        assert_eq!(
            info.boot_data.last().unwrap().1,
            l.mmap + u64::from(l.mmap_len)
        );
        assert_eq!(info.boot_data.first().unwrap().0, BASE);
    }

    #[test]
    fn boot_data_lists_scattered_pieces_exactly() {
        // Place each piece far apart so every range must be reported separately.
        let mut img = Image::new(0x1000);
        let info = img.alloc(&[0u8; INFO_SIZE as usize], 8);
        img.alloc(&[0u8; 0x100], 1);
        let cmd = img.alloc_str("xen");
        img.alloc(&[0u8; 0x100], 1);
        let s0 = img.alloc_str("m0");
        img.alloc(&[0u8; 0x100], 1);
        let mut arr = Vec::new();
        for w in [0x10_0000u32, 0x10_1000, s0 as u32, 0] {
            arr.extend_from_slice(&w.to_le_bytes());
        }
        let mods = img.alloc(&arr, 0x100);
        img.alloc(&[0u8; 0x100], 1);
        let mut mm = Vec::new();
        mm.extend_from_slice(&20u32.to_le_bytes());
        mm.extend_from_slice(&0x10_0000u64.to_le_bytes());
        mm.extend_from_slice(&0x100_0000u64.to_le_bytes());
        mm.extend_from_slice(&1u32.to_le_bytes());
        let mmap = img.alloc(&mm, 0x100);
        img.put_u32(info, FLAG_CMDLINE | FLAG_MODS | FLAG_MMAP);
        img.put_u32(info + OFF_CMDLINE as u64, cmd as u32);
        img.put_u32(info + OFF_MODS_COUNT as u64, 1);
        img.put_u32(info + OFF_MODS_ADDR as u64, mods as u32);
        img.put_u32(info + OFF_MMAP_LENGTH as u64, 24);
        img.put_u32(info + OFF_MMAP_ADDR as u64, mmap as u32);

        let bi = parse(info, &img.mem()).unwrap();
        assert_eq!(bi.loader_name, None);
        assert_eq!(
            bi.boot_data,
            [
                (info, info + INFO_SIZE),
                (cmd, cmd + 4),
                (s0, s0 + 3),
                (mods, mods + 16),
                (mmap, mmap + 24),
            ]
        );
    }

    #[test]
    fn dispatch_through_magic() {
        let (img, _) = Mb1Builder::grub().build();
        let via_any = parse_any(MB1_BOOTLOADER_MAGIC, BASE, &img.mem()).unwrap();
        assert_eq!(via_any, parse(BASE, &img.mem()).unwrap());
        assert_eq!(
            parse_any(0x2bad_b003, BASE, &img.mem()),
            Err(BootInfoError::BadMagic(0x2bad_b003))
        );
    }

    #[test]
    fn mmap_is_sorted_and_entry_size_is_honoured() {
        let mut b = Mb1Builder::grub();
        b.mmap = alloc::vec![
            (20, 0x10_0000, 0x100_0000, 1),
            (28, 0, 0x9f000, 1), // larger entry: 8 bytes of padding to skip
            (20, 0xe_0000, 0x2_0000, 3),
            (24, 0x1_0000_0000, 0x1000, 7),
        ];
        let (img, _) = b.build();
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(
            info.memory_map,
            [
                region(0, 0x9f000, MemoryKind::Usable),
                region(0xe_0000, 0x2_0000, MemoryKind::AcpiReclaimable),
                region(0x10_0000, 0x100_0000, MemoryKind::Usable),
                region(0x1_0000_0000, 0x1000, MemoryKind::Other(7)),
            ]
        );
    }

    #[test]
    fn mem_lower_upper_fallback_without_mmap() {
        let mut b = Mb1Builder::grub();
        b.flags &= !FLAG_MMAP;
        let (img, l) = b.build();
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(
            info.memory_map,
            [
                region(0, 639 * 1024, MemoryKind::Usable),
                region(0x10_0000, 129_920 * 1024, MemoryKind::Usable),
            ]
        );
        // The mmap buffer is not boot data when the loader did not flag it.
        assert!(info.boot_data.iter().all(|&(_, e)| e <= l.mmap));
    }

    #[test]
    fn empty_mmap_falls_back_to_mem_sizes() {
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.info + OFF_MMAP_LENGTH as u64, 0);
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.memory_map.len(), 2);
        assert_eq!(info.memory_map[1].base, 0x10_0000);
    }

    #[test]
    fn no_memory_information_is_an_error() {
        let mut b = Mb1Builder::grub();
        b.flags &= !(FLAG_MMAP | FLAG_MEM);
        let (img, _) = b.build();
        assert_eq!(parse(BASE, &img.mem()), Err(BootInfoError::NoMemoryInfo));
        // Bit 0 with both sizes zero is no information either.
        let mut b = Mb1Builder::grub();
        b.flags &= !FLAG_MMAP;
        b.mem_lower = 0;
        b.mem_upper = 0;
        let (img, _) = b.build();
        assert_eq!(parse(BASE, &img.mem()), Err(BootInfoError::NoMemoryInfo));
    }

    #[test]
    fn absent_optional_fields() {
        let mut b = Mb1Builder::grub();
        b.flags = FLAG_MEM;
        let (img, _) = b.build();
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.cmdline, "");
        assert_eq!(info.loader_name, None);
        assert!(info.modules.is_empty());
        assert_eq!(info.boot_data, [(BASE, BASE + INFO_SIZE)]);
        // A null string pointer with its flag set is treated as absent, not read from 0.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.info + OFF_CMDLINE as u64, 0);
        img.put_u32(l.info + OFF_BOOT_LOADER_NAME as u64, 0);
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.cmdline, "");
        assert_eq!(info.loader_name, None);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let (mut img, l) = Mb1Builder::grub().build();
        let o = (l.cmdline - BASE) as usize;
        img.bytes[o + 1] = 0xff; // "/boot" -> "/?oot"
        let info = parse(BASE, &img.mem()).unwrap();
        assert!(info.cmdline.starts_with("/?oot/xenolith.elf"));
    }

    #[test]
    fn truncated_info_struct() {
        let (img, _) = Mb1Builder::grub().build();
        for cut in [0, 4, 47, 87] {
            let mem = crate::SliceMemory {
                base: BASE,
                bytes: &img.bytes[..cut],
            };
            assert_eq!(
                parse(BASE, &mem),
                Err(BootInfoError::Unreadable { paddr: BASE })
            );
        }
        // 88 bytes (pre-framebuffer loaders) are enough to parse the header itself.
        let mut b = Mb1Builder::grub();
        b.flags = FLAG_MEM;
        let (img, _) = b.build();
        let mem = crate::SliceMemory {
            base: BASE,
            bytes: &img.bytes[..88],
        };
        assert!(parse(BASE, &mem).is_ok());
    }

    #[test]
    fn pointers_outside_the_fixture() {
        let (img, l) = Mb1Builder::grub().build();
        let end = BASE + img.bytes.len() as u64;
        for (field, expect_paddr) in [
            (OFF_CMDLINE, end),
            (OFF_BOOT_LOADER_NAME, end),
            (OFF_MODS_ADDR, end),
            (OFF_MMAP_ADDR, end),
        ] {
            let mut img2 = Image::new(BASE);
            img2.bytes = img.bytes.clone();
            img2.put_u32(l.info + field as u64, end as u32);
            assert_eq!(
                parse(BASE, &img2.mem()),
                Err(BootInfoError::Unreadable {
                    paddr: expect_paddr
                }),
                "field at offset {field}"
            );
        }
        // Info pointer itself outside memory.
        assert_eq!(
            parse(0x10, &img.mem()),
            Err(BootInfoError::Unreadable { paddr: 0x10 })
        );
        assert!(parse(u64::MAX - 4, &img.mem()).is_err());
        // Module string pointer outside memory.
        let mut img2 = Image::new(BASE);
        img2.bytes = img.bytes.clone();
        img2.put_u32(l.mods + 8, 0xdead_0000);
        assert_eq!(
            parse(BASE, &img2.mem()),
            Err(BootInfoError::Unreadable { paddr: 0xdead_0000 })
        );
    }

    #[test]
    fn unterminated_strings() {
        // Cmdline running into the end of memory.
        let (mut img, l) = Mb1Builder::grub().build();
        let end = BASE + img.bytes.len() as u64;
        img.alloc(b"tail without nul", 1);
        img.put_u32(l.info + OFF_CMDLINE as u64, end as u32);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Unreadable { paddr: end + 16 })
        );
        // Loader name with no NUL within 4096 bytes.
        let (mut img, l) = Mb1Builder::grub().build();
        let long = img.alloc(&[b'x'; 5000], 1);
        img.put_u32(l.info + OFF_BOOT_LOADER_NAME as u64, long as u32);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::UnterminatedString { paddr: long })
        );
    }

    #[test]
    fn huge_counts_are_rejected() {
        for count in [65, 1000, u32::MAX] {
            let (mut img, l) = Mb1Builder::grub().build();
            img.put_u32(l.info + OFF_MODS_COUNT as u64, count);
            assert_eq!(
                parse(BASE, &img.mem()),
                Err(BootInfoError::TooMany {
                    what: "modules",
                    limit: MAX_MODULES
                })
            );
        }
        // 129 well-formed mmap entries exceed the cap.
        let mut b = Mb1Builder::grub();
        b.mmap = (0..129u64).map(|i| (20, i << 12, 0x1000, 1)).collect();
        let (img, _) = b.build();
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::TooMany {
                what: "memory map entries",
                limit: MAX_MEMORY_REGIONS
            })
        );
        // Exactly 128 is fine.
        let mut b = Mb1Builder::grub();
        b.mmap = (0..128u64).map(|i| (20, i << 12, 0x1000, 1)).collect();
        let (img, _) = b.build();
        assert_eq!(parse(BASE, &img.mem()).unwrap().memory_map.len(), 128);
        // A huge mmap_length makes the walk continue into what follows the real entries: the
        // fixture's zero slack (a size-0 entry), then unreadable memory. Either way it fails.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.info + OFF_MMAP_LENGTH as u64, u32::MAX);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed("memory map entry too small"))
        );
        img.bytes.truncate(img.bytes.len() - 8);
        let end = BASE + img.bytes.len() as u64;
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Unreadable { paddr: end })
        );
    }

    #[test]
    fn malformed_mmap_and_modules() {
        // Entry size too small to hold an entry (also guards against a zero-size infinite loop).
        for size in [0, 19] {
            let (mut img, l) = Mb1Builder::grub().build();
            img.put_u32(l.mmap, size);
            assert_eq!(
                parse(BASE, &img.mem()),
                Err(BootInfoError::Malformed("memory map entry too small"))
            );
        }
        // Entry larger than the remaining buffer.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.info + OFF_MMAP_LENGTH as u64, l.mmap_len - 1);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed(
                "memory map entry runs past mmap_length"
            ))
        );
        // Huge entry size.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.mmap, u32::MAX);
        assert!(matches!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed(_))
        ));
        // Entry whose end wraps past 2^64.
        let mut b = Mb1Builder::grub();
        b.mmap.push((20, u64::MAX - 0xfff, 0x2000, 2));
        let (img, _) = b.build();
        assert!(matches!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed(_))
        ));
        // Module that ends before it starts.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.mods + 4, 0x100);
        assert_eq!(
            parse(BASE, &img.mem()),
            Err(BootInfoError::Malformed("module ends before it starts"))
        );
    }

    #[test]
    fn mmap_length_in_bytes_is_respected() {
        // A length covering only the first two entries must stop there, not read on.
        let (mut img, l) = Mb1Builder::grub().build();
        img.put_u32(l.info + OFF_MMAP_LENGTH as u64, 48);
        let info = parse(BASE, &img.mem()).unwrap();
        assert_eq!(info.memory_map.len(), 2);
        assert_eq!(
            info.memory_map[1],
            region(0x9fc00, 0x400, MemoryKind::Reserved)
        );
    }

    #[test]
    fn fuzz_mutations_never_panic() {
        let (img, _) = Mb1Builder::grub().build();
        let ok = fuzz(0x5eed_0001, &img, 10_000, |mem| {
            parse_any(MB1_BOOTLOADER_MAGIC, BASE, mem)
        });
        // Many single-byte mutations hit padding or string contents and still parse; if none
        // did, the fuzzer would only be exercising the first error path.
        assert!(ok > 100, "only {ok} mutants parsed");
        assert!(ok < 10_000, "no mutant was rejected");
    }
}
