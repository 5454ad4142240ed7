//! One realistic instance of every SEATA-codec message, sized like what Java clients and TCs
//! send, for the codec micro-benchmarks (a test keeps the list complete).

use ferrata_proto::{
    BatchResultMessage, BranchCommitRequest, BranchCommitResponse, BranchRegisterRequest,
    BranchRegisterResponse, BranchReportRequest, BranchReportResponse, BranchRollbackRequest,
    BranchRollbackResponse, BranchStatus, BranchType, GlobalBeginRequest, GlobalBeginResponse,
    GlobalCommitRequest, GlobalCommitResponse, GlobalLockQueryRequest, GlobalLockQueryResponse,
    GlobalReportRequest, GlobalReportResponse, GlobalRollbackRequest, GlobalRollbackResponse,
    GlobalStatus, GlobalStatusRequest, GlobalStatusResponse, MergeResultMessage, MergedWarpMessage,
    Message, RegisterRmRequest, RegisterRmResponse, RegisterTmRequest, RegisterTmResponse,
    ResultInfo, TransactionExceptionCode, UndoLogDeleteRequest, UnregisterRmRequest,
    UnregisterRmResponse,
};

const XID: &str = "192.168.1.100:8091:2612341069705662465";
const RESOURCE: &str = "jdbc:mysql://127.0.0.1:3306/seata";

fn register_branch() -> BranchRegisterRequest {
    BranchRegisterRequest {
        xid: XID.into(),
        branch_type: BranchType::At,
        resource_id: RESOURCE.into(),
        lock_key: "stock_tbl:11,12;order_tbl:2611341069705662466".into(),
        application_data: r#"{"autoCommit":false,"skipCheckLock":true}"#.into(),
    }
}

fn registered() -> BranchRegisterResponse {
    BranchRegisterResponse {
        result: ResultInfo::success(),
        branch_id: 2612341069705662470,
    }
}

/// Every message type once, named by its Java class.
pub fn sample_messages() -> Vec<Message> {
    let ok = ResultInfo::success;
    vec![
        Message::GlobalBegin(GlobalBeginRequest {
            timeout_ms: 60_000,
            transaction_name: "purchase(java.lang.String, java.lang.String, int)".into(),
        }),
        Message::GlobalBeginResponse(GlobalBeginResponse {
            result: ok(),
            xid: XID.into(),
            extra_data: String::new(),
        }),
        Message::BranchCommit(BranchCommitRequest {
            xid: XID.into(),
            branch_id: 2612341069705662470,
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            application_data: String::new(),
        }),
        Message::BranchCommitResponse(BranchCommitResponse {
            result: ok(),
            xid: XID.into(),
            branch_id: 2612341069705662470,
            branch_status: BranchStatus::PhaseTwoCommitted,
        }),
        Message::BranchRollback(BranchRollbackRequest {
            xid: XID.into(),
            branch_id: 2612341069705662470,
            branch_type: BranchType::Tcc,
            resource_id: "prepareOrder".into(),
            application_data: r#"{"actionContext":{"orderId":42}}"#.into(),
        }),
        Message::BranchRollbackResponse(BranchRollbackResponse {
            result: ok(),
            xid: XID.into(),
            branch_id: 2612341069705662470,
            branch_status: BranchStatus::PhaseTwoRollbacked,
        }),
        Message::GlobalCommit(GlobalCommitRequest {
            xid: XID.into(),
            extra_data: String::new(),
        }),
        Message::GlobalCommitResponse(GlobalCommitResponse {
            result: ok(),
            global_status: GlobalStatus::Committed,
        }),
        Message::GlobalRollback(GlobalRollbackRequest {
            xid: XID.into(),
            extra_data: String::new(),
        }),
        Message::GlobalRollbackResponse(GlobalRollbackResponse {
            result: ok(),
            global_status: GlobalStatus::Rollbacked,
        }),
        Message::BranchRegister(register_branch()),
        Message::BranchRegisterResponse(BranchRegisterResponse {
            result: ResultInfo::failure(
                TransactionExceptionCode::LockKeyConflict,
                "TransactionException[get global lock fail, xid:192.168.1.100:8091:26, lockKeys:stock_tbl:11]",
            ),
            branch_id: 0,
        }),
        Message::BranchReport(BranchReportRequest {
            xid: XID.into(),
            branch_id: 2612341069705662470,
            status: BranchStatus::PhaseOneDone,
            resource_id: RESOURCE.into(),
            application_data: String::new(),
            branch_type: BranchType::At,
        }),
        Message::BranchReportResponse(BranchReportResponse { result: ok() }),
        Message::GlobalStatus(GlobalStatusRequest {
            xid: XID.into(),
            extra_data: String::new(),
        }),
        Message::GlobalStatusResponse(GlobalStatusResponse {
            result: ok(),
            global_status: GlobalStatus::AsyncCommitting,
        }),
        Message::GlobalReport(GlobalReportRequest {
            xid: XID.into(),
            extra_data: String::new(),
            global_status: Some(GlobalStatus::Committed),
        }),
        Message::GlobalReportResponse(GlobalReportResponse {
            result: ok(),
            global_status: GlobalStatus::Committed,
        }),
        Message::GlobalLockQuery(GlobalLockQueryRequest {
            xid: XID.into(),
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            lock_key: "stock_tbl:11".into(),
            application_data: String::new(),
        }),
        Message::GlobalLockQueryResponse(GlobalLockQueryResponse {
            result: ok(),
            lockable: true,
        }),
        Message::MergedWarp(MergedWarpMessage {
            messages: vec![
                Message::BranchRegister(register_branch()),
                Message::BranchRegister(register_branch()),
            ],
            msg_ids: Some(vec![7, 8]),
        }),
        Message::MergeResult(MergeResultMessage {
            messages: vec![
                Message::BranchRegisterResponse(registered()),
                Message::BranchRegisterResponse(registered()),
            ],
        }),
        Message::BatchResult(BatchResultMessage {
            messages: vec![
                Message::BranchRegisterResponse(registered()),
                Message::BranchRegisterResponse(registered()),
            ],
            msg_ids: vec![7, 8],
        }),
        Message::RegisterTm(RegisterTmRequest {
            version: "2.0.0".into(),
            application_id: "order-service".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: "ak=null\ndigest=default_tx_group,10.0.0.5,1700000000000\ntimestamp=1700000000000\nauthVersion=V4\nvgroup=default_tx_group\nip=10.0.0.5\n".into(),
        }),
        Message::RegisterTmResponse(RegisterTmResponse::new(true, "2.5.0")),
        Message::RegisterRm(RegisterRmRequest {
            version: "2.0.0".into(),
            application_id: "order-service".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: String::new(),
            resource_ids: format!("{RESOURCE},jdbc:mysql://127.0.0.1:3306/orders"),
        }),
        Message::RegisterRmResponse(RegisterRmResponse::new(true, "2.5.0")),
        Message::UnregisterRm(UnregisterRmRequest {
            version: "2.6.0".into(),
            application_id: "order-service".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: String::new(),
            resource_ids: RESOURCE.into(),
        }),
        Message::UnregisterRmResponse(UnregisterRmResponse {
            identified: true,
            version: "2.6.0".into(),
        }),
        Message::UndoLogDelete(UndoLogDeleteRequest {
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            save_days: 7,
        }),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ferrata_proto::CodecContext;
    use std::collections::BTreeSet;

    #[test]
    fn every_message_type_is_sampled_once_and_round_trips() {
        let ctx = CodecContext::default();
        let samples = sample_messages();
        let codes: BTreeSet<u16> = samples.iter().map(Message::type_code).collect();
        assert_eq!(codes.len(), samples.len(), "a type is sampled twice");
        let expected: BTreeSet<u16> = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 21, 22, 59, 60, 101,
            102, 103, 104, 105, 106, 111, 121,
        ]
        .into();
        assert_eq!(codes, expected);
        for message in samples {
            let mut buf = BytesMut::new();
            message.encode(&ctx, &mut buf);
            assert_eq!(
                Message::decode(&buf, &ctx).ok().as_ref(),
                Some(&message),
                "{}",
                message.name()
            );
        }
    }
}
