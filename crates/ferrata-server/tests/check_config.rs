//! `ferrata-server check-config` and `hash-token`: a configuration is checked as a start would
//! check it (and its files opened) without starting; an admin listener open to other machines
//! needs an operator token; a token's entry holds only its hash.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn run(dir: &std::path::Path, file: &str, args: &[&str]) -> Output {
    let path = dir.join("ferrata.toml");
    std::fs::write(&path, file).expect("write the configuration");
    Command::new(env!("CARGO_BIN_EXE_ferrata-server"))
        .arg("--config")
        .arg(path)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .env_remove("FERRATA_ADMIN__LISTEN")
        .output()
        .expect("run ferrata-server")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_good_configuration_is_summarised() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(
        dir.path(),
        "[admin]\nlisten = \"127.0.0.1:17099\"\n",
        &["check-config"],
    );
    assert!(output.status.success(), "{}", text(&output));
    let summary = text(&output);
    assert!(
        summary.starts_with("configuration OK: listen 0.0.0.0:8091"),
        "{summary}"
    );
    assert!(summary.contains("admin 127.0.0.1:17099"), "{summary}");
    // The data directory was checked by writing in it, and the probe is gone.
    assert_eq!(
        std::fs::read_dir(dir.path().join("data"))
            .expect("data dir")
            .count(),
        0
    );
}

#[test]
fn an_admin_listener_open_to_other_machines_needs_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let open = run(
        dir.path(),
        "[admin]\nlisten = \"0.0.0.0:7091\"\n",
        &["check-config"],
    );
    assert!(!open.status.success());
    assert!(
        text(&open).contains("admin.listen") && text(&open).contains("[[admin.tokens]]"),
        "{}",
        text(&open)
    );

    let mut hash = Command::new(env!("CARGO_BIN_EXE_ferrata-server"))
        .args(["hash-token", "--name", "alice"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-token");
    hash.stdin
        .take()
        .expect("stdin")
        .write_all(b"a-long-enough-random-token-0123456789\n")
        .expect("write the token");
    let entry = hash.wait_with_output().expect("hash-token output");
    let entry = String::from_utf8_lossy(&entry.stdout).into_owned();
    assert!(!entry.contains("a-long-enough-random-token"), "{entry}");
    let guarded = run(
        dir.path(),
        &format!("[admin]\nlisten = \"0.0.0.0:7091\"\n{entry}"),
        &["check-config"],
    );
    assert!(guarded.status.success(), "{}", text(&guarded));
}

#[test]
fn a_malformed_token_hash_is_refused_with_how_to_make_one() {
    let dir = tempfile::tempdir().expect("dir");
    let output = run(
        dir.path(),
        "[[admin.tokens]]\nname = \"bob\"\nsha256 = \"secret\"\n",
        &["check-config"],
    );
    assert!(!output.status.success());
    assert!(text(&output).contains("hash-token"), "{}", text(&output));
}
