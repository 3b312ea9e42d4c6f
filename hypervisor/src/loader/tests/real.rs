//! Opt-in check against real distribution kernels.
//!
//! `XENOLITH_DOM0_KERNELS=/boot/vmlinuz-a:/boot/vmlinuz-b cargo test -p xenolith --lib
//! --release loader::tests::real -- --ignored --nocapture` prints what `inspect` makes of each.

use std::time::Instant;

use crate::loader::inspect;

#[test]
#[ignore = "needs real kernels: set XENOLITH_DOM0_KERNELS to a ':'-separated list of paths"]
fn inspect_real_kernels() {
    let paths = std::env::var("XENOLITH_DOM0_KERNELS").expect("XENOLITH_DOM0_KERNELS unset");
    for path in paths.split(':').filter(|p| !p.is_empty()) {
        let module = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let t = Instant::now();
        let k = inspect(&module).unwrap_or_else(|e| panic!("{path}: {e}"));
        let elapsed = t.elapsed();
        let crc = crate::loader::decompress::crc32(&k.elf);
        std::println!(
            "==== {path} ({} bytes): inspect took {elapsed:?}, ELF crc32 {crc:#010x}\n{k}\n",
            module.len()
        );
        assert_eq!(k.info.guest_os, "linux");
        assert!(k.info.supports(crate::loader::xen_notes::XENFEAT_DOM0));
    }
}
