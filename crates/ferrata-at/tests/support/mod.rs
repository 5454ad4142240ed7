//! Shared by the database suites: the database URLs from scripts/services, and a client of
//! the suite's own ferrata-server.
#![allow(dead_code)]

use std::time::Duration;

use anyhow::Context;
use ferrata::{Client, ClientConfig};
use ferrata_testkit::TcProcess;

/// A database URL from the environment (FERRATA_MYSQL_URL, FERRATA_POSTGRES_URL).
pub fn url(var: &str) -> anyhow::Result<String> {
    std::env::var(var).with_context(|| format!("{var} is not set: run scripts/services start"))
}

/// A client of `tc` registered as application `app`.
pub async fn connect(app: &str, tc: &TcProcess) -> anyhow::Result<Client> {
    let config = ClientConfig::builder(app)
        .tc_addresses([tc.addr().to_string()])
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()?;
    Ok(Client::connect(config).await?)
}
