//! Disk faults seen from the running server, with its log on a fault-injecting file system: a
//! failed write or fsync stops all acknowledgement and ends the server with an error naming the
//! failure, and a restart recovers everything that was acknowledged; a failed compaction is
//! only a warning — the server keeps serving and a later compaction succeeds.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferrata_proto::GlobalStatus;
use ferrata_server::Config;
use ferrata_store::fault::{Fault, FaultFs, Op};
use support::Client;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const DATA: &str = "/data/tc";

/// A server running in this process on `disk`.
struct InProcess {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    async fn start(disk: &FaultFs, compact_after_bytes: u64) -> InProcess {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut config = Config::default();
        // Servers of parallel tests share no admin port.
        config.admin.listen.set_port(0);
        config.server.listen = addr;
        config.store.data_dir = PathBuf::from(DATA);
        config.store.compact_after_bytes = compact_after_bytes;
        // Faults are aimed by call count: no background thread may take calls.
        config.store.preallocate = false;
        let (stop, stopped) = oneshot::channel::<()>();
        let file_system = disk.as_file_system();
        let task = tokio::spawn(async move {
            ferrata_server::run_with_file_system(listener, config, file_system, async move {
                let _ = stopped.await;
            })
            .await
        });
        InProcess {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// The server's own end: `Err` with its message when it stopped on a failure.
    async fn ended(self) -> anyhow::Result<()> {
        let _keep_running = self.stop;
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("the server ends")
            .expect("server task")
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = self.ended().await;
    }
}

async fn client(addr: SocketAddr) -> Client {
    let client = Client::connect(addr).await.expect("connect");
    client.register_tm("disk-faults").await.expect("register");
    client
}

/// Begins three transactions that stay open, then makes the next log write or fsync fail.
async fn acknowledged_then_failure(fault: Fault, expected_error: &str) {
    let disk = FaultFs::new();
    let server = InProcess::start(&disk, u64::MAX).await;
    let tm = client(server.addr).await;
    let mut acknowledged = Vec::new();
    for _ in 0..3 {
        acknowledged.push(tm.begin(60_000).await.expect("begin before the fault"));
    }
    disk.inject(fault.on_path(".wal").sticky());
    assert!(
        tm.begin(60_000).await.is_err(),
        "nothing may be acknowledged once the log failed"
    );
    let error = server
        .ended()
        .await
        .expect_err("the server exits on a failed log write");
    let message = format!("{error:#}");
    assert!(
        message.contains("refusing to acknowledge") && message.contains(expected_error),
        "the error names the failure: {message}"
    );
    // A power cut, then a restart on the same disk, without the fault.
    disk.crash();
    disk.clear_faults();
    let server = InProcess::start(&disk, u64::MAX).await;
    let tm = client(server.addr).await;
    for xid in &acknowledged {
        assert_eq!(
            tm.status(xid).await.expect("status"),
            GlobalStatus::Begin,
            "acknowledged begin {xid} survives"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_failed_fsync_stops_acknowledgement_and_a_restart_recovers() {
    acknowledged_then_failure(Fault::on(Op::SyncFile), "cannot fsync").await;
}

#[tokio::test]
async fn a_full_disk_during_append_stops_acknowledgement_and_a_restart_recovers() {
    acknowledged_then_failure(Fault::on(Op::Write).no_space(), "cannot write").await;
}

fn segments(disk: &FaultFs) -> Vec<String> {
    let mut names: Vec<String> = disk
        .files(Path::new(DATA))
        .into_iter()
        .filter(|name| name.ends_with(".wal"))
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_failed_compaction_leaves_the_server_serving() {
    let disk = FaultFs::new();
    // Compact after 4 KiB of log: a few dozen transactions.
    let server = InProcess::start(&disk, 4096).await;
    let tm = Arc::new(client(server.addr).await);
    let first_segment = segments(&disk).first().cloned().expect("a segment");
    // Every checkpoint write fails with a full disk.
    disk.inject(Fault::on(Op::Write).on_path(".tmp").no_space().sticky());
    let mut open = Vec::new();
    for i in 0..200 {
        let xid = tm
            .begin(60_000)
            .await
            .expect("served while compaction fails");
        if i % 10 == 0 {
            open.push(xid);
        } else {
            assert_eq!(
                tm.commit(&xid).await.expect("commit"),
                GlobalStatus::Committed
            );
        }
    }
    assert!(
        segments(&disk).contains(&first_segment),
        "no compaction could have succeeded: {:?}",
        segments(&disk)
    );
    assert!(!server.task.is_finished(), "the server keeps running");
    // Once the disk has room again, a later compaction succeeds and drops the old segment.
    disk.clear_faults();
    let mut compacted = false;
    for _ in 0..400 {
        let xid = tm.begin(60_000).await.expect("begin");
        assert_eq!(
            tm.commit(&xid).await.expect("commit"),
            GlobalStatus::Committed
        );
        if !segments(&disk).contains(&first_segment) {
            compacted = true;
            break;
        }
    }
    assert!(
        compacted,
        "a later compaction succeeds: {:?}",
        segments(&disk)
    );
    // Everything acknowledged survives a power cut after the compaction.
    server.stop().await;
    disk.crash();
    let server = InProcess::start(&disk, 4096).await;
    let tm = client(server.addr).await;
    for xid in &open {
        assert_eq!(tm.status(xid).await.expect("status"), GlobalStatus::Begin);
    }
    server.stop().await;
}
