//! VGA text-mode console (80x25, colour text buffer at physical 0xb8000).

/// Physical address of the colour text buffer.
pub const VGA_TEXT_PHYS: u64 = 0xb8000;
/// Text columns.
pub const COLS: usize = 80;
const ROWS: usize = 25;
/// Light grey on black, as Xen's console uses.
const ATTR: u16 = 0x07 << 8;

/// A text-mode screen writer that scrolls at the bottom.
pub struct VgaText {
    base: *mut u16,
    col: usize,
    row: usize,
}

// SAFETY: the writer is only used behind the console lock; the buffer is plain MMIO-like memory.
unsafe impl Send for VgaText {}

impl VgaText {
    /// A writer for the buffer mapped at `base`; clears the screen.
    ///
    /// # Safety
    /// `base` must map the 4000-byte VGA text buffer for as long as the writer is used.
    pub unsafe fn new(base: *mut u16) -> Self {
        let mut v = Self {
            base,
            col: 0,
            row: 0,
        };
        for i in 0..COLS * ROWS {
            v.put(i, b' ');
        }
        v
    }

    /// Points the writer at a new mapping of the same buffer (after the page-table switch).
    ///
    /// # Safety
    /// As for [`VgaText::new`].
    pub unsafe fn relocate(&mut self, base: *mut u16) {
        self.base = base;
    }

    fn put(&mut self, index: usize, ch: u8) {
        // SAFETY: index < COLS * ROWS, inside the buffer the constructor's contract maps.
        unsafe { self.base.add(index).write_volatile(ATTR | u16::from(ch)) };
    }

    fn get(&self, index: usize) -> u16 {
        // SAFETY: as in `put`.
        unsafe { self.base.add(index).read_volatile() }
    }

    fn newline(&mut self) {
        self.col = 0;
        if self.row + 1 < ROWS {
            self.row += 1;
            return;
        }
        for i in 0..COLS * (ROWS - 1) {
            let c = self.get(i + COLS);
            // SAFETY: as in `put`.
            unsafe { self.base.add(i).write_volatile(c) };
        }
        for c in 0..COLS {
            self.put((ROWS - 1) * COLS + c, b' ');
        }
    }

    /// Reads row `row` back from the buffer as text (trailing spaces trimmed).
    pub fn read_row(&self, row: usize, out: &mut [u8; COLS]) -> usize {
        for (c, b) in out.iter_mut().enumerate() {
            *b = (self.get(row.min(ROWS - 1) * COLS + c) & 0xff) as u8;
        }
        out.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1)
    }

    /// Writes one byte (`\n` starts a new line, `\r` is ignored, other controls print as '.').
    pub fn write_byte(&mut self, b: u8) {
        match b {
            b'\n' => self.newline(),
            b'\r' => {}
            _ => {
                if self.col == COLS {
                    self.newline();
                }
                let ch = if (0x20..0x7f).contains(&b) { b } else { b'.' };
                self.put(self.row * COLS + self.col, ch);
                self.col += 1;
            }
        }
    }
}
