//! Transaction counts for metrics, kept by the coordinator as plain state (no clock, no
//! recorder): how many transactions each application and transaction group began and how they
//! ended, in the shape of seata-server's `seata.transaction` meters (docs/operations.md).

use std::collections::BTreeMap;

use ferrata_proto::GlobalStatus;

use crate::model::GlobalSession;

/// What seata-server's metrics subscriber counts an ended transaction as (its `status` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SeataOutcome {
    /// `committed`: committed, or answered committed while AT undo logs are still removed.
    Committed,
    /// `rollbacked`: rolled back on the TM's request (a timeout rollback is not counted, as in
    /// Seata).
    Rollbacked,
    /// `failed`: CommitFailed or RollbackFailed.
    Failed,
    /// `2phaseTimeout`: CommitRetryTimeout or TimeoutRollbackFailed.
    TwoPhaseTimeout,
}

impl SeataOutcome {
    pub const ALL: [SeataOutcome; 4] = [
        SeataOutcome::Committed,
        SeataOutcome::Rollbacked,
        SeataOutcome::Failed,
        SeataOutcome::TwoPhaseTimeout,
    ];

    /// The value of Seata's `status` tag.
    pub const fn tag(self) -> &'static str {
        match self {
            SeataOutcome::Committed => "committed",
            SeataOutcome::Rollbacked => "rollbacked",
            SeataOutcome::Failed => "failed",
            SeataOutcome::TwoPhaseTimeout => "2phaseTimeout",
        }
    }

    /// The outcome Seata counts a transaction ending in `status` as; `None` when it only stops
    /// counting it as active (TimeoutRollbacked, RollbackRetryTimeout).
    pub const fn of(status: GlobalStatus) -> Option<SeataOutcome> {
        match status {
            GlobalStatus::Committed | GlobalStatus::AsyncCommitting => {
                Some(SeataOutcome::Committed)
            }
            GlobalStatus::Rollbacked => Some(SeataOutcome::Rollbacked),
            GlobalStatus::CommitFailed | GlobalStatus::RollbackFailed => Some(SeataOutcome::Failed),
            GlobalStatus::CommitRetryTimeout | GlobalStatus::TimeoutRollbackFailed => {
                Some(SeataOutcome::TwoPhaseTimeout)
            }
            _ => None,
        }
    }

    /// Whether Seata records the transaction's duration in a timer for this outcome.
    pub const fn is_timed(self) -> bool {
        !matches!(self, SeataOutcome::TwoPhaseTimeout)
    }
}

/// Durations of the transactions that ended with one outcome since the last scrape (Seata's
/// summary and timer meters reset when read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Window {
    pub count: u64,
    pub total_ms: u64,
    pub max_ms: u64,
}

impl Window {
    fn add(&mut self, duration_ms: u64) {
        self.count += 1;
        self.total_ms = self.total_ms.saturating_add(duration_ms);
        self.max_ms = self.max_ms.max(duration_ms);
    }
}

/// The counts of one (application, transaction group).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupCounts {
    /// Transactions begun since start (recovered and adopted ones are not counted).
    pub begun: u64,
    /// Ended transactions by final status since start (AsyncCommitting when answered committed
    /// counts once, as Committed, when its undo logs are gone).
    pub ended: BTreeMap<GlobalStatus, u64>,
    /// Seata's counters (cumulative) per outcome.
    pub outcomes: BTreeMap<SeataOutcome, u64>,
    /// Seata's summaries and timers: since the windows were last cleared (by a scrape).
    pub windows: BTreeMap<SeataOutcome, Window>,
    /// Transactions held and not yet ended in Seata's sense; filled in by the snapshot.
    pub active: u64,
}

/// Distinct (application, group) pairs counted apart; the rest share [`OTHER`].
pub const MAX_GROUPS: usize = 1_000;
/// The application and group names of the pairs beyond [`MAX_GROUPS`].
pub const OTHER: &str = "_other";

/// Counts per application id, then transaction service group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionCounts {
    groups: BTreeMap<String, BTreeMap<String, GroupCounts>>,
    /// Phase-2 passes that could not finish and were scheduled again, since start.
    pub phase2_retries: u64,
}

impl TransactionCounts {
    fn group(&mut self, application_id: &str, group: &str) -> &mut GroupCounts {
        // Clients choose the names: past MAX_GROUPS pairs, new ones are counted together.
        let known = self
            .groups
            .get(application_id)
            .is_some_and(|groups| groups.contains_key(group));
        let (application_id, group) = if known || self.pairs() < MAX_GROUPS {
            (application_id, group)
        } else {
            (OTHER, OTHER)
        };
        // Looked up by reference first: the names are only copied for a new pair.
        if !self
            .groups
            .get(application_id)
            .is_some_and(|groups| groups.contains_key(group))
        {
            self.groups
                .entry(application_id.to_owned())
                .or_default()
                .insert(group.to_owned(), GroupCounts::default());
        }
        self.groups
            .get_mut(application_id)
            .and_then(|groups| groups.get_mut(group))
            .expect("inserted above")
    }

    fn pairs(&self) -> usize {
        self.groups.values().map(BTreeMap::len).sum()
    }

    pub(crate) fn began(&mut self, application_id: &str, group: &str) {
        self.group(application_id, group).begun += 1;
    }

    /// Seata counts `global` as ended with the outcome of `status` (if it has one) at
    /// `now_ms`: its commit or rollback was answered, or failed for good.
    pub(crate) fn decided(&mut self, global: &GlobalSession, status: GlobalStatus, now_ms: i64) {
        if let Some(outcome) = SeataOutcome::of(status) {
            let duration_ms =
                u64::try_from(now_ms.saturating_sub(global.begin_time_ms)).unwrap_or(0);
            let counts = self.group(&global.application_id, &global.transaction_service_group);
            *counts.outcomes.entry(outcome).or_default() += 1;
            counts.windows.entry(outcome).or_default().add(duration_ms);
        }
    }

    /// `global` reached its final `status`.
    pub(crate) fn ended(&mut self, global: &GlobalSession, status: GlobalStatus) {
        let counts = self.group(&global.application_id, &global.transaction_service_group);
        *counts.ended.entry(status).or_default() += 1;
    }

    /// Empties the windows: the next scrape covers the time from now.
    pub(crate) fn clear_windows(&mut self) {
        for groups in self.groups.values_mut() {
            for counts in groups.values_mut() {
                counts.windows.clear();
            }
        }
    }

    pub(crate) fn set_active(&mut self, application_id: &str, group: &str, active: u64) {
        self.group(application_id, group).active = active;
    }

    /// (application id, transaction group, counts), ordered by names.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &GroupCounts)> {
        self.groups.iter().flat_map(|(application_id, groups)| {
            groups
                .iter()
                .map(move |(group, counts)| (application_id.as_str(), group.as_str(), counts))
        })
    }
}

/// What [`crate::Coordinator::take_metrics`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetricsSnapshot {
    pub transactions: TransactionCounts,
    pub sessions: usize,
    pub branches: usize,
    pub locked_rows: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_empty_when_taken_and_counters_stay() {
        let global = GlobalSession {
            transaction_id: crate::TransactionId(1),
            xid: "tc:1".to_owned(),
            status: GlobalStatus::Begin,
            application_id: "app".to_owned(),
            transaction_service_group: "group".to_owned(),
            transaction_name: "t".to_owned(),
            timeout_ms: 60_000,
            begin_time_ms: 1_000,
            application_data: String::new(),
        };
        let mut counts = TransactionCounts::default();
        counts.began("app", "group");
        counts.decided(&global, GlobalStatus::Committed, 1_007);
        counts.decided(&global, GlobalStatus::Committed, 1_003);
        counts.ended(&global, GlobalStatus::Committed);
        let first = counts.clone();
        counts.clear_windows();
        let (_, _, group) = first.iter().next().unwrap();
        assert_eq!(group.begun, 1);
        assert_eq!(group.ended[&GlobalStatus::Committed], 1);
        assert_eq!(group.outcomes[&SeataOutcome::Committed], 2);
        assert_eq!(
            group.windows[&SeataOutcome::Committed],
            Window {
                count: 2,
                total_ms: 10,
                max_ms: 7
            }
        );
        let second = counts.clone();
        let (_, _, group) = second.iter().next().unwrap();
        assert_eq!(group.outcomes[&SeataOutcome::Committed], 2);
        assert!(group.windows.is_empty());
    }

    #[test]
    fn names_beyond_the_limit_are_counted_together() {
        let mut counts = TransactionCounts::default();
        for n in 0..MAX_GROUPS + 5 {
            counts.began(&format!("app-{n}"), "group");
        }
        assert_eq!(counts.pairs(), MAX_GROUPS + 1);
        let other = counts.iter().find(|(a, g, _)| (*a, *g) == (OTHER, OTHER));
        assert_eq!(other.map(|(_, _, c)| c.begun), Some(5));
        counts.began("app-0", "group");
        let first = counts.iter().find(|(a, _, _)| *a == "app-0");
        assert_eq!(first.map(|(_, _, c)| c.begun), Some(2));
    }

    #[test]
    fn timeout_rollbacks_are_not_seata_rollbacks() {
        assert_eq!(SeataOutcome::of(GlobalStatus::TimeoutRollbacked), None);
        assert_eq!(SeataOutcome::of(GlobalStatus::RollbackRetryTimeout), None);
        assert_eq!(
            SeataOutcome::of(GlobalStatus::TimeoutRollbackFailed),
            Some(SeataOutcome::TwoPhaseTimeout)
        );
    }
}
