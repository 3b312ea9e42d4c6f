//! Nested page tables (guest-physical to host-physical), the same 4-level structure for AMD
//! NPT and Intel EPT: built with the host [`Mapper`], only the leaf bits differ (the back-ends
//! pick them, see `svm::npt` and `vmx::ept`).

use crate::layout::phys_to_virt;
use crate::paging::{MapError, Mapper, PAGE_SIZE, Pte, TableAccess};

/// Where the back-ends get zeroed, direct-mapped physical frames.
pub trait FrameSource {
    /// `2^order` contiguous zeroed frames; the physical address of the first.
    fn alloc_zeroed(&mut self, order: usize) -> Option<u64>;
}

/// Table access for nested tables: frames from a [`FrameSource`] (none for read-only walks),
/// reached through the direct map.
struct Access<'a, F: FrameSource> {
    frames: Option<&'a mut F>,
}

impl<F: FrameSource> TableAccess for Access<'_, F> {
    fn alloc_table(&mut self) -> Option<u64> {
        self.frames.as_mut()?.alloc_zeroed(0)
    }
    fn table_ptr(&self, pa: u64) -> *mut [u64; 512] {
        phys_to_virt(pa) as *mut [u64; 512]
    }
}

/// A stand-in frame source for read-only walks.
struct NoFrames;
impl FrameSource for NoFrames {
    fn alloc_zeroed(&mut self, _order: usize) -> Option<u64> {
        None
    }
}

/// 4-level nested page tables: guest-physical to host-physical.
pub struct NestedTables {
    root: u64,
    leaf: Pte,
}

impl NestedTables {
    /// Empty tables (every guest-physical access exits) whose leaves get `leaf`.
    pub fn new(frames: &mut impl FrameSource, leaf: Pte) -> Option<Self> {
        Some(Self {
            root: frames.alloc_zeroed(0)?,
            leaf,
        })
    }

    /// The root table's physical address (nCR3, or the EPT pointer's base).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps `[gpa, gpa + len)` to `[pa, pa + len)` with the leaf bits. (The tables live in
    /// physical memory, so a running vCPU may share them. Only not-present translations are
    /// ever added, which needs no flush on VMX; every VMRUN flushes on SVM.)
    pub fn map<F: FrameSource>(
        &self,
        frames: &mut F,
        gpa: u64,
        pa: u64,
        len: u64,
    ) -> Result<(), MapError> {
        let mut access = Access {
            frames: Some(frames),
        };
        Mapper::new(self.root, &mut access).map_range(gpa, pa, len, self.leaf, false)
    }

    /// Removes the 4 KiB translation of `gpa`, if any. The caller flushes what cached it
    /// (SVM: every VMRUN flushes; VMX: `vmx::flush_ept`).
    pub fn unmap(&self, gpa: u64) {
        let mut access = Access::<NoFrames> { frames: None };
        Mapper::new(self.root, &mut access).unmap_4k(gpa);
    }

    /// The host-physical address backing `gpa`, if mapped.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        let mut access = Access::<NoFrames> { frames: None };
        Mapper::new(self.root, &mut access)
            .translate(gpa)
            .map(|(pa, _)| pa)
    }

    /// Calls `f(host pointer, offset, n)` for each piece of `[gpa, gpa + len)` that lies in
    /// one page, translating each page once; false (after the mapped prefix) at the first
    /// unmapped page.
    fn for_each_page(
        &self,
        gpa: u64,
        len: usize,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> bool {
        let mut done = 0;
        while done < len {
            let at = gpa + done as u64;
            let n = (PAGE_SIZE - at % PAGE_SIZE).min((len - done) as u64) as usize;
            let Some(pa) = self.translate(at) else {
                return false;
            };
            f(phys_to_virt(pa) as *mut u8, done, n);
            done += n;
        }
        true
    }

    /// Reads guest-physical bytes into `buf`; false if any byte is unmapped.
    pub fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        let len = buf.len();
        self.for_each_page(gpa, len, |host, off, n| {
            for (i, b) in buf[off..off + n].iter_mut().enumerate() {
                // SAFETY: `host` maps `n` bytes of a guest frame these tables map: a
                // direct-mapped host frame, not aliased by Rust references.
                *b = unsafe { host.add(i).read_volatile() };
            }
        })
    }

    /// Writes `bytes` at guest-physical `gpa`; false if any byte is unmapped.
    pub fn write(&self, gpa: u64, bytes: &[u8]) -> bool {
        self.for_each_page(gpa, bytes.len(), |host, off, n| {
            for (i, &b) in bytes[off..off + n].iter().enumerate() {
                // SAFETY: as in `read`.
                unsafe { host.add(i).write_volatile(b) };
            }
        })
    }
}
