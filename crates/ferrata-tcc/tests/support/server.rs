//! The real `ferrata-server` for end-to-end tests (through `ferrata_testkit`): the binary from
//! FERRATA_BIN, or built once per test process with `cargo build -p ferrata-server`; started on
//! 127.0.0.1 port 0 in its own temporary directory.
#![allow(dead_code)]

use std::net::SocketAddr;

use ferrata_testkit::{TcProcess, server_binary};

pub use ferrata_testkit::eventually;

/// A ferrata-server child process with its own data directory; killed on drop.
pub struct Server {
    pub addr: SocketAddr,
    _process: TcProcess,
}

impl Server {
    /// Starts the server; panics (with its log) when it does not come up.
    pub fn start() -> Server {
        Server::start_on("127.0.0.1:0".parse().expect("loopback"))
    }

    /// Starts the server listening on `listen` (a loopback address, port 0).
    pub fn start_on(listen: SocketAddr) -> Server {
        let process = TcProcess::start_in_temp_dir_on(&server_binary(), listen)
            .unwrap_or_else(|error| panic!("{error:#}"));
        Server {
            addr: process.addr(),
            _process: process,
        }
    }
}
