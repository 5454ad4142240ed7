//! AT end to end on real MariaDB and PostgreSQL servers with a real ferrata-server: a global
//! commit keeps the changes and deletes the undo log; a global rollback restores every row
//! exactly and releases the locks; a row changed outside the transaction stops the rollback
//! (RollbackFailed, row left alone) instead of being overwritten.
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;
use ferrata_testkit::database_url;
use support::tc_and_client;

use std::time::Duration;

use ferrata::TransactionOptions;
use ferrata_at::undo::{Decimal, Value};
use ferrata_at::{AtDataSource, AtError, query};
use ferrata_testkit::eventually;

const WAIT: Duration = Duration::from_secs(30);

fn decimal(text: &str) -> Value {
    Value::Decimal(Decimal::parse(text).unwrap())
}

macro_rules! at_flow_suite {
    ($name:ident, $db:ty, $url:literal, $money:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() -> anyhow::Result<()> {
            let (_tc, client) = tc_and_client(stringify!($name)).await?;
            let pool = sqlx::Pool::<$db>::connect(&database_url($url)).await?;
            for ddl in [
                "DROP TABLE IF EXISTS at_flow_account",
                "DROP TABLE IF EXISTS at_flow_undo",
                concat!(
                    "CREATE TABLE at_flow_account (id BIGINT PRIMARY KEY, owner VARCHAR(32) NOT NULL, money ",
                    $money,
                    " NOT NULL)"
                ),
                "INSERT INTO at_flow_account (id, owner, money) VALUES (1, 'ann', 100.00), (2, 'bob', 50.00)",
            ] {
                sqlx::query(ddl).execute(&pool).await?;
            }
            let at = AtDataSource::builder(pool.clone(), client.clone())
                .undo_table("at_flow_undo")
                .async_commit_interval(Duration::from_millis(50))
                .build()
                .await?;
            let sql = |mysql: &'static str, postgres: &'static str| {
                if $url == "FERRATA_MYSQL_URL" { mysql } else { postgres }
            };
            let update = sql(
                "UPDATE at_flow_account SET money = money - ? WHERE id = ?",
                "UPDATE at_flow_account SET money = money - $1 WHERE id = $2",
            );
            let insert = sql(
                "INSERT INTO at_flow_account (id, owner, money) VALUES (?, ?, ?)",
                "INSERT INTO at_flow_account (id, owner, money) VALUES ($1, $2, $3)",
            );
            let delete = sql(
                "DELETE FROM at_flow_account WHERE id = ?",
                "DELETE FROM at_flow_account WHERE id = $1",
            );
            let work = |fail: bool| {
                let at = at.clone();
                async move {
                    let mut tx = at.begin().await?;
                    assert!(tx.xid().is_some(), "the global transaction's xid is picked up");
                    assert_eq!(tx.execute(query(update).bind(decimal("10.00")).bind(Value::Long(1))).await?, 1);
                    assert_eq!(
                        tx.execute(query(insert).bind(Value::Long(3)).bind(Value::String("cy".into())).bind(decimal("5.00")))
                            .await?,
                        1
                    );
                    assert_eq!(tx.execute(query(delete).bind(Value::Long(2))).await?, 1);
                    tx.commit().await?;
                    if fail {
                        return Err(AtError::Finished);
                    }
                    Ok::<_, AtError>(())
                }
            };
            let select_rows = sql(
                "SELECT id, owner, CAST(money AS CHAR) FROM at_flow_account ORDER BY id",
                "SELECT id, owner, money::text FROM at_flow_account ORDER BY id",
            );
            let rows = || async {
                let rows: Vec<(i64, String, String)> = sqlx::query_as(select_rows)
                .fetch_all(&pool)
                .await
                .unwrap();
                rows
            };
            let undo_rows = || async {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM at_flow_undo")
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                n
            };
            let original = vec![
                (1, "ann".to_owned(), "100.00".to_owned()),
                (2, "bob".to_owned(), "50.00".to_owned()),
            ];

            // A global rollback restores every row and deletes the undo log.
            let rolled = client
                .in_global_transaction(TransactionOptions::new("at-rollback"), |_| work(true))
                .await;
            assert!(rolled.is_err());
            assert!(eventually(WAIT, || async { rows().await == original }).await, "{:?}", rows().await);
            assert!(eventually(WAIT, || async { undo_rows().await == 0 }).await);

            // A global commit keeps the changes; the undo log is deleted later.
            client
                .in_global_transaction(TransactionOptions::new("at-commit"), |_| work(false))
                .await
                .unwrap();
            assert_eq!(
                rows().await,
                vec![
                    (1, "ann".to_owned(), "90.00".to_owned()),
                    (3, "cy".to_owned(), "5.00".to_owned()),
                ]
            );
            assert!(eventually(WAIT, || async { undo_rows().await == 0 }).await);

            // A row changed outside the global transaction is not overwritten by its rollback.
            let global = client.begin(Duration::from_secs(60), "at-dirty").await?;
            global
                .scope(async {
                    let mut tx = at.begin().await?;
                    tx.execute(query(update).bind(decimal("1.00")).bind(Value::Long(1))).await?;
                    tx.commit().await
                })
                .await?;
            sqlx::query("UPDATE at_flow_account SET money = 999.00 WHERE id = 1")
                .execute(&pool)
                .await?;
            let refused = global.rollback().await.unwrap_err();
            assert!(refused.to_string().contains("RollbackFailed"), "{refused}");
            assert_eq!(rows().await[0], (1, "ann".to_owned(), "999.00".to_owned()));
            assert_eq!(undo_rows().await, 1, "the undo log stays for the operator");
            Ok(())
        }
    };
}

at_flow_suite!(
    mariadb_at_flow,
    sqlx::MySql,
    "FERRATA_MYSQL_URL",
    "DECIMAL(10,2)"
);
at_flow_suite!(
    postgres_at_flow,
    sqlx::Postgres,
    "FERRATA_POSTGRES_URL",
    "NUMERIC(10,2)"
);
