//! `ferrata-server --print-config`: the effective configuration, layered from the file, the
//! environment and flags, printed as TOML; an invalid one is refused with the key named.

use std::process::{Command, Output};

/// The binary without the shell's configuration variables (scripts/test exports some).
fn binary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferrata-server"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FERRATA_") {
            command.env_remove(name);
        }
    }
    command
}

fn server(dir: &std::path::Path, file: &str) -> Command {
    let path = dir.join("ferrata.toml");
    std::fs::write(&path, file).expect("write the configuration");
    let mut command = binary();
    command
        .arg("--config")
        .arg(path)
        .arg("--print-config")
        .env("RUST_BACKTRACE", "0");
    command
}

fn printed(output: &Output) -> toml::Table {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout.parse().expect("--print-config prints TOML")
}

fn key<'a>(table: &'a toml::Table, path: &str) -> &'a toml::Value {
    let (section, name) = path.split_once('.').expect("section.key");
    &table[section][name]
}

#[test]
fn print_config_shows_the_file_the_environment_and_flags() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = server(
        dir.path(),
        "[limits]\nmax_sessions = 1234\nidle_timeout = \"45s\"\n\
         [coordinator]\nretry_backoff_max = \"2m\"\n",
    )
    .arg("--listen")
    .arg("127.0.0.1:9999")
    .env("FERRATA_LIMITS__MAX_SESSIONS", "777")
    .env("FERRATA_COORDINATOR__PARALLEL_PHASE2", "true")
    .output()
    .expect("run ferrata-server");
    let table = printed(&output);
    assert_eq!(key(&table, "limits.max_sessions").as_integer(), Some(777));
    assert_eq!(key(&table, "limits.idle_timeout").as_str(), Some("45s"));
    assert_eq!(
        key(&table, "coordinator.retry_backoff_max").as_str(),
        Some("2m")
    );
    assert_eq!(
        key(&table, "coordinator.parallel_phase2").as_bool(),
        Some(true)
    );
    assert_eq!(
        key(&table, "server.listen").as_str(),
        Some("127.0.0.1:9999")
    );
    assert_eq!(key(&table, "store.fsync").as_bool(), Some(true));
}

#[test]
fn an_invalid_configuration_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = server(dir.path(), "[server]\nworker_id = 7\n")
        .env("FERRATA_SERVER__WORKER_ID", "4096")
        .output()
        .expect("run ferrata-server");
    assert!(!output.status.success(), "accepted worker id 4096");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.worker_id = 4096 is out of range: use 0 to 1023"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty());
}

#[test]
fn the_documented_example_is_the_defaults() {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operations.md"
    ))
    .expect("read docs/operations.md");
    let start = guide
        .find("```toml\n[server]")
        .expect("the full example in docs/operations.md")
        + "```toml\n".len();
    let end = start + guide[start..].find("```").expect("end of the example");
    let dir = tempfile::tempdir().expect("temp dir");
    let documented = server(dir.path(), &guide[start..end])
        .output()
        .expect("run ferrata-server");
    let defaults = binary()
        .arg("--print-config")
        .env_remove("FERRATA_CONFIG")
        .current_dir(dir.path())
        .output()
        .expect("run ferrata-server");
    assert_eq!(printed(&documented), printed(&defaults));
}
