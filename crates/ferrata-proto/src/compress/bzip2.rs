//! bzip2 as Ant's `CBZip2OutputStream` writes it: the stream without its leading `BZ`.

use super::{DecodeError, encode_all, read_bounded};
use ::bzip2::write::BzEncoder;
use std::io::Read;

const SIGNATURE: &[u8] = b"BZ";

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    // Block size 9 (900k) is also CBZip2OutputStream's default.
    let encoder = BzEncoder::new(Vec::new(), ::bzip2::Compression::best());
    let full = encode_all(encoder, data, BzEncoder::finish)?;
    Ok(full.strip_prefix(SIGNATURE).unwrap_or(&full).to_vec())
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    // A stream that already carries "BZh" comes from a standard writer; Ant's starts at the
    // 'h', which can never be 'B', so both are accepted without ambiguity.
    if data.starts_with(b"BZh") {
        read_bounded(::bzip2::read::MultiBzDecoder::new(data), max_len)
    } else {
        read_bounded(
            ::bzip2::read::MultiBzDecoder::new(SIGNATURE.chain(data)),
            max_len,
        )
    }
}
