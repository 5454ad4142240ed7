//! Transport behaviour that the real server cannot be made to show, against a scripted TC on
//! 127.0.0.1: batches answered by BatchResultMessage or by individual responses (Java TC 2.3+),
//! in any order; a TC that never answers (request timeout); one that never pongs (read idle).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrata::rm::{BranchHandler, BranchRequest, UndoLogDelete};
use ferrata::{BranchStatus, BranchType};
use ferrata::{Client, ClientConfig, Error, Operation};
use ferrata_net::{Connection, ConnectionConfig, Outbound, OutboundEncoder};
use ferrata_proto::{
    BatchResultMessage, BranchRollbackRequest, ClientVersion, CodecContext, Dialect,
    GlobalBeginResponse, MergeResultMessage, Message, MsgType, RegisterRmResponse,
    RegisterTmResponse, ResultInfo, UndoLogDeleteRequest, decode_body,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// One positional MergeResultMessage per batch.
    MergeResult,
    /// Two BatchResultMessages per batch, the second half first.
    BatchResult,
    /// One response per sub-request, with its msgId, in reverse order.
    Individual,
    /// Registers clients but never answers anything else.
    Silent,
    /// Answers requests but never pongs.
    NoPong,
    /// Once resources are registered, sends UndoLogDelete and BranchRollback (id 77).
    Phase2,
    /// Once resources are registered, sends FLOOD BranchRollback requests at once.
    Flood,
}

/// More TC requests than an RM queues (32 handlers + 10,000 waiting).
const FLOOD: usize = 10_032 + 100;

struct FakeTc {
    addr: String,
    connections: Arc<AtomicUsize>,
    /// Responses the client sent to the TC's own requests: (request id, message).
    answers: Arc<std::sync::Mutex<Vec<(i32, Message)>>>,
}

fn ctx() -> CodecContext {
    CodecContext::new(ClientVersion::new(2, 6, 0), Dialect::Java)
}

async fn fake_tc(mode: Mode) -> FakeTc {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let xid_prefix = addr.clone();
    let answers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = answers.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(stream, mode, xid_prefix.clone(), log.clone()));
        }
    });
    FakeTc {
        addr,
        connections,
        answers,
    }
}

/// The answer to one request; begin names carry the number the XID should end with.
fn answer(message: &Message, xid_prefix: &str) -> Option<Message> {
    match message {
        Message::RegisterTm(_) => Some(Message::RegisterTmResponse(RegisterTmResponse::new(
            true, "2.5.0",
        ))),
        Message::RegisterRm(_) => Some(Message::RegisterRmResponse(RegisterRmResponse::new(
            true, "2.5.0",
        ))),
        Message::GlobalBegin(r) => Some(Message::GlobalBeginResponse(GlobalBeginResponse {
            result: ResultInfo::success(),
            xid: format!(
                "{xid_prefix}:{}",
                r.transaction_name.trim_start_matches('n')
            ),
            extra_data: String::new(),
        })),
        _ => None,
    }
}

async fn serve(
    stream: TcpStream,
    mode: Mode,
    xid_prefix: String,
    log: Arc<std::sync::Mutex<Vec<(i32, Message)>>>,
) {
    let peer = stream.peer_addr().expect("peer");
    let (reader, writer) = stream.into_split();
    // Room for a whole flood, so that it leaves in as few writes as the writer can make.
    let (outbox, rx) = mpsc::channel(FLOOD + 64);
    let config = ConnectionConfig {
        max_frame_len: 8 << 20,
        read_idle: None,
        write_timeout: None,
        heartbeat_after: None,
    };
    let id = ferrata_net::next_connection_id();
    let mut conn = Connection::open(reader, writer, rx, OutboundEncoder, &config, peer, id);
    let mut out: Vec<Outbound> = Vec::new();
    while let Ok(frame) = conn.next_frame().await {
        'frame: {
            if frame.msg_type == MsgType::HeartbeatRequest {
                if mode != Mode::NoPong {
                    out.push(Outbound::Raw(frame.heartbeat_response_to()));
                }
                break 'frame;
            }
            let Ok(message) = decode_body(&frame, &ctx(), 8 << 20) else {
                break 'frame;
            };
            if frame.msg_type == MsgType::Response {
                log.lock().expect("log").push((frame.request_id, message));
                break 'frame;
            }
            if let (Mode::Phase2, Message::RegisterRm(r)) = (mode, &message)
                && !r.resource_ids.is_empty()
            {
                let undo = Message::UndoLogDelete(UndoLogDeleteRequest {
                    branch_type: BranchType::At,
                    resource_id: r.resource_ids.clone(),
                    save_days: 3,
                });
                out.push(Outbound::message(MsgType::Oneway, 76, undo, ctx()));
                let rollback = Message::BranchRollback(BranchRollbackRequest {
                    xid: format!("{xid_prefix}:9"),
                    branch_id: 99,
                    branch_type: BranchType::At,
                    resource_id: r.resource_ids.clone(),
                    application_data: String::new(),
                });
                out.push(Outbound::message(MsgType::Request, 77, rollback, ctx()));
            }
            if let (Mode::Flood, Message::RegisterRm(r)) = (mode, &message)
                && !r.resource_ids.is_empty()
            {
                for id in 0..FLOOD {
                    let rollback = Message::BranchRollback(BranchRollbackRequest {
                        xid: format!("{xid_prefix}:{id}"),
                        branch_id: id as i64,
                        branch_type: BranchType::Tcc,
                        resource_id: r.resource_ids.clone(),
                        application_data: String::new(),
                    });
                    out.push(Outbound::message(
                        MsgType::Request,
                        1000 + id as i32,
                        rollback,
                        ctx(),
                    ));
                }
            }
            let registration = matches!(message, Message::RegisterTm(_) | Message::RegisterRm(_));
            if mode == Mode::Silent && !registration {
                break 'frame;
            }
            let reply = |id: i32, m: &Message, out: &mut Vec<Outbound>| {
                out.push(Outbound::message(MsgType::Response, id, m.clone(), ctx()));
            };
            match message {
                Message::MergedWarp(merged) => {
                    let answers: Vec<Message> = merged
                        .messages
                        .iter()
                        .filter_map(|m| answer(m, &xid_prefix))
                        .collect();
                    let ids = merged.msg_ids.clone().expect("a 2.x client sends msgIds");
                    match mode {
                        Mode::BatchResult => {
                            let half = answers.len() / 2;
                            for (messages, msg_ids) in [
                                (answers[half..].to_vec(), ids[half..].to_vec()),
                                (answers[..half].to_vec(), ids[..half].to_vec()),
                            ] {
                                let batch =
                                    Message::BatchResult(BatchResultMessage { messages, msg_ids });
                                reply(frame.request_id, &batch, &mut out);
                            }
                        }
                        Mode::Individual => {
                            for (id, m) in ids.iter().zip(&answers).rev() {
                                reply(*id, m, &mut out);
                            }
                        }
                        _ => {
                            let result =
                                Message::MergeResult(MergeResultMessage { messages: answers });
                            reply(frame.request_id, &result, &mut out);
                        }
                    }
                }
                other => {
                    if let Some(m) = answer(&other, &xid_prefix) {
                        reply(frame.request_id, &m, &mut out);
                    }
                }
            }
        }
        for outbound in out.drain(..) {
            if outbox.send(outbound).await.is_err() {
                return;
            }
        }
    }
}

fn config(tc: &FakeTc) -> ClientConfig {
    ClientConfig::builder("fake-tc-test")
        .tc_addresses([tc.addr.clone()])
        .tm_batch(true)
        .tm_request_timeout(Duration::from_secs(5))
        .connect_timeout(Duration::from_secs(2))
        .reconnect_backoff_initial(Duration::from_millis(20))
        .reconnect_backoff_max(Duration::from_millis(100))
        .build()
        .expect("config")
}

async fn begins_match_their_answers(mode: Mode) {
    let tc = fake_tc(mode).await;
    let client = Client::connect(config(&tc)).await.expect("connects");
    let before = client.transport_stats();
    let mut handles = Vec::new();
    // Issue all before awaiting any, so that they are queued together.
    let futures: Vec<_> = (0..6)
        .map(|i| {
            let c = client.clone();
            Box::pin(async move { (i, c.begin(Duration::from_secs(30), &format!("n{i}")).await) })
        })
        .collect();
    for f in futures {
        handles.push(tokio::spawn(f));
    }
    for handle in handles {
        let (i, result) = handle.await.expect("join");
        let tx = result.unwrap_or_else(|e| panic!("{mode:?}: begin {i} failed: {e}"));
        assert_eq!(
            tx.xid(),
            format!("{}:{i}", tc.addr),
            "{mode:?}: answer matched to its request"
        );
    }
    let after = client.transport_stats();
    assert!(
        after.merged_frames_sent > before.merged_frames_sent,
        "{mode:?}: requests were merged: {after:?}"
    );
}

#[tokio::test]
async fn merged_requests_answered_by_merge_result() {
    begins_match_their_answers(Mode::MergeResult).await;
}

#[tokio::test]
async fn merged_requests_answered_by_batch_results_in_any_order() {
    begins_match_their_answers(Mode::BatchResult).await;
}

#[tokio::test]
async fn merged_requests_answered_individually() {
    begins_match_their_answers(Mode::Individual).await;
}

#[tokio::test]
async fn unanswered_request_times_out_with_a_typed_error() {
    let tc = fake_tc(Mode::Silent).await;
    let mut cfg = config(&tc);
    cfg.tm_request_timeout = Duration::from_millis(300);
    let client = Client::connect(cfg).await.expect("connects");
    let err = client
        .begin(Duration::from_secs(30), "n1")
        .await
        .expect_err("never answered");
    assert!(
        matches!(
            err,
            Error::Timeout {
                operation: Operation::GlobalBegin,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.advice().contains("query the transaction status"),
        "{err}"
    );
    // Commit and rollback are retried (5 attempts) before the error is returned.
    let err = client
        .commit(&format!("{}:1", tc.addr))
        .await
        .expect_err("times out");
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
}

#[tokio::test]
async fn silent_tc_connection_is_dropped_and_reconnected() {
    let tc = fake_tc(Mode::NoPong).await;
    let mut cfg = config(&tc);
    cfg.write_idle = Duration::from_millis(50);
    cfg.read_idle = Duration::from_millis(300);
    let client = Client::connect(cfg).await.expect("connects");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.transport_stats().connections_established < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reconnect after read idle: {:?}",
            client.transport_stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tc.connections.load(Ordering::SeqCst) >= 4);
    assert!(client.transport_stats().heartbeats_sent > 0);
}

/// Records undo-log deletions; rolls back normally.
#[derive(Debug, Clone, Default)]
struct UndoRecorder {
    undo: Arc<std::sync::Mutex<Vec<UndoLogDelete>>>,
}

impl BranchHandler for UndoRecorder {
    async fn branch_commit(&self, _request: BranchRequest) -> BranchStatus {
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, _request: BranchRequest) -> BranchStatus {
        BranchStatus::PhaseTwoRollbacked
    }

    async fn undo_log_delete(&self, request: UndoLogDelete) {
        self.undo.lock().expect("undo").push(request);
    }
}

#[tokio::test]
async fn tc_requests_reach_the_handler_and_are_answered_with_their_id() {
    let tc = fake_tc(Mode::Phase2).await;
    let client = Client::connect(config(&tc)).await.expect("connects");
    let handler = UndoRecorder::default();
    client
        .register_resource("jdbc:mysql://db/undo", handler.clone())
        .await
        .expect("register");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answered = tc.answers.lock().expect("answers").clone();
        let undone = handler.undo.lock().expect("undo").clone();
        if let (Some((id, answer)), Some(undo)) = (answered.first(), undone.first()) {
            assert_eq!(*id, 77, "the answer carries the TC's request id");
            match answer {
                Message::BranchRollbackResponse(r) => {
                    assert_eq!(r.branch_id, 99);
                    assert_eq!(r.branch_status, BranchStatus::PhaseTwoRollbacked);
                }
                other => panic!("unexpected answer {other:?}"),
            }
            assert_eq!(undo.save_days, 3);
            assert_eq!(undo.resource_id, "jdbc:mysql://db/undo");
            assert_eq!(answered.len(), 1, "UndoLogDelete is not answered");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no answer: {answered:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(client.transport_stats().server_requests_received, 2);
}

/// A handler that does not finish until released: meanwhile every TC request stays queued.
#[derive(Debug, Clone)]
struct Stuck(tokio::sync::watch::Receiver<bool>);

impl BranchHandler for Stuck {
    async fn branch_commit(&self, _: BranchRequest) -> BranchStatus {
        let _ = self.0.clone().wait_for(|released| *released).await;
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, _: BranchRequest) -> BranchStatus {
        let _ = self.0.clone().wait_for(|released| *released).await;
        BranchStatus::PhaseTwoRollbacked
    }
}

#[tokio::test]
async fn a_flood_of_tc_requests_is_bounded_not_queued_without_end() {
    let tc = fake_tc(Mode::Flood).await;
    let client = tokio::time::timeout(Duration::from_secs(10), Client::connect(config(&tc)))
        .await
        .expect("connects in time")
        .expect("connects");
    let (release, released) = tokio::sync::watch::channel(false);
    tokio::time::timeout(
        Duration::from_secs(10),
        client.register_resource("flooded-action", Stuck(released)),
    )
    .await
    .expect("registers in time")
    .expect("register");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client.transport_stats().server_requests_received < FLOOD as u64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "received {:?}",
            client.transport_stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 32 running and 10,000 waiting are kept; the rest is dropped for the TC to retry.
    assert_eq!(client.transport_stats().server_requests_dropped, 100);
    // Let the handlers finish so the runtime can shut down.
    let _ = release.send(true);
}
