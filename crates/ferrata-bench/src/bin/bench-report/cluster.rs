//! The cluster section: Ferrata nodes and seata-server nodes (store mode db) on one PostgreSQL,
//! one and three nodes each, with the TC CPU (all nodes) and the database's CPU per transaction.

use std::fmt::Write as _;

use crate::{Results, Run, RunFigures, num, ratio, system_name, tps};

/// The cluster systems scripts/bench runs, in display order: (id, nodes).
pub const CLUSTER_SYSTEMS: [(&str, u32); 4] = [
    ("ferrata-pg-1", 1),
    ("ferrata-pg-3", 3),
    ("seata-db-1", 1),
    ("seata-db-3", 3),
];
/// The workloads measured on the clusters.
pub const CLUSTER_WORKLOADS: [&str; 2] = ["begin-commit", "at-commit"];
/// Issue 10's goal: Ferrata's throughput over seata-server's db mode at 64 connections.
const GOAL_RATIO: f64 = 5.0;
const GOAL_CONNECTIONS: u64 = 64;

/// Display name of a cluster system id (`ferrata-pg-3` → `Ferrata, 3 nodes`).
pub fn cluster_name(id: &str) -> Option<String> {
    let (_, nodes) = CLUSTER_SYSTEMS.iter().find(|(i, _)| *i == id)?;
    let base = if id.starts_with("ferrata") {
        "Ferrata"
    } else {
        "seata-server 2.0.0 (db)"
    };
    Some(format!(
        "{base}, {nodes} node{}",
        if *nodes == 1 { "" } else { "s" }
    ))
}

/// Microseconds of CPU per measured transaction: the TC nodes', then the database's.
fn cpu_us_per_tx(run: &Run) -> (Option<f64>, Option<f64>) {
    let Some(tx) = run.transactions().filter(|t| *t > 0.0) else {
        return (None, None);
    };
    let samples = &run.samples;
    (
        Some(samples.server.cpu_seconds / tx * 1e6),
        samples.store.as_ref().map(|s| s.cpu_seconds / tx * 1e6),
    )
}

/// Writes the section when any cluster system took part in the run.
pub fn section(md: &mut String, r: &Results) {
    let ran: Vec<&str> = CLUSTER_SYSTEMS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| r.system(id).is_some())
        .collect();
    if ran.is_empty() {
        return;
    }
    let conns = r.connections();
    let mut most_rounds = 1;
    for id in &ran {
        for wl in CLUSTER_WORKLOADS {
            for &c in &conns {
                most_rounds = most_rounds.max(r.rounds(id, wl, c).map_or(1, <[Option<f64>]>::len));
            }
        }
    }
    let _ = writeln!(md, "## Cluster: several nodes on one PostgreSQL\n");
    let _ = writeln!(
        md,
        "Ferrata nodes (`--store-url`, Seata's db-mode tables) against seata-server 2.0.0 in \
         store mode `db` on the same PostgreSQL, one and three nodes each. The script starts a \
         PostgreSQL of its own for this (Debian's, default settings but `max_connections = \
         400`: `fsync` and `synchronous_commit` on, so both systems acknowledge a decision once \
         the database has it on disk), gives every system a fresh schema, runs it alone and \
         stops it before the next; seata-server runs with its launcher's JVM options and \
         `-n <node>` (distinct Snowflake ids), its pool at Seata's defaults (10–100 \
         connections per node), and its JVMs are warmed under at-commit load at 64 \
         connections first. The generator sends TM connection *i* to node *i* mod *n* (as \
         Seata's XID load balancing keeps a transaction on the node that began it) with its \
         RM connection on the same node. TC CPU is all nodes' together; database CPU is the \
         PostgreSQL server with its backends. All processes share the machine's {} cores.\n",
        r.meta.machine.nproc
    );
    if most_rounds > 1 {
        let _ = writeln!(
            md,
            "The four systems were measured in {most_rounds} interleaved rounds (each round \
             every system in turn, fresh schema and fresh processes, seata-server's JVMs warmed \
             again); each row is the round with the median throughput, all rounds' figures \
             beside it.\n"
        );
    }
    let _ = writeln!(
        md,
        "| System | Workload | Connections | Throughput (tx/s) | p50 (ms) | p99 (ms) | TC CPU (µs/tx) | PostgreSQL CPU (µs/tx) | Errors | Every round (tx/s) |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for id in &ran {
        let name = cluster_name(id).unwrap_or_else(|| system_name(id).to_owned());
        if let Some(system) = r.system(id)
            && !system.reason.is_empty()
        {
            let _ = writeln!(
                md,
                "| {name} | – | – | **failed**: {} | | | | | | |",
                crate::one_line(&system.reason)
            );
        }
        for wl in CLUSTER_WORKLOADS {
            for &c in &conns {
                let Some(run) = r.run(id, wl, c) else {
                    continue;
                };
                let (tc, db) = cpu_us_per_tx(run);
                let every = r.rounds(id, wl, c).map_or_else(String::new, |all| {
                    all.iter().map(|&t| tps(t)).collect::<Vec<_>>().join(", ")
                });
                let _ = writeln!(
                    md,
                    "| {name} | {wl} | {c} | {} | {} | {} | {} | {} | {} | {every} |",
                    tps(run.tx_per_sec()),
                    crate::ms(run.latency_us("p50")),
                    crate::ms(run.latency_us("p99")),
                    num(tc, 0),
                    num(db, 0),
                    run.errors().map_or("–".to_owned(), |e| e.to_string()),
                );
            }
        }
    }
    let _ = writeln!(
        md,
        "\nFerrata ÷ seata-server (db) at {GOAL_CONNECTIONS} connections, same node count{} \
         (goal: ≥ {GOAL_RATIO:.0}× the throughput):\n",
        if most_rounds > 1 {
            ", median rounds"
        } else {
            ""
        }
    );
    let _ = writeln!(
        md,
        "| Nodes | Workload | Throughput ratio | TC CPU per tx, seata ÷ Ferrata | Goal |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|");
    for nodes in [1, 3] {
        for wl in CLUSTER_WORKLOADS {
            let f = r.run(&format!("ferrata-pg-{nodes}"), wl, GOAL_CONNECTIONS);
            let s = r.run(&format!("seata-db-{nodes}"), wl, GOAL_CONNECTIONS);
            let throughput = f
                .and_then(RunFigures::tx_per_sec)
                .zip(s.and_then(RunFigures::tx_per_sec))
                .filter(|(_, b)| *b > 0.0)
                .map(|(a, b)| a / b);
            let goal = match throughput {
                None => "–",
                Some(x) if x >= GOAL_RATIO => "met",
                Some(_) => "**not met**",
            };
            let _ = writeln!(
                md,
                "| {nodes} | {wl} | {} | {} | {goal} |",
                ratio(
                    f.and_then(RunFigures::tx_per_sec),
                    s.and_then(RunFigures::tx_per_sec)
                ),
                ratio(
                    s.and_then(|run| cpu_us_per_tx(run).0),
                    f.and_then(|run| cpu_us_per_tx(run).0)
                ),
            );
        }
    }
    let _ = writeln!(md);
}
