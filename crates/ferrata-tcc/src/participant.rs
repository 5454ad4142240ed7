//! The TCC participant trait (prepare / confirm / cancel) and the phase guard that runs each
//! phase: [`NoFence`] calls the business directly, a `TccFence` wraps it in the fence.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::context::TccContext;
use crate::error::{BoxError, FenceError};

/// A TCC action. Its name is the branch resource id and must be unique per application.
///
/// `Local` is what each phase's business code works in: `()` for a participant without a fence,
/// and the open `sqlx::Transaction` for one behind a `TccFence`, so that the business writes
/// commit or roll back together with the fence row.
///
/// `Params` is the action context as a serde type (Java's `@BusinessActionContextParameter`
/// values): built from the try arguments, registered with the branch, changed by the try if it
/// needs to, and handed back to confirm and cancel. It must serialize as a JSON object (a struct
/// with named fields; [`NoParams`] when there is nothing to keep).
///
/// Phase-2 methods may be called more than once and on any node of the application; without a
/// fence they must be idempotent themselves. `Err` from confirm/cancel means "not done": the
/// business work of that call is rolled back and the TC calls again later.
pub trait TccParticipant: Send + Sync + 'static {
    type Local: Send;
    type Args: Send;
    type Output: Send;
    type Params: Serialize + DeserializeOwned + Send + Sync;
    /// The business error of all three phases, returned to the try's caller as
    /// [`crate::TccError::Business`].
    type Error: std::error::Error + Send + Sync + 'static;

    /// The action name (Java's `@TwoPhaseBusinessAction(name)`), registered as the resource id.
    fn action_name(&self) -> &str;

    /// The action context to register with the branch, from the try arguments.
    fn params(&self, args: &Self::Args) -> Self::Params;

    /// Phase 1 (try): reserve the resources. Changes to `ctx.params` are reported to the TC
    /// (even when the try fails, as cancel may need them).
    fn prepare(
        &self,
        local: &mut Self::Local,
        ctx: &mut TccContext<Self::Params>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// Phase 2 commit: use the reservation. `Err`: not done, the TC retries.
    fn confirm(
        &self,
        local: &mut Self::Local,
        ctx: &TccContext<Self::Params>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Phase 2 rollback: release the reservation. `Err`: not done, the TC retries. Without a
    /// fence this may run for a try that never happened (empty rollback) and must then succeed
    /// doing nothing.
    fn cancel(
        &self,
        local: &mut Self::Local,
        ctx: &TccContext<Self::Params>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// [`TccParticipant::Params`] for an action that keeps nothing in its context (phase 2 finds
/// its work by `ctx.xid` and `ctx.branch_id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NoParams {}

/// Which branch a phase belongs to.
#[derive(Debug, Clone, Copy)]
pub struct BranchKey<'a> {
    pub xid: &'a str,
    pub branch_id: i64,
    pub action_name: &'a str,
}

/// The future of one phase's business work: it owns the guard's `L` while it runs and hands it
/// back with its result.
pub type PhaseFuture<'a, L, T> =
    Pin<Box<dyn Future<Output = (L, Result<T, BoxError>)> + Send + 'a>>;

/// One phase's business work as a guard receives it: called once with the guard's `L`.
///
/// A boxed closure returning a boxed future, rather than generic `F`/`Fut` parameters: with
/// generic parameters, rustc cannot prove the future of a phase `Send` at a concrete call site
/// (the closure and its `async` block borrow from the caller, and the `F: FnOnce(L) -> Fut`
/// bound does not hold for the higher-ranked lifetimes the auto-trait check sees: "one type is
/// more general than the other"), so `tcc_try` could not be awaited in a spawned task.
pub type PhaseWork<'a, L, T> = Box<dyn FnOnce(L) -> PhaseFuture<'a, L, T> + Send + 'a>;

/// Runs one phase's business work around whatever makes it safe (nothing, or the fence).
///
/// The work receives `L` by value and hands it back with its result; passing ownership (rather
/// than `&mut L`) lets the work borrow freely from its caller without higher-ranked lifetimes.
pub trait PhaseGuard<L: Send>: Send + Sync + 'static {
    /// True when phases run through the `tcc_fence_log` fence (written as `useTCCFence`).
    fn is_fence(&self) -> bool;

    /// Phase 1.
    fn guard_prepare<'a, T>(
        &self,
        branch: BranchKey<'_>,
        work: PhaseWork<'a, L, T>,
    ) -> impl Future<Output = Result<T, FenceError>> + Send
    where
        T: Send;

    /// Phase 2 commit. `fenced` is the branch's `useTCCFence` flag: a branch registered without
    /// the fence has no fence row, so its phase 2 runs the business work alone.
    fn guard_commit<'a>(
        &self,
        branch: BranchKey<'_>,
        fenced: bool,
        work: PhaseWork<'a, L, bool>,
    ) -> impl Future<Output = Result<bool, FenceError>> + Send;

    /// Phase 2 rollback; `fenced` as for [`PhaseGuard::guard_commit`].
    fn guard_rollback<'a>(
        &self,
        branch: BranchKey<'_>,
        fenced: bool,
        work: PhaseWork<'a, L, bool>,
    ) -> impl Future<Output = Result<bool, FenceError>> + Send;
}

/// No fence: each phase calls the business directly (its `Local` is `()`).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFence;

impl PhaseGuard<()> for NoFence {
    fn is_fence(&self) -> bool {
        false
    }

    async fn guard_prepare<'a, T>(
        &self,
        _branch: BranchKey<'_>,
        work: PhaseWork<'a, (), T>,
    ) -> Result<T, FenceError>
    where
        T: Send,
    {
        work(()).await.1.map_err(FenceError::Business)
    }

    async fn guard_commit<'a>(
        &self,
        _branch: BranchKey<'_>,
        _fenced: bool,
        work: PhaseWork<'a, (), bool>,
    ) -> Result<bool, FenceError> {
        work(()).await.1.map_err(FenceError::Business)
    }

    async fn guard_rollback<'a>(
        &self,
        _branch: BranchKey<'_>,
        _fenced: bool,
        work: PhaseWork<'a, (), bool>,
    ) -> Result<bool, FenceError> {
        work(()).await.1.map_err(FenceError::Business)
    }
}
