//! The scripts/bench pipeline without the script: open sessions and the start-up probe against
//! an in-process ferrata-server, then `measure` → typed results → `bench-report` → Markdown.

use std::net::SocketAddr;
use std::path::Path;

use clap::Parser;
use ferrata_bench::cli::{Cli, Command};
use ferrata_bench::measure::{Outcome, run_matrix};
use ferrata_bench::procfs::Pid;
use ferrata_bench::results::{self, ResultsDir, RunRecord, SystemRecord, SystemStatus};
use ferrata_bench::sessions::{hold, probe};

mod support;

/// A ferrata-server on its own runtime thread for the rest of the test process.
fn start_server(dir: &Path) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            support::serve(listener, dir, std::future::pending()).await;
        });
    });
    addr
}

fn command(argv: &[&str]) -> Command {
    let mut all = vec!["ferrata-bench"];
    all.extend_from_slice(argv);
    Cli::try_parse_from(all)
        .expect("valid command line")
        .command
}

#[test]
fn held_sessions_stay_open_and_the_probe_sees_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = start_server(&dir.path().join("data")).to_string();
    let xids = dir.path().join("xids");
    let out = dir.path().join("out.json");
    let pid = std::process::id().to_string();
    let Command::Hold(hold_args) = command(&[
        "hold",
        "--target",
        &target,
        "--sessions",
        "50",
        "--connections",
        "4",
        "--window",
        "8",
        "--server-pid",
        &pid,
        "--xids-out",
        xids.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]) else {
        panic!("not hold");
    };
    let runtime = ferrata_bench::runtime(2).expect("runtime");
    let held = runtime.block_on(hold(&hold_args)).expect("hold");
    assert_eq!((held.begun, held.failed), (50, 0), "{:?}", held.errors);
    assert!(held.rss_with_sessions_kb.is_some());
    let saved = std::fs::read_to_string(&xids).expect("xids");
    assert_eq!(
        saved.split_whitespace().count(),
        4,
        "one XID per connection"
    );

    let Command::Probe(probe_args) = command(&[
        "probe",
        "--target",
        &target,
        "--check-xids",
        xids.to_str().expect("utf-8"),
        "--out",
        out.to_str().expect("utf-8"),
    ]) else {
        panic!("not probe");
    };
    let t0_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_micros();
    let seen = runtime
        .block_on(probe(&probe_args, t0_us, Pid::Self_))
        .expect("probe");
    assert!(seen.ok, "{:?}", seen.reason);
    assert!(seen.ms_to_accept.is_some() && seen.ms_to_first_begin.is_some());
    // GlobalStatus 1 = Begin: every sampled transaction is still open.
    assert_eq!(seen.xid_status.len(), 4);
    assert!(seen.xid_status.values().all(|s| *s == Some(1)), "{seen:?}");
}

#[test]
fn measured_results_become_the_benchmark_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = start_server(&dir.path().join("data")).to_string();
    let results_dir = dir.path().join("results");
    let results_arg = results_dir.to_str().expect("utf-8");
    let pid = std::process::id().to_string();
    let log = dir.path().join("server.log");
    std::fs::write(&log, "ready\n").expect("log");
    let budget = dir.path().join("budget.json");
    let Command::Measure(args) = command(&[
        "measure",
        "--results",
        results_arg,
        "--system",
        "ferrata",
        "--server-pid",
        &pid,
        "--log",
        log.to_str().expect("utf-8"),
        "--target",
        &target,
        "--workloads",
        "begin-commit",
        "--connections",
        "2",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
        "--quiet-wait-secs",
        "0",
        "--retries",
        "0",
        "--budget-file",
        budget.to_str().expect("utf-8"),
    ]) else {
        panic!("not measure");
    };
    assert_eq!(run_matrix(&args).expect("measure"), Outcome::Completed);

    let layout = ResultsDir(results_dir.clone());
    let run: RunRecord =
        results::read_versioned(&layout.run("ferrata", "begin-commit", 2, 1)).expect("run record");
    let bench = run.bench.as_ref().expect("a report");
    assert!(
        bench.transactions > 0 && bench.errors.is_empty(),
        "{bench:?}"
    );
    assert_eq!((run.attempts.len(), run.kept_attempt), (1, 1));
    assert!(run.samples.alive && run.samples.server.rss_peak_kb.is_some());

    let Command::Record(what) = command(&[
        "record",
        "system",
        "--results",
        results_arg,
        "--id",
        "ferrata",
        "--status",
        "ok",
        "--tried",
        "built",
    ]) else {
        panic!("not record");
    };
    ferrata_bench::record::record(&what).expect("record system");
    let system: SystemRecord =
        results::read_versioned(&layout.system("ferrata")).expect("system record");
    assert_eq!(system.status, SystemStatus::Ok);
    assert_eq!(system.tried, ["built"]);
    assert!(system.totals.is_some_and(|t| t.log_bytes == Some(6)));

    record_meta(&results_dir, "2", &["ferrata"]);

    let text = report(dir.path(), &results_dir);
    let row = format!(
        "| Ferrata | begin-commit | 2 | {} |",
        thousands(bench.tx_per_sec)
    );
    assert!(text.contains(&row), "no row {row} in:\n{text}");
    assert!(text.contains("| Ferrata | test ("), "{text}");
    assert!(dir.path().join("charts/throughput.png").is_file());
}

/// 12345.6 -> "12,346", as the report prints throughput.
fn thousands(value: f64) -> String {
    let digits = (value.round() as u64).to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A cluster point measured in three interleaved rounds is reported by its median round, with
/// every round's throughput beside it, and the goal ratio is taken between medians.
#[test]
fn cluster_rounds_are_reported_by_their_median_round() {
    let dir = tempfile::tempdir().expect("tempdir");
    let results_dir = dir.path().join("results");
    let results_arg = results_dir.to_str().expect("utf-8");
    let layout = ResultsDir(results_dir.clone());
    record_meta(&results_dir, "64", &["ferrata-pg-1", "seata-db-1"]);
    for id in ["ferrata-pg-1", "seata-db-1"] {
        let argv = [
            "record",
            "system",
            "--results",
            results_arg,
            "--id",
            id,
            "--status",
            "ok",
        ];
        let Command::Record(what) = command(&argv) else {
            panic!("not record");
        };
        ferrata_bench::record::record(&what).expect("record");
    }
    // Rounds in an order where neither the first nor the last is the median.
    for (system, rounds) in [
        ("ferrata-pg-1", [3_000.0, 2_000.0, 4_000.0]),
        ("seata-db-1", [500.0, 700.0, 600.0]),
    ] {
        for (index, tx_per_sec) in rounds.into_iter().enumerate() {
            let round = u32::try_from(index + 1).expect("small");
            let run = synthetic_run(system, "at-commit", 64, round, tx_per_sec);
            results::write(&layout.run(system, "at-commit", 64, round), &run).expect("write run");
        }
    }
    let text = report(dir.path(), &results_dir);
    for row in [
        "| Ferrata, 1 node | at-commit | 64 | 3,000 | 2.00 |",
        "| 2,000, 3,000, 4,000 |",
        "| seata-server 2.0.0 (db), 1 node | at-commit | 64 | 600 | 2.00 |",
        "| 500, 600, 700 |",
        "| 1 | at-commit | 5.00× |",
        "3 interleaved rounds",
    ] {
        assert!(text.contains(row), "no {row} in:\n{text}");
    }
}

/// A run record as `measure` writes it, with the given throughput (p50 2 ms).
fn synthetic_run(
    system: &str,
    workload: &str,
    connections: u64,
    round: u32,
    tx_per_sec: f64,
) -> RunRecord {
    let latency = ferrata_bench::stats::LatencySummary {
        count: 1,
        p50: 2_000,
        p90: 2_000,
        p99: 2_000,
        p999: 2_000,
        max: 2_000,
        mean: 2_000.0,
    };
    RunRecord {
        schema: results::SCHEMA_VERSION,
        system: system.to_owned(),
        workload: workload.to_owned(),
        connections,
        round,
        bench: Some(results::Report {
            schema: results::SCHEMA_VERSION,
            label: None,
            target: "127.0.0.1:1".to_owned(),
            workload: workload.to_owned(),
            mode: results::Mode::Closed,
            connections: usize::try_from(connections).expect("small"),
            rate: None,
            duration_secs: 1.0,
            transactions: tx_per_sec as u64,
            tx_per_sec,
            errors: Default::default(),
            latency_us: [(ferrata_bench::stats::kind::TRANSACTION.to_owned(), latency)].into(),
            conflicts: 0,
            warmup_secs: 0.0,
            tm_connections: None,
            rm_connections: None,
            merged: false,
            phase2_commits: 0,
            phase2_rollbacks: 0,
        }),
        bench_error: None,
        samples: results::ServerSamples {
            alive: true,
            ..Default::default()
        },
        attempts: Vec::new(),
        kept_attempt: 1,
    }
}

/// `record meta` for a run of `systems` at `connections`, in `results`.
fn record_meta(results: &Path, connections: &str, systems: &[&str]) {
    let results_arg = results.to_str().expect("utf-8");
    let scratch = results
        .parent()
        .and_then(Path::to_str)
        .expect("utf-8 parent");
    let mut argv = vec![
        "record",
        "meta",
        "--results",
        results_arg,
        "--started-at",
        "2026-01-01T00:00:00Z",
        "--load-at-start",
        "0.00 0.00 0.00",
        "--duration-secs",
        "1",
        "--warmup-secs",
        "0",
        "--connections",
        connections,
        "--systems",
    ];
    argv.extend_from_slice(systems);
    argv.extend_from_slice(&[
        "--sessions",
        "0",
        "--quiet-cores",
        "0.25",
        "--retries",
        "0",
        "--ferrata-version",
        "test",
        "--seata-version",
        "2.0.0",
        "--dtm-version",
        "v1.19.0",
        "--scratch",
        scratch,
    ]);
    let Command::Record(what) = command(&argv) else {
        panic!("not record");
    };
    ferrata_bench::record::record(&what).expect("record meta");
}

/// Runs bench-report on `results`, charts under `dir`; the Markdown it wrote.
fn report(dir: &Path, results: &Path) -> String {
    let markdown = dir.join("BENCHMARKS.md");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--results")
        .arg(results)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--charts")
        .arg(dir.join("charts"))
        .status()
        .expect("bench-report runs");
    assert!(
        status.success(),
        "bench-report failed (is fonts-dejavu-core installed?)"
    );
    std::fs::read_to_string(&markdown).expect("markdown")
}
