//! Damage before the tail of the session log is never truncated away silently: the server
//! refuses to start and names the file and offset; `ferrata-server --repair` salvages every
//! intact record, moves the damaged file aside, and the server starts again.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use ferrata_proto::GlobalStatus;
use support::{Client, ServerProcess};

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn damage_before_the_tail_refuses_to_start_until_repaired() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let log = dir.path().join("server.log");
    let mut xids = Vec::new();
    {
        let server = ServerProcess::start(&data, 0, &log).expect("start");
        let tm = Client::connect(server.addr).await.expect("connect");
        tm.register_tm("repair").await.expect("register");
        for _ in 0..20 {
            xids.push(tm.begin(600_000).await.expect("begin"));
        }
    } // killed here (SIGKILL on drop)
    let segment = segments(&data).pop().expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read segment");
    // Flip a byte in the middle of what was written (a preallocated segment ends in zeros):
    // valid frames follow, so this is damage, not a torn tail.
    let written = bytes.iter().rposition(|b| *b != 0).expect("data") + 1;
    let middle = written / 2;
    bytes[middle] ^= 0xFF;
    std::fs::write(&segment, &bytes).expect("damage");

    let refused = ServerProcess::start(&data, 0, &log);
    let error = format!(
        "{:#}",
        refused.err().expect("the server must refuse to start")
    );
    let name = segment.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(
        error.contains(name) && error.contains("offset") && error.contains("--repair"),
        "the refusal names the file, the offset and the way out:\n{error}"
    );

    let repair = Command::new(env!("CARGO_BIN_EXE_ferrata-server"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--repair")
        .output()
        .expect("run --repair");
    let report = String::from_utf8_lossy(&repair.stdout);
    assert!(
        repair.status.success(),
        "repair succeeds: {report}\n{}",
        String::from_utf8_lossy(&repair.stderr)
    );
    assert!(
        report.contains(name),
        "the report names what was dropped:\n{report}"
    );
    let aside: Vec<_> = std::fs::read_dir(&data)
        .expect("data dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("damaged-"))
        .collect();
    assert_eq!(
        aside.len(),
        1,
        "the damaged file is kept aside, not deleted"
    );

    let server = ServerProcess::start(&data, 0, &log).expect("starts after repair");
    let tm = Client::connect(server.addr).await.expect("connect");
    tm.register_tm("repair").await.expect("register");
    let mut survived = 0;
    for xid in &xids {
        if tm.status(xid).await.expect("status") == GlobalStatus::Begin {
            survived += 1;
        }
    }
    // Each begin was its own frame; only the damaged one is lost.
    assert!(
        survived >= xids.len() - 1 && survived < xids.len(),
        "{survived} of {} begins survived the repair",
        xids.len()
    );
}
