//! Turns a coordinator reply into the response message its request type expects (spec §8).

use ferrata_core::Reply;
use ferrata_proto::{
    BranchRegisterResponse, BranchReportResponse, CodecContext, GlobalBeginResponse,
    GlobalCommitResponse, GlobalLockQueryResponse, GlobalReportResponse, GlobalRollbackResponse,
    GlobalStatus, GlobalStatusResponse, Message, ResultInfo,
};

use crate::engine::RequestKind;

/// Builds the response; global statuses are clamped to what the client's version decodes.
pub fn build_response(kind: RequestKind, reply: Reply, ctx: &CodecContext) -> Message {
    let (result, status, xid, branch_id, lockable) = match reply {
        Reply::Began { xid } => (ResultInfo::success(), None, xid, 0, false),
        Reply::BranchRegistered { branch_id } => {
            (ResultInfo::success(), None, String::new(), branch_id, false)
        }
        Reply::BranchReported => (ResultInfo::success(), None, String::new(), 0, false),
        Reply::Status(status) => (ResultInfo::success(), Some(status), String::new(), 0, false),
        Reply::Lockable(lockable) => (ResultInfo::success(), None, String::new(), 0, lockable),
        Reply::Failed { error, status } => (
            ResultInfo::failure(
                error.code,
                format!("TransactionException[{}]", error.message),
            ),
            status,
            String::new(),
            0,
            false,
        ),
    };
    let global_status = status
        .unwrap_or(GlobalStatus::Finished)
        .for_client(ctx.client_version);
    match kind {
        RequestKind::Begin => Message::GlobalBeginResponse(GlobalBeginResponse {
            result,
            xid,
            extra_data: String::new(),
        }),
        RequestKind::BranchRegister => {
            Message::BranchRegisterResponse(BranchRegisterResponse { result, branch_id })
        }
        RequestKind::BranchReport => Message::BranchReportResponse(BranchReportResponse { result }),
        RequestKind::GlobalCommit => Message::GlobalCommitResponse(GlobalCommitResponse {
            result,
            global_status,
        }),
        RequestKind::GlobalRollback => Message::GlobalRollbackResponse(GlobalRollbackResponse {
            result,
            global_status,
        }),
        RequestKind::GlobalStatus => Message::GlobalStatusResponse(GlobalStatusResponse {
            result,
            global_status,
        }),
        RequestKind::GlobalReport => Message::GlobalReportResponse(GlobalReportResponse {
            result,
            global_status,
        }),
        RequestKind::LockQuery => {
            Message::GlobalLockQueryResponse(GlobalLockQueryResponse { result, lockable })
        }
    }
}
