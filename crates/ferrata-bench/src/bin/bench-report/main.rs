//! `bench-report`: turns the results of one `scripts/bench` run into `docs/BENCHMARKS.md` and
//! PNG charts.
//!
//! It reads only what that run wrote under `target/bench/results/`, typed by
//! `ferrata_bench::results` (which also says what each file holds): `meta.json`,
//! `systems/<id>.json`, `runs/<id>__<workload>__c<N>.json` (the generator's report and the
//! server-side samples of one run) and `sessions/<id>.json`.
//!
//! Every number in the Markdown and in the charts comes from those files, so the document
//! always shows what the command produced. Text in the charts is drawn with a TrueType font
//! loaded at run time (DejaVu Sans from Debian's `fonts-dejavu-core` by default).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Parser;
use ferrata_bench::results::{
    self, Meta, ResultsDir, RunRecord, ServerSamples, SessionsRecord, SystemRecord, SystemStatus,
};
use ferrata_bench::stats::kind;
use plotters::prelude::*;

mod cluster;

/// Where to read results and where to write the report.
#[derive(Debug, Parser)]
#[command(
    name = "bench-report",
    about = "Writes docs/BENCHMARKS.md and charts from scripts/bench results"
)]
struct Args {
    /// Directory written by scripts/bench.
    #[arg(long, default_value = "target/bench/results")]
    results: PathBuf,
    /// Markdown file to write.
    #[arg(long, default_value = "docs/BENCHMARKS.md")]
    markdown: PathBuf,
    /// Directory for the PNG charts (linked from the Markdown by a relative path).
    #[arg(long, default_value = "docs/bench")]
    charts: PathBuf,
    /// TrueType font for chart text.
    #[arg(
        long,
        env = "BENCH_FONT",
        default_value = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    )]
    font: PathBuf,
}

/// The systems in display order: id, name in tables, chart colour.
const SYSTEMS: [(&str, &str, RGBColor); 3] = [
    ("ferrata", "Ferrata", RGBColor(217, 95, 2)),
    ("seata", "seata-server", RGBColor(27, 158, 119)),
    ("dtm", "DTM", RGBColor(117, 112, 179)),
];
const TC_WORKLOADS: [&str; 4] = ["begin-commit", "at-commit", "at-rollback", "hot-key"];
const TARGET_RSS_MB: f64 = 64.0;
const TARGET_COLD_START_MS: f64 = 100.0;
const TARGET_RESTART_MS: f64 = 2000.0;

/// A section of the results: title, description, and the (system, workload) rows it compares;
/// the first row is Ferrata's, the others are its peers.
type Section = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// One measured run: the generator's report and the server-side samples.
type Run = RunRecord;

/// Figures of a run, as the tables show them.
trait RunFigures {
    fn tx_per_sec(&self) -> Option<f64>;
    fn transactions(&self) -> Option<f64>;
    fn latency_us(&self, key: &str) -> Option<f64>;
    fn errors(&self) -> Option<u64>;
    fn error_kinds(&self) -> String;
    fn rss_mb(&self) -> Option<f64>;
    fn cpu_per_1k(&self) -> Option<f64>;
    fn cpu_shares(&self) -> Option<CpuShares>;
    fn failure(&self) -> Option<String>;
}

impl RunFigures for Run {
    fn tx_per_sec(&self) -> Option<f64> {
        self.bench.as_ref().map(|b| b.tx_per_sec)
    }
    fn transactions(&self) -> Option<f64> {
        self.bench.as_ref().map(|b| b.transactions as f64)
    }
    /// Whole-transaction latency percentile in microseconds (`p50`, `p99`, …).
    fn latency_us(&self, key: &str) -> Option<f64> {
        let l = self.bench.as_ref()?.latency_us.get(kind::TRANSACTION)?;
        let us = match key {
            "p50" => l.p50,
            "p90" => l.p90,
            "p99" => l.p99,
            "p999" => l.p999,
            "max" => l.max,
            _ => return None,
        };
        Some(us as f64)
    }
    fn errors(&self) -> Option<u64> {
        self.bench.as_ref().map(|b| b.errors.values().sum())
    }
    fn error_kinds(&self) -> String {
        let Some(bench) = &self.bench else {
            return String::new();
        };
        bench
            .errors
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// Server (plus store, for DTM) peak RSS during the run, in MB.
    fn rss_mb(&self) -> Option<f64> {
        let own = self.samples.server.rss_peak_kb? as f64;
        let store = self
            .samples
            .store
            .as_ref()
            .and_then(|s| s.rss_peak_kb)
            .unwrap_or(0) as f64;
        Some((own + store) / 1024.0)
    }
    /// Server (plus store) CPU seconds per 1,000 measured transactions.
    fn cpu_per_1k(&self) -> Option<f64> {
        let tx = self.transactions().filter(|t| *t > 0.0)?;
        Some(server_cpu(&self.samples) / tx * 1000.0)
    }
    /// CPU use on the whole machine during the measured window.
    fn cpu_shares(&self) -> Option<CpuShares> {
        let s = &self.samples;
        let window = Some(s.cpu_window_secs).filter(|w| *w > 0.0)?;
        let tasks = s.machine_busy_cpu_seconds;
        let irq = s.machine_irq_cpu_seconds;
        let server = server_cpu(s);
        // The generator's CPU is known for its whole life (warm-up included): take the share
        // that falls in the window.
        let wall = Some(s.wall_secs).filter(|w| *w > 0.0)?;
        let generator = s.generator_cpu_seconds * (window / wall).min(1.0);
        // Part of the interrupt time is charged to the interrupted processes, so "everything
        // else" is the whole machine's busy time less what the measured processes were charged.
        let others = (tasks + irq - server - generator).max(0.0);
        Some(CpuShares {
            window,
            busy: tasks + irq,
            server,
            generator,
            others,
        })
    }

    fn failure(&self) -> Option<String> {
        if self.bench.is_some() {
            return None;
        }
        Some(format!(
            "ferrata-bench failed: {}",
            self.bench_error.as_deref().unwrap_or("no report")
        ))
    }
}

/// CPU seconds of the server plus its store over the measured window.
fn server_cpu(s: &ServerSamples) -> f64 {
    s.server.cpu_seconds + s.store.as_ref().map_or(0.0, |st| st.cpu_seconds)
}

/// CPU seconds spent on the whole machine during one run's measured window.
#[derive(Debug, Clone, Copy)]
struct CpuShares {
    /// Length of the window, seconds.
    window: f64,
    /// All cores, all processes, interrupts included.
    busy: f64,
    /// The server under test (plus its store process, for DTM).
    server: f64,
    /// The load generator's share.
    generator: f64,
    /// Every other process, kernel thread and interrupt not charged to the measured processes.
    others: f64,
}

/// Everything read from the results directory.
#[derive(Debug)]
struct Results {
    meta: Meta,
    systems: BTreeMap<String, SystemRecord>,
    /// (system, workload) -> connections -> run (of several rounds, the median one)
    runs: BTreeMap<(String, String), BTreeMap<u64, Run>>,
    /// (system, workload, connections) -> throughput of every round, ascending (a failed
    /// round first, as `None`), where a point was measured in more than one round.
    rounds: BTreeMap<(String, String, u64), Vec<Option<f64>>>,
    sessions: BTreeMap<String, SessionsRecord>,
}

impl Results {
    fn load(dir: &Path) -> anyhow::Result<Results> {
        let layout = ResultsDir(dir.to_path_buf());
        let meta = results::read_versioned(&layout.meta())?;
        let mut systems = BTreeMap::new();
        for path in layout.files("systems")? {
            let record: SystemRecord = results::read_versioned(&path)?;
            systems.insert(record.id.clone(), record);
        }
        let mut sessions = BTreeMap::new();
        for path in layout.files("sessions")? {
            let record: SessionsRecord = results::read_versioned(&path)?;
            sessions.insert(record.system.clone(), record);
        }
        let mut all: BTreeMap<(String, String, u64), Vec<Run>> = BTreeMap::new();
        for path in layout.files("runs")? {
            let run: Run = results::read_versioned(&path)?;
            all.entry((run.system.clone(), run.workload.clone(), run.connections))
                .or_default()
                .push(run);
        }
        let mut runs: BTreeMap<(String, String), BTreeMap<u64, Run>> = BTreeMap::new();
        let mut rounds = BTreeMap::new();
        for ((system, workload, connections), mut measured) in all {
            // A failed round counts as the slowest.
            measured.sort_by(|a, b| {
                let tps = |r: &Run| r.tx_per_sec().unwrap_or(-1.0);
                tps(a).total_cmp(&tps(b)).then(a.round.cmp(&b.round))
            });
            if measured.len() > 1 {
                rounds.insert(
                    (system.clone(), workload.clone(), connections),
                    measured.iter().map(Run::tx_per_sec).collect(),
                );
            }
            // The median round (the lower of the two middle ones for an even count).
            let median = measured.swap_remove((measured.len() - 1) / 2);
            runs.entry((system, workload))
                .or_default()
                .insert(connections, median);
        }
        Ok(Results {
            meta,
            systems,
            runs,
            rounds,
            sessions,
        })
    }

    fn connections(&self) -> Vec<u64> {
        let mut list = self.meta.connections.clone();
        if list.is_empty() {
            let mut all: Vec<u64> = self.runs.values().flat_map(|m| m.keys().copied()).collect();
            all.sort_unstable();
            all.dedup();
            list = all;
        }
        list
    }

    /// Throughput of every round of a point measured in several, ascending.
    fn rounds(&self, system: &str, workload: &str, connections: u64) -> Option<&[Option<f64>]> {
        self.rounds
            .get(&(system.to_owned(), workload.to_owned(), connections))
            .map(Vec::as_slice)
    }

    fn run(&self, system: &str, workload: &str, connections: u64) -> Option<&Run> {
        self.runs
            .get(&(system.to_owned(), workload.to_owned()))?
            .get(&connections)
    }

    /// The highest per-run peak RSS of a system (server plus store), in MB.
    fn peak_rss_mb(&self, id: &str) -> Option<f64> {
        self.runs
            .iter()
            .filter(|((sys, _), _)| sys == id)
            .flat_map(|(_, runs)| runs.values().filter_map(Run::rss_mb))
            .reduce(f64::max)
    }

    fn system(&self, id: &str) -> Option<&SystemRecord> {
        self.systems.get(id)
    }

    fn system_ok(&self, id: &str) -> bool {
        self.system(id)
            .is_some_and(|s| s.status == SystemStatus::Ok)
    }

    /// Systems that took part in this run (asked for), in display order.
    fn requested(&self) -> Vec<&'static (&'static str, &'static str, RGBColor)> {
        let asked = &self.meta.systems;
        SYSTEMS
            .iter()
            .filter(|(id, _, _)| asked.is_empty() || asked.iter().any(|a| a == id))
            .collect()
    }
}

fn system_name(id: &str) -> &str {
    SYSTEMS
        .iter()
        .find(|(i, _, _)| *i == id)
        .map(|(_, n, _)| *n)
        .unwrap_or(id)
}

// ---------------------------------------------------------------------------------------------
// Number formatting.

/// Milliseconds from microseconds, with about three significant digits.
fn ms(us: Option<f64>) -> String {
    match us {
        None => "–".to_owned(),
        Some(us) => {
            let ms = us / 1000.0;
            if ms >= 100.0 {
                format!("{ms:.0}")
            } else if ms >= 10.0 {
                format!("{ms:.1}")
            } else if ms >= 1.0 {
                format!("{ms:.2}")
            } else {
                format!("{ms:.3}")
            }
        }
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn thousands(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

fn tps(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), thousands)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

fn verdict(measured: Option<f64>, target: f64) -> &'static str {
    match measured {
        Some(v) if v <= target => "met",
        Some(_) => "**not met**",
        None => "not measured",
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

// ---------------------------------------------------------------------------------------------
// Markdown.

fn markdown(r: &Results, charts_rel: &str) -> String {
    let mut md = String::new();
    let meta = &r.meta;
    let conns = r.connections();

    let _ = writeln!(md, "# Benchmarks\n");
    let _ = writeln!(
        md,
        "Generated by `./scripts/bench` on {} (measurements took {} s). Every figure and chart \
         below was written by `bench-report` from the JSON that run left in \
         `target/bench/results/`; re-run the command to refresh them, do not edit by hand.\n",
        meta.started_at,
        meta.elapsed_secs.map_or("?".to_owned(), |v| v.to_string()),
    );

    // Reproduce.
    let _ = writeln!(md, "## Reproduce\n");
    let _ = writeln!(md, "```sh\n./scripts/bench\n```\n");
    let _ = writeln!(
        md,
        "This run: {} s measured after {} s of warm-up per run, at {} connections \
         (`BENCH_DURATION={}`, `BENCH_WARMUP={}`, `BENCH_CONNECTIONS=\"{}\"`, \
         `BENCH_SESSIONS={}`). The script installs what it needs (Redis from Debian, DTM from \
         the Go module proxy, seata-server from Maven Central), builds in release mode, starts \
         every server itself on 127.0.0.1 and stops it afterwards.\n",
        meta.duration_secs,
        meta.warmup_secs,
        conns
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        meta.duration_secs,
        meta.warmup_secs,
        conns
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(" "),
        meta.sessions,
    );
    let _ = writeln!(
        md,
        "Ferrata against an earlier Ferrata (throughput and CPU at 64 connections, a \
         10,000-branch transaction's commit and recovery): [bench/compare.md](bench/compare.md), \
         written by `scripts/bench-compare`.\n"
    );
    let _ = writeln!(
        md,
        "AT on real databases (a MariaDB + PostgreSQL transfer: plain local transactions, \
         ferrata-at, seata-all's Java AT; database round trips and TC CPU per transaction): \
         [bench/at-transfer.md](bench/at-transfer.md), written by `scripts/bench-at`.\n"
    );

    // Targets.
    let _ = writeln!(md, "## Targets (measured)\n");
    let ferrata = r.system("ferrata");
    let fs = r.sessions.get("ferrata");
    let sessions_n = meta.sessions;
    let rss_sessions = fs
        .and_then(|v| v.hold.as_ref()?.rss_with_sessions_kb)
        .map(|kb| kb as f64 / 1024.0);
    let cold = ferrata.and_then(|v| v.cold_start.as_ref()?.ms_to_accept);
    let restart = fs.and_then(|v| v.restart.as_ref()?.ms_to_first_begin);
    let _ = writeln!(md, "| Target | Measured (Ferrata) | Verdict |");
    let _ = writeln!(md, "|---|---|---|");
    let _ = writeln!(
        md,
        "| server RSS ≤ {TARGET_RSS_MB:.0} MB with {} active sessions | {} | {} |",
        thousands(sessions_n as f64),
        rss_sessions.map_or("–".to_owned(), |v| format!(
            "{v:.1} MB (peak while beginning them: {})",
            fs.and_then(|v| v.hold.as_ref()?.rss_peak_while_holding_kb)
                .map_or("–".to_owned(), |kb| format!(
                    "{:.1} MB",
                    kb as f64 / 1024.0
                ))
        )),
        verdict(rss_sessions, TARGET_RSS_MB)
    );
    let _ = writeln!(
        md,
        "| cold start ≤ {TARGET_COLD_START_MS:.0} ms (exec → first accepted connection) | {} | {} |",
        cold.map_or("–".to_owned(), |v| format!(
            "{v:.1} ms (first successful begin: {})",
            ferrata
                .and_then(|f| f.cold_start.as_ref()?.ms_to_first_begin)
                .map_or("–".to_owned(), |b| format!("{b:.1} ms"))
        )),
        verdict(cold, TARGET_COLD_START_MS)
    );
    let _ = writeln!(
        md,
        "| restart with {} in-flight sessions serving again ≤ {:.0} s (kill -9 → first successful begin) | {} | {} |\n",
        thousands(sessions_n as f64),
        TARGET_RESTART_MS / 1000.0,
        restart.map_or("–".to_owned(), |v| format!("{v:.0} ms")),
        verdict(restart, TARGET_RESTART_MS)
    );

    // Headline ratios at the largest common connection count.
    if let Some(&c) = conns.iter().rev().find(|&&c| c <= 64).or(conns.last()) {
        let _ = writeln!(md, "## Headline: Ferrata ÷ peer at {c} connections\n");
        let _ = writeln!(
            md,
            "Throughput ratio above 1 and p99 ratio below 1 favour Ferrata. The 2-branch row \
             compares Ferrata's at-commit with DTM's 2-branch saga.\n"
        );
        let _ = writeln!(
            md,
            "| Workload | Peer | Throughput Ferrata ÷ peer | p99 Ferrata ÷ peer |"
        );
        let _ = writeln!(md, "|---|---|---|---|");
        for wl in TC_WORKLOADS {
            let f = r.run("ferrata", wl, c);
            let p = r.run("seata", wl, c);
            let _ = writeln!(
                md,
                "| {wl} | seata-server | {} | {} |",
                ratio(f.and_then(Run::tx_per_sec), p.and_then(Run::tx_per_sec)),
                ratio(
                    f.and_then(|x| x.latency_us("p99")),
                    p.and_then(|x| x.latency_us("p99"))
                ),
            );
        }
        let f = r.run("ferrata", "at-commit", c);
        let d = r.run("dtm", "dtm-saga", c);
        let _ = writeln!(
            md,
            "| 2-branch (at-commit vs dtm-saga) | DTM | {} | {} |\n",
            ratio(f.and_then(Run::tx_per_sec), d.and_then(Run::tx_per_sec)),
            ratio(
                f.and_then(|x| x.latency_us("p99")),
                d.and_then(|x| x.latency_us("p99"))
            ),
        );
    }

    cluster::section(&mut md, r);

    // Machine.
    let m = &meta.machine;
    let disk = &m.disk;
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| CPU | {} cores (`nproc`), {} |", m.nproc, m.cpu_model);
    let _ = writeln!(
        md,
        "| Memory | {:.1} GiB |",
        m.mem_total_kb as f64 / 1024.0 / 1024.0
    );
    let rota = match disk.rotational {
        Some(true) => "reported rotational",
        Some(false) => "reported non-rotational (SSD)",
        _ => "rotational flag unknown",
    };
    let _ = writeln!(
        md,
        "| Disk | `{}` ({}, {}, {}{}), file system {}; one 4 KiB O_DSYNC write took {} ms on average |",
        disk.device,
        disk.size,
        rota,
        if disk.model.is_empty() {
            "no model string"
        } else {
            &disk.model
        },
        if disk.device.starts_with("vd") {
            "; a virtio disk of a virtual machine, the kernel's rotational flag says nothing about the media"
        } else {
            ""
        },
        disk.fs,
        disk.dsync_write_4k_ms
            .map_or("?".to_owned(), |v| format!("{v:.3}")),
    );
    let _ = writeln!(md, "| Kernel | {} |", m.kernel);
    let _ = writeln!(md, "| OS | {} |", m.os);
    let _ = writeln!(
        md,
        "| Load average (1, 5, 15 min) | {} before measuring, {} at the end (other work on the \
         machine shows here) |\n",
        meta.load_average_before_measuring,
        meta.load_average_at_end.as_deref().unwrap_or(""),
    );
    let _ = writeln!(
        md,
        "The load generator (`ferrata-bench`, one thread) runs on the same machine as the \
         server under test and competes with it for the {} cores.\n",
        m.nproc
    );

    // Systems.
    let v = &meta.versions;
    let _ = writeln!(md, "## Systems and versions\n");
    let _ = writeln!(
        md,
        "| System | Version | Store and durability | Status | Cold start: first accepted connection | First successful begin | Peak RSS over all runs |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for &(id, name, _) in r.requested() {
        let sys = r.system(id);
        let status = match sys.map(|x| x.status) {
            Some(SystemStatus::Ok) => "measured".to_owned(),
            Some(SystemStatus::Failed) => "**failed** (see notes)".to_owned(),
            Some(SystemStatus::Pending) => "**pending** (see notes)".to_owned(),
            None => "not run".to_owned(),
        };
        let (version, store) = match id {
            "ferrata" => (
                format!("{} ({})", v.ferrata, v.rustc),
                "embedded log store, fsync on every group commit".to_owned(),
            ),
            "seata" => (
                format!("{} ({})", v.seata_server, v.java),
                format!(
                    "file store (`store.mode=file`), default `flush-disk-mode=async` (no fsync \
                     per transaction), default logging; JVM options of seata-server's own \
                     launcher: `{}`",
                    sys.and_then(|x| x.jvm_opts.as_deref())
                        .filter(|o| !o.is_empty())
                        .unwrap_or("not recorded")
                ),
            ),
            _ => (
                format!("{} ({})", v.dtm, v.go),
                format!(
                    "Redis {} with its built-in defaults (RDB snapshots, no AOF: no fsync per \
                     transaction); RSS and CPU below are DTM + Redis",
                    v.redis
                ),
            ),
        };
        let cold = sys.and_then(|x| x.cold_start.as_ref()?.ms_to_accept);
        let first = sys.and_then(|x| x.cold_start.as_ref()?.ms_to_first_begin);
        let rss = r.peak_rss_mb(id);
        let _ = writeln!(
            md,
            "| {name} | {version} | {store} | {status} | {} | {} | {} |",
            cold.map_or("–".to_owned(), |c| format!("{c:.1} ms")),
            first.map_or(
                if id == "dtm" {
                    "n/a".to_owned()
                } else {
                    "–".to_owned()
                },
                |c| format!("{c:.1} ms")
            ),
            rss.map_or("–".to_owned(), |v| format!("{v:.1} MB")),
        );
    }
    let _ = writeln!(md);

    // Workloads.
    let _ = writeln!(md, "## Results by workload\n");
    let _ = writeln!(
        md,
        "![Throughput vs connections]({charts_rel}/throughput.png)\n\n\
         ![Latency percentiles]({charts_rel}/latency.png)\n"
    );
    let _ = writeln!(
        md,
        "Latency is per whole transaction as the client sees it (begin to the end of commit or \
         rollback), in milliseconds. RSS is the server's peak resident set during the run \
         (VmHWM, reset before each run); CPU is the server's user+system time from the end of \
         the warm-up to the end of the run, per 1,000 measured transactions. *Other load* is \
         the CPU, in cores, that the whole machine was busy during the measured window beyond what \
         the server and the load generator were charged (other work on this shared machine, \
         kernel threads such as the file system's journal, interrupts); a run with more than {} cores of it was repeated up to {} times and the \
         cleanest attempt kept.\n",
        meta.quiet_cores, meta.retries,
    );
    let workloads: Vec<Section> = vec![
        (
            "begin-commit",
            "empty global transaction: GlobalBegin + GlobalCommit",
            vec![("ferrata", "begin-commit"), ("seata", "begin-commit")],
        ),
        (
            "at-commit",
            "AT-shaped: GlobalBegin, two BranchRegisters with distinct lock keys, GlobalCommit \
             (phase two answered by the generator's RMs)",
            vec![("ferrata", "at-commit"), ("seata", "at-commit")],
        ),
        (
            "at-rollback",
            "as at-commit, ending in GlobalRollback (synchronous phase-two rollback of both \
             branches)",
            vec![("ferrata", "at-rollback"), ("seata", "at-rollback")],
        ),
        (
            "hot-key",
            "every transaction registers its branch on the same lock key (lock conflicts are \
             retried like the Java client does)",
            vec![("ferrata", "hot-key"), ("seata", "hot-key")],
        ),
        (
            "2-branch global transaction",
            "Ferrata and seata-server at-commit next to DTM's saga with two no-op HTTP branches \
             served by the generator (dtm-saga)",
            vec![
                ("ferrata", "at-commit"),
                ("seata", "at-commit"),
                ("dtm", "dtm-saga"),
            ],
        ),
    ];
    let mut failures: Vec<String> = Vec::new();
    for (title, what, rows) in &workloads {
        let _ = writeln!(md, "### {title}\n\n{what}.\n");
        let _ = writeln!(
            md,
            "| System | Workload | Conn. | tx/s | p50 ms | p99 ms | p99.9 ms | Errors | Peak RSS MB | CPU s / 1k tx | Other load |"
        );
        let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
        for (sys, wl) in rows {
            if !r.requested().iter().any(|(id, _, _)| id == sys) {
                continue;
            }
            for &c in &conns {
                let run = r.run(sys, wl, c);
                let errors = match run {
                    None => "not run".to_owned(),
                    Some(run) => match run.failure() {
                        Some(reason) => {
                            failures.push(format!(
                                "{} {wl} at {c} connections: {}",
                                system_name(sys),
                                one_line(&reason)
                            ));
                            "run failed".to_owned()
                        }
                        None => {
                            let n = run.errors().unwrap_or(0);
                            let kinds = run.error_kinds();
                            if n > 0 && !kinds.is_empty() {
                                format!("{n} ({})", one_line(&kinds))
                            } else {
                                n.to_string()
                            }
                        }
                    },
                };
                let other = run.map_or("–".to_owned(), |run| {
                    let cores = format!("{:.2}", run.samples.other_cores);
                    match run.attempts.len() {
                        n if n > 1 => format!("{cores} (best of {n})"),
                        _ => cores,
                    }
                });
                let _ = writeln!(
                    md,
                    "| {} | {wl} | {c} | {} | {} | {} | {} | {errors} | {} | {} | {other} |",
                    system_name(sys),
                    tps(run.and_then(Run::tx_per_sec)),
                    ms(run.and_then(|x| x.latency_us("p50"))),
                    ms(run.and_then(|x| x.latency_us("p99"))),
                    ms(run.and_then(|x| x.latency_us("p999"))),
                    num(run.and_then(Run::rss_mb), 1),
                    num(run.and_then(Run::cpu_per_1k), 3),
                );
            }
        }
        let _ = writeln!(md);
        // Ratios Ferrata / each peer.
        let (f_sys, f_wl) = rows[0];
        let peers: Vec<&(&str, &str)> = rows
            .iter()
            .skip(1)
            .filter(|(sys, _)| r.requested().iter().any(|(id, _, _)| id == sys))
            .collect();
        if f_sys == "ferrata" && !peers.is_empty() {
            let _ = writeln!(md, "Ferrata ÷ peer:\n");
            let _ = writeln!(
                md,
                "| Peer | Conn. | Throughput | p50 | p99 | CPU per tx | Peak RSS |"
            );
            let _ = writeln!(md, "|---|--:|--:|--:|--:|--:|--:|");
            for (sys, wl) in peers {
                for &c in &conns {
                    let f = r.run(f_sys, f_wl, c);
                    let p = r.run(sys, wl, c);
                    let _ = writeln!(
                        md,
                        "| {} | {c} | {} | {} | {} | {} | {} |",
                        system_name(sys),
                        ratio(f.and_then(Run::tx_per_sec), p.and_then(Run::tx_per_sec)),
                        ratio(
                            f.and_then(|x| x.latency_us("p50")),
                            p.and_then(|x| x.latency_us("p50"))
                        ),
                        ratio(
                            f.and_then(|x| x.latency_us("p99")),
                            p.and_then(|x| x.latency_us("p99"))
                        ),
                        ratio(f.and_then(Run::cpu_per_1k), p.and_then(Run::cpu_per_1k)),
                        ratio(f.and_then(Run::rss_mb), p.and_then(Run::rss_mb)),
                    );
                }
            }
            let _ = writeln!(md);
        }
    }

    // Sessions.
    let _ = writeln!(md, "## Open sessions: memory and restart\n");
    let _ = writeln!(
        md,
        "A fresh server is given {} global transactions (GlobalBegin, timeout 1 h, never ended) \
         over 16 TM connections; its RSS is read 2 s later. It is then killed with SIGKILL and \
         started again on the same data directory; the restart time runs from exec to the first \
         successful GlobalBegin, polled every 1 ms. A sample of the open XIDs is then asked for \
         its GlobalStatus (1 = Begin: the transaction survived).\n",
        thousands(sessions_n as f64)
    );
    let _ = writeln!(
        md,
        "| System | Status | Begins/s while filling | RSS idle | RSS with sessions | Peak while filling | Restart: first accepted conn. | Restart: first begin | RSS after restart | Sample XIDs still open |"
    );
    let _ = writeln!(md, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|");
    let mb = |v: Option<u64>| {
        v.map_or("–".to_owned(), |kb| {
            format!("{:.1} MB", kb as f64 / 1024.0)
        })
    };
    for id in ["ferrata", "seata"] {
        if !r.requested().iter().any(|(i, _, _)| *i == id) {
            continue;
        }
        let Some(x) = r.sessions.get(id) else {
            let _ = writeln!(
                md,
                "| {} | not run | – | – | – | – | – | – | – | – |",
                system_name(id)
            );
            continue;
        };
        let open = x.restart.as_ref().map(|r| {
            let total = r.xid_status.len();
            // GlobalStatus 1 = Begin: the transaction survived the restart.
            let begun = r.xid_status.values().filter(|v| **v == Some(1)).count();
            format!("{begun} of {total}")
        });
        let status = if x.status == SystemStatus::Ok {
            "ok".to_owned()
        } else {
            format!("**failed**: {}", one_line(&x.reason))
        };
        let hold = x.hold.as_ref();
        let _ = writeln!(
            md,
            "| {} | {status} | {} | {} | {} | {} | {} | {} | {} | {} |",
            system_name(id),
            tps(hold.and_then(|h| h.begins_per_sec)),
            mb(hold.and_then(|h| h.rss_idle_kb)),
            mb(hold.and_then(|h| h.rss_with_sessions_kb)),
            mb(hold.and_then(|h| h.rss_peak_while_holding_kb)),
            x.restart
                .as_ref()
                .and_then(|r| r.ms_to_accept)
                .map_or("–".to_owned(), |v| format!("{v:.1} ms")),
            x.restart
                .as_ref()
                .and_then(|r| r.ms_to_first_begin)
                .map_or("–".to_owned(), |v| format!("{v:.1} ms")),
            mb(x.rss_after_restart_kb),
            open.unwrap_or_else(|| "–".to_owned()),
        );
    }
    let _ = writeln!(md);

    // Notes: peers that did not run, failed runs, method.
    let _ = writeln!(md, "## Notes\n");
    let mut any_missing = false;
    for &(id, name, _) in r.requested() {
        let Some(sys) = r.system(id) else {
            any_missing = true;
            let _ = writeln!(
                md,
                "* **{name} was not measured**: the run recorded nothing for it.\n"
            );
            continue;
        };
        if !r.system_ok(id) {
            any_missing = true;
            let _ = writeln!(
                md,
                "* **{name} was not measured**: {}",
                one_line(&sys.reason)
            );
        }
        let tried: Vec<String> = sys.tried.iter().map(|t| one_line(t)).collect();
        if !tried.is_empty() && (!r.system_ok(id) || id != "ferrata") {
            let _ = writeln!(md, "* How {name} was obtained and started in this run:");
            for t in tried {
                let _ = writeln!(md, "  * {t}");
            }
        }
    }
    if !any_missing {
        let _ = writeln!(md, "* All three systems were measured in this run.");
    }
    let cores = meta.machine.nproc;
    for &(id, name, _) in r.requested() {
        let shares: Vec<(u64, String, CpuShares)> = r
            .runs
            .iter()
            .filter(|((sys, _), _)| sys == id)
            .flat_map(|((_, wl), runs)| {
                runs.iter()
                    .filter_map(|(c, run)| Some((*c, wl.clone(), run.cpu_shares()?)))
            })
            .collect();
        if shares.is_empty() {
            continue;
        }
        let window: f64 = shares.iter().map(|(_, _, s)| s.window).sum();
        let sum =
            |f: fn(&CpuShares) -> f64| shares.iter().map(|(_, _, s)| f(s)).sum::<f64>() / window;
        let worst = shares
            .iter()
            .max_by(|a, b| (a.2.others / a.2.window).total_cmp(&(b.2.others / b.2.window)));
        let _ = writeln!(
            md,
            "* CPU on the whole machine ({cores} cores) during the measured windows of the {name} \
             runs, on average: {:.2} cores busy — the server{} {:.2}, the load generator ≈ {:.2}, \
             everything else (other work on the machine, kernel threads such as the file \
             system's journal, interrupts not charged to a process) ≈ {:.2}{}.",
            sum(|s| s.busy),
            if id == "dtm" { " and Redis" } else { "" },
            sum(|s| s.server),
            sum(|s| s.generator),
            sum(|s| s.others),
            worst.map_or(String::new(), |(c, wl, s)| format!(
                " (at most {:.2}, in {wl} at {c} connections)",
                s.others / s.window
            )),
        );
    }
    let log_sizes: Vec<String> = r
        .requested()
        .iter()
        .filter_map(|(id, name, _)| {
            let bytes = r.system(id)?.totals.as_ref()?.log_bytes? as f64;
            Some(format!("{name} {:.1} MB", bytes / 1024.0 / 1024.0))
        })
        .collect();
    if !log_sizes.is_empty() {
        let _ = writeln!(
            md,
            "* Log output of the main workload runs, at each server's default level: {}.",
            log_sizes.join(", ")
        );
    }
    for f in &failures {
        let _ = writeln!(md, "* Failed run: {f}");
    }
    let _ = writeln!(
        md,
        "* Durability differs: Ferrata acknowledges only after fsync (group commit); \
         seata-server's file store and DTM's Redis were run with their defaults, which do not \
         fsync per transaction. Ferrata pays for a guarantee the peers do not give here.\n\
         * Logging: every server runs at its default log level (Ferrata `info`, which logs \
         connections but not transactions; seata-server `INFO`, which logs every global \
         transaction and branch; DTM `info`), with its output written to a file.\n\
         * Cold start is the time from exec to the first TCP connection the server accepts, \
         polled every 1 ms; for seata-server it includes the JVM start and the launcher script \
         `scripts/reference-tc`. For the Seata-protocol TCs the time to the first successful \
         GlobalBegin is shown too. DTM's figure excludes Redis, which was started first.\n\
         * Closed loop: each of N connections runs one transaction after another \
         (`ferrata-bench run --connections N`; at-commit/at-rollback/hot-key also use \
         max(1, N/8) RM connections that register branches and answer phase two); a Seata \
         transaction ends with the GlobalCommit/GlobalRollback response. dtm-saga runs N \
         concurrent sagas (newGid, submit, each over its own HTTP connection); DTM answers the \
         submit once the saga is stored and calls the two branch actions itself, and a saga \
         counts as done when the generator's endpoints have received both calls.\n\
         * DTM has no setting for its listen address: it binds its HTTP, gRPC and JSON-RPC \
         ports on all interfaces; the generator only talks to it over 127.0.0.1. seata-server \
         puts a non-loopback host address in its XIDs (it refuses loopback for that); the \
         generator still only connects to 127.0.0.1.\n\
         * Raw results: `target/bench/results/` (`runs/` with one file per run: the \
         `ferrata-bench` report and the server-side samples; `systems/`, `sessions/`, \
         `meta.json`); server logs: `target/bench/logs/`."
    );
    md
}

// ---------------------------------------------------------------------------------------------
// Charts.

fn plot_err<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow!("drawing a chart failed: {error}")
}

/// One line in a panel.
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

/// A panel: title and its lines.
struct Panel {
    title: String,
    series: Vec<Series>,
}

/// The panels of the throughput chart: tx/s against connection count (index on the x axis).
fn throughput_panels(r: &Results) -> Vec<Panel> {
    let conns = r.connections();
    let mut panels = Vec::new();
    let mut add = |title: &str, rows: &[(&str, &str)]| {
        let mut series = Vec::new();
        for (sys, wl) in rows {
            let Some(&(_, name, color)) = SYSTEMS.iter().find(|(id, _, _)| id == sys) else {
                continue;
            };
            let points: Vec<(f64, f64)> = conns
                .iter()
                .enumerate()
                .filter_map(|(i, &c)| Some((i as f64, r.run(sys, wl, c)?.tx_per_sec()?)))
                .collect();
            if !points.is_empty() {
                let label = if rows.len() > 2 {
                    format!("{name} ({wl})")
                } else {
                    name.to_owned()
                };
                series.push(Series {
                    name: label,
                    color,
                    points,
                });
            }
        }
        panels.push(Panel {
            title: title.to_owned(),
            series,
        });
    };
    for wl in TC_WORKLOADS {
        add(wl, &[("ferrata", wl), ("seata", wl)]);
    }
    add(
        "2-branch global transaction",
        &[
            ("ferrata", "at-commit"),
            ("seata", "at-commit"),
            ("dtm", "dtm-saga"),
        ],
    );
    panels
}

const PERCENTILES: [(&str, &str); 5] = [
    ("p50", "p50"),
    ("p90", "p90"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("max", "max"),
];

/// The panels of the latency chart: percentiles (x) in ms (y, log scale) at one connection count.
fn latency_panels(r: &Results, c: u64) -> Vec<Panel> {
    let mut panels = Vec::new();
    let mut add = |title: &str, rows: &[(&str, &str)]| {
        let mut series = Vec::new();
        for (sys, wl) in rows {
            let Some(&(_, name, color)) = SYSTEMS.iter().find(|(id, _, _)| id == sys) else {
                continue;
            };
            let Some(run) = r.run(sys, wl, c) else {
                continue;
            };
            let points: Vec<(f64, f64)> = PERCENTILES
                .iter()
                .enumerate()
                .filter_map(|(i, (key, _))| Some((i as f64, run.latency_us(key)? / 1000.0)))
                .collect();
            if !points.is_empty() {
                let label = if rows.len() > 2 {
                    format!("{name} ({wl})")
                } else {
                    name.to_owned()
                };
                series.push(Series {
                    name: label,
                    color,
                    points,
                });
            }
        }
        panels.push(Panel {
            title: format!("{title}, {c} connections"),
            series,
        });
    };
    for wl in TC_WORKLOADS {
        add(wl, &[("ferrata", wl), ("seata", wl)]);
    }
    add(
        "2-branch",
        &[
            ("ferrata", "at-commit"),
            ("seata", "at-commit"),
            ("dtm", "dtm-saga"),
        ],
    );
    panels
}

/// Draws panels in a 2×3 grid. `log_y` selects a logarithmic y axis; x is categorical.
fn draw_grid(
    path: &Path,
    heading: &str,
    panels: &[Panel],
    x_labels: &[String],
    x_desc: &str,
    y_desc: &str,
    log_y: bool,
) -> anyhow::Result<()> {
    let root = BitMapBackend::new(path, (1800, 1100)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let (top, body) = root.split_vertically(60);
    top.draw(&Text::new(
        heading.to_owned(),
        (20, 15),
        ("sans-serif", 30).into_font().color(&BLACK),
    ))
    .map_err(plot_err)?;
    let areas = body.split_evenly((2, 3));
    let n = x_labels.len().max(1);
    let x_range = -0.3f64..(n as f64 - 0.7);
    for (area, panel) in areas.iter().zip(panels) {
        let values: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| *v > 0.0)
            .collect();
        let label_fmt = |x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                x_labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        if values.is_empty() {
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 24))
                .margin(15)
                .x_label_area_size(50)
                .y_label_area_size(80)
                .build_cartesian_2d(x_range.clone(), 0f64..1f64)
                .map_err(plot_err)?;
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(n)
                .x_label_formatter(&label_fmt)
                .draw()
                .map_err(plot_err)?;
            area.draw(&Text::new(
                "no data".to_owned(),
                (200, 200),
                ("sans-serif", 24).into_font().color(&BLACK),
            ))
            .map_err(plot_err)?;
            continue;
        }
        let max = values.iter().copied().fold(f64::MIN, f64::max);
        let min = values.iter().copied().fold(f64::MAX, f64::min);
        let mut builder = ChartBuilder::on(area);
        builder
            .caption(&panel.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(50)
            .y_label_area_size(90);
        // The two y axes have different coordinate types; the drawing is the same.
        macro_rules! draw_panel {
            ($y_range:expr) => {{
                let mut chart = builder
                    .build_cartesian_2d(x_range.clone(), $y_range)
                    .map_err(plot_err)?;
                chart
                    .configure_mesh()
                    .x_labels(n)
                    .x_label_formatter(&label_fmt)
                    .y_label_formatter(&|v| format_axis(*v))
                    .x_desc(x_desc)
                    .y_desc(y_desc)
                    .label_style(("sans-serif", 18))
                    .axis_desc_style(("sans-serif", 20))
                    .light_line_style(WHITE.mix(0.0))
                    .draw()
                    .map_err(plot_err)?;
                for s in &panel.series {
                    let color = s.color;
                    chart
                        .draw_series(LineSeries::new(
                            s.points.iter().copied(),
                            color.stroke_width(3),
                        ))
                        .map_err(plot_err)?
                        .label(s.name.clone())
                        .legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
                        });
                    chart
                        .draw_series(s.points.iter().map(|&p| Circle::new(p, 5, color.filled())))
                        .map_err(plot_err)?;
                }
                chart
                    .configure_series_labels()
                    .position(if log_y {
                        // Latency curves rise to the right: the lower right stays free.
                        SeriesLabelPosition::LowerRight
                    } else {
                        SeriesLabelPosition::UpperLeft
                    })
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 18))
                    .draw()
                    .map_err(plot_err)?;
            }};
        }
        if log_y {
            let lo = 10f64.powf((min * 0.8).log10().floor());
            let hi = 10f64.powf((max * 1.25).log10().ceil());
            draw_panel!((lo..hi).log_scale());
        } else {
            draw_panel!(0f64..(max * 1.35));
        }
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// Axis numbers: 1,234 / 12.5 / 0.25.
fn format_axis(v: f64) -> String {
    if v >= 1000.0 {
        thousands(v)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

fn load_font(path: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "cannot read the chart font {} (install Debian's fonts-dejavu-core or set BENCH_FONT)",
            path.display()
        )
    })?;
    // The font lives for the rest of the process; plotters keeps a reference to it.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{} is not a usable TrueType font", path.display()))?;
    Ok(())
}

fn charts(r: &Results, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let conns = r.connections();
    let labels: Vec<String> = conns.iter().map(u64::to_string).collect();
    let throughput = dir.join("throughput.png");
    draw_grid(
        &throughput,
        "Throughput vs connections (transactions per second, closed loop)",
        &throughput_panels(r),
        &labels,
        "connections",
        "tx/s",
        false,
    )?;
    let c = conns
        .iter()
        .rev()
        .find(|&&c| c <= 64)
        .or(conns.last())
        .copied()
        .unwrap_or(64);
    let latency = dir.join("latency.png");
    let pct_labels: Vec<String> = PERCENTILES.iter().map(|(_, l)| (*l).to_owned()).collect();
    draw_grid(
        &latency,
        &format!("Transaction latency distribution at {c} connections (ms, log scale)"),
        &latency_panels(r, c),
        &pct_labels,
        "percentile",
        "ms",
        true,
    )?;
    Ok(vec![throughput, latency])
}

/// Relative path from the Markdown file's directory to the charts directory.
fn relative_charts(markdown: &Path, charts: &Path) -> String {
    let md_dir = markdown.parent().map(Path::to_path_buf).unwrap_or_default();
    let md_dir = std::fs::canonicalize(&md_dir).unwrap_or(md_dir);
    let charts_abs = std::fs::canonicalize(charts).unwrap_or_else(|_| charts.to_path_buf());
    match charts_abs.strip_prefix(&md_dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
        _ => charts.to_string_lossy().into_owned(),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let results = Results::load(&args.results)?;
    load_font(&args.font)?;
    let written = charts(&results, &args.charts)?;
    let md = markdown(&results, &relative_charts(&args.markdown, &args.charts));
    if let Some(parent) = args.markdown.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(&args.markdown, md)
        .with_context(|| format!("cannot write {}", args.markdown.display()))?;
    eprintln!("bench-report: wrote {}", args.markdown.display());
    for path in written {
        eprintln!("bench-report: wrote {}", path.display());
    }
    Ok(())
}
