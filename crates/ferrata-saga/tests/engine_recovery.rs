//! A Saga whose engine process dies mid-saga, through the real ferrata-server on real MariaDB
//! and PostgreSQL: the TC times the transaction out, and a restarted engine (a new process with
//! the same application) compensates it — or, for a machine with `RecoverStrategy: Forward`,
//! finishes it forward.
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use ferrata_saga::model::ExecutionStatus;
use ferrata_testkit::eventually;
use serde_json::{Value, json};
use support::*;

/// Selects the child role (this test executable re-run as the engine that dies).
const CHILD_ROLE: &str = "FERRATA_SAGA_CHILD";
const CHILD_TC: &str = "FERRATA_SAGA_CHILD_TC";
const CHILD_PREFIX: &str = "FERRATA_SAGA_CHILD_PREFIX";
const CHILD_APP: &str = "FERRATA_SAGA_CHILD_APP";
const CHILD_MACHINE: &str = "FERRATA_SAGA_CHILD_MACHINE";
const CHILD_KEY: &str = "FERRATA_SAGA_CHILD_KEY";

/// Exit code of a child that died inside the balance service, as planned.
const DIED: i32 = 17;

macro_rules! recovery_suite {
    ($module:ident, $pool:ty, $url:ident) => {
        mod $module {
            use super::*;
            use ferrata_saga::engine::SagaEngine;
            use ferrata_saga::store::SqlStateLogStore;

            async fn engine(
                tc: &str,
                app: &str,
                prefix: &str,
                timeout: Duration,
            ) -> (SagaEngine, ferrata::Client) {
                let client = client(tc, app).await;
                let pool = <$pool>::connect(&$url()).await.unwrap();
                let store = SqlStateLogStore::with_prefix(pool, prefix).unwrap();
                let engine = SagaEngine::builder(store)
                    .client(client.clone())
                    .transaction_timeout(timeout)
                    .start()
                    .await
                    .unwrap();
                for machine in MACHINES {
                    engine.register_json(machine).await.unwrap();
                }
                (engine, client)
            }

            /// The child role: starts the saga and dies inside the balance service, after the
            /// inventory step succeeded. Does nothing unless the parent set `CHILD_ROLE`.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn child_engine() {
                if std::env::var(CHILD_ROLE).as_deref() != Ok(stringify!($module)) {
                    return;
                }
                let var = |name: &str| std::env::var(name).unwrap();
                let (engine, _client) = engine(
                    &var(CHILD_TC),
                    &var(CHILD_APP),
                    &var(CHILD_PREFIX),
                    Duration::from_secs(3),
                )
                .await;
                let ledger = Ledger::default();
                register_services(&engine, &ledger, false);
                engine.register_service("balanceAction", "reduce", |_args: Vec<Value>| async {
                    std::process::exit(DIED)
                });
                let key = var(CHILD_KEY);
                let _ = engine
                    .start(
                        &var(CHILD_MACHINE),
                        Some(&key),
                        params(json!({"businessKey": key, "count": 1, "amount": 7, "mockReduceBalanceFail": false})),
                    )
                    .await;
                panic!("the child should have died in the balance service");
            }

            /// Runs `child_engine` in a new process and waits for it to die as planned.
            fn run_child(tc: &str, app: &str, prefix: &str, machine: &str, key: &str) {
                let status = std::process::Command::new(std::env::current_exe().unwrap())
                    .args([
                        "--exact",
                        concat!(stringify!($module), "::child_engine"),
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(CHILD_ROLE, stringify!($module))
                    .env(CHILD_TC, tc)
                    .env(CHILD_APP, app)
                    .env(CHILD_PREFIX, prefix)
                    .env(CHILD_MACHINE, machine)
                    .env(CHILD_KEY, key)
                    .status()
                    .unwrap();
                assert_eq!(status.code(), Some(DIED), "the child engine died mid-saga");
            }

            /// Checks the instance the child left behind: inventory done, balance running.
            async fn left_mid_saga(engine: &SagaEngine, id: &str) {
                let (machine, states) = engine.instance(id).await.unwrap().unwrap();
                assert_eq!(machine.status, ExecutionStatus::Running);
                assert!(machine.running);
                let steps: Vec<_> = states.iter().map(|s| (s.name.as_str(), s.status)).collect();
                assert_eq!(
                    steps,
                    [
                        ("ReduceInventory", ExecutionStatus::Succeed),
                        ("ReduceBalance", ExecutionStatus::Running)
                    ]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_saga_whose_engine_died_is_compensated_by_the_restarted_engine() {
                recover("comp", "purchase", |machine, ledger, key| {
                    assert_eq!(machine.compensation_status, Some(ExecutionStatus::Succeed));
                    // The balance call's outcome is unknown, so it is compensated too.
                    assert_eq!(ledger.of(key), ["compensate-balance", "compensate-inventory"]);
                })
                .await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forward_saga_whose_engine_died_is_finished_forward() {
                recover("fwd", "forward", |machine, ledger, key| {
                    assert_eq!(machine.status, ExecutionStatus::Succeed);
                    assert_eq!(machine.compensation_status, None);
                    assert_eq!(ledger.of(key), ["reduce-balance"]);
                })
                .await;
            }

            async fn recover(
                test: &str,
                machine: &str,
                check: impl Fn(&ferrata_saga::store::MachineInstanceRecord, &Ledger, &str),
            ) {
                let server = server();
                let tc = server.addr().to_string();
                let app = format!("saga-recovery-{test}");
                let prefix = prefix(&format!("rec{test}"), stringify!($module));
                let key = format!("{test}-{}-{}", stringify!($module), std::process::id());
                // The tables exist before the child runs, so its rows can be read afterwards.
                let (probe, probe_client) = engine(&tc, "saga-probe", &prefix, Duration::from_secs(60)).await;
                drop((probe, probe_client));
                run_child(&tc, &app, &prefix, machine, &key);

                let (engine, client) = engine(&tc, &app, &prefix, Duration::from_secs(60)).await;
                let ledger = Ledger::default();
                register_services(&engine, &ledger, false);
                let id = instance_of(&prefix, &key).await;
                left_mid_saga(&engine, &id).await;
                let done = eventually(WAIT, || async {
                    let (m, _) = engine.instance(&id).await.unwrap().unwrap();
                    !m.running
                        && (m.compensation_status == Some(ExecutionStatus::Succeed)
                            || m.status == ExecutionStatus::Succeed)
                })
                .await;
                let (record, _) = engine.instance(&id).await.unwrap().unwrap();
                assert!(done, "the TC's recovery ended the saga: {record:?} {:?}", ledger.of(&key));
                check(&record, &ledger, &key);
                let ended_at_tc = eventually(WAIT, || async {
                    matches!(
                        client.status(&id).await.unwrap(),
                        ferrata::GlobalStatus::Finished
                            | ferrata::GlobalStatus::Committed
                            | ferrata::GlobalStatus::Rollbacked
                            | ferrata::GlobalStatus::TimeoutRollbacked
                    )
                })
                .await;
                assert!(ended_at_tc, "the TC ended the global transaction");
            }

            /// Looks the instance up by business key in the machine-instance table.
            async fn instance_of(prefix: &str, key: &str) -> String {
                let pool = <$pool>::connect(&$url()).await.unwrap();
                let sql = format!(
                    "SELECT id FROM {prefix}state_machine_inst WHERE business_key = {}",
                    if stringify!($module) == "mysql" { "?" } else { "$1" }
                );
                ferrata_saga::sqlx::query_scalar::<_, String>(&sql)
                    .bind(key)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        }
    };
}

recovery_suite!(mysql, ferrata_saga::sqlx::MySqlPool, mysql_url);
recovery_suite!(postgres, ferrata_saga::sqlx::PgPool, postgres_url);
