//! BranchRollbackResponse (type 6, RM → TC): the branch status after phase-two rollback (spec §8.12).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, MsgLen, ResultInfo, read_branch_status};
use crate::codec::{Reader, Result, put_str16};
use crate::enums::BranchStatus;

/// | # | field           | encoding                                              |
/// |---|-----------------|-------------------------------------------------------|
/// | 1 | TxResponseBlock | §8.1; seata-go uses a 1-byte msg length (§15.2)       |
/// | 2 | xid             | str16                                                 |
/// | 3 | branchId        | i64                                                   |
/// | 4 | branchStatus    | u8 code                                               |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchRollbackResponse {
    pub result: ResultInfo,
    pub xid: String,
    pub branch_id: i64,
    pub branch_status: BranchStatus,
}

impl MessageCodec for BranchRollbackResponse {
    const TYPE_CODE: u16 = 6;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::go_quirk(ctx), out);
        put_str16(out, &self.xid);
        out.put_i64(self.branch_id);
        out.put_u8(self.branch_status.code());
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(BranchRollbackResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::go_quirk(ctx))?,
            xid: r.str16()?,
            branch_id: r.i64()?,
            branch_status: read_branch_status(r)?,
        })
    }
}
