//! Shared by the integration tests: an in-process ferrata-server on a loopback listener.

use std::future::Future;
use std::path::PathBuf;

use ferrata_server::ServerConfig;
use tokio::net::TcpListener;

/// Serves on `listener` (data in `dir`, no fsync) until `shutdown` completes.
pub async fn serve(listener: TcpListener, dir: PathBuf, shutdown: impl Future<Output = ()>) {
    let config = ServerConfig {
        listen: listener.local_addr().expect("addr"),
        data_dir: dir,
        fsync: false,
        ..ServerConfig::default()
    };
    if let Err(error) = ferrata_server::run(listener, config, shutdown).await {
        eprintln!("server failed: {error:#}");
    }
}
