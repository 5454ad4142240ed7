//! Java's `ZipOutputStream` with one deflated entry named `zip` (Seata's ZipUtil): local
//! header with sizes deferred to a data descriptor, central directory, end record.

use super::{DecodeError, encode_all, io_err};
use flate2::write::DeflateEncoder;
use std::io::Read;

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
    let encoder = DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    let deflated = encode_all(encoder, data, DeflateEncoder::finish)?;
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
