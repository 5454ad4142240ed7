//! The fence behaviour suite, generated once per database (see fence_mariadb.rs and
//! fence_postgres.rs): every anomaly of semantics §5.4 on the real server, with the business
//! work (a row in `tcc_test_ledger`) written in the fence's own local transaction.

/// `db`: sqlx database type; `url_var`: env var with its URL; `insert_ledger`/`count_ledger`/
/// `backdate`: SQL in the dialect's placeholder style; `columns`: expected (name, type) of
/// Seata's table as information_schema reports them; `columns_sql`: the query for them;
/// `lock_wait`: an `async fn(&Pool, table: &str) -> bool`, true while some transaction waits
/// for a row lock on `table`.
#[macro_export]
macro_rules! fence_suite {
    (
        db = $db:ty,
        url_var = $url_var:literal,
        ledger_ddl = $ledger_ddl:literal,
        insert_ledger = $insert_ledger:literal,
        count_ledger = $count_ledger:literal,
        backdate = $backdate:literal,
        columns_sql = $columns_sql:literal,
        columns = $columns:expr,
        lock_wait = $lock_wait:ident $(,)?
    ) => {
        use std::future::Future;
        use std::pin::Pin;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::time::Duration;

        use ferrata::{BranchRequest, BranchStatus, BranchType};
        use ferrata_tcc::{
            BoxError, FenceError, FenceStatus, TccContext, TccError, TccFence, TccParticipant,
            TccResource, tcc_try,
        };
        use sqlx::Transaction;

        type Tx = Transaction<'static, $db>;
        type Work<'a, T> = Pin<Box<dyn Future<Output = (Tx, Result<T, BoxError>)> + Send + 'a>>;

        /// Creates the tables once per test binary; every test builds its own pool because a
        /// pool belongs to the runtime that created it (each #[tokio::test] has its own).
        static SETUP: tokio::sync::Mutex<bool> = tokio::sync::Mutex::const_new(false);

        async fn fence() -> TccFence<$db> {
            let url = ferrata_testkit::database_url($url_var);
            let pool = sqlx::pool::PoolOptions::<$db>::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(30))
                .connect(&url)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot connect to {} ({url}): {e}; is `scripts/services start` running?",
                        $url_var
                    )
                });
            let fence = TccFence::new(pool);
            let mut done = SETUP.lock().await;
            if !*done {
                fence.create_table().await.unwrap();
                sqlx::raw_sql($ledger_ddl)
                    .execute(fence.pool())
                    .await
                    .unwrap();
                *done = true;
            }
            fence
        }

        /// Business work of one phase: counts the call, writes a ledger row in the fence's
        /// transaction, then answers `answer` (an `Err` is a callback failing after its write).
        fn business<'a, T: Send + 'a>(
            xid: &'a str,
            branch_id: i64,
            phase: &'static str,
            calls: &'a AtomicUsize,
            answer: Result<T, &'static str>,
        ) -> impl FnOnce(Tx) -> Work<'a, T> + Send + 'a {
            move |mut tx: Tx| -> Work<'a, T> {
                Box::pin(async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let written = sqlx::query($insert_ledger)
                        .bind(xid)
                        .bind(branch_id)
                        .bind(phase)
                        .execute(&mut *tx)
                        .await;
                    let result = match written {
                        Err(e) => Err(BoxError::from(e)),
                        Ok(_) => answer.map_err(BoxError::from),
                    };
                    (tx, result)
                })
            }
        }

        async fn ledger(fence: &TccFence<$db>, xid: &str, phase: &str) -> i64 {
            sqlx::query_scalar::<_, i64>($count_ledger)
                .bind(xid)
                .bind(phase)
                .fetch_one(fence.pool())
                .await
                .unwrap()
        }

        async fn tried(fence: &TccFence<$db>, xid: &str, branch_id: i64) {
            let calls = AtomicUsize::new(0);
            let out = fence
                .fenced_try(
                    xid,
                    branch_id,
                    "ledger",
                    business(xid, branch_id, "try", &calls, Ok(())),
                )
                .await;
            assert!(out.is_ok(), "{out:?}");
            assert_eq!(
                fence.status(xid, branch_id).await.unwrap(),
                Some(FenceStatus::Tried)
            );
        }

        #[tokio::test]
        async fn create_table_is_seatas_table_and_can_run_again() {
            let fence = fence().await;
            fence.create_table().await.unwrap();
            let rows: Vec<(String, String)> = sqlx::query_as($columns_sql)
                .fetch_all(fence.pool())
                .await
                .unwrap();
            let expected: Vec<(String, String)> = $columns
                .iter()
                .map(|(n, t): &(&str, &str)| (n.to_string(), t.to_string()))
                .collect();
            assert_eq!(rows, expected);
        }

        #[tokio::test]
        async fn builder_creates_its_table_and_the_fence_works_on_it() {
            let shared = fence().await;
            let table = "tcc_fence_built".to_owned();
            sqlx::raw_sql(&format!("DROP TABLE IF EXISTS {table}"))
                .execute(shared.pool())
                .await
                .unwrap();
            let fence = TccFence::builder(shared.pool().clone())
                .table(table.clone())
                .clean_period(Duration::ZERO)
                .start()
                .await
                .unwrap();
            assert_eq!(fence.table(), table);
            let xid = support::unique_xid();
            fence
                .fenced_try(
                    &xid,
                    1,
                    "act",
                    |tx| async move { (tx, Ok::<_, BoxError>(())) },
                )
                .await
                .unwrap();
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Tried)
            );
            // Starting again finds the table and leaves its rows alone.
            let again = TccFence::builder(shared.pool().clone())
                .table(table.clone())
                .clean_period(Duration::ZERO)
                .start()
                .await
                .unwrap();
            assert_eq!(
                again.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Tried)
            );
        }

        #[tokio::test]
        async fn try_commits_its_row_and_business_work_together() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            assert_eq!(ledger(&fence, &xid, "try").await, 1);
        }

        #[tokio::test]
        async fn confirm_is_idempotent() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            let calls = AtomicUsize::new(0);
            for _ in 0..2 {
                let done = fence
                    .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(true)))
                    .await
                    .unwrap();
                assert!(done);
            }
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "the second commit must not call confirm"
            );
            assert_eq!(ledger(&fence, &xid, "confirm").await, 1);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Committed)
            );
        }

        #[tokio::test]
        async fn cancel_is_idempotent() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            let calls = AtomicUsize::new(0);
            for _ in 0..2 {
                let done = fence
                    .fenced_rollback(
                        &xid,
                        1,
                        "ledger",
                        business(&xid, 1, "cancel", &calls, Ok(true)),
                    )
                    .await
                    .unwrap();
                assert!(done);
            }
            assert_eq!(
                calls.load(Ordering::SeqCst),
                1,
                "the second rollback must not call cancel"
            );
            assert_eq!(ledger(&fence, &xid, "cancel").await, 1);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Rollbacked)
            );
        }

        #[tokio::test]
        async fn empty_rollback_succeeds_without_cancel_and_records_suspended() {
            let fence = fence().await;
            let xid = support::unique_xid();
            let calls = AtomicUsize::new(0);
            let done = fence
                .fenced_rollback(
                    &xid,
                    7,
                    "ledger",
                    business(&xid, 7, "cancel", &calls, Ok(true)),
                )
                .await
                .unwrap();
            assert!(done, "an empty rollback is a success");
            assert_eq!(calls.load(Ordering::SeqCst), 0, "nothing to cancel");
            assert_eq!(
                fence.status(&xid, 7).await.unwrap(),
                Some(FenceStatus::Suspended)
            );
            // Repeated, it stays a success without calling cancel.
            let done = fence
                .fenced_rollback(
                    &xid,
                    7,
                    "ledger",
                    business(&xid, 7, "cancel", &calls, Ok(true)),
                )
                .await
                .unwrap();
            assert!(done);
            assert_eq!(calls.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn try_after_empty_rollback_is_refused_and_its_work_rolled_back() {
            let fence = fence().await;
            let xid = support::unique_xid();
            let calls = AtomicUsize::new(0);
            assert!(
                fence
                    .fenced_rollback(
                        &xid,
                        3,
                        "ledger",
                        business(&xid, 3, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            let late = fence
                .fenced_try(&xid, 3, "ledger", business(&xid, 3, "try", &calls, Ok(())))
                .await;
            assert!(
                matches!(late, Err(FenceError::Suspended { .. })),
                "{late:?}"
            );
            assert_eq!(
                calls.load(Ordering::SeqCst),
                0,
                "the late try's business never ran"
            );
            assert_eq!(
                ledger(&fence, &xid, "try").await,
                0,
                "no business work survives"
            );
            assert_eq!(
                fence.status(&xid, 3).await.unwrap(),
                Some(FenceStatus::Suspended)
            );
            // A retried late try is refused as well (the suspended row is kept).
            let again = fence
                .fenced_try(&xid, 3, "ledger", business(&xid, 3, "try", &calls, Ok(())))
                .await;
            assert!(
                matches!(again, Err(FenceError::Suspended { .. })),
                "{again:?}"
            );
        }

        #[tokio::test]
        async fn commit_after_rollback_is_refused() {
            let fence = fence().await;
            let calls = AtomicUsize::new(0);
            // After a real cancel...
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            assert!(
                fence
                    .fenced_rollback(
                        &xid,
                        1,
                        "ledger",
                        business(&xid, 1, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            let done = fence
                .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(true)))
                .await
                .unwrap();
            assert!(!done, "commit after rollback must fail");
            // ...and after an empty rollback.
            let xid2 = support::unique_xid();
            assert!(
                fence
                    .fenced_rollback(
                        &xid2,
                        1,
                        "ledger",
                        business(&xid2, 1, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            let done = fence
                .fenced_commit(&xid2, 1, business(&xid2, 1, "confirm", &calls, Ok(true)))
                .await
                .unwrap();
            assert!(!done, "commit after an empty rollback must fail");
            assert_eq!(ledger(&fence, &xid, "confirm").await, 0);
            assert_eq!(ledger(&fence, &xid2, "confirm").await, 0);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Rollbacked)
            );
            assert_eq!(
                fence.status(&xid2, 1).await.unwrap(),
                Some(FenceStatus::Suspended)
            );
        }

        #[tokio::test]
        async fn rollback_after_commit_is_refused() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            let calls = AtomicUsize::new(0);
            assert!(
                fence
                    .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(true)))
                    .await
                    .unwrap()
            );
            let cancels = AtomicUsize::new(0);
            let done = fence
                .fenced_rollback(
                    &xid,
                    1,
                    "ledger",
                    business(&xid, 1, "cancel", &cancels, Ok(true)),
                )
                .await
                .unwrap();
            assert!(!done, "rollback after commit must fail");
            assert_eq!(cancels.load(Ordering::SeqCst), 0);
            assert_eq!(ledger(&fence, &xid, "cancel").await, 0);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Committed)
            );
        }

        #[tokio::test]
        async fn commit_without_a_try_is_an_error() {
            let fence = fence().await;
            let xid = support::unique_xid();
            let calls = AtomicUsize::new(0);
            let out = fence
                .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(true)))
                .await;
            assert!(matches!(out, Err(FenceError::NoRecord { .. })), "{out:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 0);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                None,
                "commit inserts nothing"
            );
        }

        #[tokio::test]
        async fn failing_try_leaves_no_fence_row_and_no_business_work() {
            let fence = fence().await;
            let xid = support::unique_xid();
            let calls = AtomicUsize::new(0);
            let out = fence
                .fenced_try(
                    &xid,
                    1,
                    "ledger",
                    business(&xid, 1, "try", &calls, Err::<(), _>("no stock")),
                )
                .await;
            assert!(matches!(out, Err(FenceError::Business(_))), "{out:?}");
            assert_eq!(calls.load(Ordering::SeqCst), 1);
            assert_eq!(fence.status(&xid, 1).await.unwrap(), None);
            assert_eq!(ledger(&fence, &xid, "try").await, 0);
            // The TC's rollback then finds no row: an empty rollback.
            assert!(
                fence
                    .fenced_rollback(
                        &xid,
                        1,
                        "ledger",
                        business(&xid, 1, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            assert_eq!(calls.load(Ordering::SeqCst), 1, "cancel not called");
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Suspended)
            );
        }

        #[tokio::test]
        async fn failing_confirm_changes_nothing_and_the_retry_succeeds() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            let calls = AtomicUsize::new(0);
            let out = fence
                .fenced_commit(
                    &xid,
                    1,
                    business(&xid, 1, "confirm", &calls, Err("deadlock")),
                )
                .await;
            assert!(matches!(out, Err(FenceError::Business(_))), "{out:?}");
            let out = fence
                .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(false)))
                .await;
            assert!(!out.unwrap(), "false is not done");
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Tried)
            );
            assert_eq!(
                ledger(&fence, &xid, "confirm").await,
                0,
                "failed confirms left no work"
            );
            assert!(
                fence
                    .fenced_commit(&xid, 1, business(&xid, 1, "confirm", &calls, Ok(true)))
                    .await
                    .unwrap()
            );
            assert_eq!(calls.load(Ordering::SeqCst), 3);
            assert_eq!(ledger(&fence, &xid, "confirm").await, 1);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Committed)
            );
        }

        #[tokio::test]
        async fn failing_cancel_changes_nothing_and_the_retry_succeeds() {
            let fence = fence().await;
            let xid = support::unique_xid();
            tried(&fence, &xid, 1).await;
            let calls = AtomicUsize::new(0);
            let out = fence
                .fenced_rollback(
                    &xid,
                    1,
                    "ledger",
                    business(&xid, 1, "cancel", &calls, Err("boom")),
                )
                .await;
            assert!(matches!(out, Err(FenceError::Business(_))), "{out:?}");
            let out = fence
                .fenced_rollback(
                    &xid,
                    1,
                    "ledger",
                    business(&xid, 1, "cancel", &calls, Ok(false)),
                )
                .await;
            assert!(!out.unwrap());
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Tried)
            );
            assert_eq!(ledger(&fence, &xid, "cancel").await, 0);
            assert!(
                fence
                    .fenced_rollback(
                        &xid,
                        1,
                        "ledger",
                        business(&xid, 1, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            assert_eq!(ledger(&fence, &xid, "cancel").await, 1);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Rollbacked)
            );
        }

        #[tokio::test]
        async fn cleanup_deletes_only_old_rows_in_a_final_status() {
            let fence = fence().await;
            let calls = AtomicUsize::new(0);
            let old = support::unique_xid();
            // branch 1: committed, 2: rolled back, 3: suspended, 4: tried (never removed).
            tried(&fence, &old, 1).await;
            assert!(
                fence
                    .fenced_commit(&old, 1, business(&old, 1, "confirm", &calls, Ok(true)))
                    .await
                    .unwrap()
            );
            tried(&fence, &old, 2).await;
            assert!(
                fence
                    .fenced_rollback(
                        &old,
                        2,
                        "ledger",
                        business(&old, 2, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            assert!(
                fence
                    .fenced_rollback(
                        &old,
                        3,
                        "ledger",
                        business(&old, 3, "cancel", &calls, Ok(true))
                    )
                    .await
                    .unwrap()
            );
            tried(&fence, &old, 4).await;
            sqlx::query($backdate)
                .bind(&old)
                .execute(fence.pool())
                .await
                .unwrap();
            let fresh = support::unique_xid();
            tried(&fence, &fresh, 1).await;
            assert!(
                fence
                    .fenced_commit(&fresh, 1, business(&fresh, 1, "confirm", &calls, Ok(true)))
                    .await
                    .unwrap()
            );

            let deleted = fence
                .delete_older_than(Duration::from_secs(3600))
                .await
                .unwrap();
            assert!(deleted >= 3, "deleted {deleted}");
            for branch in 1..=3 {
                assert_eq!(
                    fence.status(&old, branch).await.unwrap(),
                    None,
                    "branch {branch}"
                );
            }
            assert_eq!(
                fence.status(&old, 4).await.unwrap(),
                Some(FenceStatus::Tried)
            );
            assert_eq!(
                fence.status(&fresh, 1).await.unwrap(),
                Some(FenceStatus::Committed)
            );
            assert!(
                fence.spawn_cleanup(Duration::ZERO).is_none(),
                "zero period disables"
            );
        }

        /// A try and a rollback of the same branch racing on the database (the suspension
        /// scenario as it really happens): whatever the interleaving, either the try won and
        /// was cancelled, or the rollback won and the try was refused — never a reservation
        /// left behind. A rollback that hits a deadlock or duplicate key is retried, as the TC
        /// would.
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn racing_try_and_rollback_never_leave_a_reservation_behind() {
            let fence = fence().await;
            for _ in 0..20 {
                let xid = support::unique_xid();
                let try_calls = AtomicUsize::new(0);
                let cancel_calls = AtomicUsize::new(0);
                let attempt = fence.fenced_try(
                    &xid,
                    1,
                    "ledger",
                    business(&xid, 1, "try", &try_calls, Ok(())),
                );
                let rollback = async {
                    for _ in 0..100 {
                        let out = fence
                            .fenced_rollback(
                                &xid,
                                1,
                                "ledger",
                                business(&xid, 1, "cancel", &cancel_calls, Ok(true)),
                            )
                            .await;
                        match out {
                            Ok(true) => return,
                            Ok(false) => {
                                panic!("rollback refused for a branch that never committed")
                            }
                            Err(_) => tokio::task::yield_now().await,
                        }
                    }
                    panic!("rollback did not succeed in 100 attempts");
                };
                let (tried, ()) = tokio::join!(attempt, rollback);
                let (tries, cancels) = (
                    ledger(&fence, &xid, "try").await,
                    ledger(&fence, &xid, "cancel").await,
                );
                match fence.status(&xid, 1).await.unwrap() {
                    Some(FenceStatus::Rollbacked) => {
                        assert!(tried.is_ok(), "{tried:?}");
                        assert_eq!((tries, cancels), (1, 1), "the try's work was cancelled");
                    }
                    Some(FenceStatus::Suspended) => {
                        assert!(tried.is_err(), "a try after the empty rollback must fail");
                        assert_eq!((tries, cancels), (0, 0), "no work from the refused try");
                    }
                    other => panic!("unexpected final status {other:?}"),
                }
            }
        }

        /// A fence on a table of its own, so that a lock wait seen on that table belongs to the
        /// one test that uses it.
        async fn fence_on(table: &str) -> TccFence<$db> {
            let shared = fence().await;
            let own = TccFence::with_table(shared.pool().clone(), table).unwrap();
            own.create_table().await.unwrap();
            own
        }

        /// Returns once some transaction waits for a row lock on `table`: a condition read
        /// from the database, not a guess about timing. Fails after a minute without one.
        async fn until_a_statement_waits_on(fence: &TccFence<$db>, table: &str) {
            for _ in 0..6000 {
                if $lock_wait(fence.pool(), table).await {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("no transaction started waiting for a row lock on {table} within a minute");
        }

        /// The suspension race made deterministic: the try has inserted its row and is inside
        /// its business work when the rollback arrives, so the rollback waits for the try's row
        /// (MariaDB in its SELECT ... FOR UPDATE, PostgreSQL in its INSERT of the status-4 row,
        /// which then fails with a duplicate key). Once the try commits, the rollback must find
        /// the tried branch and cancel it: the fence runs its transaction again instead of
        /// failing the rollback.
        #[tokio::test]
        async fn rollback_that_waited_for_a_committing_try_cancels_it() {
            const TABLE: &str = "tcc_fence_race";
            let fence = fence_on(TABLE).await;
            let xid = support::unique_xid();
            let (inside_try, try_is_inside) = tokio::sync::oneshot::channel::<()>();
            let (finish_try, try_may_finish) = tokio::sync::oneshot::channel::<()>();
            let cancels = AtomicUsize::new(0);
            let xid_ref = xid.as_str();
            let attempt = fence.fenced_try(xid_ref, 1, "ledger", move |mut tx: Tx| {
                Box::pin(async move {
                    let written = sqlx::query($insert_ledger)
                        .bind(xid_ref)
                        .bind(1_i64)
                        .bind("try")
                        .execute(&mut *tx)
                        .await;
                    inside_try.send(()).unwrap();
                    try_may_finish.await.unwrap();
                    (tx, written.map(drop).map_err(BoxError::from))
                })
            });
            let rollback = async {
                try_is_inside.await.unwrap();
                fence
                    .fenced_rollback(
                        &xid,
                        1,
                        "ledger",
                        business(&xid, 1, "cancel", &cancels, Ok(true)),
                    )
                    .await
            };
            let release = async {
                until_a_statement_waits_on(&fence, TABLE).await;
                finish_try.send(()).unwrap();
            };
            let (tried, rolled_back, ()) = tokio::join!(attempt, rollback, release);
            assert!(tried.is_ok(), "{tried:?}");
            assert!(
                matches!(rolled_back, Ok(true)),
                "the rollback must cancel the try it waited for: {rolled_back:?}"
            );
            assert_eq!(cancels.load(Ordering::SeqCst), 1);
            assert_eq!(
                fence.status(&xid, 1).await.unwrap(),
                Some(FenceStatus::Rollbacked)
            );
            assert_eq!(ledger(&fence, &xid, "try").await, 1);
            assert_eq!(ledger(&fence, &xid, "cancel").await, 1);
        }

        /// A participant whose business work lives in the fence's transaction.
        #[derive(Debug, Default)]
        struct Ledger {
            prepares: AtomicUsize,
            confirms: AtomicUsize,
            cancels: AtomicUsize,
        }

        /// The ledger's action context: the amount, stored by the try.
        #[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
        struct LedgerParams {
            amount: Option<i64>,
        }

        impl TccParticipant for Ledger {
            type Local = Tx;
            type Args = i64;
            type Output = ();
            type Params = LedgerParams;
            type Error = sqlx::Error;

            fn action_name(&self) -> &str {
                "ledger-action"
            }

            fn params(&self, _: &i64) -> LedgerParams {
                LedgerParams::default()
            }

            async fn prepare(
                &self,
                tx: &mut Tx,
                ctx: &mut TccContext<LedgerParams>,
                amount: i64,
            ) -> Result<(), sqlx::Error> {
                self.prepares.fetch_add(1, Ordering::SeqCst);
                sqlx::query($insert_ledger)
                    .bind(&ctx.xid)
                    .bind(ctx.branch_id)
                    .bind("try")
                    .execute(&mut **tx)
                    .await?;
                ctx.params.amount = Some(amount);
                Ok(())
            }

            async fn confirm(
                &self,
                tx: &mut Tx,
                ctx: &TccContext<LedgerParams>,
            ) -> Result<(), sqlx::Error> {
                self.confirms.fetch_add(1, Ordering::SeqCst);
                assert_eq!(
                    ctx.params.amount,
                    Some(12),
                    "phase 2 sees the reported context"
                );
                sqlx::query($insert_ledger)
                    .bind(&ctx.xid)
                    .bind(ctx.branch_id)
                    .bind("confirm")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            async fn cancel(
                &self,
                tx: &mut Tx,
                ctx: &TccContext<LedgerParams>,
            ) -> Result<(), sqlx::Error> {
                self.cancels.fetch_add(1, Ordering::SeqCst);
                sqlx::query($insert_ledger)
                    .bind(&ctx.xid)
                    .bind(ctx.branch_id)
                    .bind("cancel")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        fn request(xid: &str, branch_id: i64, data: &str) -> BranchRequest {
            BranchRequest {
                xid: xid.into(),
                branch_id,
                branch_type: BranchType::Tcc,
                resource_id: "ledger-action".into(),
                application_data: data.into(),
            }
        }

        #[tokio::test]
        async fn fenced_resource_runs_try_and_idempotent_phase_two() {
            let fence = fence().await;
            let resource = Arc::new(TccResource::with_guard(Ledger::default(), fence.clone()));
            let client = support::RecordingClient::default();
            let xid = support::unique_xid();
            ferrata::context::with_xid(xid.clone(), tcc_try(&client, &*resource, 12))
                .await
                .unwrap();
            let branch = client.registered()[0].clone();
            assert!(
                branch.application_data.contains("\"useTCCFence\":true"),
                "{}",
                branch.application_data
            );
            assert_eq!(
                fence.status(&xid, branch.branch_id).await.unwrap(),
                Some(FenceStatus::Tried)
            );
            assert_eq!(ledger(&fence, &xid, "try").await, 1);

            let data = client.application_data(branch.branch_id);
            for _ in 0..2 {
                let status = resource
                    .branch_commit(request(&xid, branch.branch_id, &data))
                    .await;
                assert_eq!(status, BranchStatus::PhaseTwoCommitted);
            }
            assert_eq!(resource.participant().confirms.load(Ordering::SeqCst), 1);
            assert_eq!(ledger(&fence, &xid, "confirm").await, 1);
            let status = resource
                .branch_rollback(request(&xid, branch.branch_id, &data))
                .await;
            assert_eq!(
                status,
                BranchStatus::PhaseTwoRollbackFailedRetryable,
                "rollback after commit"
            );
            assert_eq!(resource.participant().cancels.load(Ordering::SeqCst), 0);
        }

        #[tokio::test]
        async fn fenced_resource_empty_rollback_then_late_try_is_refused() {
            let fence = fence().await;
            let resource = TccResource::with_guard(Ledger::default(), fence.clone());
            let xid = support::unique_xid();
            // The TC rolls back branch 1000 (the id the recording client will hand out) before
            // the try's BranchRegister answer reached us: the classic suspension.
            let data = r#"{"actionContext":{"useTCCFence":true}}"#;
            let status = resource.branch_rollback(request(&xid, 1000, data)).await;
            assert_eq!(status, BranchStatus::PhaseTwoRollbacked);
            assert_eq!(resource.participant().cancels.load(Ordering::SeqCst), 0);

            let client = support::RecordingClient::default();
            let late =
                ferrata::context::with_xid(xid.clone(), tcc_try(&client, &resource, 12)).await;
            assert!(
                matches!(
                    late,
                    Err(TccError::Fence {
                        source: FenceError::Suspended { .. },
                        ..
                    })
                ),
                "the late try must be refused: {late:?}"
            );
            assert_eq!(client.registered()[0].branch_id, 1000);
            assert_eq!(resource.participant().prepares.load(Ordering::SeqCst), 0);
            assert_eq!(ledger(&fence, &xid, "try").await, 0);
            assert_eq!(
                fence.status(&xid, 1000).await.unwrap(),
                Some(FenceStatus::Suspended)
            );
        }

        #[tokio::test]
        async fn branch_registered_without_the_fence_runs_phase_two_in_a_plain_transaction() {
            let fence = fence().await;
            let resource = TccResource::with_guard(Ledger::default(), fence.clone());
            let xid = support::unique_xid();
            let data = r#"{"actionContext":{"useTCCFence":false,"amount":12}}"#;
            let status = resource.branch_commit(request(&xid, 5, data)).await;
            assert_eq!(status, BranchStatus::PhaseTwoCommitted);
            assert_eq!(ledger(&fence, &xid, "confirm").await, 1);
            assert_eq!(
                fence.status(&xid, 5).await.unwrap(),
                None,
                "no fence row for such a branch"
            );
        }
    };
}
