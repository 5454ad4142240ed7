//! The start-up probe (exec → first accepted connection → first successful GlobalBegin) and the
//! open-sessions load (N global transactions begun and left open) of scripts/bench.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use ferrata_proto::{CodecContext, GlobalBeginRequest, GlobalStatusRequest, Message, MsgType};
use tokio::net::TcpStream;

use crate::procfs::{self, Pid};
use crate::results::{HoldResult, ProbeResult};
use crate::transport::{ClientIdentity, Conn, Inbound};

fn identity(version: &str) -> ClientIdentity {
    ClientIdentity {
        application_id: "ferrata-bench-sessions".into(),
        transaction_service_group: "default_tx_group".into(),
        version: version.to_owned(),
    }
}

fn epoch_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

fn ms_since(t0_us: u128, at_us: u128) -> f64 {
    (at_us.saturating_sub(t0_us) as f64 / 100.0).round() / 10.0
}

/// A registered TM connection.
async fn tm(addr: SocketAddr, version: &str, io_timeout: Duration) -> anyhow::Result<Conn> {
    let mut conn = Conn::connect(addr, CodecContext::default()).await?;
    conn.register_tm(&identity(version), io_timeout).await?;
    Ok(conn)
}

fn begin_request(timeout_ms: i32, name: &str) -> Message {
    Message::GlobalBegin(GlobalBeginRequest {
        timeout_ms,
        transaction_name: name.to_owned(),
    })
}

/// Ok(xid) or the TC's message.
fn begin_answer(message: Message) -> Result<String, String> {
    match message {
        Message::GlobalBeginResponse(r) if r.result.is_success() => Ok(r.xid),
        Message::GlobalBeginResponse(r) => Err(if r.result.msg.is_empty() {
            "begin failed".to_owned()
        } else {
            r.result.msg
        }),
        other => Err(format!("unexpected reply {}", other.name())),
    }
}

/// `ferrata-bench probe`: how a server started.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// The server's address (loopback only).
    #[arg(long)]
    pub target: SocketAddr,
    /// Stop at the first accepted connection (servers that do not speak Seata).
    #[arg(long)]
    pub accept_only: bool,
    /// After the first begin, ask GlobalStatus for the XIDs in this file (one a line).
    #[arg(long)]
    pub check_xids: Option<PathBuf>,
    /// The server's log, quoted when it exits during start-up.
    #[arg(long)]
    pub log: Option<PathBuf>,
    #[arg(long, default_value_t = 120.0)]
    pub timeout_secs: f64,
    #[arg(long, default_value = "2.0.0")]
    pub client_version: String,
    /// Where to write the result (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// Polls `connect()` every 1 ms from `t0_us` (epoch microseconds of the server's exec) while
/// `server` lives; then registers a TM and begins one transaction.
pub async fn probe(args: &ProbeArgs, t0_us: u128, server: Pid) -> anyhow::Result<ProbeResult> {
    crate::cli::require_loopback(args.target)?;
    let deadline = t0_us + (args.timeout_secs * 1e6) as u128;
    let io_timeout = Duration::from_secs(30);
    let mut result = ProbeResult::default();
    let mut last_error = "no attempt".to_owned();
    let mut accepted_at = None;
    while epoch_us() < deadline {
        if !procfs::alive(server) {
            let tail = args
                .log
                .as_deref()
                .map(|log| format!("; the end of its log: {}", procfs::tail_of(log, 8)))
                .unwrap_or_default();
            last_error = format!("the server process exited during start-up{tail}");
            result.reason = Some(last_error);
            return Ok(result);
        }
        result.attempts += 1;
        match tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(args.target)).await {
            Ok(Ok(stream)) => drop(stream),
            Ok(Err(error)) => {
                last_error = format!("connect: {error}");
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            Err(_) => {
                last_error = "connect: timed out".to_owned();
                continue;
            }
        }
        let at = *accepted_at.get_or_insert_with(epoch_us);
        result.ms_to_accept = Some(ms_since(t0_us, at));
        if args.accept_only {
            result.ok = true;
            return Ok(result);
        }
        match first_begin(args, io_timeout).await {
            Ok((begun_at, statuses)) => {
                result.ok = true;
                result.ms_to_first_begin = Some(ms_since(t0_us, begun_at));
                result.xid_status = statuses;
                return Ok(result);
            }
            Err(error) => {
                last_error = format!("{error:#}");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    let awaited = if args.accept_only {
        "accepted connection"
    } else {
        "successful begin"
    };
    result.reason = Some(format!(
        "no {awaited} within {}s; last error: {last_error}",
        args.timeout_secs
    ));
    Ok(result)
}

type XidStatus = BTreeMap<String, Option<u8>>;

async fn first_begin(args: &ProbeArgs, io_timeout: Duration) -> anyhow::Result<(u128, XidStatus)> {
    let mut conn = tm(args.target, &args.client_version, io_timeout).await?;
    let answer = conn
        .call(&begin_request(60_000, "bench-probe"), io_timeout)
        .await?;
    begin_answer(answer).map_err(|e| anyhow::anyhow!("begin: {e}"))?;
    let begun_at = epoch_us();
    let mut statuses = BTreeMap::new();
    if let Some(path) = &args.check_xids {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        for xid in text.split_whitespace() {
            let request = Message::GlobalStatus(GlobalStatusRequest {
                xid: xid.to_owned(),
                extra_data: String::new(),
            });
            let status = match conn.call(&request, io_timeout).await? {
                Message::GlobalStatusResponse(r) if r.result.is_success() => {
                    Some(r.global_status.code())
                }
                _ => None,
            };
            statuses.insert(xid.to_owned(), status);
        }
    }
    Ok((begun_at, statuses))
}

/// `ferrata-bench hold`: begin N global transactions and leave them open.
#[derive(Debug, Clone, clap::Args)]
pub struct HoldArgs {
    #[arg(long)]
    pub target: SocketAddr,
    #[arg(long, default_value_t = 100_000)]
    pub sessions: u64,
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Begins sent before their answers are read, per connection.
    #[arg(long, default_value_t = 128)]
    pub window: usize,
    /// Global transaction timeout: long enough that none ends while measured.
    #[arg(long, default_value_t = 3_600_000)]
    pub timeout_ms: i32,
    #[arg(long, default_value = "2.0.0")]
    pub client_version: String,
    /// The server: its RSS is read before (idle) and 2 s after the sessions are open.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Writes a sample of the open XIDs here (one per connection).
    #[arg(long)]
    pub xids_out: Option<PathBuf>,
    /// Where to write the result (JSON).
    #[arg(long)]
    pub out: PathBuf,
}

/// One connection's share of the sessions.
#[derive(Debug, Default)]
struct HoldPart {
    begun: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    xid: Option<String>,
}

fn count(errors: &mut BTreeMap<String, u64>, text: &str) {
    *errors.entry(text.chars().take(120).collect()).or_default() += 1;
}

async fn hold_part(args: HoldArgs, n: u64) -> HoldPart {
    let mut part = HoldPart::default();
    if let Err(error) = hold_on(&args, n, &mut part).await {
        count(&mut part.errors, &format!("{error:#}"));
    }
    part
}

async fn hold_on(args: &HoldArgs, n: u64, part: &mut HoldPart) -> anyhow::Result<()> {
    let io_timeout = Duration::from_secs(30);
    let mut conn = tm(args.target, &args.client_version, io_timeout).await?;
    let request = begin_request(args.timeout_ms, "bench-hold");
    let mut left = n;
    while left > 0 {
        let batch = left.min(args.window.max(1) as u64);
        for _ in 0..batch {
            let id = conn.next_id();
            conn.queue(MsgType::Request, id, &request);
        }
        conn.flush().await?;
        let mut answered = 0;
        while answered < batch {
            while answered < batch
                && let Some(inbound) = conn.next_inbound()?
            {
                match inbound {
                    Inbound::Response { message, .. } => {
                        answered += 1;
                        match begin_answer(message) {
                            Ok(xid) => {
                                part.begun += 1;
                                part.xid.get_or_insert(xid);
                            }
                            Err(text) => {
                                part.failed += 1;
                                count(&mut part.errors, &text);
                            }
                        }
                    }
                    Inbound::Ping { id } => conn.queue_pong(id),
                    _ => {}
                }
            }
            if answered < batch {
                conn.flush().await?;
                let read = tokio::time::timeout(io_timeout, conn.read_more())
                    .await
                    .context("no answer within 30 s")??;
                if read == 0 {
                    bail!("connection closed by the TC");
                }
            }
        }
        left -= batch;
    }
    Ok(())
}

/// Runs `hold` and reads the server's memory around it.
pub async fn hold(args: &HoldArgs) -> anyhow::Result<HoldResult> {
    crate::cli::require_loopback(args.target)?;
    let connections = args.connections.max(1);
    let server = args.server_pid.map(Pid::Other);
    let mut result = HoldResult {
        sessions_requested: args.sessions,
        connections,
        timeout_ms: args.timeout_ms,
        ..HoldResult::default()
    };
    if let Some(pid) = server {
        result.rss_idle_kb = procfs::status_kb(pid, "VmRSS");
        procfs::reset_hwm(pid);
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..connections {
        let n = crate::schedule::share(args.sessions as usize, connections, lane) as u64;
        tasks.spawn(hold_part(args.clone(), n));
    }
    let mut xids = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let part = joined.context("a hold task failed")?;
        result.begun += part.begun;
        result.failed += part.failed;
        for (text, n) in part.errors {
            *result.errors.entry(text).or_default() += n;
        }
        xids.extend(part.xid);
    }
    result.elapsed_secs = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    if result.elapsed_secs > 0.0 {
        result.begins_per_sec =
            Some((result.begun as f64 / result.elapsed_secs * 10.0).round() / 10.0);
    }
    if let Some(path) = &args.xids_out {
        std::fs::write(path, xids.join("\n") + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(pid) = server {
        // Let the group commit and any background work settle before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        result.rss_with_sessions_kb = procfs::status_kb(pid, "VmRSS");
        result.rss_peak_while_holding_kb = procfs::status_kb(pid, "VmHWM");
    }
    Ok(result)
}
