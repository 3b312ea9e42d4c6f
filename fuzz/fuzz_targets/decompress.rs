//! The decompressor front-ends (gzip, XZ, LZ4 legacy, zstd, none) and format detection.
//! Byte 0 picks the format, byte 1 the size hint and output limit; the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenolith::loader::decompress::{Compression, decompress, detect};

fuzz_target!(|data: &[u8]| {
    let _ = detect(data);
    let [sel, knobs, stream @ ..] = data else {
        return;
    };
    let format = [
        Compression::Gzip,
        Compression::Xz,
        Compression::Lz4,
        Compression::Zstd,
        Compression::None,
    ][usize::from(*sel) % 5];
    let hint = [None, Some(0), Some(stream.len() * 4), Some(usize::MAX)][usize::from(knobs & 3)];
    let limit = [0, 1, 4096, 1 << 20][usize::from((knobs >> 2) & 3)];
    let _ = detect(stream);
    if let Ok(out) = decompress(format, stream, hint, limit) {
        assert!(
            out.len() <= limit.max(stream.len()),
            "{format}: {} bytes of output beyond the limit {limit}",
            out.len()
        );
    }
});
