//! The metrics endpoint under load: after a known mix of committed, rolled-back and open
//! transactions, seata-server's series (`seata_transaction`, as its Prometheus exporter names
//! and tags them) and Ferrata's own counters, gauges and histograms say exactly what the load
//! did; the health probes answer.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ferrata_proto::GlobalStatus;
use support::{Client, RESOURCE, ServerProcess, eventually};

const APP: &str = "metrics-app";
const WORKERS: usize = 6;
/// Per worker, in turn: commit, roll back, leave open.
const ROUNDS: usize = 30;

/// `name{labels}` → value of every sample in a scrape.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// The metric names a dashboard's PromQL uses (`seata_…`, `ferrata_…`).
fn metric_names(dashboard: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for prefix in ["seata_", "ferrata_"] {
        let mut rest = dashboard;
        while let Some(at) = rest.find(prefix) {
            let name: String = rest[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[at + name.len()..];
            names.insert(name);
        }
    }
    assert!(names.len() > 5, "{names:?}");
    names
}

fn seata(meter: &str, statistic: Option<&str>, status: &str) -> String {
    let statistic = statistic.map_or_else(String::new, |s| format!("statistic=\"{s}\","));
    format!(
        "seata_transaction{{applicationId=\"{APP}\",group=\"default_tx_group\",meter=\"{meter}\",\
         role=\"tc\",{statistic}status=\"{status}\"}}"
    )
}

fn value(samples: &HashMap<String, f64>, series: &str) -> f64 {
    match samples.get(series) {
        Some(value) => *value,
        None => panic!("no sample {series} in {samples:#?}"),
    }
}

async fn scrape(server: &ServerProcess) -> HashMap<String, f64> {
    let answer = ferrata_testkit::http(server.admin_addr(), "GET", "/metrics", None, None)
        .await
        .expect("scrape");
    assert_eq!(answer.status, 200, "{}", answer.body);
    samples(&answer.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_say_what_the_load_did() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("server.log"))
        .expect("server starts");
    for probe in ["/health/live", "/health/ready"] {
        let answer = ferrata_testkit::http(server.admin_addr(), "GET", probe, None, None)
            .await
            .expect("probe");
        assert_eq!(answer.status, 200, "{probe}: {}", answer.body);
    }
    let tm = Arc::new(Client::connect(server.addr).await.expect("tm"));
    tm.register_tm(APP).await.expect("register tm");
    let rm = Arc::new(Client::connect(server.addr).await.expect("rm"));
    rm.register_rm(APP, RESOURCE).await.expect("register rm");

    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (tm, rm) = (tm.clone(), rm.clone());
        workers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let xid = tm.begin(600_000).await.expect("begin");
                let key = format!("metrics_t:{worker}_{round}");
                rm.register_branch(&xid, &key)
                    .await
                    .expect("register")
                    .expect("distinct rows are free");
                match round % 3 {
                    0 => assert!(tm.commit(&xid).await.expect("commit").is_commit_decided()),
                    1 => assert_eq!(
                        tm.rollback(&xid).await.expect("rollback"),
                        GlobalStatus::Rollbacked
                    ),
                    _ => {}
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
    let each = (WORKERS * ROUNDS / 3) as f64;
    let total = (WORKERS * ROUNDS) as f64;
    // AT commits are answered at once; their undo-log pass ends them a little later.
    let committed_rms = eventually(Duration::from_secs(20), || {
        let rm = rm.clone();
        async move {
            let log = rm.phase2.lock().expect("log");
            log.iter().filter(|(_, _, commit)| *commit).count() == WORKERS * ROUNDS / 3
        }
    })
    .await;
    assert!(committed_rms, "every committed branch reached its RM");
    let ended = eventually(Duration::from_secs(20), || async {
        scrape(&server)
            .await
            .get(&format!(
                "ferrata_transactions_ended_total{{application=\"{APP}\",group=\"default_tx_group\",status=\"Committed\"}}"
            ))
            .copied()
            == Some(each)
    })
    .await;
    assert!(ended, "the committed transactions ended");

    let first = scrape(&server).await;
    assert_eq!(value(&first, &seata("counter", None, "committed")), each);
    assert_eq!(value(&first, &seata("counter", None, "rollbacked")), each);
    assert_eq!(value(&first, &seata("counter", None, "active")), each);
    let labels = format!("application=\"{APP}\",group=\"default_tx_group\"");
    assert_eq!(
        value(
            &first,
            &format!("ferrata_transactions_begun_total{{{labels}}}")
        ),
        total
    );
    assert_eq!(
        value(
            &first,
            &format!("ferrata_transactions_ended_total{{{labels},status=\"Rollbacked\"}}")
        ),
        each
    );
    assert_eq!(
        value(&first, &format!("ferrata_transactions_active{{{labels}}}")),
        each
    );
    assert_eq!(value(&first, "ferrata_sessions"), each);
    assert_eq!(value(&first, "ferrata_branches"), each);
    // Each open transaction holds its one row.
    assert_eq!(value(&first, "ferrata_locked_rows"), each);
    assert_eq!(
        value(&first, "ferrata_connections{role=\"tm\",version=\"2.6.0\"}"),
        1.0
    );
    assert_eq!(
        value(&first, "ferrata_connections{role=\"rm\",version=\"2.6.0\"}"),
        1.0
    );
    for (kind, count) in [
        ("GlobalBegin", total),
        ("BranchRegister", total),
        ("GlobalCommit", each),
        ("GlobalRollback", each),
    ] {
        let series = format!("ferrata_request_duration_seconds_count{{type=\"{kind}\"}}");
        assert_eq!(value(&first, &series), count, "{series}");
    }
    // Every branch committed or rolled back went through one phase-2 request.
    assert_eq!(
        value(
            &first,
            "ferrata_phase2_duration_seconds_count{direction=\"commit\"}"
        ),
        each
    );
    assert_eq!(
        value(
            &first,
            "ferrata_phase2_duration_seconds_count{direction=\"rollback\"}"
        ),
        each
    );
    assert!(value(&first, "ferrata_store_commit_ops_count") >= 1.0);
    assert!(value(&first, "ferrata_store_commit_ops_sum") >= total);
    // Every RM answered at once: no pass had to be tried again.
    assert_eq!(value(&first, "ferrata_phase2_retries_total"), 0.0);

    // Every series the Grafana dashboard in docs/ queries is in the scrape.
    let dashboard = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/grafana/ferrata.json"
    ))
    .expect("docs/grafana/ferrata.json");
    let names: std::collections::BTreeSet<&str> = first
        .keys()
        .map(|series| series.split('{').next().unwrap_or(series))
        .collect();
    for queried in metric_names(&dashboard) {
        assert!(
            names.contains(queried.as_str()),
            "the dashboard queries {queried}, which the server does not export"
        );
    }

    // Seata's summaries and timers cover the time since the previous scrape (earlier scrapes
    // of the wait above took the commits); counters keep their totals.
    let second = scrape(&server).await;
    assert_eq!(
        value(&second, &seata("summary", Some("count"), "committed")),
        0.0
    );
    assert_eq!(
        value(&second, &seata("timer", Some("count"), "rollbacked")),
        0.0
    );
    assert_eq!(value(&second, &seata("counter", None, "committed")), each);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_window_holds_the_durations_of_its_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("server.log"))
        .expect("server starts");
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm(APP).await.expect("register tm");
    // A scrape first, so that the window starts here.
    scrape(&server).await;
    for _ in 0..3 {
        let xid = tm.begin(60_000).await.expect("begin");
        tokio::time::sleep(Duration::from_millis(20)).await;
        tm.rollback(&xid).await.expect("rollback");
    }
    let window = scrape(&server).await;
    assert_eq!(
        value(&window, &seata("summary", Some("count"), "rollbacked")),
        3.0
    );
    assert_eq!(
        value(&window, &seata("summary", Some("total"), "rollbacked")),
        3.0
    );
    assert!(value(&window, &seata("summary", Some("tps"), "rollbacked")) > 0.0);
    assert_eq!(
        value(&window, &seata("timer", Some("count"), "rollbacked")),
        3.0
    );
    // Each stayed open for at least the 20 ms slept between its begin and its rollback.
    assert!(value(&window, &seata("timer", Some("max"), "rollbacked")) >= 20.0);
    assert!(value(&window, &seata("timer", Some("total"), "rollbacked")) >= 60.0);
    assert!(value(&window, &seata("timer", Some("average"), "rollbacked")) >= 20.0);
}
