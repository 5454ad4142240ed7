//! GlobalReportRequest (type 17, TM → TC): Saga mode reports a global status (spec §8.5).

use bytes::{BufMut, BytesMut};

use super::{CodecContext, MessageCodec};
use crate::codec::{DecodeError, Reader, Result, put_str16};
use crate::enums::GlobalStatus;

/// | # | field        | encoding                  |
/// |---|--------------|---------------------------|
/// | 1 | xid          | str16                     |
/// | 2 | extraData    | str16                     |
/// | 3 | globalStatus | i8 code, -1 = null        |
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GlobalReportRequest {
    pub xid: String,
    pub extra_data: String,
    pub global_status: Option<GlobalStatus>,
}

impl MessageCodec for GlobalReportRequest {
    const TYPE_CODE: u16 = 17;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        put_str16(out, &self.xid);
        put_str16(out, &self.extra_data);
        match self.global_status {
            Some(status) => out.put_u8(status.for_client(ctx.client_version).code()),
            None => out.put_i8(-1),
        }
    }

    fn decode_fields(r: &mut Reader<'_>, _ctx: &CodecContext) -> Result<Self> {
        let xid = r.str16()?;
        let extra_data = r.str16()?;
        let raw = r.i8()?;
        let global_status = if raw == -1 {
            None
        } else {
            let value = raw as u8;
            Some(
                GlobalStatus::from_code(value).ok_or(DecodeError::UnknownEnum {
                    field: "globalStatus",
                    value,
                })?,
            )
        };
        Ok(GlobalReportRequest {
            xid,
            extra_data,
            global_status,
        })
    }
}
