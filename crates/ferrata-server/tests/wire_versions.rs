//! Seata 2.7 on the wire: a connection's first frame fixes its protocol version, and a v2
//! client gets v2 frames and the v2 registration layout (with the refusal reason); a
//! well-formed frame of an unknown message type is ignored and logged once, not a reason to
//! close the connection; UnregisterRM takes resources out of phase-2 routing.

mod support;

use std::net::SocketAddr;

use bytes::BytesMut;
use ferrata_proto::{
    CodecContext, GlobalBeginRequest, Message, MsgType, RegisterTmRequest, ResultCode, decode_body,
    encode_message,
};
use support::{RawConn, ServerProcess};
use tokio::io::AsyncWriteExt;

fn v2() -> CodecContext {
    CodecContext::default().with_protocol_version(2)
}

fn frame(ctx: &CodecContext, msg_type: MsgType, id: i32, message: &Message) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_message(msg_type, id, 1, 0, message, ctx, &mut buf).expect("encodable");
    buf
}

fn register_tm(version: &str) -> Message {
    Message::RegisterTm(RegisterTmRequest {
        version: version.into(),
        application_id: "wire".into(),
        transaction_service_group: "default_tx_group".into(),
        extra_data: "vgroup=default_tx_group\n".into(),
    })
}

fn server() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let server = ServerProcess::start_with_config(dir.path(), listen, "").expect("start");
    (dir, server)
}

#[tokio::test]
async fn a_v2_client_is_answered_in_v2_with_the_refusal_reason() {
    let (_dir, server) = server();
    let ctx = v2();
    // Refused (pre-0.7.1 version): a v2 answer can say why.
    let mut refused = RawConn::connect(server.addr).await.expect("connect");
    refused
        .stream
        .write_all(&frame(&ctx, MsgType::Request, 1, &register_tm("0.6.0")))
        .await
        .expect("send");
    let answer = refused.next_frame().await.expect("frame").expect("open");
    assert_eq!(answer.version, 2, "answered in the connection's version");
    let Message::RegisterTmResponse(r) = decode_body(&answer, &ctx, 1 << 20).expect("v2 body")
    else {
        panic!("registration answer")
    };
    assert!(!r.identified);
    assert_eq!(r.result_code, ResultCode::Failed);
    assert!(r.msg.contains("0.7.1"), "{}", r.msg);

    // Accepted: every later frame, pongs included, is v2.
    let mut accepted = RawConn::connect(server.addr).await.expect("connect");
    accepted
        .stream
        .write_all(&frame(&ctx, MsgType::Request, 1, &register_tm("2.7.0")))
        .await
        .expect("send");
    let answer = accepted.next_frame().await.expect("frame").expect("open");
    let Message::RegisterTmResponse(r) = decode_body(&answer, &ctx, 1 << 20).expect("v2 body")
    else {
        panic!("registration answer")
    };
    assert!(r.identified && r.result_code == ResultCode::Success);
    accepted
        .stream
        .write_all(&[0xDA, 0xDA, 2, 0, 0, 0, 16, 0, 16, 3, 1, 0, 0, 0, 0, 9])
        .await
        .expect("ping");
    let pong = accepted.next_frame().await.expect("frame").expect("open");
    assert_eq!(
        (pong.msg_type, pong.version),
        (MsgType::HeartbeatResponse, 2)
    );
    let begin = Message::GlobalBegin(GlobalBeginRequest {
        timeout_ms: 30_000,
        transaction_name: "v2".into(),
    });
    accepted
        .stream
        .write_all(&frame(&ctx, MsgType::Request, 2, &begin))
        .await
        .expect("begin");
    let answer = accepted.next_frame().await.expect("frame").expect("open");
    assert_eq!(answer.version, 2);
    assert!(matches!(
        decode_body(&answer, &ctx, 1 << 20),
        Ok(Message::GlobalBeginResponse(r)) if r.result.is_success()
    ));
}

#[tokio::test]
async fn an_unknown_message_type_is_ignored_and_logged_once() {
    let (_dir, server) = server();
    let mut client = RawConn::connect(server.addr).await.expect("connect");
    client.register_tm(1, "wire").await.expect("registers");
    // Two well-formed frames whose body carries type code 200, then a known request.
    let unknown: [u8; 20] = [
        0xDA, 0xDA, 1, 0, 0, 0, 20, 0, 16, 0, 1, 0, 0, 0, 0, 7, 0, 200, 0, 0,
    ];
    client.stream.write_all(&unknown).await.expect("unknown");
    client
        .stream
        .write_all(&unknown)
        .await
        .expect("unknown again");
    let begin = Message::GlobalBegin(GlobalBeginRequest {
        timeout_ms: 30_000,
        transaction_name: "after-unknown".into(),
    });
    let answer = client.call(3, &begin).await.expect("still served");
    assert!(matches!(answer, Message::GlobalBeginResponse(r) if r.result.is_success()));
    assert!(
        client.seen.is_empty(),
        "no answer to the unknown frames: {:?}",
        client.seen
    );
    let log = server.log();
    assert_eq!(
        log.matches("type this server does not know").count(),
        1,
        "logged once per type and connection:\n{log}"
    );
    assert!(!log.contains("closing connection"), "{log}");
}

#[tokio::test]
async fn unregister_rm_takes_a_resource_out_of_phase_two_routing() {
    use ferrata_proto::{
        BranchRegisterRequest, BranchType, GlobalCommitRequest, GlobalStatus, UnregisterRmRequest,
    };
    let (_dir, server) = server();
    let mut rm = RawConn::connect(server.addr).await.expect("rm");
    rm.register_rm(1, "wire", "wire-action")
        .await
        .expect("rm registers");
    let tm = support::Client::connect(server.addr).await.expect("tm");
    tm.register_tm("wire").await.expect("tm registers");
    let xid = tm.begin(60_000).await.expect("begin");
    let registered = rm
        .call(
            2,
            &Message::BranchRegister(BranchRegisterRequest {
                xid: xid.clone(),
                branch_type: BranchType::Tcc,
                resource_id: "wire-action".into(),
                lock_key: String::new(),
                application_data: String::new(),
            }),
        )
        .await
        .expect("branch");
    assert!(matches!(registered, Message::BranchRegisterResponse(r) if r.result.is_success()));
    let unregister = Message::UnregisterRm(UnregisterRmRequest {
        version: "2.7.0".into(),
        application_id: "wire".into(),
        transaction_service_group: "default_tx_group".into(),
        extra_data: String::new(),
        resource_ids: "wire-action".into(),
    });
    let answer = rm.call(3, &unregister).await.expect("unregister answered");
    assert!(matches!(answer, Message::UnregisterRmResponse(r) if r.identified));
    // Nobody serves the resource now: the commit cannot finish and is retried later.
    let commit = Message::GlobalCommit(GlobalCommitRequest {
        xid: xid.clone(),
        extra_data: String::new(),
    });
    let answer = tm.call(commit).await.expect("commit answered");
    assert!(
        matches!(&answer, Message::GlobalCommitResponse(r) if r.global_status == GlobalStatus::CommitRetrying),
        "{answer:?}"
    );
    assert!(
        rm.seen.iter().all(|f| f.msg_type != MsgType::Request),
        "no phase-2 request reached the unregistered resource"
    );
}
