//! What the writer does when a shared store refuses a write (a lost race with another node,
//! a row another node's transaction holds): the answers and phase-2 requests that depended on
//! it never go out, the requester gets the answer the refusal calls for, and the core is told.
//! On an exclusive store every write applies; a refusal there is a bug, logged and asserted.

use std::collections::{HashSet, VecDeque};

use ferrata_core::{Record, Refusal, TransactionId};
use ferrata_store::{Condition, OpOutcome, StoreOp};

/// Transactions with a refused write, remembered so that phase-2 requests the core sent
/// before it learnt of the refusal are held back too. Bounded: the core forgets such a
/// transaction as soon as it is told, so only the newest few can still have requests coming.
#[derive(Debug, Default)]
pub(crate) struct RecentlyRefused {
    set: HashSet<TransactionId>,
    order: VecDeque<TransactionId>,
}

/// Refused transactions remembered at most.
const REMEMBERED: usize = 65_536;

impl RecentlyRefused {
    pub(crate) fn insert(&mut self, transaction_id: TransactionId) {
        if self.set.insert(transaction_id) {
            self.order.push_back(transaction_id);
            if self.order.len() > REMEMBERED
                && let Some(oldest) = self.order.pop_front()
            {
                self.set.remove(&oldest);
            }
        }
    }

    pub(crate) fn contains(&self, transaction_id: TransactionId) -> bool {
        self.set.contains(&transaction_id)
    }
}

/// What a store outcome means for the core, on a shared store: `None` when the write applied,
/// or when it was an unconditional write of something already gone (removing what another
/// node removed).
pub(crate) fn refusal(op: &StoreOp, outcome: &OpOutcome) -> Option<Refusal> {
    match outcome {
        OpOutcome::Applied => None,
        OpOutcome::NotFound => match op.condition {
            Condition::GlobalStatusIs(_) => Some(Refusal::Gone),
            Condition::Always => None,
        },
        OpOutcome::StatusMismatch { actual } => Some(Refusal::StatusChanged { actual: *actual }),
        OpOutcome::LockConflict(row) => Some(Refusal::RowLocked {
            table: row.table.clone(),
            pk: row.pk.clone(),
            holder: row.transaction_id,
        }),
        OpOutcome::Unstorable { reason } => Some(Refusal::Unstorable {
            reason: reason.clone(),
        }),
    }
}

/// Whether the core forgets the transaction on this refusal (see
/// `Coordinator::store_refused`): then none of its phase-2 requests may go out any more.
pub(crate) fn forgets_transaction(record: &Record, refusal: &Refusal) -> bool {
    match refusal {
        Refusal::StatusChanged { .. } | Refusal::Gone => true,
        Refusal::Unstorable { .. } => matches!(record, Record::GlobalAdd(_)),
        Refusal::RowLocked { .. } => false,
    }
}

/// How a refused transaction is named in the answer that replaces the one it would have had.
pub(crate) fn describe(record: &Record) -> String {
    match record {
        Record::GlobalAdd(global) => global.xid.clone(),
        other => match other.transaction_id() {
            Some(id) => format!("transaction {id}"),
            None => "an id reservation".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remembered_set_is_bounded_and_keeps_the_newest() {
        let mut refused = RecentlyRefused::default();
        for id in 0..(REMEMBERED as i64 + 10) {
            refused.insert(TransactionId(id));
        }
        assert!(!refused.contains(TransactionId(0)));
        assert!(refused.contains(TransactionId(REMEMBERED as i64 + 9)));
        assert_eq!(refused.set.len(), REMEMBERED);
    }

    #[test]
    fn removing_what_is_gone_is_no_refusal_but_a_lost_condition_is() {
        let record = Record::GlobalRemove {
            transaction_id: TransactionId(1),
        };
        assert_eq!(
            refusal(&StoreOp::put(record.clone()), &OpOutcome::NotFound),
            None
        );
        assert_eq!(
            refusal(
                &StoreOp::if_status(record, ferrata_proto::GlobalStatus::Begin),
                &OpOutcome::NotFound
            ),
            Some(Refusal::Gone)
        );
    }
}
