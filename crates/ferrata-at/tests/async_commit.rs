//! Phase-2 commit's deferred undo-row deletion on real MariaDB and PostgreSQL servers: every
//! queued row is deleted, in batches, and a full queue refuses instead of dropping.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrata_testkit::database_url;

use std::time::Duration;

use ferrata_at::async_commit::{AsyncCommitter, QUEUE_CAPACITY};
use ferrata_at::undo_table::{LogStatus, UndoTable};

macro_rules! async_commit_suite {
    ($name:ident, $db:ty, $url:literal, $table:literal) => {
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            let pool = sqlx::Pool::<$db>::connect(&database_url($url)).await?;
            let mut conn = pool.acquire().await?;
            sqlx::query(concat!("DROP TABLE IF EXISTS ", $table))
                .execute(&mut *conn)
                .await?;
            let table = UndoTable::<$db>::new($table)?;
            table.create(&mut conn).await?;
            let xid = "127.0.0.1:8091:4242".to_owned();
            for branch_id in 1..=2500 {
                let _ = table
                    .insert(
                        &mut conn,
                        branch_id,
                        &xid,
                        "serializer=jackson",
                        b"[]",
                        LogStatus::Normal,
                    )
                    .await?;
            }
            // A row of another transaction with the same branch id must survive.
            let _ = table
                .insert(
                    &mut conn,
                    7,
                    "127.0.0.1:8091:other",
                    "serializer=jackson",
                    b"[]",
                    LogStatus::Normal,
                )
                .await?;
            drop(conn);

            let (committer, worker) =
                AsyncCommitter::new(pool.clone(), table.clone(), Duration::from_millis(20));
            for branch_id in 1..=2500 {
                committer.submit(branch_id, xid.clone()).unwrap();
            }
            drop(committer);
            // The worker ends once its committers are gone and everything queued is deleted.
            tokio::time::timeout(Duration::from_secs(60), worker.run()).await?;
            let (left,): (i64,) = sqlx::query_as(concat!("SELECT COUNT(*) FROM ", $table))
                .fetch_one(&pool)
                .await?;
            assert_eq!(left, 1, "only the other transaction's row is left");

            // Nothing is dropped: a full queue says so and the caller deletes the row itself.
            let (committer, _idle_worker) =
                AsyncCommitter::new(pool.clone(), table, Duration::from_secs(3600));
            for branch_id in 0..QUEUE_CAPACITY as i64 {
                committer.submit(branch_id, xid.clone()).unwrap();
            }
            let rejected = committer.submit(-1, xid.clone()).unwrap_err();
            assert_eq!(rejected.0, (-1, xid));
            Ok(())
        }
    };
}

async_commit_suite!(
    mariadb_async_commit,
    sqlx::MySql,
    "FERRATA_MYSQL_URL",
    "at_test_async_undo"
);
async_commit_suite!(
    postgres_async_commit,
    sqlx::Postgres,
    "FERRATA_POSTGRES_URL",
    "at_test_async_undo"
);
