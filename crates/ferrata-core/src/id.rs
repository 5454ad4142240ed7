//! Transaction and branch ids: Seata's snowflake layout (semantics §1.1) — a 10-bit worker id
//! above a 53-bit counter seeded from the clock and incremented once per id.

/// Milliseconds since the Unix epoch of 2020-05-03T00:00:00Z, Seata's id epoch.
const ID_EPOCH_MS: i64 = 1_588_435_200_000;
const WORKER_BITS: u32 = 10;
const COUNTER_BITS: u32 = 53;
const SEQUENCE_BITS: u32 = 12;

/// Hands out unique positive 64-bit ids.
#[derive(Debug, Clone)]
pub struct IdGenerator {
    worker_bits: i64,
    counter: i64,
}

impl IdGenerator {
    /// `worker_id` is taken modulo 1024; `now_ms` seeds the counter.
    pub fn new(worker_id: u16, now_ms: i64) -> IdGenerator {
        let worker = i64::from(worker_id) & ((1 << WORKER_BITS) - 1);
        let elapsed = (now_ms - ID_EPOCH_MS).max(0);
        IdGenerator {
            worker_bits: worker << COUNTER_BITS,
            counter: (elapsed << SEQUENCE_BITS) & ((1 << COUNTER_BITS) - 1),
        }
    }

    pub fn next_id(&mut self) -> i64 {
        let id = self.worker_bits | self.counter;
        self.counter = (self.counter + 1) & ((1 << COUNTER_BITS) - 1);
        id
    }

    /// Makes sure later ids are above `id` (after recovery, ids seen in the log must not repeat).
    pub fn observe(&mut self, id: i64) {
        if id & !((1 << COUNTER_BITS) - 1) == self.worker_bits {
            let counter = id & ((1 << COUNTER_BITS) - 1);
            if counter >= self.counter {
                self.counter = (counter + 1) & ((1 << COUNTER_BITS) - 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
