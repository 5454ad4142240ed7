//! One client connection: frames are read and handled in arrival order (registrations inline,
//! transaction requests handed to the engine), and a writer task batches outgoing frames into
//! as few socket writes as possible. What one connection can make the server hold is bounded
//! (its outbox, its requests in flight, the resources it registers); bad input, a transaction
//! request before registration, or a socket that stops taking bytes closes only this connection,
//! with the reason logged.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use ferrata_core::{BranchId, BranchRegistration, Reply, Request, RequestKind, Requester, TxError};
use ferrata_net::{Connection, ConnectionConfig, OutboundEncoder};
use ferrata_proto::{
    ClientVersion, CodecContext, DecodeError, Dialect, Frame, Message, MsgType, RegisterRmResponse,
    RegisterTmResponse, TransactionExceptionCode, UnregisterRmResponse, decode_body,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::auth::{self, Authenticator};
use crate::cluster::Driver;
use crate::config::Config;
use crate::engine::{CoreCommand, EngineHandle, InFlight, MergeBatch, ReplySlot, Route};
use crate::peers::{self, Peers};
use crate::phase2::AnswerMatch;
use crate::registry::{ConnHandle, Outbound, Registry};
use crate::response::build_response;

/// Outbox places beyond the answers of requests in flight: heartbeats, registration answers,
/// refusals and the TC's own phase-2 requests.
const OUTBOX_SLACK: usize = 64;
/// At most this many resources per connection (RegisterRM may be repeated with new names).
pub const MAX_RESOURCES_PER_CONNECTION: usize = 10_000;

/// What every connection task shares.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub registry: Arc<Registry>,
    pub engine: EngineHandle,
    pub next_conn_id: AtomicU64,
    pub auth: Authenticator,
    /// Links to the other nodes, on a shared store.
    pub peers: Option<Arc<Peers>>,
}

/// Why a connection was closed by the server.
#[derive(Debug, thiserror::Error)]
enum CloseReason {
    /// The connection itself ended: peer gone, bad framing, idle, a client that does not read.
    #[error(transparent)]
    Connection(#[from] ferrata_net::CloseReason),
    #[error("undecodable message: {0}")]
    Body(#[from] ferrata_proto::DecodeError),
    #[error("unexpected message type {0} from a client")]
    Unexpected(u16),
    #[error(
        "transaction request (message type {0}) on a connection that has not registered \
         (RegisterTM/RegisterRM first); seata-server closes such connections too"
    )]
    Unregistered(u16),
    #[error("a response on a connection that has not registered")]
    UnregisteredResponse,
    #[error("the transaction engine has stopped")]
    EngineStopped,
}

impl CloseReason {
    const WRITER_GONE: CloseReason = CloseReason::Connection(ferrata_net::CloseReason::WriterGone);
}

/// Per-connection registration state.
struct Session {
    handle: ConnHandle,
    requester: Arc<Requester>,
    ctx: CodecContext,
    tm_version: Option<ClientVersion>,
    rm_version: Option<ClientVersion>,
    registered: bool,
    /// Requests admitted to the engine and not yet answered.
    in_flight: Arc<AtomicUsize>,
    /// Whether a refusal for too many requests in flight was logged at warn level already.
    warned_in_flight: bool,
    auth: auth::ConnAuth,
    /// Whether the first frame fixed the protocol version yet.
    version_fixed: bool,
    /// Unknown message types already logged on this connection.
    unknown_types_logged: HashSet<u16>,
}

/// Distinct unknown message types logged per connection; the rest only at debug level.
const MAX_UNKNOWN_TYPES_LOGGED: usize = 16;

/// Where a request's answer goes.
enum AnswerTo {
    Direct,
    Merged(Arc<MergeBatch>, usize),
}

/// Serves one connection, plain or TLS, given its two halves, inside the connection's span.
pub async fn serve<R, W>(
    reader: R,
    writer: W,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let id = shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = mpsc::channel(shared.config.limits.max_in_flight_per_connection + OUTBOX_SLACK);
    let handle = ConnHandle::new(id, peer, tx);
    let config = ConnectionConfig {
        max_frame_len: shared.config.limits.max_frame_bytes,
        read_idle: Some(shared.config.limits.idle_timeout),
        write_timeout: Some(shared.config.limits.write_timeout),
        heartbeat_after: None,
    };
    let mut conn = Connection::open(reader, writer, rx, OutboundEncoder, &config, peer, id);
    let span = conn.span().clone();
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
        in_flight: Arc::new(AtomicUsize::new(0)),
        warned_in_flight: false,
        auth: auth::ConnAuth::default(),
        version_fixed: false,
        unknown_types_logged: HashSet::new(),
    };
    async move {
        tracing::debug!("connection opened");
        let reason = loop {
            let frame = tokio::select! {
                frame = conn.next_frame() => frame,
                _ = shutdown.changed() => break ferrata_net::CloseReason::Closed.into(),
            };
            let frame = match frame {
                Ok(frame) => frame,
                Err(reason) => break reason.into(),
            };
            if !session.version_fixed {
                // Like seata-server: the first frame fixes the connection's protocol version
                // (capped at the highest this server speaks) for both directions.
                session.ctx = session.ctx.with_protocol_version(frame.version);
                session.version_fixed = true;
            }
            if let Err(reason) = handle_frame(frame, &mut session, &shared).await {
                break reason;
            }
        };
        let reason = match reason {
            // The writer stopped first: its own reason (e.g. the client does not read) says why.
            CloseReason::Connection(ferrata_net::CloseReason::WriterGone) => {
                CloseReason::from(conn.writer_stopped().await)
            }
            other => other,
        };
        match &reason {
            CloseReason::Connection(why) if why.is_orderly() => {
                tracing::debug!(%reason, "connection closed")
            }
            reason => tracing::warn!(%reason, "closing connection"),
        }
        shared.registry.remove(id);
        // Phase-2 requests this connection will never answer are retried now, not at their
        // timeouts.
        for finished in handle.pending.close() {
            if !shared.engine.submit(finished.into_command()).await {
                break;
            }
        }
        conn.close().await;
    }
    .instrument(span)
    .await
}

async fn handle_frame(
    frame: Frame,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    match frame.msg_type {
        MsgType::HeartbeatRequest => {
            let pong = Outbound::Raw(frame.heartbeat_response(session.ctx.protocol_version));
            if session.handle.send(pong).await {
                Ok(())
            } else {
                Err(CloseReason::WRITER_GONE)
            }
        }
        MsgType::HeartbeatResponse => Ok(()),
        MsgType::Response => {
            if !session.registered {
                return Err(CloseReason::UnregisteredResponse);
            }
            let Some(message) = decode_known(&frame, session, shared)? else {
                return Ok(());
            };
            match session.handle.pending.complete(frame.request_id, message) {
                AnswerMatch::Accepted(finished) => {
                    // Waiting for room in the core's queue slows this connection's reading
                    // only; the engine is gone only when the server stops.
                    shared.engine.submit(finished.into_command()).await;
                }
                AnswerMatch::Relayed => {}
                AnswerMatch::NoRequest => tracing::debug!(
                    peer = %session.handle.peer,
                    id = frame.request_id,
                    "answer to no request pending on this connection (late, or never sent here); dropped"
                ),
                AnswerMatch::Mismatch(why) => tracing::warn!(
                    peer = %session.handle.peer,
                    id = frame.request_id,
                    %why,
                    "phase-2 answer does not match its request; dropped"
                ),
            }
            Ok(())
        }
        MsgType::Request | MsgType::Oneway => {
            let Some(message) = decode_known(&frame, session, shared)? else {
                return Ok(());
            };
            match message {
                Message::MergedWarp(merged) => {
                    if !session.registered {
                        return Err(CloseReason::Unregistered(59));
                    }
                    let permit = session
                        .handle
                        .reserve()
                        .await
                        .ok_or(CloseReason::WRITER_GONE)?;
                    let batch = Arc::new(MergeBatch::new(
                        permit,
                        frame.request_id,
                        frame.codec,
                        frame.compressor,
                        session.ctx,
                        merged.messages.len(),
                    ));
                    for (index, sub) in merged.messages.into_iter().enumerate() {
                        if matches!(sub, Message::MergedWarp(_)) {
                            return Err(CloseReason::Unexpected(59));
                        }
                        let to = AnswerTo::Merged(batch.clone(), index);
                        handle_message(&frame, sub, to, session, shared).await?;
                    }
                    Ok(())
                }
                other => handle_message(&frame, other, AnswerTo::Direct, session, shared).await,
            }
        }
    }
}

/// Decodes a frame's body; `None` for a well-formed frame of a message type this server does
/// not know (a newer client's), which is ignored and logged once per type and connection
/// rather than ending the connection.
fn decode_known(
    frame: &Frame,
    session: &mut Session,
    shared: &Shared,
) -> Result<Option<Message>, CloseReason> {
    match decode_body(
        frame,
        &session.ctx,
        shared.config.limits.max_decompressed_bytes,
    ) {
        Ok(message) => Ok(Some(message)),
        Err(DecodeError::UnknownTypeCode(code)) => {
            let first = session.unknown_types_logged.len() < MAX_UNKNOWN_TYPES_LOGGED
                && session.unknown_types_logged.insert(code);
            if first {
                tracing::warn!(
                    peer = %session.handle.peer,
                    type_code = code,
                    request_id = frame.request_id,
                    msg_type = ?frame.msg_type,
                    "ignoring a message of a type this server does not know (logged once per type and connection); no answer is sent"
                );
            }
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

/// Answers from the connection task itself (registrations, refusals), waiting for room.
async fn answer_here(
    frame: &Frame,
    to: AnswerTo,
    session: &Session,
    message: Message,
) -> Result<(), CloseReason> {
    match to {
        AnswerTo::Merged(batch, index) => {
            batch.fill(index, message);
            Ok(())
        }
        AnswerTo::Direct => {
            let outbound = Outbound::Message {
                msg_type: MsgType::Response,
                request_id: frame.request_id,
                codec: frame.codec,
                compressor: frame.compressor,
                message,
                ctx: session.ctx,
            };
            if session.handle.send(outbound).await {
                Ok(())
            } else {
                Err(CloseReason::WRITER_GONE)
            }
        }
    }
}

async fn handle_message(
    frame: &Frame,
    message: Message,
    to: AnswerTo,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    // Decided once: the drivers may change while this request is handled.
    let forward_to = forwarded_to(&message, session, shared);
    let request = match message {
        Message::RegisterTm(request) => {
            let outcome = identify(
                session,
                shared,
                Identify {
                    version: &request.version,
                    application_id: &request.application_id,
                    group: &request.transaction_service_group,
                    extra_data: &request.extra_data,
                    role: Role::Tm {
                        empty_extra_data: request.extra_data.is_empty(),
                    },
                    resources: Vec::new(),
                },
            );
            let version = shared.config.server.reported_version.clone();
            // Only v2 connections can carry the reason; v1 clients see identified = false.
            let answer = Message::RegisterTmResponse(match outcome {
                Ok(()) => RegisterTmResponse::new(true, version),
                Err(reason) => RegisterTmResponse::rejected(version, reason),
            });
            return answer_here(frame, to, session, answer).await;
        }
        Message::RegisterRm(request) => {
            let outcome = identify(
                session,
                shared,
                Identify {
                    version: &request.version,
                    application_id: &request.application_id,
                    group: &request.transaction_service_group,
                    extra_data: &request.extra_data,
                    role: Role::Rm,
                    resources: split_resources(&request.resource_ids),
                },
            );
            let version = shared.config.server.reported_version.clone();
            let answer = Message::RegisterRmResponse(match outcome {
                Ok(()) => RegisterRmResponse::new(true, version),
                Err(reason) => RegisterRmResponse::rejected(version, reason),
            });
            return answer_here(frame, to, session, answer).await;
        }
        Message::UnregisterRm(request) => {
            shared
                .registry
                .unregister_resources(session.handle.id, &split_resources(&request.resource_ids));
            let version = shared.config.server.reported_version.clone();
            let answer = Message::UnregisterRmResponse(UnregisterRmResponse {
                identified: true,
                version,
            });
            return answer_here(frame, to, session, answer).await;
        }
        message if forward_to.is_some() => {
            let address = forward_to.unwrap_or_default();
            return forward(frame, message, address, to, session, shared).await;
        }
        message @ (Message::BranchCommit(_) | Message::BranchRollback(_))
            if session.requester.application_id == peers::PEER_APPLICATION_ID
                && shared.peers.is_some() =>
        {
            return deliver_for_peer(frame, message, to, session, shared).await;
        }
        Message::GlobalBegin(r) => Request::Begin {
            timeout_ms: r.timeout_ms,
            transaction_name: r.transaction_name,
        },
        Message::BranchRegister(r) => Request::BranchRegister(BranchRegistration {
            xid: r.xid,
            branch_type: r.branch_type,
            resource_id: r.resource_id,
            lock_key: r.lock_key,
            application_data: r.application_data,
        }),
        Message::BranchReport(r) => Request::BranchReport {
            xid: r.xid,
            branch_id: BranchId(r.branch_id),
            status: r.status,
            application_data: r.application_data,
        },
        Message::GlobalCommit(r) => Request::GlobalCommit { xid: r.xid },
        Message::GlobalRollback(r) => Request::GlobalRollback { xid: r.xid },
        Message::GlobalStatus(r) => Request::GlobalStatus { xid: r.xid },
        Message::GlobalReport(r) => Request::GlobalReport {
            xid: r.xid,
            status: r.global_status,
        },
        Message::GlobalLockQuery(r) => Request::LockQuery {
            xid: r.xid,
            branch_type: r.branch_type,
            resource_id: r.resource_id,
            lock_key: r.lock_key,
        },
        other => return Err(CloseReason::Unexpected(other.type_code())),
    };
    let kind = request.kind();
    let Some((in_flight, slot)) = admit(frame, kind, to, session, shared).await? else {
        return Ok(());
    };
    let command = CoreCommand::Request {
        route: Route::new(session.ctx, slot, in_flight, kind),
        requester: session.requester.clone(),
        request,
    };
    if shared.engine.submit(command).await {
        Ok(())
    } else {
        Err(CloseReason::EngineStopped)
    }
}

/// The node a request goes to instead of this one's engine: the transaction's driver, on a
/// shared store, unless the request came from another node already.
fn forwarded_to(message: &Message, session: &Session, shared: &Shared) -> Option<String> {
    let peers = shared.peers.as_ref()?;
    if session.requester.application_id == peers::PEER_APPLICATION_ID {
        return None;
    }
    let (xid, _) = peers::forwardable(message)?;
    match peers.drivers.of(ferrata_core::xid_prefix(xid)) {
        Driver::Here => None,
        // An XID naming an address that is no node of this cluster is answered here.
        Driver::At(address) => peers.is_node(&address).then_some(address),
    }
}

/// Forwards a request to the node that drives its transaction; a task relays the answer.
async fn forward(
    frame: &Frame,
    message: Message,
    address: String,
    to: AnswerTo,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    // forwarded_to() found both, for this very message.
    let (Some(peers), Some((_, kind))) = (shared.peers.clone(), peers::forwardable(&message))
    else {
        return Err(CloseReason::Unexpected(message.type_code()));
    };
    let Some((in_flight, slot)) = admit(frame, kind, to, session, shared).await? else {
        return Ok(());
    };
    let ctx = session.ctx;
    let client_id = session.requester.client_id.clone();
    let route = Route::new(ctx, slot, in_flight, kind);
    tokio::spawn(async move {
        let answer = match peers.forward(&address, message, &client_id).await {
            Ok(answer) => answer,
            Err(error) => {
                tracing::warn!(%error, "cannot forward a request to the node driving its transaction");
                let reply = Reply::Failed {
                    request: kind,
                    error: TxError::new(refusal_code(kind), error.to_string()),
                };
                build_response(reply, &ctx)
            }
        };
        route.answer(answer);
    });
    Ok(())
}

/// Another node asks this one to deliver a phase-2 request to an RM connected here; a task
/// relays the RM's answer.
async fn deliver_for_peer(
    frame: &Frame,
    message: Message,
    to: AnswerTo,
    session: &mut Session,
    shared: &Shared,
) -> Result<(), CloseReason> {
    let Some(peers) = shared.peers.clone() else {
        return Err(CloseReason::Unexpected(message.type_code()));
    };
    if !session.registered {
        return Err(CloseReason::Unregistered(message.type_code()));
    }
    let slot = reply_slot(frame, to, session).await?;
    let ctx = session.ctx;
    tokio::spawn(async move {
        if let Some(answer) = peers.deliver_here(message).await {
            slot.answer(answer, ctx);
        }
    });
    Ok(())
}

/// The place a request's answer will take: in its merged batch, or reserved in the outbox.
async fn reply_slot(
    frame: &Frame,
    to: AnswerTo,
    session: &Session,
) -> Result<ReplySlot, CloseReason> {
    Ok(match to {
        AnswerTo::Merged(batch, index) => ReplySlot::Merged(batch, index),
        AnswerTo::Direct => ReplySlot::Direct {
            permit: session
                .handle
                .reserve()
                .await
                .ok_or(CloseReason::WRITER_GONE)?,
            request_id: frame.request_id,
            codec: frame.codec,
            compressor: frame.compressor,
        },
    })
}

/// Admits a transaction request: the connection must be registered and below its in-flight
/// limit (else the request is refused here, `None`); returns its place among the requests in
/// flight and the slot its answer goes to.
async fn admit(
    frame: &Frame,
    kind: RequestKind,
    to: AnswerTo,
    session: &mut Session,
    shared: &Shared,
) -> Result<Option<(InFlight, ReplySlot)>, CloseReason> {
    if !session.registered {
        return Err(CloseReason::Unregistered(kind.type_code()));
    }
    let limit = shared.config.limits.max_in_flight_per_connection;
    let Some(in_flight) = InFlight::try_admit(&session.in_flight, limit) else {
        let why = format!(
            "too many requests in flight on this connection: the limit is {limit} \
             (limits.max_in_flight_per_connection); wait for answers before sending more"
        );
        if !session.warned_in_flight {
            session.warned_in_flight = true;
            tracing::warn!(peer = %session.handle.peer, limit, "refusing requests beyond the in-flight limit (logged once per connection)");
        }
        let reply = Reply::Failed {
            request: kind,
            error: TxError::new(refusal_code(kind), why),
        };
        let answer = build_response(reply, &session.ctx);
        answer_here(frame, to, session, answer).await?;
        return Ok(None);
    };
    let slot = reply_slot(frame, to, session).await?;
    Ok(Some((in_flight, slot)))
}

/// The exception code a client understands for a request refused before it reached the core.
fn refusal_code(kind: RequestKind) -> TransactionExceptionCode {
    match kind {
        RequestKind::Begin => TransactionExceptionCode::BeginFailed,
        RequestKind::BranchRegister => TransactionExceptionCode::BranchRegisterFailed,
        RequestKind::BranchReport => TransactionExceptionCode::BranchReportFailed,
        RequestKind::LockQuery => TransactionExceptionCode::LockableCheckFailed,
        RequestKind::GlobalCommit
        | RequestKind::GlobalRollback
        | RequestKind::GlobalStatus
        | RequestKind::GlobalReport => TransactionExceptionCode::Unknown,
    }
}

fn split_resources(ids: &str) -> Vec<String> {
    ids.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Java TMs always send extraData; Go sends none.
    Tm {
        empty_extra_data: bool,
    },
    Rm,
}

/// The fields of a RegisterTM or RegisterRM request.
struct Identify<'a> {
    version: &'a str,
    application_id: &'a str,
    group: &'a str,
    extra_data: &'a str,
    role: Role,
    resources: Vec<String>,
}

/// Authenticates (when `[auth]` is on), then records a TM or RM registration on this
/// connection; `Err` rejects it with the reason (failed authentication, bad version string, or
/// too many resources on one connection).
fn identify(session: &mut Session, shared: &Shared, request: Identify<'_>) -> Result<(), String> {
    let Identify {
        version,
        application_id,
        group,
        extra_data,
        role,
        resources,
    } = request;
    let auth_role = match role {
        Role::Tm { .. } => auth::Role::Tm,
        Role::Rm => auth::Role::Rm,
    };
    shared.auth.admit(
        &mut session.auth,
        session.handle.peer,
        auth_role,
        application_id,
        group,
        extra_data,
    )?;
    let parsed = match ClientVersion::parse(version) {
        Ok(parsed) if parsed >= ClientVersion::V0_7_1 => parsed,
        Ok(_) => {
            let reason = "clients before 0.7.1 speak the legacy v0 framing; upgrade the client";
            tracing::warn!(peer = %session.handle.peer, version, "rejecting registration: {reason}");
            return Err(reason.to_owned());
        }
        Err(error) => {
            tracing::warn!(peer = %session.handle.peer, %error, "rejecting registration");
            return Err(error.to_string());
        }
    };
    let peer = session.handle.peer;
    // The first registration names the connection; later ones only add resources.
    let requester = if session.registered {
        session.requester.clone()
    } else {
        Arc::new(Requester {
            application_id: application_id.to_owned(),
            transaction_service_group: group.to_owned(),
            client_id: format!("{application_id}:{}:{}", peer.ip(), peer.port()),
        })
    };
    let mut tm_version = session.tm_version;
    let mut rm_version = session.rm_version;
    match role {
        Role::Tm { .. } => tm_version = Some(parsed),
        Role::Rm => rm_version = Some(parsed),
    }
    let mut ctx = session.ctx;
    // Go registers both roles on one connection, and its TM sends no extraData.
    let go = matches!(
        role,
        Role::Tm {
            empty_extra_data: true
        }
    ) || (tm_version.is_some() && rm_version.is_some());
    if go {
        ctx.dialect = Dialect::Go;
    }
    ctx.client_version = [tm_version, rm_version]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(parsed);
    if let Err(error) = shared.registry.register(
        &session.handle,
        &requester.application_id,
        &requester.client_id,
        ctx,
        resources,
        MAX_RESOURCES_PER_CONNECTION,
    ) {
        tracing::warn!(peer = %peer, application_id, %error, "rejecting registration");
        return Err(error.to_string());
    }
    session.tm_version = tm_version;
    session.rm_version = rm_version;
    session.ctx = ctx;
    session.requester = requester;
    session.registered = true;
    tracing::info!(
        peer = %peer,
        role = if role == Role::Rm { "RM" } else { "TM" },
        version,
        application_id,
        group,
        dialect = ?session.ctx.dialect,
        "client registered"
    );
    Ok(())
}
