//! XA branches through the real ferrata-server on real MariaDB and PostgreSQL: the TC commits
//! and rolls back prepared branches, a phase-one failure leaves nothing, an unknown XA id
//! answers XAER_NOTA, a restarted RM finishes what its predecessor prepared, and recovery rolls
//! back prepared branches of transactions the TC no longer knows.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrata::{BranchStatus, GlobalStatus};
use ferrata_testkit::eventually;
use ferrata_xa::{XaDataSource, XaId};
use support::*;

/// One suite per database: `$pool` opens the pool, `$resource` names the XA resource.
macro_rules! xa_suite {
    ($module:ident, $db:ty, $pool:ident, $resource:literal) => {
        mod $module {
            use super::*;
            use ferrata_xa::sqlx::{self, Executor as _};

            /// A table of this test process: a run that failed and left a branch prepared
            /// (holding its rows) does not stand in the way of the next.
            fn table_name(test: &str) -> String {
                format!(
                    "xa_rs_{test}_{}_{}",
                    stringify!($module),
                    std::process::id()
                )
            }

            /// (id, balance) rows of `table`.
            async fn rows(table: &str) -> Vec<(i64, i64)> {
                let pool = $pool(1).await;
                sqlx::query_as::<_, (i64, i64)>(&format!(
                    "SELECT id, balance FROM {table} ORDER BY id"
                ))
                .fetch_all(&pool)
                .await
                .unwrap()
            }

            async fn fresh_table(table: &str) {
                let pool = $pool(1).await;
                pool.execute(&*format!("DROP TABLE IF EXISTS {table}"))
                    .await
                    .unwrap();
                pool.execute(&*format!(
                    "CREATE TABLE {table} (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)"
                ))
                .await
                .unwrap();
                pool.execute(&*format!(
                    "INSERT INTO {table} (id, balance) VALUES (1, 100), (2, 200)"
                ))
                .await
                .unwrap();
            }

            /// Seata XA ids prepared in this database for `xid`.
            async fn prepared(xid: &str) -> usize {
                let pool = $pool(1).await;
                let mut conn = pool.acquire().await.unwrap();
                let all = <$db as ferrata_xa::XaDatabase>::recover(&mut *conn)
                    .await
                    .unwrap();
                all.into_iter().filter(|id: &XaId| id.xid == xid).count()
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn the_tc_commits_and_rolls_back_prepared_branches() {
                let table = &table_name("flow");
                fresh_table(table).await;
                let server = server();
                let client = client(&server, "xa-flow").await;
                let source = XaDataSource::register(&client, $pool(4).await, $resource)
                    .await
                    .unwrap();

                let tx = client
                    .begin(Duration::from_secs(30), "xa-commit")
                    .await
                    .unwrap();
                let xid = tx.xid().to_owned();
                let mut branch = source.begin(&xid).await.unwrap();
                sqlx::query(&format!(
                    "UPDATE {table} SET balance = balance - 10 WHERE id = 1"
                ))
                .execute(&mut *branch.connection())
                .await
                .unwrap();
                branch.prepare().await.unwrap();
                assert_eq!(prepared(&xid).await, 1, "phase one ends prepared");
                assert_eq!(
                    rows(table).await,
                    vec![(1, 100), (2, 200)],
                    "invisible until phase 2"
                );
                assert_eq!(tx.commit().await.unwrap(), GlobalStatus::Committed);
                assert_eq!(rows(table).await, vec![(1, 90), (2, 200)]);
                assert_eq!(prepared(&xid).await, 0);

                let tx = client
                    .begin(Duration::from_secs(30), "xa-rollback")
                    .await
                    .unwrap();
                let xid = tx.xid().to_owned();
                let mut branch = source.begin(&xid).await.unwrap();
                sqlx::query(&format!(
                    "UPDATE {table} SET balance = balance + 5 WHERE id = 2"
                ))
                .execute(&mut *branch.connection())
                .await
                .unwrap();
                branch.prepare().await.unwrap();
                assert_eq!(tx.rollback().await.unwrap(), GlobalStatus::Rollbacked);
                assert_eq!(rows(table).await, vec![(1, 90), (2, 200)]);
                assert_eq!(prepared(&xid).await, 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_branch_rolled_back_in_phase_one_leaves_nothing_and_the_rest_commits() {
                let table = &table_name("phase_one");
                fresh_table(table).await;
                let server = server();
                let client = client(&server, "xa-phase-one").await;
                let source = XaDataSource::register(&client, $pool(4).await, $resource)
                    .await
                    .unwrap();
                let tx = client
                    .begin(Duration::from_secs(30), "xa-phase-one")
                    .await
                    .unwrap();
                let xid = tx.xid().to_owned();
                let mut good = source.begin(&xid).await.unwrap();
                sqlx::query(&format!("UPDATE {table} SET balance = 1 WHERE id = 1"))
                    .execute(&mut *good.connection())
                    .await
                    .unwrap();
                good.prepare().await.unwrap();
                let mut bad = source.begin(&xid).await.unwrap();
                sqlx::query(&format!("UPDATE {table} SET balance = 2 WHERE id = 2"))
                    .execute(&mut *bad.connection())
                    .await
                    .unwrap();
                let duplicate =
                    sqlx::query(&format!("INSERT INTO {table} (id, balance) VALUES (2, 0)"))
                        .execute(&mut *bad.connection())
                        .await;
                assert!(duplicate.is_err(), "a duplicate key fails the branch");
                bad.rollback().await.unwrap();
                // The failed branch is skipped in phase 2; the prepared one commits.
                assert_eq!(tx.commit().await.unwrap(), GlobalStatus::Committed);
                assert_eq!(rows(table).await, vec![(1, 1), (2, 200)]);
                assert_eq!(prepared(&xid).await, 0);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unknown_xa_id_answers_xaer_nota() {
                let server = server();
                let client = client(&server, "xa-nota").await;
                let source = XaDataSource::register(&client, $pool(2).await, $resource)
                    .await
                    .unwrap();
                let unknown = XaId::new("127.0.0.1:1:424242", 7);
                assert_eq!(
                    source.commit_prepared(unknown.clone()).await,
                    BranchStatus::PhaseTwoCommitFailedXaerNotaRetryable
                );
                assert_eq!(
                    source.rollback_prepared(unknown).await,
                    BranchStatus::PhaseTwoRollbackFailedXaerNotaRetryable
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_restarted_rm_commits_what_its_predecessor_prepared() {
                let table = &table_name("restart");
                fresh_table(table).await;
                let server = server();
                let tm = client(&server, "xa-restart-tm").await;
                let tx = tm
                    .begin(Duration::from_secs(60), "xa-restart")
                    .await
                    .unwrap();
                let xid = tx.xid().to_owned();
                {
                    let rm = client(&server, "xa-restart-rm").await;
                    let source = XaDataSource::register(&rm, $pool(2).await, $resource)
                        .await
                        .unwrap();
                    let mut branch = source.begin(&xid).await.unwrap();
                    sqlx::query(&format!("UPDATE {table} SET balance = 0 WHERE id = 2"))
                        .execute(&mut *branch.connection())
                        .await
                        .unwrap();
                    branch.prepare().await.unwrap();
                    // The RM goes away: its held session, then its TC connections close.
                    source.detach_prepared();
                    rm.shutdown();
                }
                let admin = server.admin_addr().expect("admin listener");
                let gone = eventually(WAIT, || async {
                    ferrata_testkit::http(admin, "GET", "/api/v1/clients", None, None)
                        .await
                        .is_ok_and(|answer| !answer.body.contains("\"xa-restart-rm\""))
                })
                .await;
                assert!(gone, "the stopped RM's connection is gone at the TC");
                assert_eq!(
                    tx.commit().await.unwrap(),
                    GlobalStatus::CommitRetrying,
                    "no RM to deliver the commit to"
                );
                let rm = client(&server, "xa-restart-rm").await;
                let source = XaDataSource::register(&rm, $pool(2).await, $resource)
                    .await
                    .unwrap();
                let ended = eventually(WAIT, || async {
                    tm.status(&xid).await.ok() == Some(GlobalStatus::Finished)
                })
                .await;
                assert!(
                    ended,
                    "the TC's retry commits through the restarted RM\n{}",
                    server.log()
                );
                assert_eq!(rows(table).await, vec![(1, 100), (2, 0)]);
                assert_eq!(prepared(&xid).await, 0);
                drop(source);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn recovery_rolls_back_branches_the_tc_no_longer_knows_and_leaves_the_rest() {
                let table = &table_name("recover");
                fresh_table(table).await;
                let server = server();
                let tm = client(&server, "xa-recover").await;
                // A branch prepared for a transaction this TC never had (or has forgotten),
                // by a process that died since: its session is closed.
                let orphan = XaId::new(format!("127.0.0.1:{}:77", server.addr().port()), 5);
                {
                    let pool = $pool(1).await;
                    let mut conn = pool.acquire().await.unwrap();
                    <$db as ferrata_xa::XaDatabase>::start(&mut *conn, &orphan)
                        .await
                        .unwrap();
                    sqlx::query(&format!("UPDATE {table} SET balance = 7 WHERE id = 1"))
                        .execute(&mut *conn)
                        .await
                        .unwrap();
                    <$db as ferrata_xa::XaDatabase>::prepare(&mut *conn, &orphan)
                        .await
                        .unwrap();
                    drop(conn.detach());
                }
                let source = XaDataSource::register(&tm, $pool(2).await, $resource)
                    .await
                    .unwrap();
                // A live transaction's prepared branch, held by another RM process.
                let tx = tm.begin(Duration::from_secs(60), "xa-live").await.unwrap();
                let other_rm = client(&server, "xa-recover-other").await;
                let other = XaDataSource::register(&other_rm, $pool(2).await, $resource)
                    .await
                    .unwrap();
                let mut live = other.begin(tx.xid()).await.unwrap();
                sqlx::query(&format!("UPDATE {table} SET balance = 8 WHERE id = 2"))
                    .execute(&mut *live.connection())
                    .await
                    .unwrap();
                let live_id = live.id().clone();
                live.prepare().await.unwrap();

                // Only this test's TC's branches: other tests run beside this one.
                let ours = server.addr().to_string();
                // MariaDB detaches the orphan once its closed session is gone on the server.
                let deadline = std::time::Instant::now() + Duration::from_secs(20);
                let recovery = loop {
                    let found = source.recover(|id| id.tc_address() == ours).await;
                    match found {
                        Ok(found) if found.rolled_back.contains(&orphan) => break found,
                        other if std::time::Instant::now() > deadline => {
                            panic!("the orphan was not rolled back: {other:?}")
                        }
                        _ => tokio::time::sleep(Duration::from_millis(100)).await,
                    }
                };
                assert!(!recovery.left_to_the_tc.iter().any(|id| id == &orphan));
                if !<$db as ferrata_xa::XaDatabase>::HOLDS_PREPARED {
                    assert!(recovery.left_to_the_tc.contains(&live_id), "{recovery:?}");
                }
                assert!(!recovery.rolled_back.contains(&live_id), "{recovery:?}");
                assert_eq!(prepared(&orphan.xid).await, 0);
                assert_eq!(tx.commit().await.unwrap(), GlobalStatus::Committed);
                assert_eq!(rows(table).await, vec![(1, 100), (2, 8)]);
            }
        }
    };
}

xa_suite!(
    mariadb,
    sqlx::MySql,
    mysql_pool,
    "jdbc:mysql://127.0.0.1/ferrata-xa-tests"
);
xa_suite!(
    postgres,
    sqlx::Postgres,
    postgres_pool,
    "jdbc:postgresql://127.0.0.1/ferrata-xa-tests"
);
