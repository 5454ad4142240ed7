//! Three ferrata-server nodes on one database (PostgreSQL, MariaDB) under a load of AT- and
//! TCC-shaped transactions, while one node is killed (`kill -9`) or cut off from the database
//! (its connections blackholed by a proxy). Clients route like Seata's XID load balancer and
//! fall back to the surviving nodes. Afterwards: every acknowledged decision reached each of
//! its branches, no branch got both a commit and a rollback, the database holds no session or
//! row lock, clients carried on through the survivors, and a partitioned node stopped itself.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrata_proto::{BranchRegisterRequest, BranchType, GlobalStatus, Message};
use support::proxy::Proxy;
use support::{Client, RESOURCE, ServerProcess};
use tokio::sync::Mutex;

const LEASE_MS: u64 = 2_000;
const TCC_RESOURCE: &str = "cluster-tcc-action";
const APP: &str = "cluster-app";
const WORKERS: usize = 4;
/// Transactions time out after this: undecided ones of the lost node end soon after the load.
const TX_TIMEOUT_MS: i32 = 8_000;
/// One call to one node; a node that hangs is left for another.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// What the test learned about one transaction.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// The primary key of the AT branch's row in `cluster_t`.
    row: String,
    branches: Vec<i64>,
    /// The status the TC acknowledged for the TM's decision, when an answer came.
    acknowledged: Option<GlobalStatus>,
}

struct Cluster {
    addrs: Vec<SocketAddr>,
    /// One TM and one RM connection per node, as Seata clients keep.
    tms: Vec<Client>,
    rms: Vec<Client>,
}

impl Cluster {
    async fn connect(addrs: Vec<SocketAddr>) -> Cluster {
        let (mut tms, mut rms) = (Vec::new(), Vec::new());
        for addr in &addrs {
            let tm = Client::connect(*addr).await.expect("tm connects");
            tm.register_tm(APP).await.expect("tm registers");
            let rm = Client::connect(*addr).await.expect("rm connects");
            rm.register_rm(APP, &format!("{RESOURCE},{TCC_RESOURCE}"))
                .await
                .expect("rm registers");
            tms.push(tm);
            rms.push(rm);
        }
        Cluster { addrs, tms, rms }
    }

    /// The node an XID names, then the others (Seata's XID load balancer, with fallback).
    fn route(&self, xid: &str) -> Vec<usize> {
        let named = self
            .addrs
            .iter()
            .position(|a| a.to_string() == ferrata_core::xid_prefix(xid))
            .unwrap_or(0);
        (0..self.addrs.len())
            .map(|i| (named + i) % self.addrs.len())
            .collect()
    }

    /// (xid, branch, commit?) of every phase-2 request any RM connection received.
    fn phase2(&self) -> Vec<(String, i64, bool)> {
        self.rms
            .iter()
            .flat_map(|rm| rm.phase2.lock().expect("log").clone())
            .collect()
    }
}

async fn within<T>(call: impl std::future::Future<Output = anyhow::Result<T>>) -> Option<T> {
    tokio::time::timeout(CALL_TIMEOUT, call).await.ok()?.ok()
}

async fn register(cluster: &Cluster, xid: &str, tcc: bool, row: &str) -> Option<i64> {
    for node in cluster.route(xid) {
        let request = BranchRegisterRequest {
            xid: xid.into(),
            branch_type: if tcc { BranchType::Tcc } else { BranchType::At },
            resource_id: if tcc { TCC_RESOURCE } else { RESOURCE }.into(),
            lock_key: if tcc { String::new() } else { row.into() },
            application_data: String::new(),
        };
        let Some(answer) = within(cluster.rms[node].call(Message::BranchRegister(request))).await
        else {
            continue;
        };
        match answer {
            Message::BranchRegisterResponse(r) if r.result.is_success() => {
                return Some(r.branch_id);
            }
            // Refused (e.g. driven elsewhere, not yet taken over): another node may take it.
            _ => continue,
        }
    }
    None
}

/// Sends the decision until a node acknowledges it (bounded), like a TM retrying.
async fn decide(cluster: &Cluster, xid: &str, commit: bool) -> Option<GlobalStatus> {
    let give_up = Instant::now() + Duration::from_secs(20);
    while Instant::now() < give_up {
        for node in cluster.route(xid) {
            let tm = &cluster.tms[node];
            let answer = if commit {
                within(tm.commit(xid)).await
            } else {
                within(tm.rollback(xid)).await
            };
            if answer.is_some() {
                return answer;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// One worker: transactions until `until`, each with an AT and a TCC branch; two in three
/// commit. Returns (xid, outcome, began after `cut`?) of each begun transaction.
async fn work(
    cluster: Arc<Cluster>,
    worker: usize,
    until: Instant,
    cut_at: Arc<Mutex<Option<Instant>>>,
) -> Vec<(String, Outcome, bool)> {
    let mut done = Vec::new();
    let mut seq = 0usize;
    while Instant::now() < until {
        seq += 1;
        let first = (worker + seq) % cluster.addrs.len();
        let mut xid = None;
        for node in (0..cluster.addrs.len()).map(|i| (first + i) % cluster.addrs.len()) {
            if let Some(begun) = within(cluster.tms[node].begin(TX_TIMEOUT_MS)).await {
                xid = Some(begun);
                break;
            }
        }
        let Some(xid) = xid else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let after_cut = cut_at.lock().await.is_some();
        let mut outcome = Outcome {
            row: format!("{worker}_{seq}"),
            ..Outcome::default()
        };
        let row = format!("cluster_t:{}", outcome.row);
        let mut joined = true;
        for tcc in [false, true] {
            match register(&cluster, &xid, tcc, &row).await {
                Some(branch) => outcome.branches.push(branch),
                None => joined = false,
            }
        }
        let commit = joined && !seq.is_multiple_of(3);
        outcome.acknowledged = decide(&cluster, &xid, commit).await;
        done.push((xid, outcome, after_cut));
    }
    done
}

/// `url` with its `host:port` replaced by `addr`.
fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme_and_user, rest) = url.rsplit_once('@').expect("url with credentials");
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    format!("{scheme_and_user}@{addr}{path}")
}

fn database_addr(url: &str) -> SocketAddr {
    let (_, rest) = url.rsplit_once('@').expect("url with credentials");
    let authority = rest.split('/').next().expect("authority");
    let authority = authority.replace("localhost", "127.0.0.1");
    authority.parse().expect("a loopback host:port in the url")
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Failure {
    Kill,
    Partition,
}

/// Three nodes per test are all two cores can run well: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

async fn survives(var: &str, schema: &str, failure: Failure) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let url = ferrata_testkit::database_url(var);
    let schema = format!("{schema}_{}", std::process::id());
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().expect("dir")).collect();
    let proxy = Proxy::start(database_addr(&url)).await;
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut nodes: Vec<ServerProcess> = dirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            // The last node reaches the database through the proxy.
            let url = if i == 2 {
                through(&url, proxy.addr)
            } else {
                url.clone()
            };
            ServerProcess::on_database(dir.path(), any_port, &url, &schema, LEASE_MS)
        })
        .collect();
    let cluster = Arc::new(Cluster::connect(nodes.iter().map(|n| n.addr).collect()).await);

    let cut_at = Arc::new(Mutex::new(None));
    let until = Instant::now() + Duration::from_secs(5);
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(work(cluster.clone(), w, until, cut_at.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    match failure {
        Failure::Kill => nodes[2].kill9(),
        Failure::Partition => proxy.blackhole(),
    }
    *cut_at.lock().await = Some(Instant::now());
    let mut outcomes: Vec<(String, Outcome, bool)> = Vec::new();
    for worker in workers {
        outcomes.extend(worker.await.expect("worker"));
    }
    if failure == Failure::Partition {
        // Cut off from the database, the node stops once its lease runs out.
        let stopped = support::eventually(Duration::from_secs(20), || {
            let exited = nodes[2].has_exited();
            async move { exited }
        })
        .await;
        assert!(
            stopped,
            "the partitioned node kept running:\n{}",
            nodes[2].log()
        );
        assert!(
            nodes[2].log().contains("lease"),
            "it said why:\n{}",
            nodes[2].log()
        );
    }

    // Clients carried on through the survivors.
    let after = outcomes
        .iter()
        .filter(|(_, o, after)| *after && o.acknowledged.is_some())
        .count();
    assert!(after > 0, "no transaction completed after the failure");
    let acknowledged = outcomes
        .iter()
        .filter(|(_, o, _)| o.acknowledged.is_some())
        .count();
    assert!(acknowledged > 10, "too little load ran: {outcomes:?}");

    // Every acknowledged decision reaches its branches; nothing is decided both ways.
    let expected: HashMap<&str, (&Outcome, Option<bool>)> = outcomes
        .iter()
        .map(|(xid, outcome, _)| {
            let decision = match outcome.acknowledged {
                Some(GlobalStatus::Committed) => Some(true),
                Some(GlobalStatus::Rollbacked | GlobalStatus::TimeoutRollbacked) => Some(false),
                _ => None,
            };
            (xid.as_str(), (outcome, decision))
        })
        .collect();
    let settled = support::eventually(Duration::from_secs(40), || {
        let log = cluster.phase2();
        let expected = &expected;
        async move {
            expected.iter().all(|(xid, (outcome, decision))| {
                let Some(commit) = decision else { return true };
                outcome.branches.iter().all(|branch| {
                    log.iter()
                        .any(|(x, b, c)| x == xid && b == branch && c == commit)
                })
            })
        }
    })
    .await;
    let log = cluster.phase2();
    let mut seen: HashMap<(&str, i64), (bool, bool)> = HashMap::new();
    for (xid, branch, commit) in &log {
        let entry = seen.entry((xid.as_str(), *branch)).or_default();
        if *commit {
            entry.0 = true;
        } else {
            entry.1 = true;
        }
    }
    for (&(xid, branch), &(committed, rolled_back)) in &seen {
        assert!(
            !(committed && rolled_back),
            "{xid} branch {branch} was both committed and rolled back"
        );
        if let Some((_, Some(commit))) = expected.get(xid) {
            assert!(
                if *commit { !rolled_back } else { !committed },
                "{xid} branch {branch} got the other decision"
            );
        }
    }
    assert!(
        settled,
        "an acknowledged decision did not reach its branches"
    );

    // No session or row lock is left in the database.
    let mut sql = ferrata_store_sql::SqlStoreConfig::new(url.clone());
    sql.schema = Some(schema.clone());
    let rows: Vec<ferrata_store::RowKey> = outcomes
        .iter()
        .map(|(_, outcome, _)| ferrata_store::RowKey {
            resource_id: RESOURCE.into(),
            table: "cluster_t".into(),
            pk: outcome.row.clone(),
        })
        .collect();
    let empty = support::eventually(Duration::from_secs(30), || {
        let (sql, rows) = (sql.clone(), rows.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let (store, table) = ferrata_store_sql::open(sql).expect("open the store");
                table.is_empty() && store.lock_holders(&rows).expect("locks").is_empty()
            })
            .await
            .expect("store check")
        }
    })
    .await;
    assert!(empty, "sessions or locks are left in the database");
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_on_postgres_loses_nothing() {
    survives(
        "FERRATA_POSTGRES_URL",
        "ferrata_cluster_kill_pg",
        Failure::Kill,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_on_mariadb_loses_nothing() {
    survives(
        "FERRATA_MYSQL_URL",
        "ferrata_cluster_kill_my",
        Failure::Kill,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_postgres_stops_without_a_double_decision() {
    survives(
        "FERRATA_POSTGRES_URL",
        "ferrata_cluster_cut_pg",
        Failure::Partition,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_mariadb_stops_without_a_double_decision() {
    survives(
        "FERRATA_MYSQL_URL",
        "ferrata_cluster_cut_my",
        Failure::Partition,
    )
    .await;
}
