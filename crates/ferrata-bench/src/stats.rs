//! What a run measures: latency histograms (hdrhistogram, microseconds) per request type,
//! error counts by kind and transaction counts. Each task records into its own [`Recorder`]
//! without locks; the recorders are merged once at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Request-type names used as latency keys (the JSON contract of `latency_us`).
pub mod kind {
    pub const BEGIN: &str = "begin";
    pub const BRANCH_REGISTER: &str = "branch_register";
    pub const COMMIT: &str = "commit";
    pub const ROLLBACK: &str = "rollback";
    pub const NEW_GID: &str = "new_gid";
    pub const SUBMIT: &str = "submit";
    /// A whole transaction, from its (intended) start to its last answer.
    pub const TRANSACTION: &str = "transaction";
    /// Open loop only: how late the generator started transactions against their schedule
    /// (timer granularity, or the in-flight cap); already included in `transaction`.
    pub const START_LAG: &str = "start_lag";

    /// The order the table prints them in.
    pub const DISPLAY_ORDER: [&str; 8] = [
        BEGIN,
        NEW_GID,
        SUBMIT,
        BRANCH_REGISTER,
        COMMIT,
        ROLLBACK,
        TRANSACTION,
        START_LAG,
    ];
}

/// 3 significant digits: p99.9 of a 1 ms distribution is resolved to 1 µs.
const SIGNIFICANT_DIGITS: u8 = 3;

/// Counts of a run (or of one task's part of it).
#[derive(Debug, Clone, Default)]
pub struct Stats {
    latency: BTreeMap<&'static str, Histogram<u64>>,
    errors: BTreeMap<String, u64>,
    /// Transactions that completed successfully.
    pub transactions: u64,
    /// Lock conflicts answered to branch registrations (retried, so not errors).
    pub conflicts: u64,
    /// Phase-2 requests the generator's RMs answered.
    pub phase2_commits: u64,
    pub phase2_rollbacks: u64,
}

/// Percentiles of one request type, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// Microseconds, rounded to nearest, so that a 0.6 µs sample does not read as 0.
pub fn micros(latency: Duration) -> u64 {
    let nanos = latency.as_nanos().saturating_add(500) / 1000;
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

impl Stats {
    /// Records one latency sample for a request type.
    pub fn record(&mut self, kind: &'static str, latency: Duration) {
        let histogram = self.latency.entry(kind).or_insert_with(new_histogram);
        let value = micros(latency);
        // `record` grows an auto-resizing histogram (`saturating_record` would clamp instead);
        // it can only fail past what the histogram can ever cover, where clamping is right.
        if histogram.record(value).is_err() {
            histogram.saturating_record(value);
        }
    }

    /// Counts one error of `kind` (e.g. `timeout_begin`, `commit_failed`).
    pub fn error(&mut self, kind: &str) {
        match self.errors.get_mut(kind) {
            Some(count) => *count += 1,
            None => {
                self.errors.insert(kind.to_owned(), 1);
            }
        }
    }

    pub fn errors(&self) -> &BTreeMap<String, u64> {
        &self.errors
    }

    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        for (kind, histogram) in &other.latency {
            match self.latency.get_mut(kind) {
                Some(mine) => {
                    // Both auto-resize, so adding cannot run out of range.
                    let _ = mine.add(histogram);
                }
                None => {
                    self.latency.insert(kind, histogram.clone());
                }
            }
        }
        for (kind, count) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += count;
        }
        self.transactions += other.transactions;
        self.conflicts += other.conflicts;
        self.phase2_commits += other.phase2_commits;
        self.phase2_rollbacks += other.phase2_rollbacks;
    }

    /// Percentiles per request type that has at least one sample.
    pub fn latency_summary(&self) -> BTreeMap<String, LatencySummary> {
        self.latency
            .iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(kind, h)| {
                let summary = LatencySummary {
                    count: h.len(),
                    p50: h.value_at_quantile(0.50),
                    p90: h.value_at_quantile(0.90),
                    p99: h.value_at_quantile(0.99),
                    p999: h.value_at_quantile(0.999),
                    max: h.max(),
                    mean: (h.mean() * 10.0).round() / 10.0,
                };
                ((*kind).to_owned(), summary)
            })
            .collect()
    }
}

fn new_histogram() -> Histogram<u64> {
    // Auto-resizing: memory follows the largest value seen, not a configured ceiling, which
    // keeps hundreds of per-connection recorders small.
    Histogram::new(SIGNIFICANT_DIGITS).expect("hdrhistogram accepts 0..=5 significant digits")
}

/// The measurement window: samples completing before `start` are warm-up, after `end` drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Instant,
    pub end: Instant,
}

impl Window {
    pub fn new(origin: Instant, warmup: Duration, duration: Duration) -> Window {
        let start = origin + warmup;
        Window {
            start,
            end: start + duration,
        }
    }

    pub fn contains(&self, at: Instant) -> bool {
        at >= self.start && at < self.end
    }
}

/// A task's [`Stats`], keeping only what completes inside the window.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub stats: Stats,
    pub window: Window,
}

impl Recorder {
    pub fn new(window: Window) -> Recorder {
        Recorder {
            stats: Stats::default(),
            window,
        }
    }

    /// A request answered at `now` that was sent (or was due to be sent) at `since`.
    pub fn request(&mut self, kind: &'static str, since: Instant, now: Instant) {
        if self.window.contains(now) {
            self.stats
                .record(kind, now.saturating_duration_since(since));
        }
    }

    /// A transaction that succeeded at `now`, started (or due to start) at `since`.
    pub fn transaction(&mut self, since: Instant, now: Instant) {
        if self.window.contains(now) {
            self.stats.transactions += 1;
            self.stats
                .record(kind::TRANSACTION, now.saturating_duration_since(since));
        }
    }

    pub fn error(&mut self, kind: &str, now: Instant) {
        if self.window.contains(now) {
            self.stats.error(kind);
        }
    }

    pub fn conflict(&mut self, now: Instant) {
        if self.window.contains(now) {
            self.stats.conflicts += 1;
        }
    }

    pub fn phase2(&mut self, commit: bool, now: Instant) {
        if self.window.contains(now) {
            if commit {
                self.stats.phase2_commits += 1;
            } else {
                self.stats.phase2_rollbacks += 1;
            }
        }
    }
}

/// The median of the finite values (the mean of the two middle ones for an even count).
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut stats = Stats::default();
        // 1..=1000 µs, one sample each: pN is N% of the way up.
        for us in 1..=1000u64 {
            stats.record(kind::BEGIN, Duration::from_micros(us));
        }
        let summary = stats.latency_summary();
        let begin = summary.get("begin").expect("begin recorded");
        assert_eq!(begin.count, 1000);
        assert_eq!(begin.p50, 500);
        assert_eq!(begin.p90, 900);
        assert_eq!(begin.p99, 990);
        assert_eq!(begin.p999, 999);
        assert_eq!(begin.max, 1000);
        assert!((begin.mean - 500.5).abs() < 0.11, "mean {}", begin.mean);
        assert!(!summary.contains_key("commit"));
    }

    #[test]
    fn percentiles_keep_three_significant_digits_at_large_values() {
        let mut stats = Stats::default();
        stats.record(kind::COMMIT, Duration::from_micros(123_456));
        let commit = stats.latency_summary()["commit"].clone();
        // 3 significant digits: within 0.1 %.
        assert!(commit.p50.abs_diff(123_456) <= 124, "{}", commit.p50);
        assert_eq!(micros(Duration::from_nanos(600)), 1);
        assert_eq!(micros(Duration::from_nanos(400)), 0);
    }

    #[test]
    fn merge_adds_histograms_errors_and_counters() {
        let mut a = Stats::default();
        a.record(kind::BEGIN, Duration::from_micros(100));
        a.error("timeout_begin");
        a.transactions = 3;
        a.conflicts = 1;
        let mut b = Stats::default();
        b.record(kind::BEGIN, Duration::from_micros(300));
        b.record(kind::ROLLBACK, Duration::from_micros(50));
        b.error("timeout_begin");
        b.error("commit_failed");
        b.transactions = 2;
        b.phase2_commits = 7;
        a.merge(&b);
        let summary = a.latency_summary();
        assert_eq!(summary["begin"].count, 2);
        assert_eq!(summary["begin"].max, 300);
        assert_eq!(summary["rollback"].count, 1);
        assert_eq!(a.errors()["timeout_begin"], 2);
        assert_eq!(a.errors()["commit_failed"], 1);
        assert_eq!(a.error_total(), 3);
        assert_eq!((a.transactions, a.conflicts, a.phase2_commits), (5, 1, 7));
    }

    #[test]
    fn recorder_keeps_only_the_window() {
        let origin = Instant::now();
        let window = Window::new(origin, Duration::from_secs(1), Duration::from_secs(2));
        let mut rec = Recorder::new(window);
        let warmup = origin + Duration::from_millis(500);
        let inside = origin + Duration::from_millis(1500);
        let after = origin + Duration::from_millis(3000);
        rec.transaction(origin, warmup);
        rec.error("x", warmup);
        rec.transaction(origin, inside);
        rec.request(kind::BEGIN, origin, inside);
        rec.conflict(inside);
        rec.transaction(origin, after);
        rec.error("x", after);
        assert_eq!(rec.stats.transactions, 1);
        assert_eq!(rec.stats.conflicts, 1);
        assert_eq!(rec.stats.error_total(), 0);
        let p50 = rec.stats.latency_summary()["transaction"].p50;
        assert!(p50.abs_diff(1_500_000) <= 1_500, "{p50}");
        assert!(window.contains(window.start));
        assert!(!window.contains(window.end));
    }
}
