//! GlobalBeginRequest (type 1, TM → TC): opens a global transaction (spec §8.4).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec};
use crate::codec::{Reader, Result, put_str16};

/// | # | field           | encoding                    |
/// |---|-----------------|-----------------------------|
/// | 1 | timeout         | i32, milliseconds           |
/// | 2 | transactionName | str16                       |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalBeginRequest {
    pub timeout_ms: i32,
    pub transaction_name: String,
}

impl MessageCodec for GlobalBeginRequest {
    const TYPE_CODE: u16 = 1;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        out.put_i32(self.timeout_ms);
        put_str16(out, &self.transaction_name);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalBeginRequest {
            timeout_ms: r.i32()?,
            transaction_name: r.str16()?,
        })
    }
}
