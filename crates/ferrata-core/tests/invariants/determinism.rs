//! The same operation sequence gives the same effects and the same snapshot, byte for byte:
//! nothing the coordinator emits depends on hash order or on anything but its inputs
//! (ARCHITECTURE.md principle 1, deterministic simulation).

use proptest::strategy::ValueTree;
use proptest::test_runner::{RngAlgorithm, TestRng, TestRunner};

use super::*;

/// Everything that came out of a run, as text: every effect in order, then the snapshot a
/// compaction would write.
fn trace(ops: Vec<Op>, unlock: Unlock) -> Result<String, TestCaseError> {
    let h = run(ops, unlock, &mut Nothing)?;
    Ok(format!("{:?}\n{:?}", h.trace, h.tc.snapshot_records()))
}

/// The run a seed stands for.
fn seeded_run(seed: u8) -> (Vec<Op>, Unlock) {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(proptest_config(), rng);
    match runs().new_tree(&mut runner) {
        Ok(tree) => tree.current(),
        Err(reason) => panic!("cannot generate a run: {reason}"),
    }
}

#[test]
fn the_same_seed_gives_the_same_effects() {
    for seed in 0..16 {
        let (ops, unlock) = seeded_run(seed);
        let (again, _) = seeded_run(seed);
        assert_eq!(format!("{ops:?}"), format!("{again:?}"), "seed {seed}");
        let first = trace(ops.clone(), unlock).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let second = trace(ops, unlock).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(first, second, "seed {seed}");
    }
}

proptest! {
    #![proptest_config(proptest_config())]

    #[test]
    fn the_same_sequence_gives_the_same_effects((ops, unlock) in runs()) {
        let first = trace(ops.clone(), unlock)?;
        let second = trace(ops, unlock)?;
        prop_assert_eq!(first, second);
    }
}
