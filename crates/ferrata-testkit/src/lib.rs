//! Test support shared by Ferrata's test suites: the real `ferrata-server` binary
//! ([`server_binary`]), a server child process on 127.0.0.1 that is waited for until it logs
//! `ferrata-server ready listen=ADDR` ([`TcProcess`]), a bounded async poll
//! ([`eventually`]), and the database URLs and service addresses scripts/services exports
//! ([`database_url`], [`service_url`]).
//!
//! Only for tests: every wait here is bounded, and failures carry the server's log.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The database URL in `var` (FERRATA_MYSQL_URL, FERRATA_POSTGRES_URL). A test that needs a
/// database fails, never skips, when it is missing.
///
/// # Panics
/// When `var` is unset or blank, with the command that sets it.
pub fn database_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs a real database. Run `scripts/services start` \
             and then `eval \"$(scripts/services env)\"` (or let scripts/test do both)"
        ),
    }
}

/// The address of a service scripts/services starts, in `var` (FERRATA_ETCD_URL,
/// FERRATA_REDIS_URL, FERRATA_ZOOKEEPER_ADDR). A test that needs the service fails, never
/// skips, when it is missing.
///
/// # Panics
/// When `var` is unset or blank, with the command that sets it.
pub fn service_url(var: &str) -> String {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "{var} is not set: this test needs a real service. Run `scripts/services start` \
             and then `eval \"$(scripts/services env)\"` (or let scripts/test do both)"
        ),
    }
}

/// How long [`TcProcess::start`] waits for the ready line.
pub const READY_WITHIN: Duration = Duration::from_secs(15);

/// Server configuration with short phase-2 retry backoffs (100 ms, growing to 500 ms).
pub const SHORT_RETRIES: &str =
    "[coordinator]\nretry_backoff_initial = \"100ms\"\nretry_backoff_max = \"500ms\"\n";

/// How often the log is read while waiting for the ready line.
const READY_POLL: Duration = Duration::from_millis(50);

/// The server binary: `FERRATA_BIN` when set (it must be a file), or else the workspace's
/// target/debug build, which this builds once per test process with
/// `cargo build -p ferrata-server` so it is never stale or missing.
///
/// # Panics
/// When `FERRATA_BIN` is not a file, or the build fails or leaves no binary: these tests
/// cannot run without it.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BIN.get_or_init(find_or_build_server) {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("these tests need the ferrata-server binary: {why}"),
    }
}

fn find_or_build_server() -> Result<PathBuf, String> {
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
}

/// A `ferrata-server` child process listening on 127.0.0.1, with its stderr appended to a log
/// file. Killed (SIGKILL) on drop.
#[derive(Debug)]
pub struct TcProcess {
    child: Option<Child>,
    addr: SocketAddr,
    /// The admin (metrics, health) listener, when the server reported one.
    admin_addr: Option<SocketAddr>,
    bin: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    ready_within: Duration,
    /// Arguments after `--listen` and `--data-dir` (e.g. `--config file.toml`).
    extra_args: Vec<OsString>,
    /// The temporary directory of [`TcProcess::start_in_temp_dir`]; removed after the kill.
    _temp: Option<tempfile::TempDir>,
}

impl TcProcess {
    /// Starts `bin` on 127.0.0.1:`port` (0 = any free port, read back from the log) with
    /// `data_dir`, appending its log to `log`, and waits up to [`READY_WITHIN`] for it to
    /// report ready. Fails with the log when the server exits first.
    pub fn start(bin: &Path, data_dir: &Path, port: u16, log: &Path) -> anyhow::Result<TcProcess> {
        TcProcess::start_within(bin, data_dir, port, log, READY_WITHIN)
    }

    /// [`TcProcess::start`], waiting at most `ready_within` for the ready line (also on
    /// [`TcProcess::restart`]).
    pub fn start_within(
        bin: &Path,
        data_dir: &Path,
        port: u16,
        log: &Path,
        ready_within: Duration,
    ) -> anyhow::Result<TcProcess> {
        let listen = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        TcProcess::start_with(bin, data_dir, listen, log, ready_within, Vec::new())
    }

    /// Starts `bin` listening on `listen` (a loopback address; port 0 = any free port) with
    /// `extra_args` after the listen and data-dir flags (kept for [`TcProcess::restart`]).
    pub fn start_with(
        bin: &Path,
        data_dir: &Path,
        listen: SocketAddr,
        log: &Path,
        ready_within: Duration,
        extra_args: Vec<OsString>,
    ) -> anyhow::Result<TcProcess> {
        let (child, ready) = spawn(bin, data_dir, listen, log, ready_within, &extra_args)?;
        Ok(TcProcess {
            child: Some(child),
            addr: ready.addr,
            admin_addr: ready.admin_addr,
            bin: bin.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            log: log.to_path_buf(),
            ready_within,
            extra_args,
            _temp: None,
        })
    }

    /// Starts `bin` on any free port in a fresh temporary directory (data in `wal`, log in
    /// `server.log`), which is removed when this is dropped.
    pub fn start_in_temp_dir(bin: &Path) -> anyhow::Result<TcProcess> {
        TcProcess::start_in_temp_dir_on(bin, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0))
    }

    /// [`TcProcess::start_in_temp_dir`] listening on `listen` (e.g. `[::1]:0`).
    pub fn start_in_temp_dir_on(bin: &Path, listen: SocketAddr) -> anyhow::Result<TcProcess> {
        let temp = tempfile::tempdir().context("temporary directory for ferrata-server")?;
        let log = temp.path().join("server.log");
        let mut process = TcProcess::start_with(
            bin,
            &temp.path().join("wal"),
            listen,
            &log,
            READY_WITHIN,
            Vec::new(),
        )?;
        process._temp = Some(temp);
        Ok(process)
    }

    /// [`TcProcess::start_in_temp_dir`] with `config_toml` written to `ferrata.toml` in that
    /// directory and passed as `--config` (the listen address and data directory still come
    /// from the flags).
    pub fn start_in_temp_dir_with_config(
        bin: &Path,
        config_toml: &str,
    ) -> anyhow::Result<TcProcess> {
        let temp = tempfile::tempdir().context("temporary directory for ferrata-server")?;
        let config = temp.path().join("ferrata.toml");
        std::fs::write(&config, config_toml).context("write ferrata.toml")?;
        let mut process = TcProcess::start_with(
            bin,
            &temp.path().join("wal"),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            &temp.path().join("server.log"),
            READY_WITHIN,
            vec!["--config".into(), config.into_os_string()],
        )?;
        process._temp = Some(temp);
        Ok(process)
    }

    /// The debug server ([`server_binary`]) in a temporary directory with phase-2 retries at
    /// most 500 ms apart, so that a restarted RM, a recovering Saga engine or a consumer that
    /// recovers gets its phase 2 soon. Panics if it does not start.
    pub fn start_with_short_retries() -> TcProcess {
        TcProcess::start_in_temp_dir_with_config(&server_binary(), SHORT_RETRIES)
            .unwrap_or_else(|error| panic!("{error:#}"))
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address of its admin listener (metrics, health): any free loopback port unless
    /// the arguments or `FERRATA_ADMIN__LISTEN` chose one.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Whether the process ended on its own (or was killed).
    pub fn has_exited(&mut self) -> bool {
        match &mut self.child {
            Some(child) => !matches!(child.try_wait(), Ok(None)),
            None => true,
        }
    }

    /// SIGKILL, like a crash: no chance to flush anything. Does nothing when not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, a graceful shutdown, then waits up to `within` for the process to exit (and
    /// kills it if it has not). Returns the exit status; an error when it did not stop in time.
    pub fn terminate(&mut self, within: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("the server is not running");
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("run kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "ferrata-server did not stop within {within:?} of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server if it runs, then starts it again on the same port and data directory.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        let (child, ready) = spawn(
            &self.bin,
            &self.data_dir,
            self.addr,
            &self.log,
            self.ready_within,
            &self.extra_args,
        )?;
        self.child = Some(child);
        self.admin_addr = ready.admin_addr;
        let addr = ready.addr;
        anyhow::ensure!(addr == self.addr, "restarted on {addr}, not {}", self.addr);
        Ok(())
    }

    /// Everything in the log file so far (all runs), or "" when it cannot be read.
    pub fn log(&self) -> String {
        read_log(&self.log)
    }
}

impl Drop for TcProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What a server's ready line says.
#[derive(Debug, Clone, Copy)]
struct Ready {
    addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
}

/// Spawns the server and waits (bounded) for the ready line it logs after `log`'s current end.
/// Unless told otherwise, its admin listener takes any free loopback port, so that servers of
/// parallel tests do not compete for the default one.
fn spawn(
    bin: &Path,
    data_dir: &Path,
    listen: SocketAddr,
    log: &Path,
    ready_within: Duration,
    extra_args: &[OsString],
) -> anyhow::Result<(Child, Ready)> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("open {}", log.display()))?;
    let log_start = usize::try_from(log_file.metadata()?.len())?;
    let mut command = Command::new(bin);
    let admin_chosen = extra_args.iter().any(|arg| arg == "--admin-listen")
        || std::env::var_os("FERRATA_ADMIN__LISTEN").is_some();
    if !admin_chosen {
        command.env("FERRATA_ADMIN__LISTEN", "127.0.0.1:0");
    }
    let mut child = command
        .args(["--listen", &listen.to_string(), "--data-dir"])
        .arg(data_dir)
        .args(extra_args)
        .env("FERRATA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .with_context(|| format!("spawn {}", bin.display()))?;
    match wait_ready(&mut child, log, log_start, ready_within) {
        Ok(addr) => Ok((child, addr)),
        Err(error) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(error)
        }
    }
}

/// The addresses in the first ready line after byte `log_start` of `log`.
fn wait_ready(
    child: &mut Child,
    log: &Path,
    log_start: usize,
    within: Duration,
) -> anyhow::Result<Ready> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "ferrata-server exited with {status} before listening:\n{}",
                read_log(log)
            );
        }
        let text = read_log(log);
        let ready = text
            .get(log_start..)
            .unwrap_or("")
            .lines()
            .find(|l| l.contains("ferrata-server ready"));
        let field = |name: &str| {
            ready
                .and_then(|l| l.split(&format!(" {name}=")).nth(1))
                .and_then(|r| r.split_whitespace().next())
        };
        if let Some(addr) = field("listen") {
            return Ok(Ready {
                addr: addr.parse().context("listen address in the log")?,
                admin_addr: field("admin_listen").and_then(|a| a.parse().ok()),
            });
        }
        if Instant::now() >= deadline {
            bail!(
                "ferrata-server did not report ready within {} s:\n{text}",
                within.as_secs_f32()
            );
        }
        std::thread::sleep(READY_POLL);
    }
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Polls `check` every 50 ms until it holds or `limit` passes (a bound, not an assertion:
/// the caller asserts on the result).
pub async fn eventually<F, Fut>(limit: Duration, check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually_every(limit, Duration::from_millis(50), check).await
}

/// [`eventually`], polling every `every`.
pub async fn eventually_every<F, Fut>(limit: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// An HTTP/1.1 answer: status code and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    pub status: u16,
    pub body: String,
}

/// One HTTP/1.1 request to `addr` (a loopback admin listener), the connection closed after
/// the answer; `bearer` is sent as `Authorization: Bearer …`, `body` as JSON. Bounded by 10 s.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> anyhow::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect {addr}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        let body = body.unwrap_or("");
        if !body.is_empty() {
            request.push_str("Content-Type: application/json\r\n");
        }
        request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        let text = String::from_utf8(raw).context("answer is not UTF-8")?;
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .with_context(|| format!("no header end in {text:?}"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .with_context(|| format!("no status in {head:?}"))?;
        let chunked = head.lines().any(|l| {
            l.to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked")
        });
        let body = if chunked {
            unchunk(rest)?
        } else {
            rest.to_owned()
        };
        Ok(HttpAnswer { status, body })
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .with_context(|| format!("{method} {path}: no answer within 10 s"))?
}

/// The body of a chunked transfer encoding.
fn unchunk(mut rest: &str) -> anyhow::Result<String> {
    let mut body = String::new();
    loop {
        let (size, after) = rest.split_once("\r\n").context("chunk size line")?;
        let size = usize::from_str_radix(size.trim(), 16).context("chunk size")?;
        if size == 0 {
            return Ok(body);
        }
        body.push_str(after.get(..size).context("chunk shorter than its size")?);
        rest = after.get(size + 2..).unwrap_or("");
    }
}
