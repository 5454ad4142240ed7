//! Fuzz target: arbitrary bytes through the frame decoder in a loop, as a connection's read
//! loop would, and every complete frame's body through the decoder for both dialects.
#![no_main]

use bytes::BytesMut;
use ferrata_proto::{
    ClientVersion, CodecContext, Dialect, MsgType, decode_body, decode_frame, encode_message,
};
use libfuzzer_sys::fuzz_target;

/// Small caps keep each run fast; the limits themselves are exercised by the unit tests.
const MAX_FRAME: usize = 1024 * 1024;
const MAX_BODY: usize = 1024 * 1024;

fuzz_target!(|data: &[u8]| {
    let contexts = [
        CodecContext::default(),
        CodecContext::new(ClientVersion::new(1, 4, 2), Dialect::Java),
        CodecContext::new(ClientVersion::new(1, 5, 2), Dialect::Go),
    ];
    let mut buf = BytesMut::from(data);
    while let Ok(Some(frame)) = decode_frame(&mut buf, MAX_FRAME) {
        if frame.msg_type.is_heartbeat() {
            let _ = frame.heartbeat_response_to();
            continue;
        }
        for ctx in &contexts {
            if let Ok(msg) = decode_body(&frame, ctx, MAX_BODY) {
                // Anything we accept must re-encode without panicking.
                let mut out = BytesMut::new();
                let _ = encode_message(
                    MsgType::Response,
                    frame.request_id,
                    1,
                    0,
                    &msg,
                    ctx,
                    &mut out,
                );
            }
        }
    }
});
