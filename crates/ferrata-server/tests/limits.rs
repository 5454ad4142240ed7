//! Each configurable limit, exceeded through the wire, is answered with the Seata result and
//! exception code a client understands and a message naming the limit, and the same client can
//! go on within the limit (RELIABILITY.md, "Limits"). A body over the decompressed limit closes
//! only its connection; the frame size is covered by bad_input.rs, connections and in-flight
//! requests by hostile_clients.rs.

mod support;

use std::net::SocketAddr;

use ferrata_proto::{
    BranchRegisterRequest, BranchType, GlobalBeginRequest, Message, ResultCode, ResultInfo,
    TransactionExceptionCode as Code,
};
use support::{Client, RESOURCE, ServerProcess};

/// A server with `config` and a registered TM+RM client.
async fn served(config: &str) -> (tempfile::TempDir, ServerProcess, Client) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = ServerProcess::start_with_config(dir.path(), listen, config).expect("start");
    let client = Client::connect(server.addr).await.expect("connect");
    client.register_tm("limits").await.expect("tm");
    client.register_rm("limits", RESOURCE).await.expect("rm");
    (dir, server, client)
}

#[track_caller]
fn assert_refused(result: &ResultInfo, code: Code, limit: &str) {
    assert_eq!(result.result_code, ResultCode::Failed, "{result:?}");
    assert_eq!(result.exception_code, code, "{result:?}");
    assert!(
        result.msg.contains(limit),
        "message must name {limit}: {}",
        result.msg
    );
}

async fn begin(client: &Client, timeout_ms: i32) -> ferrata_proto::GlobalBeginResponse {
    let request = GlobalBeginRequest {
        timeout_ms,
        transaction_name: "limits".into(),
    };
    match client
        .call(Message::GlobalBegin(request))
        .await
        .expect("answer")
    {
        Message::GlobalBeginResponse(r) => r,
        other => panic!("begin answer: {other:?}"),
    }
}

async fn register(client: &Client, xid: &str, lock_key: &str, data: &str) -> ResultInfo {
    let request = BranchRegisterRequest {
        xid: xid.into(),
        branch_type: BranchType::At,
        resource_id: RESOURCE.into(),
        lock_key: lock_key.into(),
        application_data: data.into(),
    };
    match client
        .call(Message::BranchRegister(request))
        .await
        .expect("answer")
    {
        Message::BranchRegisterResponse(r) => r.result,
        other => panic!("register answer: {other:?}"),
    }
}

#[tokio::test]
async fn lock_key_bytes_per_branch() {
    let (_dir, _server, client) = served("[limits]\nmax_lock_key_bytes = 64\n").await;
    let xid = client.begin(30_000).await.expect("begin");
    let bomb = format!("{}:1,2,3", "t".repeat(100));
    let refused = register(&client, &xid, &bomb, "").await;
    assert_refused(
        &refused,
        Code::FailedToAddBranch,
        "limits.max_lock_key_bytes",
    );
    assert!(register(&client, &xid, "t:1", "").await.is_success());
}

#[tokio::test]
async fn rows_per_branch() {
    let (_dir, _server, client) = served("[limits]\nmax_rows_per_branch = 2\n").await;
    let xid = client.begin(30_000).await.expect("begin");
    let refused = register(&client, &xid, "t:1,2,3", "").await;
    assert_refused(
        &refused,
        Code::FailedToAddBranch,
        "limits.max_rows_per_branch",
    );
    assert!(register(&client, &xid, "t:1,2", "").await.is_success());
}

#[tokio::test]
async fn branches_per_global_transaction() {
    let (_dir, _server, client) = served("[limits]\nmax_branches_per_transaction = 1\n").await;
    let xid = client.begin(30_000).await.expect("begin");
    assert!(register(&client, &xid, "t:1", "").await.is_success());
    let refused = register(&client, &xid, "t:2", "").await;
    assert_refused(
        &refused,
        Code::FailedToAddBranch,
        "limits.max_branches_per_transaction",
    );
}

#[tokio::test]
async fn application_data_bytes() {
    let (_dir, _server, client) = served("[limits]\nmax_application_data_bytes = 8\n").await;
    let xid = client.begin(30_000).await.expect("begin");
    let refused = register(&client, &xid, "t:1", r#"{"autoCommit":false}"#).await;
    assert_refused(
        &refused,
        Code::FailedToAddBranch,
        "limits.max_application_data_bytes",
    );
    assert!(register(&client, &xid, "t:1", "{}").await.is_success());
}

#[tokio::test]
async fn open_global_sessions() {
    let (_dir, _server, client) = served("[limits]\nmax_sessions = 1\n").await;
    let first = client.begin(30_000).await.expect("first begin");
    let refused = begin(&client, 30_000).await;
    assert_refused(&refused.result, Code::BeginFailed, "limits.max_sessions");
    client.commit(&first).await.expect("commit");
    assert!(begin(&client, 30_000).await.result.is_success());
}

#[tokio::test]
async fn largest_transaction_timeout() {
    let (_dir, _server, client) = served("[limits]\nmax_transaction_timeout = \"1m\"\n").await;
    let refused = begin(&client, 60_001).await;
    assert_refused(
        &refused.result,
        Code::BeginFailed,
        "limits.max_transaction_timeout",
    );
    assert!(begin(&client, 60_000).await.result.is_success());
}

#[tokio::test]
async fn begin_rate_limit() {
    // Seata 2.4's server.ratelimit: one token, refilled at one per second.
    let (_dir, _server, client) = served(
        "[coordinator.begin_rate_limit]\ntokens_per_second = 1\nmax_tokens = 1\ninitial_tokens = 1\n",
    )
    .await;
    assert!(begin(&client, 30_000).await.result.is_success());
    let refused = begin(&client, 30_000).await;
    assert_refused(
        &refused.result,
        Code::BeginFailed,
        "coordinator.begin_rate_limit",
    );
    assert!(refused.result.msg.contains("rate limit exception"));
}

#[tokio::test]
async fn decompressed_body_size() {
    use bytes::BufMut;
    use tokio::io::AsyncWriteExt;
    let (_dir, server, client) = served("[limits]\nmax_decompressed_bytes = 4096\n").await;
    // A GlobalBegin whose name makes the body 64 KiB once inflated, but tiny on the wire.
    let mut body = bytes::BytesMut::new();
    body.put_u16(1);
    body.put_i32(30_000);
    let name = "n".repeat(65_000);
    body.put_u16(name.len() as u16);
    body.put_slice(name.as_bytes());
    let packed =
        ferrata_proto::compress(ferrata_proto::compress::COMPRESSOR_GZIP, &body).expect("gzip");
    let mut frame = vec![0xDA, 0xDA, 1];
    frame.extend_from_slice(&(16 + packed.len() as i32).to_be_bytes());
    frame.extend_from_slice(&16i16.to_be_bytes());
    frame.extend_from_slice(&[0, 1, ferrata_proto::compress::COMPRESSOR_GZIP]);
    frame.extend_from_slice(&9i32.to_be_bytes());
    frame.extend_from_slice(&packed);
    let mut bomb = support::RawConn::connect(server.addr)
        .await
        .expect("connect");
    bomb.register_tm(1, "bomb").await.expect("registers");
    bomb.stream.write_all(&frame).await.expect("send");
    assert!(bomb.closed_by_server().await, "over the decompressed limit");
    assert!(
        server.log().contains("closing connection"),
        "{}",
        server.log()
    );
    // Everyone else is served.
    let xid = client.begin(30_000).await.expect("begin");
    client.commit(&xid).await.expect("commit");
}
