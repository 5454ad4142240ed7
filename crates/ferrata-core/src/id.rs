//! Transaction and branch ids: Seata's snowflake layout (semantics §1.1) — a 10-bit worker id
//! above a 53-bit counter seeded from the clock and incremented once per id. Ids are handed out
//! from reserved blocks whose upper end is logged first, so a clock that goes back across a
//! restart cannot make ids (and so XIDs, fence rows and undo logs) repeat.

/// Milliseconds since the Unix epoch of 2020-05-03T00:00:00Z, Seata's id epoch.
const ID_EPOCH_MS: i64 = 1_588_435_200_000;
const WORKER_BITS: u32 = 10;
const COUNTER_BITS: u32 = 53;
const SEQUENCE_BITS: u32 = 12;
const COUNTER_MASK: i64 = (1 << COUNTER_BITS) - 1;
/// Ids reserved per logged reservation: about one record per second at 1M ids/s.
pub const ID_RESERVATION_BLOCK: i64 = 1 << 20;

/// A global transaction's id: the number after the last `:` of its XID. Displays as the bare
/// number, as in XIDs and on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TransactionId(pub i64);

/// A branch's id, drawn from the same generator (and so unique across transactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct BranchId(pub i64);

impl std::fmt::Display for TransactionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Display for BranchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Hands out unique positive 64-bit ids.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    worker_bits: i64,
    counter: i64,
    /// Counter values below this are covered by a reservation (logged or about to be).
    reserved_until: i64,
    /// A reservation made by `next_id` that the caller has not yet logged.
    unlogged_reservation: Option<i64>,
    /// The highest reservation logged or recovered (0: none yet).
    last_reservation: i64,
}

impl IdGenerator {
    /// `worker_id` is taken modulo 1024; `now_ms` seeds the counter.
    pub fn new(worker_id: u16, now_ms: i64) -> IdGenerator {
        let worker = i64::from(worker_id) & ((1 << WORKER_BITS) - 1);
        let elapsed = (now_ms - ID_EPOCH_MS).max(0);
        let counter = (elapsed << SEQUENCE_BITS) & COUNTER_MASK;
        IdGenerator {
            worker_bits: worker << COUNTER_BITS,
            counter,
            reserved_until: counter,
            unlogged_reservation: None,
            last_reservation: 0,
        }
    }

    /// The next id. When it starts a new block, [`IdGenerator::take_reservation`] returns the
    /// block's end, which must be made durable before the id is revealed to anyone.
    pub fn next_id(&mut self) -> i64 {
        if self.counter >= self.reserved_until {
            self.reserved_until = (self.counter + ID_RESERVATION_BLOCK).min(COUNTER_MASK);
            self.unlogged_reservation = Some(self.worker_bits | self.reserved_until);
        }
        let id = self.worker_bits | self.counter;
        self.counter = (self.counter + 1) & COUNTER_MASK;
        id
    }

    /// The reservation to log (as `Record::IdReserve`), once per block.
    pub fn take_reservation(&mut self) -> Option<i64> {
        let taken = self.unlogged_reservation.take();
        if let Some(end) = taken {
            self.last_reservation = self.last_reservation.max(end);
        }
        taken
    }

    /// The highest reservation logged or recovered, for snapshots; `None` before the first.
    pub fn last_reservation(&self) -> Option<i64> {
        (self.last_reservation > 0).then_some(self.last_reservation)
    }

    /// Makes sure later ids are above `id` (after recovery, ids seen in the log must not repeat).
    pub fn observe(&mut self, id: i64) {
        if id & !COUNTER_MASK == self.worker_bits {
            let counter = id & COUNTER_MASK;
            if counter >= self.counter {
                self.counter = (counter + 1) & COUNTER_MASK;
                self.reserved_until = self.reserved_until.max(self.counter);
            }
        }
    }

    /// Makes sure later ids are at or above a logged reservation end (`Record::IdReserve`).
    pub fn observe_reservation(&mut self, next_free_id: i64) {
        if next_free_id > 0 {
            self.observe(next_free_id - 1);
            self.last_reservation = self.last_reservation.max(next_free_id);
        }
    }
}

/// Ids per range a node reserves from a shared store.
pub const STORE_RANGE_IDS: i64 = 1 << 20;

/// Ids from ranges that a shared store reserved for this node (no two nodes are ever given the
/// same range), used in order. Asks for the next range while half of the current one is left,
/// so a busy node does not run dry while the store answers.
#[derive(Debug, Clone, Default)]
pub struct IdRanges {
    current: std::ops::Range<i64>,
    spare: Option<std::ops::Range<i64>>,
    /// A range was asked for and has not arrived.
    asked: bool,
}

impl IdRanges {
    /// The next id, or `None` when every reserved id is used.
    pub fn next_id(&mut self) -> Option<i64> {
        if self.current.is_empty() {
            self.current = self.spare.take()?;
        }
        self.current.next()
    }

    /// A range the store reserved.
    pub fn add(&mut self, range: std::ops::Range<i64>) {
        self.asked = false;
        if range.is_empty() {
            return;
        }
        if self.current.is_empty() {
            self.current = range;
        } else {
            debug_assert!(
                self.spare.is_none(),
                "a range arrived that was not asked for"
            );
            self.spare = Some(range);
        }
    }

    /// How many ids to ask the store for now, once per range (`None`: enough left, or asked).
    pub fn wanted(&mut self) -> Option<i64> {
        let low =
            self.spare.is_none() && self.current.end - self.current.start < STORE_RANGE_IDS / 2;
        if low && !self.asked {
            self.asked = true;
            return Some(STORE_RANGE_IDS);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_ranges_are_used_in_order_and_the_next_is_asked_for_at_half() {
        let mut ids = IdRanges::default();
        assert_eq!(ids.next_id(), None, "nothing reserved yet");
        assert_eq!(ids.wanted(), Some(STORE_RANGE_IDS));
        assert_eq!(ids.wanted(), None, "asked once");
        ids.add(100..100 + STORE_RANGE_IDS);
        assert_eq!(ids.next_id(), Some(100));
        assert_eq!(ids.wanted(), None, "a whole range is left");
        for _ in 0..STORE_RANGE_IDS / 2 {
            ids.next_id();
        }
        assert_eq!(
            ids.wanted(),
            Some(STORE_RANGE_IDS),
            "half used: ask for the next"
        );
        ids.add(5_000_000..5_000_000 + STORE_RANGE_IDS);
        let mut last = 0;
        while let Some(id) = ids.next_id() {
            assert!(id > last, "ids grow within and across ranges");
            last = id;
            if id == 5_000_000 {
                break;
            }
        }
        assert_eq!(last, 5_000_000, "the spare range follows the first");
    }

    #[test]
    fn ids_are_positive_unique_and_carry_the_worker() {
        let mut ids = IdGenerator::new(7, 1_700_000_000_000);
        let a = ids.next_id();
        let b = ids.next_id();
        assert!(a > 0 && b == a + 1);
        assert_eq!(a >> COUNTER_BITS, 7);
    }

    #[test]
    fn observed_ids_are_not_reused() {
        let mut ids = IdGenerator::new(1, 1_700_000_000_000);
        let seen = ids.next_id() + 1000;
        ids.observe(seen);
        assert!(ids.next_id() > seen);
        let mut other_worker = IdGenerator::new(2, 1_700_000_000_000);
        let before = other_worker.clone().next_id();
        other_worker.observe(seen);
        assert_eq!(other_worker.next_id(), before);
    }

    #[test]
    fn each_block_is_reserved_once_before_its_first_id() {
        let mut ids = IdGenerator::new(3, 1_700_000_000_000);
        let first = ids.next_id();
        let reserved = ids.take_reservation().expect("the first id opens a block");
        assert_eq!(reserved, first + ID_RESERVATION_BLOCK);
        assert_eq!(ids.take_reservation(), None, "logged once");
        for _ in 1..ID_RESERVATION_BLOCK {
            assert!(ids.next_id() < reserved);
        }
        assert_eq!(ids.take_reservation(), None);
        assert_eq!(
            ids.next_id(),
            reserved,
            "the next block starts at the old end"
        );
        assert_eq!(
            ids.take_reservation(),
            Some(reserved + ID_RESERVATION_BLOCK)
        );
    }

    #[test]
    fn a_logged_reservation_wins_over_a_clock_that_went_back() {
        let mut before = IdGenerator::new(3, 1_700_000_000_000);
        let used = before.next_id();
        let logged = before.take_reservation().expect("reservation");
        // Restart an hour earlier by the clock.
        let mut after = IdGenerator::new(3, 1_700_000_000_000 - 3_600_000);
        after.observe_reservation(logged);
        let next = after.next_id();
        assert!(
            next > used && next >= logged,
            "{next} must not repeat {used}"
        );
    }
}
