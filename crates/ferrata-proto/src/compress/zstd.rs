//! Standard zstd frames, as zstd-jni's `Zstd.compress` writes them (content size present).

use super::{DecodeError, io_err, read_bounded};

/// zstd-jni's default level.
const LEVEL: i32 = 3;

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    ::zstd::bulk::compress(data, LEVEL).map_err(io_err)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    let mut dec = ::zstd::stream::read::Decoder::with_buffer(data).map_err(io_err)?;
    // The window is decoder memory the sender chooses. Allow what the output cap could
    // need, at least 8 MiB (the default body cap, so a legitimate frame under a smaller
    // cap still fails as "too large" rather than as a memory error), at most 128 MiB.
    let needed = usize::BITS - max_len.saturating_sub(1).leading_zeros();
    dec.window_log_max(needed.clamp(23, 27)).map_err(io_err)?;
    read_bounded(dec, max_len)
}
