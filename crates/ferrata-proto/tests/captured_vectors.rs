//! Golden frames captured from real Seata clients (seata-go v1.2.0, seata-all 2.6.0 and 1.8.0,
//! uncompressed and with every Java compressor) talking to the reference TC
//! (io.seata:seata-server 2.0.0) through `examples/capture_proxy.rs`; how they were made is in
//! `tests/vectors/captured/README.md`.
//!
//! Every frame is decoded with `decode_frame` + `decode_body` (frames sent by seata-go with
//! `Dialect::Go`, all others with `Dialect::Java`; the client version is the lowest one
//! registered in the same capture), its fields are checked against what the client is known
//! to have sent, and the message is re-encoded with `encode_message`: byte for byte for
//! uncompressed frames, by decompressed body for compressed ones (compressor output need not
//! be bitwise identical). Requests and their answers present in the same file are checked
//! to pair up by connection and request id.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use bytes::BytesMut;
use ferrata_proto::{
    BranchStatus, BranchType, ClientVersion, CodecContext, DEFAULT_MAX_DECOMPRESSED_LEN,
    DEFAULT_MAX_FRAME_LEN, Dialect, Frame, GlobalStatus, Message, MsgType, ResultInfo,
    TransactionExceptionCode, compress_for, decode_body, decode_frame, decompress, encode_frame,
    encode_message,
};

/// Version string the reference TC reports in RegisterTM/RM responses.
const REFERENCE_TC_VERSION: &str = "2.0.0";
/// Port of the reference TC, which is also the port inside every XID it issues.
const REFERENCE_TC_PORT: u16 = 18091;
/// Compressor code 5.
const LZ4: u8 = 5;
/// Magic number of the standard LZ4 frame format (0x184D2204, little-endian).
const LZ4_FRAME_MAGIC: [u8; 4] = [0x04, 0x22, 0x4d, 0x18];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lang {
    Java,
    Go,
}

/// What is known about the client of one capture, independently of the captured bytes.
#[derive(Debug)]
struct Client {
    file: &'static str,
    lang: Lang,
    /// RegisterTMRequest.version and RegisterRMRequest.version the client sends.
    tm_version: &'static str,
    rm_version: &'static str,
    app_id: &'static str,
    group: &'static str,
    /// transport.compressor of the client (0 = none).
    compressor: u8,
    begin_timeout_ms: i32,
    /// Every transaction name the client uses starts with this.
    tx_name_prefix: &'static str,
    tcc_resources: &'static [&'static str],
    at_resource: Option<&'static str>,
    /// Frame kinds (see [`kind`]) the file must contain.
    kinds: &'static [&'static str],
}

const JAVA_APP_2: &str = "ferrata-capture-seata2";
const JAVA_APP_1: &str = "ferrata-capture-seata1";
const JAVA_GROUP: &str = "default_tx_group";
const JAVA_TCC: &[&str] = &["ferrata-capture-tcc-a", "ferrata-capture-tcc-b"];
const JAVA_AT: &str = "jdbc:mysql://127.0.0.1:3306/capture";

/// The full Java scenario: TM and RM registration, begin/status/commit/rollback/report, TCC
/// and AT branches (batched), a branch report, a lock query, a lock conflict, a registration
/// on an unknown XID, a late resource registration (MSGTYPE 2), phase two, heartbeats.
const JAVA_FULL: &[&str] = &[
    "c2s 0 101",
    "s2c 1 102",
    "c2s 0 103",
    "s2c 1 104",
    "c2s 2 103",
    "c2s 0 1",
    "s2c 1 2",
    "c2s 0 15",
    "s2c 1 16",
    "c2s 0 7",
    "s2c 1 8",
    "c2s 0 9",
    "s2c 1 10",
    "c2s 0 17",
    "s2c 1 18",
    "c2s 2 59[11]",
    "s2c 1 60[12]",
    "s2c 1 60[12]!",
    "c2s 2 59[13]",
    "s2c 1 60[14]",
    "c2s 2 59[21]",
    "s2c 1 60[22]",
    "c2s 2 59[11,11]",
    "s2c 1 60[12,12]",
    "s2c 0 3",
    "c2s 1 4",
    "s2c 0 5",
    "c2s 1 6",
    "c2s 3",
    "s2c 4",
];

/// The short scenario of the compressed runs: no report, lock query, conflict or late resource.
const JAVA_SHORT: &[&str] = &[
    "c2s 0 101",
    "s2c 1 102",
    "c2s 0 103",
    "s2c 1 104",
    "c2s 0 1",
    "s2c 1 2",
    "c2s 0 15",
    "s2c 1 16",
    "c2s 0 7",
    "s2c 1 8",
    "c2s 0 9",
    "s2c 1 10",
    "c2s 2 59[11]",
    "s2c 1 60[12]",
    "s2c 0 3",
    "c2s 1 4",
    "s2c 0 5",
    "c2s 1 6",
    "c2s 3",
    "s2c 4",
];

const fn java(
    file: &'static str,
    version: &'static str,
    app_id: &'static str,
    compressor: u8,
    kinds: &'static [&'static str],
) -> Client {
    Client {
        file,
        lang: Lang::Java,
        tm_version: version,
        rm_version: version,
        app_id,
        group: JAVA_GROUP,
        compressor,
        begin_timeout_ms: 60_000,
        tx_name_prefix: "capture-",
        tcc_resources: JAVA_TCC,
        at_resource: Some(JAVA_AT),
        kinds,
    }
}

const GO: Client = Client {
    file: "go-1.2.0.txt",
    lang: Lang::Go,
    tm_version: "1.1.0",
    rm_version: "1.5.2",
    app_id: "ferrata-interop-go",
    group: "ferrata_interop_group",
    compressor: 0,
    begin_timeout_ms: 30_000,
    tx_name_prefix: "ferrata-go-",
    tcc_resources: &["ferrata-go-tcc-a", "ferrata-go-tcc-b"],
    at_resource: None,
    kinds: &[
        "c2s 2 101",
        "s2c 1 102",
        "c2s 0 103",
        "s2c 1 104",
        "c2s 0 1",
        "s2c 1 2",
        "c2s 0 15",
        "s2c 1 16",
        "c2s 0 11",
        "s2c 1 12",
        "c2s 0 7",
        "s2c 1 8",
        "c2s 0 9",
        "s2c 1 10",
        "s2c 0 3",
        "c2s 1 4",
        "s2c 0 5",
        "c2s 1 6",
        "s2c 2 111",
        "c2s 3",
        "s2c 4",
    ],
};

/// One frame line of a vector file.
#[derive(Debug)]
struct Captured {
    /// The `# ...` line before the frame, for messages.
    what: String,
    c2s: bool,
    conn: u32,
    raw: Vec<u8>,
}

fn load(file: &str) -> Vec<Captured> {
    let path: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "vectors",
        "captured",
        file,
    ]
    .iter()
    .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut frames = Vec::new();
    let mut what = String::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            what = format!("{file}:{}:{comment}", n + 1);
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [direction, hex, tag] = fields.as_slice() else {
            panic!("{file}:{}: malformed frame line", n + 1);
        };
        let c2s = match *direction {
            "c2s" => true,
            "s2c" => false,
            other => panic!("{file}:{}: bad direction {other}", n + 1),
        };
        let conn = tag
            .strip_prefix("#conn=")
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("{file}:{}: bad connection tag {tag}", n + 1));
        assert!(hex.len() % 2 == 0, "{file}:{}: odd hex", n + 1);
        let raw = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex byte"))
            .collect();
        frames.push(Captured {
            what: what.clone(),
            c2s,
            conn,
            raw,
        });
    }
    assert!(!frames.is_empty(), "{file} holds no frames");
    frames
}

/// Decodes a captured frame, which must be whole and alone.
fn whole_frame(cap: &Captured) -> Frame {
    let mut buf = BytesMut::from(&cap.raw[..]);
    let frame = decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
        .unwrap_or_else(|e| panic!("{}: {e}", cap.what))
        .unwrap_or_else(|| panic!("{}: incomplete frame", cap.what));
    assert!(buf.is_empty(), "{}: {} trailing bytes", cap.what, buf.len());
    frame
}

/// True for a body in the standard LZ4 frame format, which seata-all >= 2.6.0 writes.
fn is_lz4_frame(frame: &Frame) -> bool {
    frame.compressor == LZ4 && frame.body.starts_with(&LZ4_FRAME_MAGIC)
}

/// The uncompressed SEATA body: the wire body or ferrata's `decompress` (for the LZ4 frame
/// format cross-checked with the independent decoder below).
fn plain_body(frame: &Frame, what: &str) -> Vec<u8> {
    if frame.compressor == 0 {
        frame.body.to_vec()
    } else if is_lz4_frame(frame) {
        // Cross-check ferrata's reader with the independent one below.
        let ours = decompress(frame.compressor, &frame.body, DEFAULT_MAX_DECOMPRESSED_LEN)
            .unwrap_or_else(|e| panic!("{what}: decompress: {e}"));
        assert_eq!(ours, lz4_frame_decode(&frame.body, what), "{what}");
        ours
    } else {
        decompress(frame.compressor, &frame.body, DEFAULT_MAX_DECOMPRESSED_LEN)
            .unwrap_or_else(|e| panic!("{what}: decompress: {e}"))
    }
}

/// Minimal reader of the standard LZ4 frame format (as lz4-java's `LZ4FrameOutputStream`
/// writes it), used only to check the seata-all 2.6.0 captures without ferrata-proto.
fn lz4_frame_decode(data: &[u8], what: &str) -> Vec<u8> {
    assert!(
        data.starts_with(&LZ4_FRAME_MAGIC),
        "{what}: no LZ4 frame magic"
    );
    let flg = data[4];
    assert_eq!(flg >> 6, 0b01, "{what}: LZ4 frame version");
    assert_eq!(flg & 0x01, 0, "{what}: LZ4 dictionary id unsupported here");
    let block_checksum = flg & 0x10 != 0;
    let content_size = flg & 0x08 != 0;
    let content_checksum = flg & 0x04 != 0;
    // magic, FLG, BD, optional content size, header checksum
    let mut pos = 4 + 2 + if content_size { 8 } else { 0 } + 1;
    let mut out = Vec::new();
    loop {
        let size = u32::from_le_bytes(data[pos..pos + 4].try_into().expect("4 bytes"));
        pos += 4;
        if size == 0 {
            break;
        }
        let len = (size & 0x7fff_ffff) as usize;
        let block = &data[pos..pos + len];
        pos += len;
        if size & 0x8000_0000 != 0 {
            out.extend_from_slice(block);
        } else {
            lz4_block_decode(block, &mut out);
        }
        if block_checksum {
            pos += 4;
        }
    }
    if content_checksum {
        pos += 4;
    }
    assert_eq!(pos, data.len(), "{what}: bytes after the LZ4 frame");
    out
}

/// Decodes one LZ4 block (sequences of literals and back-references) onto `out`.
fn lz4_block_decode(src: &[u8], out: &mut Vec<u8>) {
    fn length(src: &[u8], i: &mut usize, mut len: usize) -> usize {
        if len == 15 {
            loop {
                let b = src[*i];
                *i += 1;
                len += usize::from(b);
                if b != 255 {
                    break;
                }
            }
        }
        len
    }
    let mut i = 0;
    loop {
        let token = src[i];
        i += 1;
        let literals = length(src, &mut i, usize::from(token >> 4));
        out.extend_from_slice(&src[i..i + literals]);
        i += literals;
        if i == src.len() {
            return;
        }
        let offset = usize::from(u16::from_le_bytes([src[i], src[i + 1]]));
        i += 2;
        let matched = length(src, &mut i, usize::from(token & 0x0f)) + 4;
        let start = out.len() - offset;
        for k in 0..matched {
            let b = out[start + k];
            out.push(b);
        }
    }
}

/// `host:port:transactionId` with a numeric port and a positive id (spec §11.8).
fn assert_xid(xid: &str, what: &str) -> (u16, i64) {
    let parts: Vec<&str> = xid.rsplitn(3, ':').collect();
    let [id, port, host] = parts.as_slice() else {
        panic!("{what}: XID {xid:?} is not host:port:id");
    };
    assert!(!host.is_empty(), "{what}: XID {xid:?} has no host");
    let port: u16 = port
        .parse()
        .unwrap_or_else(|_| panic!("{what}: XID {xid:?} port"));
    let id: i64 = id
        .parse()
        .unwrap_or_else(|_| panic!("{what}: XID {xid:?} id"));
    assert!(id > 0, "{what}: XID {xid:?} id not positive");
    (port, id)
}

/// An XID issued by the reference TC: its port, and a Snowflake-sized transaction id.
fn assert_tc_xid(xid: &str, what: &str) {
    let (port, id) = assert_xid(xid, what);
    assert_eq!(port, REFERENCE_TC_PORT, "{what}: XID {xid:?}");
    assert!(id > 1 << 40, "{what}: XID {xid:?} id is not Snowflake-like");
}

fn result_of(msg: &Message) -> Option<&ResultInfo> {
    Some(match msg {
        Message::GlobalBeginResponse(m) => &m.result,
        Message::BranchCommitResponse(m) => &m.result,
        Message::BranchRollbackResponse(m) => &m.result,
        Message::GlobalCommitResponse(m) => &m.result,
        Message::GlobalRollbackResponse(m) => &m.result,
        Message::BranchRegisterResponse(m) => &m.result,
        Message::BranchReportResponse(m) => &m.result,
        Message::GlobalStatusResponse(m) => &m.result,
        Message::GlobalReportResponse(m) => &m.result,
        Message::GlobalLockQueryResponse(m) => &m.result,
        _ => return None,
    })
}

fn batch(msg: &Message) -> Option<&[Message]> {
    match msg {
        Message::MergedWarp(m) => Some(&m.messages),
        Message::MergeResult(m) => Some(&m.messages),
        Message::BatchResult(m) => Some(&m.messages),
        _ => None,
    }
}

/// `"<dir> <MSGTYPE> <type>[<sub types>]<! if a result failed>"`, e.g. `"c2s 2 59[11,11]"`;
/// heartbeats are just `"c2s 3"` / `"s2c 4"`.
fn kind(c2s: bool, frame: &Frame, msg: Option<&Message>) -> String {
    let dir = if c2s { "c2s" } else { "s2c" };
    let mut text = format!("{dir} {}", frame.msg_type as u8);
    if let Some(msg) = msg {
        text.push_str(&format!(" {}", msg.type_code()));
        let mut failed = result_of(msg).is_some_and(|r| !r.is_success());
        if let Some(subs) = batch(msg) {
            let codes: Vec<String> = subs.iter().map(|m| m.type_code().to_string()).collect();
            text.push_str(&format!("[{}]", codes.join(",")));
            failed |= subs
                .iter()
                .any(|m| result_of(m).is_some_and(|r| !r.is_success()));
        }
        if failed {
            text.push('!');
        }
    }
    text
}

/// The MSGTYPE a client or the TC uses for `msg` sent on its own (spec §4, §7).
fn allowed_msg_types(client: &Client, msg: &Message) -> &'static [MsgType] {
    match msg {
        _ if !msg.is_request() => &[MsgType::Response],
        Message::RegisterTm(_) if client.lang == Lang::Go => &[MsgType::Oneway],
        // The first registration waits for its answer; resources added later are one-way.
        Message::RegisterRm(_) => &[MsgType::Request, MsgType::Oneway],
        Message::MergedWarp(_) | Message::UndoLogDelete(_) => &[MsgType::Oneway],
        _ => &[MsgType::Request],
    }
}

/// Which side sends `msg` (spec §7): `true` for client → TC.
fn sent_by_client(msg: &Message) -> bool {
    !matches!(
        msg,
        Message::BranchCommit(_)
            | Message::BranchRollback(_)
            | Message::UndoLogDelete(_)
            | Message::GlobalBeginResponse(_)
            | Message::GlobalCommitResponse(_)
            | Message::GlobalRollbackResponse(_)
            | Message::GlobalStatusResponse(_)
            | Message::GlobalReportResponse(_)
            | Message::BranchRegisterResponse(_)
            | Message::BranchReportResponse(_)
            | Message::GlobalLockQueryResponse(_)
            | Message::RegisterTmResponse(_)
            | Message::RegisterRmResponse(_)
            | Message::UnregisterRmResponse(_)
            | Message::MergeResult(_)
            | Message::BatchResult(_)
    )
}

fn is_tcc_action_context(data: &str, resource: &str) -> bool {
    data.starts_with("{\"actionContext\":{")
        && data.contains(&format!("\"actionName\":\"{resource}\""))
}

/// A branch's resource, lock key and application data as this client sends them.
fn check_branch(
    client: &Client,
    branch_type: BranchType,
    resource: &str,
    lock_key: &str,
    data: &str,
    what: &str,
) {
    match branch_type {
        BranchType::Tcc => {
            assert!(
                client.tcc_resources.contains(&resource),
                "{what}: TCC resource {resource:?}"
            );
            assert_eq!(lock_key, "", "{what}: TCC lock key");
            assert!(
                is_tcc_action_context(data, resource),
                "{what}: TCC application data {data:?}"
            );
        }
        BranchType::At => {
            assert_eq!(Some(resource), client.at_resource, "{what}: AT resource");
            assert!(
                lock_key.is_empty() || lock_key.starts_with("capture_tbl:"),
                "{what}: AT lock key {lock_key:?}"
            );
            assert!(
                data.is_empty() || data == "{\"skipCheckLock\":true}",
                "{what}: AT application data {data:?}"
            );
        }
        other => panic!("{what}: unexpected branch type {other:?}"),
    }
}

/// The Java TM's extraData (spec §8.2): ak, digest, timestamp, authVersion, vgroup, ip.
fn check_java_tm_extra_data(client: &Client, extra: &str, what: &str) {
    assert!(extra.ends_with('\n'), "{what}: extraData {extra:?}");
    let pairs: Vec<(&str, &str)> = extra
        .lines()
        .map(|l| l.split_once('=').unwrap_or_else(|| panic!("{what}: {l:?}")))
        .collect();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        ["ak", "digest", "timestamp", "authVersion", "vgroup", "ip"],
        "{what}"
    );
    let value = |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
    assert_eq!(value("ak"), Some("null"), "{what}");
    assert_eq!(value("authVersion"), Some("V4"), "{what}");
    assert_eq!(value("vgroup"), Some(client.group), "{what}");
    let (ip, timestamp) = (value("ip").unwrap_or(""), value("timestamp").unwrap_or(""));
    assert!(timestamp.parse::<u64>().is_ok(), "{what}: timestamp");
    // Without a secret key the "signature" is the unsigned digest source.
    assert_eq!(
        value("digest"),
        Some(format!("{},{ip},{timestamp}", client.group).as_str()),
        "{what}"
    );
}

/// Field checks for one (possibly batched) message against what the client is known to send
/// and what the reference TC answers.
fn check_fields(client: &Client, msg: &Message, what: &str) {
    if let Some(result) = result_of(msg) {
        if result.is_success() {
            assert_eq!(result.msg, "", "{what}");
            assert_eq!(
                result.exception_code,
                TransactionExceptionCode::Unknown,
                "{what}"
            );
        } else {
            // The Java TC's text for a TransactionException (spec §8.1).
            assert!(
                result.msg.starts_with("TransactionException["),
                "{what}: failure message {:?}",
                result.msg
            );
        }
    }
    match msg {
        Message::RegisterTm(m) => {
            assert_eq!(m.version, client.tm_version, "{what}");
            assert_eq!(m.application_id, client.app_id, "{what}");
            assert_eq!(m.transaction_service_group, client.group, "{what}");
            match client.lang {
                Lang::Java => check_java_tm_extra_data(client, &m.extra_data, what),
                Lang::Go => assert_eq!(m.extra_data, "", "{what}"),
            }
        }
        Message::RegisterRm(m) => {
            assert_eq!(m.version, client.rm_version, "{what}");
            assert_eq!(m.application_id, client.app_id, "{what}");
            assert_eq!(m.transaction_service_group, client.group, "{what}");
            assert_eq!(m.extra_data, "", "{what}");
            for id in m.resource_ids.split(',') {
                assert!(
                    client.tcc_resources.contains(&id) || client.at_resource == Some(id),
                    "{what}: resource {id:?}"
                );
            }
        }
        Message::RegisterTmResponse(m) => {
            assert!(m.identified, "{what}");
            assert_eq!(m.version, REFERENCE_TC_VERSION, "{what}");
        }
        Message::RegisterRmResponse(m) => {
            assert!(m.identified, "{what}");
            assert_eq!(m.version, REFERENCE_TC_VERSION, "{what}");
        }
        Message::GlobalBegin(m) => {
            assert_eq!(m.timeout_ms, client.begin_timeout_ms, "{what}");
            assert!(
                m.transaction_name.starts_with(client.tx_name_prefix),
                "{what}: name {:?}",
                m.transaction_name
            );
        }
        Message::GlobalBeginResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert_tc_xid(&m.xid, what);
            assert_eq!(m.extra_data, "", "{what}");
        }
        Message::GlobalCommit(m) => {
            assert_xid(&m.xid, what);
            assert_eq!(m.extra_data, "", "{what}");
        }
        Message::GlobalRollback(m) => {
            assert_xid(&m.xid, what);
            assert_eq!(m.extra_data, "", "{what}");
        }
        Message::GlobalStatus(m) => {
            assert_xid(&m.xid, what);
            assert_eq!(m.extra_data, "", "{what}");
        }
        Message::GlobalReport(m) => {
            assert_tc_xid(&m.xid, what);
            assert_eq!(m.extra_data, "", "{what}");
            assert_eq!(m.global_status, Some(GlobalStatus::Committed), "{what}");
        }
        Message::GlobalCommitResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert!(
                [GlobalStatus::Committed, GlobalStatus::Finished].contains(&m.global_status),
                "{what}: {:?}",
                m.global_status
            );
        }
        Message::GlobalRollbackResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert_eq!(m.global_status, GlobalStatus::Rollbacked, "{what}");
        }
        Message::GlobalStatusResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert!(
                [GlobalStatus::Begin, GlobalStatus::Finished].contains(&m.global_status),
                "{what}: {:?}",
                m.global_status
            );
        }
        Message::GlobalReportResponse(m) => {
            // seata-server 2.0.0 ignores a report for a non-Saga transaction.
            assert!(m.result.is_success(), "{what}");
            assert_eq!(m.global_status, GlobalStatus::Begin, "{what}");
        }
        Message::BranchRegister(m) => {
            assert_xid(&m.xid, what);
            check_branch(
                client,
                m.branch_type,
                &m.resource_id,
                &m.lock_key,
                &m.application_data,
                what,
            );
        }
        Message::BranchRegisterResponse(m) => {
            if m.result.is_success() {
                assert!(m.branch_id > 1 << 40, "{what}: branch id {}", m.branch_id);
            } else {
                assert!(
                    [
                        TransactionExceptionCode::LockKeyConflict,
                        TransactionExceptionCode::GlobalTransactionNotExist
                    ]
                    .contains(&m.result.exception_code),
                    "{what}: {:?}",
                    m.result.exception_code
                );
                assert_eq!(m.branch_id, 0, "{what}");
            }
        }
        Message::BranchReport(m) => {
            assert_tc_xid(&m.xid, what);
            assert!(m.branch_id > 1 << 40, "{what}");
            assert_eq!(m.status, BranchStatus::PhaseOneDone, "{what}");
            // Java's AbstractResourceManager.branchReport sets neither the resource id nor the
            // branch type, so a TCC report travels with an empty resource and BranchType AT.
            assert_eq!(m.resource_id, "", "{what}");
            assert_eq!(m.branch_type, BranchType::At, "{what}");
            assert!(
                m.application_data.starts_with("{\"actionContext\":{"),
                "{what}"
            );
        }
        Message::BranchReportResponse(m) => assert!(m.result.is_success(), "{what}"),
        Message::GlobalLockQuery(m) => {
            assert_tc_xid(&m.xid, what);
            assert_eq!(m.branch_type, BranchType::At, "{what}");
            check_branch(
                client,
                m.branch_type,
                &m.resource_id,
                &m.lock_key,
                &m.application_data,
                what,
            );
            assert!(!m.lock_key.is_empty(), "{what}");
        }
        Message::GlobalLockQueryResponse(m) => assert!(m.result.is_success(), "{what}"),
        Message::BranchCommit(m) => {
            assert_tc_xid(&m.xid, what);
            assert!(m.branch_id > 1 << 40, "{what}");
            check_branch(
                client,
                m.branch_type,
                &m.resource_id,
                "",
                &m.application_data,
                what,
            );
        }
        Message::BranchRollback(m) => {
            assert_tc_xid(&m.xid, what);
            assert!(m.branch_id > 1 << 40, "{what}");
            check_branch(
                client,
                m.branch_type,
                &m.resource_id,
                "",
                &m.application_data,
                what,
            );
        }
        Message::BranchCommitResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert_tc_xid(&m.xid, what);
            assert!(m.branch_id > 1 << 40, "{what}");
            assert_eq!(m.branch_status, BranchStatus::PhaseTwoCommitted, "{what}");
        }
        Message::BranchRollbackResponse(m) => {
            assert!(m.result.is_success(), "{what}");
            assert_tc_xid(&m.xid, what);
            assert!(m.branch_id > 1 << 40, "{what}");
            assert_eq!(m.branch_status, BranchStatus::PhaseTwoRollbacked, "{what}");
        }
        Message::UndoLogDelete(m) => {
            // seata-server 2.0.0 sends these to every RM resource, TCC and Go ones included.
            assert_eq!(m.branch_type, BranchType::At, "{what}");
            assert!(
                client.tcc_resources.contains(&m.resource_id.as_str()),
                "{what}: {:?}",
                m.resource_id
            );
            assert_eq!(m.save_days, 7, "{what}");
        }
        Message::MergedWarp(m) => {
            assert!(!m.messages.is_empty(), "{what}");
            // Both Java generations are >= 1.5.0, so the sub-request ids are present.
            let ids = m
                .msg_ids
                .as_ref()
                .unwrap_or_else(|| panic!("{what}: no ids"));
            assert_eq!(ids.len(), m.messages.len(), "{what}");
            assert_eq!(
                ids.iter().collect::<BTreeSet<_>>().len(),
                ids.len(),
                "{what}: duplicate ids"
            );
            for sub in &m.messages {
                assert!(sub.is_request(), "{what}: {} in a batch", sub.name());
                check_fields(client, sub, what);
            }
        }
        Message::MergeResult(m) => {
            assert!(!m.messages.is_empty(), "{what}");
            for sub in &m.messages {
                assert!(!sub.is_request(), "{what}: {} in a result", sub.name());
                check_fields(client, sub, what);
            }
        }
        other => panic!("{what}: no capture should contain {}", other.name()),
    }
}

/// Decodes, checks and re-encodes every frame of one capture file.
fn check_capture(client: &Client) {
    let file = client.file;
    let captured = load(file);
    let frames: Vec<Frame> = captured.iter().map(whole_frame).collect();

    // The client versions come from the registrations in the capture itself.
    let mut registered = BTreeSet::new();
    for (cap, frame) in captured.iter().zip(&frames) {
        if !cap.c2s || frame.msg_type.is_heartbeat() {
            continue;
        }
        match Message::decode(&plain_body(frame, &cap.what), &CodecContext::default()) {
            Ok(Message::RegisterTm(m)) => registered.insert(m.version),
            Ok(Message::RegisterRm(m)) => registered.insert(m.version),
            _ => continue,
        };
    }
    let expected: BTreeSet<String> = [client.tm_version, client.rm_version]
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(registered, expected, "{file}: registered versions");
    let version = registered
        .iter()
        .map(|v| ClientVersion::parse(v).expect("valid version"))
        .min()
        .expect("a registration");

    let mut kinds = BTreeSet::new();
    // Requests by (direction, connection, id), to pair answers with.
    let mut requests: HashMap<(bool, u32, i32), Vec<u16>> = HashMap::new();
    let mut pings: HashMap<(u32, i32), Frame> = HashMap::new();

    for (cap, frame) in captured.iter().zip(&frames) {
        let what = cap.what.as_str();
        assert_eq!(frame.version, 1, "{what}: protocol version");
        assert_eq!(frame.codec, 1, "{what}: codec");
        assert!(frame.head_map.is_empty(), "{what}: head map");
        // The frame decoder and encoder agree with the captured header byte for byte.
        let mut again = BytesMut::new();
        encode_frame(frame, &mut again);
        assert_eq!(&again[..], &cap.raw[..], "{what}: encode_frame");

        if frame.msg_type.is_heartbeat() {
            assert!(frame.body.is_empty(), "{what}: heartbeat body");
            assert_eq!(frame.compressor, client.compressor, "{what}: compressor");
            assert_eq!(
                frame.msg_type == MsgType::HeartbeatRequest,
                cap.c2s,
                "{what}: clients ping, the TC pongs"
            );
            if cap.c2s {
                pings.insert((cap.conn, frame.request_id), frame.clone());
            } else if let Some(ping) = pings.get(&(cap.conn, frame.request_id)) {
                // The reference TC's pong is exactly what ferrata answers to the ping.
                let mut pong = BytesMut::new();
                encode_frame(&ping.heartbeat_response_to(), &mut pong);
                assert_eq!(&pong[..], &cap.raw[..], "{what}: pong");
            }
            kinds.insert(kind(cap.c2s, frame, None));
            continue;
        }

        let dialect = if client.lang == Lang::Go && cap.c2s {
            Dialect::Go
        } else {
            Dialect::Java
        };
        let ctx = CodecContext::new(version, dialect);
        let msg = decode_body(frame, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN)
            .unwrap_or_else(|e| panic!("{what}: decode_body: {e}"));

        assert_eq!(sent_by_client(&msg), cap.c2s, "{what}: direction");
        assert!(
            allowed_msg_types(client, &msg).contains(&frame.msg_type),
            "{what}: {} sent as {:?}",
            msg.name(),
            frame.msg_type
        );
        // Client requests and the answers to them carry the client's compressor; requests the
        // TC originates, and the client's answers to those, are uncompressed (spec §5.2).
        let tc_side = matches!(
            msg,
            Message::BranchCommit(_)
                | Message::BranchRollback(_)
                | Message::UndoLogDelete(_)
                | Message::BranchCommitResponse(_)
                | Message::BranchRollbackResponse(_)
        );
        let compressor = if tc_side { 0 } else { client.compressor };
        assert_eq!(frame.compressor, compressor, "{what}: compressor");
        check_fields(client, &msg, what);

        // Answers pair with the request of the same id on the same connection.
        let codes: Vec<u16> = match batch(&msg) {
            Some(subs) => subs.iter().map(Message::type_code).collect(),
            None => vec![msg.type_code()],
        };
        if frame.msg_type == MsgType::Response {
            if let Some(asked) = requests.get(&(!cap.c2s, cap.conn, frame.request_id)) {
                let answers: Vec<u16> = asked.iter().map(|c| c + 1).collect();
                assert_eq!(codes, answers, "{what}: answer to {asked:?}");
            }
        } else {
            requests.insert((cap.c2s, cap.conn, frame.request_id), codes);
        }

        // Re-encode: what ferrata writes for this message and header.
        let plain = plain_body(frame, what);
        let mut body = BytesMut::new();
        msg.encode(&ctx, &mut body);
        assert_eq!(
            hex(&body),
            hex(&plain),
            "{what}: {} re-encodes differently",
            msg.name()
        );
        if frame.compressor == 0 {
            let mut out = BytesMut::new();
            encode_message(
                frame.msg_type,
                frame.request_id,
                frame.codec,
                0,
                &msg,
                &ctx,
                &mut out,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(hex(&out), hex(&cap.raw), "{what}: encode_message");
        } else {
            // Our own compression of the same message: same header, same message back.
            let mut out = BytesMut::new();
            encode_message(
                frame.msg_type,
                frame.request_id,
                frame.codec,
                frame.compressor,
                &msg,
                &ctx,
                &mut out,
            )
            .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(out[..3], cap.raw[..3], "{what}: header");
            assert_eq!(out[7..16], cap.raw[7..16], "{what}: header");
            let ours = decode_frame(&mut out, DEFAULT_MAX_FRAME_LEN)
                .expect("valid")
                .expect("whole");
            let back = decode_body(&ours, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN)
                .unwrap_or_else(|e| panic!("{what}: own compression: {e}"));
            assert_eq!(back, msg, "{what}: own compression");
        }
        kinds.insert(kind(cap.c2s, frame, Some(&msg)));
    }

    let missing: Vec<&&str> = client
        .kinds
        .iter()
        .filter(|k| !kinds.contains(**k))
        .collect();
    assert!(
        missing.is_empty(),
        "{file}: missing {missing:?}; has {kinds:?}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn go_1_2_0() {
    check_capture(&GO);
}

#[test]
fn java_2_6_0() {
    check_capture(&java("java-2.6.0.txt", "2.6.0", JAVA_APP_2, 0, JAVA_FULL));
}

#[test]
fn java_1_8_0() {
    check_capture(&java("java-1.8.0.txt", "1.8.0", JAVA_APP_1, 0, JAVA_FULL));
}

#[test]
fn java_2_6_0_gzip() {
    check_capture(&java(
        "java-2.6.0-gzip.txt",
        "2.6.0",
        JAVA_APP_2,
        1,
        JAVA_SHORT,
    ));
}

#[test]
fn java_2_6_0_zip() {
    check_capture(&java(
        "java-2.6.0-zip.txt",
        "2.6.0",
        JAVA_APP_2,
        2,
        JAVA_SHORT,
    ));
}

#[test]
fn java_2_6_0_bzip2() {
    check_capture(&java(
        "java-2.6.0-bzip2.txt",
        "2.6.0",
        JAVA_APP_2,
        4,
        JAVA_SHORT,
    ));
}

#[test]
fn java_2_6_0_deflater() {
    check_capture(&java(
        "java-2.6.0-deflater.txt",
        "2.6.0",
        JAVA_APP_2,
        6,
        JAVA_SHORT,
    ));
}

#[test]
fn java_2_6_0_zstd() {
    check_capture(&java(
        "java-2.6.0-zstd.txt",
        "2.6.0",
        JAVA_APP_2,
        7,
        JAVA_SHORT,
    ));
}

/// seata-server 2.0.0 could not decompress these (see the file header), so only the two
/// registrations exist, and no answers.
#[test]
fn java_2_6_0_lz4_frame_format() {
    check_capture(&java(
        "java-2.6.0-lz4.txt",
        "2.6.0",
        JAVA_APP_2,
        LZ4,
        &["c2s 0 101", "c2s 0 103"],
    ));
}

#[test]
fn java_1_8_0_lz4_block_format() {
    check_capture(&java(
        "java-1.8.0-lz4.txt",
        "1.8.0",
        JAVA_APP_1,
        LZ4,
        JAVA_SHORT,
    ));
}

/// The compressed bodies really are what their compressor byte says (and not, say, an
/// uncompressed body behind a compressor byte): the signatures Java's compressors write.
#[test]
fn compressed_bodies_carry_java_signatures() {
    let cases: [(&str, &[u8]); 7] = [
        ("java-2.6.0-gzip.txt", &[0x1f, 0x8b]),
        ("java-2.6.0-zip.txt", b"PK\x03\x04"),
        // Ant's CBZip2OutputStream omits the "BZ" of the bzip2 stream (spec §5.2).
        ("java-2.6.0-bzip2.txt", b"h9"),
        ("java-2.6.0-lz4.txt", &LZ4_FRAME_MAGIC),
        ("java-1.8.0-lz4.txt", b"LZ4Block"),
        // zlib header of java.util.zip.Deflater's default level.
        ("java-2.6.0-deflater.txt", &[0x78, 0x9c]),
        ("java-2.6.0-zstd.txt", &[0x28, 0xb5, 0x2f, 0xfd]),
    ];
    for (file, signature) in cases {
        let mut compressed = 0;
        for cap in load(file) {
            let frame = whole_frame(&cap);
            if frame.compressor != 0 && !frame.body.is_empty() {
                assert!(
                    frame.body.starts_with(signature),
                    "{}: body starts {}",
                    cap.what,
                    hex(&frame.body[..frame.body.len().min(8)])
                );
                compressed += 1;
            }
        }
        assert!(compressed >= 2, "{file}: {compressed} compressed frames");
    }
}

/// ferrata's LZ4 frame support (lz4_flex's `frame` module) against the seata-all 2.6.0 bodies,
/// both ways. Reading: each captured body gives exactly the bytes the independent reader
/// below gets. Writing: the frame ferrata writes for that content is lz4-java's byte for byte
/// outside the compressed block (magic, FLG, BD, header checksum, one compressed block, end
/// mark), and the independent reader gets the content back from it. The compressed block
/// itself differs: the format leaves the choice of matches to the encoder, and lz4-java's
/// native match finder picks others than lz4_flex's.
#[test]
fn lz4_frame_bodies_both_ways() {
    /// Checks that `data` is a 7-byte header, one compressed block and the end mark.
    fn one_compressed_block(data: &[u8], what: &str) {
        let word = u32::from_le_bytes(data[7..11].try_into().expect("4 bytes"));
        assert_eq!(word & 0x8000_0000, 0, "{what}: a stored block");
        assert_eq!(
            7 + 4 + word as usize + 4,
            data.len(),
            "{what}: not one block"
        );
        assert_eq!(data[data.len() - 4..], [0, 0, 0, 0], "{what}: end mark");
    }
    let mut checked = 0;
    for cap in load("java-2.6.0-lz4.txt") {
        let java = whole_frame(&cap).body;
        let what = &cap.what;
        let plain = decompress(LZ4, &java, DEFAULT_MAX_DECOMPRESSED_LEN)
            .unwrap_or_else(|e| panic!("{what}: decompress: {e}"));
        assert_eq!(plain, lz4_frame_decode(&java, what), "{what}");
        let ours = compress_for(LZ4, &plain, ClientVersion::V2_6_0).expect("compress");
        assert_eq!(hex(&ours[..7]), hex(&java[..7]), "{what}: frame header");
        one_compressed_block(&java, what);
        one_compressed_block(&ours, what);
        assert_eq!(lz4_frame_decode(&ours, what), plain, "{what}");
        checked += 1;
    }
    assert_eq!(checked, 2, "both registrations");
}

/// The independent LZ4 frame reader used for the 2.6.0 captures, checked on a frame built by
/// hand: one literal-only block, one block with an overlapping back-reference, one stored block.
#[test]
fn lz4_frame_reader_self_check() {
    let mut frame = LZ4_FRAME_MAGIC.to_vec();
    frame.extend_from_slice(&[0x60, 0x70, 0x73]); // FLG, BD, header checksum
    frame.extend_from_slice(&[4, 0, 0, 0, 0x30, b'a', b'b', b'c']); // "abc"
    // literals "xy", then offset 2, match length 4 + 2 = 6: "xyxyxyxy"
    frame.extend_from_slice(&[7, 0, 0, 0, 0x22, b'x', b'y', 2, 0, 0x10, b'!']);
    frame.extend_from_slice(&[2, 0, 0, 0x80, b'o', b'k']); // stored
    frame.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(lz4_frame_decode(&frame, "self-check"), b"abcxyxyxyxy!ok");
}
