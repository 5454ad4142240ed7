//! Transaction counts for metrics: what began, how it ended in seata-server's terms (its
//! `seata.transaction` meters: committed, rollbacked, failed, 2phaseTimeout with durations), and
//! what is still active, per application and transaction group.

use super::*;
use ferrata_core::{GroupCounts, SeataOutcome, Window};

fn counts(h: &mut Harness) -> GroupCounts {
    let snapshot = h.tc.take_metrics();
    let mut groups = snapshot.transactions.iter();
    let (application_id, group, counts) = groups.next().expect("one group");
    assert_eq!((application_id, group), (APP, GROUP));
    assert!(groups.next().is_none());
    counts.clone()
}

#[test]
fn commits_rollbacks_and_open_transactions_are_counted_with_durations() {
    let mut h = Harness::new();
    let committed = h.begin(T0, 60_000);
    let rolled_back = h.begin(T0, 60_000);
    let open = h.begin(T0, 60_000);
    h.commit(T0 + 40, 1, &committed.xid);
    h.rollback(2, &rolled_back.xid);
    h.effects();
    let counts = counts(&mut h);
    assert_eq!(counts.begun, 3);
    assert_eq!(counts.active, 1, "{open:?} is still open");
    assert_eq!(counts.outcomes[&SeataOutcome::Committed], 1);
    assert_eq!(counts.outcomes[&SeataOutcome::Rollbacked], 1);
    assert_eq!(
        counts.windows[&SeataOutcome::Committed],
        Window {
            count: 1,
            total_ms: 40,
            max_ms: 40
        }
    );
    assert_eq!(counts.ended[&GlobalStatus::Committed], 1);
    assert_eq!(counts.ended[&GlobalStatus::Rollbacked], 1);
    // Windows cover the time since the last snapshot; counters keep growing.
    let again = self::counts(&mut h);
    assert!(again.windows.is_empty());
    assert_eq!(again.outcomes, counts.outcomes);
}

#[test]
fn an_at_commit_counts_when_answered_and_ends_once_its_branches_are_done() {
    let mut h = Harness::new();
    let tx = h.begin(T0, 60_000);
    let branch = h.at(&tx, "orders:1");
    h.commit(T0 + 5, 1, &tx.xid);
    h.effects();
    let answered = counts(&mut h);
    assert_eq!(answered.outcomes[&SeataOutcome::Committed], 1);
    assert_eq!(answered.active, 0);
    assert!(answered.ended.is_empty());
    h.tc.branch_result(T0 + 9, tx.id, branch, COMMITTED);
    h.effects();
    let finished = counts(&mut h);
    assert_eq!(finished.outcomes[&SeataOutcome::Committed], 1);
    assert_eq!(finished.ended[&GlobalStatus::Committed], 1);
}

#[test]
fn failures_and_timeouts_are_counted_as_seata_does() {
    let mut h = Harness::new();
    let failed = h.begin(T0, 60_000);
    let branch = h.tcc(&failed, "debit");
    h.commit(T0 + 10, 1, &failed.xid);
    h.tc.branch_result(T0 + 20, failed.id, branch, COMMIT_UNRETRYABLE);
    h.effects();
    let timed_out = h.begin(T0, 1_000);
    h.tc.tick(T0 + 2_000);
    h.effects();
    let counts = counts(&mut h);
    assert_eq!(counts.outcomes[&SeataOutcome::Failed], 1);
    assert_eq!(counts.windows[&SeataOutcome::Failed].max_ms, 20);
    assert_eq!(counts.ended[&GlobalStatus::CommitFailed], 1);
    // A timeout rollback is not a `rollbacked` in Seata's meters; it ends all the same.
    assert!(!counts.outcomes.contains_key(&SeataOutcome::Rollbacked));
    assert_eq!(
        counts.ended[&GlobalStatus::TimeoutRollbacked],
        1,
        "{timed_out:?}"
    );
    // The failed session stays for an operator, but is no longer active.
    assert_eq!(counts.active, 0);
    assert_eq!(h.tc.stats().sessions, 1);
}
