//! Test support: a small Seata-protocol client built on ferrata-proto (requests with
//! correlation ids, an RM side answering phase-2 requests), and this crate's server binary run
//! through `ferrata_testkit::TcProcess`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use ferrata_net::{
    CloseReason, Connection, ConnectionConfig, FrameBuffer, Outbound, OutboundEncoder,
};
use ferrata_proto::{
    BranchCommitResponse, BranchRegisterRequest, BranchRollbackResponse, BranchStatus, BranchType,
    CodecContext, GlobalBeginRequest, GlobalCommitRequest, GlobalRollbackRequest, GlobalStatus,
    GlobalStatusRequest, Message, MsgType, RegisterRmRequest, RegisterTmRequest, ResultInfo,
    decode_body, encode_message,
};
use ferrata_testkit::TcProcess;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

pub mod proxy;

pub const RESOURCE: &str = "jdbc:mysql://127.0.0.1:3306/ferrata_test";

/// Phase-2 requests an RM received: (xid, branch id, commit?).
pub type Phase2Log = Arc<Mutex<Vec<(String, i64, bool)>>>;

type Waiters = Arc<Mutex<HashMap<i32, oneshot::Sender<Message>>>>;

/// One client connection.
pub struct Client {
    out: mpsc::Sender<Outbound>,
    waiters: Waiters,
    next_id: AtomicI32,
    pub phase2: Phase2Log,
    /// Owns the connection: aborting it closes the socket.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Client {
    /// Dropping a client closes its connection.
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How test peers frame: the server's limit, no timers.
pub const PEER_CONNECTION: ConnectionConfig = ConnectionConfig {
    max_frame_len: 8 << 20,
    read_idle: None,
    write_timeout: None,
    heartbeat_after: None,
};

impl Client {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let (out, rx) = mpsc::channel(1024);
        let id = ferrata_net::next_connection_id();
        let mut conn = Connection::open(
            reader,
            writer,
            rx,
            OutboundEncoder,
            &PEER_CONNECTION,
            addr,
            id,
        );
        let waiters: Waiters = Arc::default();
        let phase2: Phase2Log = Arc::default();
        let reply = out.clone();
        let (w, p) = (waiters.clone(), phase2.clone());
        let task = tokio::spawn(async move {
            let ctx = CodecContext::default();
            while let Ok(frame) = conn.next_frame().await {
                if frame.msg_type == MsgType::HeartbeatResponse {
                    continue;
                }
                let Ok(message) = decode_body(&frame, &ctx, 8 << 20) else {
                    continue;
                };
                let answer = match (frame.msg_type, message) {
                    (MsgType::Response, message) => {
                        if let Some(tx) = w.lock().expect("waiters").remove(&frame.request_id) {
                            let _ = tx.send(message);
                        }
                        continue;
                    }
                    (_, Message::BranchCommit(r)) => phase2_done(&p, r.xid, r.branch_id, true),
                    (_, Message::BranchRollback(r)) => phase2_done(&p, r.xid, r.branch_id, false),
                    _ => continue,
                };
                let response = Outbound::message(MsgType::Response, frame.request_id, answer, ctx);
                if reply.send(response).await.is_err() {
                    break;
                }
            }
            // Wake every waiter: the connection is gone.
            w.lock().expect("waiters").clear();
        });
        Ok(Client {
            out,
            waiters,
            next_id: AtomicI32::new(1),
            phase2,
            task,
        })
    }

    /// Sends a request and waits (bounded) for its response.
    pub async fn call(&self, message: Message) -> anyhow::Result<Message> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters.lock().expect("waiters").insert(id, tx);
        let request = Outbound::message(MsgType::Request, id, message, CodecContext::default());
        if self.out.send(request).await.is_err() {
            bail!("connection closed");
        }
        match tokio::time::timeout(Duration::from_secs(20), rx).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => bail!("connection closed before the response"),
            Err(_) => bail!("no response within 20 s"),
        }
    }

    pub async fn register_tm(&self, application_id: &str) -> anyhow::Result<()> {
        registered(self.call(tm_registration(application_id)).await?)
    }

    pub async fn register_rm(&self, application_id: &str, resources: &str) -> anyhow::Result<()> {
        registered(
            self.call(rm_registration(application_id, resources))
                .await?,
        )
    }

    pub async fn begin(&self, timeout_ms: i32) -> anyhow::Result<String> {
        self.begin_named(timeout_ms, "test").await
    }

    pub async fn begin_named(&self, timeout_ms: i32, name: &str) -> anyhow::Result<String> {
        let request = GlobalBeginRequest {
            timeout_ms,
            transaction_name: name.into(),
        };
        match self.call(Message::GlobalBegin(request)).await? {
            Message::GlobalBeginResponse(r) if r.result.is_success() => Ok(r.xid),
            other => bail!("begin failed: {other:?}"),
        }
    }

    /// Registers an AT branch; Ok(Err(result)) is a refusal such as a lock conflict.
    pub async fn register_branch(
        &self,
        xid: &str,
        lock_key: &str,
    ) -> anyhow::Result<Result<i64, ResultInfo>> {
        let request = BranchRegisterRequest {
            xid: xid.into(),
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            lock_key: lock_key.into(),
            application_data: String::new(),
        };
        match self.call(Message::BranchRegister(request)).await? {
            Message::BranchRegisterResponse(r) if r.result.is_success() => Ok(Ok(r.branch_id)),
            Message::BranchRegisterResponse(r) => Ok(Err(r.result)),
            other => bail!("unexpected answer to branch register: {other:?}"),
        }
    }

    pub async fn commit(&self, xid: &str) -> anyhow::Result<GlobalStatus> {
        let request = GlobalCommitRequest {
            xid: xid.into(),
            extra_data: String::new(),
        };
        match self.call(Message::GlobalCommit(request)).await? {
            Message::GlobalCommitResponse(r) if r.result.is_success() => Ok(r.global_status),
            other => bail!("commit failed: {other:?}"),
        }
    }

    pub async fn rollback(&self, xid: &str) -> anyhow::Result<GlobalStatus> {
        let request = GlobalRollbackRequest {
            xid: xid.into(),
            extra_data: String::new(),
        };
        match self.call(Message::GlobalRollback(request)).await? {
            Message::GlobalRollbackResponse(r) if r.result.is_success() => Ok(r.global_status),
            other => bail!("rollback failed: {other:?}"),
        }
    }

    /// The phase-2 requests this RM received for `xid`, in order (true = commit).
    pub fn phase2_of(&self, xid: &str) -> Vec<bool> {
        self.phase2
            .lock()
            .expect("log")
            .iter()
            .filter(|(x, _, _)| x == xid)
            .map(|(_, _, commit)| *commit)
            .collect()
    }

    /// GlobalLockQuery of AT rows of [`RESOURCE`] for `xid`: whether they are free for it.
    pub async fn lockable(&self, xid: &str, lock_key: &str) -> bool {
        let query = ferrata_proto::GlobalLockQueryRequest {
            xid: xid.into(),
            branch_type: BranchType::At,
            resource_id: RESOURCE.into(),
            lock_key: lock_key.into(),
            application_data: String::new(),
        };
        match self.call(Message::GlobalLockQuery(query)).await {
            Ok(Message::GlobalLockQueryResponse(r)) if r.result.is_success() => r.lockable,
            other => panic!("lock query answer: {other:?}"),
        }
    }

    pub async fn status(&self, xid: &str) -> anyhow::Result<GlobalStatus> {
        let request = GlobalStatusRequest {
            xid: xid.into(),
            extra_data: String::new(),
        };
        match self.call(Message::GlobalStatus(request)).await? {
            Message::GlobalStatusResponse(r) if r.result.is_success() => Ok(r.global_status),
            other => bail!("status failed: {other:?}"),
        }
    }
}

/// Logs a phase-2 request and answers it done.
fn phase2_done(log: &Phase2Log, xid: String, branch_id: i64, commit: bool) -> Message {
    log.lock()
        .expect("log")
        .push((xid.clone(), branch_id, commit));
    let result = ResultInfo::success();
    if commit {
        Message::BranchCommitResponse(BranchCommitResponse {
            result,
            xid,
            branch_id,
            branch_status: BranchStatus::PhaseTwoCommitted,
        })
    } else {
        Message::BranchRollbackResponse(BranchRollbackResponse {
            result,
            xid,
            branch_id,
            branch_status: BranchStatus::PhaseTwoRollbacked,
        })
    }
}

/// A Java 2.6.0 TM's registration.
pub fn tm_registration(application_id: &str) -> Message {
    Message::RegisterTm(RegisterTmRequest {
        version: "2.6.0".into(),
        application_id: application_id.into(),
        transaction_service_group: "default_tx_group".into(),
        extra_data: "vgroup=default_tx_group\n".into(),
    })
}

/// A Java 2.6.0 RM's registration of `resources` (comma-separated).
pub fn rm_registration(application_id: &str, resources: &str) -> Message {
    Message::RegisterRm(RegisterRmRequest {
        version: "2.6.0".into(),
        application_id: application_id.into(),
        transaction_service_group: "default_tx_group".into(),
        extra_data: String::new(),
        resource_ids: resources.into(),
    })
}

/// Ok when the answer accepts a TM or RM registration.
fn registered(answer: Message) -> anyhow::Result<()> {
    match answer {
        Message::RegisterTmResponse(r) if r.identified => Ok(()),
        Message::RegisterRmResponse(r) if r.identified => Ok(()),
        other => bail!("registration refused: {other:?}"),
    }
}

pub fn frame_of(msg_type: MsgType, id: i32, message: &Message) -> BytesMut {
    let mut buf = BytesMut::new();
    encode_message(
        msg_type,
        id,
        1,
        0,
        message,
        &CodecContext::default(),
        &mut buf,
    )
    .expect("encodable");
    buf
}

/// This crate's own `ferrata-server` binary on 127.0.0.1 (see [`TcProcess`]), killed on drop.
pub struct ServerProcess {
    pub addr: SocketAddr,
    process: TcProcess,
}

impl ServerProcess {
    /// Starts the server on `port` (0 = any free port, read back from its log), waiting up to
    /// 10 s for it to report ready.
    pub fn start(data_dir: &Path, port: u16, log: &Path) -> anyhow::Result<ServerProcess> {
        let process = TcProcess::start_within(
            Path::new(env!("CARGO_BIN_EXE_ferrata-server")),
            data_dir,
            port,
            log,
            Duration::from_secs(10),
        )?;
        Ok(ServerProcess {
            addr: process.addr(),
            process,
        })
    }

    /// Its admin listener (metrics, health), on a free loopback port.
    pub fn admin_addr(&self) -> SocketAddr {
        self.process
            .admin_addr()
            .expect("the server reports its admin listener")
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        self.process.kill();
    }

    /// Whether the server process has ended.
    pub fn has_exited(&mut self) -> bool {
        self.process.has_exited()
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    ferrata_testkit::eventually_every(limit, Duration::from_millis(100), check).await
}

impl ServerProcess {
    /// Starts the server on `listen` (port 0 = any free port) with `config_toml` as its
    /// configuration file, data and log under `dir`.
    pub fn start_with_config(
        dir: &Path,
        listen: SocketAddr,
        config_toml: &str,
    ) -> anyhow::Result<ServerProcess> {
        let config = dir.join("ferrata.toml");
        std::fs::write(&config, config_toml).context("write the test configuration")?;
        let process = TcProcess::start_with(
            Path::new(env!("CARGO_BIN_EXE_ferrata-server")),
            &dir.join("data"),
            listen,
            &dir.join("server.log"),
            Duration::from_secs(10),
            vec!["--config".into(), config.into_os_string()],
        )?;
        Ok(ServerProcess {
            addr: process.addr(),
            process,
        })
    }

    /// A node of a cluster on the database `url`, in `schema`, with a node lease of
    /// `lease_ms`, listening on `listen` (port 0 = any free port).
    pub fn on_database(
        dir: &Path,
        listen: SocketAddr,
        url: &str,
        schema: &str,
        lease_ms: u64,
    ) -> ServerProcess {
        let config = format!(
            "[store]\nurl = \"{url}\"\nschema = \"{schema}\"\nnode_lease_ms = {lease_ms}\n"
        );
        ServerProcess::start_with_config(dir, listen, &config).expect("node starts")
    }

    /// Two nodes of a cluster on the database of `var` (FERRATA_POSTGRES_URL, FERRATA_MYSQL_URL),
    /// in a schema named after `schema` and this process, on free loopback ports.
    pub fn pair_on_database(var: &str, schema: &str, lease_ms: u64) -> NodePair {
        let url = ferrata_testkit::database_url(var);
        let schema = format!("{schema}_{}", std::process::id());
        let dirs = [
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        ];
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let a = ServerProcess::on_database(dirs[0].path(), any, &url, &schema, lease_ms);
        let b = ServerProcess::on_database(dirs[1].path(), any, &url, &schema, lease_ms);
        NodePair { a, b, _dirs: dirs }
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }
}

/// Two nodes on one database; their directories go with them.
pub struct NodePair {
    pub a: ServerProcess,
    pub b: ServerProcess,
    _dirs: [tempfile::TempDir; 2],
}

/// An RM (application `warehouse`, resource [`DIRTY`]) whose branch's rollback fails for good:
/// `tm` begins a transaction, the RM registers an AT branch on `lock_key`, `tm` rolls back and
/// the RM answers PhaseTwoRollbackFailedUnretryable. The transaction is left RollbackFailed
/// with the row locked. Returns its XID, the branch id and the RM's connection.
pub async fn dirty_rollback(
    server: &ServerProcess,
    tm: &Arc<Client>,
    lock_key: &str,
) -> (String, i64, RawConn) {
    let mut rm = RawConn::connect(server.addr).await.expect("dirty rm");
    rm.register_rm(1, "warehouse", DIRTY)
        .await
        .expect("register");
    let xid = tm.begin(600_000).await.expect("begin");
    let register = Message::BranchRegister(ferrata_proto::BranchRegisterRequest {
        xid: xid.clone(),
        branch_type: BranchType::At,
        resource_id: DIRTY.into(),
        lock_key: lock_key.into(),
        application_data: String::new(),
    });
    let branch_id = match rm.call(2, &register).await.expect("register") {
        Message::BranchRegisterResponse(r) if r.result.is_success() => r.branch_id,
        other => panic!("register answer: {other:?}"),
    };
    let rollback = {
        let (tm, xid) = (tm.clone(), xid.clone());
        tokio::spawn(async move { tm.rollback(&xid).await })
    };
    let request = rm
        .next_frame()
        .await
        .expect("frame")
        .expect("a rollback request");
    let answer = Message::BranchRollbackResponse(BranchRollbackResponse {
        result: ResultInfo::success(),
        xid: xid.clone(),
        branch_id,
        branch_status: BranchStatus::PhaseTwoRollbackFailedUnretryable,
    });
    rm.send(MsgType::Response, request.request_id, &answer)
        .await
        .expect("answer");
    let status = rollback.await.expect("join").expect("answered");
    assert_eq!(status, GlobalStatus::RollbackFailed);
    (xid, branch_id, rm)
}

/// The resource of [`dirty_rollback`]'s RM.
pub const DIRTY: &str = "jdbc:mysql://127.0.0.1:3306/dirty";

/// A raw connection: the test decides what to send and reads every frame itself (an RM that
/// does not answer, a stranger, a client that never reads).
pub struct RawConn {
    pub stream: TcpStream,
    frames: FrameBuffer,
    /// Frames read while waiting for something else.
    pub seen: Vec<ferrata_proto::Frame>,
}

impl RawConn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<RawConn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(RawConn {
            stream,
            frames: FrameBuffer::new(PEER_CONNECTION.max_frame_len, 16 * 1024),
            seen: Vec::new(),
        })
    }

    pub async fn send(
        &mut self,
        msg_type: MsgType,
        id: i32,
        message: &Message,
    ) -> anyhow::Result<()> {
        self.stream
            .write_all(&frame_of(msg_type, id, message))
            .await?;
        Ok(())
    }

    /// The next frame, within 10 s; `None` when the server closed the connection.
    pub async fn next_frame(&mut self) -> anyhow::Result<Option<ferrata_proto::Frame>> {
        let idle = Duration::from_secs(10);
        match ferrata_net::read_frame(&mut self.stream, &mut self.frames, Some(idle)).await {
            Ok(frame) => Ok(Some(frame)),
            Err(CloseReason::Idle(_)) => bail!("no frame within 10 s"),
            Err(CloseReason::Frame(error)) => Err(error.into()),
            Err(_) => Ok(None),
        }
    }

    /// Sends a request and returns its response, keeping other frames in `seen`.
    pub async fn call(&mut self, id: i32, message: &Message) -> anyhow::Result<Message> {
        self.send(MsgType::Request, id, message).await?;
        loop {
            let Some(frame) = self.next_frame().await? else {
                bail!("connection closed before the response to {id}");
            };
            if frame.msg_type == MsgType::Response && frame.request_id == id {
                return Ok(decode_body(&frame, &CodecContext::default(), 8 << 20)?);
            }
            self.seen.push(frame);
        }
    }

    /// Waits (10 s at most) for the server to close the connection, discarding what it sends.
    pub async fn closed_by_server(&mut self) -> bool {
        loop {
            match self.next_frame().await {
                Ok(None) => return true,
                Ok(Some(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    pub async fn register_tm(&mut self, id: i32, application_id: &str) -> anyhow::Result<()> {
        registered(self.call(id, &tm_registration(application_id)).await?)
    }

    pub async fn register_rm(
        &mut self,
        id: i32,
        application_id: &str,
        resources: &str,
    ) -> anyhow::Result<()> {
        registered(
            self.call(id, &rm_registration(application_id, resources))
                .await?,
        )
    }

    /// Registers a TCC branch of `xid` on `resource` (request id `id`); its branch id.
    pub async fn register_tcc_branch(
        &mut self,
        id: i32,
        xid: &str,
        resource: &str,
    ) -> anyhow::Result<i64> {
        let request = Message::BranchRegister(ferrata_proto::BranchRegisterRequest {
            xid: xid.into(),
            branch_type: ferrata_proto::BranchType::Tcc,
            resource_id: resource.into(),
            lock_key: String::new(),
            application_data: String::new(),
        });
        match self.call(id, &request).await? {
            Message::BranchRegisterResponse(r) if r.result.is_success() => Ok(r.branch_id),
            other => bail!("branch register answer: {other:?}"),
        }
    }
}
