//! The branches of one global transaction in registration order, with lookup, update and removal
//! by branch id in logarithmic time, so phase 2, reports and recovery of a transaction with tens
//! of thousands of branches do constant work per branch instead of a scan.

use std::collections::{BTreeMap, HashMap};

use crate::id::BranchId;
use crate::model::BranchSession;

/// Branches in registration order, indexed by branch id.
#[derive(Clone, Default)]
pub struct Branches {
    /// Registration sequence number → branch; iteration order is registration order.
    by_order: BTreeMap<u64, BranchSession>,
    /// Branch id → its registration sequence number.
    order_of: HashMap<BranchId, u64>,
    next_order: u64,
}

impl Branches {
    pub fn new() -> Branches {
        Branches::default()
    }

    pub fn len(&self) -> usize {
        self.by_order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_order.is_empty()
    }

    /// Branches in registration order (reverse it for rollback order).
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &BranchSession> + ExactSizeIterator {
        self.by_order.values()
    }

    /// Branch ids in registration order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = BranchId> + '_ {
        self.by_order.values().map(|b| b.branch_id)
    }

    pub fn get(&self, branch_id: BranchId) -> Option<&BranchSession> {
        let order = self.order_of.get(&branch_id)?;
        self.by_order.get(order)
    }

    pub fn get_mut(&mut self, branch_id: BranchId) -> Option<&mut BranchSession> {
        let order = self.order_of.get(&branch_id)?;
        self.by_order.get_mut(order)
    }

    /// Appends a branch, or replaces the branch with the same id where it stands.
    pub fn insert(&mut self, branch: BranchSession) {
        match self.order_of.get(&branch.branch_id) {
            Some(order) => {
                self.by_order.insert(*order, branch);
            }
            None => {
                let order = self.next_order;
                self.next_order += 1;
                self.order_of.insert(branch.branch_id, order);
                self.by_order.insert(order, branch);
            }
        }
        debug_assert_eq!(self.by_order.len(), self.order_of.len());
    }

    pub fn remove(&mut self, branch_id: BranchId) -> Option<BranchSession> {
        let order = self.order_of.remove(&branch_id)?;
        let removed = self.by_order.remove(&order);
        debug_assert!(removed.is_some(), "branch index out of mirror");
        removed
    }

    pub fn first(&self) -> Option<&BranchSession> {
        self.by_order.values().next()
    }
}

impl FromIterator<BranchSession> for Branches {
    fn from_iter<I: IntoIterator<Item = BranchSession>>(iter: I) -> Branches {
        let mut branches = Branches::new();
        for branch in iter {
            branches.insert(branch);
        }
        branches
    }
}

impl IntoIterator for Branches {
    type Item = BranchSession;
    type IntoIter = std::collections::btree_map::IntoValues<u64, BranchSession>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_order.into_values()
    }
}

impl<'a> IntoIterator for &'a Branches {
    type Item = &'a BranchSession;
    type IntoIter = std::collections::btree_map::Values<'a, u64, BranchSession>;

    fn into_iter(self) -> Self::IntoIter {
        self.by_order.values()
    }
}

/// Two lists are equal when they hold the same branches in the same order.
impl PartialEq for Branches {
    fn eq(&self, other: &Branches) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Branches {}

impl std::fmt::Debug for Branches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrata_proto::{BranchStatus, BranchType};

    fn branch(id: i64) -> BranchSession {
        BranchSession {
            branch_id: BranchId(id),
            transaction_id: crate::id::TransactionId(1),
            resource_id: "r".into(),
            lock_key: String::new(),
            branch_type: BranchType::Tcc,
            status: BranchStatus::Registered,
            client_id: "c".into(),
            application_data: String::new(),
        }
    }

    #[test]
    fn keeps_registration_order_through_removals_and_replacements() {
        // Ids deliberately not in registration order.
        let mut list: Branches = [30, 10, 20, 40].into_iter().map(branch).collect();
        assert!(list.remove(BranchId(10)).is_some());
        assert!(list.remove(BranchId(10)).is_none());
        let mut updated = branch(20);
        updated.status = BranchStatus::PhaseOneDone;
        list.insert(updated);
        list.insert(branch(5));
        assert_eq!(
            list.ids().map(|id| id.0).collect::<Vec<_>>(),
            [30, 20, 40, 5]
        );
        assert_eq!(
            list.ids().rev().map(|id| id.0).collect::<Vec<_>>(),
            [5, 40, 20, 30]
        );
        assert_eq!(
            list.get(BranchId(20)).map(|b| b.status),
            Some(BranchStatus::PhaseOneDone)
        );
        assert_eq!(list.len(), 4);
        let same: Branches = [30, 20, 40, 5]
            .into_iter()
            .map(|id| {
                list.get(BranchId(id))
                    .cloned()
                    .unwrap_or_else(|| branch(id))
            })
            .collect();
        assert_eq!(list, same);
    }
}
