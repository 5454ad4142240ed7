//! Bad input closes only the offending connection, with a logged reason, while the server
//! keeps serving every other client.

mod support;

use std::time::Duration;

use ferrata_proto::{GlobalStatus, MsgType};
use support::{Client, ServerProcess};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `bytes` on a fresh connection and asserts the server closes it; then checks a healthy
/// client still completes a transaction and the log names the reason.
async fn assert_rejected(name: &str, bytes: Vec<u8>, reason_in_log: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let server = ServerProcess::start(&dir.path().join("data"), 0, &log).expect("server starts");
    let healthy = Client::connect(server.addr)
        .await
        .expect("healthy client connects");
    healthy.register_tm("healthy").await.expect("registers");

    let mut bad = TcpStream::connect(server.addr)
        .await
        .expect("bad client connects");
    bad.write_all(&bytes).await.expect("send bad bytes");
    let mut sink = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match bad.read(&mut sink).await {
                Ok(0) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert_eq!(
        closed,
        Ok(true),
        "{name}: the server must close the offending connection"
    );

    let xid = healthy
        .begin(30_000)
        .await
        .expect("healthy begin still served");
    assert_eq!(
        healthy.commit(&xid).await.expect("healthy commit"),
        GlobalStatus::Committed,
        "{name}"
    );

    let text = std::fs::read_to_string(&log).expect("read log");
    assert!(
        text.contains("closing connection") && text.contains(reason_in_log),
        "{name}: expected a logged reason containing {reason_in_log:?}, log was:\n{text}"
    );
    drop(server);
}

fn header(version: u8, full_len: i32, head_len: i16, msg_type: u8) -> Vec<u8> {
    let mut bytes = vec![0xDA, 0xDA, version];
    bytes.extend_from_slice(&full_len.to_be_bytes());
    bytes.extend_from_slice(&head_len.to_be_bytes());
    bytes.extend_from_slice(&[msg_type, 1, 0]);
    bytes.extend_from_slice(&7i32.to_be_bytes());
    bytes
}

#[tokio::test]
async fn garbage_on_a_fresh_connection() {
    assert_rejected(
        "garbage",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        "magic",
    )
    .await;
}

#[tokio::test]
async fn malformed_header_lengths() {
    assert_rejected("head length < 16", header(1, 16, 8, 0), "malformed frame").await;
}

#[tokio::test]
async fn unsupported_protocol_version() {
    assert_rejected("version 9", header(9, 16, 16, 0), "malformed frame").await;
}

#[tokio::test]
async fn oversized_frame() {
    assert_rejected(
        "oversized",
        header(1, 100 * 1024 * 1024, 16, 0),
        "malformed frame",
    )
    .await;
}

#[tokio::test]
async fn unknown_message_type_byte() {
    let mut bytes = header(1, 18, 16, 9);
    bytes.extend_from_slice(&[0, 1]);
    assert_rejected("msgtype 9", bytes, "malformed frame").await;
}

#[tokio::test]
async fn truncated_message_body() {
    // A GlobalBegin (type 1) whose body stops inside the timeout field.
    let mut bytes = header(1, 19, 16, 0);
    bytes.extend_from_slice(&[0, 1, 0]);
    assert_rejected("truncated body", bytes, "undecodable message").await;
}

#[tokio::test]
async fn response_type_sent_as_a_request() {
    // A GlobalCommitResponse (type 8) is not something a client may ask the TC to do.
    let mut bytes = header(1, 21, 16, 0);
    bytes.extend_from_slice(&[0, 8, 1, 0, 9]);
    assert_rejected("response as request", bytes, "unexpected message type").await;
}

#[tokio::test]
async fn a_frame_split_at_every_byte_is_still_answered() {
    // Frames split at every byte boundary still decode: the decoder waits for whole frames.
    let dir = tempfile::tempdir().expect("temp dir");
    let server =
        ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("log")).expect("start");
    let mut stream = TcpStream::connect(server.addr).await.expect("connect");
    let mut frames = support::frame_of(MsgType::Request, 41, &support::tm_registration("split"));
    frames.extend_from_slice(&support::frame_of(
        MsgType::Request,
        42,
        &ferrata_proto::Message::GlobalBegin(ferrata_proto::GlobalBeginRequest {
            timeout_ms: 1000,
            transaction_name: "split".into(),
        }),
    ));
    for byte in frames.iter() {
        stream.write_all(&[*byte]).await.expect("write one byte");
        stream.flush().await.expect("flush");
    }
    let mut received = ferrata_net::FrameBuffer::new(1 << 20, 1024);
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(frame) = ferrata_net::read_frame(&mut stream, &mut received, None).await {
            if frame.msg_type == MsgType::Response && frame.request_id == 42 {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(answered, Ok(true), "a response to request 42");
}
