//! Multiboot2 information (tag chain): the input is physical memory from address 0, with
//! the info structure at 0 (so pointers in it are offsets into the input).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith_boot::{SliceMemory, mb2};

fuzz_target!(|data: &[u8]| {
    let mem = SliceMemory {
        base: 0,
        bytes: data,
    };
    if let Ok(bi) = mb2::parse(0, &mem) {
        let _ = format!("{bi:?}");
    }
    let high = SliceMemory {
        base: 0xffff_f000,
        bytes: data,
    };
    let _ = mb2::parse(0xffff_f000, &high);
});
