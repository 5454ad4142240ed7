//! Seata 2.4's GlobalBegin rate limit (`server.ratelimit.*`): a token bucket refilled
//! continuously at `tokens_per_second` up to `max_tokens`, starting with `initial_tokens`.
//! Time is an input (milliseconds); a clock that goes back refills nothing.

use crate::config::RateLimit;

/// Thousandths of a token, so refills at millisecond granularity stay exact.
const MILLI: u64 = 1_000;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    milli_tokens: u64,
    refilled_at_ms: i64,
}

impl TokenBucket {
    pub fn new(limit: RateLimit, now_ms: i64) -> TokenBucket {
        TokenBucket {
            limit,
            milli_tokens: u64::from(limit.initial_tokens.min(limit.max_tokens)) * MILLI,
            refilled_at_ms: now_ms,
        }
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now_ms: i64) -> bool {
        let elapsed_ms = u64::try_from(now_ms.saturating_sub(self.refilled_at_ms)).unwrap_or(0);
        if elapsed_ms > 0 {
            // tokens/s × ms = thousandths of a token.
            let refill = elapsed_ms.saturating_mul(u64::from(self.limit.tokens_per_second));
            let cap = u64::from(self.limit.max_tokens) * MILLI;
            self.milli_tokens = self.milli_tokens.saturating_add(refill).min(cap);
        }
        // Never move the refill point back: a clock jump backwards must not mint tokens later.
        self.refilled_at_ms = self.refilled_at_ms.max(now_ms);
        if self.milli_tokens >= MILLI {
            self.milli_tokens -= MILLI;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(per_second: u32, max: u32, initial: u32) -> TokenBucket {
        TokenBucket::new(
            RateLimit {
                tokens_per_second: per_second,
                max_tokens: max,
                initial_tokens: initial,
            },
            1_000,
        )
    }

    #[test]
    fn starts_with_the_initial_tokens_and_refills_at_the_rate() {
        let mut b = bucket(10, 5, 2);
        assert!(b.try_take(1_000));
        assert!(b.try_take(1_000));
        assert!(!b.try_take(1_000), "initial tokens spent");
        assert!(!b.try_take(1_099), "0.99 of a token after 99 ms at 10/s");
        assert!(b.try_take(1_100), "one token after 100 ms");
        // A long pause fills the bucket only up to its maximum.
        let taken = (0..20).filter(|_| b.try_take(60_000)).count();
        assert_eq!(taken, 5);
    }

    #[test]
    fn a_clock_going_back_refills_nothing() {
        let mut b = bucket(1_000, 1, 1);
        assert!(b.try_take(1_000));
        assert!(!b.try_take(500));
        assert!(!b.try_take(1_000), "no refill for time already counted");
        assert!(b.try_take(1_001));
    }
}
