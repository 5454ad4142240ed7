//! A session that reached Committed, Rollbacked or TimeoutRollbacked (or is unknown) is deleted
//! with its branches; the coordinator reports the stored status of every session it keeps
//! (semantics §1.4, "Session end").

use super::*;

struct EndedSessionsLeave;

impl Invariant for EndedSessionsLeave {
    fn check(&mut self, h: &mut Harness, _: &Model, _: &Step) -> Result<(), TestCaseError> {
        for tx in h.replay().transactions() {
            let status = tx.global.status;
            prop_assert_eq!(h.tc.status_of(tx.global.transaction_id), Some(status));
            prop_assert!(
                !matches!(
                    status,
                    GlobalStatus::Committed
                        | GlobalStatus::Rollbacked
                        | GlobalStatus::TimeoutRollbacked
                        | GlobalStatus::Finished
                        | GlobalStatus::UnKnown
                ),
                "ended session kept in {:?}",
                status
            );
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn ended_sessions_are_removed((ops, unlock) in runs()) {
        run(ops, unlock, &mut EndedSessionsLeave)?;
    }
}
