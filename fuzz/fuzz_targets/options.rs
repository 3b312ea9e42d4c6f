//! The command-line option parser: `cook_cmdline` (loader-name stripping) then `parse`, on
//! the input made UTF-8 lossily (the boot path also hands the parser a `&str`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::options::{cook_cmdline, parse};

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = parse(&s);
    for loader in [None, Some("GRUB 2.06"), Some("xenolith")] {
        let cooked = cook_cmdline(&s, loader);
        let _ = parse(cooked);
    }
});
