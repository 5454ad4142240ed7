//! A TCC resource (participant + phase guard): phase 1 through [`tcc_try`], which registers the
//! branch and runs the try, and phase 2 rebuilt from the branch applicationData.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrata::BranchRequest;
use ferrata_proto::{BranchStatus, BranchType};
use serde_json::Value;

use crate::client::TccBranchClient;
use crate::context::{BusinessActionContext, encode_application_data, keys};
use crate::error::{PhaseTwoError, TccError};
use crate::participant::{BranchKey, NoFence, PhaseGuard, PhaseWork, TccParticipant};

/// Method names written as `sys::prepare` / `sys::commit` / `sys::rollback`; informational for
/// Seata (Java resolves its own methods by annotation), so these name the trait's methods.
const PREPARE_METHOD: &str = "prepare";
const COMMIT_METHOD: &str = "confirm";
const ROLLBACK_METHOD: &str = "cancel";

/// Which phase-2 call a resource is running.
#[derive(Debug, Clone, Copy)]
enum PhaseTwo {
    Commit,
    Rollback,
}

/// A participant together with the guard its phases run through.
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
                (local, result)
            })
        });
        let guarded = match phase {
            PhaseTwo::Commit => self.guard.guard_commit(key, fenced, work).await,
            PhaseTwo::Rollback => self.guard.guard_rollback(key, fenced, work).await,
        };
        guarded.map_err(|source| PhaseTwoError::Failed {
            phase: match phase {
                PhaseTwo::Commit => "confirm",
                PhaseTwo::Rollback => "cancel",
            },
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
    ) -> Result<(BusinessActionContext, bool), PhaseTwoError> {
        let ctx = BusinessActionContext::from_application_data(
            xid,
            branch_id,
            self.action_name(),
            application_data,
        )
        .map_err(|source| PhaseTwoError::Context {
            xid: xid.to_owned(),
            branch_id,
            source,
        })?;
        // As Java: the branch's own flag decides, so branches registered before the fence was
        // switched on (no fence row) still finish.
        let fenced = ctx.use_tcc_fence();
        if fenced && !self.guard.is_fence() {
            return Err(PhaseTwoError::FenceRequired {
                xid: xid.to_owned(),
                branch_id,
            });
        }
        Ok((ctx, fenced))
    }

    /// The action context registered with the branch: the participant's values from `args`
    /// plus the framework keys Java and Go write.
    fn initial_context(
        &self,
        args: &P::Args,
        host: Option<String>,
    ) -> serde_json::Map<String, Value> {
        let mut map = self.participant.action_context(args);
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
        map
    }
}

impl<P, G> ferrata::BranchHandler for TccResource<P, G>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    /// Phase 2 commit as the TC asks for it. TCC never answers "unretryable": any failure is
    /// retried by the TC.
    async fn branch_commit(&self, request: BranchRequest) -> BranchStatus {
        let outcome = match self.check_resource(&request) {
            Ok(()) => {
                self.commit(&request.xid, request.branch_id, &request.application_data)
                    .await
            }
            Err(error) => Err(error),
        };
        let (xid, branch_id) = (request.xid.as_str(), request.branch_id);
        match outcome {
            Ok(true) => BranchStatus::PhaseTwoCommitted,
            Ok(false) => {
                tracing::warn!(
                    xid,
                    branch_id,
                    action = self.action_name(),
                    "TCC confirm not done; the TC will retry"
                );
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
            Err(error) => {
                tracing::warn!(xid, branch_id, %error, "TCC confirm failed; the TC will retry");
                BranchStatus::PhaseTwoCommitFailedRetryable
            }
        }
    }

    /// Phase 2 rollback as the TC asks for it; failures are retryable.
    async fn branch_rollback(&self, request: BranchRequest) -> BranchStatus {
        let outcome = match self.check_resource(&request) {
            Ok(()) => {
                self.rollback(&request.xid, request.branch_id, &request.application_data)
                    .await
            }
            Err(error) => Err(error),
        };
        let (xid, branch_id) = (request.xid.as_str(), request.branch_id);
        match outcome {
            Ok(true) => BranchStatus::PhaseTwoRollbacked,
            Ok(false) => {
                tracing::warn!(
                    xid,
                    branch_id,
                    action = self.action_name(),
                    "TCC cancel not done; the TC will retry"
                );
                BranchStatus::PhaseTwoRollbackFailedRetryable
            }
            Err(error) => {
                tracing::warn!(xid, branch_id, %error, "TCC cancel failed; the TC will retry");
                BranchStatus::PhaseTwoRollbackFailedRetryable
            }
        }
    }
}

/// Registers `resource` with the SDK's RM under its action name (RegisterRM), so the TC's
/// phase-2 requests for its branches reach it. Keep the `Arc` to call [`tcc_try`] with.
pub async fn register_tcc_resource<P, G>(
    rm: &ferrata::ResourceManager,
    resource: &Arc<TccResource<P, G>>,
) -> Result<(), ferrata::Error>
where
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    rm.register_resource(resource.action_name().to_owned(), resource.clone())
        .await
}

/// Phase 1 of a TCC action inside the global transaction bound to this task: registers the
/// branch (type TCC, resource id = action name, no lock key, applicationData = the action
/// context), runs `prepare` (through the fence when the resource has one) with branch type TCC
/// bound, then reports the context to the TC if `prepare` changed it.
///
/// A failed try is not reported as PhaseOne_Failed (as in Java): the caller rolls the global
/// transaction back and the TC cancels the branch.
pub async fn tcc_try<C, P, G>(
    client: &C,
    resource: &TccResource<P, G>,
    args: P::Args,
) -> Result<P::Output, TccError>
where
    C: TccBranchClient,
    P: TccParticipant,
    G: PhaseGuard<P::Local>,
{
    let action = resource.action_name().to_owned();
    let Some(xid) = ferrata::context::current_xid() else {
        return Err(TccError::NoGlobalTransaction { action });
    };
    let action_context = resource.initial_context(&args, client.local_ip());
    let application_data = encode_application_data(&action_context);
    let branch_id = client
        .register_tcc_branch(&xid, &action, &application_data)
        .await
        .map_err(|source| TccError::Register {
            action: action.clone(),
            xid: xid.clone(),
            source,
        })?;

    let registered = action_context.clone();
    let mut ctx = BusinessActionContext {
        xid: xid.clone(),
        branch_id,
        action_name: action.clone(),
        action_context,
    };
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
                    (local, result)
                })
            }),
        ),
    )
    .await;

    // Reported whatever the outcome, as Java does: a cancel may need what a failed try stored.
    let reported = if ctx.action_context != registered {
        client
            .report_tcc_branch(
                &xid,
                branch_id,
                &action,
                BranchStatus::Registered,
                &ctx.to_application_data(),
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
            Err(TccError::Try {
                action,
                xid,
                branch_id,
                source,
            })
        }
    }
}
