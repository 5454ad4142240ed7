//! BranchRegisterResponse (type 12, TC → RM): the new branch id (spec §8.8).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, MsgLen, ResultInfo};
use crate::codec::{Reader, Result};

/// | # | field           | encoding                 |
/// |---|-----------------|--------------------------|
/// | 1 | TxResponseBlock | §8.1 (2-byte msg length) |
/// | 2 | branchId        | i64 (0 on failure)       |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BranchRegisterResponse {
    pub result: ResultInfo,
    pub branch_id: i64,
}

impl MessageCodec for BranchRegisterResponse {
    const TYPE_CODE: u16 = 12;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::I16, out);
        out.put_i64(self.branch_id);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(BranchRegisterResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::I16)?,
            branch_id: r.i64()?,
        })
    }
}
