//! Every form AT refuses inside a global transaction, with the exact message the user sees.

use ferrata_at::sql::{Dialect, Statement, UnsupportedReason, parse};

fn refused(sql: &str, d: Dialect) -> UnsupportedReason {
    match parse(sql, d).expect("parses").statement {
        Statement::Unsupported { reason } => reason,
        other => panic!("{sql} was accepted as {other:?}"),
    }
}

fn check(sql: &str, d: Dialect, reason: UnsupportedReason, message: &str) {
    let got = refused(sql, d);
    assert_eq!(got, reason, "{sql}");
    assert_eq!(got.to_string(), message, "{sql}");
}

#[test]
fn multiple_statements() {
    check(
        "UPDATE t SET a = 1 WHERE id = 1; DELETE FROM t WHERE id = 2",
        Dialect::MySql,
        UnsupportedReason::MultipleStatements(2),
        "AT mode executes one statement per call; this string holds 2 statements: execute them separately",
    );
    // A trailing semicolon is one statement.
    assert!(matches!(
        parse("DELETE FROM t WHERE id = 1;", Dialect::MySql)
            .unwrap()
            .statement,
        Statement::Delete(_)
    ));
}

#[test]
fn insert_select() {
    for (sql, d) in [
        ("INSERT INTO t (id) SELECT id FROM u", Dialect::MySql),
        (
            "INSERT INTO t SELECT * FROM u WHERE k = $1",
            Dialect::Postgres,
        ),
    ] {
        check(
            sql,
            d,
            UnsupportedReason::InsertSelect,
            "AT mode does not support INSERT ... SELECT: the inserted rows cannot be imaged; insert with VALUES instead",
        );
    }
}

#[test]
fn replace_and_merge() {
    check(
        "REPLACE INTO t (id, v) VALUES (1, 2)",
        Dialect::MySql,
        UnsupportedReason::Replace,
        "AT mode does not support REPLACE: it deletes and inserts rows it cannot image; use INSERT ... ON DUPLICATE KEY UPDATE",
    );
    check(
        "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
        Dialect::Postgres,
        UnsupportedReason::Merge,
        "AT mode does not support MERGE; use INSERT ... ON CONFLICT or separate statements",
    );
}

#[test]
fn in_subquery_like_java() {
    for (sql, d) in [
        (
            "UPDATE t SET a = 1 WHERE id IN (SELECT id FROM u)",
            Dialect::MySql,
        ),
        (
            "DELETE FROM t WHERE id NOT IN (SELECT id FROM u)",
            Dialect::Postgres,
        ),
        (
            "SELECT * FROM t WHERE id IN (SELECT id FROM u) FOR UPDATE",
            Dialect::MySql,
        ),
    ] {
        check(
            sql,
            d,
            UnsupportedReason::InSubquery,
            "AT mode does not support IN (SELECT ...) in a statement that writes or locks rows; select the keys first and use a value list",
        );
    }
}

#[test]
fn subquery_as_table() {
    for sql in [
        "UPDATE (SELECT * FROM t) x SET a = 1",
        "SELECT * FROM (SELECT * FROM t) x FOR UPDATE",
    ] {
        check(
            sql,
            Dialect::MySql,
            UnsupportedReason::SubqueryTable,
            "AT mode does not support a subquery as a table in a statement that writes or locks rows; name the table directly",
        );
    }
}

#[test]
fn postgres_joins_in_writes() {
    for sql in [
        "UPDATE t SET a = u.a FROM u WHERE t.id = u.id",
        "DELETE FROM t USING u WHERE t.id = u.id",
    ] {
        check(
            sql,
            Dialect::Postgres,
            UnsupportedReason::JoinNotSupported,
            "AT mode supports multi-table UPDATE and DELETE only on MySQL/MariaDB; on PostgreSQL write one table per statement",
        );
    }
}

#[test]
fn update_join_columns_must_name_their_table() {
    check(
        "UPDATE t1 JOIN t2 ON t1.id = t2.id SET x = 1",
        Dialect::MySql,
        UnsupportedReason::UnqualifiedJoinColumn("x".into()),
        "in UPDATE ... JOIN, qualify every SET column with its table or alias (column x): AT must know which table each change belongs to",
    );
    check(
        "UPDATE t1 a JOIN t2 b ON a.id = b.id SET t1.x = 1",
        Dialect::MySql,
        UnsupportedReason::UnknownQualifier("t1.x".into()),
        "SET column t1.x names no table of the statement",
    );
    check(
        "DELETE t3 FROM t1 JOIN t2 ON t1.id = t2.id",
        Dialect::MySql,
        UnsupportedReason::UnknownDeleteTarget("t3".into()),
        "DELETE target t3 is not a table of the FROM clause",
    );
}

#[test]
fn tuple_assignment() {
    check(
        "UPDATE t SET (a, b) = (1, 2) WHERE id = $1",
        Dialect::Postgres,
        UnsupportedReason::TupleAssignment,
        "AT mode does not support tuple assignments (SET (a, b) = ...); assign each column",
    );
}

#[test]
fn ddl_inside_a_global_transaction() {
    for (sql, d, what) in [
        (
            "CREATE TABLE x (id INT PRIMARY KEY)",
            Dialect::MySql,
            "CREATE TABLE",
        ),
        (
            "ALTER TABLE x ADD COLUMN y INT",
            Dialect::Postgres,
            "ALTER TABLE",
        ),
        ("DROP TABLE x", Dialect::MySql, "DROP TABLE"),
        ("TRUNCATE TABLE x", Dialect::Postgres, "TRUNCATE TABLE"),
    ] {
        check(
            sql,
            d,
            UnsupportedReason::Ddl(what.into()),
            &format!(
                "DDL ({what}) cannot run inside a global transaction: it commits implicitly and cannot be undone; run it outside"
            ),
        );
    }
}

#[test]
fn transaction_control_as_text() {
    for (sql, d, what) in [
        ("COMMIT", Dialect::MySql, "COMMIT"),
        ("ROLLBACK", Dialect::Postgres, "ROLLBACK"),
        ("BEGIN", Dialect::Postgres, "BEGIN"),
        ("START TRANSACTION", Dialect::MySql, "START"),
        ("SAVEPOINT s1", Dialect::MySql, "SAVEPOINT"),
    ] {
        check(
            sql,
            d,
            UnsupportedReason::TransactionControl(what.into()),
            &format!(
                "transaction control ({what}) must go through the connection's API inside a global transaction, not SQL text"
            ),
        );
    }
}

#[test]
fn locking_select_of_other_shapes() {
    for sql in [
        "WITH x AS (SELECT 1) SELECT * FROM t FOR UPDATE",
        "SELECT id FROM a UNION SELECT id FROM b FOR UPDATE",
    ] {
        check(
            sql,
            Dialect::Postgres,
            UnsupportedReason::LockingSelectShape,
            "AT mode supports SELECT ... FOR UPDATE only on a single SELECT with a FROM clause",
        );
    }
}

#[test]
fn wrong_placeholder_style() {
    check(
        "UPDATE t SET a = :a WHERE id = :id",
        Dialect::MySql,
        UnsupportedReason::PlaceholderStyle(":a".into()),
        ":a placeholders are not valid for this database: MySQL uses ?, PostgreSQL uses $1, $2, ...",
    );
    // `?` is not a PostgreSQL placeholder (it is a jsonb operator): the parser rejects it.
    assert!(parse("UPDATE t SET a = ?", Dialect::Postgres).is_err());
}

#[test]
fn other_writing_statements() {
    check(
        "CALL transfer(1, 2)",
        Dialect::MySql,
        UnsupportedReason::Other("CALL".into()),
        "AT mode does not support CALL inside a global transaction",
    );
    check(
        "EXPLAIN ANALYZE DELETE FROM t",
        Dialect::Postgres,
        UnsupportedReason::Other("EXPLAIN ANALYZE of a writing statement".into()),
        "AT mode does not support EXPLAIN ANALYZE of a writing statement inside a global transaction",
    );
}
