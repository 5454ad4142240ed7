//! Keeps docs/guide/sdk.md true: its example is examples/purchase.rs verbatim, and this test
//! runs that example against a real ferrata-server.

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
        guide.contains(&format!("```rust\n{example}```")),
        "docs/guide/sdk.md must contain examples/purchase.rs verbatim in a rust code block"
    );
}

#[tokio::test]
async fn the_guide_example_commits_and_rolls_back() {
    let server = support::Server::start().expect("server");
    let stock = purchase::Stock::new(10);
    purchase::run(&server.address(), stock.clone())
        .await
        .expect("example runs");
    let s = stock.clone();
    assert!(
        support::eventually(Duration::from_secs(20), || {
            let s = s.clone();
            async move { s.available() == 8 && s.reserved() == 0 }
        })
        .await,
        "2 units sold, the 3 of the failed purchase back on the shelf: {} available, {} reserved",
        stock.available(),
        stock.reserved()
    );
}
