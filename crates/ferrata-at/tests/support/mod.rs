//! Shared by the suites that need a TC: a client of the suite's own ferrata-server.
#![allow(dead_code)]

use std::time::Duration;

use ferrata::{Client, ClientConfig};
use ferrata_testkit::TcProcess;

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

/// A fresh ferrata-server of the suite's own on a free loopback port, and a client of it
/// registered as `app`.
pub async fn tc_and_client(app: &str) -> anyhow::Result<(TcProcess, Client)> {
    let tc =
        TcProcess::start_in_temp_dir_on(&ferrata_testkit::server_binary(), "127.0.0.1:0".parse()?)?;
    let client = connect(app, &tc).await?;
    Ok((tc, client))
}
