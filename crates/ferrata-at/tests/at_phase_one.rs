//! A phase one that fails after its branch was registered is reported to the TC (PhaseOne_Failed),
//! on a real PostgreSQL server with a real ferrata-server: a deferred unique constraint makes the
//! local COMMIT fail; the TC then drops the branch, so the global rollback never asks this
//! resource manager to undo it (which would have left a global-finished marker row).
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrata::GlobalStatus;
use ferrata_at::{AtDataSource, AtError, query};
use ferrata_testkit::database_url;
use ferrata_testkit::{TcProcess, server_binary};
use support::connect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_local_commit_is_reported_and_never_rolled_back() -> anyhow::Result<()> {
    let tc = TcProcess::start_in_temp_dir_on(&server_binary(), "127.0.0.1:0".parse()?)?;
    let client = connect("at-phase-one", &tc).await?;
    let pool = sqlx::PgPool::connect(&database_url("FERRATA_POSTGRES_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_p1_item, at_p1_undo",
        "CREATE TABLE at_p1_item (id INT PRIMARY KEY, code INT NOT NULL, \
         CONSTRAINT at_p1_code UNIQUE (code) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO at_p1_item VALUES (1, 10), (2, 20)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    let at = AtDataSource::builder(pool.clone(), client.clone())
        .undo_table("at_p1_undo")
        .build()
        .await?;
    let global = client
        .begin(Duration::from_secs(60), "at-phase-one")
        .await?;
    let committed = global
        .scope(async {
            let mut tx = at.begin().await?;
            // Accepted now, refused at COMMIT: code 20 belongs to row 2.
            tx.execute(
                query("UPDATE at_p1_item SET code = $1 WHERE id = $2")
                    .bind(20)
                    .bind(1),
            )
            .await?;
            tx.commit().await
        })
        .await;
    assert!(
        matches!(committed, Err(AtError::Database(_))),
        "{committed:?}"
    );
    assert_eq!(global.rollback().await?, GlobalStatus::Rollbacked);
    let rows: Vec<(i32, i32)> = sqlx::query_as("SELECT id, code FROM at_p1_item ORDER BY id")
        .fetch_all(&pool)
        .await?;
    assert_eq!(rows, vec![(1, 10), (2, 20)]);
    let (undo_rows,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_p1_undo")
        .fetch_one(&pool)
        .await?;
    assert_eq!(
        undo_rows, 0,
        "the TC asked for a rollback of a branch reported as failed (a marker row was written)"
    );
    Ok(())
}
