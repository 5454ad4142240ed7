//! The engine running the machines of `tests/machines` through the real ferrata-server on real
//! MariaDB and PostgreSQL: forward success, compensation after a failing step, Choice, Retry,
//! sub-machines, loops, scripts, and forward recovery driven by the TC.
#![allow(clippy::unwrap_used)]

mod support;

use ferrata::GlobalStatus;
use ferrata_saga::model::ExecutionStatus;
use ferrata_testkit::eventually;
use serde_json::json;
use support::*;

/// Ended, as the TC reports a transaction it no longer holds or one that ended.
fn ended(status: GlobalStatus) -> bool {
    matches!(
        status,
        GlobalStatus::Finished | GlobalStatus::Committed | GlobalStatus::Rollbacked
    )
}

macro_rules! engine_suite {
    ($module:ident, $pool:ty, $url:ident) => {
        mod $module {
            use super::*;
            use ferrata_saga::engine::SagaEngine;
            use ferrata_saga::store::SqlStateLogStore;

            struct Fixture {
                _server: ferrata_testkit::TcProcess,
                client: ferrata::Client,
                engine: SagaEngine,
                ledger: Ledger,
            }

            async fn fixture(test: &str, balance_fails_first: bool) -> Fixture {
                let server = server();
                let client = client(&server.addr().to_string(), &format!("saga-{test}")).await;
                let pool = <$pool>::connect(&$url()).await.unwrap();
                let store =
                    SqlStateLogStore::with_prefix(pool, &prefix(test, stringify!($module)))
                        .unwrap();
                let engine = SagaEngine::builder(store)
                    .client(client.clone())
                    .start()
                    .await
                    .unwrap();
                for machine in MACHINES {
                    engine.register_json(machine).await.unwrap();
                }
                let ledger = Ledger::default();
                register_services(&engine, &ledger, balance_fails_first);
                Fixture {
                    _server: server,
                    client,
                    engine,
                    ledger,
                }
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn purchase_runs_forward_and_reports_committed() {
                let f = fixture("fwd", false).await;
                let out = f
                    .engine
                    .start(
                        "purchase",
                        Some("order-1"),
                        params(json!({"businessKey": "order-1", "count": 2, "amount": 10, "mockReduceBalanceFail": false})),
                    )
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                assert_eq!(out.compensation_status, None);
                assert_eq!(out.context["reduceInventoryResult"], json!(true));
                assert_eq!(out.context["reduceBalanceResult"], json!(true));
                assert_eq!(f.ledger.of("order-1"), ["reduce-inventory", "reduce-balance"]);
                let (machine, states) = f.engine.instance(&out.instance_id).await.unwrap().unwrap();
                assert_eq!(machine.status, ExecutionStatus::Succeed);
                assert!(!machine.running);
                assert_eq!(machine.business_key.as_deref(), Some("order-1"));
                let names: Vec<_> = states.iter().map(|s| (s.name.as_str(), s.status)).collect();
                assert_eq!(
                    names,
                    [
                        ("ReduceInventory", ExecutionStatus::Succeed),
                        ("ReduceBalance", ExecutionStatus::Succeed)
                    ]
                );
                assert!(ended(f.client.status(&out.instance_id).await.unwrap()));
                // The instance's picture marks the states it ran.
                let svg = f.engine.instance_svg(&out.instance_id).await.unwrap().unwrap();
                assert!(svg.starts_with("<svg"), "{svg}");
                assert!(svg.contains("ReduceBalance"));
                let picture = f.engine.machine_svg("purchase").unwrap();
                assert!(picture.contains("CompensateReduceBalance"));
                assert_ne!(svg, picture, "the instance's path is drawn on the machine");
                assert!(f.engine.instance_svg("no-such-instance").await.unwrap().is_none());
                // And over HTTP, where the console's `admin.saga_pictures` points.
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let addr = listener.local_addr().unwrap();
                let app = axum::Router::new()
                    .nest("/saga", ferrata_saga::http::router(f.engine.clone()));
                let served = tokio::spawn(async move { axum::serve(listener, app).await });
                let (status, response) =
                    http_get(addr, &format!("/saga/instances/{}.svg", out.instance_id)).await;
                assert!(status.contains("200"), "{response}");
                assert!(response.to_ascii_lowercase().contains("content-type: image/svg+xml"));
                assert!(response.contains(&svg), "the same picture");
                let (status, _) = http_get(addr, "/saga/machines/purchase.svg").await;
                assert!(status.contains("200"), "{status}");
                let (status, _) = http_get(addr, "/saga/instances/unknown.svg").await;
                assert!(status.contains("404"), "{status}");
                served.abort();
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_failing_step_is_caught_and_everything_done_is_compensated_in_reverse() {
                let f = fixture("comp", false).await;
                let out = f
                    .engine
                    .start(
                        "purchase",
                        Some("order-2"),
                        params(json!({"businessKey": "order-2", "count": 2, "amount": 10, "mockReduceBalanceFail": true})),
                    )
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Failed, "{out:?}");
                assert_eq!(out.compensation_status, Some(ExecutionStatus::Succeed));
                assert_eq!(
                    f.ledger.of("order-2"),
                    [
                        "reduce-inventory",
                        "reduce-balance-failed",
                        "compensate-balance",
                        "compensate-inventory"
                    ]
                );
                let (_, states) = f.engine.instance(&out.instance_id).await.unwrap().unwrap();
                let balance = states.iter().find(|s| s.name == "ReduceBalance").unwrap();
                assert_eq!(balance.status, ExecutionStatus::Unknown);
                let undo = states
                    .iter()
                    .find(|s| s.name == "CompensateReduceBalance")
                    .unwrap();
                assert_eq!(undo.compensated_for.as_deref(), Some(balance.id.as_str()));
                assert!(ended(f.client.status(&out.instance_id).await.unwrap()));
                // Compensating again does nothing more.
                let again = f.engine.compensate(&out.instance_id).await.unwrap();
                assert_eq!(again.compensation_status, Some(ExecutionStatus::Succeed));
                assert_eq!(f.ledger.of("order-2").len(), 4);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_false_result_ends_the_machine_failed_without_compensation() {
                let f = fixture("choice", false).await;
                let out = f
                    .engine
                    .start(
                        "purchase",
                        None,
                        params(json!({"businessKey": "order-3", "count": -1, "amount": 10, "mockReduceBalanceFail": false})),
                    )
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Failed);
                assert_eq!(out.compensation_status, None);
                assert_eq!(f.ledger.of("order-3"), ["reduce-inventory"]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn retry_reinvokes_until_success_or_the_attempts_run_out() {
                let f = fixture("retry", false).await;
                let out = f
                    .engine
                    .start("retry", None, params(json!({"businessKey": "r-1", "count": 1, "failTimes": 2})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                assert_eq!(
                    f.ledger.of("r-1"),
                    ["reduce-inventory", "flaky-failed", "flaky-failed", "flaky"]
                );
                let out = f
                    .engine
                    .start("retry", None, params(json!({"businessKey": "r-2", "count": 1, "failTimes": 10})))
                    .await
                    .unwrap();
                // MaxAttempts 3: one call and three retries, then the Catch compensates.
                assert_eq!(out.compensation_status, Some(ExecutionStatus::Succeed), "{out:?}");
                assert_eq!(
                    f.ledger.of("r-2"),
                    [
                        "reduce-inventory",
                        "flaky-failed",
                        "flaky-failed",
                        "flaky-failed",
                        "flaky-failed",
                        "compensate-flaky",
                        "compensate-inventory"
                    ]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_sub_machine_runs_as_one_step_and_is_compensated_through_its_parent() {
                let f = fixture("sub", false).await;
                let ok = f
                    .engine
                    .start(
                        "subMachineParent",
                        None,
                        params(json!({"businessKey": "s-1", "count": 1, "amount": 5, "mockReduceBalanceFail": false})),
                    )
                    .await
                    .unwrap();
                assert_eq!(ok.status, ExecutionStatus::Succeed, "{ok:?}");
                assert_eq!(ok.context["childResult"]["reduceBalanceResult"], json!(true));
                assert_eq!(f.ledger.of("s-1"), ["reduce-inventory", "reduce-balance"]);
                let (_, states) = f.engine.instance(&ok.instance_id).await.unwrap().unwrap();
                let call = states.iter().find(|s| s.name == "CallChild").unwrap();
                let child = f
                    .engine
                    .instance(&format!("{}:{}", ok.instance_id, call.id))
                    .await
                    .unwrap()
                    .expect("the child instance is recorded");
                assert_eq!(child.0.parent_id.as_deref(), Some(ok.instance_id.as_str()));

                let failed = f
                    .engine
                    .start(
                        "subMachineParent",
                        None,
                        params(json!({"businessKey": "s-2", "count": 1, "amount": 5, "mockReduceBalanceFail": true})),
                    )
                    .await
                    .unwrap();
                assert_eq!(failed.compensation_status, Some(ExecutionStatus::Succeed), "{failed:?}");
                assert_eq!(
                    f.ledger.of("s-2"),
                    [
                        "reduce-inventory",
                        "reduce-balance-failed",
                        "compensate-balance",
                        "compensate-inventory"
                    ]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_loop_runs_per_element_and_compensates_each_done_element() {
                let f = fixture("loop", false).await;
                let out = f
                    .engine
                    .start("loop", None, params(json!({"businessKey": "l-1", "items": ["a", "b", "c"]})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                // ProcessItems has Parallel 3: its three calls run at once, in any order;
                // NotifyItems (Parallel 1) runs in index order after them.
                let calls = f.ledger.of("l-1");
                let mut processed = calls[..3].to_vec();
                processed.sort();
                assert_eq!(processed, ["process:a:0", "process:b:1", "process:c:2"]);
                assert_eq!(calls[3..], ["notify:a", "notify:b", "notify:c"]);
                assert_eq!(out.context["loopResult"].as_array().unwrap().len(), 3);
                let (_, states) = f.engine.instance(&out.instance_id).await.unwrap().unwrap();
                assert_eq!(states.iter().filter(|s| s.name == "ProcessItems").count(), 3);

                // The third element fails: the batch's other two succeeded, the fourth never
                // ran, and the three executions are compensated newest row first.
                let out = f
                    .engine
                    .start("loop", None, params(json!({"businessKey": "l-2", "items": ["a", "b", "boom", "d"]})))
                    .await
                    .unwrap();
                assert_eq!(out.compensation_status, Some(ExecutionStatus::Succeed), "{out:?}");
                let calls = f.ledger.of("l-2");
                let mut processed = calls[..3].to_vec();
                processed.sort();
                assert_eq!(processed, ["process-failed:boom", "process:a:0", "process:b:1"]);
                assert_eq!(
                    calls[3..],
                    [
                        "compensate-process:boom",
                        "compensate-process:b",
                        "compensate-process:a"
                    ]
                );
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_parallel_loop_runs_its_calls_at_once() {
                use ferrata_saga::model::{Loop, StateMachine};
                let f = fixture("par", false).await;
                // Built with the builder: each call waits at a barrier for the other two, so
                // the loop finishes only if its three calls are in flight together.
                let machine = StateMachine::builder("parallelLoop")
                    .service_task("Meet", "barrier", "meet", |t| {
                        t.input(["$.[loopElement]"])
                            .loop_(Loop {
                                parallel: 3,
                                collection: "$.[items]".to_owned(),
                                ..Loop::default()
                            })
                            .next("Done")
                    })
                    .succeed("Done")
                    .build()
                    .unwrap();
                f.engine.register_machine(machine).await.unwrap();
                let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(3));
                f.engine.register_service("barrier", "meet", move |args| {
                    let barrier = barrier.clone();
                    async move {
                        match tokio::time::timeout(WAIT, barrier.wait()).await {
                            Ok(_) => Ok(args[0].clone()),
                            Err(_) => Err(ferrata_saga::engine::ServiceError::new(
                                "java.util.concurrent.TimeoutException",
                                "the other calls never came",
                            )),
                        }
                    }
                });
                let out = f
                    .engine
                    .start("parallelLoop", None, params(json!({"items": [1, 2, 3]})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn script_tasks_and_designer_machines_run() {
                let f = fixture("script", false).await;
                let out = f
                    .engine
                    .start("script", None, params(json!({"businessKey": "p-1", "amount": 150})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                assert_eq!(out.context["needsReview"], json!(true));
                assert_eq!(f.ledger.of("p-1"), ["review:150"]);
                let out = f
                    .engine
                    .start("script", None, params(json!({"businessKey": "p-2", "amount": 50})))
                    .await
                    .unwrap();
                assert_eq!(out.context["needsReview"], json!(false));
                assert!(f.ledger.of("p-2").is_empty());

                let out = f
                    .engine
                    .start("designer", None, params(json!({"businessKey": "d-1", "count": 1})))
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                assert_eq!(f.ledger.of("d-1"), ["reduce-inventory"]);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unknown_step_is_retried_forward_by_the_tc() {
                let f = fixture("unknown", true).await;
                let out = f
                    .engine
                    .start(
                        "forward",
                        None,
                        params(json!({"businessKey": "u-1", "count": 1, "amount": 3, "mockReduceBalanceFail": false})),
                    )
                    .await
                    .unwrap();
                // The balance call timed out: its outcome is unknown, reported CommitRetrying.
                assert_eq!(out.status, ExecutionStatus::Unknown, "{out:?}");
                let id = out.instance_id.clone();
                let done = eventually(WAIT, || async {
                    matches!(
                        f.engine.instance(&id).await.unwrap(),
                        Some((m, _)) if m.status == ExecutionStatus::Succeed
                    )
                })
                .await;
                assert!(done, "the TC's forward recovery finished the saga: {:?}", f.ledger.of("u-1"));
                assert_eq!(
                    f.ledger.of("u-1"),
                    ["reduce-inventory", "reduce-balance-unknown", "reduce-balance"]
                );
                // The machine sets IsRetryPersistModeUpdate: the re-run updated the row.
                let (_, states) = f.engine.instance(&id).await.unwrap().unwrap();
                let balance: Vec<_> = states.iter().filter(|s| s.name == "ReduceBalance").collect();
                assert_eq!(balance.len(), 1);
                assert_eq!(balance[0].status, ExecutionStatus::Succeed);
                let ended_at_tc = eventually(WAIT, || async {
                    ended(f.client.status(&id).await.unwrap())
                })
                .await;
                assert!(ended_at_tc);
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_forward_rerun_adds_a_row_that_names_the_one_it_retries() {
                let f = fixture("rerun", true).await;
                let mut machine = ferrata_saga::json::parse_state_machine(include_str!(
                    "machines/forward.json"
                ))
                .unwrap();
                machine.name = "forwardNewRows".to_owned();
                machine.retry_persist_mode_update = false;
                f.engine.register_machine(machine).await.unwrap();
                let out = f
                    .engine
                    .start(
                        "forwardNewRows",
                        None,
                        params(json!({"businessKey": "n-1", "count": 1, "amount": 3, "mockReduceBalanceFail": false})),
                    )
                    .await
                    .unwrap();
                assert_eq!(out.status, ExecutionStatus::Unknown, "{out:?}");
                // Forward recovery through the API, as an operator would run it.
                let out = f.engine.forward(&out.instance_id).await.unwrap();
                assert_eq!(out.status, ExecutionStatus::Succeed, "{out:?}");
                let (_, states) = f.engine.instance(&out.instance_id).await.unwrap().unwrap();
                let balance: Vec<_> = states.iter().filter(|s| s.name == "ReduceBalance").collect();
                assert_eq!(balance.len(), 2);
                assert_eq!(balance[0].status, ExecutionStatus::Unknown);
                assert_eq!(balance[1].status, ExecutionStatus::Succeed);
                assert_eq!(balance[1].retried_for.as_deref(), Some(balance[0].id.as_str()));
                assert_eq!(out.context["reduceBalanceResult"], json!(true));
            }
        }
    };
}

engine_suite!(mysql, ferrata_saga::sqlx::MySqlPool, mysql_url);
engine_suite!(postgres, ferrata_saga::sqlx::PgPool, postgres_url);
