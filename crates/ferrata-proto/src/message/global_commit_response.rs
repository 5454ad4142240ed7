//! GlobalCommitResponse (type 8, TC → TM): the global status after the request (spec §8.6).

use bytes::BytesMut;

use super::{
    CodecContext, MessageCodec, MsgLen, ResultInfo, put_global_status, read_global_status,
};
use crate::codec::{Reader, Result};
use crate::enums::GlobalStatus;

/// | # | field           | encoding                                             |
/// |---|-----------------|------------------------------------------------------|
/// | 1 | TxResponseBlock | §8.1 (2-byte msg length)                             |
/// | 2 | globalStatus    | u8 code, clamped to what the client knows (§9.3)     |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalCommitResponse {
    pub result: ResultInfo,
    pub global_status: GlobalStatus,
}

impl MessageCodec for GlobalCommitResponse {
    const TYPE_CODE: u16 = 8;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::I16, out);
        put_global_status(ctx, self.global_status, out);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalCommitResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::I16)?,
            global_status: read_global_status(r)?,
        })
    }
}
