//! A bank across a MariaDB and a PostgreSQL database under AT, with a real ferrata-server:
//! concurrent workers move money between accounts of the two databases, some transfers roll
//! back on purpose, conflicting ones wait for global locks or give up. The total never changes
//! (no lost update, no dirty write), and nothing is left behind: no undo log, no global lock,
//! no session.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrata::{BranchType, GlobalStatus, LockQuery, TransactionOptions};
use ferrata_at::{AtDataSource, AtError, query};
use ferrata_testkit::database_url;
use ferrata_testkit::{TcProcess, eventually, server_binary};
use support::connect;

const ACCOUNTS: i64 = 4;
const OPENING_BALANCE: i64 = 1_000;
const WORKERS: u64 = 6;
const TRANSFERS_PER_WORKER: usize = 20;
const WAIT: Duration = Duration::from_secs(60);

/// A small deterministic generator (xorshift64*), one per worker.
struct Dice(u64);

impl Dice {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % below
    }
}

#[derive(Debug, Default)]
struct Outcomes {
    committed: AtomicUsize,
    rolled_back_on_purpose: AtomicUsize,
    gave_up_on_a_lock: AtomicUsize,
}

async fn balances<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Vec<i64>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut conn = pool.acquire().await.unwrap();
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT balance FROM at_bank_account ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    rows.into_iter().map(|(b,)| b).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_across_mariadb_and_postgres_keep_the_total() -> anyhow::Result<()> {
    let tc = TcProcess::start_in_temp_dir_on(&server_binary(), "127.0.0.1:0".parse()?)?;
    let client = connect("at-bank", &tc).await?;
    let mysql = sqlx::MySqlPool::connect(&database_url("FERRATA_MYSQL_URL")).await?;
    let postgres = sqlx::PgPool::connect(&database_url("FERRATA_POSTGRES_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_bank_account",
        "DROP TABLE IF EXISTS at_bank_undo",
        "CREATE TABLE at_bank_account (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)",
    ] {
        sqlx::query(ddl).execute(&mysql).await?;
        sqlx::query(ddl).execute(&postgres).await?;
    }
    for id in 0..ACCOUNTS {
        sqlx::query("INSERT INTO at_bank_account (id, balance) VALUES (?, ?)")
            .bind(id)
            .bind(OPENING_BALANCE)
            .execute(&mysql)
            .await?;
        sqlx::query("INSERT INTO at_bank_account (id, balance) VALUES ($1, $2)")
            .bind(id)
            .bind(OPENING_BALANCE)
            .execute(&postgres)
            .await?;
    }
    let left = AtDataSource::builder(mysql.clone(), client.clone())
        .undo_table("at_bank_undo")
        .async_commit_interval(Duration::from_millis(50))
        .build()
        .await?;
    let right = AtDataSource::builder(postgres.clone(), client.clone())
        .undo_table("at_bank_undo")
        .async_commit_interval(Duration::from_millis(50))
        .build()
        .await?;

    let outcomes = Arc::new(Outcomes::default());
    let xids = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (client, left, right) = (client.clone(), left.clone(), right.clone());
        let (outcomes, xids) = (outcomes.clone(), xids.clone());
        workers.push(tokio::spawn(async move {
            let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (worker + 1));
            for _ in 0..TRANSFERS_PER_WORKER {
                let from_left = dice.next(2) == 0;
                let (a, b) = (dice.next(ACCOUNTS as u64) as i64, dice.next(ACCOUNTS as u64) as i64);
                let amount = 1 + dice.next(50) as i64;
                let fail = dice.next(4) == 0;
                let (left, right, xids) = (left.clone(), right.clone(), xids.clone());
                let result = client
                    .in_global_transaction(
                        TransactionOptions::new("at-bank-transfer").timeout(WAIT),
                        |info| async move {
                            xids.lock().unwrap().push(info.xid.clone());
                            // Money moves left → right, or back with a negative amount.
                            let debit_left = if from_left { amount } else { -amount };
                            left.execute(
                                query("UPDATE at_bank_account SET balance = balance - ? WHERE id = ?")
                                    .bind(debit_left)
                                    .bind(a),
                            )
                            .await?;
                            right
                                .execute(
                                    query("UPDATE at_bank_account SET balance = balance + $1 WHERE id = $2")
                                        .bind(debit_left)
                                        .bind(b),
                                )
                                .await?;
                            if fail {
                                return Err(AtError::Finished);
                            }
                            Ok(())
                        },
                    )
                    .await;
                match result {
                    Ok(()) => outcomes.committed.fetch_add(1, Ordering::Relaxed),
                    Err(ferrata::TransactionError::Aborted(AtError::Finished)) => {
                        outcomes.rolled_back_on_purpose.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(ferrata::TransactionError::Aborted(AtError::LockWaitTimeout(_))) => {
                        outcomes.gave_up_on_a_lock.fetch_add(1, Ordering::Relaxed)
                    }
                    Err(other) => panic!("transfer failed unexpectedly: {other}"),
                };
            }
        }));
    }
    for worker in workers {
        worker.await?;
    }
    let total_transfers = (WORKERS as usize) * TRANSFERS_PER_WORKER;
    let committed = outcomes.committed.load(Ordering::Relaxed);
    assert_eq!(
        committed
            + outcomes.rolled_back_on_purpose.load(Ordering::Relaxed)
            + outcomes.gave_up_on_a_lock.load(Ordering::Relaxed),
        total_transfers
    );
    assert!(committed > 0, "{outcomes:?}");
    assert!(
        outcomes.rolled_back_on_purpose.load(Ordering::Relaxed) > 0,
        "{outcomes:?}"
    );

    // The money is all there.
    let (on_left, on_right) = (balances(&mysql).await, balances(&postgres).await);
    assert_eq!(
        on_left.iter().sum::<i64>() + on_right.iter().sum::<i64>(),
        2 * ACCOUNTS * OPENING_BALANCE,
        "left {on_left:?}, right {on_right:?}, {outcomes:?}"
    );

    // Nothing is left behind: undo logs, global locks, sessions.
    assert!(
        eventually(WAIT, || async {
            let (l,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_bank_undo")
                .fetch_one(&mysql)
                .await
                .unwrap();
            let (r,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_bank_undo")
                .fetch_one(&postgres)
                .await
                .unwrap();
            l == 0 && r == 0
        })
        .await,
        "undo logs left behind"
    );
    let every_row = (0..ACCOUNTS)
        .map(|id| id.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for source in [left.resource_id(), right.resource_id()] {
        let free = client
            .lock_query(
                LockQuery::new("", BranchType::At, source)
                    .lock_key(format!("at_bank_account:{every_row}")),
            )
            .await?;
        assert!(free, "a global lock on {source} was left behind");
    }
    let xids = xids.lock().unwrap().clone();
    assert_eq!(xids.len(), total_transfers);
    for xid in xids {
        assert!(
            eventually(WAIT, || async {
                client.status(&xid).await.unwrap() == GlobalStatus::Finished
            })
            .await,
            "session {xid} was left behind"
        );
    }
    Ok(())
}
