//! One bad client — unregistered, forging answers, never reading its socket, or flooding
//! requests — is refused or disconnected alone, with a logged reason, while every other client
//! keeps being served.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ferrata_proto::{
    BranchCommitResponse, BranchRegisterRequest, BranchReportRequest, BranchStatus, BranchType,
    GlobalBeginRequest, GlobalCommitRequest, GlobalLockQueryRequest, GlobalStatus,
    GlobalStatusRequest, Message, MsgType, ResultInfo,
};
use support::{Client, RawConn, ServerProcess, eventually};
use tokio::io::AsyncWriteExt;

const TCC_RESOURCE: &str = "hostile-tcc-action";

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("addr")
}

async fn healthy_round_trip(server: &ServerProcess) {
    let healthy = Client::connect(server.addr)
        .await
        .expect("healthy connects");
    healthy.register_tm("healthy").await.expect("registers");
    let xid = healthy.begin(30_000).await.expect("healthy begin");
    assert_eq!(
        healthy.commit(&xid).await.expect("healthy commit"),
        GlobalStatus::Committed
    );
}

#[tokio::test]
async fn transaction_requests_before_registration_close_the_connection() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with_config(dir.path(), loopback(), "").expect("start");
    // The memory bomb of the issue: a huge table name and many keys, unregistered.
    let bomb = format!(
        "{}:{}",
        "t".repeat(1 << 20),
        (0..100_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let requests = [
        Message::GlobalBegin(GlobalBeginRequest {
            timeout_ms: 30_000,
            transaction_name: "sneaky".into(),
        }),
        Message::GlobalLockQuery(GlobalLockQueryRequest {
            xid: "127.0.0.1:8091:1".into(),
            branch_type: BranchType::At,
            resource_id: "db".into(),
            lock_key: bomb,
            application_data: String::new(),
        }),
        Message::GlobalStatus(GlobalStatusRequest {
            xid: "127.0.0.1:8091:1".into(),
            extra_data: String::new(),
        }),
    ];
    for request in requests {
        let mut stranger = RawConn::connect(server.addr).await.expect("connect");
        // Heartbeats are allowed before registration.
        stranger
            .stream
            .write_all(&[0xDA, 0xDA, 1, 0, 0, 0, 16, 0, 16, 3, 1, 0, 0, 0, 0, 9])
            .await
            .expect("ping");
        let pong = stranger.next_frame().await.expect("pong").expect("open");
        assert_eq!(pong.msg_type, MsgType::HeartbeatResponse);
        stranger
            .send(MsgType::Request, 1, &request)
            .await
            .expect("send");
        assert!(
            stranger.closed_by_server().await,
            "type {} before registration must close the connection",
            request.type_code()
        );
    }
    healthy_round_trip(&server).await;
    let log = server.log();
    assert!(
        log.contains("closing connection") && log.contains("has not registered"),
        "{log}"
    );
}

/// Begins a transaction, registers one TCC branch from `rm` and starts its commit on `tm`;
/// returns the commit task, the xid and the BranchCommit frame the RM received.
async fn commit_waiting_for(
    tm: &std::sync::Arc<Client>,
    rm: &mut RawConn,
) -> (
    tokio::task::JoinHandle<anyhow::Result<GlobalStatus>>,
    String,
    ferrata_proto::Frame,
    i64,
) {
    let xid = tm.begin(60_000).await.expect("begin");
    let branch_id = rm
        .register_tcc_branch(100, &xid, TCC_RESOURCE)
        .await
        .expect("register branch");
    let committer = tm.clone();
    let commit_xid = xid.clone();
    let commit = tokio::spawn(async move { committer.commit(&commit_xid).await });
    let request = loop {
        let frame = rm.next_frame().await.expect("frame").expect("open");
        if frame.msg_type == MsgType::Request {
            break frame;
        }
    };
    (commit, xid, request, branch_id)
}

fn commit_answer(xid: &str, branch_id: i64, status: BranchStatus) -> Message {
    Message::BranchCommitResponse(BranchCommitResponse {
        result: ResultInfo::success(),
        xid: xid.into(),
        branch_id,
        branch_status: status,
    })
}

#[tokio::test]
async fn a_forged_phase2_answer_cannot_end_a_branch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with_config(dir.path(), loopback(), "").expect("start");
    let mut rm = RawConn::connect(server.addr).await.expect("rm");
    rm.register_rm(1, "victim", TCC_RESOURCE)
        .await
        .expect("rm registers");
    let tm = std::sync::Arc::new(Client::connect(server.addr).await.expect("tm"));
    tm.register_tm("victim").await.expect("tm registers");
    let (commit, xid, request, branch_id) = commit_waiting_for(&tm, &mut rm).await;

    // A stranger registered for the same application and resource answers the request id
    // with the right xid and branch: the answer did not come from the connection it went to.
    let mut stranger = RawConn::connect(server.addr).await.expect("stranger");
    stranger
        .register_rm(1, "victim", TCC_RESOURCE)
        .await
        .expect("stranger registers");
    let forged = commit_answer(
        &xid,
        branch_id,
        BranchStatus::PhaseTwoCommitFailedUnretryable,
    );
    stranger
        .send(MsgType::Response, request.request_id, &forged)
        .await
        .expect("forge");
    // The right connection answering about another branch is dropped too.
    let wrong_branch = commit_answer(
        &xid,
        branch_id + 1,
        BranchStatus::PhaseTwoCommitFailedUnretryable,
    );
    rm.send(MsgType::Response, request.request_id, &wrong_branch)
        .await
        .expect("wrong branch");
    // Either forgery, had it been accepted, would have ended the transaction CommitFailed.
    rm.send(
        MsgType::Response,
        request.request_id,
        &commit_answer(&xid, branch_id, BranchStatus::PhaseTwoCommitted),
    )
    .await
    .expect("real answer");
    let status = tokio::time::timeout(Duration::from_secs(10), commit)
        .await
        .expect("commit answered")
        .expect("task")
        .expect("commit");
    assert_eq!(status, GlobalStatus::Committed);
    let log = server.log();
    assert!(log.contains("does not match its request"), "{log}");
}

#[tokio::test]
async fn requests_beyond_the_in_flight_limit_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with_config(
        dir.path(),
        loopback(),
        "[limits]\nmax_in_flight_per_connection = 2\n",
    )
    .expect("start");
    let mut rm = RawConn::connect(server.addr).await.expect("rm");
    rm.register_rm(1, "flood", TCC_RESOURCE)
        .await
        .expect("rm registers");
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm("flood").await.expect("tm registers");
    let mut xids = Vec::new();
    for i in 0..3 {
        let xid = tm.begin(60_000).await.expect("begin");
        let answer = rm
            .call(
                10 + i,
                &Message::BranchRegister(BranchRegisterRequest {
                    xid: xid.clone(),
                    branch_type: BranchType::Tcc,
                    resource_id: TCC_RESOURCE.into(),
                    lock_key: String::new(),
                    application_data: String::new(),
                }),
            )
            .await
            .expect("register");
        assert!(matches!(answer, Message::BranchRegisterResponse(r) if r.result.is_success()));
        xids.push(xid);
    }
    // Three commits on one connection; each waits for the RM, which does not answer yet.
    let mut committer = RawConn::connect(server.addr).await.expect("committer");
    committer.register_tm(1, "flood").await.expect("registers");
    for (i, xid) in xids.iter().enumerate() {
        let commit = Message::GlobalCommit(GlobalCommitRequest {
            xid: xid.clone(),
            extra_data: String::new(),
        });
        committer
            .send(MsgType::Request, 20 + i as i32, &commit)
            .await
            .expect("send commit");
    }
    // The third is refused at once, naming the limit.
    let refused = committer.next_frame().await.expect("frame").expect("open");
    assert_eq!(refused.request_id, 22);
    let message = ferrata_proto::decode_body(&refused, &Default::default(), 1 << 20).expect("body");
    let Message::GlobalCommitResponse(refusal) = message else {
        panic!("commit answer: {message:?}");
    };
    assert!(!refusal.result.is_success());
    assert!(
        refusal
            .result
            .msg
            .contains("limits.max_in_flight_per_connection"),
        "{}",
        refusal.result.msg
    );
    // The RM answers the two phase-2 requests it got; both commits then complete.
    let mut answered = 0;
    while answered < 2 {
        let frame = rm.next_frame().await.expect("frame").expect("open");
        let Ok(Message::BranchCommit(request)) =
            ferrata_proto::decode_body(&frame, &Default::default(), 1 << 20)
        else {
            continue;
        };
        let answer = commit_answer(
            &request.xid,
            request.branch_id,
            BranchStatus::PhaseTwoCommitted,
        );
        rm.send(MsgType::Response, frame.request_id, &answer)
            .await
            .expect("answer");
        answered += 1;
    }
    let mut committed = Vec::new();
    while committed.len() < 2 {
        let frame = committer.next_frame().await.expect("frame").expect("open");
        if let Ok(Message::GlobalCommitResponse(r)) =
            ferrata_proto::decode_body(&frame, &Default::default(), 1 << 20)
        {
            committed.push((frame.request_id, r.global_status));
        }
    }
    committed.sort();
    assert_eq!(
        committed,
        [(20, GlobalStatus::Committed), (21, GlobalStatus::Committed)]
    );
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_its_slot_freed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start_with_config(
        dir.path(),
        loopback(),
        "[limits]\nwrite_timeout = \"500ms\"\nmax_connections = 2\nmax_in_flight_per_connection = 64\n",
    )
    .expect("start");
    let healthy = Client::connect(server.addr)
        .await
        .expect("healthy connects");
    healthy.register_tm("healthy").await.expect("registers");

    let mut flood = RawConn::connect(server.addr).await.expect("flood");
    flood.register_tm(1, "flood").await.expect("registers");
    // Each request is answered with a failure that repeats its 4 KiB xid; the flood never
    // reads, so the server's writes block once the socket buffers are full.
    let xid = format!("127.0.0.1:8091:{}", "9".repeat(4096));
    let report = Message::BranchReport(BranchReportRequest {
        xid,
        branch_id: 1,
        branch_type: BranchType::At,
        status: BranchStatus::PhaseOneDone,
        resource_id: "db".into(),
        application_data: String::new(),
    });
    let frame = support::frame_of(MsgType::Request, 2, &report);
    let mut stream = flood.stream;
    let writer = tokio::spawn(async move {
        for _ in 0..20_000 {
            let write = tokio::time::timeout(Duration::from_secs(2), stream.write_all(&frame));
            if !matches!(write.await, Ok(Ok(()))) {
                break;
            }
        }
        stream
    });
    // Other clients are served meanwhile.
    let xid = healthy
        .begin(30_000)
        .await
        .expect("healthy begin during the flood");
    assert_eq!(
        healthy.commit(&xid).await.expect("healthy commit"),
        GlobalStatus::Committed
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            server.log().contains("does not read")
        })
        .await,
        "the server must close a client that does not read: {}",
        server.log()
    );
    let _stream = writer.await.expect("writer");
    // Its connection slot is free again (the limit is two connections).
    let newcomer = Client::connect(server.addr)
        .await
        .expect("newcomer connects");
    newcomer
        .register_tm("newcomer")
        .await
        .expect("a freed slot serves a new client");
    let xid = newcomer.begin(30_000).await.expect("newcomer begins");
    assert_eq!(
        healthy.commit(&xid).await.expect("commit"),
        GlobalStatus::Committed
    );
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server =
        ServerProcess::start_with_config(dir.path(), loopback(), "[limits]\nmax_connections = 1\n")
            .expect("start");
    let first = Client::connect(server.addr).await.expect("first connects");
    first.register_tm("first").await.expect("first registers");
    let mut second = RawConn::connect(server.addr).await.expect("tcp connect");
    assert!(second.closed_by_server().await, "over the limit");
    assert!(server.log().contains("connection limit reached"));
    drop(first);
    assert!(
        eventually(Duration::from_secs(10), || async {
            match Client::connect(server.addr).await {
                Ok(client) => client.register_tm("later").await.is_ok(),
                Err(_) => false,
            }
        })
        .await,
        "the slot is free once the first client left"
    );
}
