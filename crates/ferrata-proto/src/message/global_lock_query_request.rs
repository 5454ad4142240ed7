//! GlobalLockQueryRequest (type 21, RM → TC): asks whether locks could be taken; same layout as BranchRegisterRequest (spec §8.7).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, read_branch_type};
use crate::codec::{Reader, Result, put_str16, put_str32};
use crate::enums::BranchType;

/// | # | field           | encoding                            |
/// |---|-----------------|-------------------------------------|
/// | 1 | xid             | str16                               |
/// | 2 | branchType      | u8 ordinal                          |
/// | 3 | resourceId      | str16                               |
/// | 4 | lockKey         | str32 (`table:pk1,pk2;table2:pk3`)  |
/// | 5 | applicationData | str32                               |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalLockQueryRequest {
    pub xid: String,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub lock_key: String,
    pub application_data: String,
}

impl MessageCodec for GlobalLockQueryRequest {
    const TYPE_CODE: u16 = 21;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.xid);
        out.put_u8(self.branch_type.code());
        put_str16(out, &self.resource_id);
        put_str32(out, &self.lock_key);
        put_str32(out, &self.application_data);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(GlobalLockQueryRequest {
            xid: r.str16()?,
            branch_type: read_branch_type(r)?,
            resource_id: r.str16()?,
            lock_key: r.str32()?,
            application_data: r.str32()?,
        })
    }
}
