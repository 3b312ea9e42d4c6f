//! ELF64 headers, program headers and Xen notes: the whole loader front-end
//! (`inspect_with_limit`) and the ELF parser plus the Xen-note parser on their own.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::loader::{elf::Elf64, inspect_with_limit, xen_notes};

/// Output cap for any decompression the front-end does (as the host tests use).
const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if let Ok(elf) = Elf64::parse(data) {
        let _ = xen_notes::parse(&elf);
    }
    if let Ok(k) = inspect_with_limit(data, LIMIT) {
        let (lo, hi) = k.virt_range();
        assert!(lo <= hi, "virt_range {lo:#x}..{hi:#x} inverted");
        let _ = k.entry();
    }
});
