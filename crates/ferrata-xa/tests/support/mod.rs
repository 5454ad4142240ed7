//! Shared by the XA suites: the real ferrata-server (short phase-2 retries), SDK clients, and
//! the two real databases with a small account table.
#![allow(dead_code)]

use std::time::Duration;

use ferrata::{Client, ClientConfig};
use ferrata_testkit::{TcProcess, database_url};
use ferrata_xa::sqlx::{self, MySqlPool, PgPool};

pub const WAIT: Duration = Duration::from_secs(60);

/// ferrata-server with phase-2 retries at most 500 ms apart, so that a restarted RM gets its
/// phase 2 soon.
pub fn server() -> TcProcess {
    TcProcess::start_with_short_retries()
}

pub async fn client(server: &TcProcess, app: &str) -> Client {
    let config = ClientConfig::builder(app)
        .tc_addresses([server.addr().to_string()])
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client config");
    Client::connect(config)
        .await
        .expect("connect to ferrata-server")
}

pub async fn mysql_pool(max: u32) -> MySqlPool {
    sqlx::pool::PoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&database_url("FERRATA_MYSQL_URL"))
        .await
        .expect("MariaDB")
}

pub async fn postgres_pool(max: u32) -> PgPool {
    sqlx::pool::PoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .connect(&database_url("FERRATA_POSTGRES_URL"))
        .await
        .expect("PostgreSQL")
}
