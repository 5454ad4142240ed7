//! The two TC calls a TCC try makes (BranchRegister, BranchReport), as a small trait so the try
//! path can run on the SDK's `Client` and tests can record the calls.

use std::future::Future;

use ferrata::{BranchRegistration, BranchReport};
use ferrata_proto::{BranchStatus, BranchType};

/// What `tcc_try` needs from the SDK client.
pub trait TccBranchClient: Send + Sync {
    /// BranchRegister(branch type TCC, `resource_id`, lock key empty, `application_data`) under
    /// `xid`; returns the branch id.
    fn register_tcc_branch(
        &self,
        xid: &str,
        resource_id: &str,
        application_data: &str,
    ) -> impl Future<Output = Result<i64, ferrata::Error>> + Send;

    /// BranchReport(`status`, `application_data`) for a TCC branch.
    fn report_tcc_branch(
        &self,
        xid: &str,
        branch_id: i64,
        resource_id: &str,
        status: BranchStatus,
        application_data: &str,
    ) -> impl Future<Output = Result<(), ferrata::Error>> + Send;

    /// The local IP address written as `host-name` in the action context (Java writes
    /// `NetUtil.getLocalIp()`, falling back to 127.0.0.1 as this crate does when `None`).
    fn local_ip(&self) -> Option<String> {
        None
    }
}

impl TccBranchClient for ferrata::Client {
    fn register_tcc_branch(
        &self,
        xid: &str,
        resource_id: &str,
        application_data: &str,
    ) -> impl Future<Output = Result<i64, ferrata::Error>> + Send {
        // Seata's TCC registers with a null lock key, which the wire carries as empty.
        self.branch_register(
            BranchRegistration::new(xid, BranchType::Tcc, resource_id)
                .application_data(application_data),
        )
    }

    fn report_tcc_branch(
        &self,
        xid: &str,
        branch_id: i64,
        resource_id: &str,
        status: BranchStatus,
        application_data: &str,
    ) -> impl Future<Output = Result<(), ferrata::Error>> + Send {
        self.branch_report(
            BranchReport::new(xid, branch_id, BranchType::Tcc, status)
                .resource_id(resource_id)
                .application_data(application_data),
        )
    }
}
