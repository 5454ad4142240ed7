//! Test support: the real `ferrata-server` on 127.0.0.1 (through `ferrata_testkit`), client
//! configs with short timeouts, a recording branch handler, and the testkit's bounded
//! `eventually` poll.
#![allow(dead_code)]

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchStatus, ClientConfig};
use ferrata_testkit::TcProcess;
pub use ferrata_testkit::{eventually, server_binary};

/// The real `ferrata-server` ([`server_binary`]) in its own temporary directory on 127.0.0.1;
/// [`TcProcess`]'s `kill`, `restart` and `log` apply. Killed on drop.
pub struct Server(TcProcess);

impl Server {
    pub fn start() -> anyhow::Result<Server> {
        TcProcess::start_in_temp_dir(&server_binary()).map(Server)
    }

    /// "host:port" as clients configure it.
    pub fn address(&self) -> String {
        self.0.addr().to_string()
    }
}

impl Deref for Server {
    type Target = TcProcess;

    fn deref(&self) -> &TcProcess {
        &self.0
    }
}

impl DerefMut for Server {
    fn deref_mut(&mut self) -> &mut TcProcess {
        &mut self.0
    }
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

/// A loopback port nothing listens on (bound, then released).
pub fn dead_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}
