//! The protocol-neutral boot information that the rest of the hypervisor consumes, plus the
//! helpers both parsers share (bounded C-string reads, range bookkeeping, limits).
//!
//! Everything here treats loader-provided memory as hostile: every read goes through
//! [`PhysMemory`], every address computation is checked, and every count is capped, so a corrupt
//! or malicious boot-information block produces a [`BootInfoError`] instead of a fault or an
//! unbounded allocation.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::physmem::PhysMemory;
use crate::{MB1_BOOTLOADER_MAGIC, MB2_BOOTLOADER_MAGIC};

/// Most memory-map entries a parser accepts. Real firmware maps are far smaller; the cap bounds
/// allocation and loop length when the reported length is garbage.
pub const MAX_MEMORY_REGIONS: usize = 128;

/// Most boot modules a parser accepts (dom0 kernel, initrd, XSM policy, microcode... fit easily).
pub const MAX_MODULES: usize = 64;

/// Longest C string a parser reads, *including* its NUL terminator. A string without a NUL in
/// its first `MAX_STRING_LEN` bytes is rejected rather than truncated, because a missing
/// terminator almost always means the pointer is wrong.
pub const MAX_STRING_LEN: usize = 4096;

/// Which boot protocol delivered the information.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// Multiboot 0.6.96 (magic `0x2badb002` in EAX).
    Multiboot1,
    /// Multiboot2 (magic `0x36d76289` in EAX).
    Multiboot2,
}

/// Type of a physical memory region, using the e820 numbering that both multiboot protocols
/// reuse for their memory maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// e820 type 1: RAM the hypervisor may allocate.
    Usable,
    /// e820 type 2: reserved by firmware or hardware.
    Reserved,
    /// e820 type 3: ACPI tables; reclaimable once they have been consumed.
    AcpiReclaimable,
    /// e820 type 4: ACPI non-volatile storage; must be preserved across sleep states.
    AcpiNvs,
    /// e820 type 5: RAM with detected errors.
    Unusable,
    /// Any other e820 type (e.g. 7 = persistent memory), kept verbatim so it can be reported
    /// and passed through rather than silently treated as RAM.
    Other(u32),
}

impl MemoryKind {
    /// Maps an e820 type number to a kind; unknown numbers (including 0) become [`Self::Other`].
    pub fn from_e820(t: u32) -> Self {
        match t {
            1 => Self::Usable,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }

    /// The e820 type number of this kind; inverse of [`Self::from_e820`].
    pub fn e820_type(self) -> u32 {
        match self {
            Self::Usable => 1,
            Self::Reserved => 2,
            Self::AcpiReclaimable => 3,
            Self::AcpiNvs => 4,
            Self::Unusable => 5,
            Self::Other(t) => t,
        }
    }

    /// Xen's name for the five well-known types, or `None` for [`Self::Other`] (which Xen prints
    /// as `type N`, without parentheses).
    fn xen_name(self) -> Option<&'static str> {
        match self {
            Self::Usable => Some("usable"),
            Self::Reserved => Some("reserved"),
            Self::AcpiReclaimable => Some("ACPI data"),
            Self::AcpiNvs => Some("ACPI NVS"),
            Self::Unusable => Some("unusable"),
            Self::Other(_) => None,
        }
    }
}

impl fmt::Display for MemoryKind {
    /// Prints the names Xen's `print_e820_memory_map` uses, so our log matches Xen's.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.xen_name(), self) {
            (Some(name), _) => f.write_str(name),
            (None, kind) => write!(f, "type {}", kind.e820_type()),
        }
    }
}

/// One entry of the physical memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryRegion {
    /// First physical address of the region.
    pub base: u64,
    /// Length in bytes.
    pub len: u64,
    /// What the region may be used for.
    pub kind: MemoryKind,
}

impl MemoryRegion {
    /// Exclusive end address. Saturates at `u64::MAX`; the parsers reject regions that would
    /// wrap, so saturation only matters for regions built by hand.
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// Formats `r` exactly like one line of Xen 4.17's `print_e820_memory_map`
/// (`" [%016Lx, %016Lx] "` with an inclusive end, then `(usable)` etc. or `type N`), without the
/// trailing newline. Matching Xen byte for byte lets the boot log be diffed against a real Xen's.
pub fn format_ram_map_line(r: &MemoryRegion) -> impl fmt::Display {
    RamMapLine(*r)
}

/// [`fmt::Display`] adapter returned by [`format_ram_map_line`].
struct RamMapLine(MemoryRegion);

impl fmt::Display for RamMapLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.0;
        // Xen computes `addr + size - 1` in unsigned C arithmetic; wrapping reproduces that even
        // for a zero-length region.
        let last = r.base.wrapping_add(r.len).wrapping_sub(1);
        write!(f, " [{:016x}, {:016x}] ", r.base, last)?;
        match r.kind.xen_name() {
            Some(name) => write!(f, "({name})"),
            None => write!(f, "type {}", r.kind.e820_type()),
        }
    }
}

/// A boot module (dom0 kernel, initrd, ...) as loaded into physical memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    /// First physical address of the module image.
    pub start: u64,
    /// Exclusive end address of the module image.
    pub end: u64,
    /// The module's command line (often its path followed by arguments); empty if none.
    pub cmdline: String,
}

/// Boot information in a form independent of the protocol that delivered it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootInfo {
    /// Protocol the information came from.
    pub protocol: Protocol,
    /// Name the boot loader reported for itself, if it did.
    pub loader_name: Option<String>,
    /// Command line exactly as the loader gave it (GRUB includes the image path); empty if none.
    pub cmdline: String,
    /// Memory map as reported by the loader (or synthesized from lower/upper memory sizes),
    /// sorted by base address but otherwise unmodified: no merging, clipping or overlap fixing.
    pub memory_map: Vec<MemoryRegion>,
    /// Boot modules in the order the loader listed them.
    pub modules: Vec<Module>,
    /// Copy of the multiboot2 ACPI RSDP tag payload (the "new" ACPI 2.0+ tag is preferred over
    /// the "old" ACPI 1.0 one). Always `None` for multiboot1, which has no such field.
    pub rsdp: Option<Vec<u8>>,
    /// Physical `[start, end)` ranges occupied by the boot information itself (info structure,
    /// strings, memory-map buffer, module array, or the whole multiboot2 block), sorted and with
    /// overlapping or touching ranges merged. The frame allocator must keep these until the
    /// information has been consumed.
    pub boot_data: Vec<(u64, u64)>,
}

/// Why boot information could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootInfoError {
    /// EAX did not hold either multiboot magic value.
    BadMagic(u32),
    /// A structure the loader pointed at is not readable through [`PhysMemory`].
    Unreadable {
        /// Physical address of the read that failed.
        paddr: u64,
    },
    /// The structure is internally inconsistent; the text says how.
    Malformed(&'static str),
    /// More entries than the parser's cap (see [`MAX_MEMORY_REGIONS`], [`MAX_MODULES`]).
    TooMany {
        /// What was being counted.
        what: &'static str,
        /// The cap that was exceeded.
        limit: usize,
    },
    /// A string had no NUL within its tag or within [`MAX_STRING_LEN`] bytes.
    UnterminatedString {
        /// Physical address where the string starts.
        paddr: u64,
    },
    /// Neither a memory map nor lower/upper memory sizes were provided (or both were empty), so
    /// there is no way to know where RAM is.
    NoMemoryInfo,
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(m) => write!(f, "unknown boot loader magic {m:#010x}"),
            Self::Unreadable { paddr } => {
                write!(f, "boot information unreadable at {paddr:#x}")
            }
            Self::Malformed(why) => write!(f, "malformed boot information: {why}"),
            Self::TooMany { what, limit } => write!(f, "too many {what} (limit {limit})"),
            Self::UnterminatedString { paddr } => {
                write!(f, "unterminated string at {paddr:#x}")
            }
            Self::NoMemoryInfo => f.write_str("boot loader provided no memory information"),
        }
    }
}

impl core::error::Error for BootInfoError {}

/// Parses the boot information a multiboot1 or multiboot2 loader left at `info_paddr`, choosing
/// the protocol from `magic` (the value the loader put in EAX).
pub fn parse(magic: u32, info_paddr: u64, mem: &dyn PhysMemory) -> Result<BootInfo, BootInfoError> {
    match magic {
        MB1_BOOTLOADER_MAGIC => crate::mb1::parse(info_paddr, mem),
        MB2_BOOTLOADER_MAGIC => crate::mb2::parse(info_paddr, mem),
        other => Err(BootInfoError::BadMagic(other)),
    }
}

/// Returns `base + off`, or a `Malformed` error naming `what` if that wraps.
pub(crate) fn addr_add(base: u64, off: u64, what: &'static str) -> Result<u64, BootInfoError> {
    base.checked_add(off).ok_or(BootInfoError::Malformed(what))
}

/// Reads exactly `buf.len()` bytes at `paddr`, mapping failure to [`BootInfoError::Unreadable`].
pub(crate) fn read_exact<M: PhysMemory + ?Sized>(
    mem: &M,
    paddr: u64,
    buf: &mut [u8],
) -> Result<(), BootInfoError> {
    if mem.read_bytes(paddr, buf) {
        Ok(())
    } else {
        Err(BootInfoError::Unreadable { paddr })
    }
}

/// Reads a NUL-terminated string at `paddr` whose terminator must lie within the first
/// `max_len` bytes (and never beyond [`MAX_STRING_LEN`]). Returns the string (invalid UTF-8
/// replaced, see [`lossy_utf8`]) and the number of bytes it occupies including the NUL, so the
/// caller can record it in `boot_data`.
pub(crate) fn read_c_string<M: PhysMemory + ?Sized>(
    mem: &M,
    paddr: u64,
    max_len: usize,
) -> Result<(String, u64), BootInfoError> {
    let max_len = max_len.min(MAX_STRING_LEN);
    let mut bytes = Vec::new();
    for i in 0..max_len {
        // Byte-at-a-time so a string ending just before unreadable memory still parses; the
        // 4 KiB cap keeps this cheap.
        let at = addr_add(paddr, i as u64, "string wraps past the address space")?;
        let b = mem
            .read_u8(at)
            .ok_or(BootInfoError::Unreadable { paddr: at })?;
        if b == 0 {
            return Ok((lossy_utf8(&bytes), i as u64 + 1));
        }
        bytes.push(b);
    }
    Err(BootInfoError::UnterminatedString { paddr })
}

/// Converts bytes to a `String`, replacing every byte that is not part of valid UTF-8 with `?`.
/// Boot loaders hand over arbitrary bytes; an ASCII replacement keeps later command-line parsing
/// and serial output simple (no U+FFFD, which would not fit the legacy code paths).
pub(crate) fn lossy_utf8(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match core::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (good, rest) = bytes.split_at(e.valid_up_to());
                // `good` is valid by construction of `valid_up_to`, so this cannot fail.
                out.push_str(core::str::from_utf8(good).unwrap_or_default());
                // `error_len` is `None` when the input ends inside a sequence: all of the rest
                // is bad then.
                let bad = e.error_len().unwrap_or(rest.len());
                for _ in 0..bad {
                    out.push('?');
                }
                bytes = &rest[bad..];
            }
        }
    }
}

/// Records `[start, start + len)` in `ranges`; empty ranges are skipped because they occupy no
/// memory.
pub(crate) fn push_range(
    ranges: &mut Vec<(u64, u64)>,
    start: u64,
    len: u64,
) -> Result<(), BootInfoError> {
    if len != 0 {
        let end = addr_add(start, len, "boot data range wraps past the address space")?;
        ranges.push((start, end));
    }
    Ok(())
}

/// Sorts `ranges` and merges overlapping or touching ones, so consumers get a minimal,
/// deterministic list to reserve.
pub(crate) fn normalize_ranges(ranges: &mut Vec<(u64, u64)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *ranges = merged;
}

/// Builds a memory-map entry from raw loader fields, rejecting entries whose end would wrap:
/// such an entry is corrupt and guessing a size could hand non-RAM to the allocator.
pub(crate) fn region(base: u64, len: u64, e820_type: u32) -> Result<MemoryRegion, BootInfoError> {
    if base.checked_add(len).is_none() {
        return Err(BootInfoError::Malformed(
            "memory map entry wraps past the address space",
        ));
    }
    Ok(MemoryRegion {
        base,
        len,
        kind: MemoryKind::from_e820(e820_type),
    })
}

/// Synthesizes a memory map from the legacy lower/upper memory sizes (KiB below 640 KiB and KiB
/// above 1 MiB) for loaders that give no full map. Zero-sized halves are omitted.
pub(crate) fn map_from_mem_sizes(mem_lower_kib: u32, mem_upper_kib: u32) -> Vec<MemoryRegion> {
    const ONE_MIB: u64 = 0x10_0000;
    let mut map = Vec::new();
    // u32 KiB * 1024 is at most 2^42, so neither product nor the 1 MiB offset can overflow u64.
    let lower = u64::from(mem_lower_kib) * 1024;
    let upper = u64::from(mem_upper_kib) * 1024;
    if lower != 0 {
        map.push(MemoryRegion {
            base: 0,
            len: lower,
            kind: MemoryKind::Usable,
        });
    }
    if upper != 0 {
        map.push(MemoryRegion {
            base: ONE_MIB,
            len: upper,
            kind: MemoryKind::Usable,
        });
    }
    map
}

/// Shared fixture and fuzzing helpers for the parser tests in this crate.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{BootInfo, BootInfoError, MAX_MEMORY_REGIONS, MAX_MODULES, MAX_STRING_LEN};
    use crate::physmem::SliceMemory;

    /// A growable byte image standing for physical memory at `base`, with a bump allocator so
    /// fixtures can lay out structures, strings and tables the way a loader would.
    pub(crate) struct Image {
        pub(crate) base: u64,
        pub(crate) bytes: Vec<u8>,
    }

    impl Image {
        pub(crate) fn new(base: u64) -> Self {
            Self {
                base,
                bytes: Vec::new(),
            }
        }

        /// Appends `data` at the next `align`-aligned address and returns its physical address.
        pub(crate) fn alloc(&mut self, data: &[u8], align: usize) -> u64 {
            while !self.bytes.len().is_multiple_of(align) {
                self.bytes.push(0);
            }
            let paddr = self.base + self.bytes.len() as u64;
            self.bytes.extend_from_slice(data);
            paddr
        }

        /// Appends a NUL-terminated copy of `s` and returns its physical address.
        pub(crate) fn alloc_str(&mut self, s: &str) -> u64 {
            let mut v = s.as_bytes().to_vec();
            v.push(0);
            self.alloc(&v, 1)
        }

        fn off(&self, paddr: u64) -> usize {
            usize::try_from(paddr - self.base).unwrap()
        }

        pub(crate) fn put_u32(&mut self, paddr: u64, v: u32) {
            let o = self.off(paddr);
            self.bytes[o..o + 4].copy_from_slice(&v.to_le_bytes());
        }

        pub(crate) fn get_u32(&self, paddr: u64) -> u32 {
            let o = self.off(paddr);
            u32::from_le_bytes(self.bytes[o..o + 4].try_into().unwrap())
        }

        pub(crate) fn mem(&self) -> SliceMemory<'_> {
            SliceMemory {
                base: self.base,
                bytes: &self.bytes,
            }
        }
    }

    /// xorshift64: tiny, deterministic, good enough to drive mutations reproducibly.
    pub(crate) struct XorShift(u64);

    impl XorShift {
        pub(crate) fn new(seed: u64) -> Self {
            Self(seed.max(1))
        }

        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// Uniform-ish value in `0..n` (`n > 0`).
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Checks the guarantees a successful parse must give regardless of input.
    pub(crate) fn check_invariants(info: &BootInfo) {
        assert!(!info.memory_map.is_empty());
        assert!(info.memory_map.len() <= MAX_MEMORY_REGIONS);
        assert!(info.memory_map.windows(2).all(|w| w[0].base <= w[1].base));
        assert!(
            info.memory_map
                .iter()
                .all(|r| r.base.checked_add(r.len).is_some())
        );
        assert!(info.modules.len() <= MAX_MODULES);
        assert!(info.modules.iter().all(|m| m.start <= m.end));
        // Bytes become at most one char each, so byte length bounds hold after conversion.
        assert!(info.cmdline.chars().count() < MAX_STRING_LEN);
        assert!(info.boot_data.iter().all(|&(s, e)| s < e));
        assert!(info.boot_data.windows(2).all(|w| w[0].1 < w[1].0));
    }

    /// Mutates `template` `iterations` times (bit flips, random bytes, "interesting" 32-bit values
    /// such as pointers back into the image, truncation) and feeds each variant to `parse`,
    /// which must return rather than panic. Returns how many variants still parsed, so callers
    /// can check the fuzzer is not trivially rejecting everything.
    pub(crate) fn fuzz(
        seed: u64,
        template: &Image,
        iterations: usize,
        parse: impl Fn(&SliceMemory<'_>) -> Result<BootInfo, BootInfoError>,
    ) -> usize {
        let mut rng = XorShift::new(seed);
        let mut ok = 0;
        for _ in 0..iterations {
            let mut bytes = template.bytes.clone();
            let len = bytes.len() as u64;
            for _ in 0..=rng.below(4) {
                if bytes.is_empty() {
                    break;
                }
                let n = bytes.len() as u64;
                match rng.below(4) {
                    0 => {
                        let i = rng.below(n) as usize;
                        bytes[i] ^= 1 << rng.below(8);
                    }
                    1 => {
                        let i = rng.below(n) as usize;
                        bytes[i] = rng.next() as u8;
                    }
                    2 if n >= 4 => {
                        let interesting = [
                            0,
                            1,
                            7,
                            8,
                            16,
                            24,
                            0x1000,
                            0x7fff_ffff,
                            0x8000_0000,
                            0xffff_fff8,
                            u32::MAX,
                            len as u32,
                            (template.base + rng.below(len)) as u32,
                        ];
                        let v = interesting[rng.below(interesting.len() as u64) as usize];
                        let i = (rng.below(n - 3) & !3) as usize;
                        bytes[i..i + 4].copy_from_slice(&v.to_le_bytes());
                    }
                    _ => bytes.truncate(rng.below(n) as usize),
                }
            }
            let mem = SliceMemory {
                base: template.base,
                bytes: &bytes,
            };
            if let Ok(info) = parse(&mem) {
                check_invariants(&info);
                ok += 1;
            }
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::physmem::SliceMemory;
    use alloc::format;
    use alloc::string::ToString;

    #[test]
    fn e820_round_trip() {
        for t in 0..10 {
            assert_eq!(MemoryKind::from_e820(t).e820_type(), t);
        }
        assert_eq!(MemoryKind::from_e820(1), MemoryKind::Usable);
        assert_eq!(MemoryKind::from_e820(2), MemoryKind::Reserved);
        assert_eq!(MemoryKind::from_e820(3), MemoryKind::AcpiReclaimable);
        assert_eq!(MemoryKind::from_e820(4), MemoryKind::AcpiNvs);
        assert_eq!(MemoryKind::from_e820(5), MemoryKind::Unusable);
        assert_eq!(MemoryKind::from_e820(0), MemoryKind::Other(0));
        assert_eq!(MemoryKind::from_e820(7), MemoryKind::Other(7));
    }

    #[test]
    fn kind_display_matches_xen_names() {
        let names: Vec<String> = (1..=7)
            .map(|t| MemoryKind::from_e820(t).to_string())
            .collect();
        assert_eq!(
            names,
            [
                "usable",
                "reserved",
                "ACPI data",
                "ACPI NVS",
                "unusable",
                "type 6",
                "type 7"
            ]
        );
    }

    #[test]
    fn ram_map_line_matches_xen() {
        let r = MemoryRegion {
            base: 0,
            len: 0x9fc00,
            kind: MemoryKind::Usable,
        };
        assert_eq!(
            format!("{}", format_ram_map_line(&r)),
            " [0000000000000000, 000000000009fbff] (usable)"
        );
        let r = MemoryRegion {
            base: 0xfeff_c000,
            len: 0x4000,
            kind: MemoryKind::Reserved,
        };
        assert_eq!(
            format!("{}", format_ram_map_line(&r)),
            " [00000000feffc000, 00000000feffffff] (reserved)"
        );
        let r = MemoryRegion {
            base: 0x1_0000_0000,
            len: 0x8000_0000,
            kind: MemoryKind::AcpiNvs,
        };
        assert_eq!(
            format!("{}", format_ram_map_line(&r)),
            " [0000000100000000, 000000017fffffff] (ACPI NVS)"
        );
        // Xen prints unknown types without parentheses.
        let r = MemoryRegion {
            base: 0x7fe0000,
            len: 0x20000,
            kind: MemoryKind::Other(12),
        };
        assert_eq!(
            format!("{}", format_ram_map_line(&r)),
            " [0000000007fe0000, 0000000007ffffff] type 12"
        );
    }

    #[test]
    fn region_end_saturates() {
        let r = MemoryRegion {
            base: u64::MAX - 1,
            len: 10,
            kind: MemoryKind::Usable,
        };
        assert_eq!(r.end(), u64::MAX);
        let r = MemoryRegion {
            base: 0x1000,
            len: 0x2000,
            kind: MemoryKind::Usable,
        };
        assert_eq!(r.end(), 0x3000);
    }

    #[test]
    fn lossy_utf8_replaces_each_bad_byte() {
        assert_eq!(lossy_utf8(b"plain"), "plain");
        assert_eq!(lossy_utf8("caf\u{e9}".as_bytes()), "caf\u{e9}");
        assert_eq!(lossy_utf8(b"a\xffb"), "a?b");
        assert_eq!(lossy_utf8(b"a\xff\xfeb"), "a??b");
        // Truncated multi-byte sequence at the end.
        assert_eq!(lossy_utf8(b"ab\xe2\x82"), "ab??");
        // Lone continuation byte in the middle.
        assert_eq!(lossy_utf8(b"x\x80y"), "x?y");
    }

    #[test]
    fn c_string_limits() {
        let mut bytes = Vec::from(&b"hello\0"[..]);
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &bytes,
        };
        assert_eq!(
            read_c_string(&mem, 0x1000, MAX_STRING_LEN),
            Ok(("hello".to_string(), 6))
        );
        // The NUL must be inside the limit.
        assert_eq!(
            read_c_string(&mem, 0x1000, 5),
            Err(BootInfoError::UnterminatedString { paddr: 0x1000 })
        );
        // Running off readable memory is an Unreadable error at the first missing byte.
        bytes.pop();
        let mem = SliceMemory {
            base: 0x1000,
            bytes: &bytes,
        };
        assert_eq!(
            read_c_string(&mem, 0x1000, MAX_STRING_LEN),
            Err(BootInfoError::Unreadable { paddr: 0x1005 })
        );
        // A 4096-byte run without NUL is rejected even though memory continues.
        let long = alloc::vec![b'a'; MAX_STRING_LEN + 10];
        let mem = SliceMemory {
            base: 0,
            bytes: &long,
        };
        assert_eq!(
            read_c_string(&mem, 0, usize::MAX),
            Err(BootInfoError::UnterminatedString { paddr: 0 })
        );
        // 4095 characters plus NUL is the longest accepted string.
        let mut max = alloc::vec![b'b'; MAX_STRING_LEN - 1];
        max.push(0);
        let mem = SliceMemory {
            base: 0,
            bytes: &max,
        };
        let (s, n) = read_c_string(&mem, 0, usize::MAX).unwrap();
        assert_eq!((s.len(), n), (MAX_STRING_LEN - 1, MAX_STRING_LEN as u64));
        // A string at the very top of the address space must not wrap to 0.
        let mem = SliceMemory {
            base: u64::MAX,
            bytes: b"a",
        };
        assert!(read_c_string(&mem, u64::MAX, MAX_STRING_LEN).is_err());
    }

    #[test]
    fn ranges_are_sorted_and_merged() {
        let mut r = Vec::new();
        push_range(&mut r, 0x5000, 0x100).unwrap();
        push_range(&mut r, 0x1000, 0x10).unwrap();
        push_range(&mut r, 0x1010, 0x10).unwrap(); // touches the previous one
        push_range(&mut r, 0x5080, 0x10).unwrap(); // inside the first one
        push_range(&mut r, 0x9000, 0).unwrap(); // empty: dropped
        normalize_ranges(&mut r);
        assert_eq!(r, [(0x1000, 0x1020), (0x5000, 0x5100)]);
        assert!(push_range(&mut r, u64::MAX, 2).is_err());
    }

    #[test]
    fn mem_sizes_fallback() {
        assert_eq!(
            map_from_mem_sizes(639, 0x1_fb80),
            [
                MemoryRegion {
                    base: 0,
                    len: 639 * 1024,
                    kind: MemoryKind::Usable
                },
                MemoryRegion {
                    base: 0x10_0000,
                    len: 0x1_fb80 * 1024,
                    kind: MemoryKind::Usable
                },
            ]
        );
        assert!(map_from_mem_sizes(0, 0).is_empty());
        // Extreme values must not overflow.
        let m = map_from_mem_sizes(u32::MAX, u32::MAX);
        assert_eq!(m[1].len, u64::from(u32::MAX) * 1024);
    }

    #[test]
    fn bad_magic_is_rejected() {
        let mem = SliceMemory {
            base: 0,
            bytes: &[0u8; 256],
        };
        assert_eq!(
            parse(0x1bad_b002, 0, &mem),
            Err(BootInfoError::BadMagic(0x1bad_b002))
        );
        assert_eq!(parse(0, 0, &mem), Err(BootInfoError::BadMagic(0)));
    }

    #[test]
    fn errors_display() {
        assert_eq!(
            BootInfoError::BadMagic(0x1234).to_string(),
            "unknown boot loader magic 0x00001234"
        );
        assert_eq!(
            BootInfoError::TooMany {
                what: "modules",
                limit: 64
            }
            .to_string(),
            "too many modules (limit 64)"
        );
        assert_eq!(
            BootInfoError::Unreadable { paddr: 0x9000 }.to_string(),
            "boot information unreadable at 0x9000"
        );
    }

    #[test]
    fn xorshift_is_deterministic() {
        let mut a = test_support::XorShift::new(42);
        let mut b = test_support::XorShift::new(42);
        for _ in 0..100 {
            assert_eq!(a.next(), b.next());
        }
        assert_ne!(a.next(), 0);
    }
}
