//! Crash safety: kill -9 the server in the middle of a load of global transactions, restart it
//! on the same store (the embedded log's data directory, or a PostgreSQL or MariaDB database in
//! Seata's schema), and check that everything it acknowledged survived: begun transactions are
//! present, acknowledged decisions are carried out (and never reversed), and no lock is left
//! behind.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferrata_proto::GlobalStatus;
use support::{Client, RESOURCE, ServerProcess, eventually};

#[derive(Debug, Default, Clone)]
struct Tx {
    lock_key: String,
    branch_id: Option<i64>,
    /// Some(true) commit / Some(false) rollback was sent.
    decision: Option<bool>,
    /// The status the TC acknowledged the decision with.
    acknowledged: Option<GlobalStatus>,
}

type Ledger = Arc<Mutex<HashMap<String, Tx>>>;

const WORKERS: usize = 12;
const MAX_TRANSACTIONS_PER_WORKER: usize = 5_000;

async fn worker(id: usize, tm: Arc<Client>, rm: Arc<Client>, ledger: Ledger) {
    for n in 0..MAX_TRANSACTIONS_PER_WORKER {
        let Ok(xid) = tm.begin(60_000).await else {
            return;
        };
        let lock_key = format!("crash_t:{id}_{n}");
        ledger.lock().expect("ledger").insert(
            xid.clone(),
            Tx {
                lock_key: lock_key.clone(),
                ..Tx::default()
            },
        );
        match rm.register_branch(&xid, &lock_key).await {
            Ok(Ok(branch_id)) => {
                ledger
                    .lock()
                    .expect("ledger")
                    .entry(xid.clone())
                    .or_default()
                    .branch_id = Some(branch_id);
            }
            Ok(Err(refused)) => panic!("unexpected refusal of a distinct lock key: {refused:?}"),
            Err(_) => return,
        }
        let decision = match n % 3 {
            0 => true,
            1 => false,
            _ => continue, // abandoned: left in Begin
        };
        ledger
            .lock()
            .expect("ledger")
            .entry(xid.clone())
            .or_default()
            .decision = Some(decision);
        let answer = if decision {
            tm.commit(&xid).await
        } else {
            tm.rollback(&xid).await
        };
        let Ok(status) = answer else { return };
        ledger
            .lock()
            .expect("ledger")
            .entry(xid.clone())
            .or_default()
            .acknowledged = Some(status);
    }
}

fn phase2_for(log: &support::Phase2Log, xid: &str) -> (bool, bool) {
    let log = log.lock().expect("log");
    let commit = log.iter().any(|(x, _, c)| x == xid && *c);
    let rollback = log.iter().any(|(x, _, c)| x == xid && !*c);
    (commit, rollback)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    kill9_during_load(|port| ServerProcess::start(&data, port, &log).expect("server starts")).await;
}

/// The same on a database: `store.url` from `var`, in a schema of this test's own.
async fn kill9_on_database(var: &str, schema: &str) {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = ferrata_testkit::database_url(var);
    let schema = format!("{schema}_{}", std::process::id());
    // The restarted node waits for its killed instance's lease to lapse: keep it short.
    let config = format!("[store]\nurl = \"{url}\"\nschema = \"{schema}\"\nnode_lease_ms = 2000\n");
    kill9_during_load(|port| {
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        ServerProcess::start_with_config(dir.path(), listen, &config).expect("server starts")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_on_postgres_loses_nothing_acknowledged() {
    kill9_on_database("FERRATA_POSTGRES_URL", "ferrata_crash_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_on_mariadb_loses_nothing_acknowledged() {
    kill9_on_database("FERRATA_MYSQL_URL", "ferrata_crash_my").await;
}

/// Runs the load on a server from `start(port)` (port 0: any), kills it, restarts it with
/// `start(the same port)` and checks the outcome.
async fn kill9_during_load(start: impl Fn(u16) -> ServerProcess) {
    let mut server = start(0);
    let port = server.addr.port();

    let rm = Arc::new(Client::connect(server.addr).await.expect("rm connects"));
    rm.register_rm("crash-rm", RESOURCE)
        .await
        .expect("rm registers");
    let ledger: Ledger = Arc::default();
    let mut tasks = Vec::new();
    for id in 0..WORKERS {
        let tm = Arc::new(Client::connect(server.addr).await.expect("tm connects"));
        tm.register_tm("crash-tm").await.expect("tm registers");
        tasks.push(tokio::spawn(worker(id, tm, rm.clone(), ledger.clone())));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill9();
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let ledger = ledger.lock().expect("ledger").clone();
    let old_phase2 = rm.phase2.clone();
    assert!(
        ledger.len() > 50,
        "the load ran: {} transactions begun",
        ledger.len()
    );
    eprintln!("{} transactions begun before the kill", ledger.len());

    // Restart on the same store and port.
    let server = start(port);
    let rm2 = Client::connect(server.addr).await.expect("rm reconnects");
    rm2.register_rm("crash-rm", RESOURCE)
        .await
        .expect("rm registers again");
    let tm = Client::connect(server.addr).await.expect("tm reconnects");
    tm.register_tm("crash-tm")
        .await
        .expect("tm registers again");

    let mut abandoned = Vec::new();
    for (xid, tx) in &ledger {
        let status = tm.status(xid).await.expect("status after restart");
        match (tx.decision, tx.acknowledged) {
            (None, _) => {
                assert_eq!(
                    status,
                    GlobalStatus::Begin,
                    "{xid}: an acknowledged begin must survive"
                );
                abandoned.push(xid.clone());
            }
            (Some(true), Some(ack)) => {
                assert_eq!(ack, GlobalStatus::Committed, "{xid}");
                assert!(
                    matches!(
                        status,
                        GlobalStatus::AsyncCommitting
                            | GlobalStatus::Committed
                            | GlobalStatus::Finished
                    ),
                    "{xid}: acknowledged commit must stay committed, found {status:?}"
                );
            }
            (Some(false), Some(ack)) => {
                assert_eq!(ack, GlobalStatus::Rollbacked, "{xid}");
                assert_eq!(
                    status,
                    GlobalStatus::Finished,
                    "{xid}: acknowledged rollback ended"
                );
            }
            (Some(_), None) => {
                // In flight at the crash: if the decision never reached the log, the TM decides again.
                if status == GlobalStatus::Begin {
                    abandoned.push(xid.clone());
                }
            }
        }
    }
    // The TM decides the abandoned ones now; every acknowledged branch must be rolled back.
    for xid in &abandoned {
        let status = tm.rollback(xid).await.expect("rollback after restart");
        assert_eq!(status, GlobalStatus::Rollbacked, "{xid}");
    }

    let all_ended = eventually(Duration::from_secs(30), || {
        let tm = &tm;
        let ledger = &ledger;
        async move {
            for xid in ledger.keys() {
                if tm.status(xid).await.ok() != Some(GlobalStatus::Finished) {
                    return false;
                }
            }
            true
        }
    })
    .await;
    if !all_ended {
        let mut unfinished = Vec::new();
        for (xid, tx) in &ledger {
            let status = tm.status(xid).await.ok();
            if status != Some(GlobalStatus::Finished) {
                unfinished.push(format!("{xid} {status:?} {tx:?}"));
            }
        }
        panic!(
            "transactions that did not end after the restart:\n{}",
            unfinished.join("\n")
        );
    }

    for (xid, tx) in &ledger {
        let (c1, r1) = phase2_for(&old_phase2, xid);
        let (c2, r2) = phase2_for(&rm2.phase2, xid);
        let (committed, rolled_back) = (c1 || c2, r1 || r2);
        assert!(
            !(committed && rolled_back),
            "{xid}: both committed and rolled back"
        );
        if tx.branch_id.is_some() {
            match tx.decision {
                Some(true) if tx.acknowledged.is_some() => {
                    assert!(committed, "{xid}: branch commit delivered")
                }
                Some(false) if tx.acknowledged.is_some() => {
                    assert!(rolled_back, "{xid}: branch rolled back")
                }
                None => assert!(rolled_back, "{xid}: abandoned branch rolled back"),
                Some(_) if abandoned.contains(xid) => {
                    assert!(rolled_back, "{xid}: re-decided branch rolled back")
                }
                _ => assert!(
                    committed || rolled_back,
                    "{xid}: in-flight decision carried out one way"
                ),
            }
        }
    }

    // No lock left behind: one new transaction can lock every row the load used.
    let all_keys: Vec<String> = ledger.values().map(|tx| tx.lock_key.clone()).collect();
    let xid = tm.begin(60_000).await.expect("fresh begin");
    let rows = all_keys
        .iter()
        .map(|k| k.trim_start_matches("crash_t:"))
        .collect::<Vec<_>>()
        .join(",");
    let locked = rm2
        .register_branch(&xid, &format!("crash_t:{rows}"))
        .await
        .expect("register");
    assert!(locked.is_ok(), "a lock was left behind: {locked:?}");
    assert_eq!(
        tm.rollback(&xid).await.expect("rollback"),
        GlobalStatus::Rollbacked
    );
}
