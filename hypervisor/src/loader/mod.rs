//! The dom0 kernel loader front end: from a multiboot module to a checked, placed PV kernel.
//!
//! [`inspect`] does what Xen 4.17's `dom0_construct_pv` does before it allocates anything
//! (`xen/arch/x86/pv/dom0_build.c`): unwrap a bzImage or compressed kernel ([`bzimage`],
//! [`decompress`]), validate the ELF ([`elf`]), read and check the Xen guest description
//! ([`xen_notes`]), apply the dom0-specific checks (dom0 support, Xen's private address range,
//! supervisor-mode requirement), and list the segments with their guest-virtual destinations.
//! The result is everything the domain builder needs; nothing here touches hardware, so it
//! is all host-testable.
//!
//! Placement is libelf's: segments go by `p_paddr`, the kernel's pseudo-physical image spans
//! `[pstart, pend)` over the loadable segments, and a `p_paddr` maps to the virtual address
//! `p_paddr + virt_base - paddr_offset`.

pub mod bzimage;
pub mod decompress;
pub mod elf;
pub mod xen_notes;

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;

use alloc::borrow::Cow;
use alloc::vec::Vec;
use core::fmt;

pub use bzimage::{BzImageError, KernelFormat, KernelImage, unwrap_kernel};
pub use decompress::{Compression, DecompressError};
pub use elf::ElfError;
pub use xen_notes::{NoteError, XenGuestInfo};

use elf::{Elf64, PF_R, PF_W, PF_X};
use xen_notes::{XENFEAT_DOM0, XENFEAT_SUPERVISOR_MODE_KERNEL};

// TODO: xen-abi — HYPERVISOR_VIRT_START/END for 64-bit PV guests (arch-x86/xen-x86_64.h).
/// Start of the virtual range Xen reserves in every 64-bit PV address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the virtual range Xen reserves in every 64-bit PV address space.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;

/// Why a module cannot be loaded as dom0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadError {
    /// Bad bzImage framing.
    BzImage(BzImageError),
    /// The payload does not decompress.
    Decompress(DecompressError),
    /// Neither ELF, bzImage nor a known compression format.
    UnknownFormat {
        /// Whether it was the payload of a bzImage.
        bzimage: bool,
        /// Its first bytes.
        magic: [u8; 4],
    },
    /// The kernel is not a valid x86-64 ELF executable.
    Elf(ElfError),
    /// The Xen notes are missing or unacceptable.
    Notes(NoteError),
    /// The kernel declares its features but not dom0 support.
    NotDom0Capable,
    /// The kernel requires running in ring 0.
    SupervisorModeRequired,
    /// The kernel's mapping would cover Xen's reserved virtual range.
    OverlapsXenArea {
        /// `virt_base`.
        start: u64,
        /// `virt_kend`.
        end: u64,
    },
    /// The kernel's virtual range is not canonical, or straddles the canonical hole.
    NonCanonical {
        /// `virt_base`.
        start: u64,
        /// `virt_kend`.
        end: u64,
    },
    /// The hypercall page lies below the kernel's mapping.
    BadHypercallPage {
        /// The hypercall page address.
        address: u64,
        /// `virt_base`.
        virt_base: u64,
    },
    /// A PVH kernel without `XEN_ELFNOTE_PHYS32_ENTRY`.
    NoPhys32Entry,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BzImage(e) => write!(f, "{e}"),
            Self::Decompress(e) => write!(f, "{e}"),
            Self::UnknownFormat { bzimage, magic } => write!(
                f,
                "{} is neither ELF nor a supported compressed kernel (starts {:02x} {:02x} \
                 {:02x} {:02x})",
                if *bzimage {
                    "bzImage payload"
                } else {
                    "kernel module"
                },
                magic[0],
                magic[1],
                magic[2],
                magic[3]
            ),
            Self::Elf(e) => write!(f, "{e}"),
            Self::Notes(e) => write!(f, "{e}"),
            Self::NotDom0Capable => write!(f, "Kernel does not support Dom0 operation"),
            Self::SupervisorModeRequired => write!(f, "Dom0 requires supervisor-mode execution"),
            Self::OverlapsXenArea { start, end } => write!(
                f,
                "DOM0 image overlaps with Xen private area ({start:#x} -> {end:#x} vs \
                 {HYPERVISOR_VIRT_START:#x} -> {HYPERVISOR_VIRT_END:#x})"
            ),
            Self::NonCanonical { start, end } => write!(
                f,
                "dom0 kernel virtual range {start:#x} -> {end:#x} is not canonical"
            ),
            Self::NoPhys32Entry => {
                write!(f, "Unable to find XEN_ELFNOTE_PHYS32_ENTRY address")
            }
            Self::BadHypercallPage { address, virt_base } => write!(
                f,
                "Invalid HYPERCALL_PAGE field in ELF notes: {address:#x} is below VIRT_BASE \
                 {virt_base:#x}"
            ),
        }
    }
}

impl From<BzImageError> for LoadError {
    fn from(e: BzImageError) -> Self {
        Self::BzImage(e)
    }
}

impl From<DecompressError> for LoadError {
    fn from(e: DecompressError) -> Self {
        Self::Decompress(e)
    }
}

impl From<ElfError> for LoadError {
    fn from(e: ElfError) -> Self {
        Self::Elf(e)
    }
}

impl From<NoteError> for LoadError {
    fn from(e: NoteError) -> Self {
        Self::Notes(e)
    }
}

/// One loadable segment and where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadSegment {
    /// Program header index.
    pub index: usize,
    /// File offset of its bytes in the ELF.
    pub offset: u64,
    /// Bytes to copy.
    pub filesz: u64,
    /// Bytes it occupies (the rest is zeroed).
    pub memsz: u64,
    /// `p_paddr`, libelf's placement key.
    pub paddr: u64,
    /// `p_vaddr` as linked (informational: the destination is computed from `p_paddr`).
    pub vaddr: u64,
    /// Guest-virtual destination: `p_paddr + virt_base - paddr_offset`.
    pub dest: u64,
    /// `PF_R | PF_W | PF_X`.
    pub flags: u32,
}

/// A dom0 kernel ready for the domain builder.
#[derive(Clone, Debug)]
pub struct LoadedKernel<'a> {
    /// How the module was packaged.
    pub format: KernelFormat,
    /// Size of the (compressed) payload in the module.
    pub payload_len: usize,
    /// The ELF image (borrowed from the module if it was not compressed).
    pub elf: Cow<'a, [u8]>,
    /// The loadable segments in program header order.
    pub segments: Vec<LoadSegment>,
    /// The Xen guest description, checked.
    pub info: XenGuestInfo,
    /// Lowest `p_paddr` (libelf's `pstart`).
    pub paddr_start: u64,
    /// Highest `p_paddr + p_memsz` (libelf's `pend`).
    pub paddr_end: u64,
}

impl LoadedKernel<'_> {
    /// The file bytes of `seg` (`filesz` bytes; the validated ELF guarantees they exist).
    pub fn segment_data(&self, seg: &LoadSegment) -> &[u8] {
        let start = usize::try_from(seg.offset).unwrap_or(usize::MAX);
        let len = usize::try_from(seg.filesz).unwrap_or(usize::MAX);
        start
            .checked_add(len)
            .and_then(|end| self.elf.get(start..end))
            .unwrap_or_default()
    }

    /// The kernel's virtual extent `[virt_kstart, virt_kend)`.
    pub fn virt_range(&self) -> (u64, u64) {
        (self.info.virt_kstart, self.info.virt_kend)
    }

    /// The virtual entry point.
    pub fn entry(&self) -> u64 {
        self.info.entry
    }
}

use xenolith_arch::paging::is_canonical as canonical;

/// Unwraps, parses and checks a dom0 kernel module with the default decompression limit.
pub fn inspect(module: &[u8]) -> Result<LoadedKernel<'_>, LoadError> {
    inspect_with_limit(module, decompress::DEFAULT_LIMIT)
}

/// Unwraps, parses and checks a dom0 kernel module, decompressing at most `limit` bytes.
pub fn inspect_with_limit(module: &[u8], limit: usize) -> Result<LoadedKernel<'_>, LoadError> {
    inspect_as(module, limit, true)
}

/// Unwraps, parses and checks a domU kernel module: as [`inspect`], without the dom0-support
/// requirement (the toolstack's libelf checks for an unprivileged PV guest).
pub fn inspect_domu(module: &[u8]) -> Result<LoadedKernel<'_>, LoadError> {
    inspect_as(module, decompress::DEFAULT_LIMIT, false)
}

/// Checks a PVH kernel (dom0 if `dom0`): it must have `XEN_ELFNOTE_PHYS32_ENTRY`; its
/// segments go at their physical addresses (`dest` = `p_paddr`), so none of the PV virtual
/// layout rules apply.
pub fn inspect_pvh(module: &[u8], dom0: bool) -> Result<LoadedKernel<'_>, LoadError> {
    inspect_with(module, decompress::DEFAULT_LIMIT, |info| {
        if dom0 && info.has_supported_features_note && !info.supports(XENFEAT_DOM0) {
            return Err(LoadError::NotDom0Capable);
        }
        if info.phys32_entry.is_none() {
            return Err(LoadError::NoPhys32Entry);
        }
        Ok(0)
    })
}

fn inspect_as(module: &[u8], limit: usize, dom0: bool) -> Result<LoadedKernel<'_>, LoadError> {
    inspect_with(module, limit, |info| {
        check_layout(info, dom0)?;
        Ok(info.virt_offset)
    })
}

/// Unwraps and parses the kernel, applies `check` to its Xen description, and lists its
/// segments at `p_paddr` plus the offset `check` returns (PV: to the virtual address; PVH:
/// 0, the physical address itself).
fn inspect_with(
    module: &[u8],
    limit: usize,
    check: impl FnOnce(&XenGuestInfo) -> Result<u64, LoadError>,
) -> Result<LoadedKernel<'_>, LoadError> {
    let KernelImage {
        elf: bytes,
        format,
        payload_len,
    } = bzimage::unwrap_kernel_with_limit(module, limit)?;
    let (segments, info, (paddr_start, paddr_end)) = {
        let elf = Elf64::parse(&bytes)?;
        let info = xen_notes::parse(&elf)?;
        let offset = check(&info)?;
        let segments = elf
            .loadable_segments()
            .map(|ph| LoadSegment {
                index: ph.index,
                offset: ph.p_offset,
                filesz: ph.p_filesz,
                memsz: ph.p_memsz,
                paddr: ph.p_paddr,
                vaddr: ph.p_vaddr,
                dest: ph.p_paddr.wrapping_add(offset),
                flags: ph.p_flags,
            })
            .collect();
        (segments, info, elf.paddr_range())
    };
    Ok(LoadedKernel {
        format,
        payload_len,
        elf: bytes,
        segments,
        info,
        paddr_start,
        paddr_end,
    })
}

/// The checks `dom0_construct_pv` makes of a 64-bit kernel once libelf accepted it, as far
/// as they do not depend on the memory layout the builder will choose; for a domU (`dom0`
/// false) all but the dom0-support one.
fn check_layout(info: &XenGuestInfo, dom0: bool) -> Result<(), LoadError> {
    if dom0 && info.has_supported_features_note && !info.supports(XENFEAT_DOM0) {
        return Err(LoadError::NotDom0Capable);
    }
    let (start, end) = (info.virt_base, info.virt_kend);
    // Xen compares its range with [v_start, v_end), and v_end lies beyond virt_kend, so this
    // only rejects what Xen would reject later.
    if start < HYPERVISOR_VIRT_END && end > HYPERVISOR_VIRT_START {
        return Err(LoadError::OverlapsXenArea { start, end });
    }
    // Not a Xen check, but such a kernel could never be mapped: fail now, clearly.
    let last = end.saturating_sub(1).max(start);
    if !canonical(start) || !canonical(last) || (start >> 63) != (last >> 63) {
        return Err(LoadError::NonCanonical { start, end });
    }
    // Xen also rejects a page at or beyond v_end, which only the builder knows.
    if let Some(address) = info.hypercall_page
        && address < info.virt_base
    {
        return Err(LoadError::BadHypercallPage {
            address,
            virt_base: info.virt_base,
        });
    }
    if info.requires(XENFEAT_SUPERVISOR_MODE_KERNEL) {
        return Err(LoadError::SupervisorModeRequired);
    }
    Ok(())
}

/// `R`/`W`/`X` or `-` for a segment's flags.
fn flag_str(flags: u32) -> [char; 3] {
    let bit = |f, c| if flags & f != 0 { c } else { '-' };
    [bit(PF_R, 'R'), bit(PF_W, 'W'), bit(PF_X, 'X')]
}

/// The boot log lines Xen prints while building dom0 from this kernel (without the
/// `(XEN) ` prefix), plus the image format and the segment placement.
impl fmt::Display for LoadedKernel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let info = &self.info;
        writeln!(
            f,
            "Dom0 kernel image: {} ({} bytes) -> {}-byte ELF",
            self.format,
            self.payload_len,
            self.elf.len()
        )?;
        for s in &self.segments {
            writeln!(f, "ELF: phdr: paddr={:#x} memsz={:#x}", s.paddr, s.memsz)?;
        }
        writeln!(
            f,
            "ELF: memory: {:#x} -> {:#x}",
            self.paddr_start, self.paddr_end
        )?;
        if info.source == xen_notes::NoteSource::LegacyGuestInfo {
            writeln!(f, "ELF: using the legacy __xen_guest section")?;
        }
        for note in &info.notes {
            writeln!(f, "{note}")?;
        }
        for w in &info.warnings {
            writeln!(f, "{w}")?;
        }
        writeln!(f, "ELF: addresses:")?;
        writeln!(f, "    virt_base        = {:#x}", info.virt_base)?;
        writeln!(f, "    elf_paddr_offset = {:#x}", info.paddr_offset)?;
        writeln!(f, "    virt_offset      = {:#x}", info.virt_offset)?;
        writeln!(f, "    virt_kstart      = {:#x}", info.virt_kstart)?;
        writeln!(f, "    virt_kend        = {:#x}", info.virt_kend)?;
        writeln!(f, "    virt_entry       = {:#x}", info.entry)?;
        // Xen prints UNSET_ADDR as is.
        writeln!(
            f,
            "    p2m_base         = {:#x}",
            info.init_p2m.unwrap_or(u64::MAX)
        )?;
        writeln!(f, " Xen  kernel: 64-bit, lsb")?;
        writeln!(
            f,
            " Dom0 kernel: 64-bit{}, lsb, paddr {:#x} -> {:#x}",
            if info.pae_mode != xen_notes::PaeMode::No {
                ", PAE"
            } else {
                ""
            },
            self.paddr_start,
            self.paddr_end
        )?;
        if let Some((start, end)) = info.bsd_symtab_range {
            writeln!(f, " Dom0 symbol map {start:#x} -> {end:#x}")?;
        }
        writeln!(
            f,
            " Features: supported {:#010x}, required {:#010x}{}{}",
            info.features_supported[0],
            info.features_required[0],
            if info.mod_start_pfn {
                ", initrd by PFN"
            } else {
                ""
            },
            match info.hypercall_page {
                Some(_) => ", hypercall page",
                None => "",
            }
        )?;
        for s in &self.segments {
            let [r, w, x] = flag_str(s.flags);
            writeln!(
                f,
                " Segment {}: {r}{w}{x} file {:#x}+{:#x} -> virt {:#x} -> {:#x}",
                s.index,
                s.offset,
                s.filesz,
                s.dest,
                s.dest.wrapping_add(s.memsz)
            )?;
        }
        write!(f, " ENTRY ADDRESS: {:#x}", info.entry)
    }
}
