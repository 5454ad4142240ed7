//! One live TCP connection to a TC: request/response correlation (including merged batches
//! answered by MergeResultMessage, BatchResultMessage or individual responses), a writer that
//! merges requests and pings when idle, and a reader that never runs handlers itself.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ferrata_proto::{
    CODEC_SEATA, CodecContext, Frame, MergedWarpMessage, Message, MsgType, decode_body,
    decode_frame, encode_frame, encode_message,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{Settings, Stats};
use crate::error::{Error, Operation};
use crate::rm::RmRuntime;

type Waiter = oneshot::Sender<Result<Message, Error>>;

/// Stop adding frames to one socket write beyond this many bytes.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
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
) -> (Arc<Link>, tokio::task::JoinHandle<String>)
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
    let task_link = link.clone();
    // Reader and writer share one task so that aborting it (shutdown) ends both and closes
    // the socket; neither ever waits on a branch handler.
    let task = tokio::spawn(async move {
        let reason = tokio::select! {
            reason = read_loop(reader, &task_link, &settings, rm, &stats) => reason,
            reason = write_loop(writer, rx, task_link.clone(), settings.clone(), stats.clone()) => reason,
        };
        task_link.fail_all();
        tracing::info!(addr = %task_link.addr, %reason, "TC connection closed");
        reason
    });
    (link, task)
}

async fn read_loop(
    mut reader: impl AsyncRead + Unpin,
    link: &Arc<Link>,
    settings: &Settings,
    rm: Option<Arc<RmRuntime>>,
    stats: &Stats,
) -> String {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    loop {
        loop {
            match decode_frame(&mut buf, settings.max_frame_len) {
                Ok(Some(frame)) => handle_frame(frame, link, settings, rm.as_ref(), stats),
                Ok(None) => break,
                // Framing is lost: nothing after this point can be trusted.
                Err(error) => return format!("malformed frame from the TC: {error}"),
            }
        }
        let read = if settings.heartbeat {
            match tokio::time::timeout(settings.read_idle, reader.read_buf(&mut buf)).await {
                Ok(read) => read,
                Err(_) => {
                    return format!(
                        "nothing received for {:?} (not even a heartbeat answer); reconnecting",
                        settings.read_idle
                    );
                }
            }
        } else {
            reader.read_buf(&mut buf).await
        };
        match read {
            Ok(0) => return "closed by the TC".to_owned(),
            Ok(_) => {}
            Err(error) => return format!("read failed: {error}"),
        }
    }
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

/// Encodes frames into one buffer per socket write. Mergeable requests that arrive within
/// `batch_window` of the first are sent as one MergedWarpMessage (with msgIds, as Java ≥1.5).
async fn write_loop(
    mut writer: impl AsyncWrite + Unpin,
    mut rx: mpsc::Receiver<Outgoing>,
    link: Arc<Link>,
    settings: Arc<Settings>,
    stats: Arc<Stats>,
) -> String {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut last_write = Instant::now();
    let tick = settings.write_idle.min(Duration::from_secs(1));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => return "client closed the connection".to_owned(),
            },
            _ = ticker.tick(), if settings.heartbeat => {
                if last_write.elapsed() >= settings.write_idle {
                    let ping = Frame {
                        version: 1,
                        msg_type: MsgType::HeartbeatRequest,
                        codec: CODEC_SEATA,
                        compressor: 0,
                        request_id: link.next_id(),
                        head_map: Vec::new(),
                        body: bytes::Bytes::new(),
                    };
                    encode_frame(&ping, &mut buf);
                    if let Err(error) = writer.write_all(&buf).await {
                        return format!("write failed: {error}");
                    }
                    buf.clear();
                    last_write = Instant::now();
                    stats.frames_sent.fetch_add(1, Ordering::Relaxed);
                    stats.heartbeats_sent.fetch_add(1, Ordering::Relaxed);
                }
                continue;
            }
        };
        let mut batch: Vec<(i32, Message)> = Vec::new();
        let mut frames = 0u64;
        let mut window_end = None;
        let mut next = Some(first);
        loop {
            if let Some(item) = next.take() {
                match item {
                    Outgoing::Request {
                        id,
                        message,
                        mergeable: true,
                        queued,
                    } if settings.batch => {
                        window_end.get_or_insert(queued + settings.batch_window);
                        batch.push((id, message));
                        if batch.len() >= settings.max_batch {
                            frames += flush_batch(&mut batch, &link, &settings, &stats, &mut buf);
                        }
                    }
                    Outgoing::Request { id, message, .. } => {
                        frames += encode(MsgType::Request, id, &message, &settings, &mut buf);
                    }
                    Outgoing::Response { id, message } => {
                        frames += encode(MsgType::Response, id, &message, &settings, &mut buf);
                    }
                    Outgoing::Pong { id } => {
                        let pong = Frame {
                            version: 1,
                            msg_type: MsgType::HeartbeatResponse,
                            codec: CODEC_SEATA,
                            compressor: 0,
                            request_id: id,
                            head_map: Vec::new(),
                            body: bytes::Bytes::new(),
                        };
                        encode_frame(&pong, &mut buf);
                        frames += 1;
                    }
                }
            }
            // One socket write at a time stays bounded even under a flood of frames.
            if buf.len() >= WRITE_BATCH_BYTES {
                break;
            }
            // Take what is already queued; while a batch is open, wait out its window.
            match rx.try_recv() {
                Ok(item) => {
                    next = Some(item);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) if batch.is_empty() => break,
                Err(_) => {}
            }
            let Some(end) = window_end.filter(|_| !batch.is_empty()) else {
                break;
            };
            match tokio::time::timeout_at(end.into(), rx.recv()).await {
                Ok(Some(item)) => next = Some(item),
                Ok(None) | Err(_) => break,
            }
        }
        frames += flush_batch(&mut batch, &link, &settings, &stats, &mut buf);
        if buf.is_empty() {
            continue;
        }
        if let Err(error) = writer.write_all(&buf).await {
            return format!("write failed: {error}");
        }
        buf.clear();
        last_write = Instant::now();
        stats.frames_sent.fetch_add(frames, Ordering::Relaxed);
    }
}

fn encode(
    msg_type: MsgType,
    id: i32,
    message: &Message,
    settings: &Settings,
    buf: &mut BytesMut,
) -> u64 {
    match encode_message(msg_type, id, CODEC_SEATA, 0, message, &settings.codec, buf) {
        Ok(()) => 1,
        Err(error) => {
            // Only an unsupported codec/compressor can fail here, and both are fixed.
            tracing::error!(%error, "cannot encode a frame for the TC; dropped");
            0
        }
    }
}

/// Writes the collected mergeable requests: one alone goes as a plain request, more as one
/// MergedWarpMessage (MSGTYPE 2, as Java sends it) whose sub-ids are remembered.
fn flush_batch(
    batch: &mut Vec<(i32, Message)>,
    link: &Link,
    settings: &Settings,
    stats: &Stats,
    buf: &mut BytesMut,
) -> u64 {
    match batch.len() {
        0 => 0,
        1 => {
            let Some((id, message)) = batch.pop() else {
                return 0;
            };
            encode(MsgType::Request, id, &message, settings, buf)
        }
        n => {
            let wrapper = link.next_id();
            let (ids, messages): (Vec<i32>, Vec<Message>) =
                std::mem::take(batch).into_iter().unzip();
            link.remember_batch(wrapper, ids.clone());
            let merged = Message::MergedWarp(MergedWarpMessage {
                messages,
                msg_ids: Some(ids),
            });
            let sent = encode(MsgType::Oneway, wrapper, &merged, settings, buf);
            stats.merged_frames_sent.fetch_add(sent, Ordering::Relaxed);
            stats
                .merged_requests_sent
                .fetch_add(n as u64 * sent, Ordering::Relaxed);
            sent
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
