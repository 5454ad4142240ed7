//! Test support: a TC client that records BranchRegister/BranchReport, unique XIDs, and the
//! database URLs (which must be set: run `scripts/services start` first).
// Test helpers: a failed unwrap is a failed test, which is what it should be.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ferrata_proto::BranchStatus;
use ferrata_tcc::TccBranchClient;

/// A registered branch as the TC would have seen it.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub xid: String,
    pub resource_id: String,
    pub application_data: String,
    pub branch_id: i64,
}

/// A branch report as the TC would have seen it.
#[derive(Debug, Clone, PartialEq)]
pub struct Reported {
    pub xid: String,
    pub branch_id: i64,
    pub resource_id: String,
    pub status: BranchStatus,
    pub application_data: String,
}

/// Stands in for the TC: hands out branch ids and records what the try path sent.
#[derive(Debug, Default)]
pub struct RecordingClient {
    next_branch: AtomicI64,
    pub registered: Mutex<Vec<Registered>>,
    pub reported: Mutex<Vec<Reported>>,
}

impl RecordingClient {
    pub fn registered(&self) -> Vec<Registered> {
        self.registered.lock().unwrap().clone()
    }

    pub fn reported(&self) -> Vec<Reported> {
        self.reported.lock().unwrap().clone()
    }

    /// The application data the TC holds for `branch_id` now (last report wins).
    pub fn application_data(&self, branch_id: i64) -> String {
        let reported = self.reported();
        if let Some(r) = reported.iter().rev().find(|r| r.branch_id == branch_id) {
            return r.application_data.clone();
        }
        self.registered()
            .into_iter()
            .find(|r| r.branch_id == branch_id)
            .map(|r| r.application_data)
            .unwrap()
    }
}

impl TccBranchClient for RecordingClient {
    async fn register_tcc_branch(
        &self,
        xid: &str,
        resource_id: &str,
        application_data: &str,
    ) -> Result<i64, ferrata::Error> {
        let branch_id = 1000 + self.next_branch.fetch_add(1, Ordering::Relaxed);
        self.registered.lock().unwrap().push(Registered {
            xid: xid.into(),
            resource_id: resource_id.into(),
            application_data: application_data.into(),
            branch_id,
        });
        Ok(branch_id)
    }

    async fn report_tcc_branch(
        &self,
        xid: &str,
        branch_id: i64,
        resource_id: &str,
        status: BranchStatus,
        application_data: &str,
    ) -> Result<(), ferrata::Error> {
        self.reported.lock().unwrap().push(Reported {
            xid: xid.into(),
            branch_id,
            resource_id: resource_id.into(),
            status,
            application_data: application_data.into(),
        });
        Ok(())
    }

    fn local_ip(&self) -> Option<String> {
        Some("10.1.2.3".into())
    }
}

/// A business error of the test participants.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Failed(pub String);

/// An XID no other test (in this run or an earlier one) uses.
pub fn unique_xid() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("127.0.0.1:8091:{}{:x}{n}", std::process::id(), nanos)
}
