//! Body compressors by header code (spec §5.2), compatible with Seata's Java utilities; one
//! module per format. Decompression is always bounded: output beyond the cap is an error,
//! never an allocation.

use crate::codec::DecodeError;

#[cfg(feature = "bzip2")]
mod bzip2;
#[cfg(feature = "deflater")]
mod deflater;
#[cfg(feature = "gzip")]
mod gzip;
#[cfg(feature = "lz4")]
mod lz4_block;
#[cfg(feature = "lz4")]
mod lz4_frame;
#[cfg(feature = "zip")]
mod zip;
#[cfg(feature = "zstd")]
mod zstd;

/// Cap on a decompressed body; matches the frame limit because Java never builds a larger one.
pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 8 * 1024 * 1024;

pub const COMPRESSOR_NONE: u8 = 0;
pub const COMPRESSOR_GZIP: u8 = 1;
pub const COMPRESSOR_ZIP: u8 = 2;
/// 7z (Seata 1.x only); not implemented.
pub const COMPRESSOR_SEVENZ: u8 = 3;
pub const COMPRESSOR_BZIP2: u8 = 4;
pub const COMPRESSOR_LZ4: u8 = 5;
pub const COMPRESSOR_DEFLATER: u8 = 6;
pub const COMPRESSOR_ZSTD: u8 = 7;

/// Whether `compressor` is a code this build can both compress and decompress.
// The arms only look redundant when every feature is on.
#[allow(clippy::match_like_matches_macro)]
pub fn is_supported(compressor: u8) -> bool {
    match compressor {
        COMPRESSOR_NONE => true,
        COMPRESSOR_GZIP => cfg!(feature = "gzip"),
        COMPRESSOR_ZIP => cfg!(feature = "zip"),
        COMPRESSOR_BZIP2 => cfg!(feature = "bzip2"),
        COMPRESSOR_LZ4 => cfg!(feature = "lz4"),
        COMPRESSOR_DEFLATER => cfg!(feature = "deflater"),
        COMPRESSOR_ZSTD => cfg!(feature = "zstd"),
        _ => false,
    }
}

/// Decompresses `data` produced by compressor `compressor`, failing with
/// [`DecodeError::DecompressedTooLarge`] as soon as the output would exceed `max_len`.
pub fn decompress(compressor: u8, data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    match compressor {
        COMPRESSOR_NONE => {
            if data.len() > max_len {
                return Err(DecodeError::DecompressedTooLarge { limit: max_len });
            }
            Ok(data.to_vec())
        }
        #[cfg(feature = "gzip")]
        COMPRESSOR_GZIP => gzip::decompress(data, max_len),
        #[cfg(feature = "zip")]
        COMPRESSOR_ZIP => zip::decompress(data, max_len),
        #[cfg(feature = "bzip2")]
        COMPRESSOR_BZIP2 => bzip2::decompress(data, max_len),
        // seata-all >= 2.6.0 writes the LZ4 frame format, older releases lz4-java's block
        // stream; the magic tells them apart ("LZ4Block" vs 0x184D2204).
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 if data.starts_with(&lz4_frame::MAGIC) => {
            lz4_frame::decompress(data, max_len)
        }
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 => lz4_block::decompress(data, max_len),
        #[cfg(feature = "deflater")]
        COMPRESSOR_DEFLATER => deflater::decompress(data, max_len),
        #[cfg(feature = "zstd")]
        COMPRESSOR_ZSTD => zstd::decompress(data, max_len),
        other => Err(DecodeError::UnsupportedCompressor(other)),
    }
}

/// Compresses `data` for a peer of `version` the way its Java compressor with code
/// `compressor` does: as [`compress`], except that LZ4 uses the standard LZ4 frame format for
/// clients from 2.6.0 on (seata-all 2.6.0 switched `Lz4Util` to `LZ4FrameOutputStream`, and
/// its decompressor rejects the block stream older releases write and read).
pub fn compress_for(
    compressor: u8,
    data: &[u8],
    version: crate::version::ClientVersion,
) -> Result<Vec<u8>, DecodeError> {
    #[cfg(feature = "lz4")]
    if compressor == COMPRESSOR_LZ4 && version >= crate::version::ClientVersion::V2_6_0 {
        return lz4_frame::compress(data);
    }
    let _ = version;
    compress(compressor, data)
}

/// Compresses `data` the way Seata's Java compressor with code `compressor` does (LZ4: the
/// block stream of releases before 2.6.0; see [`compress_for`]).
pub fn compress(compressor: u8, data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    match compressor {
        COMPRESSOR_NONE => Ok(data.to_vec()),
        #[cfg(feature = "gzip")]
        COMPRESSOR_GZIP => gzip::compress(data),
        #[cfg(feature = "zip")]
        COMPRESSOR_ZIP => zip::compress(data),
        #[cfg(feature = "bzip2")]
        COMPRESSOR_BZIP2 => bzip2::compress(data),
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 => Ok(lz4_block::compress(data)),
        #[cfg(feature = "deflater")]
        COMPRESSOR_DEFLATER => deflater::compress(data),
        #[cfg(feature = "zstd")]
        COMPRESSOR_ZSTD => zstd::compress(data),
        other => Err(DecodeError::UnsupportedCompressor(other)),
    }
}

#[allow(dead_code)] // unused when every compressor feature is disabled
fn io_err(e: std::io::Error) -> DecodeError {
    DecodeError::Decompress(e.to_string())
}

/// Feeds `data` through a streaming encoder and returns its output (`finish` ends the stream).
#[allow(dead_code)] // unused when every stream compressor feature is disabled
fn encode_all<E: std::io::Write>(
    mut encoder: E,
    data: &[u8],
    finish: impl FnOnce(E) -> std::io::Result<Vec<u8>>,
) -> Result<Vec<u8>, DecodeError> {
    encoder.write_all(data).map_err(io_err)?;
    finish(encoder).map_err(io_err)
}

/// Reads a decoder to its end, but never more than `max_len + 1` bytes: the extra byte is how
/// an over-long stream is told apart from one that is exactly at the cap.
#[allow(dead_code)] // unused when every stream compressor feature is disabled
fn read_bounded<R: std::io::Read>(reader: R, max_len: usize) -> Result<Vec<u8>, DecodeError> {
    use std::io::Read;
    let mut out = Vec::new();
    let cap = (max_len as u64).saturating_add(1);
    reader.take(cap).read_to_end(&mut out).map_err(io_err)?;
    if out.len() > max_len {
        return Err(DecodeError::DecompressedTooLarge { limit: max_len });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [u8; 7] = [0, 1, 2, 4, 5, 6, 7];

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..5000u32 {
            v.extend_from_slice(format!("row-{i};").as_bytes());
        }
        v
    }

    #[test]
    fn every_compressor_round_trips() {
        for data in [Vec::new(), b"x".to_vec(), sample()] {
            for code in ALL {
                let packed = compress(code, &data).expect("compress");
                let back = decompress(code, &packed, DEFAULT_MAX_DECOMPRESSED_LEN)
                    .unwrap_or_else(|e| panic!("compressor {code}: {e}"));
                assert_eq!(back, data, "compressor {code}");
            }
        }
    }

    #[test]
    fn cap_is_enforced_for_every_compressor() {
        // 4 MiB of zeros shrinks to a few KiB: a miniature decompression bomb.
        let bomb = vec![0u8; 4 * 1024 * 1024];
        for code in ALL {
            let packed = compress(code, &bomb).expect("compress");
            // lz4-java's 1 KiB blocks cap the ratio near 30:1; the others reach 1000:1.
            let expected_max = if code == COMPRESSOR_LZ4 { 256 } else { 64 } * 1024;
            if code != 0 {
                assert!(
                    packed.len() < expected_max,
                    "compressor {code} did not shrink"
                );
            }
            let result = decompress(code, &packed, 1024 * 1024);
            assert!(
                matches!(result, Err(DecodeError::DecompressedTooLarge { limit }) if limit == 1024 * 1024),
                "compressor {code}: {result:?}"
            );
            // Exactly at the cap is fine.
            let ok = decompress(code, &packed, bomb.len()).expect("at cap");
            assert_eq!(ok.len(), bomb.len());
        }
    }

    #[test]
    fn lz4_format_follows_the_client_version() {
        use crate::version::ClientVersion;
        let old = compress_for(COMPRESSOR_LZ4, b"hello", ClientVersion::new(2, 5, 0)).expect("lz4");
        assert!(old.starts_with(b"LZ4Block"));
        let new = compress_for(COMPRESSOR_LZ4, b"hello", ClientVersion::V2_6_0).expect("lz4");
        assert!(new.starts_with(&[0x04, 0x22, 0x4d, 0x18]));
        for packed in [old, new] {
            assert_eq!(
                decompress(COMPRESSOR_LZ4, &packed, 100).expect("either format"),
                b"hello"
            );
        }
        let gz = compress_for(COMPRESSOR_GZIP, b"hello", ClientVersion::V2_6_0).expect("gzip");
        assert_eq!(
            decompress(COMPRESSOR_GZIP, &gz, 100).expect("gzip"),
            b"hello"
        );
    }

    #[test]
    fn unsupported_codes() {
        for code in [3u8, 8, 255] {
            assert!(!is_supported(code));
            assert!(matches!(
                decompress(code, b"abc", 100),
                Err(DecodeError::UnsupportedCompressor(c)) if c == code
            ));
            assert!(matches!(
                compress(code, b"abc"),
                Err(DecodeError::UnsupportedCompressor(c)) if c == code
            ));
        }
    }

    #[test]
    fn java_specific_shapes() {
        let bz = compress(COMPRESSOR_BZIP2, b"hello").expect("compress");
        assert_eq!(bz.first(), Some(&b'h'), "Ant omits the BZ signature");
        let mut standard = b"BZ".to_vec();
        standard.extend_from_slice(&bz);
        assert_eq!(
            decompress(COMPRESSOR_BZIP2, &standard, 100).expect("with BZ"),
            b"hello"
        );
        let zip = compress(COMPRESSOR_ZIP, b"hello").expect("compress");
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(&zip[26..33], b"\x03\x00\x00\x00zip");
        let lz = compress(COMPRESSOR_LZ4, b"hello").expect("compress");
        assert_eq!(&lz[..9], b"LZ4Block\x10");
        let garbage = [0x13u8; 40];
        for code in [1u8, 2, 4, 5, 6, 7] {
            assert!(
                decompress(code, &garbage, 100).is_err(),
                "compressor {code}"
            );
        }
    }
}
