//! `RETURNING` through `fetch_all` on real MariaDB and PostgreSQL with a real ferrata-server:
//! the application gets its rows, and the changes are recorded like any other, so a global
//! rollback removes the inserted rows and restores the updated and deleted ones.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;
use ferrata_testkit::database_url;
use support::tc_and_client;

use std::time::Duration;

use ferrata::GlobalStatus;
use ferrata_at::undo::Value;
use ferrata_at::{AtDataSource, AtError, query};

use sqlx::Row;

macro_rules! returning_suite {
    ($name:ident, $db:ty, $url:literal, $postgres:literal, $serial:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> anyhow::Result<()> {
            let (_tc, client) = tc_and_client(stringify!($name)).await?;
            let pool = sqlx::Pool::<$db>::connect(&database_url($url)).await?;
            for ddl in [
                "DROP TABLE IF EXISTS at_ret_item",
                "DROP TABLE IF EXISTS at_ret_serial",
                "DROP TABLE IF EXISTS at_ret_undo",
                "CREATE TABLE at_ret_item (id INT PRIMARY KEY, qty INT NOT NULL)",
                concat!("CREATE TABLE at_ret_serial (id ", $serial, ", label VARCHAR(16) NOT NULL)"),
                "INSERT INTO at_ret_item (id, qty) VALUES (1, 10), (2, 20)",
            ] {
                sqlx::query(ddl).execute(&pool).await?;
            }
            // `?` for MariaDB, `$n` for PostgreSQL.
            let p = |n: usize| if $postgres { format!("${n}") } else { "?".to_owned() };
            let at = AtDataSource::builder(pool.clone(), client.clone())
                .undo_table("at_ret_undo")
                .build()
                .await?;
            let items = || async {
                let rows: Vec<(i32, i32)> = sqlx::query_as("SELECT id, qty FROM at_ret_item ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                rows
            };
            let labels = || async {
                let rows: Vec<(String,)> = sqlx::query_as("SELECT label FROM at_ret_serial ORDER BY id")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                rows.into_iter().map(|(l,)| l).collect::<Vec<_>>()
            };

            let global = client.begin(Duration::from_secs(60), "at-returning").await?;
            let (inserted, updated, deleted) = global
                .scope(async {
                    let mut tx = at.begin().await?;
                    let inserted = tx
                        .fetch_all(
                            query(format!("INSERT INTO at_ret_serial (label) VALUES ({}), ({}) RETURNING label", p(1), p(2)))
                                .bind(Value::String("x".into()))
                                .bind(Value::String("y".into())),
                        )
                        .await?;
                    let inserted: Vec<String> =
                        inserted.iter().map(|row| row.get::<String, _>(0)).collect();
                    // MariaDB has no UPDATE … RETURNING.
                    let updated: Vec<i32> = if $postgres {
                        tx.fetch_all(
                            query(format!("UPDATE at_ret_item SET qty = qty + 5 WHERE id = {} RETURNING qty", p(1)))
                                .bind(Value::Int(1)),
                        )
                        .await?
                        .iter()
                        .map(|row| row.get::<i32, _>("qty"))
                        .collect()
                    } else {
                        tx.execute(query("UPDATE at_ret_item SET qty = qty + 5 WHERE id = ?").bind(Value::Int(1)))
                            .await?;
                        vec![15]
                    };
                    let deleted: Vec<(i32, i32)> = tx
                        .fetch_all(query(format!("DELETE FROM at_ret_item WHERE id = {} RETURNING id, qty", p(1))).bind(Value::Int(2)))
                        .await?
                        .iter()
                        .map(|row| (row.get::<i32, _>(0), row.get::<i32, _>(1)))
                        .collect();
                    tx.commit().await?;
                    Ok::<_, AtError>((inserted, updated, deleted))
                })
                .await?;
            assert_eq!(inserted, ["x", "y"], "the application's own RETURNING list");
            assert_eq!(updated, [15]);
            assert_eq!(deleted, [(2, 20)]);
            assert_eq!(items().await, [(1, 15)]);
            assert_eq!(labels().await, ["x", "y"]);
            assert_eq!(global.rollback().await?, GlobalStatus::Rollbacked);
            assert_eq!(items().await, [(1, 10), (2, 20)], "updated and deleted rows restored");
            assert!(labels().await.is_empty(), "inserted rows found by their keys and removed");

            // Committed, the rows stay; an upsert with RETURNING is refused through fetch_all
            // before it runs.
            let global = client.begin(Duration::from_secs(60), "at-returning-commit").await?;
            let upsert = global
                .scope(async {
                    let mut tx = at.begin().await?;
                    let rows = tx
                        .fetch_all(query(format!("INSERT INTO at_ret_serial (label) VALUES ({}) RETURNING id", p(1))).bind(Value::String("z".into())))
                        .await?;
                    assert_eq!(rows.len(), 1);
                    let upsert_sql = if $postgres {
                        "INSERT INTO at_ret_item (id, qty) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET qty = 1 RETURNING qty"
                    } else {
                        "INSERT IGNORE INTO at_ret_item (id, qty) VALUES (1, 1) RETURNING qty"
                    };
                    let upsert = tx.fetch_all(query(upsert_sql)).await;
                    tx.commit().await?;
                    Ok::<_, AtError>(upsert)
                })
                .await?;
            assert!(matches!(upsert, Err(AtError::NotYetSupported(_))), "{upsert:?}");
            assert_eq!(global.commit().await?, GlobalStatus::Committed);
            assert_eq!(labels().await, ["z"]);
            assert_eq!(items().await, [(1, 10), (2, 20)], "the refused upsert changed nothing");
            Ok(())
        }
    };
}

#[cfg(feature = "mysql")]
returning_suite!(
    returning_on_mariadb,
    sqlx::MySql,
    "FERRATA_MYSQL_URL",
    false,
    "BIGINT AUTO_INCREMENT PRIMARY KEY"
);

#[cfg(feature = "postgres")]
returning_suite!(
    returning_on_postgres,
    sqlx::Postgres,
    "FERRATA_POSTGRES_URL",
    true,
    "SERIAL PRIMARY KEY"
);
