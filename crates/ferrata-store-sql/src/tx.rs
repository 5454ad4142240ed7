//! A database transaction on a pooled connection, begun and ended by statements of ours rather
//! than sqlx's `Transaction`, so that the round trip committing one batch can begin the next
//! (see [`Tx::commit_and_begin`]); every round trip is a wake-up of the database and of us.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Executor, Pool};

use crate::dialect::SqlDatabase;

/// An open transaction; dropped open (an error on the way), its connection is closed rather
/// than returned to the pool, which rolls the transaction back.
pub(crate) struct Tx<DB: sqlx::Database> {
    conn: PoolConnection<DB>,
    /// When the transaction began (for one begun ahead of its use).
    begun: Instant,
    open: bool,
}

impl<DB> Tx<DB>
where
    DB: SqlDatabase,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    /// Takes a connection from `pool` and begins a transaction on it.
    pub(crate) async fn begin(pool: &Pool<DB>) -> Result<Tx<DB>, sqlx::Error> {
        // Open from the start: a BEGIN that fails half-way leaves the connection unknown.
        let mut tx = Tx {
            conn: pool.acquire().await?,
            begun: Instant::now(),
            open: true,
        };
        (&mut *tx.conn).execute("BEGIN").await?;
        Ok(tx)
    }

    pub(crate) async fn commit(mut self) -> Result<(), sqlx::Error> {
        (&mut *self.conn).execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    pub(crate) async fn rollback(mut self) -> Result<(), sqlx::Error> {
        (&mut *self.conn).execute("ROLLBACK").await?;
        self.open = false;
        Ok(())
    }

    /// Runs `statements`, the dialect's `COMMIT_AND_BEGIN`: commits and, in the same round
    /// trip, begins the next transaction on this connection.
    ///
    /// A transaction begun ahead holds nothing (no snapshot is taken, no row locked before
    /// its first statement), but the database ends a session idle in a transaction after
    /// its abandoned-transaction timeout: [`Tx::begun_within`] says whether it is still fresh.
    pub(crate) async fn commit_and_begin(
        &mut self,
        statements: &'static str,
    ) -> Result<(), sqlx::Error> {
        // An error leaves `open` set: the connection is closed, whatever ran of the two.
        (&mut *self.conn).execute(statements).await?;
        self.begun = Instant::now();
        Ok(())
    }

    /// Whether the transaction began less than `age` ago.
    pub(crate) fn begun_within(&self, age: Duration) -> bool {
        self.begun.elapsed() < age
    }
}

impl<DB: sqlx::Database> Drop for Tx<DB> {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl<DB: sqlx::Database> Deref for Tx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        &self.conn
    }
}

impl<DB: sqlx::Database> DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }
}

impl<DB: sqlx::Database> std::fmt::Debug for Tx<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("begun", &self.begun)
            .field("open", &self.open)
            .finish_non_exhaustive()
    }
}
