//! The admin API against a real server: operators find stuck transactions, their branches,
//! history and locks, and the connected clients; they roll back a transaction left in Begin,
//! resolve the branch of a failed rollback after a "manual repair", and every action needs a
//! configured token and is audited. Without tokens, reads are open and actions refused.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ferrata_proto::GlobalStatus;
use ferrata_server::admin::operators::hash_token;
use ferrata_testkit::{HttpAnswer, http};
use serde_json::Value;
use support::{Client, RESOURCE, ServerProcess, dirty_rollback};

const TOKEN: &str = "test-admin-token-0123456789abcdef";

fn any_port() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0)
}

fn json(answer: &HttpAnswer) -> Value {
    serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{e}: {}", answer.body))
}

struct Admin {
    addr: SocketAddr,
    token: Option<&'static str>,
}

impl Admin {
    async fn get(&self, path: &str) -> HttpAnswer {
        http(self.addr, "GET", path, self.token, None)
            .await
            .expect("GET")
    }

    async fn post(&self, path: &str) -> HttpAnswer {
        http(self.addr, "POST", path, self.token, None)
            .await
            .expect("POST")
    }

    async fn ok(&self, path: &str) -> Value {
        let answer = self.get(path).await;
        assert_eq!(answer.status, 200, "GET {path}: {}", answer.body);
        json(&answer)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_find_and_resolve_stuck_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = format!(
        "[[admin.tokens]]\nname = \"alice\"\nsha256 = \"{}\"\n",
        hash_token(TOKEN)
    );
    let server = ServerProcess::start_with_config(dir.path(), any_port(), &config).expect("server");
    let admin = Admin {
        addr: server.admin_addr(),
        token: Some(TOKEN),
    };
    let anonymous = Admin {
        addr: server.admin_addr(),
        token: None,
    };
    let stranger = Admin {
        addr: server.admin_addr(),
        token: Some("not-the-token-0123456789abcdef"),
    };
    assert_eq!(anonymous.get("/api/v1/transactions").await.status, 401);
    assert_eq!(stranger.get("/api/v1/transactions").await.status, 401);
    assert_eq!(anonymous.get("/health/ready").await.status, 200);
    assert_eq!(admin.ok("/api/v1/whoami").await["operator"], "alice");

    let tm = Arc::new(Client::connect(server.addr).await.expect("tm"));
    tm.register_tm("shop").await.expect("tm registers");
    let rm = Client::connect(server.addr).await.expect("rm");
    rm.register_rm("shop", RESOURCE)
        .await
        .expect("rm registers");
    // A transaction its TM forgot, holding two rows.
    let stuck = tm.begin(600_000).await.expect("begin");
    rm.register_branch(&stuck, "admin_t:1,2")
        .await
        .expect("register")
        .expect("rows free");

    let page = admin
        .ok("/api/v1/transactions?status=Begin&application=shop")
        .await;
    assert_eq!(page["total"], 1, "{page}");
    assert_eq!(page["items"][0]["xid"], stuck.as_str());
    assert_eq!(page["items"][0]["branches"], 1);
    let empty = admin.ok("/api/v1/transactions?status=CommitRetrying").await;
    assert_eq!(empty["total"], 0);
    assert_eq!(
        admin
            .get("/api/v1/transactions?status=Sleeping")
            .await
            .status,
        400
    );
    let detail = admin.ok(&format!("/api/v1/transactions/{stuck}")).await;
    assert_eq!(detail["transaction"]["status"], "Begin");
    assert_eq!(detail["branches"][0]["lock_key"], "admin_t:1,2");
    assert_eq!(detail["branches"][0]["branch_type"], "AT");
    assert_eq!(detail["history"][0]["event"], "branch-registered");
    let locks = admin.ok(&format!("/api/v1/locks?xid={stuck}")).await;
    assert_eq!(locks["total"], 2, "{locks}");
    assert_eq!(locks["items"][0]["table"], "admin_t");
    assert_eq!(locks["items"][0]["pk"], "1");
    assert!(locks["items"][0]["since_ms"].is_i64());
    let clients = admin.ok("/api/v1/clients").await;
    let roles: Vec<&str> = clients["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|c| c["role"].as_str())
        .collect();
    assert_eq!(roles.len(), 2, "{clients}");
    assert!(roles.contains(&"tm") && roles.contains(&"rm"), "{clients}");
    assert_eq!(admin.ok("/api/v1/server").await["ready"], true);

    // Actions that do not apply are refused, and an anonymous one is not even tried.
    assert_eq!(
        anonymous
            .post(&format!("/api/v1/transactions/{stuck}/rollback"))
            .await
            .status,
        401
    );
    assert_eq!(
        admin
            .post(&format!("/api/v1/transactions/{stuck}/retry"))
            .await
            .status,
        409
    );
    assert_eq!(
        admin
            .post("/api/v1/transactions/127.0.0.1:1:1/commit")
            .await
            .status,
        404
    );
    assert_eq!(
        http(
            admin.addr,
            "DELETE",
            &format!("/api/v1/transactions/{stuck}"),
            Some(TOKEN),
            None
        )
        .await
        .expect("DELETE")
        .status,
        409
    );

    // Rolled back by the operator: the RM undoes its branch, the rows are free.
    let rolled_back = admin
        .post(&format!("/api/v1/transactions/{stuck}/rollback"))
        .await;
    assert_eq!(rolled_back.status, 200, "{}", rolled_back.body);
    assert_eq!(json(&rolled_back)["status"], "Rollbacked");
    assert_eq!(rm.phase2_of(&stuck), vec![false]);
    assert_eq!(
        admin
            .get(&format!("/api/v1/transactions/{stuck}"))
            .await
            .status,
        404
    );
    assert_eq!(admin.ok("/api/v1/locks").await["total"], 0);

    // A dirty rollback: the RM refuses for good, the transaction stays RollbackFailed with its
    // row locked until an operator, having repaired the data, resolves the branch.
    let (xid, branch_id, _dirty_rm) = dirty_rollback(&server, &tm, "dirty_t:7").await;
    let failed = admin.ok("/api/v1/transactions?status=RollbackFailed").await;
    assert_eq!(failed["items"][0]["xid"], xid.as_str());
    let detail = admin.ok(&format!("/api/v1/transactions/{xid}")).await;
    let events: Vec<&str> = detail["history"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|e| e["event"].as_str())
        .collect();
    assert!(events.contains(&"phase2-answered"), "{detail}");
    assert_eq!(admin.ok("/api/v1/locks?table=dirty_t").await["total"], 1);
    let resolved = admin
        .post(&format!(
            "/api/v1/transactions/{xid}/branches/{branch_id}/resolve"
        ))
        .await;
    assert_eq!(resolved.status, 200, "{}", resolved.body);
    assert_eq!(json(&resolved)["status"], "Rollbacked");
    assert_eq!(admin.ok("/api/v1/locks").await["total"], 0);
    assert_eq!(
        admin
            .get(&format!("/api/v1/transactions/{xid}"))
            .await
            .status,
        404
    );
    let other = tm.begin(600_000).await.expect("begin");
    assert!(rm.lockable(&other, "dirty_t:7").await);

    let log = server.log();
    assert!(
        log.lines().any(|l| l.contains("ferrata::audit")
            && l.contains("operator=alice")
            && l.contains("resolve-branch")),
        "audit log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_reads_are_open_and_actions_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("data"), 0, &dir.path().join("server.log"))
        .expect("server");
    let anonymous = Admin {
        addr: server.admin_addr(),
        token: None,
    };
    let tm = Client::connect(server.addr).await.expect("tm");
    tm.register_tm("shop").await.expect("tm registers");
    let xid = tm.begin(600_000).await.expect("begin");
    assert_eq!(anonymous.ok("/api/v1/transactions").await["total"], 1);
    let refused = anonymous
        .post(&format!("/api/v1/transactions/{xid}/rollback"))
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        json(&refused)["error"]
            .as_str()
            .expect("error")
            .contains("admin.tokens")
    );
    assert_eq!(tm.status(&xid).await.expect("status"), GlobalStatus::Begin);
    let openapi = anonymous.ok("/api/v1/openapi.json").await;
    assert_eq!(openapi["openapi"], "3.0.3");
}
