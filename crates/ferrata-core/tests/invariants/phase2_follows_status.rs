//! BranchCommit is only sent while the transaction is committing and BranchRollback only while
//! it is rolling back; nothing else goes out but records and replies (undo-log cleanup is off,
//! ids are snowflake ids)
//! (semantics §1.4 transitions, §1.5 branch lifecycle).

use super::*;

struct Phase2FollowsStatus;

impl Invariant for Phase2FollowsStatus {
    fn check(&mut self, h: &mut Harness, _: &Model, step: &Step) -> Result<(), TestCaseError> {
        for effect in &step.effects {
            match effect {
                Effect::BranchCommit(request) => {
                    let status = h.tc.status_of(request.transaction_id);
                    prop_assert!(
                        status.is_some_and(GlobalStatus::is_committing),
                        "commit sent in {status:?}"
                    );
                }
                Effect::BranchRollback(request) => {
                    let status = h.tc.status_of(request.transaction_id);
                    prop_assert!(
                        status.is_some_and(GlobalStatus::is_rollbacking),
                        "rollback sent in {status:?}"
                    );
                }
                Effect::Persist(_) | Effect::Reply { .. } => {}
                Effect::PersistIf { .. }
                | Effect::CheckLocks { .. }
                | Effect::CheckStatus { .. } => {
                    prop_assert!(
                        false,
                        "an exclusive store needs no conditions or lock reads"
                    )
                }
                Effect::UndoLogDelete { .. } => prop_assert!(false, "undo-log cleanup is off"),
                Effect::ReserveIds { .. } => {
                    prop_assert!(false, "snowflake ids ask the store for none")
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn phase_two_requests_follow_the_global_status((ops, unlock) in runs()) {
        run(ops, unlock, &mut Phase2FollowsStatus)?;
    }
}
