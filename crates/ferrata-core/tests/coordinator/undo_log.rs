//! Periodic undo-log cleanup requests (§1.7, §4.10).

use super::*;

#[test]
fn undo_log_cleanup_runs_after_the_initial_delay_then_every_period() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        undo_log_delete_initial_delay_ms: 180_000,
        undo_log_delete_period_ms: Some(86_400_000),
        undo_log_save_days: 3,
        ..config()
    });
    assert_eq!(h.tc.next_deadline_ms(), Some(T0 + 180_000));
    h.tc.tick(T0 + 179_999);
    h.assert_quiet();
    h.tc.tick(T0 + 180_000);
    assert_eq!(h.effects(), vec![Effect::UndoLogDelete { save_days: 3 }]);
    h.tc.tick(T0 + 180_001);
    h.assert_quiet();
    let next = T0 + 180_000 + 86_400_000;
    assert_eq!(h.tc.next_deadline_ms(), Some(next));
    h.tc.tick(next - 1);
    h.assert_quiet();
    h.tc.tick(next);
    assert_eq!(h.effects(), vec![Effect::UndoLogDelete { save_days: 3 }]);
}

#[test]
fn undo_log_cleanup_comes_after_due_transaction_work_in_a_tick() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        undo_log_delete_initial_delay_ms: 1_000,
        undo_log_delete_period_ms: Some(1_000),
        ..config()
    });
    let tx = h.begin(T0, 500);
    h.tc.tick(T0 + 1_000);
    assert_eq!(
        h.effects(),
        vec![
            update(&tx, GlobalStatus::TimeoutRollbacking),
            remove_global(&tx),
            Effect::UndoLogDelete { save_days: 7 },
        ]
    );
}

#[test]
fn a_negative_period_disables_undo_log_cleanup() {
    let mut h = Harness::with_config(ferrata_core::CoordinatorConfig {
        undo_log_delete_initial_delay_ms: 0,
        undo_log_delete_period_ms: None,
        ..config()
    });
    for now in [T0, T0 + 180_000, T0 + 86_400_000 * 30] {
        h.tc.tick(now);
        h.assert_quiet();
    }
}
