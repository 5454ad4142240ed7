//! `ferrata-tcc`: Seata's TCC mode for Rust participants — the participant trait, the business
//! action context in Seata's wire form (so Java, Go and Rust participants share one TC), branch
//! registration, phase-2 handling, and the `tcc_fence_log` fence (features `mysql`, `postgres`).
//!
//! ```text
//! phase 1   tcc_try(client, &resource, args)   BranchRegister(TCC, action name, "", {"actionContext":{..}})
//!                                              -> fence: INSERT status 1 + prepare, one local tx
//!                                              -> BranchReport(Registered, ..) if prepare changed the context
//! phase 2   BranchHandler::branch_commit(request)    -> confirm (fence: 1 -> 2)
//!           BranchHandler::branch_rollback(request)  -> cancel  (fence: 1 -> 3, none -> 4)
//! ```
//!
//! ```no_run
//! use std::sync::Arc;
//! use ferrata_tcc::{BoxError, BusinessActionContext, TccParticipant, TccResource};
//!
//! struct Reserve;
//!
//! impl TccParticipant for Reserve {
//!     type Local = (); // with a TccFence: sqlx::Transaction<'static, DB>
//!     type Args = i64;
//!     type Output = ();
//!     fn action_name(&self) -> &str { "stock-reserve" }
//!     async fn prepare(&self, _: &mut (), ctx: &mut BusinessActionContext, n: i64) -> Result<(), BoxError> {
//!         ctx.put("count", n)?; // phase 2 reads it back
//!         Ok(())
//!     }
//!     async fn confirm(&self, _: &mut (), ctx: &BusinessActionContext) -> Result<bool, BoxError> {
//!         let _count: Option<i64> = ctx.get("count")?;
//!         Ok(true)
//!     }
//!     async fn cancel(&self, _: &mut (), _: &BusinessActionContext) -> Result<bool, BoxError> {
//!         Ok(true)
//!     }
//! }
//!
//! # async fn demo(client: ferrata::Client) -> Result<(), Box<dyn std::error::Error>> {
//! let resource = Arc::new(TccResource::new(Reserve));
//! ferrata_tcc::register_tcc_resource(&client.resource_manager(), &resource).await?;
//! // Inside a global transaction (ferrata's in_global_transaction, or an inbound XID):
//! ferrata_tcc::tcc_try(&client, &*resource, 3).await?;
//! # Ok(())
//! # }
//! ```

pub mod client;
pub mod context;
pub mod error;
pub mod fence;
pub mod participant;
pub mod resource;

pub use client::TccBranchClient;
pub use context::{BusinessActionContext, ContextError};
pub use error::{BoxError, FenceError, FenceOperation, FenceStatus, PhaseTwoError, TccError};
pub use fence::TableSetup;
pub use fence::{DDL_MYSQL, DDL_POSTGRES};
#[cfg(any(feature = "mysql", feature = "postgres"))]
pub use fence::{FenceDatabase, TccFence, TccFenceBuilder};
pub use participant::{BranchKey, NoFence, PhaseFuture, PhaseGuard, PhaseWork, TccParticipant};
pub use resource::{TccResource, register_tcc_resource, tcc_try};
