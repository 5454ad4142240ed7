//! Two-phase messages through the real ferrata-server on real MariaDB and PostgreSQL: a
//! committed local transaction delivers each call exactly once, a rolled-back one delivers
//! nothing, a producer that crashed after (or before) its local commit is resolved by the
//! TC's check against its database, and a failing consumer is retried until it recovers,
//! its work done once.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchStatus, BranchType, GlobalStatus};
use ferrata_outbox::{Consumer, Delivery, Outbox, OutboxError, SendError, TxFuture};
use ferrata_testkit::eventually;
use support::*;

/// Selects the child role of a crash test (the test executable re-run as a producer).
const CHILD_ROLE: &str = "FERRATA_OUTBOX_CHILD";
const CHILD_TC: &str = "FERRATA_OUTBOX_CHILD_TC";
const CHILD_TABLE: &str = "FERRATA_OUTBOX_CHILD_TABLE";
const CHILD_XID_FILE: &str = "FERRATA_OUTBOX_CHILD_XID_FILE";

const PRODUCER_APP: &str = "outbox-producer";
const CONSUMER_APP: &str = "outbox-consumer";
const CHECK: &str = "order-service-outbox";
const MAIL: &str = "mail-send";
const STOCK: &str = "stock-reserve";

/// Ended, as the TC reports a transaction it no longer holds or one that ended.
fn finished(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::Finished
            | GlobalStatus::Committed
            | GlobalStatus::Rollbacked
            | GlobalStatus::TimeoutRollbacked
    )
}

/// One suite per database: `$pool` opens a pool, `$ph` writes the n-th bind placeholder.
macro_rules! outbox_suite {
    ($module:ident, $db:ty, $pool:ident, $ph:expr) => {
        mod $module {
            use super::*;
            use ferrata_outbox::sqlx::{self, Executor as _};

            type Db = $db;

            fn ph(n: usize) -> String {
                let f: fn(usize) -> String = $ph;
                f(n)
            }

            /// This process's tables for one test: parallel test binaries and a failed
            /// earlier run never meet.
            #[derive(Clone)]
            struct Tables {
                producer: String,
                received: String,
                inbox: String,
            }

            fn tables(test: &str) -> Tables {
                let suffix = format!("{test}_{}_{}", stringify!($module), std::process::id());
                Tables {
                    producer: format!("ob_out_{suffix}"),
                    received: format!("ob_rcv_{suffix}"),
                    inbox: format!("ob_inbox_{suffix}"),
                }
            }

            /// Fresh tables: the producer's, the consumer's deduplication table, and the
            /// consumer's business table (one row per call it handled).
            async fn fresh(tables: &Tables) {
                let pool = $pool(1).await;
                for table in [&tables.producer, &tables.received, &tables.inbox] {
                    pool.execute(&*format!("DROP TABLE IF EXISTS {table}"))
                        .await
                        .unwrap();
                }
                pool.execute(&*ferrata_outbox::producer_ddl::<Db>(&tables.producer).unwrap())
                    .await
                    .unwrap();
                pool.execute(&*ferrata_outbox::consumer_ddl::<Db>(&tables.received).unwrap())
                    .await
                    .unwrap();
                pool.execute(&*format!(
                    "CREATE TABLE {} (xid VARCHAR(128) NOT NULL, branch_id BIGINT NOT NULL, \
                     payload VARCHAR(255) NOT NULL)",
                    tables.inbox
                ))
                .await
                .unwrap();
            }

            async fn producer(addr: &str, tables: &Tables) -> Outbox<Db> {
                let client = client_at(addr, PRODUCER_APP).await;
                Outbox::builder(client, $pool(4).await, CHECK)
                    .table(&tables.producer)
                    .start()
                    .await
                    .unwrap()
            }

            async fn consumer(server: &ferrata_testkit::TcProcess, tables: &Tables) -> Consumer<Db> {
                let client = client(server, CONSUMER_APP).await;
                Consumer::with_table(client, $pool(4).await, &tables.received).unwrap()
            }

            /// Writes each call into the inbox table, in the delivery's local transaction;
            /// fails (after writing) while `failures_left` is above zero.
            fn inbox_writer(
                inbox: &str,
                attempts: Arc<AtomicU32>,
                failures: u32,
            ) -> impl for<'t> Fn(
                Delivery,
                &'t mut sqlx::Transaction<'static, Db>,
            ) -> TxFuture<'t, Result<(), String>>
                   + Send
                   + Sync
                   + 'static {
                let sql = format!(
                    "INSERT INTO {inbox} (xid, branch_id, payload) VALUES ({}, {}, {})",
                    ph(1),
                    ph(2),
                    ph(3)
                );
                move |delivery: Delivery, tx: &mut sqlx::Transaction<'static, Db>| {
                    let sql = sql.clone();
                    let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                    Box::pin(async move {
                        sqlx::query(&sql)
                            .bind(&delivery.xid)
                            .bind(delivery.branch_id)
                            .bind(&delivery.payload)
                            .execute(&mut **tx)
                            .await
                            .map_err(|e| e.to_string())?;
                        if attempt <= failures {
                            return Err(format!("consumer down (attempt {attempt})"));
                        }
                        Ok(())
                    }) as TxFuture<'_, Result<(), String>>
                }
            }

            /// (branch id, payload) of the calls the consumer handled for `xid`.
            async fn inbox(tables: &Tables, xid: &str) -> Vec<(i64, String)> {
                let pool = $pool(1).await;
                sqlx::query_as::<_, (i64, String)>(&format!(
                    "SELECT branch_id, payload FROM {} WHERE xid = {} ORDER BY branch_id",
                    tables.inbox,
                    ph(1)
                ))
                .bind(xid)
                .fetch_all(&pool)
                .await
                .unwrap()
            }

            /// Every (xid, payload) in the inbox.
            async fn whole_inbox(tables: &Tables) -> Vec<(String, String)> {
                let pool = $pool(1).await;
                sqlx::query_as::<_, (String, String)>(&format!(
                    "SELECT xid, payload FROM {} ORDER BY payload",
                    tables.inbox
                ))
                .fetch_all(&pool)
                .await
                .unwrap()
            }

            async fn received(tables: &Tables, xid: &str) -> i64 {
                let pool = $pool(1).await;
                sqlx::query_scalar::<_, i64>(&format!(
                    "SELECT COUNT(*) FROM {} WHERE xid = {}",
                    tables.received,
                    ph(1)
                ))
                .bind(xid)
                .fetch_one(&pool)
                .await
                .unwrap()
            }

            async fn producer_state(tables: &Tables, xid: &str) -> Option<String> {
                let pool = $pool(1).await;
                sqlx::query_scalar::<_, String>(&format!(
                    "SELECT state FROM {} WHERE xid = {}",
                    tables.producer,
                    ph(1)
                ))
                .bind(xid)
                .fetch_optional(&pool)
                .await
                .unwrap()
            }

            async fn wait_finished(client: &ferrata::Client, xid: &str) {
                let ended = eventually(WAIT, || async {
                    client.status(xid).await.is_ok_and(finished)
                })
                .await;
                assert!(ended, "the TC never finished {xid}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_committed_message_delivers_each_call_once() {
                let tables = &tables("commit");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                for resource in [MAIL, STOCK] {
                    consumer
                        .handle(resource, inbox_writer(&tables.inbox, attempts.clone(), 0))
                        .await
                        .unwrap();
                }
                let outbox = producer(&server.addr().to_string(), tables).await;

                // The convenience: prepare, local transaction, record, commit, report.
                let value = outbox
                    .message("order-created")
                    .call(MAIL, "mail-1")
                    .call(MAIL, "mail-2")
                    .call(STOCK, "stock-1")
                    .send(|tx| {
                        Box::pin(async move {
                            sqlx::query("SELECT 1").execute(&mut **tx).await?;
                            Ok::<_, sqlx::Error>(7)
                        })
                    })
                    .await
                    .unwrap();
                assert_eq!(value, 7);
                let rows = whole_inbox(tables).await;
                let payloads: Vec<&str> = rows.iter().map(|(_, p)| p.as_str()).collect();
                assert_eq!(payloads, ["mail-1", "mail-2", "stock-1"], "delivered before the report returned");
                let xid = rows[0].0.clone();
                assert!(rows.iter().all(|(x, _)| *x == xid), "one message");
                assert_eq!(producer_state(tables, &xid).await.as_deref(), Some("committed"));

                // Step by step, with a JSON payload.
                let message = outbox
                    .message("stock-moved")
                    .call_json(STOCK, &serde_json::json!({"sku": "A-1", "count": 2}))
                    .unwrap()
                    .prepare()
                    .await
                    .unwrap();
                let xid2 = message.xid().to_owned();
                let mut tx = outbox.pool().begin().await.unwrap();
                message.record(&mut tx).await.unwrap();
                tx.commit().await.unwrap();
                assert_eq!(message.submit().await.unwrap(), GlobalStatus::Committed);
                let calls = inbox(tables, &xid2).await;
                assert_eq!(calls.len(), 1);
                let payload: serde_json::Value = serde_json::from_str(&calls[0].1).unwrap();
                assert_eq!(payload, serde_json::json!({"sku": "A-1", "count": 2}));

                wait_finished(&outbox_client(&server).await, &xid).await;
                assert_eq!(inbox(tables, &xid).await.len(), 3, "no redelivery ran twice");
                assert_eq!(received(tables, &xid).await, 3);
                assert_eq!(attempts.load(Ordering::SeqCst), 4);
            }

            async fn outbox_client(server: &ferrata_testkit::TcProcess) -> ferrata::Client {
                client(server, "outbox-observer").await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_rolled_back_local_transaction_delivers_nothing() {
                let tables = &tables("rollback");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                consumer
                    .handle(MAIL, inbox_writer(&tables.inbox, attempts.clone(), 0))
                    .await
                    .unwrap();
                let outbox = producer(&server.addr().to_string(), tables).await;
                let observer = outbox_client(&server).await;

                // The work fails: the local transaction and the message roll back.
                let failed = outbox
                    .message("order-created")
                    .call(MAIL, "never")
                    .send(|_tx| Box::pin(async { Err::<(), _>("out of stock") }))
                    .await;
                assert!(matches!(failed, Err(SendError::Business("out of stock"))));

                // Step by step: recorded, then the local transaction rolls back.
                let message = outbox
                    .message("order-created")
                    .call(MAIL, "never-either")
                    .prepare()
                    .await
                    .unwrap();
                let xid = message.xid().to_owned();
                let mut tx = outbox.pool().begin().await.unwrap();
                message.record(&mut tx).await.unwrap();
                tx.rollback().await.unwrap();
                assert_eq!(message.abort().await.unwrap(), GlobalStatus::Rollbacked);
                assert_eq!(producer_state(tables, &xid).await.as_deref(), Some("rolledback"));
                wait_finished(&observer, &xid).await;

                assert!(whole_inbox(tables).await.is_empty(), "no consumer saw a message");
                assert_eq!(attempts.load(Ordering::SeqCst), 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn recording_a_message_the_check_resolved_first_is_refused() {
                let tables = &tables("late");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                consumer
                    .handle(MAIL, inbox_writer(&tables.inbox, attempts.clone(), 0))
                    .await
                    .unwrap();
                let outbox = producer(&server.addr().to_string(), tables).await;
                // A short timeout: the TC asks the check before the local transaction starts.
                let message = outbox
                    .message("slow")
                    .call(MAIL, "late")
                    .timeout(Duration::from_secs(2))
                    .prepare()
                    .await
                    .unwrap();
                let xid = message.xid().to_owned();
                wait_finished(&outbox_client(&server).await, &xid).await;
                let mut tx = outbox.pool().begin().await.unwrap();
                let refused = message.record(&mut tx).await;
                assert!(
                    matches!(&refused, Err(OutboxError::AlreadyResolved { xid: x }) if *x == xid),
                    "{refused:?}"
                );
                tx.rollback().await.unwrap();
                let _ = message.abort().await;
                assert!(inbox(tables, &xid).await.is_empty());
            }

            /// The child role of the crash tests: prepares a message, runs its local
            /// transaction, and exits without reporting, after or before the local commit.
            /// Does nothing in an ordinary test run.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn child_producer() {
                let Ok(role) = std::env::var(CHILD_ROLE) else {
                    return;
                };
                let addr = std::env::var(CHILD_TC).unwrap();
                let producer_table = std::env::var(CHILD_TABLE).unwrap();
                let client = client_at(&addr, PRODUCER_APP).await;
                let outbox = Outbox::builder(client, $pool(2).await, CHECK)
                    .table(producer_table)
                    .start()
                    .await
                    .unwrap();
                let message = outbox
                    .message("crash")
                    .call(MAIL, "crashed")
                    .timeout(Duration::from_secs(3))
                    .prepare()
                    .await
                    .unwrap();
                std::fs::write(std::env::var(CHILD_XID_FILE).unwrap(), message.xid()).unwrap();
                let mut tx = outbox.pool().begin().await.unwrap();
                message.record(&mut tx).await.unwrap();
                if role == "after_commit" {
                    tx.commit().await.unwrap();
                }
                // Crash: no report, no rollback, no destructor.
                std::process::exit(0);
            }

            /// Runs `child_producer` in a new process of this test executable, in `role`;
            /// returns the message's xid.
            fn crash_child(server: &ferrata_testkit::TcProcess, tables: &Tables, role: &str) -> String {
                let xid_file = std::env::temp_dir().join(format!(
                    "ferrata-outbox-{}-{}-{role}.xid",
                    stringify!($module),
                    std::process::id()
                ));
                let _ = std::fs::remove_file(&xid_file);
                let output = std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        concat!(stringify!($module), "::child_producer"),
                        "--nocapture",
                    ])
                    .env(CHILD_ROLE, role)
                    .env(CHILD_TC, server.addr().to_string())
                    .env(CHILD_TABLE, &tables.producer)
                    .env(CHILD_XID_FILE, &xid_file)
                    .output()
                    .unwrap();
                assert!(
                    output.status.success(),
                    "child producer failed: {}\n{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                );
                let xid = std::fs::read_to_string(&xid_file).unwrap();
                let _ = std::fs::remove_file(&xid_file);
                assert!(!xid.is_empty());
                xid
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_producer_that_crashed_after_its_local_commit_is_delivered_by_the_check() {
                let tables = &tables("crash_after");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                consumer
                    .handle(MAIL, inbox_writer(&tables.inbox, attempts.clone(), 0))
                    .await
                    .unwrap();

                let xid = crash_child(&server, tables, "after_commit");
                assert_eq!(producer_state(tables, &xid).await.as_deref(), Some("committed"));
                // The producer restarts: the TC asks it once the message times out.
                let _outbox = producer(&server.addr().to_string(), tables).await;
                let delivered = eventually(WAIT, || async { !inbox(tables, &xid).await.is_empty() }).await;
                assert!(delivered, "the check never resolved {xid} as committed");
                wait_finished(&outbox_client(&server).await, &xid).await;
                assert_eq!(inbox(tables, &xid).await.len(), 1, "delivered once");
                assert_eq!(received(tables, &xid).await, 1);
                assert_eq!(producer_state(tables, &xid).await.as_deref(), Some("committed"));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_producer_that_crashed_before_its_local_commit_delivers_nothing() {
                let tables = &tables("crash_before");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                consumer
                    .handle(MAIL, inbox_writer(&tables.inbox, attempts.clone(), 0))
                    .await
                    .unwrap();

                let xid = crash_child(&server, tables, "before_commit");
                let _outbox = producer(&server.addr().to_string(), tables).await;
                wait_finished(&outbox_client(&server).await, &xid).await;
                assert_eq!(
                    producer_state(tables, &xid).await.as_deref(),
                    Some("rolledback"),
                    "the check settled it"
                );
                assert!(inbox(tables, &xid).await.is_empty(), "never delivered");
                assert_eq!(attempts.load(Ordering::SeqCst), 0, "no consumer was called");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failing_consumer_is_retried_until_it_recovers_and_its_work_is_done_once() {
                let tables = &tables("retry");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                // Fails three times after writing its row: each failed attempt rolls back.
                consumer
                    .handle(MAIL, inbox_writer(&tables.inbox, attempts.clone(), 3))
                    .await
                    .unwrap();
                let outbox = producer(&server.addr().to_string(), tables).await;
                let message = outbox
                    .message("order-created")
                    .call(MAIL, "persistent")
                    .prepare()
                    .await
                    .unwrap();
                let xid = message.xid().to_owned();
                let mut tx = outbox.pool().begin().await.unwrap();
                message.record(&mut tx).await.unwrap();
                tx.commit().await.unwrap();
                // The TC answers after the first failure and keeps retrying.
                assert_eq!(message.submit().await.unwrap(), GlobalStatus::CommitRetrying);
                wait_finished(&outbox_client(&server).await, &xid).await;
                assert_eq!(attempts.load(Ordering::SeqCst), 4, "three failures, then success");
                assert_eq!(inbox(tables, &xid).await.len(), 1, "failed attempts left nothing");
                assert_eq!(received(tables, &xid).await, 1);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_redelivered_call_is_acknowledged_without_running_again() {
                let tables = &tables("dedupe");
                fresh(tables).await;
                let server = server();
                let consumer = consumer(&server, tables).await;
                let attempts = Arc::new(AtomicU32::new(0));
                let handler =
                    consumer.delivery_handler(inbox_writer(&tables.inbox, attempts.clone(), 0));
                let request = BranchRequest {
                    xid: "10.0.0.1:8091:77".to_owned(),
                    branch_id: 78,
                    branch_type: BranchType::Tcc,
                    resource_id: MAIL.to_owned(),
                    application_data: "once".to_owned(),
                };
                for _ in 0..3 {
                    assert_eq!(
                        handler.branch_commit(request.clone()).await,
                        BranchStatus::PhaseTwoCommitted
                    );
                }
                assert_eq!(attempts.load(Ordering::SeqCst), 1, "the handler ran once");
                assert_eq!(inbox(tables, &request.xid).await, vec![(78, "once".to_owned())]);
                // A rollback (the message was dropped) does nothing at all.
                assert_eq!(
                    handler.branch_rollback(request.clone()).await,
                    BranchStatus::PhaseTwoRollbacked
                );
                assert_eq!(attempts.load(Ordering::SeqCst), 1);
            }
        }
    };
}

outbox_suite!(mysql, sqlx::MySql, mysql_pool, |_| "?".to_owned());
outbox_suite!(postgres, sqlx::Postgres, postgres_pool, |n| format!("${n}"));
