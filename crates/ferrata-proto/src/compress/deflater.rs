//! zlib streams, as `java.util.zip.Deflater` with its default level writes them (Seata's
//! DeflaterUtil).

use super::{DecodeError, encode_all, read_bounded};
use flate2::write::ZlibEncoder;

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let encoder = ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    encode_all(encoder, data, ZlibEncoder::finish)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    read_bounded(flate2::read::ZlibDecoder::new(data), max_len)
}
