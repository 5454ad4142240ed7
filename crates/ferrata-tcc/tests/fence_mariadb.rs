//! The TCC fence on a real MariaDB/MySQL server (FERRATA_MYSQL_URL, from scripts/services).
// The suite's helpers are test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

#[path = "support/fence_suite.rs"]
mod fence_suite;
mod support;

fence_suite!(
    db = sqlx::MySql,
    url_var = "FERRATA_MYSQL_URL",
    ledger_ddl = "CREATE TABLE IF NOT EXISTS tcc_test_ledger \
                  (xid VARCHAR(128) NOT NULL, branch_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL)",
    insert_ledger = "INSERT INTO tcc_test_ledger (xid, branch_id, phase) VALUES (?, ?, ?)",
    count_ledger = "SELECT COUNT(*) FROM tcc_test_ledger WHERE xid = ? AND phase = ?",
    backdate = "UPDATE tcc_fence_log SET gmt_modified = NOW(3) - INTERVAL 2 HOUR WHERE xid = ?",
    columns_sql = "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
                   FROM information_schema.COLUMNS \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'tcc_fence_log' \
                   ORDER BY ORDINAL_POSITION",
    columns = [
        ("xid", "varchar(128)"),
        ("branch_id", "bigint(20)"),
        ("action_name", "varchar(64)"),
        ("status", "tinyint(4)"),
        ("gmt_create", "datetime(3)"),
        ("gmt_modified", "datetime(3)"),
    ],
    lock_wait = waits_for_a_lock,
);

/// True while an InnoDB transaction waits for a row lock on `table`. Read from the monitor
/// output: information_schema.INNODB_TRX leaves out a transaction whose first statement is
/// the waiting locking read issued through a prepared statement.
async fn waits_for_a_lock(pool: &sqlx::MySqlPool, table: &str) -> bool {
    let (_, _, status): (String, String, String) = sqlx::query_as("SHOW ENGINE INNODB STATUS")
        .fetch_one(pool)
        .await
        .unwrap();
    let table = format!(".`{table}` trx id");
    status.split("---TRANSACTION").any(|trx| {
        trx.contains("TRX HAS BEEN WAITING") && trx.lines().any(|line| line.contains(&table))
    })
}

/// InnoDB's count of deadlocks detected since the server started.
async fn innodb_deadlocks(fence: &TccFence<sqlx::MySql>) -> u64 {
    let (_, value): (String, String) = sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
        .fetch_one(fence.pool())
        .await
        .unwrap();
    value.parse().unwrap()
}

/// Two transactions that hold a gap lock on the same gap of the fence table's primary key and
/// both insert into that gap deadlock (error 1213). An empty rollback takes such a gap lock (its
/// SELECT ... FOR UPDATE finds no row) before inserting its status-4 row, so under REPEATABLE
/// READ it deadlocks with another empty rollback of a neighbouring branch, or with any writer
/// doing the same. Here the other transaction is the test's own, made heavier (more rows
/// changed) so that InnoDB rolls back the fence's transaction; the fence must run its whole
/// transaction again and succeed.
#[tokio::test]
async fn empty_rollback_picked_as_deadlock_victim_is_run_again() {
    const TABLE: &str = "tcc_fence_deadlock";
    let fence = fence_on(TABLE).await;
    let xid = support::unique_xid();
    let deadlocks_before = innodb_deadlocks(&fence).await;

    let mut other = fence.pool().begin().await.unwrap();
    for n in 0..200_i64 {
        sqlx::query("INSERT INTO tcc_test_ledger (xid, branch_id, phase) VALUES (?, ?, 'weight')")
            .bind(&xid)
            .bind(n)
            .execute(&mut *other)
            .await
            .unwrap();
    }
    // Locks the gap where this xid's branches would go: the read finds no row.
    let found: Option<i8> = sqlx::query_scalar(
        "SELECT status FROM tcc_fence_deadlock WHERE xid = ? AND branch_id = 1 FOR UPDATE",
    )
    .bind(&xid)
    .fetch_optional(&mut *other)
    .await
    .unwrap();
    assert_eq!(found, None);

    let calls = AtomicUsize::new(0);
    let rollback = fence.fenced_rollback(
        &xid,
        2,
        "ledger",
        business(&xid, 2, "cancel", &calls, Ok(true)),
    );
    let collide = async {
        // The fence's INSERT of branch 2 waits for this transaction's gap lock...
        until_a_statement_waits_on(&fence, TABLE).await;
        // ...and this INSERT of branch 3 waits for the fence's gap lock: a cycle, which InnoDB
        // breaks by rolling back the lighter transaction, the fence's.
        let inserted = sqlx::query(
            "INSERT INTO tcc_fence_deadlock \
             (xid, branch_id, action_name, status, gmt_create, gmt_modified) \
             VALUES (?, 3, 'other', 1, NOW(3), NOW(3))",
        )
        .bind(&xid)
        .execute(&mut *other)
        .await;
        assert!(
            inserted.is_ok(),
            "InnoDB should have rolled back the fence's lighter transaction: {inserted:?}"
        );
        other.rollback().await.unwrap();
    };
    let (rolled_back, ()) = tokio::join!(rollback, collide);

    assert!(
        innodb_deadlocks(&fence).await > deadlocks_before,
        "the test must have provoked a deadlock"
    );
    assert!(
        matches!(rolled_back, Ok(true)),
        "the empty rollback must survive being the deadlock victim: {rolled_back:?}"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing to cancel");
    assert_eq!(
        fence.status(&xid, 2).await.unwrap(),
        Some(FenceStatus::Suspended)
    );
}
