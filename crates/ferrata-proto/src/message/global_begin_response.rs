//! GlobalBeginResponse (type 2, TC → TM): the new XID (spec §8.4).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec, MsgLen, ResultInfo};
use crate::codec::{Reader, Result, put_str16};

/// | # | field           | encoding                  |
/// |---|-----------------|---------------------------|
/// | 1 | TxResponseBlock | §8.1 (2-byte msg length)  |
/// | 2 | xid             | str16                     |
/// | 3 | extraData       | str16 (normally empty)    |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalBeginResponse {
    pub result: ResultInfo,
    pub xid: String,
    pub extra_data: String,
}

impl MessageCodec for GlobalBeginResponse {
    const TYPE_CODE: u16 = 2;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        self.result.encode(ctx, MsgLen::I16, out);
        put_str16(out, &self.xid);
        put_str16(out, &self.extra_data);
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalBeginResponse {
            result: ResultInfo::decode(r, ctx, MsgLen::I16)?,
            xid: r.str16()?,
            extra_data: r.str16()?,
        })
    }
}
