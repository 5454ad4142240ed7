//! `ferrata` against a real server: lists a transaction a TM left open, shows it, refuses to act
//! without the admin token, rolls it back with it, and prints JSON for scripts.

use std::process::{Command, Output};
use std::time::Duration;

use ferrata::{Client, ClientConfig};
use ferrata_proto::GlobalStatus;
use ferrata_testkit::TcProcess;

const TOKEN: &str = "cli-test-token-0123456789abcdef";

fn ferrata(admin: std::net::SocketAddr, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrata"));
    command
        .arg("--server")
        .arg(format!("http://{admin}"))
        .args(args)
        .env_remove("FERRATA_ADMIN_TOKEN");
    if let Some(token) = token {
        command.env("FERRATA_ADMIN_TOKEN", token);
    }
    command.output().expect("run ferrata")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "ferrata failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_shows_and_rolls_back_a_stuck_transaction() {
    let hash = token_hash();
    let config = format!("[[admin.tokens]]\nname = \"ops\"\nsha256 = \"{hash}\"\n");
    let server =
        TcProcess::start_in_temp_dir_with_config(&ferrata_testkit::server_binary(), &config)
            .expect("server starts");
    let admin = server.admin_addr().expect("admin listener");
    let config = ClientConfig::builder("cli-app")
        .tc_addresses([server.addr().to_string()])
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("config");
    let client = Client::connect(config).await.expect("client");
    let stuck = client
        .begin(Duration::from_secs(600), "cli-stuck")
        .await
        .expect("begin");
    let xid = stuck.xid().to_owned();

    let health = ferrata(admin, None, &["health"]);
    assert_eq!(stdout(&health).trim(), "ready");
    let listed = stdout(&ferrata(
        admin,
        Some(TOKEN),
        &["tx", "list", "--status", "Begin"],
    ));
    assert!(
        listed.contains(&xid) && listed.contains("cli-stuck"),
        "{listed}"
    );
    assert!(listed.contains("1 of 1"), "{listed}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&ferrata(
        admin,
        Some(TOKEN),
        &["--json", "tx", "list", "--application", "cli-app"],
    )))
    .expect("json");
    assert_eq!(json["items"][0]["xid"], xid.as_str());
    let shown = stdout(&ferrata(admin, Some(TOKEN), &["tx", "show", &xid]));
    assert!(shown.contains("Begin"), "{shown}");

    let refused = ferrata(admin, None, &["tx", "rollback", &xid]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert_eq!(
        client.status(&xid).await.expect("status"),
        GlobalStatus::Begin
    );

    let done = stdout(&ferrata(admin, Some(TOKEN), &["tx", "rollback", &xid]));
    assert_eq!(done.trim(), format!("rollback {xid}: Rollbacked"));
    assert_eq!(
        client.status(&xid).await.expect("status"),
        GlobalStatus::Finished
    );
    let empty = stdout(&ferrata(admin, Some(TOKEN), &["tx", "list"]));
    assert!(empty.contains("0 of 0"), "{empty}");
    drop(stuck);
}

/// The `[[admin.tokens]]` hash of [`TOKEN`], as `ferrata-server hash-token` prints it.
fn token_hash() -> String {
    let output = Command::new(ferrata_testkit::server_binary())
        .args(["hash-token", "--name", "ops"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(format!("{TOKEN}\n").as_bytes())?;
            child.wait_with_output()
        })
        .expect("hash-token");
    let entry = String::from_utf8_lossy(&output.stdout).into_owned();
    entry
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("a sha256 line")
        .to_owned()
}
