//! gzip members, as `java.util.zip.GZIPOutputStream` writes them (Seata's GzipUtil); the reader
//! also takes concatenated members.

use super::{DecodeError, io_err, read_bounded};
use std::io::Write;

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).map_err(io_err)?;
    enc.finish().map_err(io_err)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    read_bounded(flate2::read::MultiGzDecoder::new(data), max_len)
}
