//! Body compressors by header code (spec §5.2), byte-compatible with Seata's Java utilities.
//! Decompression is always bounded: output beyond the cap is an error, never an allocation.

use crate::codec::DecodeError;

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
        COMPRESSOR_GZIP => read_bounded(flate2::read::MultiGzDecoder::new(data), max_len),
        #[cfg(feature = "zip")]
        COMPRESSOR_ZIP => zip::decompress(data, max_len),
        #[cfg(feature = "bzip2")]
        COMPRESSOR_BZIP2 => bzip2_codec::decompress(data, max_len),
        // seata-all >= 2.6.0 writes the LZ4 frame format, older releases lz4-java's block
        // stream; the magic tells them apart ("LZ4Block" vs 0x184D2204).
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 if data.starts_with(&lz4_frame::MAGIC) => {
            lz4_frame::decompress(data, max_len)
        }
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 => lz4_block::decompress(data, max_len),
        #[cfg(feature = "deflater")]
        COMPRESSOR_DEFLATER => read_bounded(flate2::read::ZlibDecoder::new(data), max_len),
        #[cfg(feature = "zstd")]
        COMPRESSOR_ZSTD => zstd_codec::decompress(data, max_len),
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
        return Ok(lz4_frame::compress(data));
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
        COMPRESSOR_GZIP => {
            use std::io::Write;
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(io_err)?;
            enc.finish().map_err(io_err)
        }
        #[cfg(feature = "zip")]
        COMPRESSOR_ZIP => zip::compress(data),
        #[cfg(feature = "bzip2")]
        COMPRESSOR_BZIP2 => bzip2_codec::compress(data),
        #[cfg(feature = "lz4")]
        COMPRESSOR_LZ4 => Ok(lz4_block::compress(data)),
        #[cfg(feature = "deflater")]
        COMPRESSOR_DEFLATER => {
            use std::io::Write;
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data).map_err(io_err)?;
            enc.finish().map_err(io_err)
        }
        #[cfg(feature = "zstd")]
        COMPRESSOR_ZSTD => zstd_codec::compress(data),
        other => Err(DecodeError::UnsupportedCompressor(other)),
    }
}

#[allow(dead_code)] // unused when every compressor feature is disabled
fn io_err(e: std::io::Error) -> DecodeError {
    DecodeError::Decompress(e.to_string())
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

#[cfg(feature = "zip")]
mod zip {
    //! Java's `ZipOutputStream` with one deflated entry named `zip` (Seata's ZipUtil): local
    //! header with sizes deferred to a data descriptor, central directory, end record.

    use super::{DecodeError, io_err};
    use std::io::{Read, Write};

    const LOCAL_SIG: u32 = 0x0403_4b50;
    const DESCRIPTOR_SIG: u32 = 0x0807_4b50;
    const CENTRAL_SIG: u32 = 0x0201_4b50;
    const END_SIG: u32 = 0x0605_4b50;
    const ENTRY_NAME: &[u8] = b"zip";
    /// Bit 3: sizes and CRC follow the data; bit 11: UTF-8 names (Java sets both).
    const FLAGS: u16 = 0x0808;
    const METHOD_STORED: u16 = 0;
    const METHOD_DEFLATED: u16 = 8;
    const VERSION: u16 = 20;
    /// A fixed 1980-01-01 00:00 DOS timestamp keeps our output deterministic.
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = 0x0021;

    fn put16(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn put32(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }

    pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).map_err(io_err)?;
        let deflated = enc.finish().map_err(io_err)?;
        let crc = crc32fast::hash(data);
        // Sizes above 4 GiB would need ZIP64; bodies are capped far below that.
        let csize = u32::try_from(deflated.len()).unwrap_or(u32::MAX);
        let size = u32::try_from(data.len()).unwrap_or(u32::MAX);

        let mut out = Vec::with_capacity(deflated.len() + 128);
        put32(&mut out, LOCAL_SIG);
        put16(&mut out, VERSION);
        put16(&mut out, FLAGS);
        put16(&mut out, METHOD_DEFLATED);
        put16(&mut out, DOS_TIME);
        put16(&mut out, DOS_DATE);
        put32(&mut out, 0); // crc, in the descriptor
        put32(&mut out, 0); // compressed size, in the descriptor
        put32(&mut out, 0); // size, in the descriptor
        put16(&mut out, ENTRY_NAME.len() as u16);
        put16(&mut out, 0);
        out.extend_from_slice(ENTRY_NAME);
        out.extend_from_slice(&deflated);
        put32(&mut out, DESCRIPTOR_SIG);
        put32(&mut out, crc);
        put32(&mut out, csize);
        put32(&mut out, size);

        let central_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        put32(&mut out, CENTRAL_SIG);
        put16(&mut out, VERSION); // made by
        put16(&mut out, VERSION); // needed
        put16(&mut out, FLAGS);
        put16(&mut out, METHOD_DEFLATED);
        put16(&mut out, DOS_TIME);
        put16(&mut out, DOS_DATE);
        put32(&mut out, crc);
        put32(&mut out, csize);
        put32(&mut out, size);
        put16(&mut out, ENTRY_NAME.len() as u16);
        put16(&mut out, 0); // extra
        put16(&mut out, 0); // comment
        put16(&mut out, 0); // disk
        put16(&mut out, 0); // internal attributes
        put32(&mut out, 0); // external attributes
        put32(&mut out, 0); // local header offset
        out.extend_from_slice(ENTRY_NAME);
        let central_len = u32::try_from(out.len()).unwrap_or(u32::MAX) - central_offset;

        put32(&mut out, END_SIG);
        put16(&mut out, 0);
        put16(&mut out, 0);
        put16(&mut out, 1);
        put16(&mut out, 1);
        put32(&mut out, central_len);
        put32(&mut out, central_offset);
        put16(&mut out, 0);
        Ok(out)
    }

    struct LeReader<'a> {
        data: &'a [u8],
        pos: usize,
    }

    impl<'a> LeReader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
            let end = self
                .pos
                .checked_add(n)
                .ok_or_else(|| bad("length overflow"))?;
            let slice = self
                .data
                .get(self.pos..end)
                .ok_or_else(|| bad("archive truncated"))?;
            self.pos = end;
            Ok(slice)
        }
        fn u16(&mut self) -> Result<u16, DecodeError> {
            let b = self.take(2)?;
            Ok(u16::from_le_bytes([b[0], b[1]]))
        }
        fn u32(&mut self) -> Result<u32, DecodeError> {
            let b = self.take(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn peek_u32(&self) -> Option<u32> {
            let b = self.data.get(self.pos..self.pos.checked_add(4)?)?;
            Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
    }

    fn bad(what: &str) -> DecodeError {
        DecodeError::Decompress(format!("zip: {what}"))
    }

    /// Reads the entries in order, as Java's `ZipInputStream` does, concatenating their data.
    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
        let mut r = LeReader { data, pos: 0 };
        let mut out = Vec::new();
        let mut entries = 0usize;
        while r.peek_u32() == Some(LOCAL_SIG) {
            r.take(4)?;
            let _version = r.u16()?;
            let flags = r.u16()?;
            let method = r.u16()?;
            let _time = r.u16()?;
            let _date = r.u16()?;
            let mut crc = r.u32()?;
            let csize = r.u32()?;
            let size = r.u32()?;
            let name_len = r.u16()?;
            let extra_len = r.u16()?;
            r.take(usize::from(name_len))?;
            r.take(usize::from(extra_len))?;
            let budget = max_len - out.len();
            let start = out.len();
            match method {
                METHOD_DEFLATED => {
                    let rest = data.get(r.pos..).unwrap_or(&[]);
                    let mut dec = flate2::bufread::DeflateDecoder::new(rest);
                    let cap = (budget as u64).saturating_add(1);
                    (&mut dec).take(cap).read_to_end(&mut out).map_err(io_err)?;
                    if out.len() - start > budget {
                        return Err(DecodeError::DecompressedTooLarge { limit: max_len });
                    }
                    let used = usize::try_from(dec.total_in()).map_err(|_| bad("size"))?;
                    r.take(used)?;
                }
                METHOD_STORED if flags & 0x08 == 0 => {
                    let n = usize::try_from(csize).map_err(|_| bad("size"))?;
                    if n > budget {
                        return Err(DecodeError::DecompressedTooLarge { limit: max_len });
                    }
                    out.extend_from_slice(r.take(n)?);
                }
                _ => return Err(bad("unsupported entry method")),
            }
            if flags & 0x08 != 0 {
                // The signature of the data descriptor is optional in the format.
                if r.peek_u32() == Some(DESCRIPTOR_SIG) {
                    r.take(4)?;
                }
                crc = r.u32()?;
                let _csize = r.u32()?;
                let _size = r.u32()?;
            } else if size as usize != out.len() - start {
                return Err(bad("entry size mismatch"));
            }
            let entry = out.get(start..).unwrap_or(&[]);
            if crc32fast::hash(entry) != crc {
                return Err(bad("CRC mismatch"));
            }
            entries += 1;
        }
        if entries == 0 {
            return Err(bad("no local file header"));
        }
        Ok(out)
    }
}

#[cfg(feature = "bzip2")]
mod bzip2_codec {
    //! bzip2 as Ant's `CBZip2OutputStream` writes it: the stream without its leading `BZ`.

    use super::{DecodeError, io_err, read_bounded};
    use std::io::{Read, Write};

    const SIGNATURE: &[u8] = b"BZ";

    pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        // Block size 9 (900k) is also CBZip2OutputStream's default.
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
        enc.write_all(data).map_err(io_err)?;
        let full = enc.finish().map_err(io_err)?;
        Ok(full.strip_prefix(SIGNATURE).unwrap_or(&full).to_vec())
    }

    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
        // A stream that already carries "BZh" comes from a standard writer; Ant's starts at the
        // 'h', which can never be 'B', so both are accepted without ambiguity.
        if data.starts_with(b"BZh") {
            read_bounded(bzip2::read::MultiBzDecoder::new(data), max_len)
        } else {
            read_bounded(
                bzip2::read::MultiBzDecoder::new(SIGNATURE.chain(data)),
                max_len,
            )
        }
    }
}

#[cfg(feature = "lz4")]
mod lz4_frame {
    //! The standard LZ4 frame format, as lz4-java's `LZ4FrameOutputStream` writes it with its
    //! defaults (seata-all >= 2.6.0): magic, FLG 0x60 (version 01, independent blocks), BD 0x70
    //! (4 MiB blocks), header checksum, then blocks, each a little-endian size whose top bit
    //! marks a stored block followed by the data, and a zero end mark. The reader also accepts
    //! the optional content size and block and content checksums.

    use super::DecodeError;

    pub(super) const MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];
    const FLG_VERSION_MASK: u8 = 0xc0;
    const FLG_VERSION_01: u8 = 0x40;
    const FLG_BLOCK_INDEPENDENCE: u8 = 0x20;
    const FLG_BLOCK_CHECKSUM: u8 = 0x10;
    const FLG_CONTENT_SIZE: u8 = 0x08;
    const FLG_CONTENT_CHECKSUM: u8 = 0x04;
    const FLG_RESERVED: u8 = 0x02;
    const FLG_DICT_ID: u8 = 0x01;
    const BD_4MB: u8 = 0x70;
    const BD_RESERVED: u8 = 0x8f;
    const BLOCK_4MB: usize = 4 << 20;
    const STORED: u32 = 0x8000_0000;

    fn xxh32(data: &[u8]) -> u32 {
        twox_hash::XxHash32::oneshot(0, data)
    }

    /// Second byte of the descriptor's XXH32, as the format defines the header checksum.
    fn header_checksum(descriptor: &[u8]) -> u8 {
        (xxh32(descriptor) >> 8) as u8
    }

    fn bad(what: &str) -> DecodeError {
        DecodeError::Decompress(format!("lz4 frame: {what}"))
    }

    fn le_u32(data: &[u8], at: usize) -> Result<u32, DecodeError> {
        let b = data.get(at..at + 4).ok_or_else(|| bad("truncated"))?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 16);
        out.extend_from_slice(&MAGIC);
        let descriptor = [FLG_VERSION_01 | FLG_BLOCK_INDEPENDENCE, BD_4MB];
        out.extend_from_slice(&descriptor);
        out.push(header_checksum(&descriptor));
        for block in data.chunks(BLOCK_4MB) {
            let packed = lz4_flex::block::compress(block);
            // Like lz4-java: store the block when compression does not pay.
            if packed.len() >= block.len() {
                out.extend_from_slice(&(block.len() as u32 | STORED).to_le_bytes());
                out.extend_from_slice(block);
            } else {
                out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
                out.extend_from_slice(&packed);
            }
        }
        out.extend_from_slice(&0u32.to_le_bytes());
        out
    }

    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
        if !data.starts_with(&MAGIC) {
            return Err(bad("bad magic"));
        }
        let flg = *data.get(4).ok_or_else(|| bad("truncated"))?;
        let bd = *data.get(5).ok_or_else(|| bad("truncated"))?;
        if flg & FLG_VERSION_MASK != FLG_VERSION_01 || flg & FLG_RESERVED != 0 {
            return Err(bad("unsupported version or flags"));
        }
        if flg & FLG_DICT_ID != 0 {
            return Err(bad("dictionaries are not supported"));
        }
        if bd & BD_RESERVED != 0 {
            return Err(bad("bad block descriptor"));
        }
        let block_max = match bd >> 4 {
            4 => 64 << 10,
            5 => 256 << 10,
            6 => 1 << 20,
            7 => BLOCK_4MB,
            _ => return Err(bad("bad block size")),
        };
        let mut pos = 6;
        let mut content_size = None;
        if flg & FLG_CONTENT_SIZE != 0 {
            let b = data.get(6..14).ok_or_else(|| bad("truncated"))?;
            let mut raw = [0u8; 8];
            raw.copy_from_slice(b);
            let size = u64::from_le_bytes(raw);
            if size > max_len as u64 {
                return Err(DecodeError::DecompressedTooLarge { limit: max_len });
            }
            content_size = Some(size as usize);
            pos = 14;
        }
        let descriptor = data.get(4..pos).ok_or_else(|| bad("truncated"))?;
        if data.get(pos) != Some(&header_checksum(descriptor)) {
            return Err(bad("header checksum mismatch"));
        }
        pos += 1;
        let mut out = Vec::new();
        loop {
            let size = le_u32(data, pos)?;
            pos += 4;
            if size == 0 {
                break;
            }
            let len = (size & !STORED) as usize;
            if len > block_max {
                return Err(bad("block larger than the declared maximum"));
            }
            let src = data
                .get(pos..pos + len)
                .ok_or_else(|| bad("block truncated"))?;
            pos += len;
            if flg & FLG_BLOCK_CHECKSUM != 0 {
                if le_u32(data, pos)? != xxh32(src) {
                    return Err(bad("block checksum mismatch"));
                }
                pos += 4;
            }
            let budget = max_len - out.len();
            if size & STORED != 0 {
                if len > budget {
                    return Err(DecodeError::DecompressedTooLarge { limit: max_len });
                }
                out.extend_from_slice(src);
                continue;
            }
            // Room for a whole block, but never beyond the cap (+1 to tell "exactly at the
            // cap" from "over it").
            let room = block_max.min(budget.saturating_add(1));
            let start = out.len();
            out.resize(start + room, 0);
            let dst = out.get_mut(start..).ok_or_else(|| bad("buffer"))?;
            let n = match lz4_flex::block::decompress_into(src, dst) {
                Ok(n) => n,
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) if room <= budget => {
                    return Err(bad("block larger than the declared maximum"));
                }
                Err(lz4_flex::block::DecompressError::OutputTooSmall { .. }) => {
                    return Err(DecodeError::DecompressedTooLarge { limit: max_len });
                }
                Err(e) => return Err(DecodeError::Decompress(format!("lz4 frame: {e}"))),
            };
            out.truncate(start + n);
            if out.len() > max_len {
                return Err(DecodeError::DecompressedTooLarge { limit: max_len });
            }
        }
        if flg & FLG_CONTENT_CHECKSUM != 0 {
            if le_u32(data, pos)? != xxh32(&out) {
                return Err(bad("content checksum mismatch"));
            }
            pos += 4;
        }
        if content_size.is_some_and(|size| size != out.len()) {
            return Err(bad("content size mismatch"));
        }
        if pos != data.len() {
            return Err(bad("trailing bytes"));
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

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
            let ours = compress(&plain);
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
            let good = compress(&data);
            assert_eq!(decompress(&good, data.len()).expect("at cap"), data);
            let mut bad_header = good.clone();
            bad_header[6] ^= 1;
            assert!(decompress(&bad_header, 10_000).is_err());
            assert!(decompress(&good[..good.len() - 2], 10_000).is_err());
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
}

#[cfg(feature = "lz4")]
mod lz4_block {
    //! lz4-java's `LZ4BlockOutputStream` format with Seata's 1024-byte blocks: per block the
    //! magic `LZ4Block`, a token (method | level), compressed and original lengths and a masked
    //! XXH32 checksum (all little-endian), then the data; an empty block ends the stream.

    use super::DecodeError;

    const MAGIC: &[u8; 8] = b"LZ4Block";
    const HEADER_LEN: usize = 8 + 1 + 4 + 4 + 4;
    const METHOD_RAW: u8 = 0x10;
    const METHOD_LZ4: u8 = 0x20;
    const LEVEL_BASE: u32 = 10;
    /// Seata's Lz4Util block size.
    const BLOCK_SIZE: usize = 1024;
    /// log2(1024) - LEVEL_BASE.
    const BLOCK_LEVEL: u8 = 0;
    const SEED: u32 = 0x9747_b28c;
    /// lz4-java's `StreamingXXHash32.asChecksum()` keeps only the low 28 bits.
    const CHECKSUM_MASK: u32 = 0x0FFF_FFFF;

    fn checksum(data: &[u8]) -> u32 {
        twox_hash::XxHash32::oneshot(SEED, data) & CHECKSUM_MASK
    }

    fn put_header(out: &mut Vec<u8>, token: u8, compressed: usize, original: usize, check: u32) {
        out.extend_from_slice(MAGIC);
        out.push(token);
        // Blocks are at most 1024 bytes, so these always fit.
        out.extend_from_slice(&(compressed as u32).to_le_bytes());
        out.extend_from_slice(&(original as u32).to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
    }

    pub(super) fn compress(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + HEADER_LEN * (data.len() / BLOCK_SIZE + 2));
        for block in data.chunks(BLOCK_SIZE) {
            let packed = lz4_flex::block::compress(block);
            // Like lz4-java: store raw when compression does not pay.
            if packed.len() >= block.len() {
                put_header(
                    &mut out,
                    METHOD_RAW | BLOCK_LEVEL,
                    block.len(),
                    block.len(),
                    checksum(block),
                );
                out.extend_from_slice(block);
            } else {
                put_header(
                    &mut out,
                    METHOD_LZ4 | BLOCK_LEVEL,
                    packed.len(),
                    block.len(),
                    checksum(block),
                );
                out.extend_from_slice(&packed);
            }
        }
        put_header(&mut out, METHOD_RAW | BLOCK_LEVEL, 0, 0, 0);
        out
    }

    fn bad(what: &str) -> DecodeError {
        DecodeError::Decompress(format!("lz4: {what}"))
    }

    fn le_u32(b: &[u8], at: usize) -> Result<u32, DecodeError> {
        let s = b.get(at..at + 4).ok_or_else(|| bad("header truncated"))?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    }

    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
        let mut out = Vec::new();
        let mut pos = 0usize;
        // A stream that ends on a block boundary without the end block is accepted: the data
        // is complete and checksummed either way.
        while pos < data.len() {
            let header = data
                .get(pos..pos + HEADER_LEN)
                .ok_or_else(|| bad("header truncated"))?;
            if header.get(..8) != Some(&MAGIC[..]) {
                return Err(bad("bad block magic"));
            }
            let token = header.get(8).copied().unwrap_or(0);
            let method = token & 0xF0;
            let level = u32::from(token & 0x0F) + LEVEL_BASE;
            let compressed = le_u32(header, 9)? as i32;
            let original = le_u32(header, 13)? as i32;
            let check = le_u32(header, 17)?;
            pos += HEADER_LEN;
            if method != METHOD_RAW && method != METHOD_LZ4 {
                return Err(bad("unknown compression method"));
            }
            // Same validation as lz4-java's LZ4BlockInputStream.
            if compressed < 0
                || original < 0
                || original as u64 > 1u64 << level
                || (original == 0) != (compressed == 0)
                || (method == METHOD_RAW && original != compressed)
            {
                return Err(bad("inconsistent block lengths"));
            }
            if original == 0 {
                if check != 0 {
                    return Err(bad("end block with a checksum"));
                }
                return Ok(out);
            }
            let (compressed, original) = (compressed as usize, original as usize);
            if original > max_len - out.len() {
                return Err(DecodeError::DecompressedTooLarge { limit: max_len });
            }
            let src = data
                .get(pos..pos + compressed)
                .ok_or_else(|| bad("block truncated"))?;
            pos += compressed;
            let start = out.len();
            if method == METHOD_RAW {
                out.extend_from_slice(src);
            } else {
                out.resize(start + original, 0);
                let dst = out.get_mut(start..).ok_or_else(|| bad("buffer"))?;
                let n = lz4_flex::block::decompress_into(src, dst)
                    .map_err(|e| DecodeError::Decompress(format!("lz4: {e}")))?;
                if n != original {
                    return Err(bad("block shorter than declared"));
                }
            }
            if checksum(out.get(start..).unwrap_or(&[])) != check {
                return Err(bad("checksum mismatch"));
            }
        }
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A 13-byte stream written by lz4-java 1.8.0 with its default 64 KiB blocks (token
        /// 0x16), published as a reference vector; it pins the header layout and the masked
        /// checksum independently of our own encoder.
        #[test]
        fn decodes_lz4_java_reference_stream() {
            let mut wire = Vec::new();
            wire.extend_from_slice(b"LZ4Block\x16\x0d\x00\x00\x00\x0d\x00\x00\x00\xbf\x7f\x20\x02");
            wire.extend_from_slice(b"ahbicjdkelfmg");
            wire.extend_from_slice(b"LZ4Block\x16");
            wire.extend_from_slice(&[0; 12]);
            let expected: Vec<u8> = (0..13u32).map(|i| (i * 7 % 13) as u8 + b'a').collect();
            assert_eq!(decompress(&wire, 1024).expect("valid"), expected);
        }

        #[test]
        fn rejects_corruption() {
            let data: Vec<u8> = (0..3000u32).map(|i| (i % 7) as u8).collect();
            let good = compress(&data);
            assert_eq!(decompress(&good, 10_000).expect("valid"), data);
            let mut bad_sum = good.clone();
            bad_sum[17] ^= 1;
            assert!(decompress(&bad_sum, 10_000).is_err());
            assert!(decompress(&good[..good.len() - 30], 10_000).is_err());
        }
    }
}

#[cfg(feature = "zstd")]
mod zstd_codec {
    //! Standard zstd frames, as zstd-jni's `Zstd.compress` writes them (content size present).

    use super::{DecodeError, io_err, read_bounded};

    /// zstd-jni's default level.
    const LEVEL: i32 = 3;

    pub(super) fn compress(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
        zstd::bulk::compress(data, LEVEL).map_err(io_err)
    }

    pub(super) fn decompress(data: &[u8], max_len: usize) -> Result<Vec<u8>, DecodeError> {
        let mut dec = zstd::stream::read::Decoder::with_buffer(data).map_err(io_err)?;
        // The window is decoder memory the sender chooses. Allow what the output cap could
        // need, at least 8 MiB (the default body cap, so a legitimate frame under a smaller
        // cap still fails as "too large" rather than as a memory error), at most 128 MiB.
        let needed = usize::BITS - max_len.saturating_sub(1).leading_zeros();
        dec.window_log_max(needed.clamp(23, 27)).map_err(io_err)?;
        read_bounded(dec, max_len)
    }
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
