//! zlib streams, as `java.util.zip.Deflater` with its default level writes them (Seata's
//! DeflaterUtil).

use super::{DecodeError, io_err, read_bounded};
use std::io::Write;

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(io_err)?;
    enc.finish().map_err(io_err)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    read_bounded(flate2::read::ZlibDecoder::new(data), max_len)
}
