//! The engine when things go wrong between and inside steps, on real MariaDB and PostgreSQL
//! (and the real ferrata-server where the TC matters): a store write failing between two loop
//! iterations, a sub-machine that ends unknown, a machine whose expression is broken, a
//! panicking service, and a business key too long for the tables.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use ferrata_saga::engine::{SagaEngine, SagaError, ServiceError};
use ferrata_saga::model::{ExecutionStatus, Loop, StateMachine};
use ferrata_saga::store::{
    DefinitionRecord, MachineInstanceRecord, StateInstanceRecord, StateLogStore, StoreError,
    StoreFuture,
};
use serde_json::{Value, json};
use support::*;

/// A real store whose `insert_state` fails once after `allowed` more inserts: the database
/// going away between two steps.
#[derive(Debug)]
struct FailingOnce<S> {
    inner: S,
    allowed: Arc<AtomicI64>,
}

impl<S: StateLogStore> StateLogStore for FailingOnce<S> {
    fn create_tables(&self) -> StoreFuture<'_, ()> {
        self.inner.create_tables()
    }
    fn latest_definition<'a>(
        &'a self,
        name: &'a str,
        tenant_id: &'a str,
        app_name: &'a str,
    ) -> StoreFuture<'a, Option<DefinitionRecord>> {
        self.inner.latest_definition(name, tenant_id, app_name)
    }
    fn definition<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<DefinitionRecord>> {
        self.inner.definition(id)
    }
    fn insert_definition<'a>(&'a self, d: &'a DefinitionRecord) -> StoreFuture<'a, ()> {
        self.inner.insert_definition(d)
    }
    fn insert_machine<'a>(&'a self, m: &'a MachineInstanceRecord) -> StoreFuture<'a, ()> {
        self.inner.insert_machine(m)
    }
    fn update_machine<'a>(&'a self, m: &'a MachineInstanceRecord) -> StoreFuture<'a, ()> {
        self.inner.update_machine(m)
    }
    fn machine<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<MachineInstanceRecord>> {
        self.inner.machine(id)
    }
    fn insert_state<'a>(&'a self, s: &'a StateInstanceRecord) -> StoreFuture<'a, ()> {
        if self.allowed.fetch_sub(1, Ordering::SeqCst) == 0 {
            return Box::pin(async {
                Err(StoreError::Malformed {
                    table: "state_inst",
                    id: "-".to_owned(),
                    reason: "injected: the database went away".to_owned(),
                })
            });
        }
        self.inner.insert_state(s)
    }
    fn update_state<'a>(&'a self, s: &'a StateInstanceRecord) -> StoreFuture<'a, ()> {
        self.inner.update_state(s)
    }
    fn states<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Vec<StateInstanceRecord>> {
        self.inner.states(id)
    }
}

fn counting_service(engine: &SagaEngine, ledger: &Ledger, service: &str, method: &str) {
    let l = ledger.clone();
    let tag = format!("{service}.{method}");
    engine.register_service(service, method, move |args: Vec<Value>| {
        let l = l.clone();
        let tag = tag.clone();
        async move {
            l.push(format!(
                "{tag}:{}",
                args.first().map(Value::to_string).unwrap_or_default()
            ));
            Ok(json!(true))
        }
    });
}

macro_rules! fault_suite {
    ($module:ident, $pool:ty, $url:ident) => {
        mod $module {
            use super::*;
            use ferrata_saga::store::SqlStateLogStore;

            async fn store(test: &str) -> SqlStateLogStore<<$pool as PoolDb>::Db> {
                let pool = <$pool>::connect(&$url()).await.unwrap();
                SqlStateLogStore::with_prefix(pool, &prefix(test, stringify!($module))).unwrap()
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_loop_interrupted_between_iterations_resumes_where_it_stopped() {
                let allowed = Arc::new(AtomicI64::new(i64::MAX));
                let engine = SagaEngine::builder(FailingOnce {
                    inner: store("resume").await,
                    allowed: allowed.clone(),
                })
                .start()
                .await
                .unwrap();
                let machine = StateMachine::builder("pages")
                    .service_task("Each", "item", "handle", |t| {
                        t.input(["$.[loopElement]"])
                            .output("handled", "$.#root")
                            .loop_(Loop {
                                collection: "$.[items]".to_owned(),
                                ..Loop::default()
                            })
                            .next("Done")
                    })
                    .succeed("Done")
                    .build()
                    .unwrap();
                engine.register_machine(machine).await.unwrap();
                let ledger = Ledger::default();
                counting_service(&engine, &ledger, "item", "handle");
                // Two iterations are written, the third row's insert fails.
                allowed.store(2, Ordering::SeqCst);
                let error = engine
                    .start("pages", Some("page-run"), params(json!({"items": ["a", "b", "c", "d"]})))
                    .await
                    .unwrap_err();
                assert!(matches!(error, SagaError::Store(_)), "{error}");
                let id = only_instance(&engine, "page-run").await;
                let outcome = engine.forward(&id).await.unwrap();
                assert_eq!(outcome.status, ExecutionStatus::Succeed, "{outcome:?}");
                // a and b are not run again; c and d are.
                assert_eq!(
                    ledger_all(&ledger),
                    ["item.handle:\"a\"", "item.handle:\"b\"", "item.handle:\"c\"", "item.handle:\"d\""]
                );
                assert_eq!(outcome.context["loopResult"].as_array().unwrap().len(), 4);
                assert!(
                    outcome.context["loopResult"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|r| r["handled"] == json!(true)),
                    "{:?}",
                    outcome.context["loopResult"]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_sub_machine_that_ended_unknown_is_compensated_through_its_parent() {
                let engine = SagaEngine::builder(store("subun").await).start().await.unwrap();
                let child = StateMachine::builder("unknownChild")
                    .service_task("Debit", "acct", "debit", |t| {
                        t.input(["$.[key]"]).compensate_state("Refund").next("Credit")
                    })
                    .service_task("Credit", "acct", "credit", |t| {
                        t.input(["$.[key]"]).compensate_state("CancelCredit").next("Ok")
                    })
                    .service_task("Refund", "acct", "refund", |t| t.input(["$.[key]"]))
                    .service_task("CancelCredit", "acct", "cancelCredit", |t| t.input(["$.[key]"]))
                    .succeed("Ok")
                    .build()
                    .unwrap();
                let parent = StateMachine::builder("unknownParent")
                    .sub_state_machine("CallChild", "unknownChild", |t| {
                        t.input_value(json!({"key": "$.[key]"}))
                            .catch(["java.lang.Throwable"], "Undo")
                            .next("Ok")
                    })
                    .compensation_trigger("Undo", "Failed")
                    .succeed("Ok")
                    .fail("Failed", Some("CHILD_FAILED"), None)
                    .build()
                    .unwrap();
                engine.register_machine(child).await.unwrap();
                engine.register_machine(parent).await.unwrap();
                let ledger = Ledger::default();
                counting_service(&engine, &ledger, "acct", "debit");
                counting_service(&engine, &ledger, "acct", "refund");
                counting_service(&engine, &ledger, "acct", "cancelCredit");
                let l = ledger.clone();
                engine.register_service("acct", "credit", move |args: Vec<Value>| {
                    let l = l.clone();
                    async move {
                        l.push(format!("acct.credit-timeout:{}", args[0]));
                        Err(ServiceError::new("java.net.SocketTimeoutException", "read timed out"))
                    }
                });
                let out = engine
                    .start("unknownParent", None, params(json!({"key": "k1"})))
                    .await
                    .unwrap();
                assert_eq!(out.compensation_status, Some(ExecutionStatus::Succeed), "{out:?}");
                // The child ended unknown (its credit timed out, nothing caught it): the
                // parent's compensation reaches into it, newest step first.
                assert_eq!(
                    ledger_all(&ledger),
                    [
                        "acct.debit:\"k1\"",
                        "acct.credit-timeout:\"k1\"",
                        "acct.cancelCredit:\"k1\"",
                        "acct.refund:\"k1\""
                    ]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_broken_expression_ends_the_saga_failed_and_the_tc_transaction_with_it() {
                let server = server();
                let client = client(&server.addr().to_string(), "saga-faults").await;
                let engine = SagaEngine::builder(store("broken").await)
                    .client(client.clone())
                    .start()
                    .await
                    .unwrap();
                let machine = StateMachine::builder("broken")
                    .choice("Route", |c| c.when("[amount] >", "Ok").otherwise("Ok"))
                    .succeed("Ok")
                    .build()
                    .unwrap();
                engine.register_machine(machine).await.unwrap();
                let out = engine
                    .start("broken", None, params(json!({"amount": 1})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Failed, "{out:?}");
                assert!(out.error.as_deref().unwrap().contains("Route"), "{out:?}");
                let (record, _) = engine.instance(&out.instance_id).await.unwrap().unwrap();
                assert!(!record.running);
                let ended = ferrata_testkit::eventually(WAIT, || async {
                    matches!(
                        client.status(&out.instance_id).await.unwrap(),
                        ferrata::GlobalStatus::Finished | ferrata::GlobalStatus::Rollbacked
                    )
                })
                .await;
                assert!(ended, "the TC ended the transaction");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_panicking_service_fails_its_step_not_the_engine() {
                let engine = SagaEngine::builder(store("panic").await).start().await.unwrap();
                let machine = StateMachine::builder("panics")
                    .service_task("Boom", "svc", "boom", |t| t.next("Ok"))
                    .succeed("Ok")
                    .build()
                    .unwrap();
                engine.register_machine(machine).await.unwrap();
                engine.register_service("svc", "boom", |_args: Vec<Value>| async {
                    if true {
                        panic!("service bug");
                    }
                    Ok(json!(null))
                });
                let out = engine.start("panics", None, params(json!({}))).await.unwrap();
                assert_eq!(out.status, ExecutionStatus::Failed, "{out:?}");
                let (_, states) = engine.instance(&out.instance_id).await.unwrap().unwrap();
                assert_eq!(states[0].status, ExecutionStatus::Failed);
                assert!(states[0].error.as_deref().unwrap().contains("ferrata.saga.Panic"));
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_business_key_longer_than_its_column_is_refused_before_anything_starts() {
                let engine = SagaEngine::builder(store("key").await).start().await.unwrap();
                engine.register_json(MACHINES[0]).await.unwrap();
                let key = "k".repeat(49);
                let error = engine
                    .start("purchase", Some(&key), params(json!({})))
                    .await
                    .unwrap_err();
                assert!(matches!(error, SagaError::BadInput(_)), "{error}");
            }

            /// The one instance with this business key.
            async fn only_instance(engine: &SagaEngine, key: &str) -> String {
                let _ = engine;
                let pool = <$pool>::connect(&$url()).await.unwrap();
                let table = format!("{}state_machine_inst", prefix("resume", stringify!($module)));
                let sql = format!(
                    "SELECT id FROM {table} WHERE business_key = {}",
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

/// Everything the services recorded, in order.
fn ledger_all(ledger: &Ledger) -> Vec<String> {
    ledger.all()
}

/// The sqlx database of a pool type.
trait PoolDb {
    type Db: ferrata_saga::sqlx::Database;
}
impl PoolDb for ferrata_saga::sqlx::MySqlPool {
    type Db = ferrata_saga::sqlx::MySql;
}
impl PoolDb for ferrata_saga::sqlx::PgPool {
    type Db = ferrata_saga::sqlx::Postgres;
}

fault_suite!(mysql, ferrata_saga::sqlx::MySqlPool, mysql_url);
fault_suite!(postgres, ferrata_saga::sqlx::PgPool, postgres_url);
