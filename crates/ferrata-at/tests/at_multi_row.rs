//! Upserts, UPDATE … JOIN and multi-table DELETE under AT on real MariaDB and PostgreSQL
//! servers with a real ferrata-server: a global rollback puts every table back as it was.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;
use ferrata_testkit::database_url;
use support::connect;

use std::time::Duration;

use ferrata::GlobalStatus;
use ferrata_at::{AtDataSource, AtError, query};
use ferrata_testkit::{TcProcess, server_binary};

type Stock = Vec<(i32, String, i32)>;

async fn stock<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Stock
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    (i32, String, i32): for<'r> sqlx::FromRow<'r, DB::Row>,
{
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query_as("SELECT id, sku, qty FROM at_mr_stock ORDER BY id")
        .fetch_all(&mut *conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_upsert_join_and_multi_delete_roll_back() -> anyhow::Result<()> {
    let tc = TcProcess::start_in_temp_dir_on(&server_binary(), "127.0.0.1:0".parse()?)?;
    let client = connect("at-multi-row-mariadb", &tc).await?;
    let pool = sqlx::MySqlPool::connect(&database_url("FERRATA_MYSQL_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_mr_stock, at_mr_order, at_mr_undo",
        "CREATE TABLE at_mr_stock (id INT PRIMARY KEY, sku VARCHAR(16) NOT NULL UNIQUE, qty INT NOT NULL)",
        "CREATE TABLE at_mr_order (id INT PRIMARY KEY, stock_id INT NOT NULL, amount INT NOT NULL)",
        "INSERT INTO at_mr_stock VALUES (1, 'apple', 10), (2, 'pear', 20)",
        "INSERT INTO at_mr_order VALUES (7, 1, 3), (8, 2, 4)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    let orders = || async {
        let rows: Vec<(i32, i32, i32)> =
            sqlx::query_as("SELECT id, stock_id, amount FROM at_mr_order ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        rows
    };
    let (stock_before, orders_before) = (stock(&pool).await, orders().await);
    let at = AtDataSource::builder(pool.clone(), client.clone())
        .undo_table("at_mr_undo")
        .build()
        .await?;
    let global = client
        .begin(Duration::from_secs(60), "at-multi-row")
        .await?;
    global
        .scope(async {
            let mut tx = at.begin().await?;
            // 'apple' exists (by its unique sku, under another id); 'plum' is new.
            tx.execute(
                query("INSERT INTO at_mr_stock (id, sku, qty) VALUES (?, ?, ?), (?, ?, ?) ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty)")
                    .bind(11).bind("apple").bind(5).bind(3).bind("plum").bind(1),
            )
            .await?;
            tx.execute(
                query("UPDATE at_mr_stock s JOIN at_mr_order o ON o.stock_id = s.id SET s.qty = s.qty - o.amount, o.amount = 0 WHERE o.id = ?")
                    .bind(7),
            )
            .await?;
            tx.execute(
                query("DELETE s, o FROM at_mr_stock s JOIN at_mr_order o ON o.stock_id = s.id WHERE s.id = ?")
                    .bind(2),
            )
            .await?;
            // 'plum' exists now and stays as it is; 'fig' is new.
            tx.execute(
                query("INSERT IGNORE INTO at_mr_stock (id, sku, qty) VALUES (?, ?, ?), (?, ?, ?)")
                    .bind(3).bind("plum").bind(99).bind(4).bind("fig").bind(2),
            )
            .await?;
            tx.commit().await
        })
        .await?;
    assert_eq!(
        stock(&pool).await,
        vec![
            (1, "apple".into(), 12),
            (3, "plum".into(), 1),
            (4, "fig".into(), 2)
        ],
        "10 + 5 - 3 apples, a new plum and fig, the pear deleted with its order"
    );
    assert_eq!(orders().await, vec![(7, 1, 0)]);
    assert_eq!(global.rollback().await?, GlobalStatus::Rollbacked);
    assert_eq!(stock(&pool).await, stock_before);
    assert_eq!(orders().await, orders_before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_on_conflict_rolls_back() -> anyhow::Result<()> {
    let tc = TcProcess::start_in_temp_dir_on(&server_binary(), "127.0.0.1:0".parse()?)?;
    let client = connect("at-multi-row-postgres", &tc).await?;
    let pool = sqlx::PgPool::connect(&database_url("FERRATA_POSTGRES_URL")).await?;
    for ddl in [
        "DROP TABLE IF EXISTS at_mr_stock, at_mr_undo",
        "CREATE TABLE at_mr_stock (id INT PRIMARY KEY, sku VARCHAR(16) NOT NULL UNIQUE, qty INT NOT NULL)",
        "INSERT INTO at_mr_stock VALUES (1, 'apple', 10), (2, 'pear', 20)",
    ] {
        sqlx::query(ddl).execute(&pool).await?;
    }
    let before = stock(&pool).await;
    let at = AtDataSource::builder(pool.clone(), client.clone())
        .undo_table("at_mr_undo")
        .build()
        .await?;
    let global = client
        .begin(Duration::from_secs(60), "at-on-conflict")
        .await?;
    global
        .scope(async {
            let mut tx = at.begin().await?;
            tx.execute(
                query("INSERT INTO at_mr_stock (id, sku, qty) VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT (id) DO UPDATE SET qty = at_mr_stock.qty + EXCLUDED.qty")
                    .bind(2).bind("pear").bind(5).bind(3).bind("plum").bind(1),
            )
            .await?;
            tx.commit().await?;
            Ok::<_, AtError>(())
        })
        .await?;
    assert_eq!(
        stock(&pool).await,
        vec![
            (1, "apple".into(), 10),
            (2, "pear".into(), 25),
            (3, "plum".into(), 1)
        ]
    );
    assert_eq!(global.rollback().await?, GlobalStatus::Rollbacked);
    assert_eq!(stock(&pool).await, before);
    Ok(())
}
