//! Phase 1 through `tcc_try` (registration, context, report) and phase 2 through the SDK's
//! BranchHandler, for a participant without a fence; the TC is a recording stand-in.
// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ferrata::{BranchRequest, BranchStatus, BranchType};
use ferrata_tcc::context::keys;
use ferrata_tcc::{TccContext, TccError, TccParticipant, TccResource, tcc_try};
use serde_json::{Value, json};
use support::{Failed, RecordingClient};

/// Reserves `amount`; the try stores a reservation id, phase 2 records what it saw.
#[derive(Debug, Default)]
struct Account {
    fail_prepare: AtomicBool,
    confirm_error: Mutex<Option<String>>,
    prepares: AtomicUsize,
    confirms: AtomicUsize,
    cancels: AtomicUsize,
    branch_type_in_prepare: Mutex<Option<BranchType>>,
    seen_in_phase_two: Mutex<Vec<Option<String>>>,
}

struct Args {
    amount: i64,
    store_reservation: bool,
}

/// The action context: the amount from the arguments, and the reservation the try makes.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Reservation {
    amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    reservation: Option<String>,
}

impl TccParticipant for Account {
    type Local = ();
    type Args = Args;
    type Output = i64;
    type Params = Reservation;
    type Error = Failed;

    fn action_name(&self) -> &str {
        "account-debit"
    }

    fn params(&self, args: &Args) -> Reservation {
        Reservation {
            amount: args.amount,
            reservation: None,
        }
    }

    async fn prepare(
        &self,
        _local: &mut (),
        ctx: &mut TccContext<Reservation>,
        args: Args,
    ) -> Result<i64, Failed> {
        self.prepares.fetch_add(1, Ordering::SeqCst);
        *self.branch_type_in_prepare.lock().unwrap() = ferrata::context::current_branch_type();
        if args.store_reservation {
            ctx.params.reservation = Some(format!("R-{}", ctx.branch_id));
        }
        if self.fail_prepare.load(Ordering::SeqCst) {
            return Err(Failed("insufficient funds".into()));
        }
        Ok(args.amount)
    }

    async fn confirm(&self, _local: &mut (), ctx: &TccContext<Reservation>) -> Result<(), Failed> {
        self.confirms.fetch_add(1, Ordering::SeqCst);
        self.seen_in_phase_two
            .lock()
            .unwrap()
            .push(ctx.params.reservation.clone());
        match self.confirm_error.lock().unwrap().clone() {
            None => Ok(()),
            Some(message) => Err(Failed(message)),
        }
    }

    async fn cancel(&self, _local: &mut (), ctx: &TccContext<Reservation>) -> Result<(), Failed> {
        self.cancels.fetch_add(1, Ordering::SeqCst);
        self.seen_in_phase_two
            .lock()
            .unwrap()
            .push(ctx.params.reservation.clone());
        Ok(())
    }
}

fn request(xid: &str, branch_id: i64, resource_id: &str, data: &str) -> BranchRequest {
    BranchRequest {
        xid: xid.into(),
        branch_id,
        branch_type: BranchType::Tcc,
        resource_id: resource_id.into(),
        application_data: data.into(),
    }
}

#[tokio::test]
async fn try_outside_a_global_transaction_registers_nothing() {
    let client = RecordingClient::default();
    let resource = TccResource::new(Account::default());
    let args = Args {
        amount: 5,
        store_reservation: false,
    };
    let err = tcc_try(&client, &resource, args).await.unwrap_err();
    assert!(matches!(err, TccError::NoGlobalTransaction { .. }), "{err}");
    assert!(client.registered().is_empty());
    assert_eq!(resource.participant().prepares.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn try_registers_a_tcc_branch_with_javas_context_and_reports_changes() {
    let client = RecordingClient::default();
    let resource = TccResource::new(Account::default());
    let xid = support::unique_xid();
    let args = Args {
        amount: 30,
        store_reservation: true,
    };
    let out = ferrata::context::with_xid(xid.clone(), tcc_try(&client, &resource, args))
        .await
        .unwrap();
    assert_eq!(out, 30);

    let registered = client.registered();
    assert_eq!(registered.len(), 1);
    let branch = &registered[0];
    assert_eq!(branch.xid, xid);
    assert_eq!(
        branch.resource_id, "account-debit",
        "resource id = action name"
    );
    let data: Value = serde_json::from_str(&branch.application_data).unwrap();
    let ctx = &data[keys::ACTION_CONTEXT];
    assert_eq!(ctx["amount"], 30);
    assert!(ctx[keys::ACTION_START_TIME].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(ctx[keys::PREPARE_METHOD], "prepare");
    assert_eq!(ctx[keys::COMMIT_METHOD], "confirm");
    assert_eq!(ctx[keys::ROLLBACK_METHOD], "cancel");
    assert_eq!(ctx[keys::ACTION_NAME], "account-debit");
    assert_eq!(ctx[keys::USE_TCC_FENCE], false);
    assert_eq!(ctx[keys::HOST_NAME], "10.1.2.3");
    assert_eq!(
        *resource
            .participant()
            .branch_type_in_prepare
            .lock()
            .unwrap(),
        Some(BranchType::Tcc),
        "the try runs with branch type TCC bound"
    );

    // prepare stored a value: the TC gets it as a Registered report.
    let reported = client.reported();
    assert_eq!(reported.len(), 1);
    assert_eq!(reported[0].status, BranchStatus::Registered);
    assert_eq!(reported[0].branch_id, branch.branch_id);
    assert_eq!(reported[0].resource_id, "account-debit");
    let new: Value = serde_json::from_str(&reported[0].application_data).unwrap();
    assert_eq!(
        new[keys::ACTION_CONTEXT]["reservation"],
        json!(format!("R-{}", branch.branch_id))
    );

    // Phase 2 sees the reported value, and succeeds.
    let data = client.application_data(branch.branch_id);
    let status = resource
        .branch_commit(request(&xid, branch.branch_id, "account-debit", &data))
        .await;
    assert_eq!(status, BranchStatus::PhaseTwoCommitted);
    assert_eq!(
        *resource.participant().seen_in_phase_two.lock().unwrap(),
        vec![Some(format!("R-{}", branch.branch_id))]
    );
}

#[tokio::test]
async fn unchanged_context_is_not_reported() {
    let client = RecordingClient::default();
    let resource = TccResource::new(Account::default());
    let args = Args {
        amount: 1,
        store_reservation: false,
    };
    ferrata::context::with_xid(support::unique_xid(), tcc_try(&client, &resource, args))
        .await
        .unwrap();
    assert_eq!(client.registered().len(), 1);
    assert!(client.reported().is_empty());
}

#[tokio::test]
async fn failed_try_is_an_error_and_still_reports_what_cancel_needs() {
    let client = RecordingClient::default();
    let account = Account::default();
    account.fail_prepare.store(true, Ordering::SeqCst);
    let resource = TccResource::new(account);
    let xid = support::unique_xid();
    let args = Args {
        amount: 1,
        store_reservation: true,
    };
    let err = ferrata::context::with_xid(xid.clone(), tcc_try(&client, &resource, args))
        .await
        .unwrap_err();
    assert!(matches!(err, TccError::Business { .. }), "{err}");
    assert_eq!(err.to_string(), "insufficient funds");
    assert_eq!(
        err.business().map(|e| e.0.as_str()),
        Some("insufficient funds")
    );
    let reported = client.reported();
    assert_eq!(
        reported.len(),
        1,
        "as Java: reported even when the try fails"
    );
    assert_eq!(
        reported[0].status,
        BranchStatus::Registered,
        "a failed try is not PhaseOne_Failed"
    );

    let branch_id = client.registered()[0].branch_id;
    let data = client.application_data(branch_id);
    let status = resource
        .branch_rollback(request(&xid, branch_id, "account-debit", &data))
        .await;
    assert_eq!(status, BranchStatus::PhaseTwoRollbacked);
    assert_eq!(resource.participant().cancels.load(Ordering::SeqCst), 1);
    assert_eq!(
        *resource.participant().seen_in_phase_two.lock().unwrap(),
        vec![Some(format!("R-{branch_id}"))]
    );
}

#[tokio::test]
async fn phase_two_failures_are_always_retryable() {
    let resource = TccResource::new(Account::default());
    let xid = support::unique_xid();
    let data = r#"{"actionContext":{"amount":1,"reservation":"R-1"}}"#;
    let answers = [Some("db down".to_owned()), Some("again".to_owned())];
    for answer in answers {
        *resource.participant().confirm_error.lock().unwrap() = answer;
        let status = resource
            .branch_commit(request(&xid, 1, "account-debit", data))
            .await;
        assert_eq!(status, BranchStatus::PhaseTwoCommitFailedRetryable);
    }
    assert_eq!(resource.participant().confirms.load(Ordering::SeqCst), 2);

    // Requests the resource cannot serve are retryable too, without calling the business.
    let cases = [
        request(&xid, 1, "someone-else", data),
        request(&xid, 1, "account-debit", "{broken"),
        // The context lacks the participant's `amount`.
        request(
            &xid,
            1,
            "account-debit",
            r#"{"actionContext":{"reservation":"R-1"}}"#,
        ),
        // Registered with the fence, but this resource has none: do not run cancel unfenced.
        request(
            &xid,
            1,
            "account-debit",
            r#"{"actionContext":{"useTCCFence":true}}"#,
        ),
    ];
    for case in cases {
        assert_eq!(
            resource.branch_commit(case.clone()).await,
            BranchStatus::PhaseTwoCommitFailedRetryable
        );
        assert_eq!(
            resource.branch_rollback(case).await,
            BranchStatus::PhaseTwoRollbackFailedRetryable
        );
    }
    assert_eq!(resource.participant().confirms.load(Ordering::SeqCst), 2);
    assert_eq!(resource.participant().cancels.load(Ordering::SeqCst), 0);
}
