//! Phase-2 delivery to an RM that does not answer: a request left unanswered past
//! `branch_request_timeout` is sent again, and one pending on a connection that closes is
//! sent again on the RM's next connection without waiting for that timeout.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrata_proto::{
    BranchCommitRequest, BranchCommitResponse, BranchStatus, CodecContext, Frame, GlobalStatus,
    Message, MsgType, ResultInfo, decode_body,
};
use support::{Client, RawConn, ServerProcess, eventually};

const RESOURCE: &str = "phase2-delivery-action";
const APP: &str = "phase2-delivery";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

/// Retries come quickly, so the tests wait for behaviour, not for backoff.
fn config(branch_request_timeout: &str) -> String {
    format!(
        "[coordinator]\nbranch_request_timeout = \"{branch_request_timeout}\"\n\
         retry_backoff_initial = \"20ms\"\nretry_backoff_max = \"50ms\"\n"
    )
}

/// The next BranchCommit request `rm` receives (other frames are skipped), decoded.
async fn next_branch_commit(rm: &mut RawConn) -> (Frame, BranchCommitRequest) {
    loop {
        let frame = rm.next_frame().await.expect("frame").expect("open");
        if frame.msg_type != MsgType::Request {
            continue;
        }
        let message = decode_body(&frame, &CodecContext::default(), 8 << 20).expect("decode");
        if let Message::BranchCommit(request) = message {
            return (frame, request);
        }
    }
}

/// A TM and a raw RM; a TCC branch registered by the RM in a transaction whose commit has
/// started. Returns the xid and the branch id.
async fn committing_branch(server: &ServerProcess, rm: &mut RawConn) -> (Arc<Client>, String, i64) {
    let tm = Arc::new(Client::connect(server.addr).await.expect("tm"));
    tm.register_tm(APP).await.expect("tm registers");
    let xid = tm.begin(60_000).await.expect("begin");
    let branch_id = rm
        .register_tcc_branch(100, &xid, RESOURCE)
        .await
        .expect("register branch");
    let committer = tm.clone();
    let commit_xid = xid.clone();
    // The TM's answer is not what these tests are about (it may say CommitRetrying).
    tokio::spawn(async move { committer.commit(&commit_xid).await });
    (tm, xid, branch_id)
}

async fn answer_committed(rm: &mut RawConn, frame: &Frame, request: &BranchCommitRequest) {
    let answer = Message::BranchCommitResponse(BranchCommitResponse {
        result: ResultInfo::success(),
        xid: request.xid.clone(),
        branch_id: request.branch_id,
        branch_status: BranchStatus::PhaseTwoCommitted,
    });
    rm.send(MsgType::Response, frame.request_id, &answer)
        .await
        .expect("answer");
}

async fn ends_committed(tm: &Client, xid: &str) -> bool {
    eventually(Duration::from_secs(20), || async {
        // A finished transaction is forgotten: its status reads Finished (or Committed).
        matches!(
            tm.status(xid).await,
            Ok(GlobalStatus::Committed | GlobalStatus::Finished)
        )
    })
    .await
}

#[tokio::test]
async fn an_unanswered_request_is_sent_again_after_the_timeout() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server =
        ServerProcess::start_with_config(dir.path(), loopback(), &config("300ms")).expect("start");
    let mut rm = RawConn::connect(server.addr).await.expect("rm");
    rm.register_rm(1, APP, RESOURCE)
        .await
        .expect("rm registers");
    let (tm, xid, branch_id) = committing_branch(&server, &mut rm).await;

    // The first request is ignored; the same branch is asked again under a new request id.
    let (first, asked) = next_branch_commit(&mut rm).await;
    assert_eq!(
        (asked.xid.as_str(), asked.branch_id),
        (xid.as_str(), branch_id)
    );
    let (again, asked_again) = next_branch_commit(&mut rm).await;
    assert_eq!(
        (asked_again.xid.as_str(), asked_again.branch_id),
        (xid.as_str(), branch_id)
    );
    assert_ne!(first.request_id, again.request_id);
    // The late answer to the first request changes nothing; the answer to the second ends it.
    answer_committed(&mut rm, &first, &asked).await;
    answer_committed(&mut rm, &again, &asked_again).await;
    assert!(ends_committed(&tm, &xid).await, "{}", server.log());
    let log = server.log();
    assert!(log.contains("phase-2 request timed out"), "{log}");
}

#[tokio::test]
async fn a_request_pending_on_a_closed_connection_goes_to_the_next_one_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Far longer than this test may run: only the close can end the first request.
    let server =
        ServerProcess::start_with_config(dir.path(), loopback(), &config("1h")).expect("start");
    let mut rm = RawConn::connect(server.addr).await.expect("rm");
    rm.register_rm(1, APP, RESOURCE)
        .await
        .expect("rm registers");
    let (tm, xid, branch_id) = committing_branch(&server, &mut rm).await;
    let (_, asked) = next_branch_commit(&mut rm).await;
    assert_eq!(asked.branch_id, branch_id);
    drop(rm);

    let mut next = RawConn::connect(server.addr).await.expect("next rm");
    next.register_rm(1, APP, RESOURCE)
        .await
        .expect("registers again");
    let (frame, asked) = next_branch_commit(&mut next).await;
    assert_eq!(
        (asked.xid.as_str(), asked.branch_id),
        (xid.as_str(), branch_id)
    );
    answer_committed(&mut next, &frame, &asked).await;
    assert!(ends_committed(&tm, &xid).await, "{}", server.log());
}
