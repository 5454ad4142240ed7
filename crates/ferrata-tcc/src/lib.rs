//! `ferrata-tcc`: Seata's TCC mode for Rust participants — the participant trait, the business
//! action context in Seata's wire form (so Java, Go and Rust participants share one TC), branch
//! registration, phase-2 handling, and the `tcc_fence_log` fence (features `mysql`, `postgres`).
//!
//! ```text
//! phase 1   action.call(args)   BranchRegister(TCC, action name, "", {"actionContext":{..}})
//!                               -> fence: INSERT status 1 + prepare, one local tx
//!                               -> BranchReport(Registered, ..) if prepare changed the context
//! phase 2   the TC's BranchCommit   -> confirm (fence: 1 -> 2)
//!           the TC's BranchRollback -> cancel  (fence: 1 -> 3, none -> 4)
//! ```
//!
//! A participant behind the fence (feature `postgres`; `mysql` is the same with
//! `sqlx::MySql`): each phase's business writes run in the fence's local transaction, so they
//! commit together with the fence row, and the fence gives idempotent phase 2, empty rollback
//! and suspension protection.
//!
//! ```no_run
//! use ferrata_tcc::{TccContext, TccFence, TccParticipant, TccResource};
//! use ferrata_tcc::sqlx::{self, PgPool, Postgres, Transaction};
//!
//! /// What phase 2 needs, registered with the branch (a serde type: field names are checked
//! /// by the compiler, not looked up by string).
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Reservation { sku: String, count: i64 }
//!
//! struct ReserveStock;
//!
//! impl TccParticipant for ReserveStock {
//!     type Local = Transaction<'static, Postgres>; // the fence's open transaction
//!     type Args = (String, i64);
//!     type Output = ();
//!     type Params = Reservation;
//!     type Error = sqlx::Error;
//!     fn action_name(&self) -> &str { "stock-reserve" }
//!     fn params(&self, (sku, count): &(String, i64)) -> Reservation {
//!         Reservation { sku: sku.clone(), count: *count }
//!     }
//!     async fn prepare(&self, tx: &mut Self::Local, ctx: &mut TccContext<Reservation>, _: (String, i64))
//!         -> Result<(), sqlx::Error> {
//!         sqlx::query("UPDATE stock SET reserved = reserved + $1 WHERE sku = $2")
//!             .bind(ctx.params.count).bind(&ctx.params.sku).execute(&mut **tx).await?;
//!         Ok(())
//!     }
//!     async fn confirm(&self, tx: &mut Self::Local, ctx: &TccContext<Reservation>) -> Result<(), sqlx::Error> {
//!         sqlx::query("UPDATE stock SET reserved = reserved - $1, sold = sold + $1 WHERE sku = $2")
//!             .bind(ctx.params.count).bind(&ctx.params.sku).execute(&mut **tx).await?;
//!         Ok(())
//!     }
//!     async fn cancel(&self, tx: &mut Self::Local, ctx: &TccContext<Reservation>) -> Result<(), sqlx::Error> {
//!         sqlx::query("UPDATE stock SET reserved = reserved - $1 WHERE sku = $2")
//!             .bind(ctx.params.count).bind(&ctx.params.sku).execute(&mut **tx).await?;
//!         Ok(())
//!     }
//! }
//!
//! async fn start(client: &ferrata::Client, pool: PgPool) -> Result<(), Box<dyn std::error::Error>> {
//!     // Creates tcc_fence_log if missing and cleans it once a day.
//!     let fence = TccFence::builder(pool).start().await?;
//!     // Registers the resource under its action name; keep (and clone) the handle.
//!     let reserve = TccResource::with_guard(ReserveStock, fence).register(client).await?;
//!     // Inside a global transaction (the TM's scope, or an inbound XID bound by XidLayer):
//!     reserve.call(("apple".into(), 3)).await?;
//!     Ok(())
//! }
//! ```
//!
//! `Ok` from [`TccAction::call`] means the try committed locally and the branch is registered;
//! phase 2 runs later, when the TC asks. `Err` from confirm or cancel means "not done": that
//! call's local work is rolled back and the TC calls again, until it succeeds.
//!
//! The SDK is built against `sqlx` 0.8, re-exported as `ferrata_tcc::sqlx` with
//! the `mysql`/`postgres` features: use it (or the same sqlx minor version) for the pools and
//! transactions handed to the fence, since two sqlx versions make two incompatible types.

/// The guide's snippets (docs/guide/sdk.md), compiled as doctests of this crate, which sees
/// both the SDK and the TCC API.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/guide/sdk.md")]
pub struct Guide;

pub mod client;
pub mod context;
pub mod error;
pub mod fence;
pub mod participant;
pub mod resource;

/// The sqlx the fence is built against (0.8); use it for the pools handed to [`TccFence`].
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use sqlx;

pub use client::TccBranchClient;
pub use context::{BusinessActionContext, ContextError, TccContext};
pub use error::{
    BoxError, FenceError, FenceOperation, FenceStatus, PhaseTwo, PhaseTwoError, TccError,
};
pub use fence::TableSetup;
pub use fence::{DDL_MYSQL, DDL_POSTGRES};
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use fence::{FenceDatabase, TccFence, TccFenceBuilder};
pub use participant::{
    BranchKey, NoFence, NoParams, PhaseFuture, PhaseGuard, PhaseWork, TccParticipant,
};
pub use resource::{TccAction, TccResource, tcc_try};
