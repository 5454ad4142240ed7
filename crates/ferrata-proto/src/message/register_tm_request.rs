//! RegisterTMRequest (type 101, TM → TC): identifies a transaction manager (spec §8.2).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec};
use crate::codec::{Reader, Result, put_str16};

/// | # | field                   | encoding                                   |
/// |---|-------------------------|--------------------------------------------|
/// | 1 | version                 | str16, client SDK version                  |
/// | 2 | applicationId           | str16                                      |
/// | 3 | transactionServiceGroup | str16                                      |
/// | 4 | extraData               | str16, `key=value\n` pairs (Java TM only)  |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RegisterTmRequest {
    pub version: String,
    pub application_id: String,
    pub transaction_service_group: String,
    pub extra_data: String,
}

impl MessageCodec for RegisterTmRequest {
    const TYPE_CODE: u16 = 101;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.version);
        put_str16(out, &self.application_id);
        put_str16(out, &self.transaction_service_group);
        put_str16(out, &self.extra_data);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(RegisterTmRequest {
            version: r.str16()?,
            application_id: r.str16()?,
            transaction_service_group: r.str16()?,
            extra_data: r.str16()?,
        })
    }
}
