//! The x86 instruction decoder used for emulation: `decode`, `decode_write`, `forced_cpuid`.
//! Lengths must fit the bytes given and the architectural 15-byte limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::pv::decode::{decode, decode_write, forced_cpuid};

fuzz_target!(|data: &[u8]| {
    if let Some(d) = decode(data) {
        let _ = format!("{d:?}");
    }
    if let Some(w) = decode_write(data) {
        let _ = format!("{w:?}");
    }
    if let Some(len) = forced_cpuid(data) {
        assert!(
            len <= data.len() && len <= 15,
            "forced_cpuid length {len} of {data:02x?}"
        );
    }
});
