//! `ferrata-xa`: Seata's XA mode for Rust resource managers — a branch is a database-native
//! two-phase-commit transaction (MySQL/MariaDB `XA START … XA PREPARE`, PostgreSQL
//! `PREPARE TRANSACTION`) that the TC commits or rolls back in phase 2.
//!
//! ```text
//! phase 1   source.begin(xid)   BranchRegister(XA, resource id) + XA START
//!           your statements      on branch.connection()
//!           branch.prepare()     XA END + XA PREPARE (the session is held where needed)
//! phase 2   the TC's BranchCommit   -> XA COMMIT      (unknown id: status 11, XAER_NOTA)
//!           the TC's BranchRollback -> XA ROLLBACK    (unknown id: status 12)
//! ```
//!
//! XA ids use seata-all's layout (format 9752, gtrid = the XID, bqual = `-<branch id>`; on
//! PostgreSQL, PgJDBC's gid encoding of it), so Java and Rust branches of one database are
//! recovered by the same rules. After a restart, [`XaDataSource::recover`] rolls back prepared
//! branches of transactions the TC no longer knows; the TC finishes the rest.
//!
//! ```no_run
//! # #[cfg(feature = "postgres")]
//! # async fn demo(client: ferrata::Client, pool: sqlx::PgPool) -> Result<(), Box<dyn std::error::Error>> {
//! use ferrata_xa::XaDataSource;
//!
//! let source = XaDataSource::register(&client, pool, "jdbc:postgresql://127.0.0.1:5432/bank").await?;
//! let tx = client.begin(std::time::Duration::from_secs(30), "transfer").await?;
//! let mut branch = source.begin(tx.xid()).await?;
//! sqlx::query("UPDATE account SET balance = balance - 10 WHERE id = 1")
//!     .execute(&mut *branch.connection())
//!     .await?;
//! branch.prepare().await?;
//! tx.commit().await?; // the TC commits the prepared branch
//! # Ok(())
//! # }
//! ```

mod dialect;
mod error;
mod source;
mod xid;

pub use dialect::XaDatabase;
pub use error::XaError;
pub use source::{Recovery, XaBranch, XaDataSource};
pub use xid::{SEATA_FORMAT_ID, XaId};

pub use sqlx;
