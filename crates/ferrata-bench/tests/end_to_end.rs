//! End to end: every workload, closed and open loop, against an in-process ferrata-server on
//! 127.0.0.1, and the dtm-saga workload against a small fake DTM that calls the saga steps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use bytes::Bytes;
use clap::Parser;
use ferrata_bench::cli::{Cli, Command, RunArgs};
use ferrata_bench::dtm::HttpClient;
use ferrata_bench::report::Report;
use ferrata_bench::results::Mode;
use hyper::Method;

mod support;

fn args(list: &[&str]) -> RunArgs {
    let mut argv = vec!["ferrata-bench", "run", "--warmup-secs", "0.2"];
    argv.extend_from_slice(list);
    match Cli::try_parse_from(argv)
        .expect("valid command line")
        .command
    {
        Command::Run(run) => run,
        other => panic!("not a run: {other:?}"),
    }
}

/// A ferrata-server on a free loopback port, stopped when the sender is dropped.
async fn start_server(dir: &std::path::Path) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    tokio::spawn(support::serve(listener, dir.to_path_buf(), shutdown));
    (addr, stop)
}

async fn bench(list: &[&str]) -> Report {
    let report = ferrata_bench::run(&args(list)).await.expect("run");
    println!("{}", report.table());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_seata_workload_runs_clean_against_ferrata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (addr, _stop) = start_server(dir.path()).await;
    let target = addr.to_string();
    let common = ["--target", target.as_str(), "--duration-secs", "1"];

    let with = |extra: &[&'static str]| {
        let mut all: Vec<&str> = common.to_vec();
        all.extend_from_slice(extra);
        all
    };

    let report = bench(&with(&["--workload", "begin-commit", "--connections", "4"])).await;
    assert!(report.transactions > 50, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for kind in ["begin", "commit", "transaction"] {
        assert!(report.latency_us.contains_key(kind), "no {kind} latency");
    }
    assert!(!report.latency_us.contains_key("branch_register"));
    assert!(!report.latency_us.contains_key("start_lag"), "closed loop");

    let report = bench(&with(&["--workload", "at-commit", "--connections", "8"])).await;
    assert!(report.transactions > 50, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let registers = report.latency_us["branch_register"].count;
    // Two branches per transaction, give or take the transactions straddling the window edges.
    assert!(
        registers + 16 >= 2 * report.transactions,
        "{}",
        report.table()
    );

    let report = bench(&with(&[
        "--workload",
        "at-commit",
        "--connections",
        "8",
        "--rm-connections",
        "2",
        "--merged",
    ]))
    .await;
    assert!(report.transactions > 50, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let report = bench(&with(&["--workload", "at-rollback", "--connections", "4"])).await;
    assert!(report.transactions > 20, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.latency_us.contains_key("rollback"));
    // Rollback is synchronous: the bench RMs answered phase two for every measured branch.
    assert!(report.phase2_rollbacks > 0, "{}", report.table());

    let report = bench(&with(&["--workload", "hot-key", "--connections", "4"])).await;
    assert!(report.transactions > 5, "{}", report.table());
    assert!(
        report.errors.keys().all(|k| k == "lock_conflict_exhausted"),
        "{:?}",
        report.errors
    );

    // Open loop: 400 tx/s for 1 s completes about 400 transactions.
    let report = bench(&with(&[
        "--workload",
        "begin-commit",
        "--connections",
        "4",
        "--rate",
        "400",
    ]))
    .await;
    assert_eq!(report.mode, Mode::Open);
    assert!(report.latency_us.contains_key("start_lag"));
    assert!(
        (300..=460).contains(&report.transactions),
        "{}",
        report.table()
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    // Several transactions pipelined on one TM connection.
    let report = bench(&with(&[
        "--workload",
        "at-commit",
        "--connections",
        "8",
        "--tm-connections",
        "2",
    ]))
    .await;
    assert!(report.transactions > 50, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_target_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let target = addr.to_string();
    let result = tokio::time::timeout(
        Duration::from_secs(10),
        ferrata_bench::run(&args(&[
            "--target",
            &target,
            "--workload",
            "begin-commit",
            "--duration-secs",
            "1",
        ])),
    )
    .await
    .expect("bounded");
    assert!(result.is_err());
}

/// A stand-in for DTM's HTTP API: hands out gids and, on submit, calls each saga step's action
/// the way DTM does (POST with gid, trans_type, branch_id and op in the query).
#[derive(Default)]
struct FakeDtm {
    next_gid: AtomicU64,
}

async fn new_gid(State(dtm): State<Arc<FakeDtm>>) -> String {
    let n = dtm.next_gid.fetch_add(1, Ordering::Relaxed);
    format!(r#"{{"dtm_result":"SUCCESS","gid":"fake{n}"}}"#)
}

async fn submit(body: Bytes) -> &'static str {
    let saga: serde_json::Value = serde_json::from_slice(&body).expect("submit body is JSON");
    let gid = saga["gid"].as_str().expect("gid").to_owned();
    assert_eq!(saga["trans_type"], "saga");
    let steps: Vec<(String, String)> = saga["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .zip(saga["payloads"].as_array().expect("payloads"))
        .map(|(step, payload)| {
            (
                step["action"].as_str().expect("action").to_owned(),
                payload.as_str().expect("payload").to_owned(),
            )
        })
        .collect();
    tokio::spawn(async move {
        for (i, (url, payload)) in steps.into_iter().enumerate() {
            let uri: hyper::Uri = url.parse().expect("action URL");
            let authority = uri.authority().expect("authority").to_string();
            let addr: SocketAddr = authority.parse().expect("loopback address");
            let mut client = HttpClient::new(addr, authority);
            let path = format!(
                "{}?gid={gid}&trans_type=saga&branch_id={:02}&op=action",
                uri.path(),
                i + 1
            );
            let (status, answer) = client
                .request(Method::POST, &path, Bytes::from(payload))
                .await
                .expect("branch call");
            assert!(status.is_success());
            assert!(!answer.windows(7).any(|w| w == b"FAILURE"));
        }
    });
    r#"{"dtm_result":"SUCCESS"}"#
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dtm_saga_completes_when_both_actions_are_called() {
    let app = Router::new()
        .route("/api/dtmsvr/newGid", get(new_gid))
        .route("/api/dtmsvr/submit", post(submit))
        .with_state(Arc::new(FakeDtm::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(axum::serve(listener, app).into_future());
    let report = bench(&[
        "--workload",
        "dtm-saga",
        "--dtm-url",
        &url,
        "--connections",
        "4",
        "--duration-secs",
        "1",
    ])
    .await;
    assert_eq!(report.target, url);
    assert!(report.transactions > 20, "{}", report.table());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    for kind in ["new_gid", "submit", "transaction"] {
        assert!(report.latency_us.contains_key(kind), "no {kind} latency");
    }
}
