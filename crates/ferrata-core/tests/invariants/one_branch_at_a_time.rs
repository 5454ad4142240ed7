//! Without parallel phase 2, a transaction's branches are visited one at a time: a step sends at
//! most one phase-2 request per transaction (semantics §1.6, `enableParallelHandleBranch` off).

use std::collections::BTreeMap;

use super::*;

struct OneBranchAtATime;

impl Invariant for OneBranchAtATime {
    fn check(&mut self, _: &mut Harness, _: &Model, step: &Step) -> Result<(), TestCaseError> {
        let mut requests_per_tx: BTreeMap<TransactionId, usize> = BTreeMap::new();
        for effect in &step.effects {
            if let Effect::BranchCommit(request) | Effect::BranchRollback(request) = effect {
                *requests_per_tx.entry(request.transaction_id).or_default() += 1;
            }
        }
        prop_assert!(
            requests_per_tx.values().all(|&n| n == 1),
            "one branch at a time per transaction: {requests_per_tx:?}"
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn one_phase_two_request_per_transaction_per_step((ops, unlock) in runs()) {
        run(ops, unlock, &mut OneBranchAtATime)?;
    }
}
