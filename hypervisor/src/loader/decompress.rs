//! Kernel payload decompressors: gzip, XZ, legacy LZ4 and zstd, selected by magic number.
//!
//! The formats and their framing are those of Linux's `arch/x86/boot/compressed` payloads as
//! Xen 4.17 reads them (`xen/arch/x86/bzimage.c`, `xen/common/decompress.c`, `unxz.c`,
//! `unlz4.c`, `unzstd.c`): Linux appends the decompressed size as a 4-byte little-endian
//! trailer to every compressed payload (for gzip it coincides with the gzip `ISIZE`), so each
//! decoder stops at the end of its *first* stream and ignores what follows, except LZ4's
//! legacy format, whose block sequence has no terminator and is delimited by that trailer.
//!
//! Every decoder writes into memory it grows on demand up to a caller-given limit, so a
//! hostile image cannot make the hypervisor allocate more than that plus the decoder's own
//! state (XZ: a dictionary of at most 64 MiB; zstd: a window no larger than the limit), and
//! running out of memory for the output is an error rather than an abort. A size hint is
//! believed for preallocation only up to a 32:1 ratio, so a lying size field costs nothing.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The default ceiling on a decompressed kernel. Linux kernels are 30-70 MiB unpacked; the
/// x86 boot protocol cannot describe more than 4 GiB anyway.
pub const DEFAULT_LIMIT: usize = 256 << 20;

/// Least scratch space handed to a streaming decoder per call. Small, because the buffer
/// grows geometrically anyway and zero-filling more than a small payload needs is waste.
const MIN_SPARE: usize = 64 << 10;
/// How much output zstd decodes between drains of its window buffer.
const ZSTD_STEP: usize = 1 << 20;

/// Largest dictionary an XZ stream may ask for: `xz -9`'s 64 MiB (Linux uses 32 MiB).
const XZ_MAX_DICT: usize = 64 << 20;

/// Legacy LZ4 (`lz4 -l`) archive magic, little-endian `02 21 4C 18`.
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// Legacy LZ4 block size: every block but the last decompresses to exactly this.
const LZ4_LEGACY_BLOCK: usize = 8 << 20;

/// A compression format Xenolith can decompress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip (RFC 1952) around raw deflate.
    Gzip,
    /// XZ (LZMA2, optionally with the x86 BCJ filter).
    Xz,
    /// LZ4 legacy frame (`lz4 -l`).
    Lz4,
    /// Zstandard.
    Zstd,
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "uncompressed",
            Self::Gzip => "gzip",
            Self::Xz => "XZ",
            Self::Lz4 => "LZ4",
            Self::Zstd => "zstd",
        })
    }
}

/// A decompression failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecompressError {
    /// A format Xen accepts but Xenolith does not implement.
    Unsupported(&'static str),
    /// The stream ends before it is complete.
    Truncated(Compression),
    /// The stream is malformed or fails its checksum.
    Corrupt {
        /// Which decoder.
        format: Compression,
        /// What it found.
        detail: String,
    },
    /// The output would exceed the limit.
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The allocator could not provide the output buffer.
    OutOfMemory {
        /// Bytes requested.
        bytes: usize,
    },
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsupported(name) => write!(f, "{name}-compressed kernels are not supported"),
            Self::Truncated(c) => write!(f, "{c} data is truncated"),
            Self::Corrupt { format, detail } => write!(f, "{format} data is corrupt: {detail}"),
            Self::TooLarge { limit } => write!(
                f,
                "decompressed kernel would exceed the {} MiB limit",
                limit >> 20
            ),
            Self::OutOfMemory { bytes } => {
                write!(f, "out of memory allocating {bytes} bytes for the kernel")
            }
        }
    }
}

/// Shorthand for a [`DecompressError::Corrupt`].
fn corrupt(format: Compression, detail: impl fmt::Display) -> DecompressError {
    DecompressError::Corrupt {
        format,
        detail: detail.to_string(),
    }
}

/// Identifies the compression of `data` by magic number, in Xen's order of checks.
///
/// `Ok(None)` means no known magic; formats Xen supports that we do not (bzip2, LZMA, LZO)
/// are an [`DecompressError::Unsupported`] error so the message names them.
pub fn detect(data: &[u8]) -> Result<Option<Compression>, DecompressError> {
    let starts = |m: &[u8]| data.starts_with(m);
    Ok(Some(if starts(b"\x1f\x8b") || starts(b"\x1f\x9e") {
        Compression::Gzip
    } else if starts(b"BZh") {
        return Err(DecompressError::Unsupported("bzip2"));
    } else if starts(b"\x5d\x00") {
        return Err(DecompressError::Unsupported("LZMA"));
    } else if starts(b"\xfd7zXZ\x00") {
        Compression::Xz
    } else if starts(b"\x89LZO\x00\r\n\x1a\n") {
        return Err(DecompressError::Unsupported("LZO"));
    } else if starts(b"\x02\x21\x4c\x18") {
        Compression::Lz4
    } else if starts(b"\x28\xb5\x2f\xfd") {
        Compression::Zstd
    } else {
        return Ok(None);
    }))
}

/// Decompresses `data` as `format`.
///
/// `size_hint` (Linux's size trailer, when the caller has one) only sizes the first
/// allocation; `limit` caps the output. `Compression::None` copies the input.
pub fn decompress(
    format: Compression,
    data: &[u8],
    size_hint: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    match format {
        Compression::None => {
            let mut out = Output::new(Some(data.len()), data.len(), limit)?;
            out.extend(data)?;
            Ok(out.finish())
        }
        Compression::Gzip => gunzip(data, size_hint, limit),
        Compression::Xz => unxz(data, size_hint, limit),
        Compression::Lz4 => unlz4_legacy(data, size_hint, limit),
        Compression::Zstd => unzstd(data, size_hint, limit),
    }
}

/// Largest compression ratio for which a size hint is believed when preallocating. Kernels
/// compress 3-8x; a hint beyond this is likely damage or malice, so the buffer then grows
/// only as output actually appears (still bounded by the limit).
const MAX_TRUSTED_RATIO: usize = 32;

/// An output buffer that grows (zero-filled, fallibly) up to a limit.
///
/// `buf.len()` is the initialised size handed to decoders; `len` is how much is real output.
struct Output {
    /// The buffer; bytes beyond `len` are zeroed scratch for decoders to write into.
    buf: Vec<u8>,
    /// Bytes of real output.
    len: usize,
    /// Maximum output size.
    limit: usize,
    /// Expected final size, used for the first allocation.
    expected: usize,
}

impl Output {
    /// Reserves (without initialising) room for the expected output of `input_len` bytes of
    /// input: `hint` if plausible, else four times the input; never more than `limit`.
    fn new(hint: Option<usize>, input_len: usize, limit: usize) -> Result<Self, DecompressError> {
        let believable = input_len.saturating_mul(MAX_TRUSTED_RATIO);
        let expected = hint
            .filter(|&h| h <= believable)
            .unwrap_or(input_len.saturating_mul(4))
            .min(limit);
        let mut buf = Vec::new();
        buf.try_reserve_exact(expected)
            .map_err(|_| DecompressError::OutOfMemory { bytes: expected })?;
        Ok(Self {
            buf,
            len: 0,
            limit,
            expected,
        })
    }

    /// Ensures at least `want` bytes (or whatever remains up to the limit, if less) of zeroed
    /// scratch follow the output; fails with `TooLarge` if the limit leaves no room at all.
    fn spare(&mut self, want: usize) -> Result<&mut [u8], DecompressError> {
        let room = self.limit - self.len;
        if room == 0 {
            return Err(DecompressError::TooLarge { limit: self.limit });
        }
        let want = want.min(room);
        if self.buf.len() - self.len < want {
            // The expected size at once, past it geometrically (by at most 64 MiB a step),
            // never past the limit.
            let doubled = self
                .buf
                .len()
                .saturating_mul(2)
                .min(self.buf.len() + (64 << 20));
            let target = (self.len + want)
                .max(self.expected)
                .max(doubled)
                .min(self.limit);
            let extra = target - self.buf.len();
            self.buf
                .try_reserve_exact(extra)
                .map_err(|_| DecompressError::OutOfMemory { bytes: target })?;
            self.buf.resize(target, 0);
        }
        Ok(&mut self.buf[self.len..])
    }

    /// How much more output the expected size foresees.
    fn expected_remaining(&self) -> usize {
        self.expected.saturating_sub(self.len)
    }

    /// Records that `n` bytes of the scratch area are now output.
    fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.buf.len());
    }

    /// Appends `data`.
    fn extend(&mut self, data: &[u8]) -> Result<(), DecompressError> {
        if data.len() > self.limit - self.len {
            return Err(DecompressError::TooLarge { limit: self.limit });
        }
        let spare = self.spare(data.len())?;
        spare[..data.len()].copy_from_slice(data);
        self.advance(data.len());
        Ok(())
    }

    /// The output, trimmed of scratch.
    fn finish(mut self) -> Vec<u8> {
        self.buf.truncate(self.len);
        self.buf
    }
}

/// The CRC-32 (IEEE 802.3, reflected) table gzip uses.
const CRC32_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32 of `data` as gzip stores it.
pub fn crc32(data: &[u8]) -> u32 {
    !data.iter().fold(!0u32, |c, &b| {
        CRC32_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// gzip header flag: header CRC16 present (RFC 1952; old gzip's "continuation").
const FHCRC: u8 = 0x02;
/// gzip header flag: extra field present.
const FEXTRA: u8 = 0x04;
/// gzip header flag: original file name present.
const FNAME: u8 = 0x08;
/// gzip header flag: comment present.
const FCOMMENT: u8 = 0x10;
/// gzip header flags no producer may set (old gzip's "encrypted" and reserved bits).
const FRESERVED: u8 = 0xe0;

/// Decompresses one gzip member: parses the RFC 1952 header, inflates the deflate stream
/// with miniz_oxide and verifies the CRC-32 and length trailer, as Xen's `gunzip()` does.
/// Trailing bytes after the member are ignored.
pub fn gunzip(
    data: &[u8],
    size_hint: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    use miniz_oxide::inflate::TINFLStatus;
    use miniz_oxide::inflate::core::{DecompressorOxide, decompress, inflate_flags};

    const GZ: Compression = Compression::Gzip;
    let truncated = DecompressError::Truncated(GZ);
    if data.len() < 10 {
        return Err(truncated);
    }
    if data[0] != 0x1f || (data[1] != 0x8b && data[1] != 0x9e) {
        return Err(corrupt(GZ, "bad magic"));
    }
    if data[2] != 8 {
        return Err(corrupt(GZ, format_args!("unknown method {}", data[2])));
    }
    let flags = data[3];
    if flags & FRESERVED != 0 {
        return Err(corrupt(
            GZ,
            format_args!("reserved header flags {flags:#04x} set"),
        ));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = data
            .get(pos..pos + 2)
            .ok_or(DecompressError::Truncated(GZ))?;
        pos += 2 + usize::from(u16::from_le_bytes([xlen[0], xlen[1]]));
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let nul = data.get(pos..).and_then(|s| s.iter().position(|&b| b == 0));
            pos += nul.ok_or(DecompressError::Truncated(GZ))? + 1;
        }
    }
    if flags & FHCRC != 0 {
        pos += 2;
    }
    let mut input = data.get(pos..).ok_or(DecompressError::Truncated(GZ))?;

    let mut out = Output::new(size_hint, data.len(), limit)?;
    // ~11 KiB of state: keep it off the (small) hypervisor stack.
    let mut inflater = Box::<DecompressorOxide>::default();
    // The whole output so far is the window (non-wrapping), so back-references just work
    // while the buffer grows. No HAS_MORE_INPUT: all input is here.
    let dflags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    loop {
        out.spare(MIN_SPARE)?;
        let (status, consumed, written) =
            decompress(&mut inflater, input, &mut out.buf, out.len, dflags);
        input = input.get(consumed..).unwrap_or_default();
        out.advance(written);
        match status {
            TINFLStatus::Done => break,
            // Output space ran out: loop to grow it (or hit the limit).
            TINFLStatus::HasMoreOutput => {}
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(truncated);
            }
            other => return Err(corrupt(GZ, format_args!("inflate failed ({other:?})"))),
        }
    }
    let trailer = input.get(..8).ok_or(DecompressError::Truncated(GZ))?;
    let want_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let want_len = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let out = out.finish();
    let crc = crc32(&out);
    if crc != want_crc {
        return Err(corrupt(
            GZ,
            format_args!("CRC {crc:#010x}, expected {want_crc:#010x}"),
        ));
    }
    // ISIZE is the length modulo 2^32.
    if out.len() as u32 != want_len {
        return Err(corrupt(
            GZ,
            format_args!("length {:#x}, trailer says {want_len:#x}", out.len()),
        ));
    }
    Ok(out)
}

/// Decompresses the first XZ stream in `data` (Linux builds it with `--check=crc32 --x86
/// --lzma2`), verifying its checks; bytes after the stream footer (Linux's size trailer) are
/// ignored, as in Xen's single-call `unxz`.
pub fn unxz(
    data: &[u8],
    size_hint: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    use xz4rust::{DICT_SIZE_MIN, XzDecoder, XzError, XzNextBlockResult};

    const XZ: Compression = Compression::Xz;
    let mut out = Output::new(size_hint, data.len(), limit)?;
    // The dictionary starts small and is sized to the stream's declared dictionary (at most
    // XZ_MAX_DICT) when the first LZMA2 chunk resets it.
    let mut dec = XzDecoder::in_heap_with_alloc_dict_size(DICT_SIZE_MIN, XZ_MAX_DICT);
    let mut input = data;
    loop {
        let spare = out.spare(MIN_SPARE)?;
        let result = dec.decode(input, spare).map_err(|e| match e {
            XzError::NeedsLargerInputBuffer => DecompressError::Truncated(XZ),
            e => corrupt(XZ, e),
        })?;
        let (consumed, written) = (result.input_consumed(), result.output_produced());
        input = input.get(consumed..).unwrap_or_default();
        out.advance(written);
        match result {
            XzNextBlockResult::EndOfStream(..) => return Ok(out.finish()),
            XzNextBlockResult::NeedMoreData(..) => {
                // There was output room (`spare` never returns an empty slice), so no
                // progress at all means the input ran out mid-stream.
                if consumed == 0 && written == 0 {
                    return Err(DecompressError::Truncated(XZ));
                }
            }
        }
    }
}

/// Decompresses a legacy LZ4 archive exactly as Xen's `unlz4` delimits it: the last 4 bytes
/// of `data` are Linux's size trailer and are not input; after the magic come
/// `[u32 LE length][block]` records (a repeated magic is skipped, as concatenated archives
/// have one each) until the input is consumed exactly. Each block decompresses to at most
/// 8 MiB.
pub fn unlz4_legacy(
    data: &[u8],
    size_hint: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    const LZ4: Compression = Compression::Lz4;
    let read_u32 = |d: &[u8], at: usize| {
        d.get(at..at + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    // Xen: `size = in_len -= 4`, the trailer is excluded.
    let input = data
        .get(..data.len().saturating_sub(4))
        .filter(|i| i.len() >= 4)
        .ok_or(DecompressError::Truncated(LZ4))?;
    if read_u32(input, 0) != Some(LZ4_LEGACY_MAGIC) {
        return Err(corrupt(LZ4, "invalid header"));
    }
    let mut out = Output::new(size_hint, data.len(), limit)?;
    let mut pos = 4;
    while pos < input.len() {
        let chunk = read_u32(input, pos).ok_or(DecompressError::Truncated(LZ4))?;
        pos += 4;
        if chunk == LZ4_LEGACY_MAGIC {
            continue;
        }
        let block = usize::try_from(chunk)
            .ok()
            .and_then(|n| input.get(pos..pos.checked_add(n)?))
            .ok_or(DecompressError::Truncated(LZ4))?;
        pos += block.len();
        // LZ4 expands at most 255-fold (a run-length byte of 255 per input byte), so a short,
        // possibly hostile block never gets 8 MiB of scratch. Try first with what the size
        // hint leaves (right for real kernels), then with the bound.
        let bound = block
            .len()
            .saturating_mul(255)
            .saturating_add(64)
            .min(LZ4_LEGACY_BLOCK);
        let first = out.expected_remaining().clamp(MIN_SPARE.min(bound), bound);
        let mut result = Err(DecompressError::TooLarge { limit });
        for want in [first, bound] {
            let spare = out.spare(want)?;
            let window = spare.len().min(want);
            result =
                lz4_flex::block::decompress_into(block, &mut spare[..window]).map_err(
                    |e| match e {
                        lz4_flex::block::DecompressError::OutputTooSmall { .. }
                            if window < bound =>
                        {
                            DecompressError::TooLarge { limit }
                        }
                        e => corrupt(LZ4, e),
                    },
                );
            // Retry only when the first window was merely too small.
            if !matches!(result, Err(DecompressError::TooLarge { .. })) || window >= bound {
                break;
            }
        }
        let n = result?;
        out.advance(n);
    }
    Ok(out.finish())
}

/// The window size a zstd frame header declares (RFC 8878 §3.1.1.1), or `None` if `data`
/// does not start with a well-formed frame header.
fn zstd_window_size(data: &[u8]) -> Option<u64> {
    let fhd = *data.get(4)?;
    let single_segment = fhd & 0x20 != 0;
    if fhd & 0x08 != 0 {
        return None; // reserved bit
    }
    if !single_segment {
        let wd = *data.get(5)?;
        let log = 10 + u32::from(wd >> 3);
        let base = 1u64 << log;
        return Some(base + (base / 8) * u64::from(wd & 7));
    }
    // Single segment: the window is the frame content size.
    let dict_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let fcs_at = 5 + dict_len;
    Some(match fhd >> 6 {
        0 => u64::from(*data.get(fcs_at)?),
        1 => {
            u64::from(u16::from_le_bytes(
                data.get(fcs_at..fcs_at + 2)?.try_into().ok()?,
            )) + 256
        }
        2 => u64::from(u32::from_le_bytes(
            data.get(fcs_at..fcs_at + 4)?.try_into().ok()?,
        )),
        _ => u64::from_le_bytes(data.get(fcs_at..fcs_at + 8)?.try_into().ok()?),
    })
}

/// Decompresses the first zstd frame in `data` (Linux: `zstd -22 --ultra`, a 128 MiB window)
/// and verifies its content checksum when present; trailing bytes are ignored, as in Linux's
/// single-call `decompress_single`.
pub fn unzstd(
    data: &[u8],
    size_hint: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

    const ZSTD: Compression = Compression::Zstd;
    // The decoder must keep a window's worth of output before releasing any, so the window
    // is what it allocates: refuse windows beyond the output limit before it starts.
    let window = zstd_window_size(data).ok_or_else(|| corrupt(ZSTD, "bad frame header"))?;
    if window > limit as u64 {
        return Err(corrupt(
            ZSTD,
            format_args!(
                "window of {window} bytes exceeds the {} MiB limit",
                limit >> 20
            ),
        ));
    }
    let mut out = Output::new(size_hint, data.len(), limit)?;
    let mut input = data;
    // A fresh decoder's init applies only the checks above (not ruzstd's 100 MiB window cap,
    // which would refuse Linux's 128 MiB window).
    let mut dec = FrameDecoder::new();
    dec.init(&mut input).map_err(|e| corrupt(ZSTD, e))?;
    loop {
        let finished = dec
            .decode_blocks(&mut input, BlockDecodingStrategy::UptoBytes(ZSTD_STEP))
            .map_err(|e| match e {
                ruzstd::decoding::errors::FrameDecoderError::FailedToReadBlockHeader(_)
                    if input.is_empty() =>
                {
                    DecompressError::Truncated(ZSTD)
                }
                e => corrupt(ZSTD, e),
            })?;
        if let Some(chunk) = dec.collect() {
            out.extend(&chunk)?;
        }
        if finished {
            break;
        }
    }
    if let (Some(want), Some(got)) = (dec.get_checksum_from_data(), dec.get_calculated_checksum())
        && want != got
    {
        return Err(corrupt(
            ZSTD,
            format_args!("checksum {got:#010x}, expected {want:#010x}"),
        ));
    }
    Ok(out.finish())
}
