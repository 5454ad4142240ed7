//! BranchCommitRequest (type 3, TC → RM): phase-two commit of one branch (spec §8.11).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, read_branch_type};
use crate::codec::{Reader, Result, put_str16, put_str32};
use crate::enums::BranchType;

/// | # | field           | encoding                          |
/// |---|-----------------|-----------------------------------|
/// | 1 | xid             | str16                             |
/// | 2 | branchId        | i64                               |
/// | 3 | branchType      | u8 ordinal                        |
/// | 4 | resourceId      | str16                             |
/// | 5 | applicationData | str32 (the value from registration) |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchCommitRequest {
    pub xid: String,
    pub branch_id: i64,
    pub branch_type: BranchType,
    pub resource_id: String,
    pub application_data: String,
}

impl MessageCodec for BranchCommitRequest {
    const TYPE_CODE: u16 = 3;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.xid);
        out.put_i64(self.branch_id);
        out.put_u8(self.branch_type.code());
        put_str16(out, &self.resource_id);
        put_str32(out, &self.application_data);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(BranchCommitRequest {
            xid: r.str16()?,
            branch_id: r.i64()?,
            branch_type: read_branch_type(r)?,
            resource_id: r.str16()?,
            application_data: r.str32()?,
        })
    }
}
