//! Two ferrata-server nodes on one database (PostgreSQL, MariaDB): when one is killed, the
//! other takes its transactions over once its lease lapses — a timed-out one is rolled back,
//! a TM's commit is carried out, their rows are freed — and when the killed node comes back on
//! its address the adopter lets go and the node drives what is still open.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use ferrata_proto::GlobalStatus;
use support::{Client, RESOURCE, ServerProcess, eventually};

/// Node leases this short make the test quick; production uses seconds.
const LEASE_MS: u64 = 2_000;

fn node(dir: &std::path::Path, listen: SocketAddr, url: &str, schema: &str) -> ServerProcess {
    ServerProcess::on_database(dir, listen, url, schema, LEASE_MS)
}

async fn client(server: &ServerProcess) -> Client {
    let client = Client::connect(server.addr).await.expect("connects");
    client.register_tm("takeover-app").await.expect("tm");
    client
        .register_rm("takeover-app", RESOURCE)
        .await
        .expect("rm");
    client
}

fn setup(var: &str, schema: &str) -> (String, String, tempfile::TempDir, tempfile::TempDir) {
    (
        ferrata_testkit::database_url(var),
        format!("{schema}_{}", std::process::id()),
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    )
}

async fn a_killed_node_is_taken_over_and_takes_back(var: &str, schema: &str) {
    let (url, schema, dir_a, dir_b) = setup(var, schema);
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut a = node(dir_a.path(), any_port, &url, &schema);
    let b = node(dir_b.path(), any_port, &url, &schema);
    let on_a = client(&a).await;
    let on_b = client(&b).await;

    // Three transactions of node A, each with a branch holding a row.
    let times_out = on_a.begin(3_000).await.expect("begin");
    let committed_later = on_a.begin(120_000).await.expect("begin");
    let still_open = on_a.begin(120_000).await.expect("begin");
    for (xid, row) in [
        (&times_out, "take_t:1"),
        (&committed_later, "take_t:2"),
        (&still_open, "take_t:3"),
    ] {
        on_a.register_branch(xid, row)
            .await
            .expect("register")
            .expect("free row");
    }
    a.kill9();
    drop(on_a);

    // Node B adopts them once A's lease lapses: the TM's commit is carried out there ...
    // (Refused until then: the transaction is another node's.)
    let mut status = None;
    for _ in 0..200 {
        if let Ok(committed) = on_b.commit(&committed_later).await {
            status = Some(committed);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        Some(GlobalStatus::Committed),
        "node B took the commit over"
    );
    // AT branches commit asynchronously, after the answer.
    let branch_committed = eventually(Duration::from_secs(20), || async {
        on_b.phase2_of(&committed_later) == [true]
    })
    .await;
    assert!(branch_committed, "{:?}", on_b.phase2_of(&committed_later));
    // ... and the timed-out one is rolled back, its row freed.
    let rolled_back = eventually(Duration::from_secs(20), || async {
        on_b.phase2_of(&times_out) == [false]
            && on_b.status(&times_out).await.ok() == Some(GlobalStatus::Finished)
    })
    .await;
    assert!(rolled_back, "the timed-out transaction was not rolled back");
    let probe = on_b.begin(60_000).await.expect("begin on b");
    assert!(on_b.lockable(&probe, "take_t:1,2").await, "rows freed");
    assert!(
        !on_b.lockable(&probe, "take_t:3").await,
        "the open transaction keeps its row"
    );
    assert_eq!(
        on_b.status(&still_open).await.expect("status"),
        GlobalStatus::Begin
    );

    // A comes back on its address (ready once B let go) and takes back what is open.
    let a = node(dir_a.path(), a.addr, &url, &schema);
    let on_a = client(&a).await;
    assert_eq!(
        on_a.status(&still_open).await.expect("status on a"),
        GlobalStatus::Begin
    );
    assert_eq!(
        on_a.rollback(&still_open).await.expect("rollback on a"),
        GlobalStatus::Rollbacked
    );
    assert_eq!(on_a.phase2_of(&still_open), [false]);
    // A late commit through B goes to A, which ended it: nothing is committed.
    assert_ne!(
        on_b.commit(&still_open).await.ok(),
        Some(GlobalStatus::Committed)
    );
    assert!(on_b.lockable(&probe, "take_t:1,2,3").await, "no row left");
    assert_eq!(
        on_b.rollback(&probe).await.expect("rollback"),
        GlobalStatus::Rollbacked
    );
    // Nothing was decided twice.
    for xid in [&times_out, &committed_later, &still_open] {
        let decisions: Vec<bool> = [&on_a, &on_b]
            .iter()
            .flat_map(|client| client.phase2_of(xid))
            .collect();
        assert!(
            decisions
                .iter()
                .all(|&commit| commit == (xid == &committed_later)),
            "{xid}: {decisions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_on_postgres_is_taken_over() {
    a_killed_node_is_taken_over_and_takes_back("FERRATA_POSTGRES_URL", "ferrata_takeover_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_on_mariadb_is_taken_over() {
    a_killed_node_is_taken_over_and_takes_back("FERRATA_MYSQL_URL", "ferrata_takeover_my").await;
}

/// A node started on a database where a dead node left a transaction (its lease lapsed; a
/// seata-server leaves no lease at all) drives it from its first request on: the TM's commit
/// right after the start is carried out, not refused as another node's.
async fn a_node_started_later_drives_orphans_from_its_first_request(var: &str, schema: &str) {
    let (url, schema, dir_a, dir_b) = setup(var, schema);
    let any_port = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut a = node(dir_a.path(), any_port, &url, &schema);
    let on_a = client(&a).await;
    let orphan = on_a.begin(120_000).await.expect("begin");
    on_a.register_branch(&orphan, "orphan_t:1")
        .await
        .expect("register")
        .expect("free row");
    a.kill9();
    drop(on_a);
    // A's lease runs out at most a lease after its last renewal.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 300)).await;

    let b = node(dir_b.path(), any_port, &url, &schema);
    let on_b = client(&b).await;
    assert_eq!(
        on_b.commit(&orphan)
            .await
            .expect("the first commit is carried out"),
        GlobalStatus::Committed
    );
    let committed = eventually(Duration::from_secs(20), || async {
        on_b.phase2_of(&orphan) == [true]
    })
    .await;
    assert!(committed, "{:?}", on_b.phase2_of(&orphan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_on_postgres_drives_orphans_at_once() {
    a_node_started_later_drives_orphans_from_its_first_request(
        "FERRATA_POSTGRES_URL",
        "ferrata_orphans_pg",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_later_on_mariadb_drives_orphans_at_once() {
    a_node_started_later_drives_orphans_from_its_first_request(
        "FERRATA_MYSQL_URL",
        "ferrata_orphans_my",
    )
    .await;
}
