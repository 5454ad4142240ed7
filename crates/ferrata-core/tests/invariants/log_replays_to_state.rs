//! Replaying the persisted records gives exactly the coordinator's state, and its counts agree:
//! what a restart recovers is what was live (semantics §3.2; ARCHITECTURE.md principle 2).

use super::*;

struct LogReplaysToState;

impl Invariant for LogReplaysToState {
    fn check(&mut self, h: &mut Harness, _: &Model, _: &Step) -> Result<(), TestCaseError> {
        let stored = h.replay();
        let live = table_of(&h.tc.snapshot_records());
        prop_assert_eq!(&stored, &live);
        let stats = h.tc.stats();
        prop_assert_eq!(stats.sessions, stored.len());
        prop_assert_eq!(
            stats.branches,
            stored
                .transactions()
                .map(|t| t.branches.len())
                .sum::<usize>()
        );
        Ok(())
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_log_replays_to_the_live_state((ops, unlock) in runs()) {
        run(ops, unlock, &mut LogReplaysToState)?;
    }
}
