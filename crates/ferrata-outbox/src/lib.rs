//! `ferrata-outbox`: two-phase messages (a transactional outbox), a Ferrata extension to the
//! Seata protocol. A message — one or more calls to consumer services — is delivered at least
//! once if and only if the producer's local transaction that recorded it commits.
//!
//! How (the guide, `docs/guide/outbox.md`, has the whole story):
//!
//! 1. [`MessageBuilder::prepare`] begins a global transaction named `$Outbox_<topic>` at the
//!    TC and registers its branches: first the producer's *check* branch, then one *delivery*
//!    branch per call, carrying the call's payload.
//! 2. The producer's local transaction inserts the message's row ([`PreparedMessage::record`],
//!    state `committed`) along with its business changes, and commits.
//! 3. [`PreparedMessage::submit`] reports the commit: the TC calls each consumer, retrying until
//!    it acknowledges. [`PreparedMessage::abort`] reports a rollback: nothing is delivered.
//! 4. A producer that never reported (it crashed) is asked by the TC after the message's
//!    timeout: the check inserts the row as `rolledback` unless one exists, and answers by what
//!    the row says. The primary key serialises the check with a local transaction still in
//!    flight, so the two can never both win.
//!
//! [`MessageBuilder::send`] does 1–3 around a closure. Consumers ([`Consumer::handle`]) run
//! each call in a local transaction that also records `(xid, branch_id)`, so a redelivered
//! call is acknowledged without running twice.
//!
//! Tables (also [`PRODUCER_DDL_MYSQL`], [`PRODUCER_DDL_POSTGRES`], [`CONSUMER_DDL_MYSQL`],
//! [`CONSUMER_DDL_POSTGRES`]; `create_table` on [`Outbox`] and [`Consumer`] runs them):
//!
//! ```sql
//! -- in the producer's database
//! CREATE TABLE ferrata_outbox (
//!     xid        VARCHAR(128) NOT NULL PRIMARY KEY,
//!     state      VARCHAR(16)  NOT NULL,  -- 'committed' | 'rolledback'
//!     gmt_create DATETIME(3)  NOT NULL   -- TIMESTAMP(3) on PostgreSQL
//! );
//! -- in each consumer's database
//! CREATE TABLE ferrata_outbox_received (
//!     xid        VARCHAR(128) NOT NULL,
//!     branch_id  BIGINT       NOT NULL,
//!     gmt_create DATETIME(3)  NOT NULL,
//!     PRIMARY KEY (xid, branch_id)
//! );
//! ```
//!
//! ```no_run
//! use ferrata_outbox::{Outbox, SendError};
//!
//! # async fn demo(client: ferrata::Client, pool: sqlx::MySqlPool) -> Result<(), Box<dyn std::error::Error>> {
//! let outbox = Outbox::new(client, pool, "order-service-outbox").await?;
//! let order_id: u64 = outbox
//!     .message("order-created")
//!     .call("mail-send", r#"{"order":42}"#)
//!     .call("stock-reserve", r#"{"sku":"A-1","count":2}"#)
//!     .send(|tx| {
//!         Box::pin(async move {
//!             sqlx::query("INSERT INTO orders (id) VALUES (42)")
//!                 .execute(&mut **tx)
//!                 .await?;
//!             Ok::<_, sqlx::Error>(42)
//!         })
//!     })
//!     .await?;
//! # let _ = order_id;
//! # Ok(())
//! # }
//! ```

mod consumer;
mod dialect;
mod error;
mod producer;

pub use consumer::{Consumer, Delivery, handle_idempotent};
pub use dialect::{
    CONSUMER_DDL_MYSQL, CONSUMER_DDL_POSTGRES, DEFAULT_CONSUMER_TABLE, DEFAULT_PRODUCER_TABLE,
    OutboxDatabase, PRODUCER_DDL_MYSQL, PRODUCER_DDL_POSTGRES, consumer_ddl, producer_ddl,
};
pub use error::{OutboxError, SendError};
pub use producer::{
    DEFAULT_TIMEOUT, MessageBuilder, NAME_PREFIX, Outbox, OutboxBuilder, PreparedMessage, TxFuture,
};
/// The sqlx this crate is built against (pools and transactions cross its API).
pub use sqlx;
