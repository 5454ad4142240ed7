//! BranchReportResponse (type 14, TC → RM): acknowledges a branch report (spec §8.9).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec, MsgLen, ResultInfo};
use crate::codec::{Reader, Result};

/// | # | field           | encoding                                        |
/// |---|-----------------|-------------------------------------------------|
/// | 1 | TxResponseBlock | §8.1; seata-go uses a 1-byte msg length (§15.2) |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BranchReportResponse {
    pub result: ResultInfo,
}

impl MessageCodec for BranchReportResponse {
    const TYPE_CODE: u16 = 14;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::go_quirk(ctx), out);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(BranchReportResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::go_quirk(ctx))?,
        })
    }
}
