//! GlobalLockQueryResponse (type 22, TC → RM): whether the queried locks are free (spec §8.10).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, MsgLen, ResultInfo};
use crate::codec::{Reader, Result};

/// | # | field           | encoding                                        |
/// |---|-----------------|-------------------------------------------------|
/// | 1 | TxResponseBlock | §8.1; seata-go uses a 1-byte msg length (§15.2) |
/// | 2 | lockable        | i16: 1 = true, 0 = false (two bytes)            |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalLockQueryResponse {
    pub result: ResultInfo,
    pub lockable: bool,
}

impl MessageCodec for GlobalLockQueryResponse {
    const TYPE_CODE: u16 = 22;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::go_quirk(ctx), out);
        out.put_i16(i16::from(self.lockable));
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalLockQueryResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::go_quirk(ctx))?,
            // Java compares with 1; anything else is "not lockable".
            lockable: r.i16()? == 1,
        })
    }
}
