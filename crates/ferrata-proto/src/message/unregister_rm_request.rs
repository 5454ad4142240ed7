//! UnregisterRMRequest (type 105, RM → TC): withdraws resources before shutdown (2.x branch only) (spec §8.2).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec};
use crate::codec::{Reader, Result, put_str16, put_str32};

/// | # | field                   | encoding                           |
/// |---|-------------------------|------------------------------------|
/// | 1 | version                 | str16, client SDK version          |
/// | 2 | applicationId           | str16                              |
/// | 3 | transactionServiceGroup | str16                              |
/// | 4 | extraData               | str16                              |
/// | 5 | resourceIds             | str32, comma-separated             |
///
/// Java stops reading after an empty version; we read every field and treat empty as absent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnregisterRmRequest {
    pub version: String,
    pub application_id: String,
    pub transaction_service_group: String,
    pub extra_data: String,
    pub resource_ids: String,
}

impl MessageCodec for UnregisterRmRequest {
    const TYPE_CODE: u16 = 105;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.version);
        put_str16(out, &self.application_id);
        put_str16(out, &self.transaction_service_group);
        put_str16(out, &self.extra_data);
        put_str32(out, &self.resource_ids);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(UnregisterRmRequest {
            version: r.str16()?,
            application_id: r.str16()?,
            transaction_service_group: r.str16()?,
            extra_data: r.str16()?,
            resource_ids: r.str32()?,
        })
    }
}
