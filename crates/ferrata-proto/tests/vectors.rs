//! Golden frames: decode each file, compare with the expected message, re-encode and
//! byte-compare. The §13 vectors come from the spec's worked examples; the §7/§8/§9 ones cover
//! Seata 2.7 (protocol version 2, UnregisterRM) and the newer enum values. All are hand-derived
//! from the encoding rules, not captured from real clients (those are in captured_vectors.rs).

use std::path::PathBuf;

use bytes::BytesMut;
use ferrata_proto::{
    BranchCommitRequest, BranchCommitResponse, BranchRegisterRequest, BranchRegisterResponse,
    BranchReportRequest, BranchRollbackResponse, BranchStatus, BranchType, CodecContext,
    DEFAULT_MAX_DECOMPRESSED_LEN, DEFAULT_MAX_FRAME_LEN, DecodeError, Frame, GlobalBeginRequest,
    GlobalBeginResponse, MergeResultMessage, MergedWarpMessage, Message, MsgType,
    RegisterRmResponse, RegisterTmRequest, RegisterTmResponse, ResultCode, ResultInfo,
    TransactionExceptionCode, UnregisterRmRequest, UnregisterRmResponse, decode_body, decode_frame,
    encode_frame, encode_message,
};

const XID: &str = "192.168.1.100:8091:2612341069705662465";
const RESOURCE: &str = "jdbc:mysql://127.0.0.1:3306/seata";
const BRANCH_ID: i64 = 2612341069705662470;

fn load(name: &str) -> Vec<u8> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "vectors", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut bytes = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        // Drop an "0010:" offset prefix.
        let data = match line.split_once(':') {
            Some((_, rest)) => rest,
            None => line,
        };
        for token in data.split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("hex byte"));
        }
    }
    assert!(!bytes.is_empty(), "{name} is empty");
    bytes
}

fn decode_whole(name: &str, wire: &[u8]) -> Frame {
    let mut buf = BytesMut::from(wire);
    let frame = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .unwrap_or_else(|| panic!("{name}: incomplete"));
    assert!(buf.is_empty(), "{name}: {} trailing bytes", buf.len());
    frame
}

/// The codec context of the connection `frame` arrived on, when it was the connection's first:
/// the protocol version is the one negotiated from its version byte.
fn connection_of(frame: &Frame) -> CodecContext {
    CodecContext::default().with_protocol_version(frame.version)
}

/// Decodes `name`, checks the frame header and message, then re-encodes both ways.
fn check(name: &str, msg_type: MsgType, request_id: i32, expected: Message) {
    let wire = load(name);
    let frame = decode_whole(name, &wire);
    assert_eq!(frame.msg_type, msg_type, "{name}");
    assert_eq!(frame.request_id, request_id, "{name}");
    assert_eq!((frame.codec, frame.compressor), (1, 0), "{name}");

    let mut again = BytesMut::new();
    encode_frame(&frame, &mut again);
    assert_eq!(&again[..], &wire[..], "{name}: frame re-encoding differs");

    let ctx = connection_of(&frame);
    let msg = decode_body(&frame, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(msg, expected, "{name}");

    let mut out = BytesMut::new();
    encode_message(msg_type, request_id, 1, 0, &msg, &ctx, &mut out).expect("encode");
    assert_eq!(
        &out[..],
        &wire[..],
        "{name}: message re-encoding differs\n got {:02x?}\nwant {:02x?}",
        &out[..],
        &wire[..]
    );
}

fn branch_register() -> BranchRegisterRequest {
    BranchRegisterRequest {
        xid: XID.into(),
        branch_type: BranchType::At,
        resource_id: RESOURCE.into(),
        lock_key: "order_tbl:1".into(),
        application_data: String::new(),
    }
}

fn registered() -> BranchRegisterResponse {
    BranchRegisterResponse {
        result: ResultInfo::success(),
        branch_id: BRANCH_ID,
    }
}

#[test]
fn v13_1_register_tm_request() {
    let extra = "ak=null\ndigest=default_tx_group,10.0.0.5,1700000000000\ntimestamp=1700000000000\nauthVersion=V4\nvgroup=default_tx_group\nip=10.0.0.5\n";
    check(
        "13.1-register-tm-request-java.hex",
        MsgType::Request,
        1,
        Message::RegisterTm(RegisterTmRequest {
            version: "2.2.0".into(),
            application_id: "demo-app".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: extra.into(),
        }),
    );
    check(
        "13.1-register-tm-request-go.hex",
        MsgType::Oneway,
        1,
        Message::RegisterTm(RegisterTmRequest {
            version: "1.1.0".into(),
            application_id: "demo-app".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: String::new(),
        }),
    );
}

#[test]
fn v13_2_register_tm_response() {
    check(
        "13.2-register-tm-response-v1.hex",
        MsgType::Response,
        1,
        Message::RegisterTmResponse(RegisterTmResponse::new(true, "2.2.0")),
    );
    // The same answer on a version-2 connection: a Success result code in front.
    check(
        "13.2-register-tm-response-v2.hex",
        MsgType::Response,
        1,
        Message::RegisterTmResponse(RegisterTmResponse::new(true, "2.2.0")),
    );
}

#[test]
fn v13_3_and_13_4_global_begin() {
    check(
        "13.3-global-begin-request.hex",
        MsgType::Request,
        2,
        Message::GlobalBegin(GlobalBeginRequest {
            timeout_ms: 60000,
            transaction_name: "create-order".into(),
        }),
    );
    check(
        "13.4-global-begin-response.hex",
        MsgType::Response,
        2,
        Message::GlobalBeginResponse(GlobalBeginResponse {
            result: ResultInfo::success(),
            xid: XID.into(),
            extra_data: String::new(),
        }),
    );
}

#[test]
fn v13_5_branch_register() {
    check(
        "13.5-branch-register-request.hex",
        MsgType::Request,
        5,
        Message::BranchRegister(branch_register()),
    );
    check(
        "13.5-branch-register-response-ok.hex",
        MsgType::Response,
        5,
        Message::BranchRegisterResponse(registered()),
    );
    check(
        "13.5-branch-register-response-lock-conflict.hex",
        MsgType::Response,
        5,
        Message::BranchRegisterResponse(BranchRegisterResponse {
            result: ResultInfo::failure(TransactionExceptionCode::LockKeyConflict, "lock conflict"),
            branch_id: 0,
        }),
    );
}

#[test]
fn v13_6_batched_branch_register() {
    check(
        "13.6-merged-warp-branch-register.hex",
        MsgType::Oneway,
        8,
        Message::MergedWarp(MergedWarpMessage {
            messages: vec![Message::BranchRegister(branch_register())],
            msg_ids: Some(vec![7]),
        }),
    );
    check(
        "13.6-merge-result-branch-register.hex",
        MsgType::Response,
        8,
        Message::MergeResult(MergeResultMessage {
            messages: vec![Message::BranchRegisterResponse(registered())],
        }),
    );
}

#[test]
fn v13_7_branch_commit() {
    check(
        "13.7-branch-commit-request.hex",
        MsgType::Request,
        1,
        Message::BranchCommit(BranchCommitRequest {
            xid: XID.into(),
            branch_id: BRANCH_ID,
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            application_data: String::new(),
        }),
    );
    check(
        "13.7-branch-commit-response.hex",
        MsgType::Response,
        1,
        Message::BranchCommitResponse(BranchCommitResponse {
            result: ResultInfo::success(),
            xid: XID.into(),
            branch_id: BRANCH_ID,
            branch_status: BranchStatus::PhaseTwoCommitted,
        }),
    );
}

#[test]
fn v13_8_heartbeat() {
    let ping_wire = load("13.8-heartbeat-ping.hex");
    let pong_wire = load("13.8-heartbeat-pong.hex");
    let ping = decode_whole("ping", &ping_wire);
    assert_eq!(ping.msg_type, MsgType::HeartbeatRequest);
    assert_eq!(ping.request_id, 9);
    assert!(ping.body.is_empty() && ping.head_map.is_empty());
    let mut again = BytesMut::new();
    encode_frame(&ping, &mut again);
    assert_eq!(&again[..], &ping_wire[..]);

    let mut pong = BytesMut::new();
    encode_frame(&ping.heartbeat_response_to(), &mut pong);
    assert_eq!(&pong[..], &pong_wire[..]);
    assert_eq!(
        decode_whole("pong", &pong_wire),
        ping.heartbeat_response_to()
    );
}

const TC_VERSION: &str = "2.7.0";

fn java_2_7_tm_extra_data() -> String {
    "ak=null\ndigest=default_tx_group,10.0.0.5,1700000000000\ntimestamp=1700000000000\n\
     authVersion=V4\nvgroup=default_tx_group\nip=10.0.0.5\n"
        .into()
}

/// A Seata 2.7 client opens its connection with a version-2 frame; a TC that speaks version 2
/// answers in version 2, where RegisterTMResponse starts with a result code.
#[test]
fn v2_register_tm_request_and_its_answer() {
    check(
        "8.2-register-tm-request-v2.hex",
        MsgType::Request,
        1,
        Message::RegisterTm(RegisterTmRequest {
            version: "2.7.0".into(),
            application_id: "demo-app".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: java_2_7_tm_extra_data(),
        }),
    );
    let ok = RegisterTmResponse::new(true, TC_VERSION);
    assert_eq!(ok.result_code, ResultCode::Success);
    check(
        "8.3-register-tm-response-v2-ok.hex",
        MsgType::Response,
        1,
        Message::RegisterTmResponse(ok),
    );
}

/// A refused registration carries its reason on version 2 only.
#[test]
fn v2_register_rm_response_failed_with_a_message() {
    let refused = RegisterRmResponse::rejected(
        TC_VERSION,
        "unknown transaction service group: my_test_tx_group",
    );
    check(
        "8.3-register-rm-response-v2-failed.hex",
        MsgType::Response,
        2,
        Message::RegisterRmResponse(refused.clone()),
    );
    // On a version-1 connection the result code and the message are not on the wire.
    let mut v1 = BytesMut::new();
    Message::RegisterRmResponse(refused).encode(&CodecContext::default(), &mut v1);
    assert_eq!(&v1[..], b"\x00\x68\x00\x00\x052.7.0");
    assert_eq!(
        Message::decode(&v1, &CodecContext::default()).expect("v1 body"),
        Message::RegisterRmResponse(RegisterRmResponse {
            result_code: ResultCode::Success,
            msg: String::new(),
            identified: false,
            version: TC_VERSION.into(),
        })
    );
}

/// UnregisterRM (105/106, Seata 2.7 RMs before shutdown): 106 keeps its version-1 layout on a
/// version-2 connection.
#[test]
fn unregister_rm_request_and_response() {
    check(
        "8.2-unregister-rm-request-v2.hex",
        MsgType::Request,
        3,
        Message::UnregisterRm(UnregisterRmRequest {
            version: "2.7.0".into(),
            application_id: "demo-app".into(),
            transaction_service_group: "default_tx_group".into(),
            extra_data: String::new(),
            resource_ids: RESOURCE.into(),
        }),
    );
    let answer = UnregisterRmResponse {
        identified: true,
        version: TC_VERSION.into(),
    };
    check(
        "8.3-unregister-rm-response-v2.hex",
        MsgType::Response,
        3,
        Message::UnregisterRmResponse(answer.clone()),
    );
    let wire = load("8.3-unregister-rm-response-v2.hex");
    let frame = decode_whole("106", &wire);
    let v1 = CodecContext::default();
    assert_eq!(
        decode_body(&frame, &v1, DEFAULT_MAX_DECOMPRESSED_LEN).expect("v1"),
        Message::UnregisterRmResponse(answer),
        "the body is the same in both versions"
    );
}

#[test]
fn saga_annotation_branch_register() {
    check(
        "9.1-branch-register-request-saga-annotation.hex",
        MsgType::Request,
        5,
        Message::BranchRegister(BranchRegisterRequest {
            xid: XID.into(),
            branch_type: BranchType::SagaAnnotation,
            resource_id: "reduceStock".into(),
            lock_key: String::new(),
            application_data: r#"{"actionContext":{"amount":2}}"#.into(),
        }),
    );
}

#[test]
fn xa_statuses_11_12_and_13() {
    check(
        "9.2-branch-commit-response-xaer-nota.hex",
        MsgType::Response,
        7,
        Message::BranchCommitResponse(BranchCommitResponse {
            result: ResultInfo::success(),
            xid: XID.into(),
            branch_id: BRANCH_ID,
            branch_status: BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable,
        }),
    );
    check(
        "9.2-branch-rollback-response-xaer-nota.hex",
        MsgType::Response,
        8,
        Message::BranchRollbackResponse(BranchRollbackResponse {
            result: ResultInfo::success(),
            xid: XID.into(),
            branch_id: BRANCH_ID,
            branch_status: BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable,
        }),
    );
    check(
        "9.2-branch-report-request-rdonly.hex",
        MsgType::Request,
        6,
        Message::BranchReport(BranchReportRequest {
            xid: XID.into(),
            branch_id: BRANCH_ID,
            status: BranchStatus::PhaseOneRdonly,
            resource_id: RESOURCE.into(),
            application_data: String::new(),
            branch_type: BranchType::Xa,
        }),
    );
    assert_eq!(
        [
            BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable.code(),
            BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable.code(),
            BranchStatus::PhaseOneRdonly.code(),
            BranchType::SagaAnnotation.code(),
        ],
        [11, 12, 13, 4]
    );
}

/// A frame whose type code this crate does not know is still a sound frame: it decodes and
/// re-encodes as a frame, its body gives the distinct `UnknownTypeCode` error, and the frame
/// after it on the connection decodes normally, so a server can skip it.
#[test]
fn unknown_type_code_is_a_distinct_error_and_the_stream_goes_on() {
    let name = "7-unknown-type-code.hex";
    let wire = load(name);
    let frame = decode_whole(name, &wire);
    assert_eq!(
        (frame.version, frame.msg_type, frame.request_id),
        (1, MsgType::Request, 9)
    );
    let mut again = BytesMut::new();
    encode_frame(&frame, &mut again);
    assert_eq!(&again[..], &wire[..]);
    for ctx in [
        CodecContext::default(),
        CodecContext::default().with_protocol_version(2),
    ] {
        assert!(matches!(
            decode_body(&frame, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN),
            Err(DecodeError::UnknownTypeCode(200))
        ));
    }

    let mut stream = BytesMut::from(&wire[..]);
    stream.extend_from_slice(&load("13.8-heartbeat-ping.hex"));
    let unknown = decode_frame(&mut stream, DEFAULT_MAX_FRAME_LEN)
        .expect("valid")
        .expect("whole");
    assert_eq!(unknown, frame);
    let next = decode_frame(&mut stream, DEFAULT_MAX_FRAME_LEN)
        .expect("valid")
        .expect("whole");
    assert_eq!(next.msg_type, MsgType::HeartbeatRequest);
    assert!(stream.is_empty());
}
