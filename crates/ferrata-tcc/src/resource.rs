//! A TCC resource (participant + phase guard) and [`TccAction`], the handle it becomes once
//! registered: phase 1 through [`TccAction::call`], phase 2 rebuilt from the branch
//! applicationData when the TC asks.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrata::BranchRequest;
use ferrata_proto::{BranchStatus, BranchType};
use serde_json::Value;

use crate::client::TccBranchClient;
use crate::context::{
    BusinessActionContext, ContextError, TccContext, encode_application_data, keys, params_map,
};
use crate::error::{BoxError, FenceError, PhaseTwo, PhaseTwoError, TccError};
use crate::participant::{BranchKey, NoFence, PhaseGuard, PhaseWork, TccParticipant};

/// Method names written as `sys::prepare` / `sys::commit` / `sys::rollback`; informational for
/// Seata (Java resolves its own methods by annotation), so these name the trait's methods.
const PREPARE_METHOD: &str = "prepare";
const COMMIT_METHOD: &str = "confirm";
const ROLLBACK_METHOD: &str = "cancel";

/// A participant together with the guard its phases run through. Register it with
/// [`TccResource::register`] to get the [`TccAction`] that runs its try.
pub struct TccResource<P, G = NoFence> {
    participant: P,
    guard: G,
}

impl<P, G> std::fmt::Debug for TccResource<P, G>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TccResource")
            .field("action_name", &self.participant.action_name())
            .field("fence", &self.guard.is_fence())
            .finish()
    }
}

impl<P: TccParticipant<Local = ()>> TccResource<P, NoFence> {
    /// A resource without a fence: the participant handles idempotence, empty rollback and
    /// suspension itself.
    pub fn new(participant: P) -> Self {
        TccResource {
            participant,
            guard: NoFence,
        }
    }
}

impl<P, G> TccResource<P, G>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    /// A resource whose phases run through `guard` (a `TccFence` for the fence).
    pub fn with_guard(participant: P, guard: G) -> Self {
        TccResource { participant, guard }
    }

    pub fn participant(&self) -> &P {
        &self.participant
    }

    pub fn guard(&self) -> &G {
        &self.guard
    }

    /// The action name, which is the resource id registered with the TC (RegisterRM).
    pub fn action_name(&self) -> &str {
        self.participant.action_name()
    }

    /// Registers the resource with the TC under its action name (RegisterRM), so that phase-2
    /// requests for its branches reach it, and returns the handle that runs its try.
    pub async fn register(
        self,
        client: &ferrata::Client,
    ) -> Result<TccAction<P, G>, ferrata::Error> {
        let resource = Arc::new(self);
        client
            .register_resource(
                resource.action_name().to_owned(),
                Registered(resource.clone()),
            )
            .await?;
        Ok(TccAction {
            resource,
            client: client.clone(),
        })
    }

    /// Phase 2 commit: rebuilds the context and runs confirm (through the fence when the branch
    /// was registered with it). `Ok(false)`: not done, retry later.
    pub async fn commit(
        &self,
        xid: &str,
        branch_id: i64,
        application_data: &str,
    ) -> Result<bool, PhaseTwoError> {
        self.phase_two(PhaseTwo::Commit, xid, branch_id, application_data)
            .await
    }

    /// Phase 2 rollback: rebuilds the context and runs cancel (through the fence when the
    /// branch was registered with it). `Ok(false)`: not done, retry later.
    pub async fn rollback(
        &self,
        xid: &str,
        branch_id: i64,
        application_data: &str,
    ) -> Result<bool, PhaseTwoError> {
        self.phase_two(PhaseTwo::Rollback, xid, branch_id, application_data)
            .await
    }

    /// Phase 2 commit as the TC asks for it (what the registered resource answers). TCC never
    /// answers "unretryable": any failure is retried by the TC.
    pub async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        if self.handle(PhaseTwo::Commit, &request).await {
            BranchStatus::PhaseTwoCommitted
        } else {
            BranchStatus::PhaseTwoCommitFailedRetryable
        }
    }

    /// Phase 2 rollback as the TC asks for it; failures are retryable.
    pub async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        if self.handle(PhaseTwo::Rollback, &request).await {
            BranchStatus::PhaseTwoRollbacked
        } else {
            BranchStatus::PhaseTwoRollbackFailedRetryable
        }
    }

    /// Runs phase 2 for a TC request; true when it is done.
    async fn handle(&self, phase: PhaseTwo, request: &BranchRequest) -> bool {
        let outcome = match self.check_resource(request) {
            Ok(()) => {
                self.phase_two(
                    phase,
                    &request.xid,
                    request.branch_id,
                    &request.application_data,
                )
                .await
            }
            Err(error) => Err(error),
        };
        let (xid, branch_id, action) =
            (request.xid.as_str(), request.branch_id, self.action_name());
        match outcome {
            Ok(true) => true,
            Ok(false) => {
                tracing::warn!(
                    xid,
                    branch_id,
                    action,
                    %phase,
                    "TCC phase 2 not done; the TC will retry"
                );
                false
            }
            Err(error) => {
                tracing::warn!(xid, branch_id, action, %phase, %error, "TCC phase 2 failed; the TC will retry");
                false
            }
        }
    }

    async fn phase_two(
        &self,
        phase: PhaseTwo,
        xid: &str,
        branch_id: i64,
        application_data: &str,
    ) -> Result<bool, PhaseTwoError> {
        let (ctx, fenced) = self.phase_two_context(xid, branch_id, application_data)?;
        let participant = &self.participant;
        let key = BranchKey {
            xid,
            branch_id,
            action_name: participant.action_name(),
        };
        let ctx = &ctx;
        let work: PhaseWork<'_, P::Local, bool> = Box::new(move |mut local| {
            Box::pin(async move {
                let result = match phase {
                    PhaseTwo::Commit => participant.confirm(&mut local, ctx).await,
                    PhaseTwo::Rollback => participant.cancel(&mut local, ctx).await,
                };
                (local, result.map(|()| true).map_err(BoxError::from))
            })
        });
        let guarded = match phase {
            PhaseTwo::Commit => self.guard.guard_commit(key, fenced, work).await,
            PhaseTwo::Rollback => self.guard.guard_rollback(key, fenced, work).await,
        };
        guarded.map_err(|source| PhaseTwoError::Failed {
            phase,
            xid: xid.to_owned(),
            branch_id,
            source,
        })
    }

    fn check_resource(&self, request: &BranchRequest) -> Result<(), PhaseTwoError> {
        if request.resource_id == self.action_name() {
            Ok(())
        } else {
            Err(PhaseTwoError::WrongResource {
                resource_id: request.resource_id.clone(),
                action: self.action_name().to_owned(),
            })
        }
    }

    /// The phase-2 context and whether the branch went through the fence in phase 1.
    fn phase_two_context(
        &self,
        xid: &str,
        branch_id: i64,
        application_data: &str,
    ) -> Result<(TccContext<P::Params>, bool), PhaseTwoError> {
        let context_error = |source| PhaseTwoError::Context {
            xid: xid.to_owned(),
            branch_id,
            source,
        };
        let branch = BusinessActionContext::from_application_data(
            xid,
            branch_id,
            self.action_name(),
            application_data,
        )
        .map_err(context_error)?;
        // As Java: the branch's own flag decides, so branches registered before the fence was
        // switched on (no fence row) still finish.
        let fenced = branch.use_tcc_fence();
        if fenced && !self.guard.is_fence() {
            return Err(PhaseTwoError::FenceRequired {
                xid: xid.to_owned(),
                branch_id,
            });
        }
        let ctx = TccContext::decode(&branch).map_err(context_error)?;
        Ok((ctx, fenced))
    }

    /// The action context registered with the branch: the participant's values from `args`
    /// plus the framework keys Java and Go write.
    fn initial_context(
        &self,
        args: &P::Args,
        host: Option<String>,
    ) -> Result<(P::Params, serde_json::Map<String, Value>), ContextError> {
        let params = self.participant.params(args);
        let mut map = params_map(&params)?;
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        map.insert(keys::ACTION_START_TIME.into(), now_ms.into());
        map.insert(keys::PREPARE_METHOD.into(), PREPARE_METHOD.into());
        map.insert(keys::COMMIT_METHOD.into(), COMMIT_METHOD.into());
        map.insert(keys::ROLLBACK_METHOD.into(), ROLLBACK_METHOD.into());
        map.insert(keys::ACTION_NAME.into(), self.action_name().into());
        map.insert(keys::USE_TCC_FENCE.into(), self.guard.is_fence().into());
        map.insert(
            keys::HOST_NAME.into(),
            host.unwrap_or_else(|| "127.0.0.1".to_owned()).into(),
        );
        Ok((params, map))
    }
}

/// The RM's view of a registered resource: registered only by [`TccResource::register`], under
/// the action name, so phase 2 always reaches the resource the branch was registered for.
struct Registered<P, G>(Arc<TccResource<P, G>>);

impl<P, G> ferrata::BranchHandler for Registered<P, G>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        self.0.branch_commit(request).await
    }

    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        self.0.branch_rollback(request).await
    }
}

/// A registered TCC action: cheap to clone, one per application, shared by the request
/// handlers that run its try. From [`TccResource::register`].
pub struct TccAction<P, G = NoFence, C = ferrata::Client> {
    resource: Arc<TccResource<P, G>>,
    client: C,
}

impl<P, G, C: Clone> Clone for TccAction<P, G, C> {
    fn clone(&self) -> Self {
        TccAction {
            resource: self.resource.clone(),
            client: self.client.clone(),
        }
    }
}

impl<P, G, C> std::fmt::Debug for TccAction<P, G, C>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TccAction")
            .field("resource", &self.resource)
            .finish_non_exhaustive()
    }
}

impl<P, G, C> TccAction<P, G, C>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
    C: TccBranchClient,
{
    /// A handle that registers branches through `client` without registering the resource for
    /// phase 2 (for tests, and for clients that are not a `ferrata::Client`); drive phase 2
    /// through [`TccAction::resource`].
    pub fn unregistered(resource: TccResource<P, G>, client: C) -> Self {
        TccAction {
            resource: Arc::new(resource),
            client,
        }
    }

    pub fn resource(&self) -> &TccResource<P, G> {
        &self.resource
    }

    pub fn participant(&self) -> &P {
        self.resource.participant()
    }

    /// Phase 1 (try) inside the global transaction bound to this task: registers the branch
    /// (type TCC, resource id = action name, no lock key, applicationData = the action
    /// context), runs `prepare` (through the fence when the resource has one) with branch type
    /// TCC bound, then reports the context to the TC if `prepare` changed it.
    ///
    /// A failed try is not reported as PhaseOne_Failed (as in Java): the caller rolls the
    /// global transaction back and the TC cancels the branch.
    pub async fn call(&self, args: P::Args) -> Result<P::Output, TccError<P::Error>> {
        tcc_try(&self.client, &self.resource, args).await
    }
}

/// [`TccAction::call`] with a client and resource of the caller's own (the handle's body).
pub async fn tcc_try<C, P, G>(
    client: &C,
    resource: &TccResource<P, G>,
    args: P::Args,
) -> Result<P::Output, TccError<P::Error>>
where
    C: TccBranchClient,
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    let action = resource.action_name().to_owned();
    let Some(xid) = ferrata::context::current_xid() else {
        return Err(TccError::NoGlobalTransaction { action });
    };
    let (params, registered) = resource.initial_context(&args, client.local_ip())?;
    let application_data = encode_application_data(&registered);
    let branch_id = client
        .register_tcc_branch(&xid, &action, &application_data)
        .await
        .map_err(|source| TccError::Register {
            action: action.clone(),
            xid: xid.clone(),
            source,
        })?;

    let mut ctx = TccContext::new(
        xid.clone(),
        branch_id,
        action.clone(),
        params,
        registered.clone(),
    );
    let key = BranchKey {
        xid: &xid,
        branch_id,
        action_name: &action,
    };
    let participant = &resource.participant;
    let ctx_mut = &mut ctx;
    let outcome = ferrata::context::with_branch_type(
        BranchType::Tcc,
        resource.guard.guard_prepare(
            key,
            Box::new(move |mut local| {
                Box::pin(async move {
                    let result = participant.prepare(&mut local, ctx_mut, args).await;
                    (local, result.map_err(BoxError::from))
                })
            }),
        ),
    )
    .await;

    // Reported whatever the outcome, as Java does: a cancel may need what a failed try stored.
    let current = ctx.to_map()?;
    let reported = if current != registered {
        client
            .report_tcc_branch(
                &xid,
                branch_id,
                &action,
                BranchStatus::Registered,
                &encode_application_data(&current),
            )
            .await
            .map_err(|source| TccError::Report {
                xid: xid.clone(),
                branch_id,
                source,
            })
    } else {
        Ok(())
    };

    match outcome {
        Ok(output) => reported.map(|()| output),
        Err(source) => {
            if let Err(error) = reported {
                tracing::warn!(%error, "after a failed try");
            }
            Err(match source {
                FenceError::Business(error) => match error.downcast::<P::Error>() {
                    Ok(business) => TccError::Business {
                        action,
                        xid,
                        branch_id,
                        source: *business,
                    },
                    // Only the participant's errors are boxed as Business on the try path.
                    Err(other) => TccError::Fence {
                        action,
                        xid,
                        branch_id,
                        source: FenceError::Business(other),
                    },
                },
                source => TccError::Fence {
                    action,
                    xid,
                    branch_id,
                    source,
                },
            })
        }
    }
}
