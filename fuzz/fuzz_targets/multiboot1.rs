//! Multiboot1 information: the input is physical memory from address 0, with the info
//! structure at 0 (so pointers in it are offsets into the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith_boot::{SliceMemory, mb1};

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory {
        base: 0,
        bytes: data,
    };
    if let Ok(bi) = mb1::parse(0, &mem) {
        let _ = format!("{bi:?}");
    }
    // The same memory seen at a high base, so pointer arithmetic near 4 GiB is exercised.
    let high = SliceMemory {
        base: 0xffff_f000,
        bytes: data,
    };
    let _ = mb1::parse(0xffff_f000, &high);
});
