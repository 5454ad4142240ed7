//! Two ferrata-server nodes on one database (PostgreSQL, MariaDB): clients connected only to
//! node B work on a transaction node A began. B forwards their requests to A, which drives
//! it; A's phase-2 requests for the branch registered through B come back over B's link and
//! reach the RM connected only to B, and so do those of a branch whose RM left A.

mod support;

use std::time::Duration;

use ferrata_proto::GlobalStatus;
use support::{Client, RESOURCE, ServerProcess, eventually};

async fn requests_reach_the_driving_node(var: &str, schema: &str) {
    let pair = ServerProcess::pair_on_database(var, schema, 2_000);
    let (a, b) = (&pair.a, &pair.b);
    // Only a TM on A; the application's TM and RM are connected to B alone.
    let tm_a = Client::connect(a.addr).await.expect("connects");
    tm_a.register_tm("forwarding-app").await.expect("tm");
    let app = Client::connect(b.addr).await.expect("connects");
    app.register_tm("forwarding-app").await.expect("tm");
    app.register_rm("forwarding-app", RESOURCE)
        .await
        .expect("rm");

    // Commit: the branch joins through B, the commit goes through B, A drives both.
    let committed = tm_a.begin(60_000).await.expect("begin on a");
    app.register_branch(&committed, "forward_t:1")
        .await
        .expect("register through b")
        .expect("free row");
    assert_eq!(
        app.status(&committed).await.expect("status through b"),
        GlobalStatus::Begin
    );
    assert_eq!(
        app.commit(&committed).await.expect("commit through b"),
        GlobalStatus::Committed
    );
    // AT branches commit asynchronously: A's request reaches the RM through B.
    let delivered = eventually(Duration::from_secs(20), || async {
        app.phase2_of(&committed) == [true]
    })
    .await;
    assert!(delivered, "{:?}", app.phase2_of(&committed));

    // Rollback: phase 2 runs before the answer, through B to the RM.
    let rolled_back = tm_a.begin(60_000).await.expect("begin on a");
    app.register_branch(&rolled_back, "forward_t:1")
        .await
        .expect("register through b")
        .expect("the committed transaction freed the row");
    assert_eq!(
        app.rollback(&rolled_back)
            .await
            .expect("rollback through b"),
        GlobalStatus::Rollbacked
    );
    assert_eq!(app.phase2_of(&rolled_back), [false]);
    assert_eq!(
        tm_a.status(&rolled_back).await.expect("status on a"),
        GlobalStatus::Finished
    );
    // The row is free on both nodes.
    let probe = tm_a.begin(60_000).await.expect("begin on a");
    app.register_branch(&probe, "forward_t:1")
        .await
        .expect("register through b")
        .expect("no row left locked");
    assert_eq!(
        app.rollback(&probe).await.expect("rollback through b"),
        GlobalStatus::Rollbacked
    );

    // A branch registered on A by an RM that then leaves A (Go registers its RM on one node
    // only): A's phase 2 goes through B to the same application's RM there.
    let direct = Client::connect(a.addr).await.expect("connects");
    direct
        .register_rm("forwarding-app", RESOURCE)
        .await
        .expect("rm on a");
    let orphaned = tm_a.begin(60_000).await.expect("begin on a");
    direct
        .register_branch(&orphaned, "forward_t:9")
        .await
        .expect("register on a")
        .expect("free row");
    drop(direct);
    tm_a.rollback(&orphaned).await.expect("rollback on a");
    let relayed = eventually(Duration::from_secs(20), || async {
        app.phase2_of(&orphaned) == [false]
            && tm_a.status(&orphaned).await.ok() == Some(GlobalStatus::Finished)
    })
    .await;
    assert!(relayed, "{:?}", app.phase2_of(&orphaned));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_driving_node_on_postgres() {
    requests_reach_the_driving_node("FERRATA_POSTGRES_URL", "ferrata_forward_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_the_driving_node_on_mariadb() {
    requests_reach_the_driving_node("FERRATA_MYSQL_URL", "ferrata_forward_my").await;
}
