//! Protocol behaviour of the running server: heartbeats, merged batches answered positionally,
//! synchronous TCC phase 2 delivered to the registering RM, and lock conflicts.

mod support;

use std::time::Duration;

use ferrata_net::FrameBuffer;
use ferrata_proto::{
    BranchRegisterRequest, BranchType, CodecContext, GlobalLockQueryRequest, GlobalStatus,
    MergedWarpMessage, Message, MsgType, TransactionExceptionCode, decode_body,
};
use support::{Client, RESOURCE, ServerProcess};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn server() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server =
        ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("log")).expect("start");
    (dir, server)
}

async fn read_frame(stream: &mut TcpStream, frames: &mut FrameBuffer) -> ferrata_proto::Frame {
    ferrata_net::read_frame(stream, frames, Some(Duration::from_secs(10)))
        .await
        .expect("a frame within 10 s")
}

#[tokio::test]
async fn heartbeat_is_answered_with_the_same_id() {
    let (_dir, server) = server();
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let ping = [0xDA, 0xDA, 1, 0, 0, 0, 16, 0, 16, 3, 1, 0, 0, 0, 0, 9];
    stream.write_all(&ping).await.expect("ping");
    let mut buf = FrameBuffer::new(8 << 20, 1024);
    let pong = read_frame(&mut stream, &mut buf).await;
    assert_eq!(pong.msg_type, MsgType::HeartbeatResponse);
    assert_eq!(pong.request_id, 9);
    assert!(pong.body.is_empty());
}

#[tokio::test]
async fn merged_requests_get_one_positional_merge_result() {
    let (_dir, server) = server();
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm("merge-tm").await.expect("register tm");
    let xid = tm.begin(30_000).await.expect("begin");
    let other = tm.begin(30_000).await.expect("begin other");

    let mut rm = TcpStream::connect(server.addr).await.expect("rm connect");
    let register = |xid: &str, key: &str| {
        Message::BranchRegister(BranchRegisterRequest {
            xid: xid.into(),
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            lock_key: key.into(),
            application_data: String::new(),
        })
    };
    let merged = Message::MergedWarp(MergedWarpMessage {
        messages: vec![
            register(&xid, "t:1"),
            register(&other, "t:1"),
            Message::GlobalLockQuery(GlobalLockQueryRequest {
                xid: other.clone(),
                branch_type: BranchType::At,
                resource_id: RESOURCE.into(),
                lock_key: "t:1".into(),
                application_data: String::new(),
            }),
        ],
        msg_ids: Some(vec![11, 12, 13]),
    });
    let registration = support::rm_registration("merge-rm", RESOURCE);
    rm.write_all(&support::frame_of(MsgType::Request, 76, &registration))
        .await
        .expect("register rm");
    let mut buf = FrameBuffer::new(8 << 20, 1024);
    let registered = read_frame(&mut rm, &mut buf).await;
    assert_eq!(registered.request_id, 76);
    rm.write_all(&support::frame_of(MsgType::Oneway, 77, &merged))
        .await
        .expect("send merged");
    let frame = read_frame(&mut rm, &mut buf).await;
    assert_eq!(
        (frame.msg_type, frame.request_id),
        (MsgType::Response, 77),
        "answered with the wrapper id"
    );
    let Message::MergeResult(result) =
        decode_body(&frame, &CodecContext::default(), 8 << 20).expect("decodes")
    else {
        panic!("expected a MergeResultMessage");
    };
    assert_eq!(result.messages.len(), 3);
    match &result.messages[0] {
        Message::BranchRegisterResponse(r) => {
            assert!(r.result.is_success() && r.branch_id > 0, "{r:?}")
        }
        other => panic!("first answer: {other:?}"),
    }
    match &result.messages[1] {
        Message::BranchRegisterResponse(r) => {
            assert!(!r.result.is_success());
            assert_eq!(
                r.result.exception_code,
                TransactionExceptionCode::LockKeyConflict
            );
        }
        other => panic!("second answer: {other:?}"),
    }
    match &result.messages[2] {
        Message::GlobalLockQueryResponse(r) => assert!(r.result.is_success() && !r.lockable),
        other => panic!("third answer: {other:?}"),
    }
    // Once the holder commits, the row is free for the other transaction.
    assert_eq!(
        tm.commit(&xid).await.expect("commit"),
        GlobalStatus::Committed
    );
    let rm2 = Client::connect(server.addr).await.expect("rm2");
    rm2.register_rm("merge-rm2", RESOURCE)
        .await
        .expect("register rm2");
    assert!(
        rm2.register_branch(&other, "t:1")
            .await
            .expect("register")
            .is_ok()
    );
}

#[tokio::test]
async fn tcc_commit_waits_for_the_registering_rm() {
    let (_dir, server) = server();
    let rm = Client::connect(server.addr).await.expect("rm");
    rm.register_rm("tcc-app", "tcc-action")
        .await
        .expect("register rm");
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm("tcc-app").await.expect("register tm");
    let xid = tm.begin(30_000).await.expect("begin");
    let answer = rm
        .call(Message::BranchRegister(BranchRegisterRequest {
            xid: xid.clone(),
            branch_type: BranchType::Tcc,
            resource_id: "tcc-action".into(),
            lock_key: String::new(),
            application_data: r#"{"actionContext":{"amount":3}}"#.into(),
        }))
        .await
        .expect("register branch");
    let Message::BranchRegisterResponse(registered) = answer else {
        panic!("{answer:?}")
    };
    assert!(registered.result.is_success());
    // The synchronous commit answers only after the RM confirmed its branch.
    assert_eq!(
        tm.commit(&xid).await.expect("commit"),
        GlobalStatus::Committed
    );
    let calls = rm.phase2.lock().expect("log").clone();
    assert_eq!(calls, vec![(xid.clone(), registered.branch_id, true)]);
    assert_eq!(
        tm.status(&xid).await.expect("status"),
        GlobalStatus::Finished
    );
}

#[tokio::test]
async fn rollback_with_no_rm_connected_retries_until_the_rm_returns() {
    let (_dir, server) = server();
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm("retry-app").await.expect("register tm");
    let xid = tm.begin(30_000).await.expect("begin");
    let branch_id = {
        let rm = Client::connect(server.addr).await.expect("rm");
        rm.register_rm("retry-app", RESOURCE)
            .await
            .expect("register rm");
        rm.register_branch(&xid, "r:1")
            .await
            .expect("register")
            .expect("locked")
    };
    // The RM connection is gone: the rollback cannot reach it and is retried.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        tm.rollback(&xid).await.expect("rollback"),
        GlobalStatus::RollbackRetrying
    );
    let rm = Client::connect(server.addr).await.expect("rm again");
    rm.register_rm("retry-app", RESOURCE)
        .await
        .expect("register rm again");
    let ended = support::eventually(Duration::from_secs(10), || {
        let tm = &tm;
        let xid = &xid;
        async move { tm.status(xid).await.ok() == Some(GlobalStatus::Finished) }
    })
    .await;
    assert!(ended, "the retried rollback completes once the RM is back");
    assert_eq!(
        rm.phase2.lock().expect("log").clone(),
        vec![(xid.clone(), branch_id, false)]
    );
}

#[tokio::test]
async fn registration_version_check() {
    let (_dir, server) = server();
    let client = Client::connect(server.addr).await.expect("connect");
    for (version, accepted) in [
        ("2.6.0", true),
        ("1.8.0", true),
        ("1.1.0", true),
        ("0.6.1", false),
        ("", false),
        ("1.2.3.4.5", false),
    ] {
        let answer = client
            .call(Message::RegisterTm(ferrata_proto::RegisterTmRequest {
                version: version.into(),
                application_id: "version-check".into(),
                transaction_service_group: "default_tx_group".into(),
                extra_data: "vgroup=default_tx_group\n".into(),
            }))
            .await
            .expect("answered");
        let Message::RegisterTmResponse(response) = answer else {
            panic!("{answer:?}")
        };
        assert_eq!(response.identified, accepted, "version {version:?}");
        assert!(!response.version.is_empty(), "the TC reports its version");
    }
}
