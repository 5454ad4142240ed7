//! The text of the metrics endpoint: seata-server's `seata_transaction` series (the names,
//! tags and statistics its Prometheus exporter writes, so existing dashboards keep working),
//! then Ferrata's own counts and gauges.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use ferrata_core::{MetricsSnapshot, SeataOutcome, Window};

/// What the scrape reads outside the core.
#[derive(Debug, Default)]
pub struct Gauges {
    pub command_queue_depth: usize,
    /// (role, client version) → registered connections.
    pub connections: BTreeMap<(&'static str, String), usize>,
}

/// Renders `snapshot` and `gauges`; `window` is the time since the previous scrape (Seata's
/// summaries and timers cover it). Samples carry no timestamp: Prometheus stamps them.
pub fn render(snapshot: &MetricsSnapshot, gauges: &Gauges, window: Duration) -> String {
    let mut out = String::new();
    seata_family(&mut out, snapshot, window);
    ferrata_families(&mut out, snapshot, gauges);
    out
}

/// One `seata_transaction` sample; labels in Seata's order (its tags sorted by key).
fn seata_sample(
    out: &mut String,
    (application_id, group): (&str, &str),
    meter: &str,
    statistic: Option<&str>,
    status: &str,
    value: f64,
) {
    let _ = write!(
        out,
        "seata_transaction{{applicationId=\"{}\",group=\"{}\",meter=\"{meter}\",role=\"tc\",",
        escape(application_id),
        escape(group)
    );
    if let Some(statistic) = statistic {
        let _ = write!(out, "statistic=\"{statistic}\",");
    }
    let _ = writeln!(out, "status=\"{status}\"}} {value}");
}

fn seata_family(out: &mut String, snapshot: &MetricsSnapshot, window: Duration) {
    out.push_str(
        "# HELP seata_transaction Seata's transaction meters (seata-server's names and tags)\n",
    );
    out.push_str("# TYPE seata_transaction untyped\n");
    let seconds = window.as_secs_f64().max(0.001);
    for (application_id, group, counts) in snapshot.transactions.iter() {
        let names = (application_id, group);
        seata_sample(out, names, "counter", None, "active", counts.active as f64);
        for (outcome, total) in &counts.outcomes {
            // Seata keeps counters for these two only; every outcome has a summary.
            if matches!(outcome, SeataOutcome::Committed | SeataOutcome::Rollbacked) {
                seata_sample(out, names, "counter", None, outcome.tag(), *total as f64);
            }
            let seen = counts
                .windows
                .get(outcome)
                .copied()
                .unwrap_or(Window::default());
            let count = seen.count as f64;
            for (statistic, value) in [("count", count), ("total", count), ("tps", count / seconds)]
            {
                seata_sample(out, names, "summary", Some(statistic), outcome.tag(), value);
            }
            if outcome.is_timed() {
                let average = if seen.count == 0 {
                    0.0
                } else {
                    seen.total_ms as f64 / count
                };
                for (statistic, value) in [
                    ("count", count),
                    ("total", seen.total_ms as f64),
                    ("max", seen.max_ms as f64),
                    ("average", average),
                ] {
                    seata_sample(out, names, "timer", Some(statistic), outcome.tag(), value);
                }
            }
        }
    }
}

fn ferrata_families(out: &mut String, snapshot: &MetricsSnapshot, gauges: &Gauges) {
    let transactions = &snapshot.transactions;
    family(
        out,
        "ferrata_transactions_begun_total",
        "counter",
        "Global transactions begun since start",
    );
    for (application_id, group, counts) in transactions.iter() {
        group_sample(
            out,
            "ferrata_transactions_begun_total",
            (application_id, group),
            "",
            counts.begun,
        );
    }
    family(
        out,
        "ferrata_transactions_ended_total",
        "counter",
        "Global transactions that reached a final status since start, by status",
    );
    for (application_id, group, counts) in transactions.iter() {
        for (status, total) in &counts.ended {
            let status = format!(",status=\"{status:?}\"");
            group_sample(
                out,
                "ferrata_transactions_ended_total",
                (application_id, group),
                &status,
                *total,
            );
        }
    }
    family(
        out,
        "ferrata_transactions_active",
        "gauge",
        "Global transactions held and not yet decided",
    );
    for (application_id, group, counts) in transactions.iter() {
        group_sample(
            out,
            "ferrata_transactions_active",
            (application_id, group),
            "",
            counts.active,
        );
    }
    family(
        out,
        "ferrata_phase2_retries_total",
        "counter",
        "Phase-2 passes that could not finish (an RM failed, was unreachable or timed out) and were scheduled again",
    );
    let _ = writeln!(
        out,
        "ferrata_phase2_retries_total {}",
        transactions.phase2_retries
    );
    for (name, help, value) in [
        (
            "ferrata_sessions",
            "Global sessions held (failed ones included)",
            snapshot.sessions,
        ),
        (
            "ferrata_branches",
            "Branch sessions held",
            snapshot.branches,
        ),
        (
            "ferrata_locked_rows",
            "AT rows locked",
            snapshot.locked_rows,
        ),
        (
            "ferrata_command_queue_depth",
            "Commands waiting for the core thread",
            gauges.command_queue_depth,
        ),
    ] {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    family(
        out,
        "ferrata_connections",
        "gauge",
        "Registered client connections by role and client version",
    );
    for ((role, version), count) in &gauges.connections {
        let _ = writeln!(
            out,
            "ferrata_connections{{role=\"{role}\",version=\"{}\"}} {count}",
            escape(version)
        );
    }
}

/// One sample of a per-(application, group) series; `more` adds labels (`,name="value"`).
fn group_sample(
    out: &mut String,
    name: &str,
    (application_id, group): (&str, &str),
    more: &str,
    value: u64,
) {
    let _ = writeln!(
        out,
        "{name}{{application=\"{}\",group=\"{}\"{more}}} {value}",
        escape(application_id),
        escape(group)
    );
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value in Prometheus' text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
