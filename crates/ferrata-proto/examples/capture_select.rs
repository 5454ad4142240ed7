//! Picks representative frames out of a raw capture written by `capture_proxy --conn-ids`.
//!
//! ```text
//! cargo run -p ferrata-proto --example capture_select -- CAPTURE [--go] > selected.txt
//! ```
//!
//! Keeps the first frame of every distinct kind, where the kind is: direction, MSGTYPE byte,
//! compressor byte, SEATA type code, the type codes inside a batch, the result code of a
//! response and its exception code (first sub-result for a batch) and the branch type of
//! branch requests; frames this crate cannot decode are all kept. Each kept
//! frame line (unchanged, `#conn=` tag included) is preceded by a `# ...` line describing it.
//! `--go` decodes client-sent frames with the seata-go dialect. Frames are decoded with the
//! lowest client version registered in the capture. The descriptions come from this crate's
//! decoder and are informational only: `tests/captured_vectors.rs` checks the frames against
//! what the clients are known to have sent.

use std::collections::HashSet;
use std::process::ExitCode;

use bytes::BytesMut;
use ferrata_proto::{
    ClientVersion, CodecContext, DEFAULT_MAX_DECOMPRESSED_LEN, DEFAULT_MAX_FRAME_LEN, Dialect,
    Frame, Message, ResultInfo, decode_body, decode_frame,
};

/// One frame line of a raw capture.
#[derive(Debug)]
struct Line {
    direction: String,
    raw: Vec<u8>,
    text: String,
}

fn unhex(hex: &str) -> Result<Vec<u8>, String> {
    if !hex.len().is_multiple_of(2) {
        return Err(format!("odd hex length {}", hex.len()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}

fn parse(text: &str) -> Result<Vec<Line>, String> {
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(direction), Some(hex)) = (fields.next(), fields.next()) else {
            return Err(format!("malformed line {line:?}"));
        };
        lines.push(Line {
            direction: direction.to_owned(),
            raw: unhex(hex)?,
            text: line.to_owned(),
        });
    }
    Ok(lines)
}

fn frame_of(raw: &[u8]) -> Result<Frame, String> {
    let mut buf = BytesMut::from(raw);
    decode_frame(&mut buf, DEFAULT_MAX_FRAME_LEN)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "incomplete frame".to_owned())
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
        Message::MergeResult(m) => return m.messages.first().and_then(result_of),
        _ => return None,
    })
}

fn inner(msg: &Message) -> &[Message] {
    match msg {
        Message::MergedWarp(m) => &m.messages,
        Message::MergeResult(m) => &m.messages,
        Message::BatchResult(m) => &m.messages,
        _ => &[],
    }
}

/// A short human description of one message.
fn describe(msg: &Message) -> String {
    let mut text = format!("{}({})", msg.name(), msg.type_code());
    let detail = match msg {
        Message::RegisterTm(m) => format!(" version={} app={}", m.version, m.application_id),
        Message::RegisterRm(m) => format!(
            " version={} app={} resources={}",
            m.version, m.application_id, m.resource_ids
        ),
        Message::RegisterTmResponse(m) => format!(" identified={} tc={}", m.identified, m.version),
        Message::RegisterRmResponse(m) => format!(" identified={} tc={}", m.identified, m.version),
        Message::GlobalBegin(m) => format!(" timeout={} name={}", m.timeout_ms, m.transaction_name),
        Message::BranchRegister(m) => format!(" {:?} resource={}", m.branch_type, m.resource_id),
        Message::GlobalLockQuery(m) => format!(" {:?} lockKey={}", m.branch_type, m.lock_key),
        Message::BranchCommit(m) => format!(" {:?} resource={}", m.branch_type, m.resource_id),
        Message::BranchRollback(m) => format!(" {:?} resource={}", m.branch_type, m.resource_id),
        Message::BranchCommitResponse(m) => format!(" status={:?}", m.branch_status),
        Message::BranchRollbackResponse(m) => format!(" status={:?}", m.branch_status),
        Message::GlobalCommitResponse(m) => format!(" status={:?}", m.global_status),
        Message::GlobalRollbackResponse(m) => format!(" status={:?}", m.global_status),
        Message::GlobalStatusResponse(m) => format!(" status={:?}", m.global_status),
        Message::GlobalReportResponse(m) => format!(" status={:?}", m.global_status),
        Message::GlobalLockQueryResponse(m) => format!(" lockable={}", m.lockable),
        _ => String::new(),
    };
    text.push_str(&detail);
    if let Some(result) = result_of(msg).filter(|r| !r.is_success()) {
        text.push_str(&format!(" FAILED {:?}", result.exception_code));
    }
    let subs = inner(msg);
    if !subs.is_empty() {
        let list: Vec<String> = subs.iter().map(describe).collect();
        text.push_str(&format!(" [{}]", list.join("; ")));
    }
    text
}

fn run(args: &[String]) -> Result<(), String> {
    let go = args.iter().any(|a| a == "--go");
    let Some(path) = args.iter().find(|a| !a.starts_with("--")) else {
        return Err("usage: capture_select CAPTURE [--go]".to_owned());
    };
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    let lines = parse(&text)?;

    // The lowest version registered anywhere in the capture drives the enum tables.
    let mut version = None::<ClientVersion>;
    for line in lines.iter().filter(|l| l.direction == "c2s") {
        let frame = frame_of(&line.raw)?;
        if frame.msg_type.is_heartbeat() {
            continue;
        }
        let registered = match decode_body(&frame, &CodecContext::default(), usize::MAX) {
            Ok(Message::RegisterTm(m)) => m.version,
            Ok(Message::RegisterRm(m)) => m.version,
            _ => continue,
        };
        let parsed = ClientVersion::parse(&registered).map_err(|e| e.to_string())?;
        version = Some(version.map_or(parsed, |v| v.min(parsed)));
    }
    let version = version.unwrap_or(ClientVersion::NEWEST);

    let mut seen = HashSet::new();
    for (index, line) in lines.iter().enumerate() {
        let frame = frame_of(&line.raw)?;
        let dialect = if go && line.direction == "c2s" {
            Dialect::Go
        } else {
            Dialect::Java
        };
        let ctx = CodecContext::new(version, dialect);
        let head = format!(
            "{} {:?} id={} compressor={}",
            line.direction, frame.msg_type, frame.request_id, frame.compressor
        );
        let (key, description) = if frame.msg_type.is_heartbeat() {
            (String::new(), format!("{head} heartbeat"))
        } else {
            match decode_body(&frame, &ctx, DEFAULT_MAX_DECOMPRESSED_LEN) {
                Ok(msg) => {
                    let subs: Vec<u16> = inner(&msg).iter().map(Message::type_code).collect();
                    let outcome = result_of(&msg).map(|r| (r.is_success(), r.exception_code));
                    let branch_type = match &msg {
                        Message::BranchRegister(m) => Some(m.branch_type),
                        Message::BranchCommit(m) => Some(m.branch_type),
                        Message::BranchRollback(m) => Some(m.branch_type),
                        Message::MergedWarp(m) => match m.messages.first() {
                            Some(Message::BranchRegister(b)) => Some(b.branch_type),
                            _ => None,
                        },
                        _ => None,
                    };
                    (
                        format!("{} {subs:?} {outcome:?} {branch_type:?}", msg.type_code()),
                        format!("{head} {}", describe(&msg)),
                    )
                }
                // Never merged: every undecodable frame is worth keeping.
                Err(e) => (format!("error {index}"), format!("{head} UNDECODABLE: {e}")),
            }
        };
        let key = format!(
            "{} {} {} {key}",
            line.direction, frame.msg_type as u8, frame.compressor
        );
        if seen.insert(key) {
            println!("# {description}");
            println!("{}", line.text);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capture_select: {e}");
            ExitCode::FAILURE
        }
    }
}
