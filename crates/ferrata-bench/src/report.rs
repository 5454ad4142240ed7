//! The result of a run, shaped for its two readers: the typed [`Report`] of the results schema
//! (crate::results) and a table for people.

use std::fmt::Write as _;

pub use crate::results::Report;
use crate::results::{Mode, SCHEMA_VERSION};
use crate::stats::{Stats, kind};

/// What was asked for, echoed in the report.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub label: Option<String>,
    pub target: String,
    pub workload: String,
    pub connections: usize,
    pub rate: Option<f64>,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub tm_connections: Option<usize>,
    pub rm_connections: Option<usize>,
    pub merged: bool,
}

impl Report {
    pub fn new(info: &RunInfo, stats: &Stats) -> Report {
        let tx_per_sec = if info.duration_secs > 0.0 {
            (stats.transactions as f64 / info.duration_secs * 10.0).round() / 10.0
        } else {
            0.0
        };
        Report {
            schema: SCHEMA_VERSION,
            label: info.label.clone(),
            target: info.target.clone(),
            workload: info.workload.clone(),
            mode: if info.rate.is_some() {
                Mode::Open
            } else {
                Mode::Closed
            },
            connections: info.connections,
            rate: info.rate,
            duration_secs: info.duration_secs,
            transactions: stats.transactions,
            tx_per_sec,
            errors: stats.errors().clone(),
            latency_us: stats.latency_summary(),
            conflicts: stats.conflicts,
            warmup_secs: info.warmup_secs,
            tm_connections: info.tm_connections,
            rm_connections: info.rm_connections,
            merged: info.merged,
            phase2_commits: stats.phase2_commits,
            phase2_rollbacks: stats.phase2_rollbacks,
        }
    }

    pub fn to_json(&self) -> String {
        // Serializing plain maps, strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A fixed-width table: header, throughput line, one latency row per request type.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let label = self
            .label
            .as_deref()
            .map(|l| format!(" [{l}]"))
            .unwrap_or_default();
        let rate = self
            .rate
            .map(|r| format!(" rate={r}/s"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "ferrata-bench{label} workload={} target={} mode={}{rate} connections={}{}{} duration={}s",
            self.workload,
            self.target,
            match self.mode {
                Mode::Open => "open",
                Mode::Closed => "closed",
            },
            self.connections,
            self.tm_connections
                .map(|n| format!(" tm={n}"))
                .unwrap_or_default(),
            self.rm_connections
                .map(|n| format!(" rm={n}{}", if self.merged { " merged" } else { "" }))
                .unwrap_or_default(),
            self.duration_secs,
        );
        let errors: u64 = self.errors.values().sum();
        let _ = writeln!(
            out,
            "transactions {}  tx/s {:.1}  errors {errors}  conflicts {}",
            self.transactions, self.tx_per_sec, self.conflicts
        );
        let _ = writeln!(
            out,
            "{:<16}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10}  (µs)",
            "request", "count", "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        let known = kind::DISPLAY_ORDER.iter().map(|k| (*k).to_owned());
        let others = self
            .latency_us
            .keys()
            .filter(|k| !kind::DISPLAY_ORDER.contains(&k.as_str()))
            .cloned();
        for name in known.chain(others) {
            if let Some(l) = self.latency_us.get(&name) {
                let _ = writeln!(
                    out,
                    "{name:<16}{:>10}{:>9}{:>9}{:>9}{:>9}{:>9}{:>10.1}",
                    l.count, l.p50, l.p90, l.p99, l.p999, l.max, l.mean
                );
            }
        }
        if !self.errors.is_empty() {
            let _ = writeln!(out, "errors:");
            for (kind, count) in &self.errors {
                let _ = writeln!(out, "  {kind:<30}{count:>10}");
            }
        }
        if self.phase2_commits + self.phase2_rollbacks > 0 {
            let _ = writeln!(
                out,
                "phase two answered by the bench RMs: {} commits, {} rollbacks",
                self.phase2_commits, self.phase2_rollbacks
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> (RunInfo, Stats) {
        let info = RunInfo {
            label: Some("ferrata fsync".into()),
            target: "127.0.0.1:8091".into(),
            workload: "at-commit".into(),
            connections: 16,
            rate: None,
            warmup_secs: 1.0,
            duration_secs: 2.0,
            tm_connections: Some(16),
            rm_connections: Some(2),
            merged: false,
        };
        let mut stats = Stats::default();
        for us in [100, 200, 300] {
            stats.record(kind::BEGIN, Duration::from_micros(us));
            stats.record(kind::TRANSACTION, Duration::from_micros(us * 4));
        }
        stats.record(kind::BRANCH_REGISTER, Duration::from_micros(150));
        stats.transactions = 3;
        stats.conflicts = 2;
        stats.error("timeout_commit");
        (info, stats)
    }

    #[test]
    fn json_has_the_contracted_shape() {
        let (info, stats) = sample();
        let report = Report::new(&info, &stats);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
        for key in [
            "label",
            "target",
            "workload",
            "mode",
            "connections",
            "rate",
            "duration_secs",
            "transactions",
            "tx_per_sec",
            "errors",
            "latency_us",
        ] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["mode"], "closed");
        assert!(json["rate"].is_null());
        assert_eq!(json["transactions"], 3);
        assert_eq!(json["tx_per_sec"], 1.5);
        assert_eq!(json["errors"]["timeout_commit"], 1);
        assert_eq!(json["conflicts"], 2);
        let begin = &json["latency_us"]["begin"];
        for key in ["count", "p50", "p90", "p99", "p999", "max", "mean"] {
            assert!(begin.get(key).is_some(), "latency missing {key}");
        }
        assert_eq!(begin["count"], 3);
        assert_eq!(begin["p50"], 200);
        assert_eq!(begin["max"], 300);
        assert_eq!(json["latency_us"]["transaction"]["max"], 1200);
        assert!(json["latency_us"].get("commit").is_none());
    }

    #[test]
    fn open_loop_reports_its_rate() {
        let (mut info, stats) = sample();
        info.rate = Some(5000.0);
        let report = Report::new(&info, &stats);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).expect("json");
        assert_eq!(json["mode"], "open");
        assert_eq!(json["rate"], 5000.0);
    }

    #[test]
    fn table_lists_request_types_in_order_with_errors() {
        let (info, stats) = sample();
        let table = Report::new(&info, &stats).table();
        let begin = table.find("\nbegin").expect("begin row");
        let register = table.find("\nbranch_register").expect("register row");
        let transaction = table.find("\ntransaction ").expect("transaction row");
        assert!(begin < register && register < transaction, "{table}");
        assert!(table.contains("tx/s 1.5"), "{table}");
        assert!(table.contains("timeout_commit"), "{table}");
        assert!(table.contains("[ferrata fsync]"), "{table}");
    }
}
