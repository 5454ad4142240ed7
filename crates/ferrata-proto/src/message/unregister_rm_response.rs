//! UnregisterRMResponse (type 106, TC → client): the identify answer in its v1 layout, which has
//! no result code or message on the wire, on version-2 connections too: Seata 2.7 has a v2
//! codec only for 102 and 104 (spec §8.3).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec};
use crate::codec::{Reader, Result, put_str16};

/// | # | field      | encoding                                   |
/// |---|------------|--------------------------------------------|
/// | 1 | identified | u8: 1 accepted; any other value is false   |
/// | 2 | version    | str16, the TC's version                    |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterRmResponse {
    pub identified: bool,
    pub version: String,
}

impl MessageCodec for UnregisterRmResponse {
    const TYPE_CODE: u16 = 106;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        out.put_u8(u8::from(self.identified));
        put_str16(out, &self.version);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(UnregisterRmResponse {
            identified: r.u8()? == 1,
            version: r.str16()?,
        })
    }
}
