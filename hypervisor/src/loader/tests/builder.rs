//! Synthetic kernels: an ELF64 builder with Xen notes or `__xen_guest`, bzImage wrapping and
//! the compressors used to make test payloads.

use std::process::{Command, Stdio};
use std::vec::Vec;

use crate::loader::xen_notes::*;

/// A `PT_LOAD` segment to emit.
#[derive(Clone, Debug)]
pub struct Seg {
    pub paddr: u64,
    pub vaddr: u64,
    pub data: Vec<u8>,
    pub memsz: u64,
    pub flags: u32,
}

/// One note to emit.
#[derive(Clone, Debug)]
pub struct NoteSpec {
    pub name: Vec<u8>,
    pub n_type: u32,
    pub desc: Vec<u8>,
}

/// Where the notes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotePlacement {
    /// A `PT_NOTE` segment (and a matching `SHT_NOTE` section, like a linker makes).
    Segment,
    /// Only an `SHT_NOTE` section.
    SectionOnly,
}

/// An ELF64 image under construction; fields are public so tests can break them.
#[derive(Clone, Debug)]
pub struct ElfBuilder {
    pub class: u8,
    pub data_enc: u8,
    pub e_type: u16,
    pub machine: u16,
    pub entry: u64,
    pub segments: Vec<Seg>,
    pub notes: Vec<NoteSpec>,
    pub placement: NotePlacement,
    /// Alignment recorded for the note area (padding follows it: 4 or 8).
    pub note_align: u64,
    /// Legacy `__xen_guest` section contents (NUL added).
    pub xen_guest: Option<Vec<u8>>,
    /// Emit a `.symtab`/`.strtab` pair of these sizes.
    pub symtab: Option<(usize, usize)>,
    /// Set `p_offset` of the note segment to 0 (the binutils bug libelf skips).
    pub zero_note_offset: bool,
}

/// Linux's kernel layout constants.
pub const VIRT_BASE: u64 = 0xffff_ffff_8000_0000;
pub const TEXT_PADDR: u64 = 0x100_0000;
pub const ENTRY: u64 = VIRT_BASE + TEXT_PADDR + 0x1c0;
pub const HYPERCALL: u64 = VIRT_BASE + TEXT_PADDR + 0x1000;
pub const INIT_P2M: u64 = 0x80_0000_0000;

pub fn num_note(n_type: u32, v: u64, size: usize) -> NoteSpec {
    NoteSpec {
        name: b"Xen\0".to_vec(),
        n_type,
        desc: v.to_le_bytes()[..size].to_vec(),
    }
}

pub fn str_note(n_type: u32, s: &str) -> NoteSpec {
    let mut desc = s.as_bytes().to_vec();
    desc.push(0);
    NoteSpec {
        name: b"Xen\0".to_vec(),
        n_type,
        desc,
    }
}

/// The notes a Debian 6.1 kernel carries (arch/x86/xen/xen-head.S), numerics 8 bytes wide
/// except the ones Linux emits as `.long`.
pub fn linux_notes() -> Vec<NoteSpec> {
    let mut l1 = Vec::new();
    l1.extend_from_slice(&1u64.to_le_bytes());
    l1.extend_from_slice(&1u64.to_le_bytes());
    vec![
        NoteSpec {
            name: b"GNU\0".to_vec(),
            n_type: 3,
            desc: vec![0xab; 20],
        },
        str_note(XEN_ELFNOTE_GUEST_OS, "linux"),
        str_note(XEN_ELFNOTE_GUEST_VERSION, "2.6"),
        str_note(XEN_ELFNOTE_XEN_VERSION, "xen-3.0"),
        num_note(XEN_ELFNOTE_VIRT_BASE, VIRT_BASE, 8),
        num_note(XEN_ELFNOTE_PADDR_OFFSET, 0, 8),
        num_note(XEN_ELFNOTE_ENTRY, ENTRY, 8),
        num_note(XEN_ELFNOTE_HYPERCALL_PAGE, HYPERCALL, 8),
        str_note(XEN_ELFNOTE_FEATURES, "!writable_page_tables"),
        num_note(XEN_ELFNOTE_SUPPORTED_FEATURES, 0x8801, 4),
        str_note(XEN_ELFNOTE_PAE_MODE, "yes"),
        NoteSpec {
            name: b"Xen\0".to_vec(),
            n_type: XEN_ELFNOTE_L1_MFN_VALID,
            desc: l1,
        },
        str_note(XEN_ELFNOTE_LOADER, "generic"),
        num_note(XEN_ELFNOTE_SUSPEND_CANCEL, 1, 4),
        num_note(XEN_ELFNOTE_MOD_START_PFN, 1, 4),
        num_note(XEN_ELFNOTE_INIT_P2M, INIT_P2M, 8),
        num_note(XEN_ELFNOTE_PHYS32_ENTRY, 0x100_0300, 8),
    ]
}

/// A deterministic, mildly compressible byte pattern.
pub fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 < 4 {
                (i / 64) as u8
            } else {
                x as u8 & 0x0f
            }
        })
        .collect()
}

impl ElfBuilder {
    /// A Linux-like kernel: text, rodata+data and bss segments placed by p_paddr at 16 MiB.
    pub fn linux() -> Self {
        let seg = |off: u64, len: usize, memsz: u64, flags: u32, seed: u32| Seg {
            paddr: TEXT_PADDR + off,
            vaddr: VIRT_BASE + TEXT_PADDR + off,
            data: pattern(len, seed),
            memsz,
            flags,
        };
        Self {
            class: 2,
            data_enc: 1,
            e_type: 2,
            machine: 62,
            entry: 0x100_0000,
            segments: vec![
                seg(0, 0x2000, 0x20_0000, 5, 1),
                seg(0x20_0000, 0x1800, 0x10_0000, 6, 2),
                seg(0x30_0000, 0, 0x8_0000, 6, 3),
            ],
            notes: linux_notes(),
            placement: NotePlacement::Segment,
            note_align: 4,
            xen_guest: None,
            symtab: None,
            zero_note_offset: false,
        }
    }

    /// Replaces (or adds) the note of type `n_type` named "Xen".
    pub fn set_note(&mut self, note: NoteSpec) -> &mut Self {
        self.remove_note(note.n_type);
        self.notes.push(note);
        self
    }

    /// Removes the "Xen" note of type `n_type`.
    pub fn remove_note(&mut self, n_type: u32) -> &mut Self {
        self.notes
            .retain(|n| !(n.name == b"Xen\0" && n.n_type == n_type));
        self
    }

    /// The note area bytes.
    fn note_area(&self) -> Vec<u8> {
        let a = if self.note_align > 4 { 8 } else { 4 };
        let pad = |v: &mut Vec<u8>| {
            while !v.len().is_multiple_of(a) {
                v.push(0);
            }
        };
        let mut out = Vec::new();
        for n in &self.notes {
            out.extend_from_slice(&(n.name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(n.desc.len() as u32).to_le_bytes());
            out.extend_from_slice(&n.n_type.to_le_bytes());
            out.extend_from_slice(&n.name);
            pad(&mut out);
            out.extend_from_slice(&n.desc);
            pad(&mut out);
        }
        out
    }

    /// Serialises the image.
    pub fn build(&self) -> Vec<u8> {
        let notes = self.note_area();
        let has_notes = !self.notes.is_empty();
        let note_phdr = has_notes && self.placement == NotePlacement::Segment;
        let phnum = self.segments.len() + usize::from(note_phdr);
        let mut img = vec![0u8; 64 + phnum * 56];
        let align = |img: &mut Vec<u8>, a: usize| {
            while !img.len().is_multiple_of(a) {
                img.push(0);
            }
        };
        // Note area.
        align(&mut img, 8);
        let note_off = img.len();
        img.extend_from_slice(&notes);
        // Segment data.
        let mut seg_offs = Vec::new();
        for s in &self.segments {
            align(&mut img, 16);
            seg_offs.push(img.len());
            img.extend_from_slice(&s.data);
        }
        // Sections: null, [.notes], [__xen_guest], [.symtab, .strtab], .shstrtab.
        let mut shstrtab = vec![0u8];
        let mut name = |n: &str| {
            let off = shstrtab.len() as u32;
            shstrtab.extend_from_slice(n.as_bytes());
            shstrtab.push(0);
            off
        };
        // (name, type, offset, size, link, addralign)
        let mut shdrs: Vec<(u32, u32, u64, u64, u32, u64)> = vec![(0, 0, 0, 0, 0, 0)];
        if has_notes {
            shdrs.push((
                name(".notes"),
                7,
                note_off as u64,
                notes.len() as u64,
                0,
                self.note_align,
            ));
        }
        let mut guest_off = 0;
        if let Some(g) = &self.xen_guest {
            align(&mut img, 8);
            guest_off = img.len();
            img.extend_from_slice(g);
            img.push(0);
            shdrs.push((
                name("__xen_guest"),
                1,
                guest_off as u64,
                g.len() as u64 + 1,
                0,
                1,
            ));
        }
        if let Some((sym, str_)) = self.symtab {
            align(&mut img, 8);
            let sym_off = img.len();
            img.extend(std::iter::repeat_n(0u8, sym + str_));
            let link = shdrs.len() as u32 + 1;
            shdrs.push((name(".symtab"), 2, sym_off as u64, sym as u64, link, 8));
            shdrs.push((
                name(".strtab"),
                3,
                (sym_off + sym) as u64,
                str_ as u64,
                0,
                1,
            ));
        }
        let shstr_name = name(".shstrtab");
        let shstr_off = img.len();
        img.extend_from_slice(&shstrtab);
        shdrs.push((shstr_name, 3, shstr_off as u64, shstrtab.len() as u64, 0, 1));
        let _ = guest_off;
        align(&mut img, 8);
        let shoff = img.len();
        for (nm, ty, off, size, link, al) in &shdrs {
            let mut sh = [0u8; 64];
            sh[0..4].copy_from_slice(&nm.to_le_bytes());
            sh[4..8].copy_from_slice(&ty.to_le_bytes());
            sh[24..32].copy_from_slice(&off.to_le_bytes());
            sh[32..40].copy_from_slice(&size.to_le_bytes());
            sh[40..44].copy_from_slice(&link.to_le_bytes());
            sh[48..56].copy_from_slice(&al.to_le_bytes());
            img.extend_from_slice(&sh);
        }

        // ELF header.
        img[0..4].copy_from_slice(b"\x7fELF");
        img[4] = self.class;
        img[5] = self.data_enc;
        img[6] = 1;
        img[16..18].copy_from_slice(&self.e_type.to_le_bytes());
        img[18..20].copy_from_slice(&self.machine.to_le_bytes());
        img[20..24].copy_from_slice(&1u32.to_le_bytes());
        img[24..32].copy_from_slice(&self.entry.to_le_bytes());
        img[32..40].copy_from_slice(&64u64.to_le_bytes());
        img[40..48].copy_from_slice(&(shoff as u64).to_le_bytes());
        img[52..54].copy_from_slice(&64u16.to_le_bytes());
        img[54..56].copy_from_slice(&56u16.to_le_bytes());
        img[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        img[58..60].copy_from_slice(&64u16.to_le_bytes());
        img[60..62].copy_from_slice(&(shdrs.len() as u16).to_le_bytes());
        img[62..64].copy_from_slice(&(shdrs.len() as u16 - 1).to_le_bytes());

        // Program headers.
        let mut ph_at = 64;
        let mut phdr = |img: &mut Vec<u8>, fields: (u32, u32, u64, u64, u64, u64, u64, u64)| {
            let (ty, fl, off, va, pa, fsz, msz, al) = fields;
            let p = &mut img[ph_at..ph_at + 56];
            p[0..4].copy_from_slice(&ty.to_le_bytes());
            p[4..8].copy_from_slice(&fl.to_le_bytes());
            p[8..16].copy_from_slice(&off.to_le_bytes());
            p[16..24].copy_from_slice(&va.to_le_bytes());
            p[24..32].copy_from_slice(&pa.to_le_bytes());
            p[32..40].copy_from_slice(&fsz.to_le_bytes());
            p[40..48].copy_from_slice(&msz.to_le_bytes());
            p[48..56].copy_from_slice(&al.to_le_bytes());
            ph_at += 56;
        };
        for (s, off) in self.segments.iter().zip(&seg_offs) {
            let fsz = s.data.len() as u64;
            phdr(
                &mut img,
                (
                    1,
                    s.flags,
                    *off as u64,
                    s.vaddr,
                    s.paddr,
                    fsz,
                    s.memsz,
                    0x1000,
                ),
            );
        }
        if note_phdr {
            let off = if self.zero_note_offset {
                0
            } else {
                note_off as u64
            };
            let len = notes.len() as u64;
            phdr(&mut img, (4, 4, off, 0, 0, len, len, self.note_align));
        }
        img
    }
}

/// Offsets of the bzImage setup-header fields.
const SETUP_SECTS: usize = 0x1f1;

/// Wraps `payload` in a minimal bzImage (boot protocol `version`), appending Linux's 4-byte
/// size trailer `size` after a compressed payload when given.
pub fn bzimage(payload: &[u8], trailer: Option<u32>, version: u16) -> Vec<u8> {
    let setup_sects = 3u8;
    let payload_offset = 0x1234u32;
    let start = (usize::from(setup_sects) + 1) * 512 + payload_offset as usize;
    let mut full = payload.to_vec();
    if let Some(t) = trailer {
        full.extend_from_slice(&t.to_le_bytes());
    }
    let mut img = vec![0u8; start];
    img[SETUP_SECTS] = setup_sects;
    img[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    img[0x248..0x24c].copy_from_slice(&payload_offset.to_le_bytes());
    img[0x24c..0x250].copy_from_slice(&(full.len() as u32).to_le_bytes());
    // Something standing in for the decompressor stub before the payload.
    for (i, b) in img.iter_mut().enumerate().skip(0x250) {
        *b = (i * 31) as u8;
    }
    img.extend_from_slice(&full);
    // Linux pads the image after the payload (CRC, alignment).
    img.extend_from_slice(&[0u8; 16]);
    img
}

/// gzip member of `data` (miniz_oxide deflate + RFC 1952 framing with a file name).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0x08, 0, 0, 0, 0, 2, 3];
    out.extend_from_slice(b"vmlinux.bin\0");
    out.extend_from_slice(&miniz_oxide::deflate::compress_to_vec(data, 9));
    out.extend_from_slice(&crate::loader::decompress::crc32(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Runs an external compressor on `data`.
pub fn run_tool(cmd: &str, args: &[&str], data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} (from Debian's standard packages) is needed: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("compressor output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to compressor");
    assert!(out.status.success(), "{cmd} failed");
    out.stdout
}

/// XZ exactly as Linux's `scripts/xz_wrap.sh` makes it for x86 (BCJ + LZMA2, CRC32 check).
pub fn xz(data: &[u8]) -> Vec<u8> {
    run_tool(
        "xz",
        &[
            "--format=xz",
            "--check=crc32",
            "--x86",
            "--lzma2=dict=1MiB",
            "-c",
        ],
        data,
    )
}

/// Legacy LZ4 (`lz4 -l`): magic, then `[u32 len][block]` per 8 MiB of input.
pub fn lz4_legacy(data: &[u8]) -> Vec<u8> {
    let mut out = 0x184C_2102u32.to_le_bytes().to_vec();
    for chunk in data.chunks(8 << 20) {
        let block = lz4_flex::block::compress(chunk);
        out.extend_from_slice(&(block.len() as u32).to_le_bytes());
        out.extend_from_slice(&block);
    }
    out
}

/// zstd frame from ruzstd's own encoder.
pub fn zstd(data: &[u8]) -> Vec<u8> {
    ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
}

/// A hand-made zstd frame of Raw_Blocks (no checksum, window 1 MiB), independent of any
/// encoder.
pub fn zstd_raw_blocks(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // FHD: FCS absent, not single-segment, no checksum, no dict; window descriptor 2^20.
    out.push(0x00);
    out.push((20 - 10) << 3);
    let chunks: Vec<&[u8]> = data.chunks(100_000).collect();
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        // Block header: last bit, type 0 (Raw), 21-bit size.
        let hdr = last | ((c.len() as u32) << 3);
        out.extend_from_slice(&hdr.to_le_bytes()[..3]);
        out.extend_from_slice(c);
    }
    out
}

/// Deterministic xorshift64 generator for the fuzz tests.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
