//! Turns a coordinator reply into the response message its request type expects (spec §8).

use ferrata_core::{Reply, RequestKind, TxError};
use ferrata_proto::{
    BranchRegisterResponse, BranchReportResponse, CodecContext, GlobalBeginResponse,
    GlobalCommitResponse, GlobalLockQueryResponse, GlobalReportResponse, GlobalRollbackResponse,
    GlobalStatus, GlobalStatusResponse, Message, ResultInfo,
};

/// Builds the response to the request `reply` answers; global statuses are clamped to what the
/// client's version decodes.
pub fn build_response(reply: Reply, ctx: &CodecContext) -> Message {
    let status = |status: GlobalStatus| status.for_client(ctx.client_version);
    match reply {
        Reply::Began { xid } => Message::GlobalBeginResponse(GlobalBeginResponse {
            result: ResultInfo::success(),
            xid,
            extra_data: String::new(),
        }),
        Reply::BranchRegistered { branch_id } => {
            Message::BranchRegisterResponse(BranchRegisterResponse {
                result: ResultInfo::success(),
                branch_id: branch_id.0,
            })
        }
        Reply::BranchReported => Message::BranchReportResponse(BranchReportResponse {
            result: ResultInfo::success(),
        }),
        Reply::GlobalCommit { status: s } => Message::GlobalCommitResponse(GlobalCommitResponse {
            result: ResultInfo::success(),
            global_status: status(s),
        }),
        Reply::GlobalRollback { status: s } => {
            Message::GlobalRollbackResponse(GlobalRollbackResponse {
                result: ResultInfo::success(),
                global_status: status(s),
            })
        }
        Reply::GlobalStatus { status: s } => Message::GlobalStatusResponse(GlobalStatusResponse {
            result: ResultInfo::success(),
            global_status: status(s),
        }),
        Reply::GlobalReport { status: s } => Message::GlobalReportResponse(GlobalReportResponse {
            result: ResultInfo::success(),
            global_status: status(s),
        }),
        Reply::Lockable(lockable) => Message::GlobalLockQueryResponse(GlobalLockQueryResponse {
            result: ResultInfo::success(),
            lockable,
        }),
        Reply::Failed { request, error } => failure(request, error, status(GlobalStatus::Finished)),
    }
}

/// The response of a failed request: the error and the fields' defaults (Finished for the
/// global end requests, as Seata answers when it has no session to report on).
fn failure(request: RequestKind, error: TxError, global_status: GlobalStatus) -> Message {
    let result = ResultInfo::failure(
        error.code,
        format!("TransactionException[{}]", error.message),
    );
    match request {
        RequestKind::Begin => Message::GlobalBeginResponse(GlobalBeginResponse {
            result,
            xid: String::new(),
            extra_data: String::new(),
        }),
        RequestKind::BranchRegister => Message::BranchRegisterResponse(BranchRegisterResponse {
            result,
            branch_id: 0,
        }),
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
        RequestKind::LockQuery => Message::GlobalLockQueryResponse(GlobalLockQueryResponse {
            result,
            lockable: false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use ferrata_core::BranchId;
    use ferrata_proto::{ClientVersion, Dialect, ResultCode, TransactionExceptionCode};

    use super::*;

    fn context(client_version: ClientVersion) -> CodecContext {
        CodecContext::new(client_version, Dialect::Java)
    }

    #[test]
    fn each_reply_builds_the_response_of_its_request() {
        let ctx = context(ClientVersion::V2_6_0);
        let registered = build_response(
            Reply::BranchRegistered {
                branch_id: BranchId(42),
            },
            &ctx,
        );
        assert_eq!(
            registered,
            Message::BranchRegisterResponse(BranchRegisterResponse {
                result: ResultInfo::success(),
                branch_id: 42,
            })
        );
        let rolled_back = build_response(
            Reply::GlobalRollback {
                status: GlobalStatus::Rollbacked,
            },
            &ctx,
        );
        assert_eq!(
            rolled_back,
            Message::GlobalRollbackResponse(GlobalRollbackResponse {
                result: ResultInfo::success(),
                global_status: GlobalStatus::Rollbacked,
            })
        );
    }

    #[test]
    fn statuses_are_clamped_for_old_clients_and_failures_say_finished() {
        let old = context(ClientVersion::V0_7_1);
        let committed = build_response(
            Reply::GlobalCommit {
                status: GlobalStatus::CommitRetryTimeout,
            },
            &old,
        );
        let Message::GlobalCommitResponse(response) = committed else {
            panic!("a commit reply must build a GlobalCommitResponse: {committed:?}");
        };
        assert_eq!(response.global_status, GlobalStatus::CommitFailed);

        let failed = build_response(
            Reply::Failed {
                request: RequestKind::GlobalStatus,
                error: TxError::new(TransactionExceptionCode::Unknown, "no room"),
            },
            &context(ClientVersion::V2_6_0),
        );
        let Message::GlobalStatusResponse(response) = failed else {
            panic!("a failed status request must build a GlobalStatusResponse: {failed:?}");
        };
        assert_eq!(response.result.result_code, ResultCode::Failed);
        assert_eq!(response.result.msg, "TransactionException[no room]");
        assert_eq!(response.global_status, GlobalStatus::Finished);
    }
}
