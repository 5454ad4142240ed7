//! The admin API of a cluster node (two nodes on one PostgreSQL or MariaDB database): its own
//! transactions from memory, and every node's from the shared database, each with the node that
//! began it and the node that drives it.

mod support;

use std::collections::BTreeMap;

use ferrata_testkit::http;
use serde_json::Value;
use support::{Client, ServerProcess};

async fn get(server: &ServerProcess, path: &str) -> Value {
    let answer = http(server.admin_addr(), "GET", path, None, None)
        .await
        .expect("GET");
    assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
    serde_json::from_str(&answer.body).expect("json")
}

async fn every_node_shows_the_whole_cluster(var: &str, schema: &str) {
    let pair = ServerProcess::pair_on_database(var, schema, 10_000);
    let (a, b) = (&pair.a, &pair.b);
    let tm_a = Client::connect(a.addr).await.expect("tm a");
    tm_a.register_tm("app-a").await.expect("register");
    let tm_b = Client::connect(b.addr).await.expect("tm b");
    tm_b.register_tm("app-b").await.expect("register");
    let xid_a = tm_a.begin(600_000).await.expect("begin on a");
    let xid_b = tm_b.begin(600_000).await.expect("begin on b");

    // A node's own view: what it drives.
    let own = get(a, "/api/v1/transactions").await;
    assert_eq!(own["total"], 1, "{own}");
    assert_eq!(own["items"][0]["xid"], xid_a.as_str());

    // The cluster's, from either node: both transactions, each driven by the node that began it.
    for server in [a, b] {
        let all = get(server, "/api/v1/cluster/transactions?status=Begin").await;
        let found: BTreeMap<String, (String, String)> = all["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|t| {
                let field = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
                (field("xid"), (field("node"), field("driven_by")))
            })
            .collect();
        let prefix = |xid: &str| ferrata_core::xid_prefix(xid).to_owned();
        assert_eq!(found.len(), 2, "{all}");
        assert_eq!(found[&xid_a], (prefix(&xid_a), prefix(&xid_a)), "{all}");
        assert_eq!(found[&xid_b], (prefix(&xid_b), prefix(&xid_b)), "{all}");
        let nodes = get(server, "/api/v1/cluster").await;
        let names: Vec<&str> = nodes["nodes"]
            .as_array()
            .expect("nodes")
            .iter()
            .filter_map(|n| n["node"].as_str())
            .collect();
        assert!(
            names.contains(&prefix(&xid_a).as_str()) && names.contains(&prefix(&xid_b).as_str()),
            "{nodes}"
        );
    }
    for (tm, xid) in [(&tm_a, &xid_a), (&tm_b, &xid_b)] {
        tm.rollback(xid).await.expect("rollback");
    }
    let left = get(a, "/api/v1/cluster/transactions").await;
    assert_eq!(left["total"], 0, "{left}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    every_node_shows_the_whole_cluster("FERRATA_POSTGRES_URL", "ferrata_admin_pg").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_mariadb() {
    every_node_shows_the_whole_cluster("FERRATA_MYSQL_URL", "ferrata_admin_my").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_its_own_log_has_no_cluster_view() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("server.log"))
        .expect("server");
    let answer = http(
        server.admin_addr(),
        "GET",
        "/api/v1/cluster/transactions",
        None,
        None,
    )
    .await
    .expect("GET");
    assert_eq!(answer.status, 404, "{}", answer.body);
}
