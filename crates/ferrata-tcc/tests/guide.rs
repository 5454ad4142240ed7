//! Keeps docs/guide/sdk.md true: its complete example is examples/purchase.rs verbatim, and
//! this test runs that example against a real ferrata-server and PostgreSQL (the guide's other
//! snippets are compiled as doctests of this crate).
#![allow(clippy::unwrap_used)]

#[path = "support/server.rs"]
mod server;
mod support;

use std::time::Duration;

#[allow(dead_code)]
#[path = "../examples/purchase.rs"]
mod purchase;

#[test]
fn the_guide_shows_the_example_verbatim() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let guide = std::fs::read_to_string(root.join("../../docs/guide/sdk.md")).expect("guide");
    let example = std::fs::read_to_string(root.join("examples/purchase.rs")).expect("example");
    assert!(
        guide.contains(&format!("```rust,no_run\n{example}```")),
        "docs/guide/sdk.md must contain examples/purchase.rs verbatim in a rust,no_run code block"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guide_example_commits_and_rolls_back() {
    let server = server::Server::start();
    let pool = sqlx::PgPool::connect(&ferrata_testkit::database_url("FERRATA_POSTGRES_URL"))
        .await
        .unwrap();
    let sku = format!("sku-{}", support::unique_xid());
    purchase::stock_up(&pool, &sku, 10).await.unwrap();
    purchase::run(&server.addr.to_string(), pool.clone(), &sku)
        .await
        .expect("example runs");
    let settled = server::eventually(Duration::from_secs(30), || {
        let (pool, sku) = (pool.clone(), sku.clone());
        async move { purchase::stock_of(&pool, &sku).await.unwrap() == (8, 0) }
    })
    .await;
    assert!(
        settled,
        "2 units sold, the 3 of the failed purchase back on the shelf: (available, reserved) = {:?}",
        purchase::stock_of(&pool, &sku).await.unwrap()
    );
}
