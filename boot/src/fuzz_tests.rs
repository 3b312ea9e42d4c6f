//! Fuzz-style tests of the multiboot1/2 info parsers on random input (bounded, deterministic,
//! run by `cargo test`): random info structures with plausible flags/tags and random pointers,
//! lengths and counts (the mutation fuzzing of valid fixtures is in `mb1.rs`/`mb2.rs`). Every
//! parse must return, never panic; accepted results must satisfy the same invariants.

use crate::info::test_support::{Image, check_invariants};

fn iters() -> usize {
    std::env::var("FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    /// A 32-bit field biased towards pointers into the image and edge values.
    fn field(&mut self, base: u64, len: u64) -> u32 {
        match self.below(5) {
            0 => 0,
            1 => u32::MAX - self.below(16) as u32,
            2 | 3 => (base + self.below(len + 64)) as u32,
            _ => self.next() as u32,
        }
    }
}

const BASE: u64 = 0x10000;

fn random_image(r: &mut Rng) -> (Image, u64) {
    let mut img = Image::new(BASE);
    let len = 64 + r.below(4096);
    let bytes: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
    img.alloc(&bytes, 8);
    // A few strings the pointers may land on.
    img.alloc_str("xenolith console=com1 dom0_mem=256M");
    let total = img.bytes.len() as u64;
    let info = BASE + (r.below(total) & !7);
    (img, info)
}

#[test]
fn random_multiboot1_info() {
    let mut r = Rng(0x3b01_0001);
    let mut accepted = 0;
    for _ in 0..iters() {
        let (mut img, info) = random_image(&mut r);
        let total = img.bytes.len() as u64;
        if info + 0x58 <= BASE + total {
            // flags with the common bits, then the pointer/length fields.
            let flags = [0x1u32 | 0x4 | 0x8 | 0x40, 0x24f, r.next() as u32][r.below(3) as usize];
            img.put_u32(info, flags);
            for off in (4..0x58).step_by(4) {
                let v = r.field(BASE, total);
                img.put_u32(info + off, v);
            }
        }
        if let Ok(bi) = crate::mb1::parse(info, &img.mem()) {
            accepted += 1;
            check_invariants(&bi);
        }
    }
    eprintln!("mb1 accepted: {accepted}");
}

#[test]
fn random_multiboot2_info() {
    let mut r = Rng(0x3b02_0001);
    let mut accepted = 0;
    for _ in 0..iters() {
        let (mut img, info) = random_image(&mut r);
        let total = img.bytes.len() as u64;
        let end = BASE + total;
        if info + 16 <= end {
            let size = [(end - info) as u32, 8, 0, u32::MAX, r.next() as u32][r.below(5) as usize];
            img.put_u32(info, size);
            img.put_u32(info + 4, 0);
            // A chain of tags of known types with random sizes.
            let mut at = info + 8;
            while at + 8 <= end && r.below(8) != 0 {
                let ty =
                    [1u32, 2, 3, 4, 6, 8, 14, 15, 21, 0, r.next() as u32][r.below(11) as usize];
                let sz = [8u32, 16, 24, 0, 7, u32::MAX, r.below(256) as u32][r.below(7) as usize];
                img.put_u32(at, ty);
                img.put_u32(at + 4, sz);
                at += u64::from(sz.clamp(8, 512) + 7) & !7;
            }
        }
        if let Ok(bi) = crate::mb2::parse(info, &img.mem()) {
            accepted += 1;
            check_invariants(&bi);
        }
    }
    eprintln!("mb2 accepted: {accepted}");
}
