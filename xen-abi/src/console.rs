//! PV console ring: `io/console.h`.

use zerocopy::{FromBytes, FromZeros, Immutable, IntoBytes, KnownLayout};

/// `XENCONS_RING_IDX`: free-running ring index.
pub type XenconsRingIdx = u32;

/// Size of `xencons_interface.in`.
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of `xencons_interface.out`.
pub const XENCONS_OUT_SIZE: usize = 2048;

/// `MASK_XENCONS_IDX(idx, ring)`: ring sizes are powers of two.
pub const fn mask_xencons_idx(idx: XenconsRingIdx, ring_size: usize) -> usize {
    idx as usize & (ring_size - 1)
}

/// `struct xencons_interface`: the console ring page shared with the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct XenconsInterface {
    /// Backend-to-guest bytes (`in`).
    pub in_: [u8; XENCONS_IN_SIZE],
    /// Guest-to-backend bytes.
    pub out: [u8; XENCONS_OUT_SIZE],
    /// Guest consumer index into `in`.
    pub in_cons: XenconsRingIdx,
    /// Backend producer index into `in`.
    pub in_prod: XenconsRingIdx,
    /// Backend consumer index into `out`.
    pub out_cons: XenconsRingIdx,
    /// Guest producer index into `out`.
    pub out_prod: XenconsRingIdx,
}
assert_layout!(XenconsInterface, 3088, in_ @ 0, out @ 1024, in_cons @ 3072, in_prod @ 3076,
    out_cons @ 3080, out_prod @ 3084);

impl XenconsInterface {
    /// An empty ring.
    pub fn zeroed() -> Self {
        Self::new_zeroed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask() {
        assert_eq!(mask_xencons_idx(2049, XENCONS_OUT_SIZE), 1);
        assert_eq!(mask_xencons_idx(1023, XENCONS_IN_SIZE), 1023);
        assert_eq!(XenconsInterface::zeroed().out_prod, 0);
    }
}
