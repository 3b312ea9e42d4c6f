//! Unwrapping the dom0 kernel module: a Linux bzImage, a bare compressed ELF, or a plain ELF.
//!
//! A port of Xen 4.17's `xen/arch/x86/bzimage.c` (`bzimage_check`, `bzimage_parse`): a
//! bzImage is recognised by `HdrS` at offset 0x202 and must speak boot protocol 2.08 or later,
//! which added `payload_offset`/`payload_length` (Linux `arch/x86/boot/header.S`). The payload
//! starts `(setup_sects + 1) * 512 + payload_offset` bytes in. If it (or a non-bzImage module)
//! is already an ELF file it is used in place; otherwise it is decompressed by magic number,
//! and its last four bytes, Linux's little-endian size trailer, give the expected size.

use alloc::borrow::Cow;
use core::fmt;

use super::LoadError;
use super::decompress::{self, Compression, DEFAULT_LIMIT, DecompressError};
use super::elf::{u16_at, u32_at};

/// Offset of `setup_sects` in the real-mode header.
const SETUP_SECTS: usize = 0x1f1;
/// Offset of the `HdrS` signature.
const HEADER: usize = 0x202;
/// Offset of the boot protocol version.
const VERSION: usize = 0x206;
/// Offset of `payload_offset` (protocol 2.08+).
const PAYLOAD_OFFSET: usize = 0x248;
/// Offset of `payload_length` (protocol 2.08+).
const PAYLOAD_LENGTH: usize = 0x24c;
/// Xen's `sizeof(struct setup_header)`: an image shorter than this is not a bzImage.
const SETUP_HEADER_SIZE: usize = 0x250;
/// Oldest boot protocol with a payload description.
const MIN_VERSION: u16 = 0x0208;

/// The bzImage setup-header fields the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImageHeader {
    /// 512-byte sectors of real-mode setup code after the boot sector.
    pub setup_sects: u8,
    /// Boot protocol version (`0x020f` is 2.15).
    pub version: u16,
    /// Payload offset from the start of the protected-mode code.
    pub payload_offset: u32,
    /// Payload length in bytes.
    pub payload_length: u32,
}

impl BzImageHeader {
    /// Offset of the payload in the image, as Xen computes it. (Xen does not apply the boot
    /// protocol's "0 means 4" rule for `setup_sects`; no 2.08+ kernel has 0.)
    pub fn payload_start(&self) -> u64 {
        (u64::from(self.setup_sects) + 1) * 512 + u64::from(self.payload_offset)
    }
}

/// What is wrong with a bzImage's framing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BzImageError {
    /// Boot protocol older than 2.08.
    TooOld {
        /// The protocol version.
        version: u16,
    },
    /// The payload lies (partly) outside the image.
    PayloadOutOfBounds {
        /// Payload start offset.
        start: u64,
        /// Payload length.
        len: u32,
        /// Image length.
        image_len: usize,
    },
    /// The decompressed size differs from the payload's size trailer.
    SizeMismatch {
        /// Size from the trailer.
        expected: usize,
        /// Size decompressed.
        actual: usize,
    },
}

impl fmt::Display for BzImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooOld { version } => write!(
                f,
                "Cannot load bzImage v{}.{:02} at least v2.08 is required",
                version >> 8,
                version & 0xff
            ),
            Self::PayloadOutOfBounds {
                start,
                len,
                image_len,
            } => write!(
                f,
                "bzImage payload {start:#x}+{len:#x} lies outside the {image_len}-byte image"
            ),
            Self::SizeMismatch { expected, actual } => write!(
                f,
                "bzImage payload decompressed to {actual} bytes, its size trailer says {expected}"
            ),
        }
    }
}

/// How the kernel was packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelFormat {
    /// A plain ELF module.
    Elf,
    /// A bzImage whose payload was compressed as given (`Compression::None`: a plain ELF).
    BzImage {
        /// Boot protocol version.
        version: u16,
        /// Payload compression.
        compression: Compression,
    },
    /// A compressed ELF without a bzImage wrapper.
    Compressed(Compression),
}

impl KernelFormat {
    /// The payload compression.
    pub fn compression(&self) -> Compression {
        match *self {
            Self::Elf => Compression::None,
            Self::BzImage { compression, .. } | Self::Compressed(compression) => compression,
        }
    }
}

impl fmt::Display for KernelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Elf => write!(f, "ELF"),
            Self::BzImage {
                version,
                compression,
            } => write!(
                f,
                "bzImage v{}.{:02}, {compression} payload",
                version >> 8,
                version & 0xff
            ),
            Self::Compressed(c) => write!(f, "{c}-compressed ELF"),
        }
    }
}

/// The kernel ELF extracted from a boot module.
#[derive(Clone, Debug)]
pub struct KernelImage<'a> {
    /// The ELF bytes: borrowed from the module when it was not compressed.
    pub elf: Cow<'a, [u8]>,
    /// How it was packaged.
    pub format: KernelFormat,
    /// Size of the (possibly compressed) payload in the module.
    pub payload_len: usize,
}

/// Reads the bzImage header, Xen's `bzimage_check`: `Ok(None)` if `image` is not a bzImage.
pub fn parse_header(image: &[u8]) -> Result<Option<BzImageHeader>, BzImageError> {
    if image.len() < SETUP_HEADER_SIZE || image.get(HEADER..HEADER + 4) != Some(b"HdrS") {
        return Ok(None);
    }
    // The length check above covers every field read here.
    let version = u16_at(image, VERSION).unwrap_or(0);
    if version < MIN_VERSION {
        return Err(BzImageError::TooOld { version });
    }
    Ok(Some(BzImageHeader {
        setup_sects: image[SETUP_SECTS],
        version,
        payload_offset: u32_at(image, PAYLOAD_OFFSET).unwrap_or(0),
        payload_length: u32_at(image, PAYLOAD_LENGTH).unwrap_or(0),
    }))
}

/// Extracts the kernel ELF from a boot module with the default 256 MiB output limit.
pub fn unwrap_kernel(image: &[u8]) -> Result<KernelImage<'_>, LoadError> {
    unwrap_kernel_with_limit(image, DEFAULT_LIMIT)
}

/// Extracts the kernel ELF from a boot module, decompressing at most `limit` bytes.
///
/// Accepts what Xen's `bzimage_parse` accepts: a plain ELF, a bzImage (2.08+) with an ELF or
/// compressed-ELF payload, or a bare compressed ELF. The result is not yet validated as ELF.
pub fn unwrap_kernel_with_limit(image: &[u8], limit: usize) -> Result<KernelImage<'_>, LoadError> {
    let header = parse_header(image)?;
    let payload = match header {
        Some(h) => {
            let out_of_bounds = BzImageError::PayloadOutOfBounds {
                start: h.payload_start(),
                len: h.payload_length,
                image_len: image.len(),
            };
            let start = usize::try_from(h.payload_start()).map_err(|_| out_of_bounds.clone())?;
            let len = h.payload_length as usize;
            start
                .checked_add(len)
                .and_then(|end| image.get(start..end))
                .ok_or(out_of_bounds)?
        }
        None => image,
    };
    let wrap = |compression| match header {
        Some(h) => KernelFormat::BzImage {
            version: h.version,
            compression,
        },
        None if compression == Compression::None => KernelFormat::Elf,
        None => KernelFormat::Compressed(compression),
    };
    if payload.starts_with(b"\x7fELF") {
        return Ok(KernelImage {
            elf: Cow::Borrowed(payload),
            format: wrap(Compression::None),
            payload_len: payload.len(),
        });
    }
    let Some(compression) = decompress::detect(payload)? else {
        let mut magic = [0u8; 4];
        for (m, b) in magic.iter_mut().zip(payload) {
            *m = *b;
        }
        return Err(LoadError::UnknownFormat {
            bzimage: header.is_some(),
            magic,
        });
    };
    // Linux's size trailer (for gzip, the ISIZE field).
    let trailer = payload
        .len()
        .checked_sub(4)
        .and_then(|at| u32_at(payload, at))
        .ok_or(DecompressError::Truncated(compression))? as usize;
    if header.is_some() && trailer > limit {
        return Err(DecompressError::TooLarge { limit }.into());
    }
    // Only a bzImage is sure to carry the trailer; a bare gzip stream ends in ISIZE and Xen
    // treats a bare LZ4 stream's last word as one, but bare XZ/zstd streams end in their own
    // footer, which is no size.
    let has_trailer =
        header.is_some() || matches!(compression, Compression::Gzip | Compression::Lz4);
    let hint = has_trailer.then_some(trailer);
    let elf = decompress::decompress(compression, payload, hint, limit)?;
    // Xen takes the trailer as the ELF's size; a payload that disagrees is damaged.
    if header.is_some() && elf.len() != trailer {
        return Err(BzImageError::SizeMismatch {
            expected: trailer,
            actual: elf.len(),
        }
        .into());
    }
    Ok(KernelImage {
        elf: Cow::Owned(elf),
        format: wrap(compression),
        payload_len: payload.len(),
    })
}
