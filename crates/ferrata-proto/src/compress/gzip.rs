//! gzip members, as `java.util.zip.GZIPOutputStream` writes them (Seata's GzipUtil); the reader
//! also takes concatenated members.

use super::{DecodeError, encode_all, read_bounded};
use flate2::write::GzEncoder;

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let encoder = GzEncoder::new(Vec::new(), flate2::Compression::default());
    encode_all(encoder, data, GzEncoder::finish)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    read_bounded(flate2::read::MultiGzDecoder::new(data), max_len)
}
