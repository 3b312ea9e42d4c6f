//! The boot information: `struct hvm_start_info` at the physical address the hypervisor put in
//! `ebx`, its command line and its memory map (all identity-mapped).

use xen_abi::hvm_start_info::{HvmMemmapTableEntry, HvmStartInfo};

/// What the guest got at boot.
pub struct Boot {
    /// Physical (= virtual) address of `hvm_start_info`.
    pub paddr: u64,
}

/// Longest command line read.
const CMDLINE_MAX: usize = 1024;

impl Boot {
    /// The start info.
    pub fn info(&self) -> &'static HvmStartInfo {
        // SAFETY: the hypervisor passes a valid hvm_start_info in guest RAM, identity-mapped,
        // which this guest never writes.
        unsafe { &*(self.paddr as *const HvmStartInfo) }
    }

    /// The command line's bytes before its NUL (empty without one).
    pub fn cmdline(&self) -> &'static [u8] {
        let pa = self.info().cmdline_paddr;
        if pa == 0 {
            return &[];
        }
        // SAFETY: a NUL-terminated string in guest RAM, identity-mapped; reading stops at the
        // NUL or CMDLINE_MAX bytes.
        let bytes = unsafe { core::slice::from_raw_parts(pa as *const u8, CMDLINE_MAX) };
        let n = bytes.iter().position(|&b| b == 0).unwrap_or(CMDLINE_MAX);
        &bytes[..n]
    }

    /// The memory map (empty if there is none).
    pub fn memmap(&self) -> &'static [HvmMemmapTableEntry] {
        let si = self.info();
        if si.version < 1 || si.memmap_paddr == 0 {
            return &[];
        }
        // SAFETY: the hypervisor's table of `memmap_entries` entries in guest RAM.
        unsafe {
            core::slice::from_raw_parts(
                si.memmap_paddr as *const HvmMemmapTableEntry,
                si.memmap_entries as usize,
            )
        }
    }
}
