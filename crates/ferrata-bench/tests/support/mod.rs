//! Shared by the integration tests: an in-process ferrata-server on a loopback listener.

use std::future::Future;
use std::path::PathBuf;

use ferrata_server::Config;
use tokio::net::TcpListener;

/// Serves on `listener` (data in `dir`, no fsync) until `shutdown` completes.
pub async fn serve(listener: TcpListener, dir: PathBuf, shutdown: impl Future<Output = ()>) {
    let mut config = Config::default();
    // Servers of parallel tests share no admin port.
    config.admin.listen.set_port(0);
    config.server.listen = listener.local_addr().expect("addr");
    config.store.data_dir = dir;
    config.store.fsync = false;
    if let Err(error) = ferrata_server::run(listener, config, shutdown).await {
        eprintln!("server failed: {error:#}");
    }
}
