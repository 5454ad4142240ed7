//! The undo table on real MariaDB and PostgreSQL servers (FERRATA_MYSQL_URL and
//! FERRATA_POSTGRES_URL, from scripts/services): Seata's DDL, the unique (xid, branch_id) key
//! that makes the global-finished marker stop a late phase 1, batched and age-based deletes.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use ferrata_testkit::database_url;

use ferrata_at::undo_table::{Inserted, LogStatus, UndoRow, UndoTable};
use sqlx::Connection;

/// A fresh xid per test run, so runs against one database do not see each other's rows.
fn xid(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("127.0.0.1:8091:{tag}{nanos}")
}

macro_rules! undo_table_suite {
    ($name:ident, $db:ty, $conn:ty, $url:literal, $table:literal, $backdate:literal) => {
        #[tokio::test]
        async fn $name() -> anyhow::Result<()> {
            let mut conn = <$conn>::connect(&database_url($url)).await?;
            sqlx::query(concat!("DROP TABLE IF EXISTS ", $table))
                .execute(&mut conn)
                .await?;
            let table = UndoTable::<$db>::new($table)?;
            table.create(&mut conn).await?;
            table.create(&mut conn).await?; // idempotent
            let xid = xid("undo");

            // Phase 1 writes the branch's row; the rollback reads and locks it.
            let written = table
                .insert(
                    &mut conn,
                    11,
                    &xid,
                    "serializer=jackson&compressorType=NONE",
                    b"[1]",
                    LogStatus::Normal,
                )
                .await?;
            assert_eq!(written, Inserted::Yes);
            let mut tx = conn.begin().await?;
            assert_eq!(
                table.lock(&mut tx, 11, &xid).await?,
                Some(UndoRow {
                    context: "serializer=jackson&compressorType=NONE".into(),
                    rollback_info: b"[1]".to_vec(),
                    status: LogStatus::Normal,
                })
            );
            assert_eq!(table.lock(&mut tx, 12, &xid).await?, None);
            assert_eq!(table.delete(&mut tx, 11, &xid).await?, 1);
            tx.commit().await?;

            // A rollback that finds nothing leaves a marker; a late phase 1 then cannot insert.
            assert_eq!(
                table.insert_marker(&mut conn, 12, &xid).await?,
                Inserted::Yes
            );
            let late = table
                .insert(
                    &mut conn,
                    12,
                    &xid,
                    "serializer=jackson",
                    b"[2]",
                    LogStatus::Normal,
                )
                .await?;
            assert_eq!(late, Inserted::AlreadyExists);
            let marker = table.lock(&mut conn, 12, &xid).await?.unwrap();
            assert_eq!(marker.status, LogStatus::GlobalFinished);
            assert_eq!(marker.rollback_info, b"{}");
            assert_eq!(
                marker.context,
                ferrata_at::undo::global_finished().context.to_string()
            );
            assert_eq!(
                table.insert_marker(&mut conn, 12, &xid).await?,
                Inserted::AlreadyExists
            );

            // Committed branches are deleted in batches larger than one IN list.
            let branches: Vec<(i64, String)> = (1000..3500).map(|b| (b, xid.clone())).collect();
            for (branch_id, xid) in &branches {
                let _ = table
                    .insert(
                        &mut conn,
                        *branch_id,
                        xid,
                        "serializer=jackson",
                        b"[]",
                        LogStatus::Normal,
                    )
                    .await?;
            }
            assert_eq!(table.delete_many(&mut conn, &branches).await?, 2500);
            assert_eq!(table.delete_many(&mut conn, &branches).await?, 0);

            // Age-based cleanup deletes old rows only, in batches until none is left.
            for branch_id in 5000..8100 {
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
            sqlx::query($backdate).execute(&mut conn).await?;
            assert_eq!(table.delete_older_than(&mut conn, 7).await?, 3100);
            assert!(
                table.lock(&mut conn, 12, &xid).await?.is_some(),
                "a fresh marker stays"
            );
            Ok(())
        }
    };
}

undo_table_suite!(
    mariadb_undo_table,
    sqlx::MySql,
    sqlx::MySqlConnection,
    "FERRATA_MYSQL_URL",
    "at_test_undo_log",
    "UPDATE at_test_undo_log SET log_created = now(6) - INTERVAL 8 DAY WHERE branch_id >= 5000"
);

undo_table_suite!(
    postgres_undo_table,
    sqlx::Postgres,
    sqlx::PgConnection,
    "FERRATA_POSTGRES_URL",
    "at_test_undo_log",
    "UPDATE at_test_undo_log SET log_created = now() - interval '8 days' WHERE branch_id >= 5000"
);

#[test]
fn table_names_are_checked_before_they_reach_sql() {
    assert!(UndoTable::<sqlx::MySql>::new("undo_log; DROP TABLE x").is_err());
    assert!(UndoTable::<sqlx::Postgres>::new("app.undo_log").is_ok());
}
