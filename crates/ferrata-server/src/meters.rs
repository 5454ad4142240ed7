//! The server's own latency and size meters (request latency by type, group commits), recorded
//! on the hot path through cached `metrics` handles into one Prometheus recorder per process;
//! the admin listener renders it (docs/operations.md, "Metrics").

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ferrata_core::RequestKind;
use metrics::{Histogram, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::phase2::Phase2;

/// Seconds: from 100 µs (a group commit's fsync here) to 10 s (a stuck phase 2).
const LATENCY_BUCKETS_SECONDS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Operations per group commit: powers of two up to the core's batch limit.
const BATCH_BUCKETS: [f64; 14] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0,
];

pub const REQUEST_SECONDS: &str = "ferrata_request_duration_seconds";
pub const STORE_COMMIT_SECONDS: &str = "ferrata_store_commit_duration_seconds";
pub const STORE_COMMIT_OPS: &str = "ferrata_store_commit_ops";
pub const PHASE2_SECONDS: &str = "ferrata_phase2_duration_seconds";

/// Every request kind, in the order of [`Meters`]' request histograms.
const REQUEST_KINDS: [RequestKind; 8] = [
    RequestKind::Begin,
    RequestKind::BranchRegister,
    RequestKind::BranchReport,
    RequestKind::GlobalCommit,
    RequestKind::GlobalRollback,
    RequestKind::GlobalStatus,
    RequestKind::GlobalReport,
    RequestKind::LockQuery,
];

/// The name of a request kind in the `type` label (Seata's message names).
pub fn request_type(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Begin => "GlobalBegin",
        RequestKind::BranchRegister => "BranchRegister",
        RequestKind::BranchReport => "BranchReport",
        RequestKind::GlobalCommit => "GlobalCommit",
        RequestKind::GlobalRollback => "GlobalRollback",
        RequestKind::GlobalStatus => "GlobalStatus",
        RequestKind::GlobalReport => "GlobalReport",
        RequestKind::LockQuery => "GlobalLockQuery",
    }
}

/// Cached handles (a label lookup per record would cost more than the record).
pub struct Meters {
    handle: PrometheusHandle,
    requests: [Histogram; REQUEST_KINDS.len()],
    /// Answered requests and their summed latency in µs, per kind, for the console's rates.
    request_totals: [(AtomicU64, AtomicU64); REQUEST_KINDS.len()],
    store_commit_seconds: Histogram,
    store_commit_ops: Histogram,
    /// Phase-2 round trips: [commit, rollback].
    phase2_seconds: [Histogram; 2],
}

impl std::fmt::Debug for Meters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meters").finish_non_exhaustive()
    }
}

static METERS: OnceLock<Meters> = OnceLock::new();

/// The process's meters (made on first use; not the global `metrics` recorder, so that
/// several servers in one test process and other recorders do not collide).
pub fn meters() -> &'static Meters {
    METERS.get_or_init(Meters::new)
}

impl Meters {
    fn new() -> Meters {
        let recorder = recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!(
                REQUEST_SECONDS,
                Unit::Seconds,
                "Time from a request's admission to its answer being queued, by request type"
            );
            metrics::describe_histogram!(
                STORE_COMMIT_SECONDS,
                Unit::Seconds,
                "Time one group commit took in the session store (write and fsync, or one database transaction)"
            );
            metrics::describe_histogram!(
                STORE_COMMIT_OPS,
                Unit::Count,
                "Store operations (records) per group commit"
            );
            metrics::describe_histogram!(
                PHASE2_SECONDS,
                Unit::Seconds,
                "Time from sending a BranchCommit/BranchRollback to the RM's answer"
            );
            Meters {
                handle: handle.clone(),
                requests: REQUEST_KINDS
                    .map(|kind| metrics::histogram!(REQUEST_SECONDS, "type" => request_type(kind))),
                request_totals: std::array::from_fn(|_| (AtomicU64::new(0), AtomicU64::new(0))),
                store_commit_seconds: metrics::histogram!(STORE_COMMIT_SECONDS),
                store_commit_ops: metrics::histogram!(STORE_COMMIT_OPS),
                phase2_seconds: ["commit", "rollback"]
                    .map(|direction| metrics::histogram!(PHASE2_SECONDS, "direction" => direction)),
            }
        })
    }

    pub fn request(&self, kind: RequestKind, elapsed: Duration) {
        let index = REQUEST_KINDS.iter().position(|k| *k == kind).unwrap_or(0);
        self.requests[index].record(elapsed.as_secs_f64());
        let (count, micros) = &self.request_totals[index];
        count.fetch_add(1, Ordering::Relaxed);
        let elapsed_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        micros.fetch_add(elapsed_us, Ordering::Relaxed);
    }

    pub fn store_commit(&self, ops: usize, elapsed: Duration) {
        self.store_commit_seconds.record(elapsed.as_secs_f64());
        self.store_commit_ops.record(ops as f64);
    }

    pub fn phase2(&self, phase2: Phase2, elapsed: Duration) {
        let index = match phase2 {
            Phase2::Commit => 0,
            Phase2::Rollback => 1,
        };
        self.phase2_seconds[index].record(elapsed.as_secs_f64());
    }

    /// (request type, answered, summed latency in µs) since start, per request kind.
    pub fn request_totals(&self) -> Vec<(&'static str, u64, u64)> {
        REQUEST_KINDS
            .iter()
            .zip(&self.request_totals)
            .map(|(kind, (count, micros))| {
                (
                    request_type(*kind),
                    count.load(Ordering::Relaxed),
                    micros.load(Ordering::Relaxed),
                )
            })
            .collect()
    }

    /// The meters in Prometheus' text format.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds recorded samples into their buckets; without it samples pile up between scrapes.
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }
}

fn recorder() -> PrometheusRecorder {
    let builder = PrometheusBuilder::new();
    let with_buckets = [REQUEST_SECONDS, STORE_COMMIT_SECONDS, PHASE2_SECONDS]
        .into_iter()
        .try_fold(builder, |builder, name| {
            builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), &LATENCY_BUCKETS_SECONDS)
        })
        .and_then(|builder| {
            builder
                .set_buckets_for_metric(Matcher::Full(STORE_COMMIT_OPS.to_owned()), &BATCH_BUCKETS)
        });
    match with_buckets {
        Ok(builder) => builder.build_recorder(),
        // Only an empty bucket list fails, and these are constants.
        Err(error) => unreachable!("constant histogram buckets refused: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_samples_render_as_histograms() {
        let meters = meters();
        meters.request(RequestKind::Begin, Duration::from_micros(300));
        meters.store_commit(3, Duration::from_micros(200));
        meters.run_upkeep();
        let text = meters.render();
        assert!(
            text.contains(
                "ferrata_request_duration_seconds_bucket{type=\"GlobalBegin\",le=\"0.0005\"}"
            ),
            "{text}"
        );
        assert!(
            text.contains("ferrata_store_commit_ops_bucket{le=\"4\"}"),
            "{text}"
        );
    }
}
