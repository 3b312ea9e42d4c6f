//! The Xen guest description of a PV kernel: `"Xen"` ELF notes or the legacy `__xen_guest`
//! section, and the address checks Xen applies to them.
//!
//! A port of `xen/common/libelf/libelf-dominfo.c` (Xen 4.17) for the PV (`hvm = false`) case:
//! `elf_xen_parse` (notes from `PT_NOTE` segments, falling back to `SHT_NOTE` sections, falling
//! back to `__xen_guest`), `elf_xen_parse_note`, `elf_xen_parse_features`,
//! `elf_xen_parse_guest_info`, `elf_xen_note_check` and `elf_xen_addr_calc_check`, including
//! the `UNSET_ADDR` defaulting rules and the BSD symbol table extent. Where libelf would read
//! past the object it was given (string notes without a NUL, `__xen_guest` without one), we
//! stop at the object's end instead; for well-formed kernels the results are identical.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::elf::{Elf64, ElfError, Note, NoteIter, PT_NOTE, SHT_NOTE, SHT_STRTAB, SHT_SYMTAB};

// The note numbers come from the one ABI definition.
pub use xen_abi::elfnote::{
    XEN_ELFNOTE_BSD_SYMTAB, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_FEATURES, XEN_ELFNOTE_GUEST_OS,
    XEN_ELFNOTE_GUEST_VERSION, XEN_ELFNOTE_HV_START_LOW, XEN_ELFNOTE_HYPERCALL_PAGE,
    XEN_ELFNOTE_INFO, XEN_ELFNOTE_INIT_P2M, XEN_ELFNOTE_L1_MFN_VALID, XEN_ELFNOTE_LOADER,
    XEN_ELFNOTE_MOD_START_PFN, XEN_ELFNOTE_PADDR_OFFSET, XEN_ELFNOTE_PAE_MODE,
    XEN_ELFNOTE_PHYS32_ENTRY, XEN_ELFNOTE_SUPPORTED_FEATURES, XEN_ELFNOTE_SUSPEND_CANCEL,
    XEN_ELFNOTE_VIRT_BASE, XEN_ELFNOTE_XEN_VERSION,
};

// TODO: xen-abi — XENFEAT_* from xen/include/public/features.h.
/// Guest may write its page tables directly.
pub const XENFEAT_WRITABLE_PAGE_TABLES: u32 = 0;
/// Guest may write its descriptor tables directly.
pub const XENFEAT_WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
/// Hypervisor translates guest physical addresses.
pub const XENFEAT_AUTO_TRANSLATED_PHYSMAP: u32 = 2;
/// Guest kernel runs in ring 0.
pub const XENFEAT_SUPERVISOR_MODE_KERNEL: u32 = 3;
/// PAE page directories may live above 4 GiB.
pub const XENFEAT_PAE_PGDIR_ABOVE_4GB: u32 = 4;
/// HVM event-channel callback vector.
pub const XENFEAT_HVM_CALLBACK_VECTOR: u32 = 8;
/// Kernel can run as dom0.
pub const XENFEAT_DOM0: u32 = 11;
/// Number of 32-bit feature submaps.
pub const XENFEAT_NR_SUBMAPS: usize = 1;

/// libelf's `UNSET_ADDR`: a numeric note with this value is indistinguishable from no note.
const UNSET_ADDR: u64 = u64::MAX;
/// libelf's `UNSET_ADDR32`, for `PHYS32_ENTRY`.
const UNSET_ADDR32: u32 = u32::MAX;
/// libelf's `ELF_MAX_TOTAL_NOTE_COUNT`: bounds the work a hostile image can cause.
const MAX_TOTAL_NOTES: usize = 65536;

/// libelf's `elf_xen_feature_names`: the only names `FEATURES` strings may use, indexed by
/// feature bit. Xen 4.17 knows exactly these seven.
const FEATURE_NAMES: [(u32, &str); 7] = [
    (XENFEAT_WRITABLE_PAGE_TABLES, "writable_page_tables"),
    (
        XENFEAT_WRITABLE_DESCRIPTOR_TABLES,
        "writable_descriptor_tables",
    ),
    (XENFEAT_AUTO_TRANSLATED_PHYSMAP, "auto_translated_physmap"),
    (XENFEAT_SUPERVISOR_MODE_KERNEL, "supervisor_mode_kernel"),
    (XENFEAT_PAE_PGDIR_ABOVE_4GB, "pae_pgdir_above_4gb"),
    (XENFEAT_HVM_CALLBACK_VECTOR, "hvm_callback_vector"),
    (XENFEAT_DOM0, "dom0"),
];

/// Name of a feature bit as libelf knows it, if it does.
pub fn feature_name(bit: u32) -> Option<&'static str> {
    FEATURE_NAMES
        .iter()
        .find(|(b, _)| *b == bit)
        .map(|(_, n)| *n)
}

/// Whether `bit` is set in a feature bitmap.
pub fn feature_test(map: &[u32; XENFEAT_NR_SUBMAPS], bit: u32) -> bool {
    map.get((bit / 32) as usize)
        .is_some_and(|w| w & (1 << (bit % 32)) != 0)
}

/// Sets `bit` in a feature bitmap (bits beyond the submaps are dropped, as in libelf).
fn feature_set(map: &mut [u32; XENFEAT_NR_SUBMAPS], bit: u32) {
    if let Some(w) = map.get_mut((bit / 32) as usize) {
        *w |= 1 << (bit % 32);
    }
}

/// What went wrong interpreting the Xen guest description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteError {
    /// The notes area or `__xen_guest` section is malformed.
    Elf(ElfError),
    /// Neither notes nor `__xen_guest`: not built for Xen.
    NotXenImage,
    /// `FEATURES` requires (`!name`) a feature this hypervisor does not know.
    UnknownRequiredFeature(String),
    /// Neither `LOADER` starts with `generic` nor `GUEST_OS` with `linux`.
    UnsupportedGuest {
        /// The `LOADER` string.
        loader: String,
        /// The `GUEST_OS` string.
        guest_os: String,
    },
    /// `XEN_VERSION` does not start with `xen-3.0`.
    UnsupportedXenVersion(String),
    /// `PADDR_OFFSET` is given without `VIRT_BASE`.
    PaddrOffsetWithoutVirtBase,
    /// A legacy `__xen_guest` number does not fit in 64 bits.
    NumberOverflow {
        /// The key.
        key: String,
        /// The value text.
        value: String,
    },
    /// Kernel start/end/entry inconsistent (`elf_xen_addr_calc_check`).
    AddressesOutOfBounds {
        /// `virt_base`.
        virt_base: u64,
        /// `virt_kstart`.
        kstart: u64,
        /// `virt_kend`.
        kend: u64,
        /// `virt_entry`.
        entry: u64,
    },
    /// `INIT_P2M` points into the kernel image.
    P2mInsideKernel {
        /// The P2M base.
        p2m_base: u64,
    },
}

impl From<ElfError> for NoteError {
    fn from(e: ElfError) -> Self {
        Self::Elf(e)
    }
}

impl fmt::Display for NoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elf(e) => write!(f, "{e}"),
            Self::NotXenImage => write!(
                f,
                "Not a Xen-ELF image: No ELF notes or '__xen_guest' section found"
            ),
            Self::UnknownRequiredFeature(name) => write!(
                f,
                "kernel requires Xen feature '{name}', which this hypervisor does not know"
            ),
            Self::UnsupportedGuest { loader, guest_os } => write!(
                f,
                "Will only load images built for the generic loader or Linux images \
                 (Not '{loader}' and '{guest_os}')"
            ),
            Self::UnsupportedXenVersion(v) => {
                write!(
                    f,
                    "Xen will only load images built for Xen v3.0 (Not '{v}')"
                )
            }
            Self::PaddrOffsetWithoutVirtBase => write!(f, "ELF_PADDR_OFFSET set, VIRT_BASE unset"),
            Self::NumberOverflow { key, value } => {
                write!(f, "__xen_guest: {key}={value} does not fit in 64 bits")
            }
            Self::AddressesOutOfBounds {
                virt_base,
                kstart,
                kend,
                entry,
            } => write!(
                f,
                "ELF start or entries are out of bounds: virt_base {virt_base:#x}, kernel \
                 {kstart:#x} -> {kend:#x}, entry {entry:#x}"
            ),
            Self::P2mInsideKernel { p2m_base } => write!(
                f,
                "P->M table base {p2m_base:#x} is out of bounds (inside the kernel image)"
            ),
        }
    }
}

/// `PAE_MODE` as libelf records it (`XEN_PAE_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaeMode {
    /// `XEN_PAE_NO`: no note, or a value libelf does not recognise.
    #[default]
    No,
    /// `XEN_PAE_YES`: legacy `PAE=yes...`.
    Yes,
    /// `XEN_PAE_EXTCR3`: note `"yes"` or legacy `PAE=yes[extended-cr3]`.
    ExtendedCr3,
    /// `XEN_PAE_BIMODAL`: note containing `"bimodal"`.
    Bimodal,
}

/// Where the guest description came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoteSource {
    /// `"Xen"` notes in `PT_NOTE` segments.
    Segments,
    /// `"Xen"` notes in `SHT_NOTE` sections (no note segment had any).
    Sections,
    /// The legacy `__xen_guest` section string.
    LegacyGuestInfo,
    /// Note areas were scanned but had no Xen note (the checks will then reject the image).
    NoXenNotes,
}

/// The value of one recognised note, for logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoteValue {
    /// A numeric note, as `elf_note_numeric` reads it.
    Num(u64),
    /// A string note.
    Str(String),
}

/// One recognised Xen note (or legacy `KEY=value` pair), in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteRecord {
    /// Note type, or `None` for a legacy pair.
    pub n_type: Option<u32>,
    /// libelf's name for it (`"ENTRY"`, ...) or the legacy key.
    pub name: String,
    /// Its value.
    pub value: NoteValue,
}

impl fmt::Display for NoteRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.n_type, &self.value) {
            (Some(_), NoteValue::Num(v)) => write!(f, "ELF: note: {} = {v:#x}", self.name),
            (Some(_), NoteValue::Str(s)) => write!(f, "ELF: note: {} = \"{s}\"", self.name),
            (None, NoteValue::Str(s)) => write!(f, "ELF: {}=\"{s}\"", self.name),
            (None, NoteValue::Num(v)) => write!(f, "ELF: {}={v:#x}", self.name),
        }
    }
}

/// The parsed and checked Xen guest description: libelf's `struct elf_dom_parms` after
/// `elf_xen_parse` succeeded for a PV guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XenGuestInfo {
    /// Virtual entry point (`ENTRY`, else `e_entry`).
    pub entry: u64,
    /// Virtual address the image is mapped at (`VIRT_BASE`, default 0).
    pub virt_base: u64,
    /// `PADDR_OFFSET` after defaulting: 0 for notes, `virt_base` for `__xen_guest`.
    pub paddr_offset: u64,
    /// Virtual address of the hypercall page.
    pub hypercall_page: Option<u64>,
    /// Virtual address for the initial P2M table (`INIT_P2M`).
    pub init_p2m: Option<u64>,
    /// `MOD_START_PFN` non-zero: the initrd may be passed unmapped, by PFN.
    pub mod_start_pfn: bool,
    /// Features the kernel supports (`FEATURES` plus `SUPPORTED_FEATURES`).
    pub features_supported: [u32; XENFEAT_NR_SUBMAPS],
    /// Features the kernel requires (`!name` in `FEATURES`).
    pub features_required: [u32; XENFEAT_NR_SUBMAPS],
    /// Whether a `SUPPORTED_FEATURES` note exists (then `dom0` must be in it for dom0).
    pub has_supported_features_note: bool,
    /// `GUEST_OS`.
    pub guest_os: String,
    /// `GUEST_VERSION` (legacy `GUEST_VER`).
    pub guest_version: String,
    /// `LOADER`.
    pub loader: String,
    /// `XEN_VERSION` (legacy `XEN_VER`).
    pub xen_version: String,
    /// `PAE_MODE`.
    pub pae_mode: PaeMode,
    /// `BSD_SYMTAB`: the symbol table is loaded after the image.
    pub bsd_symtab: bool,
    /// `HV_START_LOW` (32-bit guests only).
    pub hv_start_low: Option<u64>,
    /// `L1_MFN_VALID` mask/value pairs.
    pub l1_mfn_valid: Vec<(u64, u64)>,
    /// `SUSPEND_CANCEL` non-zero.
    pub suspend_cancel: bool,
    /// `PHYS32_ENTRY` (PVH only; recorded, unused for PV).
    pub phys32_entry: Option<u32>,
    /// `virt_base - paddr_offset`: added to a `p_paddr` to get its virtual address.
    pub virt_offset: u64,
    /// Start of the kernel's virtual extent (`pstart + virt_offset`).
    pub virt_kstart: u64,
    /// End of the kernel's virtual extent (`pend + virt_offset`, or the end of the BSD
    /// symbol table).
    pub virt_kend: u64,
    /// Physical extent of the BSD symbol table, when one is loaded.
    pub bsd_symtab_range: Option<(u64, u64)>,
    /// Where the description came from.
    pub source: NoteSource,
    /// Every recognised note or legacy pair, in order (for the boot log).
    pub notes: Vec<NoteRecord>,
    /// Oddities libelf would log but accept (unknown notes, defaults applied, ...).
    pub warnings: Vec<String>,
}

impl XenGuestInfo {
    /// Whether the kernel supports feature `bit`.
    pub fn supports(&self, bit: u32) -> bool {
        feature_test(&self.features_supported, bit)
    }

    /// Whether the kernel requires feature `bit`.
    pub fn requires(&self, bit: u32) -> bool {
        feature_test(&self.features_required, bit)
    }
}

/// libelf's `elf_xen_parse_features`: splits `features` at `|` into names of at most 63 bytes
/// (longer ones are cut into pieces, as libelf does), sets the bits of known names in
/// `supported`, and of `!`-prefixed ones also in `required`. Unknown names are ignored unless
/// required, which is an error.
pub fn parse_features(
    features: &[u8],
    supported: &mut [u32; XENFEAT_NR_SUBMAPS],
    required: &mut [u32; XENFEAT_NR_SUBMAPS],
) -> Result<(), NoteError> {
    /// libelf's `feature[64]` buffer holds 63 bytes plus the NUL.
    const MAX_NAME: usize = 63;
    // The slice's end counts as the terminating NUL.
    let at = |i: usize| features.get(i).copied().unwrap_or(0);
    let mut pos = 0;
    while at(pos) != 0 {
        // `len` is what the cursor advances by (including a '|'), `flen` the name's length.
        let mut len = 0;
        let mut flen = 0;
        while len < MAX_NAME {
            match at(pos + len) {
                0 => break,
                b'|' => {
                    len += 1;
                    break;
                }
                _ => {
                    len += 1;
                    flen = len;
                }
            }
        }
        // In bounds: `at` returned non-NUL bytes for every index below `pos + flen`.
        let feature = features.get(pos..pos + flen).unwrap_or_default();
        pos += len;
        let (is_required, name) = match feature.split_first() {
            Some((b'!', name)) => (true, name),
            _ => (false, feature),
        };
        match FEATURE_NAMES.iter().find(|(_, n)| n.as_bytes() == name) {
            Some(&(bit, _)) => {
                feature_set(supported, bit);
                if is_required {
                    feature_set(required, bit);
                }
            }
            None if is_required => {
                return Err(NoteError::UnknownRequiredFeature(
                    String::from_utf8_lossy(name).into_owned(),
                ));
            }
            None => {}
        }
    }
    Ok(())
}

/// Whether a numeric note is stored as libelf's `elf_note_numeric` would read it, and its
/// value: 1, 2, 4 or 8-byte little-endian descriptors; any other size reads as 0.
fn note_numeric(desc: &[u8]) -> (u64, bool) {
    match desc.len() {
        1 | 2 | 4 | 8 => {
            let mut buf = [0u8; 8];
            buf[..desc.len()].copy_from_slice(desc);
            (u64::from_le_bytes(buf), true)
        }
        _ => (0, false),
    }
}

/// A string note's value, read like libelf's `elf_strval`: up to the first NUL, which may
/// lie in the padding after the descriptor (Linux emits `FEATURES` with `.ascii`, relying on
/// the zero padding). Without any NUL we take it all and say so, where libelf would read on.
fn note_string(note: &Note<'_>) -> (String, bool) {
    let bytes: Vec<u8> = note.desc.iter().chain(note.padding).copied().collect();
    match bytes.iter().position(|&b| b == 0) {
        Some(n) => (String::from_utf8_lossy(&bytes[..n]).into_owned(), true),
        None => (String::from_utf8_lossy(&bytes).into_owned(), false),
    }
}

/// libelf's name for a known note type and whether it is a string note.
fn note_desc(n_type: u32) -> Option<(&'static str, bool)> {
    Some(match n_type {
        XEN_ELFNOTE_ENTRY => ("ENTRY", false),
        XEN_ELFNOTE_HYPERCALL_PAGE => ("HYPERCALL_PAGE", false),
        XEN_ELFNOTE_VIRT_BASE => ("VIRT_BASE", false),
        XEN_ELFNOTE_INIT_P2M => ("INIT_P2M", false),
        XEN_ELFNOTE_PADDR_OFFSET => ("PADDR_OFFSET", false),
        XEN_ELFNOTE_HV_START_LOW => ("HV_START_LOW", false),
        XEN_ELFNOTE_XEN_VERSION => ("XEN_VERSION", true),
        XEN_ELFNOTE_GUEST_OS => ("GUEST_OS", true),
        XEN_ELFNOTE_GUEST_VERSION => ("GUEST_VERSION", true),
        XEN_ELFNOTE_LOADER => ("LOADER", true),
        XEN_ELFNOTE_PAE_MODE => ("PAE_MODE", true),
        XEN_ELFNOTE_FEATURES => ("FEATURES", true),
        XEN_ELFNOTE_SUPPORTED_FEATURES => ("SUPPORTED_FEATURES", false),
        XEN_ELFNOTE_BSD_SYMTAB => ("BSD_SYMTAB", true),
        XEN_ELFNOTE_L1_MFN_VALID => ("L1_MFN_VALID", false),
        XEN_ELFNOTE_SUSPEND_CANCEL => ("SUSPEND_CANCEL", false),
        XEN_ELFNOTE_MOD_START_PFN => ("MOD_START_PFN", false),
        XEN_ELFNOTE_PHYS32_ENTRY => ("PHYS32_ENTRY", false),
        _ => return None,
    })
}

/// libelf's `struct elf_dom_parms` while parsing: numeric fields use `UNSET_ADDR` exactly as
/// libelf does, so the defaulting rules port one to one.
#[derive(Debug)]
struct Parms {
    /// `virt_base`.
    virt_base: u64,
    /// `virt_entry`.
    virt_entry: u64,
    /// `virt_hypercall`.
    virt_hypercall: u64,
    /// `virt_hv_start_low`.
    virt_hv_start_low: u64,
    /// `p2m_base`.
    p2m_base: u64,
    /// `elf_paddr_offset`.
    elf_paddr_offset: u64,
    /// `phys_entry`.
    phys_entry: u32,
    /// `unmapped_initrd`.
    unmapped_initrd: bool,
    /// `f_supported`.
    f_supported: [u32; XENFEAT_NR_SUBMAPS],
    /// `f_required`.
    f_required: [u32; XENFEAT_NR_SUBMAPS],
    /// `elf_notes[XEN_ELFNOTE_SUPPORTED_FEATURES].type != XEN_ENT_NONE`.
    has_supported_features: bool,
    /// `guest_os`.
    guest_os: String,
    /// `guest_ver`.
    guest_ver: String,
    /// `xen_ver`.
    xen_ver: String,
    /// `loader`.
    loader: String,
    /// `pae`.
    pae: PaeMode,
    /// `bsd_symtab`.
    bsd_symtab: bool,
    /// `L1_MFN_VALID` pairs.
    l1_mfn_valid: Vec<(u64, u64)>,
    /// `SUSPEND_CANCEL`.
    suspend_cancel: bool,
    /// Recognised notes for the log.
    notes: Vec<NoteRecord>,
    /// Warnings for the log.
    warnings: Vec<String>,
    /// Notes seen across all areas (`total_note_count`).
    total_notes: usize,
}

impl Parms {
    /// `elf_xen_parse`'s initial state.
    fn new() -> Self {
        Self {
            virt_base: UNSET_ADDR,
            virt_entry: UNSET_ADDR,
            virt_hypercall: UNSET_ADDR,
            virt_hv_start_low: UNSET_ADDR,
            p2m_base: UNSET_ADDR,
            elf_paddr_offset: UNSET_ADDR,
            phys_entry: UNSET_ADDR32,
            unmapped_initrd: false,
            f_supported: [0; XENFEAT_NR_SUBMAPS],
            f_required: [0; XENFEAT_NR_SUBMAPS],
            has_supported_features: false,
            guest_os: String::new(),
            guest_ver: String::new(),
            xen_ver: String::new(),
            loader: String::new(),
            pae: PaeMode::No,
            bsd_symtab: false,
            l1_mfn_valid: Vec::new(),
            suspend_cancel: false,
            notes: Vec::new(),
            warnings: Vec::new(),
            total_notes: 0,
        }
    }

    /// `elf_xen_parse_note` for one note named `"Xen"`.
    fn parse_note(&mut self, note: &Note<'_>) -> Result<(), NoteError> {
        let Some((name, is_str)) = note_desc(note.n_type) else {
            self.warnings
                .push(format!("ELF: note: unknown ({:#x})", note.n_type));
            return Ok(());
        };
        let mut str_val = String::new();
        let mut num = 0;
        if is_str {
            let (s, terminated) = note_string(note);
            if !terminated {
                self.warnings
                    .push(format!("ELF: note {name}: string is not NUL-terminated"));
            }
            self.notes.push(NoteRecord {
                n_type: Some(note.n_type),
                name: name.to_owned(),
                value: NoteValue::Str(s.clone()),
            });
            str_val = s;
        } else {
            let (v, sized) = note_numeric(note.desc);
            if !sized && note.n_type != XEN_ELFNOTE_L1_MFN_VALID {
                self.warnings.push(format!(
                    "ELF: note {name}: {}-byte value is not 1, 2, 4 or 8 bytes, read as 0",
                    note.desc.len()
                ));
            }
            self.notes.push(NoteRecord {
                n_type: Some(note.n_type),
                name: name.to_owned(),
                value: NoteValue::Num(v),
            });
            num = v;
        }

        match note.n_type {
            XEN_ELFNOTE_LOADER => self.loader = str_val,
            XEN_ELFNOTE_GUEST_OS => self.guest_os = str_val,
            XEN_ELFNOTE_GUEST_VERSION => self.guest_ver = str_val,
            XEN_ELFNOTE_XEN_VERSION => self.xen_ver = str_val,
            XEN_ELFNOTE_PAE_MODE => {
                if str_val == "yes" {
                    self.pae = PaeMode::ExtendedCr3;
                }
                if str_val.contains("bimodal") {
                    self.pae = PaeMode::Bimodal;
                }
            }
            XEN_ELFNOTE_BSD_SYMTAB if str_val == "yes" => self.bsd_symtab = true,
            XEN_ELFNOTE_VIRT_BASE => self.virt_base = num,
            XEN_ELFNOTE_ENTRY => self.virt_entry = num,
            XEN_ELFNOTE_INIT_P2M => self.p2m_base = num,
            XEN_ELFNOTE_MOD_START_PFN => self.unmapped_initrd = num != 0,
            XEN_ELFNOTE_PADDR_OFFSET => self.elf_paddr_offset = num,
            XEN_ELFNOTE_HYPERCALL_PAGE => self.virt_hypercall = num,
            XEN_ELFNOTE_HV_START_LOW => self.virt_hv_start_low = num,
            XEN_ELFNOTE_FEATURES => {
                parse_features(
                    str_val.as_bytes(),
                    &mut self.f_supported,
                    &mut self.f_required,
                )?;
            }
            XEN_ELFNOTE_SUPPORTED_FEATURES => {
                self.has_supported_features = true;
                // elf_note_numeric_array(note, 4, i): only if descsz is a multiple of 4.
                if note.desc.len().is_multiple_of(4) {
                    for (i, word) in self.f_supported.iter_mut().enumerate() {
                        if let Some(b) = note.desc.get(i * 4..i * 4 + 4) {
                            *word |= u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        }
                    }
                }
            }
            XEN_ELFNOTE_L1_MFN_VALID => {
                // libelf only stores this one raw; it is a list of (mask, value) maddr pairs.
                self.l1_mfn_valid = note
                    .desc
                    .chunks_exact(16)
                    .map(|c| {
                        let mut m = [0u8; 8];
                        let mut v = [0u8; 8];
                        m.copy_from_slice(&c[..8]);
                        v.copy_from_slice(&c[8..]);
                        (u64::from_le_bytes(m), u64::from_le_bytes(v))
                    })
                    .collect();
            }
            XEN_ELFNOTE_SUSPEND_CANCEL => self.suspend_cancel = num != 0,
            // libelf keeps phys_entry in 32 bits.
            XEN_ELFNOTE_PHYS32_ENTRY => self.phys_entry = num as u32,
            _ => {}
        }
        Ok(())
    }

    /// `elf_xen_parse_notes`: the Xen notes of one area; returns how many there were.
    fn parse_notes(&mut self, area: &[u8], align: u64) -> Result<usize, NoteError> {
        let mut count = 0;
        for note in NoteIter::new(area, align) {
            if self.total_notes >= MAX_TOTAL_NOTES {
                self.warnings
                    .push("ELF: too many ELF notes, ignoring the rest".to_owned());
                break;
            }
            self.total_notes += 1;
            let note = note?;
            if note.name != b"Xen" {
                continue;
            }
            self.parse_note(&note)?;
            count += 1;
        }
        Ok(count)
    }

    /// `elf_xen_parse_guest_info`: the legacy `KEY=value,KEY=value` string, with libelf's
    /// 31-byte key and 127-byte value limits (overlong ones are split, not rejected).
    fn parse_guest_info(&mut self, info: &[u8]) -> Result<(), NoteError> {
        /// `name[32]` minus the NUL.
        const MAX_KEY: usize = 31;
        /// `value[128]` minus the NUL.
        const MAX_VALUE: usize = 127;
        // The section's end counts as the terminating NUL.
        let at = |h: usize| info.get(h).copied().unwrap_or(0);
        let mut h = 0;
        while at(h) != 0 {
            let mut name = Vec::new();
            let mut value = Vec::new();
            loop {
                if name.len() >= MAX_KEY {
                    break;
                }
                match at(h) {
                    0 => break,
                    b',' => {
                        h += 1;
                        break;
                    }
                    b'=' => {
                        h += 1;
                        loop {
                            if value.len() >= MAX_VALUE {
                                break;
                            }
                            match at(h) {
                                0 => break,
                                b',' => {
                                    h += 1;
                                    break;
                                }
                                c => {
                                    value.push(c);
                                    h += 1;
                                }
                            }
                        }
                        break;
                    }
                    c => {
                        name.push(c);
                        h += 1;
                    }
                }
            }
            let key = String::from_utf8_lossy(&name).into_owned();
            let val = String::from_utf8_lossy(&value).into_owned();
            self.notes.push(NoteRecord {
                n_type: None,
                name: key.clone(),
                value: NoteValue::Str(val.clone()),
            });
            let number = || {
                strtoull(&value).ok_or_else(|| NoteError::NumberOverflow {
                    key: key.clone(),
                    value: val.clone(),
                })
            };
            match key.as_str() {
                "LOADER" => self.loader = val.clone(),
                "GUEST_OS" => self.guest_os = val.clone(),
                "GUEST_VER" => self.guest_ver = val.clone(),
                "XEN_VER" => self.xen_ver = val.clone(),
                "PAE" => {
                    if val == "yes[extended-cr3]" {
                        self.pae = PaeMode::ExtendedCr3;
                    } else if val.starts_with("yes") {
                        self.pae = PaeMode::Yes;
                    }
                }
                "BSD_SYMTAB" => self.bsd_symtab = true,
                "VIRT_BASE" => self.virt_base = number()?,
                "VIRT_ENTRY" => self.virt_entry = number()?,
                "ELF_PADDR_OFFSET" => self.elf_paddr_offset = number()?,
                // A page number here, unlike the note's virtual address.
                "HYPERCALL_PAGE" => self.virt_hypercall = number()? << 12,
                "FEATURES" => {
                    parse_features(&value, &mut self.f_supported, &mut self.f_required)?;
                }
                _ => {}
            }
        }
        if self.virt_base != UNSET_ADDR && self.virt_hypercall != UNSET_ADDR {
            self.virt_hypercall = self.virt_hypercall.wrapping_add(self.virt_base);
        }
        Ok(())
    }
}

/// Xen's `simple_strtoull(s, NULL, 0)` (which libelf's `strtoull` is inside Xen): `0x`
/// followed by a hex digit means hex, a leading `0` octal, else decimal; parsing stops at the
/// first non-digit, and no digits give 0. `None` on overflow, where Xen would wrap.
fn strtoull(s: &[u8]) -> Option<u64> {
    let (base, digits) = match s {
        [b'0', b'x' | b'X', d, ..] if d.is_ascii_hexdigit() => (16, &s[2..]),
        [b'0', ..] => (8, &s[1..]),
        _ => (10, s),
    };
    let mut v: u64 = 0;
    for &c in digits {
        let Some(d) = (c as char).to_digit(16).filter(|&d| d < base) else {
            break;
        };
        v = v.checked_mul(u64::from(base))?.checked_add(u64::from(d))?;
    }
    Some(v)
}

/// `elf_parse_bsdsyms`: the physical extent of the symbol table block Xen appends after the
/// image for `BSD_SYMTAB` kernels, or `None` when there is no usable symbol table.
fn bsd_symtab_range(elf: &Elf64<'_>, pend: u64) -> Option<(u64, u64)> {
    /// 8-byte rounding (`elf_round_up` for 64-bit images).
    fn round8(v: u64) -> u64 {
        v.wrapping_add(7) & !7
    }
    // elf_init's sym_tab: the first SHT_SYMTAB whose sh_link names an existing section.
    let symtab = elf
        .section_headers()
        .find(|sh| sh.sh_type == SHT_SYMTAB && elf.section_header(sh.sh_link as usize).is_some())?;
    let strtab = elf.section_header(symtab.sh_link as usize)?;
    if strtab.sh_type != SHT_STRTAB {
        return None;
    }
    // u32 size + struct elf_sym_header up to its section array (8 + Elf64_Ehdr) + 3 Shdrs.
    let mut sz: u64 = 4 + (8 + 64) + 3 * 64;
    sz = round8(sz);
    sz = round8(sz.wrapping_add(symtab.sh_size));
    sz = round8(sz.wrapping_add(strtab.sh_size));
    let start = round8(pend);
    Some((start, start.wrapping_add(sz)))
}

/// `elf_xen_parse` for a PV guest, followed by its checks: reads the Xen guest description
/// of `elf` and computes the kernel's virtual extent.
pub fn parse(elf: &Elf64<'_>) -> Result<XenGuestInfo, NoteError> {
    let mut p = Parms::new();
    let mut xen_notes = 0;
    // libelf's elf_note_start: set once any note area has been scanned.
    let mut notes_scanned = false;
    let mut source = NoteSource::NoXenNotes;

    for ph in elf.program_headers() {
        // "Some versions of binutils do not correctly set p_offset for note segments."
        if ph.p_type != PT_NOTE || ph.p_offset == 0 {
            continue;
        }
        notes_scanned = true;
        let Some(area) = elf.segment_data(&ph) else {
            p.warnings.push(format!(
                "ELF: note segment {} lies outside the image",
                ph.index
            ));
            continue;
        };
        xen_notes += p.parse_notes(area, ph.p_align)?;
    }
    if xen_notes > 0 {
        source = NoteSource::Segments;
    } else {
        // Fall back to SHT_NOTE sections (index 0 is the null section).
        for sh in elf.section_headers().skip(1) {
            if sh.sh_type != SHT_NOTE {
                continue;
            }
            notes_scanned = true;
            let area = elf.section_data(&sh)?;
            xen_notes += p.parse_notes(area, sh.sh_addralign)?;
        }
        if xen_notes > 0 {
            source = NoteSource::Sections;
            p.warnings
                .push("ELF: using notes from SHT_NOTE section".to_owned());
        }
    }
    if xen_notes == 0
        && let Some(sh) = elf.section_by_name(b"__xen_guest")
    {
        // Using the legacy interface invalidates elf_note_start, which changes the
        // PADDR_OFFSET default below.
        notes_scanned = false;
        source = NoteSource::LegacyGuestInfo;
        p.parse_guest_info(elf.section_data(&sh)?)?;
    }

    // elf_xen_note_check.
    if !notes_scanned && source != NoteSource::LegacyGuestInfo {
        return Err(NoteError::NotXenImage);
    }
    if !p.loader.starts_with("generic") && !p.guest_os.starts_with("linux") {
        return Err(NoteError::UnsupportedGuest {
            loader: p.loader,
            guest_os: p.guest_os,
        });
    }
    if !p.xen_ver.starts_with("xen-3.0") {
        return Err(NoteError::UnsupportedXenVersion(p.xen_ver));
    }

    // elf_xen_addr_calc_check.
    if p.elf_paddr_offset != UNSET_ADDR && p.virt_base == UNSET_ADDR {
        return Err(NoteError::PaddrOffsetWithoutVirtBase);
    }
    if p.virt_base == UNSET_ADDR {
        p.virt_base = 0;
        p.warnings.push("ELF: VIRT_BASE unset, using 0".to_owned());
    }
    if p.elf_paddr_offset == UNSET_ADDR {
        // Old hypervisors put virt_base in p_paddr for __xen_guest kernels.
        p.elf_paddr_offset = if notes_scanned { 0 } else { p.virt_base };
        p.warnings.push(format!(
            "ELF_PADDR_OFFSET unset, using {:#x}",
            p.elf_paddr_offset
        ));
    }
    let (pstart, pend) = elf.paddr_range();
    let virt_offset = p.virt_base.wrapping_sub(p.elf_paddr_offset);
    let virt_kstart = pstart.wrapping_add(virt_offset);
    let mut virt_kend = pend.wrapping_add(virt_offset);
    if p.virt_entry == UNSET_ADDR {
        p.virt_entry = elf.header().e_entry;
    }
    let mut bsd_range = None;
    if p.bsd_symtab {
        bsd_range = bsd_symtab_range(elf, pend);
        match bsd_range {
            Some((_, end)) => virt_kend = end.wrapping_add(virt_offset),
            None => p
                .warnings
                .push("ELF: BSD_SYMTAB requested but no symbol table".to_owned()),
        }
    }
    if virt_kstart > virt_kend
        || p.virt_entry < virt_kstart
        || p.virt_entry > virt_kend
        || p.virt_base > virt_kstart
    {
        return Err(NoteError::AddressesOutOfBounds {
            virt_base: p.virt_base,
            kstart: virt_kstart,
            kend: virt_kend,
            entry: p.virt_entry,
        });
    }
    if p.p2m_base != UNSET_ADDR && p.p2m_base >= virt_kstart && p.p2m_base < virt_kend {
        return Err(NoteError::P2mInsideKernel {
            p2m_base: p.p2m_base,
        });
    }

    let set = |v: u64| (v != UNSET_ADDR).then_some(v);
    Ok(XenGuestInfo {
        entry: p.virt_entry,
        virt_base: p.virt_base,
        paddr_offset: p.elf_paddr_offset,
        hypercall_page: set(p.virt_hypercall),
        init_p2m: set(p.p2m_base),
        mod_start_pfn: p.unmapped_initrd,
        features_supported: p.f_supported,
        features_required: p.f_required,
        has_supported_features_note: p.has_supported_features,
        guest_os: p.guest_os,
        guest_version: p.guest_ver,
        loader: p.loader,
        xen_version: p.xen_ver,
        pae_mode: p.pae,
        bsd_symtab: p.bsd_symtab,
        hv_start_low: set(p.virt_hv_start_low),
        l1_mfn_valid: p.l1_mfn_valid,
        suspend_cancel: p.suspend_cancel,
        phys32_entry: (p.phys_entry != UNSET_ADDR32).then_some(p.phys_entry),
        virt_offset,
        virt_kstart,
        virt_kend,
        bsd_symtab_range: bsd_range,
        source,
        notes: p.notes,
        warnings: p.warnings,
    })
}
