//! `ferrata-proto`: Seata's wire vocabulary and codec — frames (protocol versions 1 and 2), the
//! head map, every SEATA-codec message (one file each), merged batches and bounded compressors.
//! No I/O.

pub mod auth;
pub mod codec;
pub mod compress;
pub mod enums;
pub mod frame;
pub mod message;
pub mod version;

use bytes::{BufMut, BytesMut};

pub use codec::{DecodeError, Reader, put_str16, put_str32};
pub use compress::{DEFAULT_MAX_DECOMPRESSED_LEN, compress, compress_for, decompress};
pub use enums::{BranchStatus, BranchType, GlobalStatus, ResultCode, TransactionExceptionCode};
pub use frame::{
    DEFAULT_MAX_FRAME_LEN, Frame, FrameBatch, FrameBuffer, FrameError, HEADER_LEN,
    HIGHEST_PROTOCOL_VERSION, HeadMap, MAGIC, MsgType, PROTOCOL_VERSION, PROTOCOL_VERSION_2,
    decode_frame, encode_frame, negotiated_version,
};
pub use message::{
    BatchResultMessage, BranchCommitRequest, BranchCommitResponse, BranchRegisterRequest,
    BranchRegisterResponse, BranchReportRequest, BranchReportResponse, BranchRollbackRequest,
    BranchRollbackResponse, CodecContext, Dialect, GlobalBeginRequest, GlobalBeginResponse,
    GlobalCommitRequest, GlobalCommitResponse, GlobalLockQueryRequest, GlobalLockQueryResponse,
    GlobalReportRequest, GlobalReportResponse, GlobalRollbackRequest, GlobalRollbackResponse,
    GlobalStatusRequest, GlobalStatusResponse, MergeResultMessage, MergedWarpMessage, Message,
    MessageCodec, RegisterRmRequest, RegisterRmResponse, RegisterTmRequest, RegisterTmResponse,
    ResultInfo, UndoLogDeleteRequest, UnregisterRmRequest, UnregisterRmResponse,
};
pub use version::ClientVersion;

/// The only serializer this crate implements (spec §5.1).
pub const CODEC_SEATA: u8 = 1;

/// Decompresses (bounded by `max_decompressed`) and decodes a non-heartbeat frame's body in the
/// layouts of `ctx.protocol_version` (the connection's, whatever this frame's version byte says,
/// as Java does); codec must be 1 (SEATA) else `UnsupportedCodec`; an empty body is
/// `EmptyBody`; a type code this crate does not know is `UnknownTypeCode` (the frame itself is
/// sound: skip it).
pub fn decode_body(
    frame: &Frame,
    ctx: &CodecContext,
    max_decompressed: usize,
) -> Result<Message, DecodeError> {
    if frame.codec != CODEC_SEATA {
        return Err(DecodeError::UnsupportedCodec(frame.codec));
    }
    if frame.body.is_empty() {
        return Err(DecodeError::EmptyBody);
    }
    if frame.compressor == compress::COMPRESSOR_NONE {
        if frame.body.len() > max_decompressed {
            return Err(DecodeError::DecompressedTooLarge {
                limit: max_decompressed,
            });
        }
        return Message::decode(&frame.body, ctx);
    }
    let plain = decompress(frame.compressor, &frame.body, max_decompressed)?;
    Message::decode(&plain, ctx)
}

/// Builds a complete frame carrying `msg` in the connection's protocol version
/// (`ctx.protocol_version`, written in the header and selecting the body layouts), compressing
/// with `compressor`, with an empty head map (spec §2.2: a TC should not emit head-map entries).
pub fn encode_message(
    msg_type: MsgType,
    request_id: i32,
    codec: u8,
    compressor: u8,
    msg: &Message,
    ctx: &CodecContext,
    out: &mut BytesMut,
) -> Result<(), DecodeError> {
    if codec != CODEC_SEATA {
        return Err(DecodeError::UnsupportedCodec(codec));
    }
    if compressor == compress::COMPRESSOR_NONE {
        // The common case: serialize straight after the header and back-fill the length, so
        // that a frame costs no allocation of its own (servers and clients encode thousands
        // per second into one reused buffer).
        let start = out.len();
        put_header(
            out,
            ctx.protocol_version,
            msg_type,
            0,
            codec,
            compressor,
            request_id,
        );
        msg.encode(ctx, out);
        let full_len = i32::try_from(out.len() - start).unwrap_or(i32::MAX);
        if let Some(slot) = out.get_mut(start + 3..start + 7) {
            slot.copy_from_slice(&full_len.to_be_bytes());
        }
        return Ok(());
    }
    let mut body = BytesMut::new();
    msg.encode(ctx, &mut body);
    let packed = compress::compress_for(compressor, &body, ctx.client_version)?;
    let full_len = HEADER_LEN + packed.len();
    out.reserve(full_len);
    put_header(
        out,
        ctx.protocol_version,
        msg_type,
        i32::try_from(full_len).unwrap_or(i32::MAX),
        codec,
        compressor,
        request_id,
    );
    out.put_slice(&packed);
    Ok(())
}

/// The 16-byte header with an empty head map (spec §2.1).
fn put_header(
    out: &mut BytesMut,
    version: u8,
    msg_type: MsgType,
    full_len: i32,
    codec: u8,
    compressor: u8,
    request_id: i32,
) {
    out.reserve(HEADER_LEN + 64);
    out.put_slice(&MAGIC);
    out.put_u8(version);
    out.put_i32(full_len);
    out.put_i16(HEADER_LEN as i16);
    out.put_u8(msg_type as u8);
    out.put_u8(codec);
    out.put_u8(compressor);
    out.put_i32(request_id);
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(codec: u8, compressor: u8, body: &'static [u8]) -> Frame {
        Frame {
            version: 1,
            msg_type: MsgType::Request,
            codec,
            compressor,
            request_id: 1,
            head_map: Vec::new(),
            body: Bytes::from_static(body),
        }
    }

    #[test]
    fn decode_body_checks_codec_body_and_cap() {
        let ctx = CodecContext::default();
        assert!(matches!(
            decode_body(&frame(0x16, 0, b"\x00\x0f"), &ctx, 100),
            Err(DecodeError::UnsupportedCodec(0x16))
        ));
        assert!(matches!(
            decode_body(&frame(1, 0, b""), &ctx, 100),
            Err(DecodeError::EmptyBody)
        ));
        assert!(matches!(
            decode_body(&frame(1, 0, b"\x00\x0f\x00\x00\x00\x00"), &ctx, 3),
            Err(DecodeError::DecompressedTooLarge { limit: 3 })
        ));
        assert!(matches!(
            decode_body(&frame(1, 3, b"\x00\x0f"), &ctx, 100),
            Err(DecodeError::UnsupportedCompressor(3))
        ));
        assert_eq!(
            decode_body(&frame(1, 0, b"\x00\x0f\x00\x01x\x00\x00"), &ctx, 100).ok(),
            Some(Message::GlobalStatus(GlobalStatusRequest {
                xid: "x".into(),
                extra_data: String::new(),
            }))
        );
    }

    #[test]
    fn encode_message_appends_whole_frames_to_a_shared_buffer() {
        let ctx = CodecContext::default();
        let first = Message::GlobalCommit(GlobalCommitRequest {
            xid: "127.0.0.1:8091:1".into(),
            extra_data: String::new(),
        });
        let second = Message::GlobalStatus(GlobalStatusRequest {
            xid: "x".repeat(300),
            extra_data: String::new(),
        });
        let mut out = BytesMut::new();
        encode_message(MsgType::Request, 1, CODEC_SEATA, 0, &first, &ctx, &mut out)
            .expect("encode");
        encode_message(MsgType::Oneway, 2, CODEC_SEATA, 0, &second, &ctx, &mut out)
            .expect("encode");
        let a = decode_frame(&mut out, DEFAULT_MAX_FRAME_LEN)
            .expect("valid")
            .expect("whole");
        let b = decode_frame(&mut out, DEFAULT_MAX_FRAME_LEN)
            .expect("valid")
            .expect("whole");
        assert!(out.is_empty(), "both frames consumed exactly");
        assert_eq!((a.request_id, b.request_id), (1, 2));
        assert_eq!(b.msg_type, MsgType::Oneway);
        assert_eq!(decode_body(&a, &ctx, 1000).ok(), Some(first));
        assert_eq!(decode_body(&b, &ctx, 1000).ok(), Some(second));
    }

    #[test]
    fn encode_message_writes_the_connection_version() {
        let msg = Message::RegisterTmResponse(RegisterTmResponse::new(true, "2.7.0"));
        let mut v1 = BytesMut::new();
        let ctx = CodecContext::default();
        encode_message(MsgType::Response, 1, CODEC_SEATA, 0, &msg, &ctx, &mut v1).expect("v1");
        assert_eq!(&v1[..3], &[0xda, 0xda, 1]);
        assert_eq!(&v1[16..], b"\x00\x66\x01\x00\x052.7.0");

        let ctx = ctx.with_protocol_version(2);
        for compressor in [0, 6] {
            let mut v2 = BytesMut::new();
            encode_message(
                MsgType::Response,
                1,
                CODEC_SEATA,
                compressor,
                &msg,
                &ctx,
                &mut v2,
            )
            .expect("v2");
            assert_eq!(&v2[..3], &[0xda, 0xda, 2]);
            let frame = decode_frame(&mut v2, DEFAULT_MAX_FRAME_LEN)
                .expect("valid")
                .expect("whole");
            assert_eq!(frame.version, 2);
            if compressor == 0 {
                // The result code (1, Success) comes before identified.
                assert_eq!(&frame.body[..], b"\x00\x66\x01\x01\x00\x052.7.0");
            }
            assert_eq!(decode_body(&frame, &ctx, 1000).ok(), Some(msg.clone()));
        }
    }

    #[test]
    fn encode_message_compresses_the_type_code_too() {
        let ctx = CodecContext::default();
        let msg = Message::GlobalCommit(GlobalCommitRequest {
            xid: "a".repeat(500),
            extra_data: String::new(),
        });
        let mut out = BytesMut::new();
        encode_message(MsgType::Request, 3, CODEC_SEATA, 6, &msg, &ctx, &mut out).expect("encode");
        let frame = decode_frame(&mut out, DEFAULT_MAX_FRAME_LEN)
            .expect("valid")
            .expect("whole");
        assert_eq!(frame.compressor, 6);
        // zlib header, not the 0x0007 type code.
        assert_eq!(frame.body.first(), Some(&0x78));
        assert!(frame.body.len() < 100);
        assert_eq!(decode_body(&frame, &ctx, 1000).ok(), Some(msg.clone()));
        assert!(matches!(
            encode_message(MsgType::Request, 3, 2, 0, &msg, &ctx, &mut out),
            Err(DecodeError::UnsupportedCodec(2))
        ));
    }
}
