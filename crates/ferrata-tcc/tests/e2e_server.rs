//! End to end through the real ferrata-server: the SDK client registers the TCC resource,
//! begins a global transaction, `TccAction::call` registers the branch, and the TC drives phase 2 —
//! global commit confirms once, global rollback cancels once (also through the fence on
//! PostgreSQL).
#![allow(clippy::unwrap_used)]

#[path = "support/server.rs"]
mod server;
mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrata::{Client, ClientConfig, TransactionError, TransactionOptions};
use ferrata_tcc::{BoxError, FenceStatus, TccContext, TccFence, TccParticipant, TccResource};
use server::{Server, eventually};

const WAIT: Duration = Duration::from_secs(30);

fn config(app: &str, server: &Server) -> ClientConfig {
    ClientConfig::builder(app)
        .tc_addresses([server.addr.to_string()])
        .tm_request_timeout(Duration::from_secs(10))
        .rm_request_timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap()
}

/// Counts phase calls per XID-independent totals; stores a value in the try for phase 2.
#[derive(Debug, Default)]
struct Counting {
    name: String,
    prepares: AtomicUsize,
    confirms: AtomicUsize,
    cancels: AtomicUsize,
    confirmed_amounts: std::sync::Mutex<Vec<Option<i64>>>,
}

/// The counting action's context: the amount, stored by the try.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Amount {
    amount: Option<i64>,
}

impl TccParticipant for Counting {
    type Local = ();
    type Args = i64;
    type Output = ();
    type Params = Amount;
    type Error = std::convert::Infallible;

    fn action_name(&self) -> &str {
        &self.name
    }

    fn params(&self, _: &i64) -> Amount {
        Amount::default()
    }

    async fn prepare(
        &self,
        _: &mut (),
        ctx: &mut TccContext<Amount>,
        amount: i64,
    ) -> Result<(), Self::Error> {
        self.prepares.fetch_add(1, Ordering::SeqCst);
        ctx.params.amount = Some(amount);
        Ok(())
    }

    async fn confirm(&self, _: &mut (), ctx: &TccContext<Amount>) -> Result<(), Self::Error> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        self.confirmed_amounts
            .lock()
            .unwrap()
            .push(ctx.params.amount);
        Ok(())
    }

    async fn cancel(&self, _: &mut (), _: &TccContext<Amount>) -> Result<(), Self::Error> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_commit_confirms_once_and_global_rollback_cancels_once() {
    let server = Server::start();
    let client = Client::connect(config("tcc-e2e", &server)).await.unwrap();
    let action = TccResource::new(Counting {
        name: "e2e-counting".into(),
        ..Counting::default()
    })
    .register(&client)
    .await
    .unwrap();
    let p = action.participant();

    // Commit: the try's reported context reaches confirm.
    let options = TransactionOptions::new("tcc-commit");
    let a = &action;
    client
        .in_global_transaction(options, |_| async move { a.call(42).await })
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { p.confirms.load(Ordering::SeqCst) >= 1 }).await);
    assert_eq!(p.confirms.load(Ordering::SeqCst), 1);
    assert_eq!(p.cancels.load(Ordering::SeqCst), 0);
    assert_eq!(*p.confirmed_amounts.lock().unwrap(), vec![Some(42)]);

    // Rollback: the business fails after its try.
    let options = TransactionOptions::new("tcc-rollback");
    let failed = client
        .in_global_transaction(options, |_| async move {
            a.call(7).await?;
            Err::<(), BoxError>("order rejected after the reservation".into())
        })
        .await;
    assert!(
        matches!(failed, Err(TransactionError::Aborted(_))),
        "{failed:?}"
    );
    assert!(eventually(WAIT, || async { p.cancels.load(Ordering::SeqCst) >= 1 }).await);
    assert_eq!(p.cancels.load(Ordering::SeqCst), 1);
    assert_eq!(p.confirms.load(Ordering::SeqCst), 1);
    assert_eq!(p.prepares.load(Ordering::SeqCst), 2);
}

/// The TC routes phase 2 to an RM by the client id it recorded at registration
/// (`app:ip:port`); over IPv6 the address itself contains `:` and must not be split on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phase_two_reaches_a_tcc_participant_connected_over_ipv6() {
    let server = Server::start_on("[::1]:0".parse().unwrap());
    assert!(server.addr.is_ipv6());
    let client = Client::connect(config("tcc-ipv6", &server)).await.unwrap();
    let action = TccResource::new(Counting {
        name: "ipv6-counting".into(),
        ..Counting::default()
    })
    .register(&client)
    .await
    .unwrap();
    let p = action.participant();
    let a = &action;
    client
        .in_global_transaction(TransactionOptions::new("ipv6-commit"), |_| async move {
            a.call(5).await
        })
        .await
        .unwrap();
    assert!(eventually(WAIT, || async { p.confirms.load(Ordering::SeqCst) >= 1 }).await);
    let failed = client
        .in_global_transaction(TransactionOptions::new("ipv6-rollback"), |_| async move {
            a.call(6).await?;
            Err::<(), BoxError>("rejected".into())
        })
        .await;
    assert!(
        matches!(failed, Err(TransactionError::Aborted(_))),
        "{failed:?}"
    );
    assert!(eventually(WAIT, || async { p.cancels.load(Ordering::SeqCst) >= 1 }).await);
    assert_eq!(
        (
            p.confirms.load(Ordering::SeqCst),
            p.cancels.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
}

type PgTx = sqlx::Transaction<'static, sqlx::Postgres>;

/// Writes its phases into `tcc_e2e_ledger` inside the fence's transaction.
#[derive(Debug, Default)]
struct PgLedger {
    confirms: AtomicUsize,
    cancels: AtomicUsize,
}

impl PgLedger {
    async fn write(
        tx: &mut PgTx,
        ctx: &TccContext<ferrata_tcc::NoParams>,
        phase: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO tcc_e2e_ledger (xid, branch_id, phase) VALUES ($1, $2, $3)")
            .bind(&ctx.xid)
            .bind(ctx.branch_id)
            .bind(phase)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl TccParticipant for PgLedger {
    type Local = PgTx;
    type Args = ();
    type Output = i64;
    type Params = ferrata_tcc::NoParams;
    type Error = sqlx::Error;

    fn action_name(&self) -> &str {
        "e2e-pg-ledger"
    }

    fn params(&self, _: &()) -> ferrata_tcc::NoParams {
        ferrata_tcc::NoParams {}
    }

    async fn prepare(
        &self,
        tx: &mut PgTx,
        ctx: &mut TccContext<ferrata_tcc::NoParams>,
        _: (),
    ) -> Result<i64, sqlx::Error> {
        Self::write(tx, ctx, "try").await?;
        Ok(ctx.branch_id)
    }

    async fn confirm(
        &self,
        tx: &mut PgTx,
        ctx: &TccContext<ferrata_tcc::NoParams>,
    ) -> Result<(), sqlx::Error> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        Self::write(tx, ctx, "confirm").await
    }

    async fn cancel(
        &self,
        tx: &mut PgTx,
        ctx: &TccContext<ferrata_tcc::NoParams>,
    ) -> Result<(), sqlx::Error> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        Self::write(tx, ctx, "cancel").await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_participant_through_the_tc_on_postgres() {
    let url = ferrata_testkit::database_url("FERRATA_POSTGRES_URL");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    let fence = TccFence::builder(pool.clone()).start().await.unwrap();
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS tcc_e2e_ledger \
         (xid VARCHAR(128) NOT NULL, branch_id BIGINT NOT NULL, phase VARCHAR(16) NOT NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();

    let server = Server::start();
    let client = Client::connect(config("tcc-e2e-pg", &server))
        .await
        .unwrap();
    let action = TccResource::with_guard(PgLedger::default(), fence.clone())
        .register(&client)
        .await
        .unwrap();
    let a = &action;
    let count = |xid: String, phase: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT COUNT(*) FROM tcc_e2e_ledger WHERE xid = $1 AND phase = $2",
            )
            .bind(xid)
            .bind(phase)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    let (xid, branch) = client
        .in_global_transaction(TransactionOptions::new("pg-commit"), |info| async move {
            let branch = a.call(()).await?;
            Ok::<_, ferrata_tcc::TccError<sqlx::Error>>((info.xid, branch))
        })
        .await
        .unwrap();
    let committed = eventually(WAIT, || {
        let fence = fence.clone();
        let xid = xid.clone();
        async move { fence.status(&xid, branch).await.unwrap() == Some(FenceStatus::Committed) }
    })
    .await;
    assert!(
        committed,
        "the TC's commit reached confirm through the fence"
    );
    assert_eq!(count(xid.clone(), "try").await, 1);
    assert_eq!(count(xid.clone(), "confirm").await, 1);
    assert_eq!(action.participant().confirms.load(Ordering::SeqCst), 1);

    let captured = std::sync::Mutex::new(None);
    let cap = &captured;
    let failed = client
        .in_global_transaction(TransactionOptions::new("pg-rollback"), |info| async move {
            let branch = a.call(()).await?;
            *cap.lock().unwrap() = Some((info.xid, branch));
            Err::<(), BoxError>("payment declined".into())
        })
        .await;
    assert!(failed.is_err());
    let (xid, branch) = captured.lock().unwrap().clone().unwrap();
    let rolled_back = eventually(WAIT, || {
        let fence = fence.clone();
        let xid = xid.clone();
        async move { fence.status(&xid, branch).await.unwrap() == Some(FenceStatus::Rollbacked) }
    })
    .await;
    assert!(
        rolled_back,
        "the TC's rollback reached cancel through the fence"
    );
    assert_eq!(count(xid.clone(), "try").await, 1);
    assert_eq!(count(xid.clone(), "cancel").await, 1);
    assert_eq!(count(xid, "confirm").await, 0);
    assert_eq!(action.participant().cancels.load(Ordering::SeqCst), 1);
}
