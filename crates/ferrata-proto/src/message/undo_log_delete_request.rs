//! UndoLogDeleteRequest (type 111, TC → RM, one-way): prune old undo logs (spec §8.13).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec, read_branch_type};
use crate::codec::{Reader, Result, put_str16};
use crate::enums::BranchType;

/// | # | field      | encoding                     |
/// |---|------------|------------------------------|
/// | 1 | branchType | u8 ordinal (always AT)       |
/// | 2 | resourceId | str16                        |
/// | 3 | saveDays   | i16, days to keep (default 7)|
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndoLogDeleteRequest {
    pub branch_type: BranchType,
    pub resource_id: String,
    pub save_days: i16,
}

impl MessageCodec for UndoLogDeleteRequest {
    const TYPE_CODE: u16 = 111;

    fn encode_fields(&self, _ctx: &CodecContext, out: &mut BytesMut) {
        out.put_u8(self.branch_type.code());
        put_str16(out, &self.resource_id);
        out.put_i16(self.save_days);
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        Ok(UndoLogDeleteRequest {
            branch_type: read_branch_type(r)?,
            resource_id: r.str16()?,
            save_days: r.i16()?,
        })
    }
}
