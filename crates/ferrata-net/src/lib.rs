//! One framed Seata connection on tokio, shared by the server, the SDK, the load generator and
//! the test peers: frames come out of a sans-IO [`FrameBuffer`], a writer task sends every frame
//! queued at one wake-up in one socket write, and a connection ends with a typed [`CloseReason`].
//!
//! A crate of its own rather than a feature of ferrata-proto: the wire crate stays free of I/O
//! and of a runtime, while every tokio user of the protocol shares this one read loop and this
//! one write loop. Generic over `AsyncRead`/`AsyncWrite`, so plain TCP and TLS share it too.

use std::fmt::Display;
use std::time::{Duration, Instant};

use ferrata_proto::{CODEC_SEATA, CodecContext, Frame, FrameError, Message, MsgType};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::Instrument;

pub use ferrata_proto::{FrameBatch, FrameBuffer};

/// Stop adding frames to one socket write beyond this many bytes, so that one write stays
/// bounded under a flood of frames.
pub const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// Room kept ahead of each socket read: a burst of small frames arrives in one read.
pub const READ_ROOM_BYTES: usize = 16 * 1024;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum CloseReason {
    #[error("closed by the peer")]
    PeerClosed,
    /// This side closed it: shutdown, or everything that could queue frames is gone.
    #[error("closed by this side")]
    Closed,
    #[error("nothing received for {0:?} (idle timeout)")]
    Idle(Duration),
    #[error("read failed: {0}")]
    ReadFailed(std::io::Error),
    #[error("malformed frame: {0}")]
    Frame(#[from] FrameError),
    #[error("the peer does not read: its socket took no bytes for {0:?} (write timeout)")]
    WriteStalled(Duration),
    #[error("write failed: {0}")]
    WriteFailed(std::io::Error),
    #[error("the connection's writer has stopped")]
    WriterGone,
}

impl CloseReason {
    /// True for the ordinary ends of a connection (either side closing, the network failing),
    /// false for a peer that misbehaved (bad frames, silence, not reading).
    pub fn is_orderly(&self) -> bool {
        matches!(
            self,
            CloseReason::PeerClosed
                | CloseReason::Closed
                | CloseReason::ReadFailed(_)
                | CloseReason::WriteFailed(_)
        )
    }
}

/// Turns what is queued on a connection's outbox into frames. The writer calls it from its own
/// task, once per item, then writes the whole batch at once.
pub trait Encoder: Send + 'static {
    type Item: Send + 'static;

    /// Appends the frame(s) of one queued item.
    fn encode(&mut self, item: Self::Item, out: &mut FrameBatch);

    /// When the outbox runs dry: keep collecting items until this instant (a merge window
    /// that is open), or `None` to write now.
    fn hold_until(&self) -> Option<Instant> {
        None
    }

    /// Before each write: appends what was held back (a merged batch).
    fn flush(&mut self, _out: &mut FrameBatch) {}

    /// After each successful write, with what was written (statistics).
    fn written(&mut self, _out: &FrameBatch) {}

    /// Nothing was written for the heartbeat interval: may append a ping.
    fn idle(&mut self, _out: &mut FrameBatch) {}
}

/// A frame to write: a message the writer encodes, or a frame whose body is encoded already.
#[derive(Debug)]
pub enum Outbound {
    Message {
        msg_type: MsgType,
        request_id: i32,
        codec: u8,
        compressor: u8,
        message: Message,
        ctx: CodecContext,
    },
    Raw(Frame),
}

impl Outbound {
    /// `message` in the SEATA codec, uncompressed.
    pub fn message(
        msg_type: MsgType,
        request_id: i32,
        message: Message,
        ctx: CodecContext,
    ) -> Outbound {
        Outbound::Message {
            msg_type,
            request_id,
            codec: CODEC_SEATA,
            compressor: 0,
            message,
            ctx,
        }
    }
}

/// The [`Encoder`] of [`Outbound`] items: each one becomes one frame.
#[derive(Debug, Default, Clone, Copy)]
pub struct OutboundEncoder;

impl Encoder for OutboundEncoder {
    type Item = Outbound;

    fn encode(&mut self, item: Outbound, out: &mut FrameBatch) {
        match item {
            Outbound::Raw(frame) => out.push_frame(&frame),
            Outbound::Message {
                msg_type,
                request_id,
                codec,
                compressor,
                message,
                ctx,
            } => {
                if let Err(error) =
                    out.push_message(msg_type, request_id, codec, compressor, &message, &ctx)
                {
                    tracing::error!(%error, request_id, "cannot encode an outgoing frame; dropped");
                }
            }
        }
    }
}

/// The next frame from `reader`, reading into `frames` as needed; a read that waits longer than
/// `idle` ends the connection. Cancel-safe: dropping it loses no bytes.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    frames: &mut FrameBuffer,
    idle: Option<Duration>,
) -> Result<Frame, CloseReason> {
    loop {
        if let Some(frame) = frames.next_frame()? {
            return Ok(frame);
        }
        let read = match idle {
            Some(idle) => tokio::time::timeout(idle, reader.read_buf(frames.read_target()))
                .await
                .map_err(|_| CloseReason::Idle(idle))?,
            None => reader.read_buf(frames.read_target()).await,
        };
        match read {
            Ok(0) => return Err(CloseReason::PeerClosed),
            Ok(_) => {}
            Err(error) => return Err(CloseReason::ReadFailed(error)),
        }
    }
}

/// The read half of a connection with its frame buffer.
#[derive(Debug)]
pub struct FrameReader<R> {
    reader: R,
    frames: FrameBuffer,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(reader: R, max_frame_len: usize) -> FrameReader<R> {
        FrameReader {
            reader,
            frames: FrameBuffer::new(max_frame_len, READ_ROOM_BYTES),
        }
    }

    /// The next frame (see [`read_frame`]). Cancel-safe.
    pub async fn next_frame(&mut self, idle: Option<Duration>) -> Result<Frame, CloseReason> {
        read_frame(&mut self.reader, &mut self.frames, idle).await
    }

    /// The next frame already received, without reading.
    pub fn buffered_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        self.frames.next_frame()
    }

    /// One read from the socket into the buffer; 0 when the peer closed. Cancel-safe.
    pub async fn read_more(&mut self) -> std::io::Result<usize> {
        self.reader.read_buf(self.frames.read_target()).await
    }

    /// The version byte of the first frame received (it fixes the connection's version).
    pub fn first_version(&self) -> Option<u8> {
        self.frames.first_version()
    }
}

/// The write half of a connection with the batch of frames for its next write.
#[derive(Debug)]
pub struct FrameWriter<W> {
    writer: W,
    batch: FrameBatch,
    write_timeout: Option<Duration>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer whose writes fail when the socket takes no bytes for `write_timeout`.
    pub fn new(writer: W, write_timeout: Option<Duration>) -> FrameWriter<W> {
        FrameWriter {
            writer,
            batch: FrameBatch::with_capacity(READ_ROOM_BYTES),
            write_timeout,
        }
    }

    /// Where to append the frames of the next write.
    pub fn batch(&mut self) -> &mut FrameBatch {
        &mut self.batch
    }

    /// Writes everything batched in one go (nothing when the batch is empty).
    pub async fn flush(&mut self) -> Result<(), CloseReason> {
        if !self.batch.is_empty() {
            self.write_batch().await?;
            self.batch.clear();
        }
        Ok(())
    }

    /// One write of the batch, which is left as it is (the caller may still count it).
    async fn write_batch(&mut self) -> Result<(), CloseReason> {
        let write = self.writer.write_all(self.batch.bytes());
        let written = match self.write_timeout {
            Some(limit) => tokio::time::timeout(limit, write)
                .await
                .map_err(|_| CloseReason::WriteStalled(limit))?,
            None => write.await,
        };
        written.map_err(CloseReason::WriteFailed)
    }

    /// Closes the write direction (TLS sends its close_notify), bounded by the write timeout.
    pub async fn shutdown(&mut self) {
        let shutdown = self.writer.shutdown();
        let _ = match self.write_timeout {
            Some(limit) => tokio::time::timeout(limit, shutdown)
                .await
                .unwrap_or(Ok(())),
            None => shutdown.await,
        };
    }
}

/// A connection id unique in this process, for connections whose owner keeps no count of its
/// own (clients, test peers).
pub fn next_connection_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Limits and timers of one connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionConfig {
    /// Frames longer than this end the connection.
    pub max_frame_len: usize,
    /// A read waiting longer than this ends the connection.
    pub read_idle: Option<Duration>,
    /// A socket that takes no bytes for this long ends the connection.
    pub write_timeout: Option<Duration>,
    /// After this long without writing, [`Encoder::idle`] may append a ping.
    pub heartbeat_after: Option<Duration>,
}

/// The writer task of a connection; aborted when dropped, so that dropping a connection
/// closes its socket.
#[derive(Debug)]
struct WriterTask {
    handle: Option<JoinHandle<CloseReason>>,
    close: Option<oneshot::Sender<()>>,
}

impl WriterTask {
    /// Waits for the writer to stop on its own and says why.
    async fn stopped(&mut self) -> CloseReason {
        let Some(handle) = self.handle.as_mut() else {
            return CloseReason::WriterGone;
        };
        let reason = handle.await.unwrap_or(CloseReason::WriterGone);
        self.handle = None;
        reason
    }
}

impl Drop for WriterTask {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// One connection: frames are read by its owner through [`Connection::next_frame`], and frames
/// queued on its outbox are written by its writer task. Both log inside one `conn` span that
/// carries the connection's id and peer.
#[derive(Debug)]
pub struct Connection<R> {
    id: u64,
    span: tracing::Span,
    reader: FrameReader<R>,
    read_idle: Option<Duration>,
    writer: WriterTask,
}

impl<R: AsyncRead + Unpin> Connection<R> {
    /// Starts the writer task on `writer`, draining `outbox` through `encoder`.
    pub fn open<W, E>(
        reader: R,
        writer: W,
        outbox: mpsc::Receiver<E::Item>,
        encoder: E,
        config: &ConnectionConfig,
        peer: impl Display,
        id: u64,
    ) -> Connection<R>
    where
        W: AsyncWrite + Unpin + Send + 'static,
        E: Encoder,
    {
        let span = tracing::info_span!("conn", id, %peer);
        let (close_tx, close_rx) = oneshot::channel();
        let writer = FrameWriter::new(writer, config.write_timeout);
        let handle = tokio::spawn(
            write_loop(writer, outbox, encoder, close_rx, config.heartbeat_after)
                .instrument(span.clone()),
        );
        Connection {
            id,
            span,
            reader: FrameReader::new(reader, config.max_frame_len),
            read_idle: config.read_idle,
            writer: WriterTask {
                handle: Some(handle),
                close: Some(close_tx),
            },
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The span to run this connection's reading work in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The next frame; an error when the peer closes, reading fails, a frame is malformed, the
    /// read-idle time passes, or the writer stops (with the writer's reason). Cancel-safe.
    pub async fn next_frame(&mut self) -> Result<Frame, CloseReason> {
        let Connection {
            reader,
            read_idle,
            writer,
            ..
        } = self;
        // Reading first: the writer stopping is the rare case.
        tokio::select! {
            biased;
            frame = reader.next_frame(*read_idle) => frame,
            reason = writer.stopped() => Err(reason),
        }
    }

    /// The version byte of the first frame received.
    pub fn first_version(&self) -> Option<u8> {
        self.reader.first_version()
    }

    /// Why the writer stopped, once it has (after a send to the outbox failed).
    pub async fn writer_stopped(&mut self) -> CloseReason {
        self.writer.stopped().await
    }

    /// Writes what is already queued, closes the write direction and waits for the writer.
    pub async fn close(mut self) {
        if let Some(close) = self.writer.close.take() {
            let _ = close.send(());
        }
        if let Some(handle) = self.writer.handle.as_mut() {
            let _ = handle.await;
            self.writer.handle = None;
        }
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Writes queued frames, all those queued at one wake-up in one write, until told to close
/// (then writes what is queued and closes the write direction), until every sender is gone,
/// or until a write fails or stalls.
async fn write_loop<W: AsyncWrite + Unpin, E: Encoder>(
    mut out: FrameWriter<W>,
    mut outbox: mpsc::Receiver<E::Item>,
    mut encoder: E,
    mut close: oneshot::Receiver<()>,
    heartbeat_after: Option<Duration>,
) -> CloseReason {
    // tokio's clock, like the ticker's.
    let mut last_write = tokio::time::Instant::now();
    let mut ticker = heartbeat_after.map(|after| {
        let mut ticker = tokio::time::interval(after.min(Duration::from_secs(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker
    });
    let mut closing = false;
    loop {
        let first = if closing {
            match outbox.try_recv() {
                Ok(first) => first,
                Err(_) => {
                    out.shutdown().await;
                    return CloseReason::Closed;
                }
            }
        } else {
            tokio::select! {
                biased;
                next = outbox.recv() => match next {
                    Some(first) => first,
                    None => {
                        out.shutdown().await;
                        return CloseReason::Closed;
                    }
                },
                _ = &mut close => {
                    closing = true;
                    continue;
                }
                () = tick(&mut ticker) => {
                    if heartbeat_after.is_some_and(|after| last_write.elapsed() >= after) {
                        encoder.idle(out.batch());
                        if let Err(reason) = write(&mut out, &mut encoder).await {
                            return reason;
                        }
                        last_write = tokio::time::Instant::now();
                    }
                    continue;
                }
            }
        };
        encoder.encode(first, out.batch());
        while out.batch().len() < WRITE_BATCH_BYTES {
            // Take what is already queued; while the encoder holds a batch open, wait it out.
            if let Ok(item) = outbox.try_recv() {
                encoder.encode(item, out.batch());
                continue;
            }
            let Some(until) = encoder.hold_until() else {
                break;
            };
            match tokio::time::timeout_at(until.into(), outbox.recv()).await {
                Ok(Some(item)) => encoder.encode(item, out.batch()),
                Ok(None) | Err(_) => break,
            }
        }
        encoder.flush(out.batch());
        if let Err(reason) = write(&mut out, &mut encoder).await {
            return reason;
        }
        last_write = tokio::time::Instant::now();
    }
}

async fn write<W: AsyncWrite + Unpin, E: Encoder>(
    out: &mut FrameWriter<W>,
    encoder: &mut E,
) -> Result<(), CloseReason> {
    if out.batch.is_empty() {
        return Ok(());
    }
    out.write_batch().await?;
    encoder.written(&out.batch);
    out.batch.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::{DEFAULT_MAX_FRAME_LEN, GlobalStatusRequest, decode_body};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use tokio::io::DuplexStream;

    /// Counts the socket writes that carried bytes.
    struct CountingWriter {
        inner: DuplexStream,
        writes: Arc<AtomicUsize>,
    }

    impl AsyncWrite for CountingWriter {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.writes.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }

        fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }

        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    fn status(id: i32) -> Outbound {
        let message = Message::GlobalStatus(GlobalStatusRequest {
            xid: format!("x:{id}"),
            extra_data: String::new(),
        });
        Outbound::message(MsgType::Request, id, message, CodecContext::default())
    }

    fn config() -> ConnectionConfig {
        ConnectionConfig {
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            read_idle: None,
            write_timeout: Some(Duration::from_secs(5)),
            heartbeat_after: None,
        }
    }

    #[tokio::test]
    async fn frames_queued_at_one_wake_up_leave_in_one_write_and_close_flushes() {
        let (near, far) = tokio::io::duplex(1 << 20);
        let writes = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel(8);
        for id in 1..=3 {
            tx.try_send(status(id)).expect("room");
        }
        let writer = CountingWriter {
            inner: near,
            writes: writes.clone(),
        };
        let (dummy_read, _keep) = tokio::io::duplex(16);
        let conn = Connection::open(
            dummy_read,
            writer,
            rx,
            OutboundEncoder,
            &config(),
            "test",
            1,
        );
        tx.try_send(status(4)).expect("room");
        drop(tx);
        let mut peer = FrameReader::new(far, DEFAULT_MAX_FRAME_LEN);
        let mut ids = Vec::new();
        for _ in 0..4 {
            let frame = peer.next_frame(None).await.expect("frame");
            let message = decode_body(&frame, &CodecContext::default(), 1 << 20).expect("body");
            assert!(matches!(message, Message::GlobalStatus(_)));
            ids.push(frame.request_id);
        }
        assert_eq!(ids, vec![1, 2, 3, 4]);
        conn.close().await;
        assert!(matches!(
            peer.next_frame(None).await,
            Err(CloseReason::PeerClosed)
        ));
        // The three frames queued before the writer started went out in one write.
        assert!(writes.load(Ordering::SeqCst) <= 2, "{writes:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_does_not_read_stalls_the_writer_and_ends_the_connection() {
        let (near, _far) = tokio::io::duplex(64);
        let (near_read, near_write) = tokio::io::split(near);
        let (tx, rx) = mpsc::channel(8);
        let mut conn = Connection::open(
            near_read,
            near_write,
            rx,
            OutboundEncoder,
            &config(),
            "test",
            2,
        );
        // More than the 64 bytes the pipe holds.
        for id in 1..=4 {
            tx.send(status(id)).await.expect("queued");
        }
        assert!(matches!(
            conn.next_frame().await,
            Err(CloseReason::WriteStalled(limit)) if limit == Duration::from_secs(5)
        ));
        assert!(tx.send(status(5)).await.is_err(), "the outbox is closed");
    }

    #[tokio::test(start_paused = true)]
    async fn reading_ends_with_typed_reasons() {
        let idle = ConnectionConfig {
            read_idle: Some(Duration::from_secs(3)),
            ..config()
        };
        let (near, _far) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(near);
        let (_tx, rx) = mpsc::channel::<Outbound>(1);
        let mut conn = Connection::open(r, w, rx, OutboundEncoder, &idle, "test", 3);
        assert!(matches!(conn.next_frame().await, Err(CloseReason::Idle(_))));

        let (near, mut far) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(near);
        let (_tx, rx) = mpsc::channel::<Outbound>(1);
        let mut conn = Connection::open(r, w, rx, OutboundEncoder, &config(), "test", 4);
        far.write_all(b"GET / HTTP/1.1\r\n").await.expect("write");
        assert!(matches!(
            conn.next_frame().await,
            Err(CloseReason::Frame(FrameError::BadMagic(_)))
        ));

        let (near, mut far) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(near);
        let (_tx, rx) = mpsc::channel::<Outbound>(1);
        let mut conn = Connection::open(r, w, rx, OutboundEncoder, &config(), "test", 5);
        let mut ping = FrameBatch::default();
        ping.push_heartbeat(MsgType::HeartbeatRequest, 2, 7);
        far.write_all(ping.bytes()).await.expect("write");
        far.shutdown().await.expect("shutdown");
        let frame = conn.next_frame().await.expect("ping");
        assert_eq!(
            (frame.msg_type, frame.request_id),
            (MsgType::HeartbeatRequest, 7)
        );
        assert_eq!(conn.first_version(), Some(2));
        assert!(matches!(
            conn.next_frame().await,
            Err(CloseReason::PeerClosed)
        ));
    }

    /// Pings through [`Encoder::idle`], numbering them.
    struct Pinger(i32);

    impl Encoder for Pinger {
        type Item = Outbound;

        fn encode(&mut self, item: Outbound, out: &mut FrameBatch) {
            OutboundEncoder.encode(item, out);
        }

        fn idle(&mut self, out: &mut FrameBatch) {
            self.0 += 1;
            out.push_heartbeat(MsgType::HeartbeatRequest, 1, self.0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_writer_pings() {
        let (near, far) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(near);
        let (_tx, rx) = mpsc::channel::<Outbound>(1);
        let pinging = ConnectionConfig {
            heartbeat_after: Some(Duration::from_secs(5)),
            ..config()
        };
        let _conn = Connection::open(r, w, rx, Pinger(0), &pinging, "test", 6);
        let mut peer = FrameReader::new(far, DEFAULT_MAX_FRAME_LEN);
        for expected in 1..=2 {
            let frame = peer.next_frame(None).await.expect("ping");
            assert_eq!(
                (frame.msg_type, frame.request_id),
                (MsgType::HeartbeatRequest, expected)
            );
        }
    }
}
