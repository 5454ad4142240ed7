//! Open-loop arrivals: a fixed total rate split evenly over lanes (connections or workers),
//! each lane's start times staggered so that the lanes do not fire in lockstep. Times are
//! computed from the index, not accumulated, so they do not drift.

use std::time::{Duration, Instant};

/// The intended start times of one lane.
#[derive(Debug, Clone)]
pub struct Pacer {
    first: Instant,
    /// Seconds between two starts of this lane.
    interval_secs: f64,
    index: u64,
    end: Instant,
}

impl Pacer {
    /// Lane `lane` of `lanes` sharing `rate` transactions per second in total, from `origin`
    /// until (excluding) `end`.
    pub fn new(origin: Instant, rate: f64, lanes: usize, lane: usize, end: Instant) -> Pacer {
        let lanes = lanes.max(1) as f64;
        let interval_secs = if rate > 0.0 { lanes / rate } else { f64::MAX };
        let stagger = interval_secs * (lane as f64) / lanes;
        Pacer {
            first: origin + secs(stagger),
            interval_secs,
            index: 0,
            end,
        }
    }

    /// The next intended start, or `None` once the schedule has passed `end`.
    pub fn next_due(&self) -> Option<Instant> {
        let at = self.first + secs(self.interval_secs * self.index as f64);
        (at < self.end).then_some(at)
    }

    /// If a start is due at `now`, consumes it and returns its intended time.
    pub fn take_due(&mut self, now: Instant) -> Option<Instant> {
        let due = self.next_due().filter(|at| *at <= now)?;
        self.index += 1;
        Some(due)
    }
}

fn secs(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(86_400 * 365))
}

/// How many of `total` closed-loop drivers lane `lane` of `lanes` runs (spread evenly).
pub fn share(total: usize, lanes: usize, lane: usize) -> usize {
    let lanes = lanes.max(1);
    total / lanes + usize::from(lane < total % lanes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_split_the_rate_and_are_staggered() {
        let origin = Instant::now();
        let end = origin + Duration::from_secs(1);
        // 1000 tx/s over 4 lanes: every 4 ms per lane, lane 1 offset by 1 ms.
        let mut lane0 = Pacer::new(origin, 1000.0, 4, 0, end);
        let mut lane1 = Pacer::new(origin, 1000.0, 4, 1, end);
        assert_eq!(lane0.next_due(), Some(origin));
        assert_eq!(lane1.next_due(), Some(origin + Duration::from_millis(1)));
        assert_eq!(lane0.take_due(origin), Some(origin));
        assert_eq!(lane0.take_due(origin), None, "next one is 4 ms later");
        assert_eq!(lane1.take_due(origin), None);
        let later = origin + Duration::from_millis(9);
        // A late wake-up catches up one intended start at a time, each with its own time.
        assert_eq!(
            lane0.take_due(later),
            Some(origin + Duration::from_millis(4))
        );
        assert_eq!(
            lane0.take_due(later),
            Some(origin + Duration::from_millis(8))
        );
        assert_eq!(lane0.take_due(later), None);
    }

    #[test]
    fn schedule_stops_at_end_and_counts_match_the_rate() {
        let origin = Instant::now();
        let end = origin + Duration::from_secs(2);
        let total: usize = (0..3)
            .map(|lane| {
                let mut p = Pacer::new(origin, 300.0, 3, lane, end);
                let mut n = 0;
                while p.take_due(end + Duration::from_secs(10)).is_some() {
                    n += 1;
                }
                n
            })
            .sum();
        assert_eq!(total, 600);
    }

    #[test]
    fn closed_loop_shares_spread_evenly() {
        assert_eq!(
            (0..4).map(|l| share(10, 4, l)).collect::<Vec<_>>(),
            [3, 3, 2, 2]
        );
        assert_eq!((0..3).map(|l| share(3, 3, l)).sum::<usize>(), 3);
        assert_eq!(share(5, 0, 0), 5);
    }
}
