//! The futures of `tcc_try` and of phase 2 are `Send` at concrete call sites, so they can be
//! awaited in an axum handler or `tokio::spawn`ed — for a participant without a fence and for
//! ones behind the MySQL and PostgreSQL fences.
//!
//! Most of this file is a compile-time check: the `*_is_send` functions are never run, they
//! only have to type-check (a regression shows as "future cannot be sent between threads
//! safely" or "one type is more general than the other" when building the tests).
// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferrata::{BranchRequest, BranchStatus, BranchType};
use ferrata_tcc::{TccAction, TccContext, TccFence, TccParticipant, TccResource, tcc_try};
use sqlx::{MySql, Postgres, Transaction};
use support::{Failed, RecordingClient};

/// The action context of the participants below.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Probe {
    probe: Option<String>,
}

/// The action context of the database participants.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Amount {
    amount: i64,
}

fn assert_send<T: Send>(_: &T) {}

/// A participant generic over its `Local` only through the trait: each instantiation below is
/// a separate concrete type, as a user's participant is.
#[derive(Debug, Default)]
struct Plain {
    prepares: AtomicUsize,
}

impl TccParticipant for Plain {
    type Local = ();
    type Args = String;
    type Output = i64;
    type Params = Probe;
    type Error = Failed;

    fn action_name(&self) -> &str {
        "send-plain"
    }

    fn params(&self, _: &String) -> Probe {
        Probe::default()
    }

    async fn prepare(
        &self,
        _: &mut (),
        ctx: &mut TccContext<Probe>,
        probe: String,
    ) -> Result<i64, Failed> {
        self.prepares.fetch_add(1, Ordering::SeqCst);
        // Await something in the middle, holding the borrows, as real business code does.
        tokio::task::yield_now().await;
        ctx.params.probe = Some(probe);
        assert_eq!(
            ferrata::context::current_branch_type(),
            Some(BranchType::Tcc)
        );
        Ok(ctx.branch_id)
    }

    async fn confirm(&self, _: &mut (), _: &TccContext<Probe>) -> Result<(), Failed> {
        tokio::task::yield_now().await;
        Ok(())
    }

    async fn cancel(&self, _: &mut (), _: &TccContext<Probe>) -> Result<(), Failed> {
        tokio::task::yield_now().await;
        Ok(())
    }
}

/// Business work in the fence's MySQL transaction.
#[derive(Debug, Default)]
struct OnMySql;

impl TccParticipant for OnMySql {
    type Local = Transaction<'static, MySql>;
    type Args = i64;
    type Output = ();
    type Params = Amount;
    type Error = sqlx::Error;

    fn action_name(&self) -> &str {
        "send-mysql"
    }

    fn params(&self, amount: &i64) -> Amount {
        Amount { amount: *amount }
    }

    async fn prepare(
        &self,
        tx: &mut Self::Local,
        ctx: &mut TccContext<Amount>,
        amount: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT ?")
            .bind(amount)
            .execute(&mut **tx)
            .await?;
        ctx.params.amount = amount;
        Ok(())
    }

    async fn confirm(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Amount>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT ?")
            .bind(ctx.branch_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn cancel(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Amount>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT ?")
            .bind(ctx.branch_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// Business work in the fence's PostgreSQL transaction.
#[derive(Debug, Default)]
struct OnPostgres;

impl TccParticipant for OnPostgres {
    type Local = Transaction<'static, Postgres>;
    type Args = i64;
    type Output = ();
    type Params = Amount;
    type Error = sqlx::Error;

    fn action_name(&self) -> &str {
        "send-postgres"
    }

    fn params(&self, amount: &i64) -> Amount {
        Amount { amount: *amount }
    }

    async fn prepare(
        &self,
        tx: &mut Self::Local,
        ctx: &mut TccContext<Amount>,
        amount: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT $1")
            .bind(amount)
            .execute(&mut **tx)
            .await?;
        ctx.params.amount = amount;
        Ok(())
    }

    async fn confirm(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Amount>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT $1")
            .bind(ctx.branch_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn cancel(
        &self,
        tx: &mut Self::Local,
        ctx: &TccContext<Amount>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT $1")
            .bind(ctx.branch_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

fn request(resource_id: &str) -> BranchRequest {
    BranchRequest {
        xid: "127.0.0.1:8091:1".into(),
        branch_id: 1,
        branch_type: BranchType::Tcc,
        resource_id: resource_id.into(),
        application_data: "{}".into(),
    }
}

// ---- compile-time checks (never called) --------------------------------------------------

/// Without a fence, with the recording client and with the SDK's `Client`.
#[allow(dead_code)]
fn no_fence_is_send(
    client: &ferrata::Client,
    recording: &RecordingClient,
    resource: &TccResource<Plain>,
) {
    assert_send(&tcc_try(client, resource, String::new()));
    assert_send(&tcc_try(recording, resource, String::new()));
    assert_send(&ferrata::context::with_xid(
        "x",
        tcc_try(client, resource, String::new()),
    ));
    assert_send(&resource.commit("x", 1, "{}"));
    assert_send(&resource.rollback("x", 1, "{}"));
    assert_send(&resource.branch_commit(request("send-plain")));
    assert_send(&resource.branch_rollback(request("send-plain")));
}

/// The registered handle, as request handlers hold it.
#[allow(dead_code)]
fn actions_are_send(
    client: &ferrata::Client,
    plain: &TccAction<Plain>,
    mysql: &TccAction<OnMySql, TccFence<MySql>>,
    postgres: &TccAction<OnPostgres, TccFence<Postgres>>,
) {
    assert_send(&plain.call(String::new()));
    assert_send(&mysql.call(1));
    assert_send(&postgres.call(1));
    assert_send(&TccResource::new(Plain::default()).register(client));
}

/// Behind the MySQL fence.
#[allow(dead_code)]
fn mysql_fence_is_send(client: &ferrata::Client, resource: &TccResource<OnMySql, TccFence<MySql>>) {
    assert_send(&tcc_try(client, resource, 1));
    assert_send(&ferrata::context::with_xid(
        "x",
        tcc_try(client, resource, 1),
    ));
    assert_send(&resource.commit("x", 1, "{}"));
    assert_send(&resource.rollback("x", 1, "{}"));
    assert_send(&resource.branch_commit(request("send-mysql")));
    assert_send(&resource.branch_rollback(request("send-mysql")));
}

/// Behind the PostgreSQL fence.
#[allow(dead_code)]
fn postgres_fence_is_send(
    client: &ferrata::Client,
    resource: &TccResource<OnPostgres, TccFence<Postgres>>,
) {
    assert_send(&tcc_try(client, resource, 1));
    assert_send(&ferrata::context::with_xid(
        "x",
        tcc_try(client, resource, 1),
    ));
    assert_send(&resource.commit("x", 1, "{}"));
    assert_send(&resource.rollback("x", 1, "{}"));
    assert_send(&resource.branch_commit(request("send-postgres")));
    assert_send(&resource.branch_rollback(request("send-postgres")));
}

/// The shape of an axum handler: an `async fn` whose future must be `Send`, awaiting
/// `tcc_try` directly on shared state.
#[allow(dead_code)]
fn handler_shaped_future_is_send(
    client: Arc<ferrata::Client>,
    plain: Arc<TccResource<Plain>>,
    mysql: Arc<TccResource<OnMySql, TccFence<MySql>>>,
    postgres: Arc<TccResource<OnPostgres, TccFence<Postgres>>>,
) {
    let handler = async move {
        let branch_id = tcc_try(&*client, &*plain, "p".to_owned()).await.ok();
        tcc_try(&*client, &*mysql, 1).await.ok();
        tcc_try(&*client, &*postgres, 1).await.ok();
        branch_id
    };
    assert_send(&handler);
}

// ---- at run time --------------------------------------------------------------------------

/// `tokio::spawn` of `tcc_try` inside a `with_xid` scope, on a multi-threaded runtime: the try
/// registers, runs prepare with branch type TCC, and reports the context, as awaited inline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcc_try_can_be_spawned_inside_a_with_xid_scope() {
    let client = Arc::new(RecordingClient::default());
    let resource = Arc::new(TccResource::new(Plain::default()));
    let xid = support::unique_xid();

    let task = {
        let (client, resource, xid) = (client.clone(), resource.clone(), xid.clone());
        tokio::spawn(ferrata::context::with_xid(xid, async move {
            tcc_try(&*client, &*resource, "spawned".to_owned()).await
        }))
    };
    let branch_id = task.await.unwrap().unwrap();

    let registered = client.registered();
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].xid, xid);
    assert_eq!(registered[0].branch_id, branch_id);
    assert_eq!(registered[0].resource_id, "send-plain");
    assert_eq!(resource.participant().prepares.load(Ordering::SeqCst), 1);
    let reported = client.reported();
    assert_eq!(
        reported.len(),
        1,
        "prepare put a value: the context is reported"
    );
    assert_eq!(reported[0].status, BranchStatus::Registered);
    let data: serde_json::Value = serde_json::from_str(&reported[0].application_data).unwrap();
    assert_eq!(data["actionContext"]["probe"], "spawned");

    // A spawned try carrying the caller's context the other way round (scope inside the task).
    let task = {
        let (client, resource) = (client.clone(), resource.clone());
        let context = ferrata::context::with_xid(xid.clone(), async {
            ferrata::context::TxContext::current()
        })
        .await;
        tokio::spawn(async move {
            context
                .scope(tcc_try(&*client, &*resource, "again".to_owned()))
                .await
        })
    };
    task.await.unwrap().unwrap();
    assert_eq!(client.registered().len(), 2);
    assert_eq!(resource.participant().prepares.load(Ordering::SeqCst), 2);

    // Phase 2 spawned as well.
    let data = client.application_data(branch_id);
    let status = tokio::spawn({
        let resource = resource.clone();
        async move {
            resource
                .branch_commit(BranchRequest {
                    xid,
                    branch_id,
                    branch_type: BranchType::Tcc,
                    resource_id: "send-plain".into(),
                    application_data: data,
                })
                .await
        }
    })
    .await
    .unwrap();
    assert_eq!(status, BranchStatus::PhaseTwoCommitted);
}
