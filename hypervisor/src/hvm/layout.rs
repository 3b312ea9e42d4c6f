//! Where a PVH domain's boot data goes in its guest-physical memory (pure, host-tested).
//!
//! RAM is guest-physical `[0, ram)`. The kernel's segments go at their ELF physical addresses
//! (Xen's PVH builders load by `p_paddr`). After the image's end, page-aligned: one page with
//! `hvm_start_info`, the module list and the memory map, then the command lines, then each
//! module (initrd). The special pages (xenstore and console rings) sit in a reserved window
//! below 4 GiB, as libxl places them (`X86_HVM_END_SPECIAL_REGION` 0xff000, 8 pages), outside
//! RAM so the guest does not hand them out.

use alloc::vec::Vec;

/// Page size.
pub const PAGE: u64 = 4096;
/// First pfn of the special-page window (libxl: `X86_HVM_END_SPECIAL_REGION - 8`).
pub const SPECIAL_PFN_BASE: u64 = 0xff000 - 8;
/// Special pages, libxl's order.
pub const SPECIAL_PAGES: u64 = 8;
/// pfn of the xenstore ring (libxl `SPECIALPAGE_XENSTORE`).
pub const STORE_PFN: u64 = SPECIAL_PFN_BASE + 5;
/// pfn of the console ring (libxl `SPECIALPAGE_CONSOLE`).
pub const CONSOLE_PFN: u64 = SPECIAL_PFN_BASE + 4;
/// Lowest start of the MMIO hole RAM must stay below (libxl's default `mmio_hole` of
/// 256 MiB under 4 GiB; larger guests would continue above 4 GiB, not supported here).
pub const RAM_LIMIT: u64 = 0xf000_0000;

/// One memory-map entry (`hvm_memmap_table_entry` / e820).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start.
    pub addr: u64,
    /// Length.
    pub size: u64,
    /// `XEN_HVM_MEMMAP_TYPE_*` (1 RAM, 2 reserved).
    pub kind: u32,
}

/// The placement of a PVH domain's boot data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PvhLayout {
    /// RAM size in bytes (`[0, ram)`).
    pub ram: u64,
    /// Guest-physical address of `hvm_start_info` (then the module list, then the memmap).
    pub start_info: u64,
    /// The module list (one entry per module).
    pub modlist: u64,
    /// The memory map table.
    pub memmap: u64,
    /// The kernel's command line (NUL-terminated).
    pub cmdline: u64,
    /// The page with the ACPI tables (RSDP first), marked ACPI in the memory map.
    pub acpi: u64,
    /// Where each module's bytes go.
    pub modules: Vec<u64>,
    /// The memory map.
    pub e820: Vec<E820Entry>,
}

/// Why a layout does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The image or the boot data do not fit in RAM.
    TooSmall,
    /// RAM would reach into the MMIO hole below 4 GiB.
    TooLarge,
}

fn align_up(x: u64) -> u64 {
    x.div_ceil(PAGE) * PAGE
}

impl PvhLayout {
    /// Places boot data for `ram` bytes of RAM, a kernel image ending at physical `image_end`,
    /// a command line of `cmdline_len` bytes (without NUL), modules of `module_lens`, and
    /// the page of ACPI tables.
    pub fn compute(
        ram: u64,
        image_end: u64,
        cmdline_len: u64,
        module_lens: &[u64],
    ) -> Result<PvhLayout, LayoutError> {
        if ram > RAM_LIMIT {
            return Err(LayoutError::TooLarge);
        }
        let start_info = align_up(image_end);
        // hvm_start_info (56 bytes), modlist entries (32 bytes), memmap entries (24 bytes).
        let modlist = start_info + 64;
        let memmap = modlist + 32 * module_lens.len() as u64;
        // RAM split around the ACPI page, then the special pages.
        let cmdline = memmap + 24 * 4;
        let acpi = align_up(cmdline + cmdline_len + 1);
        if acpi > start_info + PAGE * 4 {
            // Keep the table page and command line within a few pages (1 KiB lines at most
            // reach the second page).
            return Err(LayoutError::TooSmall);
        }
        let mut next = acpi + PAGE;
        let e820 = alloc::vec![
            E820Entry {
                addr: 0,
                size: acpi,
                kind: 1,
            },
            E820Entry {
                addr: acpi,
                size: PAGE,
                kind: 3,
            },
            E820Entry {
                addr: acpi + PAGE,
                size: ram.saturating_sub(acpi + PAGE),
                kind: 1,
            },
            E820Entry {
                addr: SPECIAL_PFN_BASE * PAGE,
                size: SPECIAL_PAGES * PAGE,
                kind: 2,
            },
        ];
        let mut modules = Vec::new();
        for &len in module_lens {
            modules.push(next);
            next = align_up(next + len);
        }
        if next > ram {
            return Err(LayoutError::TooSmall);
        }
        Ok(PvhLayout {
            ram,
            start_info,
            modlist,
            memmap,
            cmdline,
            acpi,
            modules,
            e820,
        })
    }

    /// `hvm_start_info` as bytes. Version 1 carries the memory map (libxl's domUs);
    /// version 0 does not (Xen 4.17's PVH dom0, which asks `XENMEM_memory_map`). The RSDP is
    /// the ACPI page's, if any.
    pub fn start_info_bytes(&self, nr_modules: u32, version: u32) -> [u8; 56] {
        let mut b = [0u8; 56];
        b[0..4].copy_from_slice(&0x336e_c578u32.to_le_bytes());
        b[4..8].copy_from_slice(&version.to_le_bytes());
        // flags 0; the caller adds SIF_PRIVILEGED | SIF_INITDOMAIN for dom0, as Xen does.
        b[12..16].copy_from_slice(&nr_modules.to_le_bytes());
        if nr_modules != 0 {
            b[16..24].copy_from_slice(&self.modlist.to_le_bytes());
        }
        b[24..32].copy_from_slice(&self.cmdline.to_le_bytes());
        b[32..40].copy_from_slice(&self.acpi.to_le_bytes());
        if version >= 1 {
            b[40..48].copy_from_slice(&self.memmap.to_le_bytes());
            b[48..52].copy_from_slice(&(self.e820.len() as u32).to_le_bytes());
        }
        b
    }

    /// The memory map table as bytes.
    pub fn memmap_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for e in &self.e820 {
            v.extend_from_slice(&e.addr.to_le_bytes());
            v.extend_from_slice(&e.size.to_le_bytes());
            v.extend_from_slice(&e.kind.to_le_bytes());
            v.extend_from_slice(&0u32.to_le_bytes());
        }
        v
    }

    /// The module list as bytes, given each module's length (no per-module command lines).
    pub fn modlist_bytes(&self, lens: &[u64]) -> Vec<u8> {
        let mut v = Vec::new();
        for (at, len) in self.modules.iter().zip(lens) {
            v.extend_from_slice(&at.to_le_bytes());
            v.extend_from_slice(&len.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
            v.extend_from_slice(&0u64.to_le_bytes());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_data_follows_the_image() {
        let l = PvhLayout::compute(128 << 20, 0x12_3456, 20, &[5000]).unwrap();
        assert_eq!(l.start_info, 0x12_4000);
        assert_eq!(l.modlist, 0x12_4040);
        assert_eq!(l.memmap, 0x12_4060);
        assert_eq!(l.cmdline, 0x12_4060 + 96);
        assert_eq!(l.acpi, 0x12_5000);
        assert_eq!(l.modules, [0x12_6000]);
        assert_eq!(l.e820[0].size, 0x12_5000);
        assert_eq!(l.e820[3].addr, 0xfeff_8000);
        let si = l.start_info_bytes(1, 1);
        assert_eq!(&si[0..4], &0x336e_c578u32.to_le_bytes());
        assert_eq!(
            u64::from_le_bytes(si[24..32].try_into().unwrap()),
            l.cmdline
        );
        assert_eq!(l.memmap_bytes().len(), 96);
        assert_eq!(l.modlist_bytes(&[5000]).len(), 32);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        assert_eq!(
            PvhLayout::compute(1 << 20, 0xf_f000, 0, &[8192]),
            Err(LayoutError::TooSmall)
        );
        assert_eq!(
            PvhLayout::compute(RAM_LIMIT + PAGE, 0x10_0000, 0, &[]),
            Err(LayoutError::TooLarge)
        );
        assert_eq!(
            PvhLayout::compute(64 << 20, 0x10_0000, 20_000, &[]),
            Err(LayoutError::TooSmall)
        );
    }

    #[test]
    fn special_pages_are_outside_ram_and_reserved() {
        let l = PvhLayout::compute(RAM_LIMIT, 0x20_0000, 10, &[]).unwrap();
        assert!(CONSOLE_PFN.min(STORE_PFN) * PAGE >= l.ram);
        let r = l.e820[3];
        assert!(r.kind == 2 && (r.addr..r.addr + r.size).contains(&(STORE_PFN * PAGE)));
    }

    #[test]
    fn the_acpi_page_is_carved_out_of_ram() {
        let l = PvhLayout::compute(64 << 20, 0x20_0000, 10, &[]).unwrap();
        let at = l.acpi;
        let kinds: Vec<(u64, u64, u32)> = l.e820.iter().map(|e| (e.addr, e.size, e.kind)).collect();
        assert_eq!(kinds[0], (0, at, 1));
        assert_eq!(kinds[1], (at, PAGE, 3));
        assert_eq!(kinds[2], (at + PAGE, (64 << 20) - at - PAGE, 1));
        let si = l.start_info_bytes(0, 0);
        assert_eq!(u32::from_le_bytes(si[4..8].try_into().unwrap()), 0);
        assert_eq!(u64::from_le_bytes(si[32..40].try_into().unwrap()), at);
        assert_eq!(u64::from_le_bytes(si[40..48].try_into().unwrap()), 0);
        let si = l.start_info_bytes(0, 1);
        assert_eq!(u64::from_le_bytes(si[40..48].try_into().unwrap()), l.memmap);
    }
}
