//! One server per data directory: a second server started on a directory in use refuses to
//! start with a clear error naming the directory, and starts once the first has stopped.

mod support;

use support::ServerProcess;

#[test]
fn a_second_server_on_the_same_data_directory_refuses_to_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let first = ServerProcess::start(&data, 0, &dir.path().join("first.log")).expect("first");
    let second = ServerProcess::start(&data, 0, &dir.path().join("second.log"));
    let error = format!(
        "{:#}",
        second.err().expect("the second server must not start")
    );
    assert!(
        error.contains(&data.display().to_string()) && error.contains("another ferrata-server"),
        "the error names the directory and says why:\n{error}"
    );
    drop(first);
    ServerProcess::start(&data, 0, &dir.path().join("third.log")).expect("starts once free");
}
