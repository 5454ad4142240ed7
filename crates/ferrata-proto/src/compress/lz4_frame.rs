//! The standard LZ4 frame format (seata-all >= 2.6.0), through `lz4_flex::frame`. lz4-java's
//! `LZ4FrameOutputStream` defaults are FLG 0x60 (version 01, independent blocks) and BD 0x70
//! (4 MiB blocks), stored blocks when compression does not pay, no checksums.
//!
//! Checked against the captured 2.6.0 frames (tests/captured_vectors.rs): lz4_flex reads them
//! to the exact SEATA body, and writes the same bytes as lz4-java everywhere but inside a
//! compressed block, whose matches the format leaves to the encoder (lz4-java's native match
//! finder picks others; any LZ4 reader takes either). lz4_flex alone accepts a frame cut off
//! at a block boundary and ignores bytes after the end mark, so the input is fed through
//! [`Whole`], which turns both into errors.

use super::{DecodeError, read_bounded};
use lz4_flex::frame::{BlockMode, BlockSize, FrameDecoder, FrameEncoder, FrameInfo};
use std::io::{Read, Write};

pub(super) const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

fn lz4_err(e: impl std::fmt::Display) -> DecodeError {
    DecodeError::Decompress(format!("lz4 frame: {e}"))
}

pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut info = FrameInfo::new();
    info.block_size = BlockSize::Max4MB;
    info.block_mode = BlockMode::Independent;
    let mut enc = FrameEncoder::with_frame_info(info, Vec::with_capacity(data.len() + 16));
    enc.write_all(data).map_err(lz4_err)?;
    enc.finish().map_err(lz4_err)
}

pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
    let mut input = Whole(data);
    let out = read_bounded(FrameDecoder::new(&mut input), max_len).map_err(|e| match e {
        DecodeError::Decompress(msg) => lz4_err(msg),
        other => other,
    })?;
    // The decoder stops at the end mark, so anything left is not part of the frame.
    if !input.0.is_empty() {
        return Err(lz4_err("trailing bytes after the end mark"));
    }
    Ok(out)
}

/// A byte slice that fails, rather than reporting the end, when read past its end. The decoder
/// never reads beyond a frame's end mark within one pass, so such a read means the frame is
/// truncated; lz4_flex would take the end of input at a block boundary for a clean end.
struct Whole<'a>(&'a [u8]);

impl Read for Whole<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.0.is_empty() && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "frame truncated",
            ));
        }
        self.0.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLG_VERSION_01: u8 = 0x40;
    const FLG_BLOCK_INDEPENDENCE: u8 = 0x20;
    const FLG_BLOCK_CHECKSUM: u8 = 0x10;
    const FLG_CONTENT_SIZE: u8 = 0x08;
    const FLG_CONTENT_CHECKSUM: u8 = 0x04;

    fn xxh32(data: &[u8]) -> u32 {
        twox_hash::XxHash32::oneshot(0, data)
    }

    /// Second byte of the descriptor's XXH32, as the format defines the header checksum.
    fn header_checksum(descriptor: &[u8]) -> u8 {
        (xxh32(descriptor) >> 8) as u8
    }

    /// The body of a RegisterRMRequest that seata-all 2.6.0 compressed with lz4
    /// (tests/vectors/captured/java-2.6.0-lz4.txt): our reader gets the SEATA body back,
    /// and our writer produces the same frame header.
    #[test]
    fn seata_all_2_6_0_frame() {
        let java: &[u8] = &[
            0x04, 0x22, 0x4d, 0x18, 0x60, 0x70, 0x73, 0x63, 0x00, 0x00, 0x00, 0xf0, 0x25, 0x00,
            0x67, 0x00, 0x05, 0x32, 0x2e, 0x36, 0x2e, 0x30, 0x00, 0x16, 0x66, 0x65, 0x72, 0x72,
            0x61, 0x74, 0x61, 0x2d, 0x63, 0x61, 0x70, 0x74, 0x75, 0x72, 0x65, 0x2d, 0x73, 0x65,
            0x61, 0x74, 0x61, 0x32, 0x00, 0x10, 0x64, 0x65, 0x66, 0x61, 0x75, 0x6c, 0x74, 0x5f,
            0x74, 0x78, 0x5f, 0x67, 0x72, 0x6f, 0x75, 0x70, 0x00, 0x01, 0x00, 0xf3, 0x0e, 0x39,
            0x6a, 0x64, 0x62, 0x63, 0x3a, 0x6d, 0x79, 0x73, 0x71, 0x6c, 0x3a, 0x2f, 0x2f, 0x31,
            0x32, 0x37, 0x2e, 0x30, 0x2e, 0x30, 0x2e, 0x31, 0x3a, 0x33, 0x33, 0x30, 0x36, 0x2f,
            0x42, 0x00, 0x1c, 0x2c, 0x52, 0x00, 0x50, 0x74, 0x63, 0x63, 0x2d, 0x61, 0x00, 0x00,
            0x00, 0x00,
        ];
        let mut plain = b"\x00\x67\x00\x052.6.0\x00\x16ferrata-capture-seata2".to_vec();
        plain.extend_from_slice(b"\x00\x10default_tx_group\x00\x00\x00\x00\x00\x39");
        plain.extend_from_slice(b"jdbc:mysql://127.0.0.1:3306/capture,ferrata-capture-tcc-a");
        assert_eq!(decompress(java, 1024).expect("valid"), plain);
        // Same frame header as lz4-java; the block may pick other matches.
        let ours = compress(&plain).expect("compress");
        assert_eq!(ours[..7], java[..7]);
        assert_eq!(decompress(&ours, 1024).expect("valid"), plain);
        assert!(matches!(
            decompress(java, plain.len() - 1),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
    }

    #[test]
    fn optional_fields_and_corruption() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i % 11) as u8).collect();
        let good = compress(&data).expect("compress");
        assert_eq!(decompress(&good, data.len()).expect("at cap"), data);
        let mut bad_header = good.clone();
        bad_header[6] ^= 1;
        assert!(decompress(&bad_header, 10_000).is_err());
        assert!(decompress(&good[..good.len() - 2], 10_000).is_err());
        // Cut at the block boundary: the end mark is missing.
        assert!(decompress(&good[..good.len() - 4], 10_000).is_err());
        assert!(decompress(&MAGIC, 10_000).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decompress(&trailing, 10_000).is_err());
        // The same block with content size, block checksum and content checksum.
        let packed = lz4_flex::block::compress(&data);
        let mut full = MAGIC.to_vec();
        let descriptor = {
            let mut d = vec![
                FLG_VERSION_01
                    | FLG_BLOCK_INDEPENDENCE
                    | FLG_BLOCK_CHECKSUM
                    | FLG_CONTENT_SIZE
                    | FLG_CONTENT_CHECKSUM,
                0x40,
            ];
            d.extend_from_slice(&(data.len() as u64).to_le_bytes());
            d
        };
        full.extend_from_slice(&descriptor);
        full.push(header_checksum(&descriptor));
        full.extend_from_slice(&(packed.len() as u32).to_le_bytes());
        full.extend_from_slice(&packed);
        full.extend_from_slice(&xxh32(&packed).to_le_bytes());
        full.extend_from_slice(&0u32.to_le_bytes());
        full.extend_from_slice(&xxh32(&data).to_le_bytes());
        assert_eq!(decompress(&full, 10_000).expect("valid"), data);
        assert!(matches!(
            decompress(&full, 4999),
            Err(DecodeError::DecompressedTooLarge { .. })
        ));
        let mut bad_sum = full.clone();
        let last = bad_sum.len() - 1;
        bad_sum[last] ^= 1;
        assert!(decompress(&bad_sum, 10_000).is_err());
    }
}
