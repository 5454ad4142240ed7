//! RegisterTMResponse (type 102, TC → client): the answer to RegisterTMRequest. Version 1 carries only `identified`
//! and the TC's version; version 2 (Seata 2.7) puts a result code, and a message when it is
//! Failed, in front (spec §8.3).

use bytes::BytesMut;

use super::{CodecContext, MessageCodec, decode_identify_response, encode_identify_response};
use crate::codec::{Reader, Result};
use crate::enums::ResultCode;

/// | # | field      | encoding                                              |
/// |---|------------|-------------------------------------------------------|
/// | 1 | resultCode | v2 only: u8, 0 Failed, 1 Success                      |
/// | 2 | msg        | v2 only, and only when resultCode is Failed: str16    |
/// | 3 | identified | u8: 1 accepted; any other value is false              |
/// | 4 | version    | str16, the TC's version                               |
///
/// On a version-1 connection `result_code` and `msg` are not on the wire: they are not sent,
/// and decoding gives Success and `""`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterTmResponse {
    pub result_code: ResultCode,
    /// Why registration failed (v2 only, and only when `result_code` is Failed).
    pub msg: String,
    pub identified: bool,
    pub version: String,
}

impl Default for RegisterTmResponse {
    /// Not identified, no version, and the result a version-1 body decodes to.
    fn default() -> Self {
        RegisterTmResponse {
            result_code: ResultCode::Success,
            msg: String::new(),
            identified: false,
            version: String::new(),
        }
    }
}

impl RegisterTmResponse {
    /// The answer to a registration the TC `identified` (or not), reporting the TC's
    /// `version`: result Success when identified, else Failed without a message.
    pub fn new(identified: bool, version: impl Into<String>) -> RegisterTmResponse {
        RegisterTmResponse {
            result_code: if identified {
                ResultCode::Success
            } else {
                ResultCode::Failed
            },
            msg: String::new(),
            identified,
            version: version.into(),
        }
    }

    /// A refused registration with the reason a version-2 client receives (a version-1 client
    /// only sees `identified` = false).
    pub fn rejected(version: impl Into<String>, msg: impl Into<String>) -> RegisterTmResponse {
        RegisterTmResponse {
            result_code: ResultCode::Failed,
            msg: msg.into(),
            identified: false,
            version: version.into(),
        }
    }
}

impl MessageCodec for RegisterTmResponse {
    const TYPE_CODE: u16 = 102;

    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut) {
        encode_identify_response(
            ctx,
            self.result_code,
            &self.msg,
            self.identified,
            &self.version,
            out,
        );
    }

    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self> {
        let (result_code, msg, identified, version) = decode_identify_response(r, ctx)?;
        Ok(RegisterTmResponse {
            result_code,
            msg,
            identified,
            version,
        })
    }
}
