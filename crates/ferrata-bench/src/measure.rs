//! `ferrata-bench measure`: every workload at every connection count against one running
//! server (or the nodes of a cluster, summed), with the server-side samples (peak RSS, CPU over
//! the measured window) and the shared machine's other load; a run during which other
//! processes were busy is repeated.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};

use crate::cli::{Cli, Command, RunArgs};
use crate::procfs::{self, MachineBusy, Pid, TICKS_PER_SEC, round2};
use crate::results::{
    self, Attempt, ProcessSamples, ResultsDir, RunRecord, SCHEMA_VERSION, ServerSamples,
    SystemStatus, Totals,
};
use crate::workload::Workload;

#[derive(Debug, Clone, clap::Args)]
pub struct MeasureArgs {
    /// Results directory (scripts/bench: target/bench/results).
    #[arg(long)]
    pub results: PathBuf,
    /// System id (ferrata, seata, dtm).
    #[arg(long)]
    pub system: String,
    /// The server under test; a cluster's nodes (the flag repeated, or several values) are
    /// measured together: CPU and resident sets summed.
    #[arg(long, num_args = 1.., required = true)]
    pub server_pid: Vec<u32>,
    /// Its store (DTM's Redis, the cluster's database server), measured with it, together
    /// with the processes it forks.
    #[arg(long)]
    pub store_pid: Option<u32>,
    /// The server's log (its size is recorded; its end is quoted if the server dies).
    #[arg(long)]
    pub log: PathBuf,
    /// Seata TC address (host:port), or a cluster's nodes separated by commas.
    #[arg(long)]
    pub target: String,
    /// dtm-saga: the DTM base URL.
    #[arg(long)]
    pub dtm_url: Option<String>,
    #[arg(long, value_enum, num_args = 1.., required = true)]
    pub workloads: Vec<Workload>,
    #[arg(long, num_args = 1.., required = true)]
    pub connections: Vec<u64>,
    #[arg(long, default_value_t = 5)]
    pub duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// A run during which other processes used more cores than this is repeated.
    #[arg(long, default_value_t = 0.25)]
    pub quiet_cores: f64,
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
    /// Seconds all repeats may take, over the whole scripts/bench run.
    #[arg(long, default_value_t = 240)]
    pub retry_budget_secs: u64,
    /// Seconds a run may wait for the machine to calm down before it starts.
    #[arg(long, default_value_t = 15)]
    pub quiet_wait_secs: u64,
    /// Seconds all such waits may take, over the whole scripts/bench run.
    #[arg(long, default_value_t = 180)]
    pub quiet_budget_secs: u64,
    /// Where the time spent on the two budgets is kept between invocations.
    #[arg(long)]
    pub budget_file: PathBuf,
    /// The round of a system measured in several interleaved rounds (scripts/bench's cluster
    /// systems); the report shows each point's median round.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub round: u32,
}

/// Time spent so far on repeats and on waiting for a quiet machine (whole scripts/bench run).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Budget {
    retry_spent_secs: u64,
    quiet_spent_secs: u64,
}

/// The processes measured: the server (a cluster's nodes) and possibly its store's tree.
#[derive(Debug, Clone)]
struct Measured {
    servers: Vec<Pid>,
    store: Option<u32>,
}

impl Measured {
    fn server_ticks(&self) -> u64 {
        procfs::ticks_of(&self.servers)
    }

    fn store_ticks(&self) -> u64 {
        self.store.and_then(procfs::tree_ticks).unwrap_or(0)
    }

    /// Summed over the nodes; `None` when no node reports it.
    fn server_kb(&self, key: &str) -> Option<u64> {
        let each: Vec<u64> = self
            .servers
            .iter()
            .filter_map(|pid| procfs::status_kb(*pid, key))
            .collect();
        (!each.is_empty()).then(|| each.iter().sum())
    }

    fn alive(&self) -> bool {
        self.servers.iter().all(|pid| procfs::alive(*pid))
    }
}

/// Logs like scripts/bench: `[bench HH:MM:SS] text` (UTC).
pub fn log(text: &str) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    eprintln!(
        "[bench {:02}:{:02}:{:02}] {text}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// The exact command line `scripts/bench` always gave `ferrata-bench run`, so a measured run
/// has the same settings as before (every other flag at its default).
fn run_args(args: &MeasureArgs, workload: Workload, connections: u64) -> anyhow::Result<RunArgs> {
    let mut argv = vec![
        "ferrata-bench".to_owned(),
        "run".into(),
        "--target".into(),
        args.target.clone(),
        "--workload".into(),
        workload.name().into(),
        "--connections".into(),
        connections.to_string(),
        "--duration-secs".into(),
        args.duration_secs.to_string(),
        "--warmup-secs".into(),
        args.warmup_secs.to_string(),
        "--label".into(),
        args.system.clone(),
    ];
    if let Some(url) = &args.dtm_url {
        argv.extend(["--dtm-url".to_owned(), url.clone()]);
    }
    match Cli::try_parse_from(argv)?.command {
        Command::Run(run) => Ok(run),
        _ => unreachable!("parsed a run command line"),
    }
}

/// What `run_matrix` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    /// The server died; the system is recorded as failed.
    ServerDied,
}

/// Measures every workload at every connection count; records the system's totals at the end.
pub fn run_matrix(args: &MeasureArgs) -> anyhow::Result<Outcome> {
    let results = ResultsDir(args.results.clone());
    let measured = Measured {
        servers: args.server_pid.iter().copied().map(Pid::Other).collect(),
        store: args.store_pid,
    };
    let mut budget: Budget = if args.budget_file.is_file() {
        results::read(&args.budget_file)?
    } else {
        Budget::default()
    };
    for &workload in &args.workloads {
        for &connections in &args.connections {
            let run = run_args(args, workload, connections)?;
            let record = measure_run(args, &run, &measured, &mut budget)?;
            results::write(&args.budget_file, &budget)?;
            let path = results.run(&args.system, workload.name(), connections, args.round);
            results::write(&path, &record)?;
            if !record.samples.alive {
                let mut system = results.load_system(&args.system)?;
                system.status = SystemStatus::Failed;
                system.reason = format!(
                    "the server process died during {} at {connections} connections: {}",
                    workload.name(),
                    procfs::tail_of(&args.log, 8)
                );
                results::write(&results.system(&args.system), &system)?;
                return Ok(Outcome::ServerDied);
            }
            // Let background work of this run (asynchronous phase two, log flushing) finish
            // before the next one starts, so it is not charged to the next run's CPU.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    let mut system = results.load_system(&args.system)?;
    system.totals = Some(Totals {
        log_bytes: std::fs::metadata(&args.log).ok().map(|m| m.len()),
        rss_at_end_kb: measured.server_kb("VmRSS"),
        lifetime_cpu_seconds: Some(round2(measured.server_ticks() as f64 / TICKS_PER_SEC)),
        store_rss_at_end_kb: measured
            .store
            .and_then(|p| procfs::status_kb(Pid::Other(p), "VmRSS")),
        store_lifetime_cpu_seconds: measured
            .store
            .map(|_| round2(measured.store_ticks() as f64 / TICKS_PER_SEC)),
    });
    results::write(&results.system(&args.system), &system)?;
    Ok(Outcome::Completed)
}

/// Waits (bounded by both budgets) until the rest of the machine is quiet for two one-second
/// samples in a row; returns the last sample.
fn wait_quiet(args: &MeasureArgs, measured: &Measured, budget: &mut Budget) -> f64 {
    let left = args
        .quiet_budget_secs
        .saturating_sub(budget.quiet_spent_secs)
        .min(args.quiet_wait_secs);
    let started = Instant::now();
    let mut calm = 0;
    loop {
        let cores = procfs::other_cores(|| measured.server_ticks() + measured.store_ticks());
        calm = if cores <= args.quiet_cores {
            calm + 1
        } else {
            0
        };
        let waited = started.elapsed().as_secs();
        if calm >= 2 || waited >= left {
            // Only waiting beyond the two samples every run takes counts against the budget.
            budget.quiet_spent_secs += waited.saturating_sub(2);
            return cores;
        }
    }
}

/// One run, repeated while the machine was busy (within the budgets); the cleanest attempt kept.
fn measure_run(
    args: &MeasureArgs,
    run: &RunArgs,
    measured: &Measured,
    budget: &mut Budget,
) -> anyhow::Result<RunRecord> {
    let what = format!(
        "{} {} c={}",
        args.system,
        run.workload.name(),
        run.connections
    );
    let mut attempts = Vec::new();
    let mut best: Option<(u32, Tried)> = None;
    for attempt in 1.. {
        let before = wait_quiet(args, measured, budget);
        let started = Instant::now();
        log(&format!(
            "{what}{} [other load before: {before} cores]",
            if attempt > 1 {
                format!(" (attempt {attempt})")
            } else {
                String::new()
            }
        ));
        let tried = attempt_once(run, measured)?;
        if attempt > 1 {
            budget.retry_spent_secs += started.elapsed().as_secs();
        }
        let other = tried.samples.other_cores;
        let alive = tried.samples.alive;
        attempts.push(Attempt {
            attempt,
            other_cores: other,
            other_cores_before: before,
            tx_per_sec: tried.bench.as_ref().map(|b| b.tx_per_sec),
        });
        if best
            .as_ref()
            .is_none_or(|(_, kept)| other < kept.samples.other_cores)
        {
            best = Some((attempt, tried));
        }
        if !alive
            || other <= args.quiet_cores
            || attempt > args.retries
            || budget.retry_spent_secs >= args.retry_budget_secs
        {
            break;
        }
        log(&format!(
            "WARNING: {what}: other processes used {other} cores during the run; repeating it"
        ));
        std::thread::sleep(Duration::from_secs(1));
    }
    let (kept_attempt, kept) = best.context("no attempt was made")?;
    match (&kept.bench, &kept.error) {
        (Some(b), _) => log(&format!(
            "  -> {} tx/s, p99 {} µs, errors {} [other load during the run: {} cores]",
            b.tx_per_sec,
            b.latency_us
                .get(crate::stats::kind::TRANSACTION)
                .map_or("?".to_owned(), |l| l.p99.to_string()),
            b.errors.values().sum::<u64>(),
            kept.samples.other_cores
        )),
        (None, Some(error)) => log(&format!("WARNING: {what}: ferrata-bench failed: {error}")),
        (None, None) => {}
    }
    Ok(RunRecord {
        schema: SCHEMA_VERSION,
        system: args.system.clone(),
        workload: run.workload.name().to_owned(),
        connections: run.connections as u64,
        round: args.round,
        bench: kept.bench,
        bench_error: kept.error,
        samples: kept.samples,
        attempts,
        kept_attempt,
    })
}

/// One attempt's outcome.
#[derive(Debug)]
struct Tried {
    bench: Option<crate::results::Report>,
    error: Option<String>,
    samples: ServerSamples,
}

/// CPU ticks of the measured processes and of the machine at one moment.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    server: u64,
    store: u64,
    busy: MachineBusy,
    at: Instant,
}

impl Snapshot {
    fn take(measured: &Measured) -> Snapshot {
        Snapshot {
            server: measured.server_ticks(),
            store: measured.store_ticks(),
            busy: MachineBusy::read(),
            at: Instant::now(),
        }
    }
}

fn secs(ticks: u64) -> f64 {
    ticks as f64 / TICKS_PER_SEC
}

/// Runs the generator once in this process and samples the server around it: CPU from the end
/// of the warm-up to the end of the run (the measured transactions plus a short wind-down).
fn attempt_once(run: &RunArgs, measured: &Measured) -> anyhow::Result<Tried> {
    for pid in measured
        .servers
        .iter()
        .copied()
        .chain(measured.store.map(Pid::Other))
    {
        procfs::reset_hwm(pid);
    }
    let generator0 = procfs::cpu_seconds(Pid::Self_).unwrap_or(0.0);
    let started = Instant::now();
    let warmup = Duration::from_secs_f64(run.warmup_secs);
    let sampled = measured.clone();
    let sampler = std::thread::spawn(move || {
        std::thread::sleep(warmup);
        Snapshot::take(&sampled)
    });
    let limit = Duration::from_secs_f64(run.warmup_secs + run.duration_secs + 90.0);
    let runtime = crate::runtime(run.threads)?;
    let outcome = runtime.block_on(async {
        tokio::time::timeout(limit, crate::run(run))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no result within {limit:?}")))
    });
    drop(runtime);
    let end = Snapshot::take(measured);
    let generator = procfs::cpu_seconds(Pid::Self_).unwrap_or(0.0) - generator0;
    let start = sampler
        .join()
        .map_err(|_| anyhow::anyhow!("the sampling thread panicked"))?;
    let wall = started.elapsed().as_secs_f64();
    let window = end.at.duration_since(start.at).as_secs_f64();
    let busy = end.busy.since(start.busy);
    let server = ProcessSamples {
        rss_peak_kb: measured.server_kb("VmHWM"),
        rss_end_kb: measured.server_kb("VmRSS"),
        cpu_seconds: secs(end.server.saturating_sub(start.server)),
    };
    let store = measured.store.map(Pid::Other).map(|pid| ProcessSamples {
        rss_peak_kb: procfs::status_kb(pid, "VmHWM"),
        rss_end_kb: procfs::status_kb(pid, "VmRSS"),
        cpu_seconds: secs(end.store.saturating_sub(start.store)),
    });
    // The generator's CPU is known for the whole attempt (warm-up included): take the share
    // that falls in the window.
    let others = secs(busy.tasks) + secs(busy.irq)
        - server.cpu_seconds
        - store.as_ref().map_or(0.0, |s| s.cpu_seconds)
        - generator * (window / wall).min(1.0);
    let samples = ServerSamples {
        alive: measured.alive(),
        store,
        wall_secs: (wall * 1000.0).round() / 1000.0,
        cpu_window_secs: window,
        machine_busy_cpu_seconds: secs(busy.tasks),
        machine_irq_cpu_seconds: secs(busy.irq),
        generator_cpu_seconds: (generator * 1000.0).round() / 1000.0,
        other_cores: if window > 0.0 {
            round2((others / window).max(0.0))
        } else {
            0.0
        },
        server,
    };
    let (bench, error) = match outcome {
        Ok(report) => (Some(report), None),
        Err(error) => (None, Some(format!("{error:#}"))),
    };
    Ok(Tried {
        bench,
        error,
        samples,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measured_runs_use_the_run_defaults() {
        let cli = Cli::try_parse_from([
            "ferrata-bench",
            "measure",
            "--results",
            "r",
            "--system",
            "dtm",
            "--server-pid",
            "1",
            "--log",
            "l",
            "--target",
            "127.0.0.1:1",
            "--dtm-url",
            "http://127.0.0.1:2",
            "--workloads",
            "dtm-saga",
            "--connections",
            "1",
            "16",
            "--budget-file",
            "b",
        ])
        .expect("valid");
        let Command::Measure(args) = cli.command else {
            panic!("not measure");
        };
        assert_eq!(args.connections, [1, 16]);
        let run = run_args(&args, Workload::DtmSaga, 16).expect("run args");
        assert_eq!(run.connections, 16);
        assert_eq!((run.duration_secs, run.warmup_secs), (5.0, 2.0));
        assert_eq!(run.dtm_url, "http://127.0.0.1:2");
        assert_eq!(run.label.as_deref(), Some("dtm"));
        assert_eq!((run.threads, run.rate, run.branches), (2, None, 2));
    }
}
