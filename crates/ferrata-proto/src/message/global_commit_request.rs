//! GlobalCommitRequest (type 7, TM → TC): commits a global transaction (spec §8.5).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec};
use crate::codec::{Reader, Result, put_str16};

/// | # | field     | encoding               |
/// |---|-----------|------------------------|
/// | 1 | xid       | str16                  |
/// | 2 | extraData | str16 (normally empty) |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalCommitRequest {
    pub xid: String,
    pub extra_data: String,
}

impl MessageCodec for GlobalCommitRequest {
    const TYPE_CODE: u16 = 7;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.xid);
        put_str16(out, &self.extra_data);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalCommitRequest {
            xid: r.str16()?,
            extra_data: r.str16()?,
        })
    }
}
