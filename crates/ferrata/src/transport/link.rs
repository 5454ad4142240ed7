//! One live TCP connection to a TC: request/response correlation (including merged batches
//! answered by MergeResultMessage, BatchResultMessage or individual responses), an encoder for
//! the connection's writer that merges requests and pings when idle, and a reader that never
//! runs handlers itself. The reading and writing are ferrata-net's.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrata_net::{CloseReason, Connection, ConnectionConfig, Encoder, FrameBatch};
use ferrata_proto::{
    CODEC_SEATA, CodecContext, Frame, MergedWarpMessage, Message, MsgType, PROTOCOL_VERSION,
    decode_body,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

use super::{Settings, Stats};
use crate::error::{Error, Operation};
use crate::rm::RmRuntime;

type Waiter = oneshot::Sender<Result<Message, Error>>;

/// Frames queued for the writer; requesters wait for room beyond this.
const OUTBOX_CAPACITY: usize = 4_096;
/// Requests of one connection waiting for their answers; more wait for one to finish.
pub(crate) const MAX_IN_FLIGHT: usize = 10_000;

/// What the writer task sends.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Request {
        id: i32,
        message: Message,
        mergeable: bool,
        queued: Instant,
    },
    Response {
        id: i32,
        message: Message,
    },
    Pong {
        id: i32,
    },
}

/// The shared half of a connection: what requesters and the reader use to correlate.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) addr: String,
    out: mpsc::Sender<Outgoing>,
    /// Bounds `pending`: a request holds a place until it is answered or gives up.
    in_flight: Arc<tokio::sync::Semaphore>,
    pending: Mutex<HashMap<i32, Waiter>>,
    /// Wrapper id of each MergedWarpMessage in flight → its sub-request ids, in order.
    merged: Mutex<HashMap<i32, Vec<i32>>>,
    next_id: AtomicI32,
}

/// Removes a pending entry when its requester gives up (timeout or cancellation).
struct PendingGuard<'a> {
    link: &'a Link,
    id: i32,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.link.lock_pending().remove(&self.id);
    }
}

impl Link {
    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Waiter>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_merged(&self) -> std::sync::MutexGuard<'_, HashMap<i32, Vec<i32>>> {
        self.merged.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh non-negative id, as Java masks its counter (first id 1).
    fn next_id(&self) -> i32 {
        self.next_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & i32::MAX
    }

    /// Sends `message` and waits up to `timeout` for its answer.
    pub(crate) async fn request(
        &self,
        operation: Operation,
        message: Message,
        mergeable: bool,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let lost = || Error::ConnectionLost {
            operation,
            addr: self.addr.clone(),
        };
        // Waiting for a place in flight and in the outbox counts against the timeout too.
        let exchange = async {
            let _place = self.in_flight.acquire().await.map_err(|_| lost())?;
            let id = self.next_id();
            let (tx, rx) = oneshot::channel();
            self.lock_pending().insert(id, tx);
            let _guard = PendingGuard { link: self, id };
            let outgoing = Outgoing::Request {
                id,
                message,
                mergeable,
                queued: Instant::now(),
            };
            self.out.send(outgoing).await.map_err(|_| lost())?;
            rx.await.map_err(|_| lost())?
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(answer) => answer,
            Err(_) => Err(Error::Timeout {
                operation,
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// False once the connection's writer has stopped.
    pub(crate) fn is_open(&self) -> bool {
        !self.out.is_closed()
    }

    fn complete(&self, id: i32, answer: Result<Message, Error>) {
        let waiter = self.lock_pending().remove(&id);
        match waiter {
            Some(tx) => {
                let _ = tx.send(answer);
            }
            // Java and Go log and drop these too: the requester timed out or was cancelled.
            None => tracing::debug!(addr = %self.addr, id, "response to no pending request"),
        }
    }

    /// Records a batch's sub-ids. Batches whose requests all gave up (timed out) are never
    /// answered by a TC that lost them; forget those now and then so the table stays small.
    fn remember_batch(&self, wrapper_id: i32, ids: Vec<i32>) {
        let mut merged = self.lock_merged();
        if merged.len() >= 256 {
            let pending = self.lock_pending();
            merged.retain(|_, ids| ids.iter().any(|id| pending.contains_key(id)));
        }
        merged.insert(wrapper_id, ids);
    }

    /// Positional answers to the wrapper `wrapper_id`.
    fn complete_merged(&self, wrapper_id: i32, answers: Vec<Message>) {
        let Some(ids) = self.lock_merged().remove(&wrapper_id) else {
            tracing::debug!(addr = %self.addr, wrapper_id, "merge result for no pending batch");
            return;
        };
        if ids.len() != answers.len() {
            tracing::warn!(
                addr = %self.addr,
                expected = ids.len(),
                got = answers.len(),
                "merge result does not answer every request of the batch"
            );
        }
        let mut answers = answers.into_iter();
        for id in ids {
            match answers.next() {
                Some(answer) => self.complete(id, Ok(answer)),
                None => self.complete(
                    id,
                    Err(Error::Protocol {
                        operation: Operation::MergedRequest,
                        detail: "the TC's MergeResultMessage has no answer for it".into(),
                    }),
                ),
            }
        }
    }

    /// Answers matched by msgId; also forgets answered ids of their wrapper.
    fn complete_by_ids(&self, wrapper_id: i32, ids: Vec<i32>, answers: Vec<Message>) {
        {
            let mut merged = self.lock_merged();
            if let Some(rest) = merged.get_mut(&wrapper_id) {
                rest.retain(|id| !ids.contains(id));
                if rest.is_empty() {
                    merged.remove(&wrapper_id);
                }
            }
        }
        for (id, answer) in ids.into_iter().zip(answers) {
            self.complete(id, Ok(answer));
        }
    }

    /// A plain response: either to a plain request or, from a TC that splits batches (Java
    /// 2.3+), to one sub-request of a batch, carrying that sub-request's id.
    fn complete_single(&self, id: i32, answer: Result<Message, Error>) {
        {
            let mut merged = self.lock_merged();
            let owner = merged
                .iter()
                .find(|(_, ids)| ids.contains(&id))
                .map(|(wrapper, _)| *wrapper);
            if let Some(wrapper) = owner
                && let Some(rest) = merged.get_mut(&wrapper)
            {
                rest.retain(|x| *x != id);
                if rest.is_empty() {
                    merged.remove(&wrapper);
                }
            }
        }
        self.complete(id, answer);
    }

    /// Fails every outstanding request at once instead of at its timeout.
    pub(crate) fn fail_all(&self) {
        self.lock_pending().clear();
        self.lock_merged().clear();
    }
}

/// Starts the reader and writer of a fresh connection (plain or TLS, given its two halves).
/// The returned task ends when the connection does (EOF, error, read-idle timeout, or the
/// writer failing).
pub(crate) fn start<R, W>(
    reader: R,
    writer: W,
    addr: String,
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    rm: Option<Arc<RmRuntime>>,
) -> (Arc<Link>, tokio::task::JoinHandle<CloseReason>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, rx) = mpsc::channel(OUTBOX_CAPACITY);
    let link = Arc::new(Link {
        addr,
        out,
        in_flight: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
        pending: Mutex::new(HashMap::new()),
        merged: Mutex::new(HashMap::new()),
        next_id: AtomicI32::new(0),
    });
    let encoder = LinkEncoder {
        link: link.clone(),
        settings: settings.clone(),
        stats: stats.clone(),
        batch: Vec::new(),
        window_end: None,
    };
    let config = ConnectionConfig {
        max_frame_len: settings.max_frame_len,
        read_idle: settings.heartbeat.then_some(settings.read_idle),
        write_timeout: None,
        heartbeat_after: settings.heartbeat.then_some(settings.write_idle),
    };
    let id = ferrata_net::next_connection_id();
    let mut conn = Connection::open(reader, writer, rx, encoder, &config, &link.addr, id);
    let span = conn.span().clone();
    let task_link = link.clone();
    // Aborting this task (shutdown) drops the connection, which stops its writer and closes
    // the socket; the reader never waits on a branch handler.
    let task = tokio::spawn(
        async move {
            let reason = loop {
                match conn.next_frame().await {
                    Ok(frame) => handle_frame(frame, &task_link, &settings, rm.as_ref(), &stats),
                    Err(reason) => break reason,
                }
            };
            task_link.fail_all();
            tracing::info!(%reason, "TC connection closed");
            reason
        }
        .instrument(span),
    );
    (link, task)
}

fn handle_frame(
    frame: Frame,
    link: &Arc<Link>,
    settings: &Settings,
    rm: Option<&Arc<RmRuntime>>,
    stats: &Stats,
) {
    match frame.msg_type {
        MsgType::HeartbeatResponse => {}
        MsgType::HeartbeatRequest => {
            // A pong that does not fit is skipped: the TC only learns the link is alive.
            let _ = link.out.try_send(Outgoing::Pong {
                id: frame.request_id,
            });
        }
        MsgType::Response => match decode_body(&frame, &settings.codec, settings.max_frame_len) {
            Ok(Message::MergeResult(m)) => link.complete_merged(frame.request_id, m.messages),
            Ok(Message::BatchResult(b)) => {
                link.complete_by_ids(frame.request_id, b.msg_ids, b.messages)
            }
            Ok(message) => link.complete_single(frame.request_id, Ok(message)),
            Err(error) => {
                tracing::warn!(addr = %link.addr, id = frame.request_id, %error, "undecodable response from the TC");
                link.complete_single(
                    frame.request_id,
                    Err(Error::Protocol {
                        operation: Operation::Request,
                        detail: format!("undecodable response: {error}"),
                    }),
                );
            }
        },
        MsgType::Request | MsgType::Oneway => {
            let message = match decode_body(&frame, &settings.codec, settings.max_frame_len) {
                Ok(message) => message,
                Err(error) => {
                    // The TC times out and retries; a bad frame must not end the connection.
                    tracing::warn!(addr = %link.addr, %error, "undecodable request from the TC; dropped");
                    return;
                }
            };
            let Some(rm) = rm else {
                tracing::warn!(addr = %link.addr, message = message.name(), "request from the TC on a TM connection; ignored");
                return;
            };
            stats.server_requests.fetch_add(1, Ordering::Relaxed);
            let id = frame.request_id;
            let out = link.out.clone();
            let accepted = rm.dispatch(
                message,
                Box::new(move |answer| {
                    // If the connection is gone the TC retries on another one. A full outbox
                    // is waited for off this task (answers are bounded by the handler pool).
                    let response = Outgoing::Response {
                        id,
                        message: answer,
                    };
                    if let Err(mpsc::error::TrySendError::Full(response)) = out.try_send(response) {
                        tokio::spawn(async move {
                            let _ = out.send(response).await;
                        });
                    }
                }),
            );
            if !accepted {
                stats
                    .server_requests_dropped
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Encodes the outbox for the connection's writer. Mergeable requests that arrive within
/// `batch_window` of the first are sent as one MergedWarpMessage (with msgIds, as Java ≥1.5).
struct LinkEncoder {
    link: Arc<Link>,
    settings: Arc<Settings>,
    stats: Arc<Stats>,
    /// Mergeable requests collected for the next MergedWarpMessage.
    batch: Vec<(i32, Message)>,
    /// When the open batch must be written.
    window_end: Option<Instant>,
}

impl Encoder for LinkEncoder {
    type Item = Outgoing;

    fn encode(&mut self, item: Outgoing, out: &mut FrameBatch) {
        match item {
            Outgoing::Request {
                id,
                message,
                mergeable: true,
                queued,
            } if self.settings.batch => {
                self.window_end
                    .get_or_insert(queued + self.settings.batch_window);
                self.batch.push((id, message));
                if self.batch.len() >= self.settings.max_batch {
                    self.write_merged(out);
                }
            }
            Outgoing::Request { id, message, .. } => {
                encode(MsgType::Request, id, &message, &self.settings, out);
            }
            Outgoing::Response { id, message } => {
                encode(MsgType::Response, id, &message, &self.settings, out);
            }
            Outgoing::Pong { id } => {
                out.push_heartbeat(MsgType::HeartbeatResponse, PROTOCOL_VERSION, id)
            }
        }
    }

    fn hold_until(&self) -> Option<Instant> {
        self.window_end.filter(|_| !self.batch.is_empty())
    }

    fn flush(&mut self, out: &mut FrameBatch) {
        self.write_merged(out);
        self.window_end = None;
    }

    fn written(&mut self, out: &FrameBatch) {
        self.stats
            .frames_sent
            .fetch_add(out.frames(), Ordering::Relaxed);
    }

    fn idle(&mut self, out: &mut FrameBatch) {
        out.push_heartbeat(
            MsgType::HeartbeatRequest,
            PROTOCOL_VERSION,
            self.link.next_id(),
        );
        self.stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
    }
}

impl LinkEncoder {
    /// Writes the collected mergeable requests: one alone goes as a plain request, more as one
    /// MergedWarpMessage (MSGTYPE 2, as Java sends it) whose sub-ids are remembered.
    fn write_merged(&mut self, out: &mut FrameBatch) {
        match self.batch.len() {
            0 => {}
            1 => {
                if let Some((id, message)) = self.batch.pop() {
                    encode(MsgType::Request, id, &message, &self.settings, out);
                }
            }
            n => {
                let wrapper = self.link.next_id();
                let (ids, messages): (Vec<i32>, Vec<Message>) =
                    std::mem::take(&mut self.batch).into_iter().unzip();
                self.link.remember_batch(wrapper, ids.clone());
                let merged = Message::MergedWarp(MergedWarpMessage {
                    messages,
                    msg_ids: Some(ids),
                });
                if encode(MsgType::Oneway, wrapper, &merged, &self.settings, out) {
                    self.stats
                        .merged_frames_sent
                        .fetch_add(1, Ordering::Relaxed);
                    self.stats
                        .merged_requests_sent
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Appends one frame; false (logged) when it cannot be encoded.
fn encode(
    msg_type: MsgType,
    id: i32,
    message: &Message,
    settings: &Settings,
    out: &mut FrameBatch,
) -> bool {
    match out.push_message(msg_type, id, CODEC_SEATA, 0, message, &settings.codec) {
        Ok(()) => true,
        Err(error) => {
            // Only an unsupported codec/compressor can fail here, and both are fixed.
            tracing::error!(%error, "cannot encode a frame for the TC; dropped");
            false
        }
    }
}

/// The codec context of a client that registered with `version`: the TC encodes exception
/// codes and statuses for that version, so the client decodes with the same tables.
pub(crate) fn client_codec(version: &str) -> CodecContext {
    let version = ferrata_proto::ClientVersion::parse(version)
        .unwrap_or(ferrata_proto::ClientVersion::NEWEST);
    CodecContext::new(version, ferrata_proto::Dialect::Java)
}
