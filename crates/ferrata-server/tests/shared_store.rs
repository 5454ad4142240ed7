//! Two ferrata-server nodes on one database (PostgreSQL, MariaDB) in Seata's schema: each
//! serves its own clients, their ids never collide, AT row locks are shared — a row one
//! node's transaction holds is a lock conflict on the other node, and a lock query on either
//! node sees it — until the holder ends, and a request about the other node's transaction is
//! forwarded to that node, which decides it.

mod support;

use std::collections::HashSet;

use ferrata_proto::{GlobalStatus, TransactionExceptionCode};
use support::{Client, RESOURCE, ServerProcess};

/// A node on `url`/`schema`, listening on a free loopback port.
async fn connected(server: &ServerProcess, name: &str) -> (Client, Client) {
    let tm = Client::connect(server.addr).await.expect("tm connects");
    tm.register_tm(name).await.expect("tm registers");
    let rm = Client::connect(server.addr).await.expect("rm connects");
    rm.register_rm(name, RESOURCE).await.expect("rm registers");
    (tm, rm)
}

async fn two_nodes_share_ids_and_locks(var: &str, schema: &str) {
    let pair = ServerProcess::pair_on_database(var, schema, 10_000);
    let (a, b) = (&pair.a, &pair.b);
    let (tm_a, rm_a) = connected(a, "node-a-app").await;
    let (tm_b, rm_b) = connected(b, "node-b-app").await;

    // Ids: both nodes begin transactions; no id repeats.
    let mut ids = HashSet::new();
    for _ in 0..20 {
        for tm in [&tm_a, &tm_b] {
            let xid = tm.begin(60_000).await.expect("begin");
            let id = ferrata_core::transaction_id_of(&xid).expect("id");
            assert!(ids.insert(id), "{xid}: id given twice");
            assert_eq!(
                tm.rollback(&xid).await.expect("rollback"),
                GlobalStatus::Rollbacked
            );
        }
    }

    // A row locked through node A ...
    let holder = tm_a.begin(60_000).await.expect("begin on a");
    // Node B reads A's transaction's status from the database, and refuses to decide it.
    assert_eq!(
        tm_b.status(&holder).await.expect("status on b"),
        GlobalStatus::Begin
    );
    assert_eq!(
        tm_a.status(&holder).await.expect("status on a"),
        GlobalStatus::Begin
    );
    let branch = rm_a
        .register_branch(&holder, "shared_t:1,2")
        .await
        .expect("register")
        .expect("the row is free");
    assert!(branch > 0);
    // ... is a conflict for a transaction of node B, and both nodes' lock queries see it.
    let waiter = tm_b.begin(60_000).await.expect("begin on b");
    let refused = rm_b
        .register_branch(&waiter, "shared_t:2,3")
        .await
        .expect("register")
        .expect_err("the row is held on node A");
    assert_eq!(
        refused.exception_code,
        TransactionExceptionCode::LockKeyConflict,
        "{refused:?}"
    );
    assert!(
        !rm_b.lockable(&waiter, "shared_t:2").await,
        "node B sees A's lock"
    );
    assert!(!rm_a.lockable(&waiter, "shared_t:2").await);
    assert!(rm_b.lockable(&holder, "shared_t:2").await, "the holder may");
    assert!(
        rm_b.lockable(&waiter, "shared_t:3").await,
        "row 3 stayed free"
    );
    // The refused branch took nothing: another transaction of node A can lock row 3.
    let other = tm_a.begin(60_000).await.expect("begin");
    rm_a.register_branch(&other, "shared_t:3")
        .await
        .expect("register")
        .expect("row 3 is free");
    assert_eq!(
        tm_a.rollback(&other).await.expect("rollback"),
        GlobalStatus::Rollbacked
    );

    // The holder commits, through node B (which forwards it to A, its driver): its rows are
    // free for node B's transaction.
    assert_eq!(
        tm_b.commit(&holder).await.expect("commit"),
        GlobalStatus::Committed
    );
    assert!(rm_b.lockable(&waiter, "shared_t:1,2").await);
    rm_b.register_branch(&waiter, "shared_t:2,3")
        .await
        .expect("register")
        .expect("free after the commit");
    assert_eq!(
        tm_b.rollback(&waiter).await.expect("rollback"),
        GlobalStatus::Rollbacked
    );
    assert!(
        rm_b.phase2
            .lock()
            .expect("log")
            .iter()
            .any(|(xid, _, commit)| xid == &waiter && !commit),
        "node B rolled its branch back"
    );
    assert!(
        rm_a.lockable(&holder, "shared_t:1,2,3").await,
        "no lock left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_share_ids_and_locks() {
    two_nodes_share_ids_and_locks("FERRATA_POSTGRES_URL", "ferrata_shared_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_mariadb_share_ids_and_locks() {
    two_nodes_share_ids_and_locks("FERRATA_MYSQL_URL", "ferrata_shared_my").await;
}
