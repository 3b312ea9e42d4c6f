//! The console ring: every byte the hypervisor prints, kept for `xl dmesg` (Xen's `conring`).

use alloc::vec;
use alloc::vec::Vec;

/// A power-of-two byte ring that keeps the most recent output.
pub struct ConRing {
    buf: Vec<u8>,
    /// Total bytes ever written; the write position is `prod % len`.
    prod: u64,
}

impl ConRing {
    /// A ring of at least `size` bytes (rounded up to a power of two, minimum 16 KiB as Xen).
    pub fn new(size: usize) -> Self {
        let size = size.max(16 * 1024).next_power_of_two();
        Self {
            buf: vec![0; size],
            prod: 0,
        }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Appends bytes, overwriting the oldest when full.
    pub fn write(&mut self, bytes: &[u8]) {
        let mask = self.buf.len() - 1;
        for &b in bytes {
            self.buf[(self.prod as usize) & mask] = b;
            self.prod += 1;
        }
    }

    /// Total bytes ever written (Xen's `conringp`).
    pub fn produced(&self) -> u64 {
        self.prod
    }

    /// The retained bytes, oldest first.
    pub fn contents(&self) -> Vec<u8> {
        let len = self.buf.len() as u64;
        let start = self.prod.saturating_sub(len);
        (start..self.prod)
            .map(|i| self.buf[(i % len) as usize])
            .collect()
    }

    /// Moves the contents into a ring of another size (keeps the newest bytes that fit).
    pub fn resized(&self, size: usize) -> Self {
        let mut r = Self::new(size);
        r.write(&self.contents());
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_until_full() {
        let mut r = ConRing::new(100);
        assert_eq!(r.capacity(), 16 * 1024);
        r.write(b"hello ");
        r.write(b"world");
        assert_eq!(r.contents(), b"hello world");
    }

    #[test]
    fn overwrites_oldest() {
        let mut r = ConRing::new(16 * 1024);
        let data: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        r.write(&data);
        assert_eq!(r.produced(), 40_000);
        assert_eq!(r.contents(), &data[40_000 - 16 * 1024..]);
    }

    #[test]
    fn resize_keeps_newest() {
        let mut r = ConRing::new(16 * 1024);
        r.write(b"abc");
        let big = r.resized(65 * 1024);
        assert_eq!(big.capacity(), 128 * 1024);
        assert_eq!(big.contents(), b"abc");
    }
}
