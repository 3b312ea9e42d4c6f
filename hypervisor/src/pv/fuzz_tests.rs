//! Fuzz-style tests of the x86 instruction decoder used for emulation (bounded, deterministic,
//! run by `cargo test`): random byte strings, and random strings behind the prefixes and
//! opcodes the emulator handles, through `decode`, `decode_write` and `forced_cpuid`. None
//! may panic, and a decoded length must fit in the bytes given (at most 15).

use super::decode::{decode, decode_write, forced_cpuid};
use crate::fuzz_rng::{Rng, iters};

/// Prefixes and opcode bytes the decoders look at.
const INTERESTING: &[u8] = &[
    0x0f, 0x01, 0x20, 0x22, 0x30, 0x32, 0x31, 0xa2, 0x06, 0x09, 0x0b, 0x66, 0x67, 0xf2, 0xf3, 0xf0,
    0x2e, 0x3e, 0x26, 0x36, 0x64, 0x65, 0x40, 0x48, 0x4f, 0x41, 0xe4, 0xe5, 0xe6, 0xe7, 0xec, 0xed,
    0xee, 0xef, 0x6c, 0x6d, 0x6e, 0x6f, 0xfa, 0xfb, 0xf4, 0xcf, 0x88, 0x89, 0x8a, 0x8b, 0xc6, 0xc7,
    0x86, 0x87, 0xb0, 0xb1, 0x0f, 0xc7, 0x8e, 0x8c, 0xc4, 0xc5, 0x62, 0x90, 0x04, 0x05, 0x25, 0x44,
    0x84, 0xff,
];

fn random_insn(r: &mut Rng, biased: bool) -> Vec<u8> {
    let n = r.below(20);
    (0..n)
        .map(|_| {
            if biased && r.below(3) != 0 {
                INTERESTING[r.below(INTERESTING.len())]
            } else {
                r.next() as u8
            }
        })
        .collect()
}

#[test]
fn random_bytes_through_the_decoders() {
    let mut r = Rng(0xdec0_0001);
    let (mut reads, mut writes) = (0, 0);
    for i in 0..iters() {
        let b = random_insn(&mut r, i % 2 == 0);
        if let Some(d) = decode(&b) {
            reads += 1;
            let _ = format!("{d:?}");
        }
        if let Some(w) = decode_write(&b) {
            writes += 1;
            let _ = format!("{w:?}");
        }
        if let Some(len) = forced_cpuid(&b) {
            assert!(
                len <= b.len() && len <= 15,
                "forced_cpuid length {len} of {b:02x?}"
            );
        }
    }
    eprintln!("decoded: {reads} instructions, {writes} writes");
}
