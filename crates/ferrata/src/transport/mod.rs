//! Connections to the TC cluster: per role (TM, RM) one supervised connection per TC address
//! that connects, registers, reconnects with backoff and re-registers; requests pick the TC named
//! in their XID when it is connected, else any connected one, and fail fast when none is. With
//! registries, the set of addresses follows what they list ([`Pool::set_addresses`]).

mod link;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_proto::{CodecContext, Message, RegisterRmRequest, RegisterTmRequest};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

pub(crate) use link::Link;

use crate::config::{ClientConfig, split_host_port};
use crate::error::{ConfigError, Error, Operation, Role};
use crate::rm::RmRuntime;

/// Per-role transport settings, resolved from the client configuration.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) role: Role,
    pub(crate) codec: CodecContext,
    pub(crate) max_frame_len: usize,
    pub(crate) heartbeat: bool,
    pub(crate) write_idle: Duration,
    pub(crate) read_idle: Duration,
    pub(crate) batch: bool,
    pub(crate) batch_window: Duration,
    pub(crate) max_batch: usize,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) backoff_initial: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) application_id: String,
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) credentials: Option<crate::config::Credentials>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::TlsOptions>,
}

impl Settings {
    pub(crate) fn new(config: &ClientConfig, role: Role) -> Settings {
        let (batch, request_timeout) = match role {
            Role::Tm => (config.tm_batch, config.tm_request_timeout),
            Role::Rm => (config.rm_batch, config.rm_request_timeout),
        };
        Settings {
            role,
            codec: link::client_codec(&config.client_version),
            max_frame_len: config.max_frame_len,
            heartbeat: config.heartbeat,
            write_idle: config.write_idle.max(Duration::from_millis(10)),
            read_idle: config.read_idle.max(Duration::from_millis(10)),
            batch,
            batch_window: config.batch_window,
            max_batch: config.max_batch.clamp(1, i16::MAX as usize),
            request_timeout,
            connect_timeout: config.connect_timeout,
            backoff_initial: config
                .reconnect_backoff_initial
                .max(Duration::from_millis(1)),
            backoff_max: config.reconnect_backoff_max,
            application_id: config.application_id.clone(),
            group: config.tx_service_group.clone(),
            version: config.client_version.clone(),
            credentials: config.credentials.clone(),
            #[cfg(feature = "tls")]
            tls: config.tls.clone(),
        }
    }
}

/// Counters shared by every connection of a client.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) merged_frames_sent: AtomicU64,
    pub(crate) merged_requests_sent: AtomicU64,
    pub(crate) heartbeats_sent: AtomicU64,
    pub(crate) requests_sent: AtomicU64,
    pub(crate) server_requests: AtomicU64,
    pub(crate) server_requests_dropped: AtomicU64,
    pub(crate) connections_established: AtomicU64,
}

/// A snapshot of the transport's counters (all roles, all TC addresses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransportStats {
    /// Frames written to TC sockets: requests, merged batches, responses, pings, pongs.
    pub frames_sent: u64,
    /// MergedWarpMessage frames among them.
    pub merged_frames_sent: u64,
    /// Requests that travelled inside those merged frames.
    pub merged_requests_sent: u64,
    pub heartbeats_sent: u64,
    /// Logical requests issued (each counted once, merged or not).
    pub requests_sent: u64,
    /// BranchCommit/BranchRollback/UndoLogDelete requests received from the TC.
    pub server_requests_received: u64,
    /// Of those, dropped because too many were already waiting for a handler (the TC
    /// retries them).
    pub server_requests_dropped: u64,
    /// Successful connect + registration handshakes, reconnects included.
    pub connections_established: u64,
}

impl Stats {
    pub(crate) fn snapshot(&self) -> TransportStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TransportStats {
            frames_sent: get(&self.frames_sent),
            merged_frames_sent: get(&self.merged_frames_sent),
            merged_requests_sent: get(&self.merged_requests_sent),
            heartbeats_sent: get(&self.heartbeats_sent),
            requests_sent: get(&self.requests_sent),
            server_requests_received: get(&self.server_requests),
            server_requests_dropped: get(&self.server_requests_dropped),
            connections_established: get(&self.connections_established),
        }
    }
}

#[derive(Debug, Clone)]
enum Phase {
    Connecting,
    Ready(Arc<Link>),
    Failed(Error),
}

#[derive(Debug)]
struct ConnState {
    phase: Phase,
    /// Incremented at the start of every connection attempt.
    attempt: u64,
}

/// One TC address of one role.
#[derive(Debug)]
struct Conn {
    addr: String,
    resolved: Mutex<Option<SocketAddr>>,
    state: Mutex<ConnState>,
    /// Wakes the supervisor out of its backoff when a request needs a connection now.
    poke: Notify,
    /// Set when the registries stop listing this address: its supervisor ends.
    retired: watch::Sender<bool>,
}

impl Conn {
    fn new(addr: &str) -> Arc<Conn> {
        Arc::new(Conn {
            addr: addr.trim().to_owned(),
            resolved: Mutex::new(None),
            state: Mutex::new(ConnState {
                phase: Phase::Connecting,
                attempt: 0,
            }),
            poke: Notify::new(),
            retired: watch::channel(false).0,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ConnState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn ready(&self) -> Option<Arc<Link>> {
        match &self.lock().phase {
            Phase::Ready(link) if link.is_open() => Some(link.clone()),
            _ => None,
        }
    }

    /// True when the XID's `host:port` names this address.
    fn matches(&self, target: &str) -> bool {
        if self.addr == target {
            return true;
        }
        let same_name = match (split_host_port(&self.addr), split_host_port(target)) {
            (Some((h1, p1)), Some((h2, p2))) => p1 == p2 && h1.eq_ignore_ascii_case(h2),
            _ => false,
        };
        let resolved = *self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        same_name || (resolved.is_some() && resolved == target.parse::<SocketAddr>().ok())
    }
}

/// The TC address written in an XID: everything before the last `:` (Java's XID balancer).
pub(crate) fn xid_address(xid: &str) -> Option<&str> {
    xid.rsplit_once(':')
        .map(|(addr, _)| addr)
        .filter(|addr| split_host_port(addr).is_some())
}

/// All connections of one role.
#[derive(Debug)]
pub(crate) struct Pool {
    conns: std::sync::RwLock<Vec<Arc<Conn>>>,
    pub(crate) settings: Arc<Settings>,
    stats: Arc<Stats>,
    changed: watch::Sender<u64>,
    round_robin: AtomicUsize,
    rm: Option<Arc<RmRuntime>>,
    shutdown: watch::Receiver<bool>,
}

impl Pool {
    /// Creates the pool and starts one supervisor per address; they stop when `shutdown`
    /// changes or its sender is dropped.
    pub(crate) fn start(
        addresses: &[String],
        settings: Settings,
        stats: Arc<Stats>,
        rm: Option<Arc<RmRuntime>>,
        shutdown: &watch::Receiver<bool>,
    ) -> Arc<Pool> {
        let pool = Arc::new(Pool {
            conns: std::sync::RwLock::new(Vec::new()),
            settings: Arc::new(settings),
            stats,
            changed: watch::channel(0).0,
            round_robin: AtomicUsize::new(0),
            rm,
            shutdown: shutdown.clone(),
        });
        pool.set_addresses(addresses);
        pool
    }

    /// Makes the pool serve exactly `addresses`: new ones get a supervised connection, ones
    /// missing from the list are closed (requests waiting on them fail). An empty list changes
    /// nothing (a registry that lists no TC is more likely wrong than the cluster gone).
    pub(crate) fn set_addresses(self: &Arc<Self>, addresses: &[String]) {
        let wanted: Vec<&str> = addresses
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .collect();
        if wanted.is_empty() {
            return;
        }
        let (added, removed) = {
            let mut conns = self.conns.write().unwrap_or_else(|p| p.into_inner());
            let removed: Vec<Arc<Conn>> = conns
                .iter()
                .filter(|c| !wanted.contains(&c.addr.as_str()))
                .cloned()
                .collect();
            conns.retain(|c| wanted.contains(&c.addr.as_str()));
            let mut added = Vec::new();
            for addr in wanted {
                if !conns.iter().any(|c| c.addr == addr) {
                    let conn = Conn::new(addr);
                    conns.push(conn.clone());
                    added.push(conn);
                }
            }
            (added, removed)
        };
        for conn in removed {
            tracing::info!(addr = %conn.addr, role = %self.settings.role, "TC no longer listed; closing its connection");
            conn.retired.send_replace(true);
        }
        for conn in added {
            tracing::debug!(addr = %conn.addr, role = %self.settings.role, "connecting to a TC");
            tokio::spawn(supervise(self.clone(), conn, self.shutdown.clone()));
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The current connections.
    fn conns(&self) -> Vec<Arc<Conn>> {
        self.conns.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_phase(&self, conn: &Conn, phase: Phase, new_attempt: bool) {
        {
            let mut state = conn.lock();
            state.phase = phase;
            if new_attempt {
                state.attempt += 1;
            }
        }
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn ready_link(&self, xid: Option<&str>) -> Option<Arc<Link>> {
        let conns = self.conns();
        if let Some(target) = xid.and_then(xid_address) {
            let named: Vec<&Arc<Conn>> = conns.iter().filter(|c| c.matches(target)).collect();
            if let Some(link) = named.iter().find_map(|c| c.ready()) {
                return Some(link);
            }
            // The XID's TC is being connected (e.g. just after start): wait for it rather than
            // ask a TC that may not know the transaction; once that attempt fails, any will do.
            if named
                .iter()
                .any(|c| matches!(c.lock().phase, Phase::Connecting))
            {
                return None;
            }
        }
        let n = conns.len();
        let start = self.round_robin.fetch_add(1, Ordering::Relaxed);
        (0..n).find_map(|i| conns.get((start + i) % n).and_then(|c| c.ready()))
    }

    /// A connected, registered link: the XID's TC if connected, else any. When none is, wakes
    /// the supervisors and waits for their attempt; if every address fails, returns why.
    pub(crate) async fn pick(&self, xid: Option<&str>) -> Result<Arc<Link>, Error> {
        if let Some(link) = self.ready_link(xid) {
            return Ok(link);
        }
        let mut changes = self.changed.subscribe();
        // Per connection (by address): the first attempt that counts as "fresh" — one that
        // started after this call, or was already running when the connection was first seen.
        let mut fresh_from: std::collections::HashMap<usize, u64> =
            std::collections::HashMap::new();
        let limit = self.settings.connect_timeout + self.settings.request_timeout;
        let deadline = Instant::now() + limit;
        loop {
            if let Some(link) = self.ready_link(xid) {
                return Ok(link);
            }
            let conns = self.conns();
            for conn in &conns {
                fresh_from
                    .entry(Arc::as_ptr(conn) as usize)
                    .or_insert_with(|| {
                        conn.poke.notify_one();
                        let state = conn.lock();
                        match state.phase {
                            Phase::Connecting => state.attempt,
                            _ => state.attempt + 1,
                        }
                    });
            }
            if conns
                .iter()
                .any(|c| matches!(c.lock().phase, Phase::Failed(Error::Shutdown)))
            {
                return Err(Error::Shutdown);
            }
            let failures: Vec<(String, Error)> = conns
                .iter()
                .filter_map(|conn| {
                    let fresh = fresh_from.get(&(Arc::as_ptr(conn) as usize))?;
                    let state = conn.lock();
                    match &state.phase {
                        Phase::Failed(error) if state.attempt >= *fresh => {
                            Some((conn.addr.clone(), error.clone()))
                        }
                        _ => None,
                    }
                })
                .collect();
            if !conns.is_empty() && failures.len() == conns.len() {
                return Err(self.combine(failures));
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Error::Shutdown),
                Err(_) => {
                    return Err(Error::Unreachable {
                        role: self.settings.role,
                        addresses: self.addresses(),
                        reason: format!("no connection was established within {limit:?}"),
                    });
                }
            }
        }
    }

    fn addresses(&self) -> String {
        self.conns()
            .iter()
            .map(|c| c.addr.clone())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The most useful error of all addresses: a rejection says more than "unreachable".
    fn combine(&self, failures: Vec<(String, Error)>) -> Error {
        if let Some((_, error)) = failures.iter().find(|(_, e)| {
            matches!(
                e,
                Error::RegistrationRejected { .. } | Error::Shutdown | Error::Config(_)
            )
        }) {
            return error.clone();
        }
        let reason = failures
            .iter()
            .map(|(addr, error)| match error {
                Error::Unreachable { reason, .. } => format!("{addr}: {reason}"),
                other => format!("{addr}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; ");
        Error::Unreachable {
            role: self.settings.role,
            addresses: self.addresses(),
            reason,
        }
    }

    /// Sends `message` on a suitable connection and waits for its answer.
    pub(crate) async fn call(
        &self,
        operation: Operation,
        xid: Option<&str>,
        message: Message,
    ) -> Result<Message, Error> {
        let link = self.pick(xid).await?;
        self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
        link.request(
            operation,
            message,
            self.settings.batch,
            self.settings.request_timeout,
        )
        .await
    }

    /// Announces resources on every connected RM link (connections made later send the full
    /// list in their registration).
    pub(crate) async fn announce_resources(&self, ids: &[String]) -> Result<(), Error> {
        let links: Vec<Arc<Link>> = self.conns().iter().filter_map(|c| c.ready()).collect();
        for link in links {
            register_more(&link, &self.settings, ids).await?;
        }
        Ok(())
    }

    /// Connects to `conn`, then registers; returns the link, its I/O task and, for an RM, the
    /// resource ids the registration carried.
    async fn establish(
        &self,
        conn: &Conn,
    ) -> Result<
        (
            Arc<Link>,
            tokio::task::JoinHandle<ferrata_net::CloseReason>,
            Vec<String>,
        ),
        Error,
    > {
        let settings = &self.settings;
        let unreachable = |reason: String| Error::Unreachable {
            role: settings.role,
            addresses: conn.addr.clone(),
            reason,
        };
        let (host, port) = split_host_port(&conn.addr).ok_or_else(|| {
            Error::Config(ConfigError::BadAddress {
                addr: conn.addr.clone(),
            })
        })?;
        let stream =
            match tokio::time::timeout(settings.connect_timeout, TcpStream::connect((host, port)))
                .await
            {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return Err(unreachable(format!("connect failed: {error}"))),
                Err(_) => {
                    return Err(unreachable(format!(
                        "connect timed out after {:?}",
                        settings.connect_timeout
                    )));
                }
            };
        let _ = stream.set_nodelay(true);
        if let Ok(peer) = stream.peer_addr() {
            *conn.resolved.lock().unwrap_or_else(|p| p.into_inner()) = Some(peer);
        }
        let local_ip = stream.local_addr().map(|a| a.ip().to_string());
        let (link, io) = self
            .start_link(&conn.addr, host, stream)
            .await
            .map_err(unreachable)?;
        let resources = self
            .rm
            .as_ref()
            .map(|rm| rm.resource_ids())
            .unwrap_or_default();
        // Signed as the Java TM signs (also for the RM: the TC verifies a signed RM the same way).
        let signed = settings.credentials.as_ref().and_then(|c| {
            let ip = local_ip
                .as_deref()
                .unwrap_or(ferrata_proto::auth::FALLBACK_IP);
            ferrata_proto::auth::signed_extra_data(
                c.access_key(),
                c.secret_key(),
                &settings.group,
                ip,
                signing_timestamp_ms(),
            )
        });
        let message = match settings.role {
            Role::Tm => Message::RegisterTm(RegisterTmRequest {
                version: settings.version.clone(),
                application_id: settings.application_id.clone(),
                transaction_service_group: settings.group.clone(),
                // Java TMs always send extraData; a TC takes an empty one for a Go client.
                extra_data: signed.unwrap_or_else(|| format!("vgroup={}\n", settings.group)),
            }),
            Role::Rm => Message::RegisterRm(RegisterRmRequest {
                version: settings.version.clone(),
                application_id: settings.application_id.clone(),
                transaction_service_group: settings.group.clone(),
                extra_data: signed.unwrap_or_default(),
                resource_ids: resources.join(","),
            }),
        };
        let answer = link
            .request(
                Operation::Registration,
                message,
                false,
                settings.request_timeout,
            )
            .await;
        let identified = match answer {
            Ok(Message::RegisterTmResponse(r)) if settings.role == Role::Tm => {
                Ok((r.identified, r.version))
            }
            Ok(Message::RegisterRmResponse(r)) if settings.role == Role::Rm => {
                Ok((r.identified, r.version))
            }
            Ok(other) => Err(crate::unexpected(Operation::Registration, &other)),
            Err(Error::Timeout { timeout, .. }) => Err(unreachable(format!(
                "the TC accepted the connection but did not answer the registration within {timeout:?}"
            ))),
            Err(Error::ConnectionLost { .. }) => Err(unreachable(
                "the TC closed the connection during registration".into(),
            )),
            Err(other) => Err(other),
        };
        match identified {
            Ok((true, tc_version)) => {
                tracing::info!(addr = %conn.addr, role = %settings.role, %tc_version, "registered with the TC");
                Ok((link, io, resources))
            }
            Ok((false, tc_version)) => {
                io.abort();
                Err(Error::RegistrationRejected {
                    addr: conn.addr.clone(),
                    role: settings.role,
                    application_id: settings.application_id.clone(),
                    group: settings.group.clone(),
                    version: settings.version.clone(),
                    tc_version,
                })
            }
            Err(error) => {
                io.abort();
                Err(error)
            }
        }
    }
}

impl Pool {
    /// Starts the link on a connected socket: after a TLS handshake when TLS is configured.
    async fn start_link(
        &self,
        addr: &str,
        host: &str,
        stream: TcpStream,
    ) -> Result<(Arc<Link>, tokio::task::JoinHandle<ferrata_net::CloseReason>), String> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.settings.tls {
            let timeout = self.settings.connect_timeout;
            let stream = tokio::time::timeout(timeout, tls.connect(host, stream))
                .await
                .map_err(|_| format!("TLS handshake timed out after {timeout:?}"))??;
            let (reader, writer) = tokio::io::split(stream);
            return Ok(self.start_io(addr, reader, writer));
        }
        let _ = host;
        let (reader, writer) = stream.into_split();
        Ok(self.start_io(addr, reader, writer))
    }

    fn start_io<R, W>(
        &self,
        addr: &str,
        reader: R,
        writer: W,
    ) -> (Arc<Link>, tokio::task::JoinHandle<ferrata_net::CloseReason>)
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
        W: tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        link::start(
            reader,
            writer,
            addr.to_owned(),
            self.settings.clone(),
            self.stats.clone(),
            self.rm.clone(),
        )
    }
}

/// Registration timestamps (epoch ms) that never repeat within this process, so that two
/// registrations signed in the same millisecond do not carry the same digest (a TC with
/// authentication refuses a digest it has seen).
fn signing_timestamp_ms() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| {
            Some(now.max(last + 1))
        })
        .unwrap_or(now);
    now.max(previous + 1)
}

/// RegisterRM for resources added after the connection registered.
async fn register_more(link: &Link, settings: &Settings, ids: &[String]) -> Result<(), Error> {
    let message = Message::RegisterRm(RegisterRmRequest {
        version: settings.version.clone(),
        application_id: settings.application_id.clone(),
        transaction_service_group: settings.group.clone(),
        extra_data: String::new(),
        resource_ids: ids.join(","),
    });
    match link
        .request(
            Operation::ResourceRegistration,
            message,
            false,
            settings.request_timeout,
        )
        .await?
    {
        Message::RegisterRmResponse(r) if r.identified => Ok(()),
        Message::RegisterRmResponse(r) => Err(Error::RegistrationRejected {
            addr: link.addr.clone(),
            role: Role::Rm,
            application_id: settings.application_id.clone(),
            group: settings.group.clone(),
            version: settings.version.clone(),
            tc_version: r.version,
        }),
        other => Err(crate::unexpected(Operation::ResourceRegistration, &other)),
    }
}

/// Keeps one address connected: connect, register, serve until the connection ends, back off,
/// repeat — until shutdown, or until the registries stop listing the address.
async fn supervise(pool: Arc<Pool>, conn: Arc<Conn>, mut shutdown: watch::Receiver<bool>) {
    let settings = pool.settings.clone();
    let mut retired = conn.retired.subscribe();
    let mut backoff = settings.backoff_initial;
    // Why the loop ended: shutdown (false) or retirement (true).
    let retirement = loop {
        if *shutdown.borrow() {
            break false;
        }
        if *retired.borrow() {
            break true;
        }
        pool.set_phase(&conn, Phase::Connecting, true);
        let attempt = tokio::select! {
            attempt = pool.establish(&conn) => attempt,
            _ = shutdown.changed() => break false,
            _ = retired.changed() => break true,
        };
        match attempt {
            Ok((link, mut io, registered)) => {
                backoff = settings.backoff_initial;
                pool.stats
                    .connections_established
                    .fetch_add(1, Ordering::Relaxed);
                pool.set_phase(&conn, Phase::Ready(link.clone()), false);
                if let Some(rm) = &pool.rm {
                    // Resources registered while this connection was being set up.
                    let missing: Vec<String> = rm
                        .resource_ids()
                        .into_iter()
                        .filter(|id| !registered.contains(id))
                        .collect();
                    if !missing.is_empty() {
                        let (link, settings) = (link.clone(), settings.clone());
                        tokio::spawn(async move {
                            if let Err(error) = register_more(&link, &settings, &missing).await {
                                tracing::warn!(%error, "registering resources added during connect failed");
                            }
                        });
                    }
                }
                let reason = tokio::select! {
                    joined = &mut io => joined.map_or_else(|_| "connection task ended".to_owned(), |reason| reason.to_string()),
                    _ = shutdown.changed() => {
                        io.abort();
                        break false;
                    }
                    _ = retired.changed() => {
                        io.abort();
                        break true;
                    }
                };
                pool.set_phase(
                    &conn,
                    Phase::Failed(Error::Unreachable {
                        role: settings.role,
                        addresses: conn.addr.clone(),
                        reason: format!("connection lost ({reason}); reconnecting"),
                    }),
                    false,
                );
            }
            Err(error) => {
                tracing::warn!(addr = %conn.addr, role = %settings.role, %error, retry_in = ?backoff, "TC connection attempt failed");
                pool.set_phase(&conn, Phase::Failed(error), false);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = conn.poke.notified() => {}
            _ = shutdown.changed() => break false,
            _ = retired.changed() => break true,
        }
        backoff = (backoff * 2).min(settings.backoff_max.max(settings.backoff_initial));
    };
    if let Phase::Ready(link) = &conn.lock().phase {
        link.fail_all();
    }
    let end = if retirement {
        Error::Unreachable {
            role: settings.role,
            addresses: conn.addr.clone(),
            reason: "no longer listed by the registry".to_owned(),
        }
    } else {
        Error::Shutdown
    };
    pool.set_phase(&conn, Phase::Failed(end), false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xid_names_its_tc() {
        assert_eq!(xid_address("10.0.0.1:8091:123"), Some("10.0.0.1:8091"));
        assert_eq!(xid_address("[::1]:8091:123"), Some("[::1]:8091"));
        assert_eq!(xid_address("garbage"), None);
        assert_eq!(xid_address("host:notaport:1"), None);
    }
}
