//! Property tests: every message type survives encode → decode under both dialects and every
//! client-version generation, alone, inside batches and inside compressed frames.

use bytes::BytesMut;
use ferrata_proto::{
    BatchResultMessage, BranchCommitRequest, BranchCommitResponse, BranchRegisterRequest,
    BranchRegisterResponse, BranchReportRequest, BranchReportResponse, BranchRollbackRequest,
    BranchRollbackResponse, BranchStatus, BranchType, ClientVersion, CodecContext,
    DEFAULT_MAX_DECOMPRESSED_LEN, DEFAULT_MAX_FRAME_LEN, Dialect, GlobalBeginRequest,
    GlobalBeginResponse, GlobalCommitRequest, GlobalCommitResponse, GlobalLockQueryRequest,
    GlobalLockQueryResponse, GlobalReportRequest, GlobalReportResponse, GlobalRollbackRequest,
    GlobalRollbackResponse, GlobalStatus, GlobalStatusRequest, GlobalStatusResponse,
    MergeResultMessage, MergedWarpMessage, Message, MsgType, RegisterRmRequest, RegisterRmResponse,
    RegisterTmRequest, RegisterTmResponse, ResultCode, ResultInfo, TransactionExceptionCode,
    UndoLogDeleteRequest, UnregisterRmRequest, UnregisterRmResponse, decode_body, decode_frame,
    encode_message,
};
use proptest::prelude::*;
use proptest::strategy::{Union, ValueTree};

const VERSIONS: [&str; 8] = [
    "0.9.0", "1.4.2", "1.5.2", "1.6.1", "1.7.0", "2.0.0", "2.3.0", "2.4.0",
];

fn ctx_strategy() -> impl Strategy<Value = CodecContext> {
    (
        prop::sample::select(VERSIONS.to_vec()),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![1u8, 2]),
    )
        .prop_map(|(v, newest, go, protocol_version)| {
            let version = if newest {
                ClientVersion::NEWEST
            } else {
                ClientVersion::parse(v).expect("valid version")
            };
            let dialect = if go { Dialect::Go } else { Dialect::Java };
            CodecContext::new(version, dialect).with_protocol_version(protocol_version)
        })
}

/// Any text, including multi-byte characters; short enough for every length prefix
/// (30 chars ≤ 120 bytes also fits seata-go's 1-byte message length unchanged).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-zA-Z0-9:._,;=-]{1,40}",
        "\\PC{1,30}",
    ]
}

fn long_text() -> impl Strategy<Value = String> {
    prop_oneof![text(), "[a-z0-9:,;_]{100,2000}"]
}

fn branch_type() -> impl Strategy<Value = BranchType> {
    prop::sample::select(BranchType::ALL.to_vec())
}

fn branch_status() -> impl Strategy<Value = BranchStatus> {
    prop::sample::select(BranchStatus::ALL.to_vec())
}

/// Only statuses the client can receive survive a round trip: encoding clamps the rest.
fn global_status(ctx: CodecContext) -> impl Strategy<Value = GlobalStatus> {
    prop::sample::select(GlobalStatus::ALL.to_vec())
        .prop_map(move |s| s.for_client(ctx.client_version))
}

fn result_info(ctx: CodecContext) -> impl Strategy<Value = ResultInfo> {
    (any::<bool>(), text(), 0u8..=23).prop_map(move |(ok, msg, code)| {
        // Ordinals the client's table lacks decode as Unknown, so draw from its table.
        let exception_code = TransactionExceptionCode::from_wire(code, ctx.client_version);
        if ok {
            ResultInfo {
                result_code: ResultCode::Success,
                msg: String::new(),
                exception_code,
            }
        } else {
            ResultInfo {
                result_code: ResultCode::Failed,
                msg,
                exception_code,
            }
        }
    })
}

/// The result prefix of 102/104: only protocol version 2 carries one (version 1 decodes as
/// Success without a message).
fn identify_result(ctx: CodecContext) -> impl Strategy<Value = (ResultCode, String)> {
    (any::<bool>(), text()).prop_map(move |(ok, msg)| {
        if ok || !ctx.is_v2() {
            (ResultCode::Success, String::new())
        } else {
            (ResultCode::Failed, msg)
        }
    })
}

/// Every non-batch message type, with fields drawn for `ctx`.
fn simple_message(ctx: CodecContext) -> BoxedStrategy<Message> {
    let r = move || result_info(ctx);
    let arms: Vec<BoxedStrategy<Message>> = vec![
        (any::<i32>(), text())
            .prop_map(|(timeout_ms, transaction_name)| {
                GlobalBeginRequest {
                    timeout_ms,
                    transaction_name,
                }
                .into()
            })
            .boxed(),
        (r(), text(), text())
            .prop_map(|(result, xid, extra_data)| {
                GlobalBeginResponse {
                    result,
                    xid,
                    extra_data,
                }
                .into()
            })
            .boxed(),
        (text(), any::<i64>(), branch_type(), text(), long_text())
            .prop_map(
                |(xid, branch_id, branch_type, resource_id, application_data)| {
                    BranchCommitRequest {
                        xid,
                        branch_id,
                        branch_type,
                        resource_id,
                        application_data,
                    }
                    .into()
                },
            )
            .boxed(),
        (r(), text(), any::<i64>(), branch_status())
            .prop_map(|(result, xid, branch_id, branch_status)| {
                BranchCommitResponse {
                    result,
                    xid,
                    branch_id,
                    branch_status,
                }
                .into()
            })
            .boxed(),
        (text(), any::<i64>(), branch_type(), text(), long_text())
            .prop_map(
                |(xid, branch_id, branch_type, resource_id, application_data)| {
                    BranchRollbackRequest {
                        xid,
                        branch_id,
                        branch_type,
                        resource_id,
                        application_data,
                    }
                    .into()
                },
            )
            .boxed(),
        (r(), text(), any::<i64>(), branch_status())
            .prop_map(|(result, xid, branch_id, branch_status)| {
                BranchRollbackResponse {
                    result,
                    xid,
                    branch_id,
                    branch_status,
                }
                .into()
            })
            .boxed(),
        (text(), text())
            .prop_map(|(xid, extra_data)| GlobalCommitRequest { xid, extra_data }.into())
            .boxed(),
        (r(), global_status(ctx))
            .prop_map(|(result, global_status)| {
                GlobalCommitResponse {
                    result,
                    global_status,
                }
                .into()
            })
            .boxed(),
        (text(), text())
            .prop_map(|(xid, extra_data)| GlobalRollbackRequest { xid, extra_data }.into())
            .boxed(),
        (r(), global_status(ctx))
            .prop_map(|(result, global_status)| {
                GlobalRollbackResponse {
                    result,
                    global_status,
                }
                .into()
            })
            .boxed(),
        (text(), branch_type(), text(), long_text(), long_text())
            .prop_map(
                |(xid, branch_type, resource_id, lock_key, application_data)| {
                    BranchRegisterRequest {
                        xid,
                        branch_type,
                        resource_id,
                        lock_key,
                        application_data,
                    }
                    .into()
                },
            )
            .boxed(),
        (r(), any::<i64>())
            .prop_map(|(result, branch_id)| BranchRegisterResponse { result, branch_id }.into())
            .boxed(),
        (
            text(),
            any::<i64>(),
            branch_status(),
            text(),
            long_text(),
            branch_type(),
        )
            .prop_map(
                |(xid, branch_id, status, resource_id, application_data, branch_type)| {
                    BranchReportRequest {
                        xid,
                        branch_id,
                        status,
                        resource_id,
                        application_data,
                        branch_type,
                    }
                    .into()
                },
            )
            .boxed(),
        r().prop_map(|result| BranchReportResponse { result }.into())
            .boxed(),
        (text(), text())
            .prop_map(|(xid, extra_data)| GlobalStatusRequest { xid, extra_data }.into())
            .boxed(),
        (r(), global_status(ctx))
            .prop_map(|(result, global_status)| {
                GlobalStatusResponse {
                    result,
                    global_status,
                }
                .into()
            })
            .boxed(),
        (text(), text(), prop::option::of(global_status(ctx)))
            .prop_map(|(xid, extra_data, global_status)| {
                GlobalReportRequest {
                    xid,
                    extra_data,
                    global_status,
                }
                .into()
            })
            .boxed(),
        (r(), global_status(ctx))
            .prop_map(|(result, global_status)| {
                GlobalReportResponse {
                    result,
                    global_status,
                }
                .into()
            })
            .boxed(),
        (text(), branch_type(), text(), long_text(), long_text())
            .prop_map(
                |(xid, branch_type, resource_id, lock_key, application_data)| {
                    GlobalLockQueryRequest {
                        xid,
                        branch_type,
                        resource_id,
                        lock_key,
                        application_data,
                    }
                    .into()
                },
            )
            .boxed(),
        (r(), any::<bool>())
            .prop_map(|(result, lockable)| GlobalLockQueryResponse { result, lockable }.into())
            .boxed(),
        (text(), text(), text(), long_text())
            .prop_map(
                |(version, application_id, transaction_service_group, extra_data)| {
                    RegisterTmRequest {
                        version,
                        application_id,
                        transaction_service_group,
                        extra_data,
                    }
                    .into()
                },
            )
            .boxed(),
        (identify_result(ctx), any::<bool>(), text())
            .prop_map(|((result_code, msg), identified, version)| {
                RegisterTmResponse {
                    result_code,
                    msg,
                    identified,
                    version,
                }
                .into()
            })
            .boxed(),
        (text(), text(), text(), text(), long_text())
            .prop_map(
                |(version, application_id, transaction_service_group, extra_data, resource_ids)| {
                    RegisterRmRequest {
                        version,
                        application_id,
                        transaction_service_group,
                        extra_data,
                        resource_ids,
                    }
                    .into()
                },
            )
            .boxed(),
        (identify_result(ctx), any::<bool>(), text())
            .prop_map(|((result_code, msg), identified, version)| {
                RegisterRmResponse {
                    result_code,
                    msg,
                    identified,
                    version,
                }
                .into()
            })
            .boxed(),
        (text(), text(), text(), text(), long_text())
            .prop_map(
                |(version, application_id, transaction_service_group, extra_data, resource_ids)| {
                    UnregisterRmRequest {
                        version,
                        application_id,
                        transaction_service_group,
                        extra_data,
                        resource_ids,
                    }
                    .into()
                },
            )
            .boxed(),
        (any::<bool>(), text())
            .prop_map(|(identified, version)| {
                UnregisterRmResponse {
                    identified,
                    version,
                }
                .into()
            })
            .boxed(),
        (branch_type(), text(), any::<i16>())
            .prop_map(|(branch_type, resource_id, save_days)| {
                UndoLogDeleteRequest {
                    branch_type,
                    resource_id,
                    save_days,
                }
                .into()
            })
            .boxed(),
    ];
    Union::new(arms).boxed()
}

/// Batches of mixed messages, ids present or absent as the format allows.
fn batch_message(ctx: CodecContext) -> BoxedStrategy<Message> {
    let merged = prop::collection::vec(simple_message(ctx), 1..6)
        .prop_flat_map(|messages| {
            let n = messages.len();
            (
                Just(messages),
                prop::option::of(prop::collection::vec(any::<i32>(), n)),
            )
        })
        .prop_map(|(messages, msg_ids)| MergedWarpMessage { messages, msg_ids }.into());
    let merge_result = prop::collection::vec(simple_message(ctx), 0..6)
        .prop_map(|messages| MergeResultMessage { messages }.into());
    let batch_result = prop::collection::vec(simple_message(ctx), 0..6)
        .prop_flat_map(|messages| {
            let n = messages.len();
            (Just(messages), prop::collection::vec(any::<i32>(), n))
        })
        .prop_map(|(messages, msg_ids)| BatchResultMessage { messages, msg_ids }.into());
    prop_oneof![merged, merge_result, batch_result].boxed()
}

fn ctx_and_message() -> impl Strategy<Value = (CodecContext, Message)> {
    ctx_strategy().prop_flat_map(|ctx| {
        (
            Just(ctx),
            prop_oneof![4 => simple_message(ctx), 1 => batch_message(ctx)],
        )
    })
}

fn round_trip(ctx: &CodecContext, msg: &Message) -> Message {
    let mut out = BytesMut::new();
    msg.encode(ctx, &mut out);
    assert_eq!(
        u16::from_be_bytes([out[0], out[1]]),
        msg.type_code(),
        "type code first"
    );
    Message::decode(&out, ctx).unwrap_or_else(|e| panic!("{}: {e}", msg.name()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips((ctx, msg) in ctx_and_message()) {
        prop_assert_eq!(round_trip(&ctx, &msg), msg);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Through the whole path: message → compressed frame → bytes → frame → message.
    #[test]
    fn framed_and_compressed_round_trip(
        (ctx, msg) in ctx_and_message(),
        compressor in prop::sample::select(vec![0u8, 1, 2, 4, 5, 6, 7]),
        request_id in any::<i32>(),
    ) {
        let mut wire = BytesMut::new();
        encode_message(MsgType::Request, request_id, 1, compressor, &msg, &ctx, &mut wire)
            .expect("encode");
        let frame = decode_frame(&mut wire, DEFAULT_MAX_FRAME_LEN)
            .expect("valid frame")
            .expect("complete frame");
        prop_assert!(wire.is_empty());
        prop_assert_eq!(frame.version, ctx.protocol_version);
        prop_assert_eq!(frame.request_id, request_id);
        prop_assert_eq!(frame.compressor, compressor);
        let back = decode_body(&frame, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN).expect("decode");
        prop_assert_eq!(back, msg);
    }
}

/// Every type code the dispatcher knows, checked against spec §7.
#[test]
fn type_codes_match_the_spec() {
    let ctx = CodecContext::default();
    let expected: [(u16, bool); 30] = [
        (1, true),
        (2, false),
        (3, true),
        (4, false),
        (5, true),
        (6, false),
        (7, true),
        (8, false),
        (9, true),
        (10, false),
        (11, true),
        (12, false),
        (13, true),
        (14, false),
        (15, true),
        (16, false),
        (17, true),
        (18, false),
        (21, true),
        (22, false),
        (59, true),
        (60, false),
        (121, false),
        (101, true),
        (102, false),
        (103, true),
        (104, false),
        (105, true),
        (106, false),
        (111, true),
    ];
    // Draw samples until every arm has been seen once.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop_oneof![4 => simple_message(ctx), 1 => batch_message(ctx)];
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..20_000 {
        let msg = strategy.new_tree(&mut runner).expect("tree").current();
        seen.insert(msg.type_code(), msg.is_request());
        if seen.len() == expected.len() {
            break;
        }
    }
    for (code, request) in expected {
        assert_eq!(seen.get(&code), Some(&request), "type {code}");
    }
    assert_eq!(seen.len(), expected.len());
}

fn encode(ctx: &CodecContext, msg: impl Into<Message>) -> Vec<u8> {
    let mut out = BytesMut::new();
    msg.into().encode(ctx, &mut out);
    out.to_vec()
}

#[test]
fn go_dialect_uses_one_byte_messages_in_4_6_14_22() {
    let go = CodecContext::new(ClientVersion::new(1, 5, 2), Dialect::Go);
    let java = CodecContext::new(ClientVersion::new(1, 5, 2), Dialect::Java);
    let failed = ResultInfo::failure(TransactionExceptionCode::Unknown, "no");
    let report = BranchReportResponse {
        result: failed.clone(),
    };
    assert_eq!(encode(&go, report.clone()), b"\x00\x0e\x00\x02no\x00");
    assert_eq!(encode(&java, report), b"\x00\x0e\x00\x00\x02no\x00");
    let lock = GlobalLockQueryResponse {
        result: failed.clone(),
        lockable: false,
    };
    assert_eq!(encode(&go, lock), b"\x00\x16\x00\x02no\x00\x00\x00");
    // Types outside the quirk keep 2-byte lengths for Go too.
    let register = BranchRegisterResponse {
        result: failed,
        branch_id: 0,
    };
    assert_eq!(&encode(&go, register)[..6], b"\x00\x0c\x00\x00\x02n");

    // A failed BranchCommitResponse as seata-go would write it.
    let mut wire = b"\x00\x04\x00\x05oops!\x03".to_vec();
    wire.extend_from_slice(b"\x00\x03a:1");
    wire.extend_from_slice(&7i64.to_be_bytes());
    wire.push(6);
    let msg = Message::decode(&wire, &go).expect("Go layout");
    assert_eq!(
        msg,
        Message::BranchCommitResponse(BranchCommitResponse {
            result: ResultInfo::failure(TransactionExceptionCode::Io, "oops!"),
            xid: "a:1".into(),
            branch_id: 7,
            branch_status: BranchStatus::PhaseTwoCommitFailedRetryable,
        })
    );
    // Success carries no message, so both dialects read it the same way.
    let ok = b"\x00\x06\x01\x00\x00\x03a:1\x00\x00\x00\x00\x00\x00\x00\x07\x08";
    assert_eq!(
        Message::decode(ok, &go).expect("go"),
        Message::decode(ok, &java).expect("java")
    );
}

#[test]
fn go_messages_longer_than_127_bytes_are_cut() {
    let go = CodecContext::new(ClientVersion::new(1, 5, 2), Dialect::Go);
    let resp = BranchReportResponse {
        result: ResultInfo::failure(TransactionExceptionCode::Unknown, "x".repeat(300)),
    };
    let wire = encode(&go, resp);
    assert_eq!(wire[3], 127);
    let Message::BranchReportResponse(back) = Message::decode(&wire, &go).expect("decode") else {
        panic!("wrong type");
    };
    assert_eq!(back.result.msg.len(), 127);
}

#[test]
fn enum_codes_follow_the_client_version() {
    let old = CodecContext::new(ClientVersion::new(1, 4, 2), Dialect::Java);
    let v18 = CodecContext::new(ClientVersion::new(1, 8, 0), Dialect::Java);
    let v2 = CodecContext::new(ClientVersion::new(2, 0, 0), Dialect::Java);
    let conflict = BranchRegisterResponse {
        result: ResultInfo::failure(TransactionExceptionCode::LockKeyConflictFailFast, ""),
        branch_id: 0,
    };
    // type, result 0, msg len 0, then the exception ordinal.
    assert_eq!(encode(&old, conflict.clone())[5], 2);
    assert_eq!(encode(&v18, conflict.clone())[5], 19);
    assert_eq!(encode(&v2, conflict)[5], 20);

    let status = GlobalCommitResponse {
        result: ResultInfo::success(),
        global_status: GlobalStatus::CommitRetryTimeout,
    };
    assert_eq!(
        encode(&old, status.clone())[4],
        GlobalStatus::CommitFailed.code()
    );
    assert_eq!(encode(&v18, status)[4], 16);
    let deleting = GlobalStatusResponse {
        result: ResultInfo::success(),
        global_status: GlobalStatus::Deleting,
    };
    assert_eq!(encode(&v18, deleting)[4], GlobalStatus::Finished.code());
}

#[test]
fn strict_and_tolerant_fields() {
    let ctx = CodecContext::default();
    // Unknown branch type in a request.
    let bad = b"\x00\x0b\x00\x01x\x09\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    assert!(matches!(
        Message::decode(bad, &ctx),
        Err(ferrata_proto::DecodeError::UnknownEnum {
            field: "branchType",
            value: 9
        })
    ));
    // GlobalReportRequest: -1 is null, 21 is unknown.
    assert_eq!(
        Message::decode(b"\x00\x11\x00\x00\x00\x00\xff", &ctx).expect("null status"),
        Message::GlobalReport(GlobalReportRequest::default())
    );
    assert!(Message::decode(b"\x00\x11\x00\x00\x00\x00\x15", &ctx).is_err());
    // Identified is true only for 1, as in Java.
    assert_eq!(
        Message::decode(b"\x00\x66\x02\x00\x00", &ctx).expect("valid"),
        Message::RegisterTmResponse(RegisterTmResponse::default())
    );
    // Unknown exception ordinals become Unknown rather than failing.
    let Message::BranchReportResponse(r) =
        Message::decode(b"\x00\x0e\x01\x63", &ctx).expect("valid")
    else {
        panic!("wrong type")
    };
    assert_eq!(r.result.exception_code, TransactionExceptionCode::Unknown);
    // Trailing bytes are ignored; unknown type codes and nested batches are errors.
    assert!(Message::decode(b"\x00\x0f\x00\x00\x00\x00trailing", &ctx).is_ok());
    assert!(matches!(
        Message::decode(b"\x00\x13", &ctx),
        Err(ferrata_proto::DecodeError::UnknownTypeCode(19))
    ));
    let nested = b"\x00\x3b\x00\x00\x00\x04\x00\x01\x00\x3c";
    assert!(matches!(
        Message::decode(nested, &ctx),
        Err(ferrata_proto::DecodeError::NestedBatch(60))
    ));
    assert!(matches!(
        Message::decode(b"", &ctx),
        Err(ferrata_proto::DecodeError::EmptyBody)
    ));
}

#[test]
fn merged_without_ids_is_pre_1_5_layout() {
    let ctx = CodecContext::default();
    let merged = MergedWarpMessage {
        messages: vec![
            GlobalStatusRequest {
                xid: "x".into(),
                extra_data: String::new(),
            }
            .into(),
        ],
        msg_ids: None,
    };
    let wire = encode(&ctx, merged.clone());
    // contentLength = count(2) + type(2) + xid(3) + extra(2)
    assert_eq!(&wire[2..6], &9i32.to_be_bytes());
    assert_eq!(wire.len(), 6 + 9);
    assert_eq!(
        Message::decode(&wire, &ctx).expect("valid"),
        Message::MergedWarp(merged)
    );
}
