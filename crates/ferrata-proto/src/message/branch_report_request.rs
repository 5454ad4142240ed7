//! BranchReportRequest (type 13, RM → TC): a branch reports its phase-one status (spec §8.9).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, read_branch_status, read_branch_type};
use crate::codec::{Reader, Result, put_str16, put_str32};
use crate::enums::{BranchStatus, BranchType};

/// | # | field           | encoding                          |
/// |---|-----------------|-----------------------------------|
/// | 1 | xid             | str16                             |
/// | 2 | branchId        | i64                               |
/// | 3 | status          | u8 BranchStatus code              |
/// | 4 | resourceId      | str16                             |
/// | 5 | applicationData | str32                             |
/// | 6 | branchType      | u8 ordinal — last in this message |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchReportRequest {
    pub xid: String,
    pub branch_id: i64,
    pub status: BranchStatus,
    pub resource_id: String,
    pub application_data: String,
    pub branch_type: BranchType,
}

impl MessageCodec for BranchReportRequest {
    const TYPE_CODE: u16 = 13;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.xid);
        out.put_i64(self.branch_id);
        out.put_u8(self.status.code());
        put_str16(out, &self.resource_id);
        put_str32(out, &self.application_data);
        out.put_u8(self.branch_type.code());
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(BranchReportRequest {
            xid: r.str16()?,
            branch_id: r.i64()?,
            status: read_branch_status(r)?,
            resource_id: r.str16()?,
            application_data: r.str32()?,
            branch_type: read_branch_type(r)?,
        })
    }
}
