//! Shared by the outbox suites: the real ferrata-server (short phase-2 retries), SDK clients,
//! and the two real databases.
#![allow(dead_code)]

use std::time::Duration;

use ferrata::{Client, ClientConfig};
use ferrata_outbox::sqlx::{self, MySqlPool, PgPool};
use ferrata_testkit::{TcProcess, database_url};

/// How long a suite waits for something the TC drives (delivery, a check after a timeout).
pub const WAIT: Duration = Duration::from_secs(30);

/// ferrata-server with phase-2 retries at most 500 ms apart, so that retried deliveries and
/// checks come soon.
pub fn server() -> TcProcess {
    TcProcess::start_with_short_retries()
}

pub async fn client_at(addr: &str, app: &str) -> Client {
    let config = ClientConfig::builder(app)
        .tc_addresses([addr.to_owned()])
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client config");
    Client::connect(config)
        .await
        .expect("connect to ferrata-server")
}

pub async fn client(server: &TcProcess, app: &str) -> Client {
    client_at(&server.addr().to_string(), app).await
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
