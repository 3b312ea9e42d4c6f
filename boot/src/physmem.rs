//! Read access to physical memory, abstracted so boot-time parsers run on the host in tests.

/// Reads bytes at physical addresses. Implementations return `false` when any byte of the range
/// is outside what they can read; parsers turn that into an error rather than faulting.
pub trait PhysMemory {
    /// Copies `buf.len()` bytes starting at physical address `paddr` into `buf`.
    fn read_bytes(&self, paddr: u64, buf: &mut [u8]) -> bool;

    /// Reads a little-endian `u8`.
    fn read_u8(&self, paddr: u64) -> Option<u8> {
        let mut b = [0u8; 1];
        self.read_bytes(paddr, &mut b).then_some(b[0])
    }

    /// Reads a little-endian `u16`.
    fn read_u16(&self, paddr: u64) -> Option<u16> {
        let mut b = [0u8; 2];
        self.read_bytes(paddr, &mut b)
            .then(|| u16::from_le_bytes(b))
    }

    /// Reads a little-endian `u32`.
    fn read_u32(&self, paddr: u64) -> Option<u32> {
        let mut b = [0u8; 4];
        self.read_bytes(paddr, &mut b)
            .then(|| u32::from_le_bytes(b))
    }

    /// Reads a little-endian `u64`.
    fn read_u64(&self, paddr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        self.read_bytes(paddr, &mut b)
            .then(|| u64::from_le_bytes(b))
    }
}

/// A byte slice standing for physical memory starting at `base`: the fixture type of host tests.
pub struct SliceMemory<'a> {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory contents.
    pub bytes: &'a [u8],
}

impl PhysMemory for SliceMemory<'_> {
    fn read_bytes(&self, paddr: u64, buf: &mut [u8]) -> bool {
        let Some(off) = paddr.checked_sub(self.base) else {
            return false;
        };
        let Ok(off) = usize::try_from(off) else {
            return false;
        };
        match off
            .checked_add(buf.len())
            .and_then(|end| self.bytes.get(off..end))
        {
            Some(src) => {
                buf.copy_from_slice(src);
                true
            }
            None => false,
        }
    }
}
