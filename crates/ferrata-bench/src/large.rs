//! One very large global transaction against a real ferrata-server: register N TCC branches,
//! commit them (phase 2 waits for every branch), then again with the server killed (SIGKILL)
//! after registration, measuring the restart (log replay of the N-branch session) and the
//! commit of the recovered transaction. Each round starts a fresh server in its own directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrata_proto::{
    BranchRegisterRequest, BranchType, CodecContext, GlobalBeginRequest, GlobalCommitRequest,
    GlobalStatus, Message, MsgType,
};
use ferrata_testkit::TcProcess;
use serde::Serialize;

use crate::transport::{ClientIdentity, Conn, Inbound, phase_two_answer};

const TIMEOUT: Duration = Duration::from_secs(600);
/// Registrations sent before their answers are read.
const REGISTER_WINDOW: usize = 512;

/// What to measure.
#[derive(Debug, Clone)]
pub struct LargeConfig {
    pub server_bin: PathBuf,
    pub branches: usize,
    /// Branches are spread round-robin over this many TCC resources.
    pub resources: usize,
    /// Seata's `server.enableParallelHandleBranch` (requires a server that knows the key).
    pub parallel: bool,
    /// Pass a configuration file raising `limits.max_branches_per_transaction` (false for
    /// servers that predate the limit).
    pub configure_limits: bool,
    pub rounds: usize,
}

/// One round's timings, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LargeRound {
    pub register_ms: f64,
    pub commit_ms: f64,
    /// SIGKILL to "ready" of the restarted server, which replays the N-branch session.
    pub restart_ms: f64,
    /// Commit of the recovered N-branch transaction after the restart.
    pub recovered_commit_ms: f64,
}

/// What `bench-large` prints (read by scripts/bench-compare): every round and the medians.
#[derive(Debug, Clone, Serialize)]
pub struct LargeSummary {
    pub branches: usize,
    pub resources: usize,
    pub parallel: bool,
    pub rounds: Vec<LargeRound>,
    pub median_ms: LargeMedians,
}

/// Median of each timing over the rounds, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LargeMedians {
    pub register: f64,
    pub commit: f64,
    pub restart: f64,
    pub recovered_commit: f64,
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn identity() -> ClientIdentity {
    ClientIdentity {
        application_id: "bench-large".into(),
        transaction_service_group: "default_tx_group".into(),
        version: "2.0.0".into(),
    }
}

fn resource(i: usize) -> String {
    format!("bench-large-tcc-{i}")
}

async fn connect_tm(addr: SocketAddr) -> anyhow::Result<Conn> {
    let mut tm = Conn::connect(addr, CodecContext::default()).await?;
    tm.register_tm(&identity(), TIMEOUT).await?;
    Ok(tm)
}

async fn connect_rm(addr: SocketAddr, resources: usize) -> anyhow::Result<Conn> {
    let mut rm = Conn::connect(addr, CodecContext::default()).await?;
    let all: Vec<String> = (0..resources).map(resource).collect();
    rm.register_rm(&identity(), &all.join(","), TIMEOUT).await?;
    Ok(rm)
}

async fn begin(tm: &mut Conn) -> anyhow::Result<String> {
    let request = Message::GlobalBegin(GlobalBeginRequest {
        timeout_ms: 600_000,
        transaction_name: "bench-large".into(),
    });
    match tm.call(&request, TIMEOUT).await? {
        Message::GlobalBeginResponse(r) if r.result.is_success() => Ok(r.xid),
        other => bail!("begin failed: {other:?}"),
    }
}

/// Registers `n` TCC branches from `rm`, pipelined.
async fn register_branches(
    rm: &mut Conn,
    xid: &str,
    n: usize,
    resources: usize,
) -> anyhow::Result<()> {
    let mut sent = 0;
    let mut answered = 0;
    while answered < n {
        while sent < n && sent - answered < REGISTER_WINDOW {
            let request = Message::BranchRegister(BranchRegisterRequest {
                xid: xid.to_owned(),
                branch_type: BranchType::Tcc,
                resource_id: resource(sent % resources),
                lock_key: String::new(),
                application_data: String::new(),
            });
            let id = rm.next_id();
            rm.queue(MsgType::Request, id, &request);
            sent += 1;
        }
        rm.flush().await?;
        if rm.read_more().await? == 0 {
            bail!("the TC closed the RM connection");
        }
        while let Some(inbound) = rm.next_inbound()? {
            match inbound {
                Inbound::Response {
                    message: Message::BranchRegisterResponse(r),
                    ..
                } => {
                    if !r.result.is_success() {
                        bail!("branch registration refused: {:?}", r.result);
                    }
                    answered += 1;
                }
                Inbound::Ping { id } => rm.queue_pong(id),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Answers every phase-2 request at once, until the connection closes.
async fn serve_phase_two(mut rm: Conn) -> anyhow::Result<()> {
    loop {
        while let Some(inbound) = rm.next_inbound()? {
            match inbound {
                Inbound::Request { id, message } => {
                    if let Some((_, answer)) = phase_two_answer(message) {
                        rm.queue(MsgType::Response, id, &answer);
                    }
                }
                Inbound::Ping { id } => rm.queue_pong(id),
                _ => {}
            }
        }
        rm.flush().await?;
        if rm.read_more().await? == 0 {
            return Ok(());
        }
    }
}

async fn commit(tm: &mut Conn, xid: &str) -> anyhow::Result<()> {
    let request = Message::GlobalCommit(GlobalCommitRequest {
        xid: xid.to_owned(),
        extra_data: String::new(),
    });
    match tm.call(&request, TIMEOUT).await? {
        Message::GlobalCommitResponse(r)
            if r.result.is_success() && r.global_status == GlobalStatus::Committed =>
        {
            Ok(())
        }
        other => bail!("commit did not finish: {other:?}"),
    }
}

fn start(config: &LargeConfig, dir: &std::path::Path) -> anyhow::Result<TcProcess> {
    let mut args = Vec::new();
    if config.configure_limits {
        let toml = format!(
            "[coordinator]\nparallel_phase2 = {}\n[limits]\nmax_branches_per_transaction = {}\n",
            config.parallel, config.branches
        );
        let path = dir.join("ferrata.toml");
        std::fs::write(&path, toml).context("write the server configuration")?;
        args = vec!["--config".into(), path.into_os_string()];
    }
    TcProcess::start_with(
        &config.server_bin,
        &dir.join("data"),
        "127.0.0.1:0".parse()?,
        &dir.join("server.log"),
        TIMEOUT,
        args,
    )
}

/// Runs one round against a fresh server.
pub async fn round(config: &LargeConfig) -> anyhow::Result<LargeRound> {
    let dir = tempfile::tempdir().context("temporary directory")?;
    let mut server = start(config, dir.path())?;
    let addr = server.addr();

    let mut tm = connect_tm(addr).await?;
    let mut rm = connect_rm(addr, config.resources).await?;
    let xid = begin(&mut tm).await?;
    let started = Instant::now();
    register_branches(&mut rm, &xid, config.branches, config.resources).await?;
    let register_ms = ms(started);
    let serving = tokio::spawn(serve_phase_two(rm));
    let started = Instant::now();
    commit(&mut tm, &xid).await?;
    let commit_ms = ms(started);
    serving.abort();

    // The same again, but the server is killed once every branch is registered.
    let mut rm = connect_rm(addr, config.resources).await?;
    let xid = begin(&mut tm).await?;
    register_branches(&mut rm, &xid, config.branches, config.resources).await?;
    drop((tm, rm));
    let started = Instant::now();
    server.restart()?;
    let restart_ms = ms(started);
    let rm = connect_rm(addr, config.resources).await?;
    let serving = tokio::spawn(serve_phase_two(rm));
    let mut tm = connect_tm(addr).await?;
    let started = Instant::now();
    commit(&mut tm, &xid).await?;
    let recovered_commit_ms = ms(started);
    serving.abort();
    Ok(LargeRound {
        register_ms,
        commit_ms,
        restart_ms,
        recovered_commit_ms,
    })
}
