//! Transport against the real ferrata-server: reconnect and re-registration after a restart,
//! merged sending, heartbeats, XID routing across two TCs, a blocked branch handler that must not
//! stall other work, and a TM that dies mid-transaction (the TC's timeout rolls it back).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::Duration;

use ferrata::rm::{BranchHandler, BranchRequest};
use ferrata::{BranchRegistration, BranchStatus, BranchType, Client, GlobalStatus};
use support::{Recorder, Server, config, eventually};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn reconnects_and_re_registers_resources_after_a_server_restart() {
    let mut server = Server::start().expect("server");
    let client = Client::connect(config("restart", &[server.address()]))
        .await
        .expect("connects");
    let recorder = Recorder::default();
    client
        .register_resource("restart-action", recorder.clone())
        .await
        .expect("register");
    let before = client.transport_stats().connections_established;
    assert_eq!(before, 2, "one TM and one RM connection");

    server.restart().expect("restart");
    let c = client.clone();
    let began = eventually(WAIT, || {
        let c = c.clone();
        async move {
            c.begin(Duration::from_secs(30), "after restart")
                .await
                .is_ok()
        }
    })
    .await;
    assert!(began, "the TM reconnects");
    let c = client.clone();
    assert!(
        eventually(WAIT, || {
            let c = c.clone();
            async move { c.transport_stats().connections_established >= before + 2 }
        })
        .await,
        "both roles reconnect"
    );

    // The TC can only deliver phase two if the RM registered its resource again.
    let tx = client
        .begin(Duration::from_secs(30), "phase two after restart")
        .await
        .expect("begin");
    let c = client.clone();
    let xid = tx.xid().to_owned();
    assert!(
        eventually(WAIT, || {
            let (c, xid) = (c.clone(), xid.clone());
            async move {
                c.branch_register(BranchRegistration::new(
                    &xid,
                    BranchType::Tcc,
                    "restart-action",
                ))
                .await
                .is_ok()
            }
        })
        .await
    );
    tx.rollback().await.expect("rollback");
    let r = recorder.clone();
    assert!(
        eventually(WAIT, || {
            let r = r.clone();
            let xid = xid.clone();
            async move { r.outcome(&xid) == Some(false) }
        })
        .await,
        "rollback delivered to the re-registered resource"
    );
}

#[tokio::test]
async fn concurrent_requests_are_merged_into_one_frame() {
    let server = Server::start().expect("server");
    let mut cfg = config("merge", &[server.address()]);
    cfg.tm_batch = true;
    cfg.rm_batch = true;
    let client = Client::connect(cfg).await.expect("connects");
    let recorder = Recorder::default();
    client
        .register_resource("merge-action", recorder.clone())
        .await
        .expect("register");
    let before = client.transport_stats();

    // Issued from one task without yielding in between: all are queued before the writer runs.
    let begins = (0..8).map(|i| {
        let c = client.clone();
        async move { c.begin(Duration::from_secs(30), &format!("m{i}")).await }
    });
    let txs: Vec<_> = futures_join_all(begins)
        .await
        .into_iter()
        .map(|r| r.expect("begin"))
        .collect();
    let registers = txs.iter().map(|tx| {
        client.branch_register(
            BranchRegistration::new(tx.xid(), BranchType::Tcc, "merge-action")
                .application_data("{}"),
        )
    });
    let branch_ids: Vec<i64> = futures_join_all(registers)
        .await
        .into_iter()
        .map(|r| r.expect("register"))
        .collect();
    let after = client.transport_stats();

    let mut unique = branch_ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), 8, "each request got its own answer");
    assert!(branch_ids.iter().all(|id| *id > 0));
    let merged = after.merged_frames_sent - before.merged_frames_sent;
    let inside = after.merged_requests_sent - before.merged_requests_sent;
    let frames =
        after.frames_sent - before.frames_sent - (after.heartbeats_sent - before.heartbeats_sent);
    assert!(merged >= 2, "begins and registers were merged: {after:?}");
    assert_eq!(inside, 16, "every request travelled in a batch: {after:?}");
    assert!(frames < 16, "fewer frames than requests: {frames}");
    for tx in txs {
        tx.commit().await.expect("commit");
    }
}

/// Polls futures concurrently in the calling task (no spawn), preserving order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (fut, slot) in pending.iter_mut().zip(results.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results.into_iter().flatten().collect()
}

#[tokio::test]
async fn idle_connections_send_heartbeats_and_stay_up() {
    let server = Server::start().expect("server");
    let mut cfg = config("heartbeat", &[server.address()]);
    cfg.write_idle = Duration::from_millis(100);
    cfg.read_idle = Duration::from_secs(3);
    let client = Client::connect(cfg).await.expect("connects");
    let c = client.clone();
    assert!(
        eventually(WAIT, || {
            let c = c.clone();
            async move { c.transport_stats().heartbeats_sent >= 6 }
        })
        .await,
        "pings are sent when nothing else is written"
    );
    client
        .begin(Duration::from_secs(5), "still connected")
        .await
        .expect("begin")
        .rollback()
        .await
        .expect("rollback");
    assert_eq!(
        client.transport_stats().connections_established,
        2,
        "answered pings keep the connections (no reconnect)"
    );
}

#[tokio::test]
async fn requests_go_to_the_tc_named_in_the_xid() {
    let a = Server::start().expect("server a");
    let b = Server::start().expect("server b");
    let only_b = Client::connect(config("route-b", &[b.address()]))
        .await
        .expect("connects to b");
    let both = Client::connect(config("route-ab", &[a.address(), b.address()]))
        .await
        .expect("connects to both");
    let tx = only_b
        .begin(Duration::from_secs(30), "on b")
        .await
        .expect("begin on b");
    assert!(tx.xid().starts_with(&b.address()), "{}", tx.xid());
    // Round-robin would send half of these to A, which does not know the XID (Finished).
    for _ in 0..6 {
        assert_eq!(
            both.status(tx.xid()).await.expect("status"),
            GlobalStatus::Begin
        );
    }
    let committed = both.commit(tx.xid()).await.expect("commit routed to b");
    assert!(matches!(
        committed,
        GlobalStatus::Committed | GlobalStatus::AsyncCommitting
    ));
}

/// Blocks its (blocking-pool) thread on rollback until released; commits normally.
struct Blocking {
    started: std_mpsc::Sender<String>,
    release: Arc<std::sync::Mutex<std_mpsc::Receiver<()>>>,
    /// Set when the test released the handler (not when the wait gave up): the test can only
    /// release it after the other transaction completed while the handler was blocked.
    released: Arc<AtomicBool>,
}

impl BranchHandler for Blocking {
    async fn branch_commit(&self, _request: BranchRequest) -> BranchStatus {
        BranchStatus::PhaseTwoCommitted
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        let _ = self.started.send(request.xid);
        // A deliberately blocking call inside an async handler.
        let released = self
            .release
            .lock()
            .is_ok_and(|rx| rx.recv_timeout(Duration::from_secs(20)).is_ok());
        self.released.store(released, Ordering::SeqCst);
        BranchStatus::PhaseTwoRollbacked
    }
}

// A current-thread runtime: a handler run inline would block every other task of the client.
#[tokio::test(flavor = "current_thread")]
async fn a_blocked_branch_handler_does_not_stall_other_transactions() {
    let server = Server::start().expect("server");
    let client = Client::connect(config("blocked", &[server.address()]))
        .await
        .expect("connects");
    let (started_tx, started_rx) = std_mpsc::channel();
    let (release_tx, release_rx) = std_mpsc::channel();
    let released = Arc::new(AtomicBool::new(false));
    client
        .register_resource(
            "blocked-action",
            Blocking {
                started: started_tx,
                release: Arc::new(std::sync::Mutex::new(release_rx)),
                released: released.clone(),
            },
        )
        .await
        .expect("register");
    let recorder = Recorder::default();
    client
        .register_resource("free-action", recorder.clone())
        .await
        .expect("register");

    let stuck = client
        .begin(Duration::from_secs(60), "stuck")
        .await
        .expect("begin");
    client
        .branch_register(BranchRegistration::new(
            stuck.xid(),
            BranchType::Tcc,
            "blocked-action",
        ))
        .await
        .expect("branch");
    let stuck_xid = stuck.xid().to_owned();
    let rollback = tokio::spawn(stuck.rollback());
    // Wait (without blocking the runtime) until the handler is blocked.
    let started = tokio::task::spawn_blocking(move || started_rx.recv_timeout(WAIT))
        .await
        .expect("join");
    assert_eq!(started.as_deref().ok(), Some(stuck_xid.as_str()));

    // While it is blocked: a new transaction begins, registers a branch on the same RM
    // connection, commits, and its branch commit is handled.
    let other = client
        .begin(Duration::from_secs(30), "other")
        .await
        .expect("begin while a handler is blocked");
    client
        .branch_register(BranchRegistration::new(
            other.xid(),
            BranchType::Tcc,
            "free-action",
        ))
        .await
        .expect("register while a handler is blocked");
    let xid = other.xid().to_owned();
    other.commit().await.expect("commit");
    let r = recorder.clone();
    assert!(
        eventually(WAIT, || {
            let (r, xid) = (r.clone(), xid.clone());
            async move { r.outcome(&xid) == Some(true) }
        })
        .await
    );

    let _ = release_tx.send(());
    rollback.await.expect("join").expect("rollback completes");
    assert!(
        released.load(Ordering::SeqCst),
        "the other transaction finished while the handler was still blocked"
    );
    let c = client.clone();
    let xid = stuck_xid;
    assert!(
        eventually(WAIT, || {
            let (c, xid) = (c.clone(), xid.clone());
            async move { c.status(&xid).await.ok() == Some(GlobalStatus::Finished) }
        })
        .await
    );
}

#[tokio::test]
async fn a_dead_tm_is_rolled_back_by_the_tc_timeout() {
    let server = Server::start().expect("server");
    let participant = Client::connect(config("tm-dies-rm", &[server.address()]))
        .await
        .expect("participant connects");
    let recorder = Recorder::default();
    participant
        .register_resource("tm-dies-action", recorder.clone())
        .await
        .expect("register");

    let launcher = Client::connect(config("tm-dies-tm", &[server.address()]))
        .await
        .expect("launcher connects");
    let tx = launcher
        .begin(Duration::from_millis(500), "abandoned")
        .await
        .expect("begin");
    let xid = tx.xid().to_owned();
    participant
        .branch_register(
            BranchRegistration::new(&xid, BranchType::Tcc, "tm-dies-action").application_data("{}"),
        )
        .await
        .expect("branch");
    // The launcher dies without committing or rolling back (shut down first, so that dropping
    // the transaction cannot roll it back either).
    launcher.shutdown();
    drop(tx);
    drop(launcher);

    let observer = Client::connect(config("tm-dies-observer", &[server.address()]))
        .await
        .expect("observer connects");
    let o = observer.clone();
    let x = xid.clone();
    assert!(
        eventually(WAIT, || {
            let (o, x) = (o.clone(), x.clone());
            async move {
                matches!(
                    o.status(&x).await,
                    Ok(GlobalStatus::Finished | GlobalStatus::TimeoutRollbacked)
                )
            }
        })
        .await,
        "the TC ends the abandoned transaction"
    );
    assert_eq!(
        recorder.outcome(&xid),
        Some(false),
        "the participant was told to roll back"
    );
}
