//! Fuzz-style tests of the loader front-ends on random input (bounded, deterministic, run on
//! the stable toolchain by `cargo test`): whole random images, random ELF headers with random
//! program headers and Xen notes, random bzImage setup headers, and every decompressor fed
//! random streams behind a valid magic. Each must return (an error or a kernel), never panic,
//! and never produce more than the limit. The mutation fuzzing of valid images lives in
//! `tests/fuzz.rs`; `fuzz/` (cargo-fuzz) has libFuzzer targets for the same entry points.

use super::bzimage::{parse_header, unwrap_kernel_with_limit};
use super::decompress::{Compression, decompress, detect};
use super::inspect_with_limit;
use crate::fuzz_rng::{Rng, iters};

const LIMIT: usize = 1 << 20;

fn put(img: &mut [u8], at: usize, v: &[u8]) {
    for (i, b) in v.iter().enumerate() {
        if let Some(x) = img.get_mut(at + i) {
            *x = *b;
        }
    }
}

/// A random ELF64 image: a plausible header, random program headers (PT_LOAD / PT_NOTE with
/// edge values) and random Xen notes.
fn random_elf(r: &mut Rng) -> Vec<u8> {
    let size = 64 + r.below(4096);
    let mut img = r.bytes(size);
    put(&mut img, 0, b"\x7fELF\x02\x01\x01\0");
    put(&mut img, 16, &2u16.to_le_bytes()); // ET_EXEC
    put(&mut img, 18, &62u16.to_le_bytes()); // x86-64
    let phoff = if r.below(4) == 0 { r.edgy() } else { 64 };
    put(&mut img, 32, &phoff.to_le_bytes());
    put(&mut img, 54, &56u16.to_le_bytes());
    let phnum = r.below(8) as u16;
    put(&mut img, 56, &phnum.to_le_bytes());
    for i in 0..phnum as usize {
        let at = 64 + i * 56;
        let ty: u32 = [1, 4, 0x6474_e551, r.next() as u32][r.below(4)];
        put(&mut img, at, &ty.to_le_bytes());
        for f in 1..7 {
            let v = if r.below(2) == 0 {
                r.edgy()
            } else {
                r.below(size) as u64
            };
            put(&mut img, at + 8 * f, &v.to_le_bytes());
        }
    }
    // Xen notes at random offsets: namesz 4 "Xen", random type and descriptor.
    for _ in 0..r.below(6) {
        let at = r.below(size);
        let descsz = [0u32, 1, 4, 8, 0xffff_ffff, r.next() as u32][r.below(6)];
        put(&mut img, at, &4u32.to_le_bytes());
        put(&mut img, at + 4, &descsz.to_le_bytes());
        put(&mut img, at + 8, &(r.below(24) as u32).to_le_bytes());
        put(&mut img, at + 12, b"Xen\0");
    }
    img
}

/// A random bzImage: boot sector magic, `HdrS`, random setup_sects, payload offset/length
/// (often out of range or wrapping) and a payload starting with a compressor's magic.
fn random_bzimage(r: &mut Rng) -> Vec<u8> {
    let size = 0x300 + r.below(8192);
    let mut img = r.bytes(size);
    put(&mut img, 0x1f1, &[r.below(64) as u8]);
    put(&mut img, 0x1fe, &0xaa55u16.to_le_bytes());
    put(&mut img, 0x202, b"HdrS");
    put(&mut img, 0x206, &[[0x0b, 0x02], [0x0d, 0x02]][r.below(2)]);
    put(&mut img, 0x248, &(r.edgy() as u32).to_le_bytes());
    put(&mut img, 0x24c, &(r.edgy() as u32).to_le_bytes());
    let magic: &[u8] = [
        &b"\x1f\x8b\x08"[..],
        b"\xfd7zXZ\0",
        b"\x02\x21\x4c\x18",
        b"\x28\xb5\x2f\xfd",
        b"\x7fELF",
    ][r.below(5)];
    let at = (0x200 * (1 + r.below(8))).min(size);
    put(&mut img, at, magic);
    img
}

#[test]
fn random_bytes_through_inspect() {
    let mut r = Rng(0xf022_0001);
    for _ in 0..iters() {
        let n = r.below(2048);
        let img = r.bytes(n);
        let _ = inspect_with_limit(&img, LIMIT);
    }
}

#[test]
fn random_elf_images_through_inspect() {
    let mut r = Rng(0xf022_0002);
    let mut accepted = 0;
    for _ in 0..iters() {
        let img = random_elf(&mut r);
        if let Ok(k) = inspect_with_limit(&img, LIMIT) {
            accepted += 1;
            let (lo, hi) = k.virt_range();
            assert!(lo <= hi);
            let _ = k.entry();
        }
    }
    eprintln!("random ELF images accepted: {accepted}");
}

#[test]
fn random_bzimages_through_unwrap() {
    let mut r = Rng(0xf022_0003);
    for _ in 0..iters() {
        let img = random_bzimage(&mut r);
        let _ = parse_header(&img);
        if let Ok(k) = unwrap_kernel_with_limit(&img, LIMIT) {
            let _ = k;
        }
        let _ = inspect_with_limit(&img, LIMIT);
    }
}

#[test]
fn random_streams_through_every_decompressor() {
    let mut r = Rng(0xf022_0004);
    let formats = [
        (Compression::Gzip, &b"\x1f\x8b\x08"[..]),
        (Compression::Xz, b"\xfd7zXZ\0"),
        (Compression::Lz4, b"\x02\x21\x4c\x18"),
        (Compression::Zstd, b"\x28\xb5\x2f\xfd"),
        (Compression::None, b""),
    ];
    for i in 0..iters() {
        let (format, magic) = formats[i % formats.len()];
        let mut data = magic.to_vec();
        let n = r.below(512);
        data.extend(r.bytes(n));
        let _ = detect(&data);
        let hint = [None, Some(0), Some(r.below(1 << 16)), Some(usize::MAX)][r.below(4)];
        let limit = [0, 1, 4096, LIMIT][r.below(4)];
        if let Ok(out) = decompress(format, &data, hint, limit) {
            assert!(
                out.len() <= limit.max(data.len()),
                "{format}: output beyond the limit"
            );
        }
    }
}
