//! The real `ferrata-server` for end-to-end tests: the binary from FERRATA_BIN, or built once
//! per test process with `cargo build -p ferrata-server`; started on 127.0.0.1 port 0.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

fn server_binary() -> PathBuf {
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
        let built = Command::new(cargo)
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
        match built {
            Ok(status) if status.success() => {}
            Ok(status) => return Err(format!("`cargo build -p ferrata-server` failed: {status}")),
            Err(error) => return Err(format!("cannot run cargo: {error}")),
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Ok(target.join("debug/ferrata-server"))
    });
    match found {
        Ok(bin) => bin.clone(),
        Err(why) => panic!("this test needs the ferrata-server binary: {why}"),
    }
}

/// A ferrata-server child process with its own data directory; killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Server {
    pub fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        let log = data.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(server_binary())
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path().join("wal"))
            .env("FERRATA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        for _ in 0..300 {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(status) = child.try_wait().unwrap() {
                panic!("ferrata-server exited with {status} before listening:\n{text}");
            }
            let addr = text
                .lines()
                .find(|l| l.contains("ferrata-server ready"))
                .and_then(|l| l.split("listen=").nth(1))
                .and_then(|r| r.split_whitespace().next());
            if let Some(addr) = addr {
                return Server {
                    child,
                    addr: addr.parse().unwrap(),
                    _data: data,
                };
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        panic!("ferrata-server did not report ready within 15 s");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it holds or `limit` passes (a bound, not an assertion).
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
