//! Every GlobalCommit and GlobalRollback is answered at most once, and with a global status
//! (semantics §1.6, request semantics).

use std::collections::HashSet;

use super::*;

#[derive(Default)]
struct RepliesOnce {
    answered_tokens: HashSet<u64>,
}

impl Invariant for RepliesOnce {
    fn check(&mut self, _: &mut Harness, _: &Model, step: &Step) -> Result<(), TestCaseError> {
        for effect in &step.effects {
            if let Effect::Reply { token, reply } = effect {
                prop_assert!(
                    self.answered_tokens.insert(*token),
                    "token {token} answered twice"
                );
                prop_assert!(
                    matches!(
                        reply,
                        Reply::GlobalCommit { .. }
                            | Reply::GlobalRollback { .. }
                            | Reply::GlobalStatus { .. }
                            | Reply::GlobalReport { .. }
                    ),
                    "unexpected reply {reply:?}"
                );
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn every_request_is_answered_at_most_once((ops, unlock) in runs()) {
        run(ops, unlock, &mut RepliesOnce::default())?;
    }
}
