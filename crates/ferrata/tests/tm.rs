//! TM API against the real ferrata-server: begin/commit/rollback/status, the scoped helper
//! (Ok commits, Err and panic roll back), every propagation mode, timeouts, lock conflicts,
//! an unreachable TC and a rejected registration.

mod support;

use std::time::Duration;

use ferrata::context::{current_xid, with_xid};
use ferrata::{
    BranchRegistration, BranchType, Client, Error, GlobalStatus, LockQuery, Propagation,
    TransactionError, TransactionOptions, TxInfo, TxRole,
};
use support::{Recorder, Server, config, dead_address, eventually};

const WAIT: Duration = Duration::from_secs(20);

struct Setup {
    _server: Server,
    client: Client,
    recorder: Recorder,
    resource: String,
}

async fn setup(name: &str) -> Setup {
    let server = Server::start().expect("server starts");
    let client = Client::connect(config(name, &[server.address()]))
        .await
        .expect("connects");
    let recorder = Recorder::default();
    let resource = format!("{name}-action");
    client
        .register_resource(resource.clone(), recorder.clone())
        .await
        .expect("resource registered");
    Setup {
        _server: server,
        client,
        recorder,
        resource,
    }
}

impl Setup {
    /// Registers a TCC branch of the task's current transaction.
    async fn enlist(&self) -> Result<i64, Error> {
        let xid = current_xid().expect("inside a transaction");
        self.client
            .branch_register(
                BranchRegistration::new(&xid, BranchType::Tcc, &self.resource)
                    .application_data("{}"),
            )
            .await
    }

    async fn outcome(&self, xid: &str) -> Option<bool> {
        let recorder = self.recorder.clone();
        let found = eventually(WAIT, || {
            let recorder = recorder.clone();
            async move { recorder.outcome(xid).is_some() }
        })
        .await;
        found.then(|| self.recorder.outcome(xid)).flatten()
    }
}

#[tokio::test]
async fn begin_commit_rollback_status() {
    let setup_ = setup("tm-basic").await;
    let s = &setup_;
    let tx = s
        .client
        .begin(Duration::from_secs(30), "basic")
        .await
        .expect("begin");
    assert_eq!(tx.role(), TxRole::Launcher);
    assert_eq!(tx.status().await.expect("status"), GlobalStatus::Begin);
    tx.scope(async { s.enlist().await.expect("branch") }).await;
    let xid = tx.xid().to_owned();
    let status = tx.commit().await.expect("commit");
    assert!(
        matches!(status, GlobalStatus::Committed | GlobalStatus::Committing),
        "{status:?}"
    );
    assert_eq!(s.outcome(&xid).await, Some(true));

    let tx = s
        .client
        .begin(Duration::from_secs(30), "basic-rollback")
        .await
        .expect("begin");
    tx.scope(async { s.enlist().await.expect("branch") }).await;
    let xid = tx.xid().to_owned();
    tx.rollback().await.expect("rollback");
    assert_eq!(s.outcome(&xid).await, Some(false));
    // The TC forgets a finished transaction.
    assert_eq!(
        s.client.status(&xid).await.expect("status"),
        GlobalStatus::Finished
    );
}

#[tokio::test]
async fn scoped_helper_commits_on_ok_and_rolls_back_on_err() {
    let setup_ = setup("tm-scoped").await;
    let s = &setup_;
    let (xid, value) = s
        .client
        .in_global_transaction(TransactionOptions::new("ok"), |tx| async move {
            assert_eq!(current_xid().as_ref(), Some(&tx.xid));
            s.enlist().await?;
            Ok::<_, Error>((tx.xid.clone(), 7))
        })
        .await
        .expect("committed");
    assert_eq!(value, 7);
    assert_eq!(s.outcome(&xid).await, Some(true));
    assert_eq!(current_xid(), None, "unbound after the scope");

    let mut seen = None;
    let result: Result<(), _> = s
        .client
        .in_global_transaction(TransactionOptions::new("err"), |tx| {
            seen = Some(tx.xid.clone());
            async move {
                s.enlist().await.expect("branch");
                Err("business failure")
            }
        })
        .await;
    assert!(
        matches!(result, Err(TransactionError::Aborted("business failure"))),
        "{result:?}"
    );
    assert_eq!(s.outcome(&seen.expect("xid")).await, Some(false));
}

#[tokio::test]
async fn scoped_helper_rolls_back_on_panic() {
    let setup_ = setup("tm-panic").await;
    let s = &setup_;
    let (xid_tx, xid_rx) = tokio::sync::oneshot::channel();
    let client = s.client.clone();
    let resource = s.resource.clone();
    let task = tokio::spawn(async move {
        let _: Result<(), TransactionError<Error>> = client
            .clone()
            .in_global_transaction(TransactionOptions::new("panics"), |tx| async move {
                let xid = tx.xid;
                client
                    .branch_register(BranchRegistration::new(&xid, BranchType::Tcc, &resource))
                    .await
                    .expect("branch");
                let _ = xid_tx.send(xid);
                panic!("business code panicked");
            })
            .await;
    });
    let joined = task.await;
    assert!(
        joined.as_ref().is_err_and(|e| e.is_panic()),
        "the panic continues"
    );
    let xid = xid_rx.await.expect("xid sent before the panic");
    assert_eq!(s.outcome(&xid).await, Some(false));
}

#[tokio::test]
async fn dropping_a_begun_transaction_rolls_it_back() {
    let setup_ = setup("tm-drop").await;
    let s = &setup_;
    let tx = s
        .client
        .begin(Duration::from_secs(30), "dropped")
        .await
        .expect("begin");
    tx.scope(async { s.enlist().await.expect("branch") }).await;
    let xid = tx.xid().to_owned();
    // An early return drops the handle without commit or rollback.
    drop(tx);
    assert_eq!(s.outcome(&xid).await, Some(false));

    // A joined (participant) handle leaves its transaction alone when dropped.
    let launched = s
        .client
        .begin(Duration::from_secs(30), "joined")
        .await
        .expect("begin");
    drop(s.client.join(launched.xid()));
    assert_eq!(
        launched.status().await.expect("status"),
        GlobalStatus::Begin
    );
    launched.rollback().await.expect("rollback");
}

#[tokio::test]
async fn dropping_the_scoped_future_rolls_back() {
    let setup_ = setup("tm-cancel").await;
    let s = &setup_;
    let (xid_tx, xid_rx) = tokio::sync::oneshot::channel();
    let work =
        s.client
            .in_global_transaction(TransactionOptions::new("cancelled"), |tx| async move {
                s.enlist().await.expect("branch");
                let _ = xid_tx.send(tx.xid);
                std::future::pending::<Result<(), Error>>().await
            });
    // The caller stops waiting once the branch exists: the future is dropped mid-transaction.
    tokio::select! {
        _ = work => unreachable!("pending forever"),
        xid = xid_rx => {
            let xid = xid.expect("xid");
            assert_eq!(s.outcome(&xid).await, Some(false));
        }
    }
}

#[tokio::test]
async fn propagation_modes() {
    let setup_ = setup("tm-propagation").await;
    let s = &setup_;
    let c = &s.client;
    let opts = |p| TransactionOptions::new("prop").propagation(p);

    // Without a bound transaction.
    let none = c
        .with_propagation(opts(Propagation::Supports), |tx| async move {
            Ok::<_, Error>((tx, current_xid()))
        })
        .await
        .expect("supports");
    assert_eq!(none, (None, None));
    let never = c
        .with_propagation(
            opts(Propagation::Never),
            |tx| async move { Ok::<_, Error>(tx) },
        )
        .await
        .expect("never");
    assert_eq!(never, None);
    let mandatory = c
        .in_global_transaction(opts(Propagation::Mandatory), |_| async move {
            Ok::<_, Error>(())
        })
        .await;
    assert!(
        matches!(
            mandatory,
            Err(TransactionError::Transaction(Error::NoTransaction))
        ),
        "{mandatory:?}"
    );
    let not_supported = c
        .with_propagation(opts(Propagation::NotSupported), |tx| async move {
            Ok::<_, Error>(tx)
        })
        .await
        .expect("not supported");
    assert_eq!(not_supported, None);
    // The modes that may run without a transaction are refused by in_global_transaction,
    // before running the work.
    for p in [
        Propagation::Supports,
        Propagation::NotSupported,
        Propagation::Never,
    ] {
        let refused = c
            .in_global_transaction(opts(p), |_| async move {
                panic!("must not run");
                #[allow(unreachable_code)]
                Ok::<_, Error>(())
            })
            .await;
        assert!(
            matches!(
                refused,
                Err(TransactionError::Transaction(Error::NotTransactional { propagation })) if propagation == p
            ),
            "{refused:?}"
        );
    }
    let (new_xid, role) = c
        .in_global_transaction(opts(Propagation::RequiresNew), |tx| async move {
            s.enlist().await?;
            Ok::<_, Error>((tx.xid, tx.role))
        })
        .await
        .expect("requires new");
    assert_eq!(role, TxRole::Launcher);
    assert_eq!(s.outcome(&new_xid).await, Some(true));

    // Inside an outer transaction.
    let outer = c
        .begin(Duration::from_secs(30), "outer")
        .await
        .expect("begin outer");
    let outer_xid_owned = outer.xid().to_owned();
    let outer_xid = &outer_xid_owned;
    let inner_new_xid = outer
        .scope(async move {
            for p in [
                Propagation::Required,
                Propagation::Supports,
                Propagation::Mandatory,
            ] {
                let joined = c
                    .in_global_transaction(opts(p), |tx| async move { Ok::<_, Error>(tx) })
                    .await
                    .expect("joins");
                assert_eq!(
                    joined,
                    TxInfo {
                        xid: outer_xid.clone(),
                        role: TxRole::Participant
                    },
                    "{p:?}"
                );
                // with_propagation joins the same way.
                let joined = c
                    .with_propagation(opts(p), |tx| async move { Ok::<_, Error>(tx) })
                    .await
                    .expect("joins");
                assert_eq!(joined.map(|tx| tx.xid).as_ref(), Some(outer_xid), "{p:?}");
            }
            // A participant's failure does not end the outer transaction.
            let failed = c
                .in_global_transaction(opts(Propagation::Required), |_| async move {
                    Err::<(), _>("participant failed")
                })
                .await;
            assert!(matches!(failed, Err(TransactionError::Aborted(_))));

            let never = c
                .with_propagation(opts(Propagation::Never), |_| async move { Ok::<_, Error>(()) })
                .await;
            assert!(
                matches!(
                    &never,
                    Err(TransactionError::Transaction(Error::ExistingTransaction { xid })) if xid == outer_xid
                ),
                "{never:?}"
            );

            let suspended = c
                .with_propagation(opts(Propagation::NotSupported), |tx| async move {
                    Ok::<_, Error>((tx, current_xid()))
                })
                .await
                .expect("not supported");
            assert_eq!(suspended, (None, None));
            assert_eq!(current_xid().as_deref(), Some(outer_xid.as_str()), "resumed");

            // REQUIRES_NEW: a separate transaction that rolls back on its own.
            let mut inner = None;
            let rolled_back = c
                .in_global_transaction(opts(Propagation::RequiresNew), |tx| {
                    inner = Some(tx.xid.clone());
                    async move {
                        assert_ne!(current_xid().as_deref(), Some(outer_xid.as_str()));
                        s.enlist().await.expect("inner branch");
                        Err::<(), _>("inner failed")
                    }
                })
                .await;
            assert!(matches!(rolled_back, Err(TransactionError::Aborted(_))));
            assert_eq!(current_xid().as_deref(), Some(outer_xid.as_str()), "resumed");
            s.enlist().await.expect("outer branch");
            inner.expect("inner xid")
        })
        .await;
    assert_ne!(&inner_new_xid, outer_xid);
    assert_eq!(s.outcome(&inner_new_xid).await, Some(false));
    assert_eq!(
        outer.status().await.expect("status"),
        GlobalStatus::Begin,
        "the outer transaction is still running"
    );
    outer.commit().await.expect("outer commits");
    assert_eq!(s.outcome(outer_xid).await, Some(true));
}

#[tokio::test]
async fn transaction_timeout_is_a_typed_error_and_rolls_back() {
    let setup_ = setup("tm-timeout").await;
    let s = &setup_;
    let mut seen = None;
    let result = s
        .client
        .in_global_transaction(
            TransactionOptions::new("slow").timeout(Duration::from_millis(300)),
            |tx| {
                seen = Some(tx.xid.clone());
                async move {
                    s.enlist().await?;
                    // Outlive the timeout: wait until the TC itself has timed it out.
                    let xid = current_xid().expect("xid");
                    let c = s.client.clone();
                    let timed_out = eventually(WAIT, || {
                        let (c, xid) = (c.clone(), xid.clone());
                        async move {
                            c.status(&xid)
                                .await
                                .is_ok_and(|st| st != GlobalStatus::Begin)
                        }
                    })
                    .await;
                    assert!(timed_out, "the TC times the transaction out");
                    Ok::<_, Error>(())
                }
            },
        )
        .await;
    assert!(
        matches!(
            result,
            Err(TransactionError::Transaction(
                Error::TransactionTimeout { .. }
            ))
        ),
        "{result:?}"
    );
    assert_eq!(s.outcome(&seen.expect("xid")).await, Some(false));

    // The raw handle reports it the same way.
    let tx = s
        .client
        .begin(Duration::from_millis(200), "raw")
        .await
        .expect("begin");
    let c = s.client.clone();
    let xid = tx.xid().to_owned();
    assert!(
        eventually(WAIT, || {
            let (c, xid) = (c.clone(), xid.clone());
            async move {
                c.status(&xid)
                    .await
                    .is_ok_and(|st| st != GlobalStatus::Begin)
            }
        })
        .await
    );
    let err = tx.commit().await.expect_err("timed out");
    assert!(matches!(err, Error::TransactionTimeout { .. }), "{err:?}");
    assert!(
        err.advice().contains("raise the transaction timeout"),
        "{err}"
    );
}

#[tokio::test]
async fn lock_conflict_is_a_typed_error() {
    let setup_ = setup("tm-locks").await;
    let s = &setup_;
    let resource = "jdbc:mysql://127.0.0.1:3306/locks";
    s.client
        .register_resource(resource, s.recorder.clone())
        .await
        .expect("register");
    let first = s
        .client
        .begin(Duration::from_secs(30), "holder")
        .await
        .expect("begin");
    let second = s
        .client
        .begin(Duration::from_secs(30), "contender")
        .await
        .expect("begin");
    s.client
        .branch_register(
            BranchRegistration::new(first.xid(), BranchType::At, resource).lock_key("stock:1,2"),
        )
        .await
        .expect("first takes the locks");
    assert!(
        !s.client
            .lock_query(LockQuery::new(second.xid(), BranchType::At, resource).lock_key("stock:2"))
            .await
            .expect("query")
    );
    let err = s
        .client
        .branch_register(
            BranchRegistration::new(second.xid(), BranchType::At, resource).lock_key("stock:2"),
        )
        .await
        .expect_err("conflict");
    match &err {
        Error::LockConflict {
            xid,
            resource_id,
            lock_key,
            ..
        } => {
            assert_eq!(xid, second.xid());
            assert_eq!(resource_id, resource);
            assert_eq!(lock_key, "stock:2");
        }
        other => panic!("expected a lock conflict, got {other:?}"),
    }
    assert!(err.is_retryable());
    let first_xid = first.xid().to_owned();
    first.rollback().await.expect("rollback releases the locks");
    assert_eq!(s.outcome(&first_xid).await, Some(false));
    s.client
        .branch_register(
            BranchRegistration::new(second.xid(), BranchType::At, resource).lock_key("stock:2"),
        )
        .await
        .expect("free now");
    second.rollback().await.expect("rollback");
}

#[tokio::test]
async fn unreachable_tc_is_a_typed_error() {
    let err = Client::connect(config("tm-unreachable", &[dead_address()]))
        .await
        .expect_err("nothing listens there");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.advice().contains("ferrata-server is running"), "{err}");
}

#[tokio::test]
async fn rejected_registration_is_a_typed_error() {
    let server = Server::start().expect("server");
    // ferrata-server refuses clients older than 0.7.1 (legacy framing).
    let mut cfg = config("tm-rejected", &[server.address()]);
    cfg.client_version = "0.6.0".into();
    let err = Client::connect(cfg).await.expect_err("refused");
    assert!(matches!(err, Error::RegistrationRejected { .. }), "{err:?}");
}

#[tokio::test]
async fn calls_after_connection_loss_fail_fast_then_recover() {
    let mut server = Server::start().expect("server");
    let client = Client::connect(config("tm-loss", &[server.address()]))
        .await
        .expect("connects");
    server.kill();
    let err = client
        .begin(Duration::from_secs(5), "while down")
        .await
        .expect_err("TC is down");
    assert!(err.is_retryable(), "{err:?}");
    server.restart().expect("restart");
    let c = client.clone();
    assert!(
        eventually(WAIT, || {
            let c = c.clone();
            async move { c.begin(Duration::from_secs(5), "after").await.is_ok() }
        })
        .await
    );
    // Status requests of unknown transactions are not errors, just Finished.
    let status = with_xid("x", client.status("127.0.0.1:1:1")).await;
    assert_eq!(status.expect("status"), GlobalStatus::Finished);
}
