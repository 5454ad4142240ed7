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
        results::read_versioned(&layout.run("ferrata", "begin-commit", 2)).expect("run record");
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

    let scratch = dir.path().to_str().expect("utf-8");
    let Command::Record(what) = command(&[
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
        "2",
        "--systems",
        "ferrata",
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
    ]) else {
        panic!("not record");
    };
    ferrata_bench::record::record(&what).expect("record meta");

    let markdown = dir.path().join("BENCHMARKS.md");
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bench-report"))
        .arg("--results")
        .arg(&results_dir)
        .arg("--markdown")
        .arg(&markdown)
        .arg("--charts")
        .arg(dir.path().join("charts"))
        .status()
        .expect("bench-report runs");
    assert!(
        status.success(),
        "bench-report failed (is fonts-dejavu-core installed?)"
    );
    let text = std::fs::read_to_string(&markdown).expect("markdown");
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
