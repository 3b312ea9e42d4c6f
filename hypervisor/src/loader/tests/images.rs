//! bzImage framing and every payload compressor.

use std::borrow::Cow;

use super::builder::*;
use crate::loader::bzimage::{self, BzImageError, KernelFormat};
use crate::loader::decompress::{self, Compression, DecompressError};
use crate::loader::{LoadError, inspect, inspect_with_limit, unwrap_kernel};

/// The synthetic kernel every image test wraps.
fn kernel() -> Vec<u8> {
    ElfBuilder::linux().build()
}

/// Compresses `elf` as `c`.
fn compress(c: Compression, elf: &[u8]) -> Vec<u8> {
    match c {
        Compression::None => elf.to_vec(),
        Compression::Gzip => gzip(elf),
        Compression::Xz => xz(elf),
        Compression::Lz4 => lz4_legacy(elf),
        Compression::Zstd => zstd(elf),
    }
}

/// A bzImage around `elf` compressed as `c`, with Linux's size trailer.
fn bz(c: Compression, elf: &[u8]) -> Vec<u8> {
    // gzip's own ISIZE is the trailer; the others get one appended.
    let trailer = match c {
        Compression::None | Compression::Gzip => None,
        _ => Some(elf.len() as u32),
    };
    bzimage(&compress(c, elf), trailer, 0x020f)
}

const ALL: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Xz,
    Compression::Lz4,
    Compression::Zstd,
];

#[test]
fn bzimage_with_every_compressor() {
    let elf = kernel();
    for c in ALL {
        let img = bz(c, &elf);
        let k = unwrap_kernel(&img).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(
            k.format,
            KernelFormat::BzImage {
                version: 0x020f,
                compression: c
            }
        );
        assert_eq!(&k.elf[..], &elf[..], "{c}");
        assert_eq!(matches!(k.elf, Cow::Borrowed(_)), c == Compression::None);
        let loaded = inspect(&img).unwrap();
        assert_eq!(loaded.info.entry, ENTRY);
        let summary = loaded.to_string();
        assert!(
            summary.contains(&format!("bzImage v2.15, {c} payload")),
            "{summary}"
        );
    }
}

#[test]
fn bare_compressed_modules() {
    let elf = kernel();
    // gzip and LZ4 carry (or, for LZ4, Xen demands) a trailing size; XZ and zstd streams are
    // self-delimiting.
    for (c, data) in [
        (Compression::Gzip, gzip(&elf)),
        (Compression::Xz, xz(&elf)),
        (
            Compression::Lz4,
            [lz4_legacy(&elf), (elf.len() as u32).to_le_bytes().to_vec()].concat(),
        ),
        (Compression::Zstd, zstd(&elf)),
    ] {
        let k = unwrap_kernel(&data).unwrap_or_else(|e| panic!("{c}: {e}"));
        assert_eq!(k.format, KernelFormat::Compressed(c));
        assert_eq!(&k.elf[..], &elf[..]);
    }
    let k = unwrap_kernel(&elf).unwrap();
    assert_eq!(k.format, KernelFormat::Elf);
}

#[test]
fn gzip_from_the_system_tool() {
    // Exactly how Linux builds vmlinux.bin.gz (`gzip -n -f -9`).
    let elf = kernel();
    let gz = run_tool("gzip", &["-n", "-9", "-c"], &elf);
    assert_eq!(decompress::gunzip(&gz, None, 1 << 30).unwrap(), elf);
    let img = bzimage(&gz, None, 0x020f);
    assert_eq!(inspect(&img).unwrap().info.virt_base, VIRT_BASE);
}

#[test]
fn gzip_header_fields() {
    let data = pattern(5000, 9);
    let deflated = miniz_oxide::deflate::compress_to_vec(&data, 6);
    let trailer = [
        decompress::crc32(&data).to_le_bytes(),
        (data.len() as u32).to_le_bytes(),
    ]
    .concat();
    // FEXTRA + FNAME + FCOMMENT + FHCRC, old-gzip magic 1f 9e.
    let mut gz = vec![0x1f, 0x9e, 8, 0x04 | 0x08 | 0x10 | 0x02, 0, 0, 0, 0, 0, 3];
    gz.extend_from_slice(&[3, 0, b'a', b'b', b'c']);
    gz.extend_from_slice(b"name\0comment\0");
    gz.extend_from_slice(&[0x12, 0x34]);
    gz.extend_from_slice(&deflated);
    gz.extend_from_slice(&trailer);
    assert_eq!(decompress::gunzip(&gz, None, 1 << 20).unwrap(), data);
    // Reserved flag bits are refused, as in Xen.
    let mut bad = gz.clone();
    bad[3] |= 0x20;
    assert!(matches!(
        decompress::gunzip(&bad, None, 1 << 20),
        Err(DecompressError::Corrupt { .. })
    ));
    // Bad CRC and bad length.
    let n = gz.len();
    let mut bad = gz.clone();
    bad[n - 8] ^= 1;
    let e = decompress::gunzip(&bad, None, 1 << 20).unwrap_err();
    assert!(e.to_string().contains("CRC"), "{e}");
    let mut bad = gz.clone();
    bad[n - 4] ^= 1;
    assert!(
        decompress::gunzip(&bad, None, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("length")
    );
    // Not deflate.
    let mut bad = gz;
    bad[2] = 7;
    assert!(
        decompress::gunzip(&bad, None, 1 << 20)
            .unwrap_err()
            .to_string()
            .contains("method")
    );
}

#[test]
fn crc32_known_value() {
    assert_eq!(decompress::crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(decompress::crc32(b""), 0);
}

#[test]
fn xz_uses_bcj_and_stops_at_stream_end() {
    let elf = kernel();
    let x = xz(&elf);
    // Block header filter flags: BCJ x86 is filter ID 0x04.
    assert!(
        x[12..24].contains(&0x04),
        "expected a BCJ filter in the block header"
    );
    // Trailing size bytes and garbage after the stream are not input.
    let mut with_trailer = x.clone();
    with_trailer.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(decompress::unxz(&with_trailer, None, 1 << 30).unwrap(), elf);
}

#[test]
fn lz4_legacy_multi_block_and_repeated_magic() {
    // Bigger than one 8 MiB block.
    let data = pattern(9 << 20, 4);
    let l = lz4_legacy(&data);
    let with_trailer = [l.clone(), (data.len() as u32).to_le_bytes().to_vec()].concat();
    assert_eq!(
        decompress::unlz4_legacy(&with_trailer, None, 1 << 30).unwrap(),
        data
    );
    // Two archives concatenated: the second magic is skipped.
    let a = lz4_legacy(&data[..1000]);
    let b = lz4_legacy(&data[1000..3000]);
    let both = [a, b, 3000u32.to_le_bytes().to_vec()].concat();
    assert_eq!(
        decompress::unlz4_legacy(&both, None, 1 << 20).unwrap(),
        &data[..3000]
    );
    // A block that does not end exactly at the trailer is an error (Xen: "data corrupted").
    let short = [&l[..l.len() - 1], &(data.len() as u32).to_le_bytes()[..]].concat();
    assert!(decompress::unlz4_legacy(&short, None, 1 << 30).is_err());
    // A block decompressing to more than 8 MiB is corrupt.
    let big = pattern(9 << 20, 5);
    let block = lz4_flex::block::compress(&big);
    let mut over = 0x184C_2102u32.to_le_bytes().to_vec();
    over.extend_from_slice(&(block.len() as u32).to_le_bytes());
    over.extend_from_slice(&block);
    over.extend_from_slice(&[0; 4]);
    let e = decompress::unlz4_legacy(&over, None, 1 << 30).unwrap_err();
    assert!(
        matches!(
            e,
            DecompressError::Corrupt {
                format: Compression::Lz4,
                ..
            }
        ),
        "{e:?}"
    );
    // Wrong magic.
    assert!(decompress::unlz4_legacy(&[1, 2, 3, 4, 0, 0, 0, 0], None, 100).is_err());
}

#[test]
fn zstd_raw_blocks_and_checksum() {
    let elf = kernel();
    let raw = zstd_raw_blocks(&elf);
    assert_eq!(decompress::unzstd(&raw, None, 1 << 30).unwrap(), elf);
    let img = bzimage(&raw, Some(elf.len() as u32), 0x020f);
    assert_eq!(inspect(&img).unwrap().info.entry, ENTRY);
    // The encoder's frame carries a checksum; damaging the content is caught.
    let z = zstd(&elf);
    assert_eq!(z[4] & 0x04, 0x04, "encoder frame has a content checksum");
    assert_eq!(decompress::unzstd(&z, None, 1 << 30).unwrap(), elf);
    let mut z_bad = z.clone();
    *z_bad.last_mut().unwrap() ^= 1;
    let e = decompress::unzstd(&z_bad, None, 1 << 30).unwrap_err();
    assert!(e.to_string().contains("checksum"), "{e}");
    let mut raw_bad = raw.clone();
    raw_bad[100] ^= 0xff; // raw block bytes are content; no checksum in this frame
    assert_ne!(decompress::unzstd(&raw_bad, None, 1 << 30).unwrap(), elf);
    // A window larger than the limit is refused before decoding.
    let mut huge = raw;
    huge[5] = (30 - 10) << 3; // 1 GiB window
    assert!(decompress::unzstd(&huge, None, 256 << 20).is_err());
}

#[test]
fn truncated_payloads_error() {
    let elf = kernel();
    for c in [
        Compression::Gzip,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let full = compress(c, &elf);
        let step = (full.len() / 97).max(1);
        // Cuts with the real size appended as Linux's trailer (stopping short of the end, where
        // appending gzip's own ISIZE would restore the stream), then cuts of the last bytes.
        let cuts = (0..full.len() - 8).step_by(step).map(|cut| (cut, true));
        for (cut, trailer) in cuts.chain((full.len() - 8..full.len()).map(|cut| (cut, false))) {
            let part = &full[..cut];
            let img = bzimage(part, trailer.then_some(elf.len() as u32), 0x020f);
            let e = inspect(&img).expect_err(&format!("{c} cut at {cut} accepted"));
            assert!(
                matches!(
                    e,
                    LoadError::Decompress(_)
                        | LoadError::BzImage(_)
                        | LoadError::UnknownFormat { .. }
                ),
                "{c} cut at {cut}: {e:?}"
            );
        }
    }
}

#[test]
fn corrupted_payloads_error() {
    let elf = kernel();
    for c in [Compression::Gzip, Compression::Xz, Compression::Lz4] {
        let full = compress(c, &elf);
        // Flip a byte in the middle of the stream: checksums (gzip CRC32, xz CRC32) or the
        // LZ4 block structure / size trailer must catch it.
        for at in [full.len() / 3, full.len() / 2, full.len() * 2 / 3] {
            let mut bad = full.clone();
            bad[at] ^= 0x55;
            let trailer = if c == Compression::Gzip {
                None
            } else {
                Some(elf.len() as u32)
            };
            let img = bzimage(&bad, trailer, 0x020f);
            match inspect(&img) {
                Err(_) => {}
                // LZ4 has no checksum: a literal byte may change without breaking structure.
                Ok(k) => assert!(c == Compression::Lz4 && k.elf[..] != elf[..], "{c} at {at}"),
            }
        }
    }
}

#[test]
fn size_trailer_must_match() {
    let elf = kernel();
    let img = bzimage(&xz(&elf), Some(elf.len() as u32 + 1), 0x020f);
    let e = unwrap_kernel(&img).unwrap_err();
    assert_eq!(
        e,
        LoadError::BzImage(BzImageError::SizeMismatch {
            expected: elf.len() + 1,
            actual: elf.len()
        })
    );
}

#[test]
fn output_limit_is_enforced() {
    let elf = kernel();
    for c in [
        Compression::Gzip,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        // Claimed size above the limit: refused before decompressing.
        let img = bz(c, &elf);
        let e = inspect_with_limit(&img, 1000).unwrap_err();
        assert_eq!(
            e,
            LoadError::Decompress(DecompressError::TooLarge { limit: 1000 }),
            "{c}"
        );
        // A lying trailer does not get past the limit either.
        let bare = compress(c, &elf);
        let e = decompress::decompress(c, &[&bare[..], &[0, 0, 0, 0]].concat(), Some(10), 1000)
            .unwrap_err();
        assert!(
            matches!(
                e,
                DecompressError::TooLarge { .. } | DecompressError::Corrupt { .. }
            ),
            "{c}: {e:?}"
        );
    }
    assert!(
        DecompressError::TooLarge { limit: 256 << 20 }
            .to_string()
            .contains("256 MiB")
    );
}

#[test]
fn bzimage_header_rules() {
    let elf = kernel();
    // Protocol 2.07 has no payload fields.
    let img = bzimage(&elf, None, 0x0207);
    let e = unwrap_kernel(&img).unwrap_err();
    assert_eq!(
        e,
        LoadError::BzImage(BzImageError::TooOld { version: 0x0207 })
    );
    assert_eq!(
        e.to_string(),
        "Cannot load bzImage v2.07 at least v2.08 is required"
    );
    // Payload running off the end.
    let mut img = bzimage(&elf, None, 0x0208);
    let too_long = img.len() as u32;
    img[0x24c..0x250].copy_from_slice(&too_long.to_le_bytes());
    assert!(matches!(
        unwrap_kernel(&img).unwrap_err(),
        LoadError::BzImage(BzImageError::PayloadOutOfBounds { .. })
    ));
    // Header parse.
    let img = bzimage(&elf, None, 0x020f);
    let h = bzimage::parse_header(&img).unwrap().unwrap();
    assert_eq!(
        (h.setup_sects, h.version, h.payload_offset),
        (3, 0x020f, 0x1234)
    );
    assert_eq!(h.payload_start(), 4 * 512 + 0x1234);
    assert_eq!(bzimage::parse_header(&elf).unwrap(), None);
    assert_eq!(bzimage::parse_header(&img[..0x24f]).unwrap(), None);
}

#[test]
fn unsupported_and_unknown_payloads() {
    for (magic, name) in [
        (&b"BZh91AY&SY"[..], "bzip2"),
        (b"\x5d\x00\x00\x80\x00", "LZMA"),
        (b"\x89LZO\x00\r\n\x1a\n", "LZO"),
    ] {
        let img = bzimage(magic, Some(100), 0x020f);
        let e = unwrap_kernel(&img).unwrap_err();
        assert_eq!(e, LoadError::Decompress(DecompressError::Unsupported(name)));
        assert_eq!(
            e.to_string(),
            format!("{name}-compressed kernels are not supported")
        );
    }
    let img = bzimage(b"\x00\x01\x02\x03 nothing", None, 0x020f);
    let e = unwrap_kernel(&img).unwrap_err();
    assert!(matches!(
        e,
        LoadError::UnknownFormat {
            bzimage: true,
            magic: [0, 1, 2, 3]
        }
    ));
    assert!(e.to_string().starts_with("bzImage payload is neither ELF"));
    // A bzImage whose payload is an ELF that fails validation reports the ELF error.
    let mut b = ElfBuilder::linux();
    b.class = 1;
    let img = bzimage(&b.build(), None, 0x020f);
    assert_eq!(
        inspect(&img).unwrap_err().to_string(),
        "ELF class 32 not supported for a 64-bit PV kernel"
    );
}
