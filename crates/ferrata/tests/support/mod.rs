//! Test support: builds and runs the real `ferrata-server` on 127.0.0.1, client configs with
//! short timeouts, a recording branch handler, and a bounded `eventually` poll.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchStatus, ClientConfig};

/// The server binary: `FERRATA_BIN`, or the workspace's target/debug build, which this builds
/// once per test process with `cargo build -p ferrata-server` so it is never stale or missing.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("FERRATA_BIN") {
            let bin = PathBuf::from(bin);
            return if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("FERRATA_BIN={} is not a file", bin.display()))
            };
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "ferrata-server",
                "--bin",
                "ferrata-server",
            ])
            .current_dir(&root)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("`cargo build -p ferrata-server` failed: {status}")),
            Err(error) => return Err(format!("cannot run cargo to build ferrata-server: {error}")),
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let bin = target.join("debug/ferrata-server");
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!(
                "ferrata-server was built but {} does not exist; set FERRATA_BIN to the binary",
                bin.display()
            ))
        }
    });
    match found {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("these tests need the ferrata-server binary: {why}"),
    }
}

/// A ferrata-server child process with its own data directory.
pub struct Server {
    child: Option<Child>,
    pub addr: SocketAddr,
    data: tempfile::TempDir,
    log: PathBuf,
}

impl Server {
    pub fn start() -> anyhow::Result<Server> {
        let data = tempfile::tempdir()?;
        let log = data.path().join("server.log");
        let (child, addr) = spawn(&data.path().join("wal"), 0, &log)?;
        Ok(Server {
            child: Some(child),
            addr,
            data,
            log,
        })
    }

    /// "host:port" as clients configure it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// SIGKILL, like a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let (child, addr) = spawn(&self.data.path().join("wal"), self.addr.port(), &self.log)?;
        anyhow::ensure!(addr == self.addr, "restarted on {addr}, not {}", self.addr);
        self.child = Some(child);
        Ok(())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(data_dir: &Path, port: u16, log: &Path) -> anyhow::Result<(Child, SocketAddr)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let log_start = log_file.metadata()?.len() as usize;
    let mut child = Command::new(server_binary())
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env("FERRATA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .context("spawn ferrata-server")?;
    for _ in 0..300 {
        if let Some(status) = child.try_wait()? {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            bail!("ferrata-server exited with {status} before listening:\n{text}");
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let ready = text
            .get(log_start..)
            .unwrap_or("")
            .lines()
            .find(|l| l.contains("ferrata-server ready"));
        if let Some(addr) = ready
            .and_then(|l| l.split("listen=").nth(1))
            .and_then(|r| r.split_whitespace().next())
        {
            return Ok((child, addr.parse().context("listen address in the log")?));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    bail!("ferrata-server did not report ready within 15 s")
}

/// A client config for `addrs` with test-sized timeouts.
pub fn config(app: &str, addrs: &[String]) -> ClientConfig {
    ClientConfig::builder(app)
        .tc_addresses(addrs.iter().cloned())
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .reconnect_backoff_initial(Duration::from_millis(50))
        .reconnect_backoff_max(Duration::from_millis(500))
        .retry_interval(Duration::from_millis(50))
        .build()
        .expect("valid test config")
}

/// One phase-2 call a [`Recorder`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub xid: String,
    pub branch_id: i64,
    pub commit: bool,
}

/// A branch handler that records every call and answers success.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl Recorder {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    /// Phase-2 calls for `xid`: Some(true) = committed, Some(false) = rolled back.
    pub fn outcome(&self, xid: &str) -> Option<bool> {
        self.calls().iter().find(|c| c.xid == xid).map(|c| c.commit)
    }
}

impl BranchHandler for Recorder {
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        self.calls.lock().expect("calls").push(Call {
            xid: request.xid,
            branch_id: request.branch_id,
            commit: true,
        });
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        self.calls.lock().expect("calls").push(Call {
            xid: request.xid,
            branch_id: request.branch_id,
            commit: false,
        });
        BranchStatus::PhaseTwoRollbacked
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback port nothing listens on (bound, then released).
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}
