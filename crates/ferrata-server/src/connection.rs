//! One client connection: frames are read and handled in arrival order (registrations inline,
//! transaction requests handed to the engine), and a writer task batches outgoing frames into
//! as few socket writes as possible. Bad input closes only this connection, with the reason logged.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use ferrata_core::{BranchRegistration, Requester};
use ferrata_proto::{
    ClientVersion, CodecContext, Dialect, Frame, Message, MsgType, RegisterRmResponse,
    RegisterTmResponse, UnregisterRmResponse, decode_body, decode_frame, encode_frame,
    encode_message,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::config::ServerConfig;
use crate::engine::{CoreCommand, EngineHandle, MergeBatch, Operation, Route};
use crate::phase2::PendingRequests;
use crate::registry::{ConnHandle, Outbound, Registry};

/// Stop adding frames to one socket write beyond this many bytes.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub config: ServerConfig,
    pub registry: Arc<Registry>,
    pub pending: Arc<PendingRequests>,
    pub engine: EngineHandle,
    pub next_conn_id: AtomicU64,
}

/// Why a connection was closed by the server.
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    #[error("malformed frame: {0}")]
    Frame(#[from] ferrata_proto::FrameError),
    #[error("undecodable message: {0}")]
    Body(#[from] ferrata_proto::DecodeError),
    #[error("no data for {0:?}: idle timeout")]
    Idle(std::time::Duration),
    #[error("unexpected message type {0} from a client")]
    Unexpected(u16),
    #[error("the transaction engine has stopped")]
    EngineStopped,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Per-connection registration state.
struct Session {
    handle: ConnHandle,
    requester: Arc<Requester>,
    ctx: CodecContext,
    tm_version: Option<ClientVersion>,
    rm_version: Option<ClientVersion>,
    registered: bool,
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (mut reader, writer) = stream.into_split();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let handle = ConnHandle::new(id, peer, tx);
    let writer_task = tokio::spawn(write_loop(writer, rx, peer));
    let mut session = Session {
        handle: handle.clone(),
        requester: Arc::new(Requester {
            client_id: format!(":{}:{}", peer.ip(), peer.port()),
            ..Requester::default()
        }),
        ctx: CodecContext::default(),
        tm_version: None,
        rm_version: None,
        registered: false,
    };
    tracing::debug!(%peer, conn = id, "connection opened");
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let idle = shared.config.idle_timeout;
    let reason: Option<CloseReason> = loop {
        match process_buffered(&mut buf, &mut session, &shared) {
            Ok(()) => {}
            Err(reason) => break Some(reason),
        }
        let read = tokio::select! {
            read = tokio::time::timeout(idle, reader.read_buf(&mut buf)) => read,
            _ = shutdown.changed() => break None,
        };
        match read {
            Err(_) => break Some(CloseReason::Idle(idle)),
            Ok(Err(error)) => break Some(CloseReason::Io(error)),
            Ok(Ok(0)) => break None,
            Ok(Ok(_)) => {}
        }
    };
    match &reason {
        Some(CloseReason::Io(_)) | None => tracing::debug!(%peer, conn = id, "connection closed"),
        Some(reason) => tracing::warn!(%peer, conn = id, %reason, "closing connection"),
    }
    shared.registry.remove(id);
    shared.pending.fail_connection(id);
    handle.send(Outbound::Close);
    let _ = writer_task.await;
}

fn process_buffered(
    buf: &mut BytesMut,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    while let Some(frame) = decode_frame(buf, shared.config.max_frame_len)? {
        handle_frame(frame, session, shared)?;
    }
    Ok(())
}

fn handle_frame(frame: Frame, session: &mut Session, shared: &Shared) -> Result<(), CloseReason> {
    match frame.msg_type {
        MsgType::HeartbeatRequest => {
            session
                .handle
                .send(Outbound::Raw(frame.heartbeat_response_to()));
            Ok(())
        }
        MsgType::HeartbeatResponse => Ok(()),
        MsgType::Response => {
            let message = decode_body(&frame, &session.ctx, shared.config.max_decompressed_len)?;
            if !shared.pending.complete(frame.request_id, message) {
                tracing::debug!(peer = %session.handle.peer, id = frame.request_id, "response to no pending request");
            }
            Ok(())
        }
        MsgType::Request | MsgType::Oneway => {
            let message = decode_body(&frame, &session.ctx, shared.config.max_decompressed_len)?;
            handle_request(&frame, message, None, session, shared)
        }
    }
}

fn handle_request(
    frame: &Frame,
    message: Message,
    merge: Option<(Arc<MergeBatch>, usize)>,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    let route = |session: &Session, kind| Route {
        conn: session.handle.clone(),
        request_id: frame.request_id,
        codec: frame.codec,
        compressor: frame.compressor,
        ctx: session.ctx,
        kind,
        merge: merge.clone(),
    };
    let answer_local = |session: &Session, message: Message| match &merge {
        Some((batch, index)) => batch.fill(*index, message),
        None => {
            session.handle.send(Outbound::Message {
                msg_type: MsgType::Response,
                request_id: frame.request_id,
                codec: frame.codec,
                compressor: frame.compressor,
                message,
                ctx: session.ctx,
            });
        }
    };
    let operation = match message {
        Message::RegisterTm(request) => {
            let identified = register(
                session,
                shared,
                &request.version,
                &request.application_id,
                &request.transaction_service_group,
                true,
                request.extra_data.is_empty(),
                Vec::new(),
            );
            let version = shared.config.reported_version.clone();
            answer_local(
                session,
                Message::RegisterTmResponse(RegisterTmResponse {
                    identified,
                    version,
                }),
            );
            return Ok(());
        }
        Message::RegisterRm(request) => {
            let resources = split_resources(&request.resource_ids);
            let identified = register(
                session,
                shared,
                &request.version,
                &request.application_id,
                &request.transaction_service_group,
                false,
                false,
                resources,
            );
            let version = shared.config.reported_version.clone();
            answer_local(
                session,
                Message::RegisterRmResponse(RegisterRmResponse {
                    identified,
                    version,
                }),
            );
            return Ok(());
        }
        Message::UnregisterRm(request) => {
            shared
                .registry
                .unregister_resources(session.handle.id, &split_resources(&request.resource_ids));
            let version = shared.config.reported_version.clone();
            answer_local(
                session,
                Message::UnregisterRmResponse(UnregisterRmResponse {
                    identified: true,
                    version,
                }),
            );
            return Ok(());
        }
        Message::MergedWarp(merged) => {
            if merge.is_some() {
                return Err(CloseReason::Unexpected(59));
            }
            let batch = Arc::new(MergeBatch::new(
                session.handle.clone(),
                frame.request_id,
                frame.codec,
                frame.compressor,
                session.ctx,
                merged.messages.len(),
            ));
            for (index, sub) in merged.messages.into_iter().enumerate() {
                handle_request(frame, sub, Some((batch.clone(), index)), session, shared)?;
            }
            return Ok(());
        }
        Message::GlobalBegin(r) => Operation::Begin {
            timeout_ms: r.timeout_ms,
            name: r.transaction_name,
        },
        Message::BranchRegister(r) => Operation::BranchRegister(BranchRegistration {
            xid: r.xid,
            branch_type: r.branch_type,
            resource_id: r.resource_id,
            lock_key: r.lock_key,
            application_data: r.application_data,
        }),
        Message::BranchReport(r) => Operation::BranchReport {
            xid: r.xid,
            branch_id: r.branch_id,
            status: r.status,
            application_data: r.application_data,
        },
        Message::GlobalCommit(r) => Operation::GlobalCommit { xid: r.xid },
        Message::GlobalRollback(r) => Operation::GlobalRollback { xid: r.xid },
        Message::GlobalStatus(r) => Operation::GlobalStatus { xid: r.xid },
        Message::GlobalReport(r) => Operation::GlobalReport {
            xid: r.xid,
            status: r.global_status,
        },
        Message::GlobalLockQuery(r) => Operation::LockQuery {
            xid: r.xid,
            branch_type: r.branch_type,
            resource_id: r.resource_id,
            lock_key: r.lock_key,
        },
        other => return Err(CloseReason::Unexpected(other.type_code())),
    };
    if !session.registered {
        tracing::debug!(peer = %session.handle.peer, "transaction request before registration");
    }
    let command = CoreCommand::Request {
        route: route(session, operation.kind()),
        requester: session.requester.clone(),
        operation,
    };
    if shared.engine.submit(command) {
        Ok(())
    } else {
        Err(CloseReason::EngineStopped)
    }
}

fn split_resources(ids: &str) -> Vec<String> {
    ids.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Records a TM or RM registration on this connection; false rejects it (bad version string).
#[allow(clippy::too_many_arguments)]
fn register(
    session: &mut Session,
    shared: &Shared,
    version: &str,
    application_id: &str,
    group: &str,
    tm: bool,
    empty_extra_data: bool,
    resources: Vec<String>,
) -> bool {
    let parsed = match ClientVersion::parse(version) {
        Ok(parsed) if parsed >= ClientVersion::V0_7_1 => parsed,
        Ok(_) => {
            tracing::warn!(
                peer = %session.handle.peer,
                version,
                "rejecting registration: clients before 0.7.1 speak the legacy v0 framing; upgrade the client"
            );
            return false;
        }
        Err(error) => {
            tracing::warn!(peer = %session.handle.peer, %error, "rejecting registration");
            return false;
        }
    };
    if tm {
        session.tm_version = Some(parsed);
    } else {
        session.rm_version = Some(parsed);
    }
    // Java TMs always send extraData; Go sends none and registers both roles on one connection.
    let go =
        (tm && empty_extra_data) || (session.tm_version.is_some() && session.rm_version.is_some());
    if go {
        session.ctx.dialect = Dialect::Go;
    }
    session.ctx.client_version = [session.tm_version, session.rm_version]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(parsed);
    if !session.registered {
        let peer = session.handle.peer;
        session.requester = Arc::new(Requester {
            application_id: application_id.to_owned(),
            transaction_service_group: group.to_owned(),
            client_id: format!("{application_id}:{}:{}", peer.ip(), peer.port()),
        });
        session.registered = true;
    }
    shared.registry.register(
        &session.handle,
        &session.requester.application_id,
        session.ctx,
        resources,
    );
    tracing::info!(
        peer = %session.handle.peer,
        role = if tm { "TM" } else { "RM" },
        version,
        application_id,
        group,
        dialect = ?session.ctx.dialect,
        "client registered"
    );
    true
}

async fn write_loop(
    mut writer: OwnedWriteHalf,
    mut rx: UnboundedReceiver<Outbound>,
    peer: SocketAddr,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut closing = false;
    while !closing {
        let Some(first) = rx.recv().await else { break };
        let mut next = Some(first);
        while let Some(outbound) = next.take() {
            match outbound {
                Outbound::Close => {
                    closing = true;
                    break;
                }
                Outbound::Raw(frame) => encode_frame(&frame, &mut buf),
                Outbound::Message {
                    msg_type,
                    request_id,
                    codec,
                    compressor,
                    message,
                    ctx,
                } => {
                    if let Err(error) = encode_message(
                        msg_type, request_id, codec, compressor, &message, &ctx, &mut buf,
                    ) {
                        tracing::error!(%peer, %error, "cannot encode an outgoing frame; dropped");
                    }
                }
            }
            if buf.len() < WRITE_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        if !buf.is_empty() {
            if let Err(error) = writer.write_all(&buf).await {
                tracing::debug!(%peer, %error, "write failed");
                break;
            }
            buf.clear();
        }
    }
    let _ = writer.shutdown().await;
}
