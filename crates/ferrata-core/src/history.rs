//! What happened to a transaction while this coordinator held it (status changes, branch
//! registrations, phase-2 requests and the RMs' answers, operators' actions), for the admin
//! API. Kept in memory only, bounded per transaction: the first entries and the latest.

use ferrata_proto::GlobalStatus;

use crate::effect::BranchOutcome;
use crate::id::BranchId;

/// Entries kept from the start of a transaction's history (its registrations, usually).
const KEEP_FIRST: usize = 16;
/// Entries kept in all: beyond it, the oldest entry after the first 16 (`KEEP_FIRST`) goes.
pub const MAX_ENTRIES: usize = 64;

/// Which phase-2 request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase2Kind {
    Commit,
    Rollback,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Taken over from the store (at start, or from a node whose lease lapsed) in `status`.
    Recovered {
        status: GlobalStatus,
    },
    Status(GlobalStatus),
    BranchRegistered {
        branch_id: BranchId,
    },
    Phase2Sent {
        branch_id: BranchId,
        kind: Phase2Kind,
    },
    Phase2Answered {
        branch_id: BranchId,
        outcome: BranchOutcome,
    },
    /// An operator acted through the admin API.
    Operator {
        operator: String,
        action: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at_ms: i64,
    pub event: Event,
}

/// A bounded history (empty, and unallocated, until something happens after the begin).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<Entry>,
    dropped: u32,
}

impl History {
    pub(crate) fn push(&mut self, at_ms: i64, event: Event) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.remove(KEEP_FIRST);
            self.dropped = self.dropped.saturating_add(1);
        }
        self.entries.push(Entry { at_ms, event });
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// Entries left out (between the first ones and the latest) once the bound was reached.
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// When `branch_id` registered, if that entry is still here.
    pub fn registered_at_ms(&self, branch_id: BranchId) -> Option<i64> {
        self.entries.iter().find_map(|entry| match entry.event {
            Event::BranchRegistered { branch_id: b } if b == branch_id => Some(entry.at_ms),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_entries_and_the_latest() {
        let mut history = History::default();
        for at in 0..(MAX_ENTRIES as i64 + 10) {
            history.push(at, Event::Status(GlobalStatus::CommitRetrying));
        }
        assert_eq!(history.entries().len(), MAX_ENTRIES);
        assert_eq!(history.dropped(), 10);
        assert_eq!(
            history.entries()[KEEP_FIRST - 1].at_ms,
            KEEP_FIRST as i64 - 1
        );
        assert_eq!(history.entries()[KEEP_FIRST].at_ms, KEEP_FIRST as i64 + 10);
        assert_eq!(
            history.entries().last().map(|e| e.at_ms),
            Some(MAX_ENTRIES as i64 + 9)
        );
    }
}
