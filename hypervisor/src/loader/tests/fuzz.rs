//! Deterministic mutation fuzzing: damaged images must produce errors, never panics.

use super::builder::*;
use crate::loader::inspect_with_limit;

/// A small kernel: the decoders run unoptimised in tests, and 10,000 runs must stay quick.
fn small_kernel() -> ElfBuilder {
    let mut b = ElfBuilder::linux();
    b.segments[0].data.truncate(0x300);
    b.segments[1].data.truncate(0x200);
    b
}

/// Mutates `img` in one of several ways, mostly inside the payload (where the decoders are).
fn mutate(rng: &mut XorShift, img: &mut Vec<u8>, payload_start: usize) {
    let in_payload = |rng: &mut XorShift, len: usize| {
        if rng.below(4) == 0 || len <= payload_start {
            rng.below(len)
        } else {
            payload_start + rng.below(len - payload_start)
        }
    };
    for _ in 0..1 + rng.below(4) {
        if img.is_empty() {
            return;
        }
        let at = in_payload(rng, img.len());
        match rng.below(6) {
            0 => img[at] ^= 1 << rng.below(8),
            1 => img[at] = rng.next() as u8,
            2 => img[at] = [0, 0xff, 0x7f, 0x80][rng.below(4)],
            3 => img.truncate(at),
            4 => {
                // Overwrite a 32-bit field (lengths, offsets, sizes) with an extreme value.
                let v = [0u32, 1, 0x7fff_ffff, 0xffff_ffff, 0x0100_0000][rng.below(5)];
                for (i, b) in v.to_le_bytes().iter().enumerate() {
                    if let Some(x) = img.get_mut(at + i) {
                        *x = *b;
                    }
                }
            }
            _ => {
                let len = rng.below(64).min(img.len() - at);
                let copy: Vec<u8> = img[at..at + len].to_vec();
                let to = rng.below(img.len());
                for (i, b) in copy.iter().enumerate() {
                    if let Some(x) = img.get_mut(to + i) {
                        *x = *b;
                    }
                }
            }
        }
    }
}

fn fuzz(name: &str, img: &[u8], seed: u64, iterations: usize) {
    let payload_start = 4 * 512 + 0x1234;
    let mut rng = XorShift(seed);
    let mut accepted = 0;
    for _ in 0..iterations {
        let mut m = img.to_vec();
        mutate(&mut rng, &mut m, payload_start);
        // A small limit keeps hostile size fields cheap; the real kernel is far below it.
        if inspect_with_limit(&m, 16 << 20).is_ok() {
            accepted += 1;
        }
    }
    // Sanity: the fuzzer must not be so gentle that everything passes.
    assert!(accepted < iterations, "{name}: every mutation accepted");
}

#[test]
fn fuzz_bzimage_xz() {
    let elf = small_kernel().build();
    let img = bzimage(&xz(&elf), Some(elf.len() as u32), 0x020f);
    fuzz("xz", &img, 0x9e37_79b9_7f4a_7c15, 2000);
}

#[test]
fn fuzz_bzimage_gzip() {
    let elf = small_kernel().build();
    fuzz(
        "gzip",
        &bzimage(&gzip(&elf), None, 0x020f),
        0x1234_5678_9abc_def1,
        2000,
    );
}

#[test]
fn fuzz_bzimage_lz4() {
    let elf = small_kernel().build();
    let img = bzimage(&lz4_legacy(&elf), Some(elf.len() as u32), 0x020f);
    fuzz("lz4", &img, 0xdead_beef_cafe_f00d, 2000);
}

#[test]
fn fuzz_bzimage_zstd() {
    let elf = small_kernel().build();
    let img = bzimage(&zstd(&elf), Some(elf.len() as u32), 0x020f);
    fuzz("zstd", &img, 0x0bad_cafe_1234_5678, 2000);
}

#[test]
fn fuzz_plain_elf() {
    // Uncompressed: mutations land in headers, phdrs and notes directly.
    let img = bzimage(&small_kernel().build(), None, 0x020f);
    fuzz("elf", &img, 0x5555_aaaa_1234_4321, 2000);
    let mut legacy = small_kernel();
    legacy.notes.clear();
    legacy.placement = NotePlacement::SectionOnly;
    legacy.xen_guest = Some(
        b"GUEST_OS=linux,XEN_VER=xen-3.0,VIRT_BASE=0xffffffff80000000,ELF_PADDR_OFFSET=0".to_vec(),
    );
    fuzz(
        "legacy",
        &bzimage(&legacy.build(), None, 0x020f),
        0x7777_1111_2222_3333,
        2000,
    );
}
