//! Compression of `rollback_info` by the names Java's `CompressorType` gives the
//! `compressorType` context key; the byte formats are ferrata-proto's, checked against Java's
//! compressors (tests/vectors/java2/compressed).

use ferrata_proto::ClientVersion;
use ferrata_proto::compress as codec;

use super::error::UndoError;

/// Java's `CompressorType`, by name (matched case-insensitively, as `getByName`) and code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CompressorType {
    #[default]
    None,
    Gzip,
    /// A zip archive with one deflated entry named `zip` (Java's default undo compressor).
    Zip,
    /// 7z, Seata 1.x only: not supported.
    SevenZ,
    /// bzip2 without the leading `BZ` (Ant's CBZip2OutputStream).
    Bzip2,
    /// Written as the LZ4 frame format of seata-all >= 2.6.0; lz4-java's older block
    /// stream is read too.
    Lz4,
    /// A zlib stream (`java.util.zip.Deflater`).
    Deflater,
    Zstd,
}

impl CompressorType {
    const ALL: [(CompressorType, &'static str, u8); 8] = [
        (CompressorType::None, "NONE", codec::COMPRESSOR_NONE),
        (CompressorType::Gzip, "GZIP", codec::COMPRESSOR_GZIP),
        (CompressorType::Zip, "ZIP", codec::COMPRESSOR_ZIP),
        (CompressorType::SevenZ, "SEVENZ", codec::COMPRESSOR_SEVENZ),
        (CompressorType::Bzip2, "BZIP2", codec::COMPRESSOR_BZIP2),
        (CompressorType::Lz4, "LZ4", codec::COMPRESSOR_LZ4),
        (
            CompressorType::Deflater,
            "DEFLATER",
            codec::COMPRESSOR_DEFLATER,
        ),
        (CompressorType::Zstd, "ZSTD", codec::COMPRESSOR_ZSTD),
    ];

    /// The name Java writes into the context (`CompressorType.name()`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|e| e.0 == self)
            .map_or("NONE", |e| e.1)
    }

    /// Java's `CompressorType.getByName`: case-insensitive.
    pub fn from_name(name: &str) -> Option<CompressorType> {
        Self::ALL
            .iter()
            .find(|e| e.1.eq_ignore_ascii_case(name))
            .map(|e| e.0)
    }

    fn code(self) -> u8 {
        Self::ALL.iter().find(|e| e.0 == self).map_or(0, |e| e.2)
    }
}

fn proto_err(compressor: CompressorType, e: ferrata_proto::DecodeError) -> UndoError {
    match e {
        ferrata_proto::DecodeError::UnsupportedCompressor(_) => {
            UndoError::UnsupportedCompressor(compressor.name().to_string())
        }
        ferrata_proto::DecodeError::DecompressedTooLarge { limit } => {
            UndoError::TooLarge { limit_bytes: limit }
        }
        other => UndoError::Decompress {
            compressor: compressor.name(),
            reason: other.to_string(),
        },
    }
}

/// Compresses `data` as seata-all 2.6.0's compressor of this type does.
pub fn compress(compressor: CompressorType, data: &[u8]) -> Result<Vec<u8>, UndoError> {
    codec::compress_for(compressor.code(), data, ClientVersion::V2_6_0)
        .map_err(|e| proto_err(compressor, e))
}

/// Decompresses `data`, failing as soon as the output would exceed `max_bytes`.
pub fn decompress(
    compressor: CompressorType,
    data: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, UndoError> {
    codec::decompress(compressor.code(), data, max_bytes).map_err(|e| proto_err(compressor, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_java_case_insensitively() {
        assert_eq!(CompressorType::from_name("zip"), Some(CompressorType::Zip));
        assert_eq!(
            CompressorType::from_name("Deflater"),
            Some(CompressorType::Deflater)
        );
        assert_eq!(CompressorType::from_name("snappy"), None);
        for (t, name, _) in CompressorType::ALL {
            assert_eq!(CompressorType::from_name(name), Some(t));
            assert_eq!(t.name(), name);
        }
    }

    #[test]
    fn every_supported_type_round_trips_and_sevenz_is_refused() {
        let data = b"undo log ".repeat(1000);
        for (t, _, _) in CompressorType::ALL {
            if t == CompressorType::SevenZ {
                assert!(matches!(
                    compress(t, &data),
                    Err(UndoError::UnsupportedCompressor(_))
                ));
                continue;
            }
            let packed = compress(t, &data).expect("compress");
            assert_eq!(
                decompress(t, &packed, data.len()).expect("decompress"),
                data,
                "{t:?}"
            );
            assert!(matches!(
                decompress(t, &packed, data.len() - 1),
                Err(UndoError::TooLarge { .. })
            ));
        }
    }
}
