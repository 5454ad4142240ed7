//! SEATA-codec messages (spec §6–§10): one file per message with its field table, encode and
//! decode side by side; this module holds the shared blocks and the [`Message`] dispatch.

use bytes::{BufMut, BytesMut};

use crate::codec::{DecodeError, Reader, Result, put_str8, put_str16};
use crate::enums::{BranchStatus, BranchType, GlobalStatus, ResultCode, TransactionExceptionCode};
use crate::version::ClientVersion;

mod batch_result_message;
mod branch_commit_request;
mod branch_commit_response;
mod branch_register_request;
mod branch_register_response;
mod branch_report_request;
mod branch_report_response;
mod branch_rollback_request;
mod branch_rollback_response;
mod global_begin_request;
mod global_begin_response;
mod global_commit_request;
mod global_commit_response;
mod global_lock_query_request;
mod global_lock_query_response;
mod global_report_request;
mod global_report_response;
mod global_rollback_request;
mod global_rollback_response;
mod global_status_request;
mod global_status_response;
mod merge_result_message;
mod merged_warp_message;
mod register_rm_request;
mod register_rm_response;
mod register_tm_request;
mod register_tm_response;
mod undo_log_delete_request;
mod unregister_rm_request;
mod unregister_rm_response;

pub use batch_result_message::BatchResultMessage;
pub use branch_commit_request::BranchCommitRequest;
pub use branch_commit_response::BranchCommitResponse;
pub use branch_register_request::BranchRegisterRequest;
pub use branch_register_response::BranchRegisterResponse;
pub use branch_report_request::BranchReportRequest;
pub use branch_report_response::BranchReportResponse;
pub use branch_rollback_request::BranchRollbackRequest;
pub use branch_rollback_response::BranchRollbackResponse;
pub use global_begin_request::GlobalBeginRequest;
pub use global_begin_response::GlobalBeginResponse;
pub use global_commit_request::GlobalCommitRequest;
pub use global_commit_response::GlobalCommitResponse;
pub use global_lock_query_request::GlobalLockQueryRequest;
pub use global_lock_query_response::GlobalLockQueryResponse;
pub use global_report_request::GlobalReportRequest;
pub use global_report_response::GlobalReportResponse;
pub use global_rollback_request::GlobalRollbackRequest;
pub use global_rollback_response::GlobalRollbackResponse;
pub use global_status_request::GlobalStatusRequest;
pub use global_status_response::GlobalStatusResponse;
pub use merge_result_message::MergeResultMessage;
pub use merged_warp_message::MergedWarpMessage;
pub use register_rm_request::RegisterRmRequest;
pub use register_rm_response::RegisterRmResponse;
pub use register_tm_request::RegisterTmRequest;
pub use register_tm_response::RegisterTmResponse;
pub use undo_log_delete_request::UndoLogDeleteRequest;
pub use unregister_rm_request::UnregisterRmRequest;
pub use unregister_rm_response::UnregisterRmResponse;

/// Which client implementation's codec quirks to follow (spec §15.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    #[default]
    Java,
    /// seata-go: 1-byte failure-message length in types 4, 6, 14 and 22.
    Go,
}

/// Per-connection facts that change how fields are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecContext {
    /// Drives TransactionExceptionCode ordinals (both ways) and GlobalStatus clamping (encode).
    pub client_version: ClientVersion,
    pub dialect: Dialect,
    /// The connection's protocol version (spec §3): [`crate::frame::PROTOCOL_VERSION`] (1)
    /// until the first frame says otherwise, then [`crate::frame::negotiated_version`] of that
    /// frame's version byte. [`crate::encode_message`] writes it in the frame header, and at 2
    /// RegisterTMResponse and RegisterRMResponse use their v2 layout (both ways).
    pub protocol_version: u8,
}

impl Default for CodecContext {
    /// The newest Java client on a version-1 connection: what an unregistered connection is
    /// assumed to be.
    fn default() -> Self {
        CodecContext::new(ClientVersion::NEWEST, Dialect::Java)
    }
}

impl CodecContext {
    /// A version-1 connection of a `client_version` client of `dialect`.
    pub const fn new(client_version: ClientVersion, dialect: Dialect) -> CodecContext {
        CodecContext {
            client_version,
            dialect,
            protocol_version: crate::frame::PROTOCOL_VERSION,
        }
    }

    /// The same connection speaking the version negotiated from a peer's `version` byte
    /// (see [`crate::frame::negotiated_version`]).
    pub const fn with_protocol_version(self, version: u8) -> CodecContext {
        CodecContext {
            protocol_version: crate::frame::negotiated_version(version),
            ..self
        }
    }

    /// True on a connection that negotiated protocol version 2 or higher.
    pub const fn is_v2(&self) -> bool {
        self.protocol_version >= crate::frame::PROTOCOL_VERSION_2
    }
}

/// The TxResponseBlock every transaction response starts with (spec §8.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultInfo {
    pub result_code: ResultCode,
    /// Only on the wire when `result_code` is Failed; `""` otherwise.
    pub msg: String,
    pub exception_code: TransactionExceptionCode,
}

impl Default for ResultInfo {
    fn default() -> Self {
        ResultInfo::success()
    }
}

impl ResultInfo {
    pub fn success() -> ResultInfo {
        ResultInfo {
            result_code: ResultCode::Success,
            msg: String::new(),
            exception_code: TransactionExceptionCode::Unknown,
        }
    }

    pub fn failure(exception_code: TransactionExceptionCode, msg: impl Into<String>) -> ResultInfo {
        ResultInfo {
            result_code: ResultCode::Failed,
            msg: msg.into(),
            exception_code,
        }
    }

    pub fn is_success(&self) -> bool {
        self.result_code == ResultCode::Success
    }

    /// | resultCode u8 | msg (only if Failed) | transactionExceptionCode u8 |
    pub(crate) fn encode(&self, ctx: &CodecContext, len: MsgLen, out: &mut BytesMut) {
        out.put_u8(self.result_code.code());
        if self.result_code == ResultCode::Failed {
            match len {
                MsgLen::I16 => put_str16(out, &self.msg),
                MsgLen::U8 => put_str8(out, &self.msg),
            }
        }
        out.put_u8(self.exception_code.wire_code(ctx.client_version));
    }

    pub(crate) fn decode(r: &mut Reader<'_>, ctx: &CodecContext, len: MsgLen) -> Result<Self> {
        let result_code = read_result_code(r)?;
        let msg = if result_code == ResultCode::Failed {
            match len {
                MsgLen::I16 => r.str16()?,
                MsgLen::U8 => r.str8_lossy()?,
            }
        } else {
            String::new()
        };
        let exception_code = TransactionExceptionCode::from_wire(r.u8()?, ctx.client_version);
        Ok(ResultInfo {
            result_code,
            msg,
            exception_code,
        })
    }
}

/// Width of the failure-message length in a ResultBlock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MsgLen {
    I16,
    U8,
}

impl MsgLen {
    /// For the four messages where seata-go deviates from Java (types 4, 6, 14, 22).
    pub(crate) fn go_quirk(ctx: &CodecContext) -> MsgLen {
        match ctx.dialect {
            Dialect::Java => MsgLen::I16,
            Dialect::Go => MsgLen::U8,
        }
    }
}

/// The body of RegisterTMResponse (102) and RegisterRMResponse (104), whose v2 layout adds a
/// result prefix (spec §8.3; Seata's `AbstractIdentifyResponseCodecV2`):
///
/// | # | field      | v1 | v2                                    |
/// |---|------------|----|---------------------------------------|
/// | 1 | resultCode | –  | u8: 0 Failed, 1 Success               |
/// | 2 | msg        | –  | str16, only when resultCode is Failed |
/// | 3 | identified | u8 | u8: 1 accepted; any other value false |
/// | 4 | version    | str16, the TC's version                   |
///
/// On v1 the prefix is not on the wire: decoding gives Success and an empty message.
pub(crate) fn encode_identify_response(
    ctx: &CodecContext,
    result_code: ResultCode,
    msg: &str,
    identified: bool,
    version: &str,
    out: &mut BytesMut,
) {
    if ctx.is_v2() {
        out.put_u8(result_code.code());
        if result_code == ResultCode::Failed {
            put_str16(out, msg);
        }
    }
    out.put_u8(u8::from(identified));
    put_str16(out, version);
}

/// Reads what [`encode_identify_response`] writes: (resultCode, msg, identified, version).
pub(crate) fn decode_identify_response(
    r: &mut Reader<'_>,
    ctx: &CodecContext,
) -> Result<(ResultCode, String, bool, String)> {
    let (result_code, msg) = if ctx.is_v2() {
        let result_code = read_result_code(r)?;
        let msg = if result_code == ResultCode::Failed {
            r.str16()?
        } else {
            String::new()
        };
        (result_code, msg)
    } else {
        (ResultCode::Success, String::new())
    };
    let identified = r.u8()? == 1;
    let version = r.str16()?;
    Ok((result_code, msg, identified, version))
}

/// The fields of one message after its type code; every message file implements it.
pub trait MessageCodec: Sized {
    /// SEATA type code (spec §7).
    const TYPE_CODE: u16;
    fn encode_fields(&self, ctx: &CodecContext, out: &mut BytesMut);
    fn decode_fields(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Self>;
}

pub(crate) fn read_result_code(r: &mut Reader<'_>) -> Result<ResultCode> {
    let value = r.u8()?;
    ResultCode::from_code(value).ok_or(DecodeError::UnknownEnum {
        field: "resultCode",
        value,
    })
}

pub(crate) fn read_branch_type(r: &mut Reader<'_>) -> Result<BranchType> {
    let value = r.u8()?;
    BranchType::from_code(value).ok_or(DecodeError::UnknownEnum {
        field: "branchType",
        value,
    })
}

pub(crate) fn read_branch_status(r: &mut Reader<'_>) -> Result<BranchStatus> {
    let value = r.u8()?;
    BranchStatus::from_code(value).ok_or(DecodeError::UnknownEnum {
        field: "branchStatus",
        value,
    })
}

pub(crate) fn read_global_status(r: &mut Reader<'_>) -> Result<GlobalStatus> {
    let value = r.u8()?;
    GlobalStatus::from_code(value).ok_or(DecodeError::UnknownEnum {
        field: "globalStatus",
        value,
    })
}

/// A GlobalStatus as the connection's client can decode it (spec §9.3).
pub(crate) fn put_global_status(ctx: &CodecContext, status: GlobalStatus, out: &mut BytesMut) {
    out.put_u8(status.for_client(ctx.client_version).code());
}

/// Writes `count`, the encoded messages and a back-filled `contentLength` before them: the
/// common prefix of types 59, 60 and 121 (spec §10). Returns the offset of the length slot so
/// that the caller can append ids before [`finish_batch`].
pub(crate) fn start_batch(messages: &[Message], ctx: &CodecContext, out: &mut BytesMut) -> usize {
    let slot = out.len();
    out.put_i32(0);
    // Java reads the count as a short; more messages than that cannot be expressed.
    out.put_i16(i16::try_from(messages.len()).unwrap_or(i16::MAX));
    for msg in messages.iter().take(i16::MAX as usize) {
        msg.encode(ctx, out);
    }
    slot
}

/// Fills in the `contentLength` reserved by [`start_batch`].
pub(crate) fn finish_batch(slot: usize, out: &mut BytesMut) {
    let content = out.len().saturating_sub(slot + 4);
    let content = i32::try_from(content).unwrap_or(i32::MAX);
    if let Some(dst) = out.get_mut(slot..slot + 4) {
        dst.copy_from_slice(&content.to_be_bytes());
    }
}

/// Reads `contentLength`, returning a reader over exactly that many bytes, and the count.
pub(crate) fn read_batch_header<'a>(r: &mut Reader<'a>) -> Result<(Reader<'a>, usize)> {
    let content = r.i32()?;
    let content = usize::try_from(content).map_err(|_| DecodeError::InvalidLength {
        field: "contentLength",
        value: i64::from(content),
    })?;
    let mut sub = Reader::new(r.bytes(content)?);
    let count = sub.i16()?;
    let count = usize::try_from(count).map_err(|_| DecodeError::InvalidLength {
        field: "count",
        value: i64::from(count),
    })?;
    Ok((sub, count))
}

/// Decodes `count` concatenated sub-messages (each at least its 2-byte type code, so the
/// pre-allocation is bounded by the input).
pub(crate) fn read_batch_messages(
    sub: &mut Reader<'_>,
    count: usize,
    ctx: &CodecContext,
) -> Result<Vec<Message>> {
    let mut messages = Vec::with_capacity(count.min(sub.remaining() / 2));
    for _ in 0..count {
        messages.push(Message::decode_nested(sub, ctx)?);
    }
    Ok(messages)
}

/// Reads `count` request ids.
pub(crate) fn read_msg_ids(sub: &mut Reader<'_>, count: usize) -> Result<Vec<i32>> {
    let mut ids = Vec::with_capacity(count.min(sub.remaining() / 4));
    for _ in 0..count {
        ids.push(sub.i32()?);
    }
    Ok(ids)
}

macro_rules! messages {
    ($( $variant:ident($ty:ident) = $request:literal ),+ $(,)?) => {
        /// Every message of the SEATA codec this crate knows.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $( $variant($ty), )+
        }

        $(
            impl From<$ty> for Message {
                fn from(m: $ty) -> Message {
                    Message::$variant(m)
                }
            }
        )+

        impl Message {
            /// SEATA type code (spec §7).
            pub fn type_code(&self) -> u16 {
                match self {
                    $( Message::$variant(_) => <$ty as MessageCodec>::TYPE_CODE, )+
                }
            }

            /// The Java-side class name, for logs.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Message::$variant(_) => stringify!($ty), )+
                }
            }

            /// True for requests (including batches of requests), false for responses.
            pub fn is_request(&self) -> bool {
                match self {
                    $( Message::$variant(_) => $request, )+
                }
            }

            /// Writes the 2-byte type code, then the fields (SEATA codec, in the layouts of
            /// `ctx.protocol_version`).
            pub fn encode(&self, ctx: &CodecContext, out: &mut BytesMut) {
                out.put_u16(self.type_code());
                match self {
                    $( Message::$variant(m) => m.encode_fields(ctx, out), )+
                }
            }

            fn decode_from(r: &mut Reader<'_>, ctx: &CodecContext, nested: bool) -> Result<Message> {
                let code = r.u16()?;
                if nested && is_batch_type(code) {
                    // Java never nests batches; refusing them also bounds recursion depth.
                    return Err(DecodeError::NestedBatch(code));
                }
                $(
                    if code == <$ty as MessageCodec>::TYPE_CODE {
                        return Ok(Message::$variant(<$ty as MessageCodec>::decode_fields(r, ctx)?));
                    }
                )+
                Err(DecodeError::UnknownTypeCode(code))
            }
        }
    };
}

messages! {
    GlobalBegin(GlobalBeginRequest) = true,
    GlobalBeginResponse(GlobalBeginResponse) = false,
    BranchCommit(BranchCommitRequest) = true,
    BranchCommitResponse(BranchCommitResponse) = false,
    BranchRollback(BranchRollbackRequest) = true,
    BranchRollbackResponse(BranchRollbackResponse) = false,
    GlobalCommit(GlobalCommitRequest) = true,
    GlobalCommitResponse(GlobalCommitResponse) = false,
    GlobalRollback(GlobalRollbackRequest) = true,
    GlobalRollbackResponse(GlobalRollbackResponse) = false,
    BranchRegister(BranchRegisterRequest) = true,
    BranchRegisterResponse(BranchRegisterResponse) = false,
    BranchReport(BranchReportRequest) = true,
    BranchReportResponse(BranchReportResponse) = false,
    GlobalStatus(GlobalStatusRequest) = true,
    GlobalStatusResponse(GlobalStatusResponse) = false,
    GlobalReport(GlobalReportRequest) = true,
    GlobalReportResponse(GlobalReportResponse) = false,
    GlobalLockQuery(GlobalLockQueryRequest) = true,
    GlobalLockQueryResponse(GlobalLockQueryResponse) = false,
    MergedWarp(MergedWarpMessage) = true,
    MergeResult(MergeResultMessage) = false,
    BatchResult(BatchResultMessage) = false,
    RegisterTm(RegisterTmRequest) = true,
    RegisterTmResponse(RegisterTmResponse) = false,
    RegisterRm(RegisterRmRequest) = true,
    RegisterRmResponse(RegisterRmResponse) = false,
    UnregisterRm(UnregisterRmRequest) = true,
    UnregisterRmResponse(UnregisterRmResponse) = false,
    UndoLogDelete(UndoLogDeleteRequest) = true,
}

/// Type codes of the batch wrappers (59, 60, 121).
pub fn is_batch_type(code: u16) -> bool {
    code == MergedWarpMessage::TYPE_CODE
        || code == MergeResultMessage::TYPE_CODE
        || code == BatchResultMessage::TYPE_CODE
}

impl Message {
    /// Decodes a SEATA body that starts with the type code; trailing bytes are ignored as
    /// Java and Go do (spec §6).
    pub fn decode(body: &[u8], ctx: &CodecContext) -> Result<Message> {
        if body.is_empty() {
            return Err(DecodeError::EmptyBody);
        }
        Message::decode_from(&mut Reader::new(body), ctx, false)
    }

    /// Decodes one sub-message of a batch from a shared reader; batches may not nest.
    pub(crate) fn decode_nested(r: &mut Reader<'_>, ctx: &CodecContext) -> Result<Message> {
        Message::decode_from(r, ctx, true)
    }
}
