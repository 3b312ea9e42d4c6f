//! bzImage setup headers and payload extraction (`parse_header`, `unwrap_kernel_with_limit`),
//! then the whole front-end on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::loader::bzimage::{parse_header, unwrap_kernel_with_limit};
use xenolith::loader::inspect_with_limit;

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let _ = parse_header(data);
    let _ = unwrap_kernel_with_limit(data, LIMIT);
    let _ = inspect_with_limit(data, LIMIT);
});
