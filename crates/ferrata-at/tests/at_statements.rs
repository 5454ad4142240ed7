//! AT statements on real MariaDB and PostgreSQL servers with a real ferrata-server: what runs
//! untouched outside a global transaction, what is refused before it touches data, generated
//! and composite keys restored by a rollback, and global locks between two transactions.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;
use ferrata_testkit::database_url;
use support::tc_and_client;

use std::time::Duration;

use ferrata::GlobalStatus;
use ferrata_at::lock_retry::LockRetryPolicy;
use ferrata_at::undo::Value;
use ferrata_at::{AtDataSource, AtError, AtSettings, query};

/// `?` placeholders rewritten to `$n` for PostgreSQL.
fn dialect_sql(sql: &str, postgres: bool) -> String {
    if !postgres {
        return sql.to_owned();
    }
    let mut out = String::new();
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push_str(&format!("${n}"));
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! statements_suite {
    ($name:ident, $db:ty, $url:literal, $postgres:literal, $serial:literal, $unparsed:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> anyhow::Result<()> {
            let (_tc, client) = tc_and_client(stringify!($name)).await?;
            let pool = sqlx::Pool::<$db>::connect(&database_url($url)).await?;
            for ddl in [
                "DROP TABLE IF EXISTS at_stmt_item",
                "DROP TABLE IF EXISTS at_stmt_serial",
                "DROP TABLE IF EXISTS at_stmt_nokey",
                "DROP TABLE IF EXISTS at_stmt_undo",
                "CREATE TABLE at_stmt_item (shop INT NOT NULL, sku VARCHAR(16) NOT NULL, qty INT NOT NULL, PRIMARY KEY (shop, sku))",
                concat!("CREATE TABLE at_stmt_serial (id ", $serial, ", label VARCHAR(16) NOT NULL)"),
                "CREATE TABLE at_stmt_nokey (label VARCHAR(16) NOT NULL)",
                "INSERT INTO at_stmt_item (shop, sku, qty) VALUES (1, 'a', 10), (1, 'b', 20), (2, 'a', 30)",
            ] {
                sqlx::query(ddl).execute(&pool).await?;
            }
            let sql = |text: &str| dialect_sql(text, $postgres);
            let settings = AtSettings {
                lock_retry: LockRetryPolicy {
                    interval: Duration::from_millis(10),
                    retries: 3,
                    rollback_on_conflict: true,
                },
                ..AtSettings::default()
            };
            let at = AtDataSource::builder(pool.clone(), client.clone())
                .undo_table("at_stmt_undo")
                .settings(settings)
                .build()
                .await?;
            let undo_rows = || async {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_stmt_undo")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                n
            };
            let qty = |shop: i32, sku: &'static str| {
                let pool = pool.clone();
                let select = sql("SELECT qty FROM at_stmt_item WHERE shop = ? AND sku = ?");
                async move {
                    let (q,): (i32,) = sqlx::query_as(&select).bind(shop).bind(sku).fetch_one(&pool).await.unwrap();
                    q
                }
            };

            // Outside a global transaction statements run untouched: no undo log.
            let mut tx = at.begin().await?;
            assert!(tx.xid().is_none());
            tx.execute(query(sql("UPDATE at_stmt_item SET qty = qty + 1 WHERE shop = ?")).bind(Value::Int(2))).await?;
            // Not even parsed: SQL the AT parser does not know still runs.
            for unparsed in $unparsed {
                tx.execute(query(unparsed)).await?;
            }
            tx.commit().await?;
            assert_eq!(qty(2, "a").await, 31);
            assert_eq!(undo_rows().await, 0);

            // Composite keys and generated keys are restored by a global rollback; statements
            // AT cannot make safe are refused before they touch anything.
            let global = client.begin(Duration::from_secs(60), "at-statements").await?;
            let refused = global
                .scope(async {
                    let mut tx = at.begin().await?;
                    tx.execute(query(sql("UPDATE at_stmt_item SET qty = qty * 2 WHERE shop = ?")).bind(Value::Int(1))).await?;
                    tx.execute(query(sql("INSERT INTO at_stmt_serial (label) VALUES (?), (?)")).bind(Value::String("x".into())).bind(Value::String("y".into()))).await?;
                    let key_update = tx
                        .execute(query(sql("UPDATE at_stmt_item SET sku = ? WHERE shop = ?")).bind(Value::String("z".into())).bind(Value::Int(2)))
                        .await;
                    let no_key = tx
                        .execute(query(sql("UPDATE at_stmt_nokey SET label = ?")).bind(Value::String("z".into())))
                        .await;
                    tx.commit().await?;
                    Ok::<_, AtError>((key_update, no_key))
                })
                .await?;
            assert!(matches!(refused.0, Err(AtError::Unsupported(_))), "{:?}", refused.0);
            assert!(matches!(refused.1, Err(AtError::Meta(_))), "{:?}", refused.1);
            assert_eq!(qty(1, "a").await, 20);
            let (serials,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_stmt_serial").fetch_one(&pool).await?;
            assert_eq!(serials, 2);
            assert_eq!(global.rollback().await?, GlobalStatus::Rollbacked);
            assert_eq!((qty(1, "a").await, qty(1, "b").await, qty(2, "a").await), (10, 20, 31));
            let (serials,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_stmt_serial").fetch_one(&pool).await?;
            assert_eq!(serials, 0, "generated keys were found and their rows deleted");
            assert_eq!(undo_rows().await, 0);

            // A row held by one global transaction: another one's SELECT … FOR UPDATE waits
            // for it and gives up after the retries; after the holder commits it goes through.
            let holder = client.begin(Duration::from_secs(60), "at-holder").await?;
            holder
                .scope(async {
                    let mut tx = at.begin().await?;
                    tx.execute(query(sql("UPDATE at_stmt_item SET qty = 0 WHERE shop = ? AND sku = ?")).bind(Value::Int(1)).bind(Value::String("a".into()))).await?;
                    tx.commit().await
                })
                .await?;
            let waiter = client.begin(Duration::from_secs(60), "at-waiter").await?;
            let select = sql("SELECT qty FROM at_stmt_item WHERE shop = ? AND sku = ? FOR UPDATE");
            let blocked = waiter
                .scope(async {
                    let mut tx = at.begin().await?;
                    tx.fetch_all(query(select.clone()).bind(Value::Int(1)).bind(Value::String("a".into()))).await.map(|rows| rows.len())
                })
                .await;
            assert!(matches!(blocked, Err(AtError::LockWaitTimeout(_))), "{blocked:?}");
            assert!(holder.commit().await?.is_commit_decided());
            let read = waiter
                .scope(async {
                    let mut tx = at.begin().await?;
                    let rows = tx.fetch_all(query(select.clone()).bind(Value::Int(1)).bind(Value::String("a".into()))).await?;
                    tx.commit().await?;
                    Ok::<_, AtError>(rows.len())
                })
                .await?;
            assert_eq!(read, 1);
            waiter.rollback().await?;

            // Outside any global transaction, a global-lock transaction (Java's @GlobalLock)
            // may not commit a change to a row a global transaction holds; a one-statement
            // branch of another global transaction rolls back and retries, then gives up.
            let set_qty = sql("UPDATE at_stmt_item SET qty = ? WHERE shop = ? AND sku = ?");
            let set = |n: i32| query(set_qty.clone()).bind(n).bind(2).bind("a");
            let holder = client.begin(Duration::from_secs(60), "at-holder-2").await?;
            holder
                .scope(async {
                    let mut tx = at.begin().await?;
                    tx.execute(set(5)).await?;
                    tx.commit().await
                })
                .await?;
            let mut guarded = at.begin_with_global_lock().await?;
            assert!(guarded.xid().is_none());
            guarded.execute(set(6)).await?;
            assert!(matches!(guarded.commit().await, Err(AtError::LockWaitTimeout(_))));
            assert_eq!(qty(2, "a").await, 5, "the guarded change was rolled back");
            let other = client.begin(Duration::from_secs(60), "at-other").await?;
            let conflicted = other.scope(at.execute(set(7))).await;
            assert!(matches!(conflicted, Err(AtError::LockWaitTimeout(_))), "{conflicted:?}");
            assert_eq!(qty(2, "a").await, 5);
            assert_eq!(holder.rollback().await?, GlobalStatus::Rollbacked);
            assert_eq!(qty(2, "a").await, 31);
            assert_eq!(other.scope(at.execute(set(7))).await?, 1);
            assert_eq!(other.rollback().await?, GlobalStatus::Rollbacked);
            assert_eq!(qty(2, "a").await, 31);
            let mut guarded = at.begin_with_global_lock().await?;
            guarded.execute(set(8)).await?;
            guarded.commit().await?;
            assert_eq!(qty(2, "a").await, 8, "no global transaction holds the row any more");
            Ok(())
        }
    };
}

statements_suite!(
    mariadb_at_statements,
    sqlx::MySql,
    "FERRATA_MYSQL_URL",
    false,
    "BIGINT AUTO_INCREMENT PRIMARY KEY",
    // A comma join, which sqlparser does not parse in an UPDATE.
    ["UPDATE at_stmt_item a, at_stmt_serial b SET a.qty = a.qty WHERE 1 = 0"]
);
statements_suite!(
    postgres_at_statements,
    sqlx::Postgres,
    "FERRATA_POSTGRES_URL",
    true,
    "BIGSERIAL PRIMARY KEY",
    [] as [&str; 0]
);
