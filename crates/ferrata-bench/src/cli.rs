//! Command-line interface: `run` drives one workload; `measure`, `probe`, `hold` and `record`
//! are the measurements and results files of scripts/bench.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::dtm::DtmConfig;
use crate::report::RunInfo;
use crate::seata::SeataConfig;
use crate::transport::ClientIdentity;
use crate::workload::{TxPlan, Workload};

#[derive(Debug, Parser)]
#[command(
    name = "ferrata-bench",
    version,
    about = "Load generator for Seata-protocol transaction coordinators (and DTM sagas)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive one workload against a TC for a fixed time and report throughput and latency.
    Run(RunArgs),
    /// Every workload at every connection count against a running server, with server-side
    /// samples, into a results directory (scripts/bench).
    Measure(crate::measure::MeasureArgs),
    /// Time a server's start: print READY, read `T0 <epoch µs> <server pid>` from stdin, poll
    /// connect() every 1 ms, then begin one global transaction.
    Probe(crate::sessions::ProbeArgs),
    /// Begin many global transactions and leave them open (memory with open sessions).
    Hold(crate::sessions::HoldArgs),
    /// A two-database transfer (MariaDB + PostgreSQL): plain local transactions, ferrata-at AT,
    /// or a Java AT driver, with TC CPU and database statement counts per transaction.
    AtTransfer(crate::at_transfer::AtTransferArgs),
    /// The medians of the at-transfer reports under a directory, as a Markdown table.
    AtTransferReport {
        /// Directory searched for `*.json` reports (recursively).
        #[arg(long)]
        results: std::path::PathBuf,
        /// Also write the medians as JSON here.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
    },
    /// Write the results files that are not measured by the generator.
    #[command(subcommand)]
    Record(crate::record::Record),
}

#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// The TC to drive (host:port, loopback only), or the nodes of a cluster separated by
    /// commas: TM connection i then goes to node i mod n, with its RM on the same node.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub target: String,
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Closed loop: concurrent transactions (by default one TM connection each). Open loop:
    /// TM connections (dtm-saga: HTTP connections) the rate is spread over.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Measured seconds, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    /// Seconds run before measuring (not reported).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Open loop at this many transactions per second in total; absent = closed loop.
    /// Transaction latency then counts from each transaction's scheduled start, and
    /// `start_lag` shows how late the generator itself was.
    #[arg(long)]
    pub rate: Option<f64>,
    /// TM connections to spread the transactions over [default: --connections].
    #[arg(long)]
    pub tm_connections: Option<usize>,
    /// RM connections that register branches and answer phase two [default: max(1, N/8)].
    #[arg(long)]
    pub rm_connections: Option<usize>,
    /// Wrap branch registrations in MergedWarpMessage, as Java RMs do by default.
    #[arg(long)]
    pub merged: bool,
    /// Branch registrations per AT transaction (at-commit, at-rollback).
    #[arg(long, default_value_t = 2)]
    pub branches: u8,
    /// Lock-conflict retries before a transaction gives up and rolls back (Java: 30).
    #[arg(long, default_value_t = 30)]
    pub lock_retries: u32,
    /// Pause between lock-conflict retries (Java: 10 ms).
    #[arg(long, default_value_t = 10)]
    pub lock_retry_interval_ms: u64,
    /// Per-request timeout.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    /// Open loop: transactions in flight per TM connection beyond which new starts wait
    /// (their latency still counts from when they were due).
    #[arg(long, default_value_t = 4096)]
    pub max_in_flight: usize,
    /// Client version reported at registration; it selects the TC's codec quirks.
    #[arg(long, default_value = "2.0.0")]
    pub client_version: String,
    #[arg(long, default_value = "ferrata-bench")]
    pub application_id: String,
    #[arg(long, default_value = "default_tx_group")]
    pub tx_group: String,
    /// DTM server base URL (dtm-saga).
    #[arg(long, default_value = "http://127.0.0.1:36789")]
    pub dtm_url: String,
    /// dtm-saga: ask DTM to answer the submit only once the saga finished.
    #[arg(long)]
    pub dtm_wait_result: bool,
    /// dtm-saga: where the saga branch endpoints listen.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub branch_listen: SocketAddr,
    /// Generator runtime threads. Two let the generator's socket calls overlap, which
    /// measured faster than one on the 2-core reference machine even with the TC beside it.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Free text copied into the report.
    #[arg(long)]
    pub label: Option<String>,
}

/// Refuses anything but loopback: this generator must never load another machine.
pub fn require_loopback(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        bail!("{addr} is not a loopback address; ferrata-bench only drives TCs on this machine")
    }
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} must be >= 0"))
}

impl RunArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.connections == 0 {
            bail!("--connections must be at least 1");
        }
        if self.duration_secs <= 0.0 {
            bail!("--duration-secs must be positive");
        }
        if let Some(rate) = self.rate
            && !(rate > 0.0 && rate.is_finite())
        {
            bail!("--rate must be a positive number of transactions per second");
        }
        if self.tm_connections == Some(0) || self.rm_connections == Some(0) {
            bail!("--tm-connections and --rm-connections must be at least 1");
        }
        if self.branches == 0 {
            bail!("--branches must be at least 1");
        }
        seconds(self.warmup_secs, "--warmup-secs")?;
        Ok(())
    }

    pub fn tm_connections(&self) -> usize {
        self.tm_connections.unwrap_or(self.connections)
    }

    pub fn rm_connections(&self) -> usize {
        self.rm_connections.unwrap_or((self.connections / 8).max(1))
    }

    fn target_addrs(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.target
            .split(',')
            .map(|target| {
                let addr = target
                    .trim()
                    .to_socket_addrs()
                    .with_context(|| format!("bad --target {target}"))?
                    .next()
                    .with_context(|| format!("--target {target} resolves to nothing"))?;
                require_loopback(addr)
            })
            .collect()
    }

    pub fn seata_config(&self) -> anyhow::Result<SeataConfig> {
        let mut plan = TxPlan::new(self.workload);
        plan.branches = self.branches;
        plan.lock_retries = self.lock_retries;
        plan.lock_retry_interval = Duration::from_millis(self.lock_retry_interval_ms);
        Ok(SeataConfig {
            targets: self.target_addrs()?,
            plan,
            connections: self.connections,
            tm_connections: self.tm_connections(),
            rm_connections: self.rm_connections(),
            rate: self.rate,
            warmup: seconds(self.warmup_secs, "--warmup-secs")?,
            duration: seconds(self.duration_secs, "--duration-secs")?,
            request_timeout: Duration::from_millis(self.timeout_ms.max(1)),
            merged: self.merged,
            identity: ClientIdentity {
                application_id: self.application_id.clone(),
                transaction_service_group: self.tx_group.clone(),
                version: self.client_version.clone(),
            },
            max_in_flight: self.max_in_flight.max(1),
            global_timeout_ms: 60_000,
        })
    }

    pub fn dtm_config(&self) -> anyhow::Result<DtmConfig> {
        require_loopback(self.branch_listen)?;
        Ok(DtmConfig {
            dtm_url: self.dtm_url.clone(),
            connections: self.connections,
            rate: self.rate,
            warmup: seconds(self.warmup_secs, "--warmup-secs")?,
            duration: seconds(self.duration_secs, "--duration-secs")?,
            request_timeout: Duration::from_millis(self.timeout_ms.max(1)),
            wait_result: self.dtm_wait_result,
            branch_listen: self.branch_listen,
        })
    }

    pub fn run_info(&self) -> RunInfo {
        let dtm = self.workload == Workload::DtmSaga;
        RunInfo {
            label: self.label.clone(),
            target: if dtm {
                self.dtm_url.clone()
            } else {
                self.target.clone()
            },
            workload: self.workload.name().to_owned(),
            connections: self.connections,
            rate: self.rate,
            warmup_secs: self.warmup_secs,
            duration_secs: self.duration_secs,
            tm_connections: (!dtm).then(|| self.tm_connections()),
            rm_connections: self.workload.has_branches().then(|| self.rm_connections()),
            merged: self.merged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> RunArgs {
        let mut argv = vec!["ferrata-bench", "run"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)
            .expect("valid command line")
            .command
        {
            Command::Run(run) => run,
            other => panic!("not a run: {other:?}"),
        }
    }

    #[test]
    fn the_contracted_flags_parse() {
        let run = parse(&[
            "--target",
            "127.0.0.1:18091",
            "--workload",
            "at-commit",
            "--connections",
            "64",
            "--duration-secs",
            "30",
            "--warmup-secs",
            "5",
            "--rate",
            "20000",
            "--tm-connections",
            "8",
            "--dtm-url",
            "http://127.0.0.1:36789",
            "--json",
            "out.json",
            "--label",
            "x",
        ]);
        run.validate().expect("valid");
        assert_eq!(run.workload, Workload::AtCommit);
        assert_eq!(
            (run.connections, run.tm_connections(), run.rm_connections()),
            (64, 8, 8)
        );
        assert_eq!(run.rate, Some(20000.0));
        let config = run.seata_config().expect("config");
        assert_eq!(config.targets, ["127.0.0.1:18091".parse().expect("addr")]);
        assert_eq!(config.duration, Duration::from_secs(30));
        let info = run.run_info();
        assert_eq!(info.workload, "at-commit");
        assert_eq!(info.rm_connections, Some(8));
        for workload in ["begin-commit", "at-rollback", "hot-key", "dtm-saga"] {
            assert_eq!(parse(&["--workload", workload]).workload.name(), workload);
        }
    }

    #[test]
    fn defaults_and_refusals() {
        let run = parse(&["--workload", "begin-commit", "--connections", "4"]);
        assert_eq!(run.rm_connections(), 1);
        assert_eq!(run.tm_connections(), 4);
        assert!(run.rate.is_none());
        assert_eq!(run.run_info().rm_connections, None);
        assert!(
            parse(&["--workload", "hot-key", "--rate", "0"])
                .validate()
                .is_err()
        );
        assert!(
            parse(&["--workload", "hot-key", "--connections", "0"])
                .validate()
                .is_err()
        );
        let remote = parse(&["--workload", "hot-key", "--target", "10.1.2.3:8091"]);
        assert!(remote.seata_config().is_err());
        let cluster = parse(&[
            "--workload",
            "at-commit",
            "--target",
            "127.0.0.1:1, 127.0.0.1:2",
        ]);
        let ports: Vec<u16> = cluster
            .seata_config()
            .expect("two loopback nodes")
            .targets
            .iter()
            .map(SocketAddr::port)
            .collect();
        assert_eq!(ports, [1, 2]);
        let mixed = parse(&[
            "--workload",
            "at-commit",
            "--target",
            "127.0.0.1:1,10.1.2.3:2",
        ]);
        assert!(
            mixed.seata_config().is_err(),
            "every node must be on loopback"
        );
        assert!(require_loopback("[::1]:8091".parse().expect("addr")).is_ok());
    }
}
