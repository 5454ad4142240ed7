//! After a tick, no session is still in Begin past its deadline: the timeout check moved it to
//! TimeoutRollbacking (semantics §1.7, timeout check; §1.2, the timeout as the TM asked).

use super::*;

struct TimeoutsFire;

impl Invariant for TimeoutsFire {
    fn check(&mut self, h: &mut Harness, model: &Model, step: &Step) -> Result<(), TestCaseError> {
        if !step.after_tick {
            return Ok(());
        }
        for tx in h.replay().transactions() {
            if tx.global.status == GlobalStatus::Begin {
                prop_assert!(
                    model.now <= tx.global.begin_time_ms + i64::from(tx.global.timeout_ms),
                    "timed-out session still in Begin after a tick"
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn timed_out_sessions_leave_begin_at_the_next_tick((ops, unlock) in runs()) {
        run(ops, unlock, &mut TimeoutsFire)?;
    }
}
