//! The frame (spec §2): 16-byte header, head map and still-compressed body. Protocol versions 1
//! and 2 share this layout and differ only in the version byte (§3). Decoding is incremental and
//! validates magic, version and length as early as the bytes allow.

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub const MAGIC: [u8; 2] = [0xDA, 0xDA];
pub const HEADER_LEN: usize = 16;
/// Java's limit (spec §2.1).
pub const DEFAULT_MAX_FRAME_LEN: usize = 8 * 1024 * 1024;
/// Protocol version 1: every released client (Java 0.7 to 2.6, every Go client), and what a
/// connection speaks until its first frame says otherwise.
pub const PROTOCOL_VERSION: u8 = 1;
/// Protocol version 2 (Seata 2.7, "support multi-version codec"): framed like version 1; only
/// RegisterTMResponse and RegisterRMResponse bodies differ (spec §8.3).
pub const PROTOCOL_VERSION_2: u8 = 2;
/// The highest protocol version this crate speaks.
pub const HIGHEST_PROTOCOL_VERSION: u8 = PROTOCOL_VERSION_2;

/// The version a server speaks on a connection whose first frame carried `peer_version`, as the
/// Java server decides it: the peer's version, or the highest this crate speaks when the peer's
/// is higher. The connection keeps it for every later frame, in both directions.
pub const fn negotiated_version(peer_version: u8) -> u8 {
    if peer_version >= HIGHEST_PROTOCOL_VERSION {
        HIGHEST_PROTOCOL_VERSION
    } else {
        PROTOCOL_VERSION
    }
}

/// Header byte 9 (spec §4).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    Request = 0,
    Response = 1,
    Oneway = 2,
    HeartbeatRequest = 3,
    HeartbeatResponse = 4,
}

impl MsgType {
    pub const fn from_u8(value: u8) -> Option<MsgType> {
        match value {
            0 => Some(MsgType::Request),
            1 => Some(MsgType::Response),
            2 => Some(MsgType::Oneway),
            3 => Some(MsgType::HeartbeatRequest),
            4 => Some(MsgType::HeartbeatResponse),
            _ => None,
        }
    }

    pub const fn is_heartbeat(self) -> bool {
        matches!(self, MsgType::HeartbeatRequest | MsgType::HeartbeatResponse)
    }
}

/// Head-map entries in wire order; `None` is the wire's null (length -1).
pub type HeadMap = Vec<(Option<String>, Option<String>)>;

/// One frame as it travels; `body` is still compressed with `compressor`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub version: u8,
    pub msg_type: MsgType,
    pub codec: u8,
    pub compressor: u8,
    pub request_id: i32,
    /// Key/value pairs; `None` is the wire's null (length -1).
    pub head_map: Vec<(Option<String>, Option<String>)>,
    pub body: Bytes,
}

impl Frame {
    /// A heartbeat frame (ping or pong) in `version`: SEATA codec, no compression, no head map
    /// or body (spec §8.14).
    pub fn heartbeat(msg_type: MsgType, version: u8, request_id: i32) -> Frame {
        Frame {
            version,
            msg_type,
            codec: 1,
            compressor: 0,
            request_id,
            head_map: Vec::new(),
            body: Bytes::new(),
        }
    }

    /// The version-1 pong for this ping (spec §8.14): same id, codec and compressor, no head map
    /// or body. On a connection that negotiated another version use
    /// [`Frame::heartbeat_response`].
    pub fn heartbeat_response_to(&self) -> Frame {
        self.heartbeat_response(PROTOCOL_VERSION)
    }

    /// The pong for this ping in the connection's `protocol_version` (a 2.7 client adopts the
    /// version of the first frame it receives, so every frame on a v2 connection must be v2).
    pub fn heartbeat_response(&self, protocol_version: u8) -> Frame {
        Frame {
            version: protocol_version,
            msg_type: MsgType::HeartbeatResponse,
            codec: self.codec,
            compressor: self.compressor,
            request_id: self.request_id,
            head_map: Vec::new(),
            body: Bytes::new(),
        }
    }
}

/// A frame that cannot be accepted; the connection should be closed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("bad magic {0:02x?}")]
    BadMagic([u8; 2]),
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("inconsistent lengths: full length {full}, head length {head}")]
    BadLength { full: i64, head: i64 },
    #[error("unknown message type {0}")]
    UnknownMsgType(u8),
    #[error("malformed head map: {0}")]
    BadHeadMap(String),
}

fn byte_at(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

fn be_i32_at(buf: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    if let Some(src) = buf.get(at..at + 4) {
        raw.copy_from_slice(src);
    }
    i32::from_be_bytes(raw)
}

fn be_i16_at(buf: &[u8], at: usize) -> i16 {
    let mut raw = [0u8; 2];
    if let Some(src) = buf.get(at..at + 2) {
        raw.copy_from_slice(src);
    }
    i16::from_be_bytes(raw)
}

/// Decodes one frame from the front of `buf`.
///
/// Checks magic eagerly as soon as 2 bytes are there, and version as soon as 3 are, and the
/// length as soon as 7 are (reject > max before buffering it). Returns `Ok(None)` when more
/// bytes are needed; on `Ok(Some)` consumes the frame from `buf`. On error nothing is consumed.
pub fn decode_frame(buf: &mut BytesMut, max_frame_len: usize) -> Result<Option<Frame>, FrameError> {
    let have = buf.len();
    if have < 2 {
        return Ok(None);
    }
    let magic = [byte_at(buf, 0), byte_at(buf, 1)];
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    if have < 3 {
        return Ok(None);
    }
    let version = byte_at(buf, 2);
    if version != 1 && version != 2 {
        return Err(FrameError::UnsupportedVersion(version));
    }
    if have < 7 {
        return Ok(None);
    }
    let full = i64::from(be_i32_at(buf, 3));
    if full < HEADER_LEN as i64 {
        return Err(FrameError::BadLength {
            full,
            head: HEADER_LEN as i64,
        });
    }
    let full_len = usize::try_from(full).map_err(|_| FrameError::BadLength {
        full,
        head: HEADER_LEN as i64,
    })?;
    if full_len > max_frame_len {
        return Err(FrameError::TooLarge {
            len: full_len,
            max: max_frame_len,
        });
    }
    if have < 9 {
        return Ok(None);
    }
    let head = i64::from(be_i16_at(buf, 7));
    if head < HEADER_LEN as i64 || full < head {
        return Err(FrameError::BadLength { full, head });
    }
    let head_len = usize::try_from(head).map_err(|_| FrameError::BadLength { full, head })?;
    if have < 10 {
        return Ok(None);
    }
    let raw_type = byte_at(buf, 9);
    let msg_type = MsgType::from_u8(raw_type).ok_or(FrameError::UnknownMsgType(raw_type))?;
    if have < full_len {
        // Bounded by max_frame_len above, so reserving the rest is safe and saves re-allocs.
        buf.reserve(full_len - have);
        return Ok(None);
    }

    let head_map = match buf.get(HEADER_LEN..head_len) {
        Some(raw) => decode_head_map(raw)?,
        None => return Err(FrameError::BadLength { full, head }),
    };
    let codec = byte_at(buf, 10);
    let compressor = byte_at(buf, 11);
    let request_id = be_i32_at(buf, 12);

    let mut whole = buf.split_to(full_len).freeze();
    whole.advance(head_len);
    Ok(Some(Frame {
        version,
        msg_type,
        codec,
        compressor,
        request_id,
        head_map,
        body: whole,
    }))
}

fn decode_head_map(raw: &[u8]) -> Result<HeadMap, FrameError> {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while pos < raw.len() {
        let key = head_map_string(raw, &mut pos)?;
        let value = head_map_string(raw, &mut pos)?;
        entries.push((key, value));
    }
    Ok(entries)
}

fn head_map_string(raw: &[u8], pos: &mut usize) -> Result<Option<String>, FrameError> {
    let len_bytes = raw
        .get(*pos..*pos + 2)
        .ok_or_else(|| FrameError::BadHeadMap(format!("length truncated at offset {pos}")))?;
    let len = i16::from_be_bytes([byte_at(len_bytes, 0), byte_at(len_bytes, 1)]);
    *pos += 2;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len)
        .map_err(|_| FrameError::BadHeadMap(format!("negative length {len}")))?;
    let text = raw
        .get(*pos..*pos + len)
        .ok_or_else(|| FrameError::BadHeadMap(format!("string of {len} bytes truncated")))?;
    *pos += len;
    std::str::from_utf8(text)
        .map(|s| Some(s.to_owned()))
        .map_err(|_| FrameError::BadHeadMap("invalid UTF-8".to_owned()))
}

fn put_head_map_string(out: &mut BytesMut, s: Option<&str>) {
    match s {
        None => out.put_i16(-1),
        Some(s) => crate::codec::put_str16(out, s),
    }
}

fn encoded_head_map(head_map: &[(Option<String>, Option<String>)]) -> BytesMut {
    let mut out = BytesMut::new();
    let limit = i16::MAX as usize - HEADER_LEN;
    for (key, value) in head_map {
        // Java's writer skips null keys: the reader could not represent them in its map.
        let Some(key) = key else { continue };
        let mut entry = BytesMut::new();
        put_head_map_string(&mut entry, Some(key));
        put_head_map_string(&mut entry, value.as_deref());
        // The head length is an i16; entries that would overflow it are dropped.
        if out.len() + entry.len() > limit {
            break;
        }
        out.extend_from_slice(&entry);
    }
    out
}

/// Appends `frame` to `out`, writing `frame.version` as given and the body as is.
pub fn encode_frame(frame: &Frame, out: &mut BytesMut) {
    let head_map = encoded_head_map(&frame.head_map);
    let head_len = HEADER_LEN + head_map.len();
    let full_len = head_len + frame.body.len();
    out.reserve(full_len);
    out.put_slice(&MAGIC);
    out.put_u8(frame.version);
    out.put_i32(i32::try_from(full_len).unwrap_or(i32::MAX));
    out.put_i16(head_len as i16);
    out.put_u8(frame.msg_type as u8);
    out.put_u8(frame.codec);
    out.put_u8(frame.compressor);
    out.put_i32(frame.request_id);
    out.put_slice(&head_map);
    out.put_slice(&frame.body);
}

/// The sans-IO read side of a connection: bytes go in as they arrive (in any split), whole
/// frames come out, checked as [`decode_frame`] checks them. It also remembers the version of
/// the first frame, which fixes a connection's protocol version.
#[derive(Debug)]
pub struct FrameBuffer {
    buf: BytesMut,
    max_frame_len: usize,
    /// Free room kept ahead of each socket read, so that a burst of frames needs one read.
    read_room: usize,
    first_version: Option<u8>,
}

impl FrameBuffer {
    /// Buffers frames of at most `max_frame_len` bytes, reading `read_room` bytes at a time.
    pub fn new(max_frame_len: usize, read_room: usize) -> FrameBuffer {
        FrameBuffer {
            buf: BytesMut::with_capacity(read_room),
            max_frame_len,
            read_room: read_room.max(HEADER_LEN),
            first_version: None,
        }
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer to read the socket into, with room reserved for a read of `read_room`
    /// bytes (a reader such as tokio's `read_buf` appends to it).
    pub fn read_target(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < self.read_room / 4 {
            self.buf.reserve(self.read_room);
        }
        &mut self.buf
    }

    /// The next whole frame, `Ok(None)` when more bytes are needed. An error means framing is
    /// lost: the connection must be closed, as nothing after it can be trusted.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let frame = decode_frame(&mut self.buf, self.max_frame_len)?;
        if let Some(frame) = &frame {
            self.first_version.get_or_insert(frame.version);
        }
        Ok(frame)
    }

    /// The version byte of the first frame decoded, once there was one.
    pub fn first_version(&self) -> Option<u8> {
        self.first_version
    }

    /// Bytes received and not yet decoded.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }
}

/// The write side's encoder: frames appended back to back into one buffer, so that all the
/// frames queued at one wake-up leave in one socket write. Counts them for statistics.
#[derive(Debug, Default)]
pub struct FrameBatch {
    buf: BytesMut,
    frames: u64,
}

impl FrameBatch {
    pub fn with_capacity(bytes: usize) -> FrameBatch {
        FrameBatch {
            buf: BytesMut::with_capacity(bytes),
            frames: 0,
        }
    }

    /// Appends a frame whose body is already encoded (heartbeats, raw frames).
    pub fn push_frame(&mut self, frame: &Frame) {
        encode_frame(frame, &mut self.buf);
        self.frames += 1;
    }

    /// Appends a heartbeat (ping or pong) of `version` with no head map or body.
    pub fn push_heartbeat(&mut self, msg_type: MsgType, version: u8, request_id: i32) {
        self.push_frame(&Frame::heartbeat(msg_type, version, request_id));
    }

    /// Appends a frame carrying `msg` (see [`crate::encode_message`]); on error nothing is
    /// appended.
    pub fn push_message(
        &mut self,
        msg_type: MsgType,
        request_id: i32,
        codec: u8,
        compressor: u8,
        msg: &crate::Message,
        ctx: &crate::CodecContext,
    ) -> Result<(), crate::DecodeError> {
        let start = self.buf.len();
        let encoded = crate::encode_message(
            msg_type,
            request_id,
            codec,
            compressor,
            msg,
            ctx,
            &mut self.buf,
        );
        match encoded {
            Ok(()) => self.frames += 1,
            Err(_) => self.buf.truncate(start),
        }
        encoded
    }

    /// The encoded bytes, for one socket write.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Frames appended since the last [`FrameBatch::clear`].
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Empties the batch after it was written, keeping its allocation.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &'static [u8]) -> Frame {
        Frame {
            version: 1,
            msg_type: MsgType::Request,
            codec: 1,
            compressor: 0,
            request_id: 42,
            head_map: vec![],
            body: Bytes::from_static(body),
        }
    }

    fn encoded(f: &Frame) -> BytesMut {
        let mut out = BytesMut::new();
        encode_frame(f, &mut out);
        out
    }

    #[test]
    fn round_trip_and_partial_input_at_every_split() {
        let mut f = frame(b"\x00\x01hello");
        f.head_map = vec![
            (Some("k".into()), None),
            (Some(String::new()), Some(String::new())),
            (Some("trace".into()), Some("abc-1".into())),
        ];
        let wire = encoded(&f);
        for split in 0..wire.len() {
            let mut buf = BytesMut::from(&wire[..split]);
            assert!(
                decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
                    .expect("prefix is valid")
                    .is_none(),
                "split {split}"
            );
            assert_eq!(buf.len(), split, "nothing consumed at split {split}");
        }
        let mut buf = wire.clone();
        buf.extend_from_slice(&wire);
        let a = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN).expect("valid");
        assert_eq!(a.as_ref(), Some(&f));
        assert_eq!(buf.len(), wire.len());
        let b = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN).expect("valid");
        assert_eq!(b.as_ref(), Some(&f));
        assert!(buf.is_empty());
    }

    #[test]
    fn null_key_is_skipped_on_encode() {
        let mut f = frame(b"");
        f.head_map = vec![
            (None, Some("x".into())),
            (Some("a".into()), Some("b".into())),
        ];
        let mut buf = encoded(&f);
        let back = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
            .expect("valid")
            .expect("whole");
        assert_eq!(back.head_map, vec![(Some("a".into()), Some("b".into()))]);
    }

    #[test]
    fn head_map_wire_forms() {
        // key "" (len 0), value null (-1); key "a", value "bc".
        let mut wire = BytesMut::from(
            &[
                0xda, 0xda, 1, 0, 0, 0, 0x1f, 0, 0x1b, 0, 1, 0, 0, 0, 0, 7, 0, 0, 0xff, 0xff, 0, 1,
                b'a', 0, 2, b'b', b'c', 0, 1, 0, 9,
            ][..],
        );
        let f = decode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN)
            .expect("valid")
            .expect("whole");
        assert_eq!(
            f.head_map,
            vec![
                (Some(String::new()), None),
                (Some("a".into()), Some("bc".into()))
            ]
        );
        assert_eq!(&f.body[..], &[0, 1, 0, 9]);
        assert_eq!(f.request_id, 7);
    }

    #[test]
    fn bad_head_maps() {
        for map in [
            &[0x00u8][..],           // half a length
            &[0x00, 0x05, b'a'][..], // key longer than the map
            &[0xff, 0xfe, 0, 0][..], // negative length other than -1
            &[0x00, 0x01, 0xff][..], // invalid UTF-8 (and no value)
            &[0x00, 0x01, b'a'][..], // key without value
        ] {
            let mut wire = BytesMut::new();
            let head = HEADER_LEN + map.len();
            wire.put_slice(&MAGIC);
            wire.put_u8(1);
            wire.put_i32(head as i32);
            wire.put_i16(head as i16);
            wire.put_slice(&[0, 1, 0, 0, 0, 0, 1]);
            wire.put_slice(map);
            assert!(
                matches!(
                    decode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN),
                    Err(FrameError::BadHeadMap(_))
                ),
                "{map:02x?}"
            );
        }
    }

    #[test]
    fn rejects_early() {
        let mut buf = BytesMut::from(&[0xda, 0x00][..]);
        assert!(matches!(
            decode_frame(&mut buf, 100),
            Err(FrameError::BadMagic([0xda, 0x00]))
        ));
        let mut buf = BytesMut::from(&[0xda, 0xda, 0x00][..]);
        assert!(matches!(
            decode_frame(&mut buf, 100),
            Err(FrameError::UnsupportedVersion(0))
        ));
        let mut buf = BytesMut::from(&[0xda, 0xda, 3][..]);
        assert!(matches!(
            decode_frame(&mut buf, 100),
            Err(FrameError::UnsupportedVersion(3))
        ));
        // Too large is known after 7 bytes.
        let mut buf = BytesMut::from(&[0xda, 0xda, 1, 0, 0, 0x10, 0][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::TooLarge {
                len: 4096,
                max: 1024
            })
        ));
        let mut buf = BytesMut::from(&[0xda, 0xda, 2, 0xff, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::BadLength { full: -1, .. })
        ));
        // head < 16
        let mut buf = BytesMut::from(&[0xda, 0xda, 1, 0, 0, 0, 0x10, 0, 0x0f][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::BadLength { full: 16, head: 15 })
        ));
        // full < head
        let mut buf = BytesMut::from(&[0xda, 0xda, 1, 0, 0, 0, 0x12, 0, 0x14][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::BadLength { full: 18, head: 20 })
        ));
        let mut buf = BytesMut::from(&[0xda, 0xda, 1, 0, 0, 0, 0x10, 0, 0x10, 5][..]);
        assert!(matches!(
            decode_frame(&mut buf, 1024),
            Err(FrameError::UnknownMsgType(5))
        ));
    }

    #[test]
    fn version_two_is_accepted_and_pong_follows_the_connection() {
        let mut buf =
            BytesMut::from(&[0xda, 0xda, 2, 0, 0, 0, 0x10, 0, 0x10, 3, 1, 0, 0, 0, 0, 9][..]);
        let ping = decode_frame(&mut buf, 1024).expect("valid").expect("whole");
        assert_eq!(ping.version, 2);
        assert_eq!(ping.msg_type, MsgType::HeartbeatRequest);
        let pong = ping.heartbeat_response_to();
        assert_eq!(
            &encoded(&pong)[..],
            &[0xda, 0xda, 1, 0, 0, 0, 0x10, 0, 0x10, 4, 1, 0, 0, 0, 0, 9]
        );
        let pong = ping.heartbeat_response(negotiated_version(ping.version));
        assert_eq!(
            &encoded(&pong)[..],
            &[0xda, 0xda, 2, 0, 0, 0, 0x10, 0, 0x10, 4, 1, 0, 0, 0, 0, 9]
        );
    }

    #[test]
    fn negotiation_keeps_the_peer_version_up_to_the_highest() {
        assert_eq!(negotiated_version(1), PROTOCOL_VERSION);
        assert_eq!(negotiated_version(2), PROTOCOL_VERSION_2);
        // A newer client talking to this server gets this server's highest (Seata PR #7250).
        assert_eq!(negotiated_version(3), HIGHEST_PROTOCOL_VERSION);
    }

    fn three_frames() -> (Vec<Frame>, BytesMut) {
        let mut first = frame(b"\x00\x01abc");
        first.head_map = vec![(Some("k".into()), Some("v".into()))];
        let ping = Frame::heartbeat(MsgType::HeartbeatRequest, 2, 7);
        let mut last = frame(b"");
        last.request_id = -3;
        let frames = vec![first, ping, last];
        let mut wire = BytesMut::new();
        for f in &frames {
            encode_frame(f, &mut wire);
        }
        (frames, wire)
    }

    #[test]
    fn frame_buffer_yields_every_frame_whatever_the_read_boundaries() {
        let (frames, wire) = three_frames();
        // Two reads split at every byte boundary.
        for split in 0..=wire.len() {
            let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME_LEN, 64);
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                buffer.extend(part);
                while let Some(f) = buffer.next_frame().expect("valid") {
                    got.push(f);
                }
            }
            assert_eq!(got, frames, "split at {split}");
            assert_eq!(buffer.buffered_len(), 0);
            assert_eq!(buffer.first_version(), Some(1));
        }
        // One byte per read.
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME_LEN, 64);
        let mut got = Vec::new();
        for byte in wire.iter() {
            buffer.read_target().put_u8(*byte);
            while let Some(f) = buffer.next_frame().expect("valid") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }

    #[test]
    fn frame_buffer_yields_several_frames_of_one_read_in_order() {
        let (frames, wire) = three_frames();
        let mut buffer = FrameBuffer::new(DEFAULT_MAX_FRAME_LEN, 16);
        buffer.extend(&wire);
        for expected in &frames {
            assert_eq!(buffer.next_frame().expect("valid").as_ref(), Some(expected));
        }
        assert_eq!(buffer.next_frame().expect("valid"), None);
    }

    #[test]
    fn frame_buffer_refuses_an_oversized_frame_from_its_length_alone() {
        let mut buffer = FrameBuffer::new(1024, 64);
        // Only the first 7 bytes of a 1025-byte frame: refused before the rest arrives.
        buffer.extend(&[0xda, 0xda, 1, 0, 0, 0x04, 0x01]);
        assert!(matches!(
            buffer.next_frame(),
            Err(FrameError::TooLarge {
                len: 1025,
                max: 1024
            })
        ));
        assert_eq!(buffer.first_version(), None);
    }

    #[test]
    fn frame_batch_appends_frames_back_to_back_and_counts_them() {
        let (frames, wire) = three_frames();
        let mut batch = FrameBatch::with_capacity(16);
        for f in &frames {
            batch.push_frame(f);
        }
        assert_eq!(batch.bytes(), &wire[..]);
        assert_eq!(batch.frames(), 3);
        batch.push_heartbeat(MsgType::HeartbeatResponse, 1, 9);
        assert_eq!(
            batch.bytes().get(wire.len()..),
            Some(&[0xda, 0xda, 1, 0, 0, 0, 0x10, 0, 0x10, 4, 1, 0, 0, 0, 0, 9][..])
        );
        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.frames(), 0);
    }

    proptest::proptest! {
        #[test]
        fn frame_buffer_never_panics_on_arbitrary_bytes(
            chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..64), 0..16),
            magic_first in proptest::bool::ANY,
        ) {
            let mut buffer = FrameBuffer::new(4096, 64);
            if magic_first {
                buffer.extend(&[0xda, 0xda, 1]);
            }
            for chunk in chunks {
                buffer.extend(&chunk);
                while let Ok(Some(f)) = buffer.next_frame() {
                    proptest::prop_assert!(f.body.len() < 4096);
                }
            }
        }
    }
}
