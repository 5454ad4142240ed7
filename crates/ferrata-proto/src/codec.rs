//! Byte-level primitives of the SEATA codec (spec §0): a checked big-endian [`Reader`],
//! length-prefixed string writers that never emit a length Java would read as negative, and
//! the decoding error type shared by the whole crate.

use bytes::{BufMut, BytesMut};

/// Why a body, a message or a compressed payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("input truncated: needed {needed} more bytes, {available} available")]
    Truncated { needed: usize, available: usize },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// The body starts with a type code this crate does not know (a newer client's message,
    /// or one inside a batch). Nothing is wrong with the frame around it: a server can log
    /// the code and skip the frame instead of closing the connection.
    #[error("unknown message type code {0}")]
    UnknownTypeCode(u16),
    #[error("unknown value {value} for {field}")]
    UnknownEnum { field: &'static str, value: u8 },
    #[error("invalid {field}: {value}")]
    InvalidLength { field: &'static str, value: i64 },
    #[error("batch message type {0} nested inside a batch")]
    NestedBatch(u16),
    #[error("decompression failed: {0}")]
    Decompress(String),
    #[error("decompressed body larger than the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("unsupported codec {0} (only 1 = SEATA is implemented)")]
    UnsupportedCodec(u8),
    #[error("unsupported or disabled compressor {0}")]
    UnsupportedCompressor(u8),
    #[error("empty body on a non-heartbeat frame")]
    EmptyBody,
}

/// Result alias for decoding.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// A cursor over a byte slice whose every read is bounds-checked and big-endian.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes, borrowed from the input.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8]> {
        let available = self.remaining();
        if n > available {
            return Err(DecodeError::Truncated {
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos += n;
        self.buf.get(start..self.pos).ok_or(DecodeError::Truncated {
            needed: n,
            available,
        })
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let slice = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    pub fn i8(&mut self) -> Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    pub fn i16(&mut self) -> Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    pub fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// A string with an `i16` length; a length `<= 0` is Java's null and reads as `""`.
    pub fn str16(&mut self) -> Result<String> {
        let len = self.i16()?;
        self.string_of(i64::from(len))
    }

    /// A string with an `i32` length; a length `<= 0` reads as `""`.
    pub fn str32(&mut self) -> Result<String> {
        let len = self.i32()?;
        self.string_of(i64::from(len))
    }

    /// A string with an unsigned 8-bit length, as seata-go writes some failure messages
    /// (spec §15.2). Go cuts those at 127 *bytes*, possibly inside a character, so invalid
    /// UTF-8 is replaced rather than rejected: the text is informational only.
    pub fn str8_lossy(&mut self) -> Result<String> {
        let len = self.u8()?;
        let raw = self.bytes(usize::from(len))?;
        Ok(String::from_utf8_lossy(raw).into_owned())
    }

    fn string_of(&mut self, len: i64) -> Result<String> {
        if len <= 0 {
            return Ok(String::new());
        }
        // Checked against the input before any allocation, so a forged length cannot make us
        // reserve gigabytes.
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated {
            needed: usize::MAX,
            available: self.remaining(),
        })?;
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }
}

/// The longest prefix of `s` that is at most `max` bytes and ends on a character boundary.
pub fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

/// Writes an `i16`-length string, cut to 32767 bytes on a character boundary (spec §14.2).
pub fn put_str16(out: &mut BytesMut, s: &str) {
    let s = truncate_at_char_boundary(s, i16::MAX as usize);
    out.put_i16(s.len() as i16);
    out.put_slice(s.as_bytes());
}

/// Writes an `i32`-length string, cut to 2^31-1 bytes on a character boundary.
pub fn put_str32(out: &mut BytesMut, s: &str) {
    let s = truncate_at_char_boundary(s, i32::MAX as usize);
    out.put_i32(s.len() as i32);
    out.put_slice(s.as_bytes());
}

/// Writes a string with a one-byte length for seata-go's 8-bit message fields, cut to 127
/// bytes so that the length reads the same whether the peer treats the byte as signed or not.
pub fn put_str8(out: &mut BytesMut, s: &str) {
    let s = truncate_at_char_boundary(s, i8::MAX as usize);
    out.put_u8(s.len() as u8);
    out.put_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_checked() {
        let mut r = Reader::new(&[0x00, 0x05, b'a']);
        assert!(matches!(
            r.str16(),
            Err(DecodeError::Truncated {
                needed: 5,
                available: 1
            })
        ));
        let mut r = Reader::new(&[0xff, 0xff]);
        assert_eq!(r.str16().ok(), Some(String::new()));
        let mut r = Reader::new(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(r.str32().is_err());
        let mut r = Reader::new(&[0x00, 0x01, 0xff]);
        assert!(matches!(r.str16(), Err(DecodeError::InvalidUtf8)));
        assert!(Reader::new(&[]).i64().is_err());
    }

    #[test]
    fn writers_truncate_on_char_boundary() {
        let long = "é".repeat(20_000); // 40 000 bytes
        let mut out = BytesMut::new();
        put_str16(&mut out, &long);
        let mut r = Reader::new(&out);
        let back = r.str16().expect("valid");
        assert_eq!(back.len(), 32766);
        assert_eq!(r.remaining(), 0);

        let mut out = BytesMut::new();
        put_str8(&mut out, &"ü".repeat(100));
        assert_eq!(out[0], 126);
        assert_eq!(truncate_at_char_boundary("abc", 0), "");
    }
}
