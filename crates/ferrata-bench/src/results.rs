//! The schema of everything a `scripts/bench` run leaves in `target/bench/results/`: typed
//! records that `ferrata-bench` writes and `bench-report` reads. Every file carries
//! [`SCHEMA_VERSION`]; a reader refuses any other version instead of guessing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::stats::LatencySummary;

/// Bumped whenever a field changes meaning, is renamed or removed.
pub const SCHEMA_VERSION: u32 = 1;

fn schema_version() -> u32 {
    SCHEMA_VERSION
}

fn first_round() -> u32 {
    1
}

/// `closed` (back-to-back per connection) or `open` (fixed arrival rate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Closed,
    Open,
}

/// The generator's report of one run (`ferrata-bench run --json`); the field names are also
/// read by scripts/bench-compare.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    #[serde(default = "schema_version")]
    pub schema: u32,
    pub label: Option<String>,
    pub target: String,
    pub workload: String,
    pub mode: Mode,
    pub connections: usize,
    /// Open-loop arrival rate (tx/s, total); null in closed loop.
    pub rate: Option<f64>,
    /// Length of the measurement window (warm-up excluded).
    pub duration_secs: f64,
    pub transactions: u64,
    pub tx_per_sec: f64,
    pub errors: BTreeMap<String, u64>,
    pub latency_us: BTreeMap<String, LatencySummary>,
    /// Lock conflicts answered to branch registrations (retried, not errors).
    pub conflicts: u64,
    pub warmup_secs: f64,
    pub tm_connections: Option<usize>,
    pub rm_connections: Option<usize>,
    pub merged: bool,
    pub phase2_commits: u64,
    pub phase2_rollbacks: u64,
}

/// `meta.json`: the settings of the run, the machine and the versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Meta {
    pub schema: u32,
    pub command: String,
    pub started_at: String,
    pub load_average_at_start: String,
    pub load_average_before_measuring: String,
    pub duration_secs: u64,
    pub warmup_secs: u64,
    pub connections: Vec<u64>,
    pub systems: Vec<String>,
    pub sessions: u64,
    /// Other load (cores) above which a run was repeated.
    pub quiet_cores: f64,
    pub retries: u32,
    pub machine: Machine,
    pub versions: Versions,
    /// Set by `ferrata-bench record finish`.
    pub finished_at: Option<String>,
    pub elapsed_secs: Option<u64>,
    pub load_average_at_end: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Machine {
    pub nproc: u64,
    pub cpu_model: String,
    pub mem_total_kb: u64,
    pub kernel: String,
    pub os: String,
    pub disk: Disk,
}

/// The disk holding the results (and the servers' data directories).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Disk {
    pub device: String,
    pub source: String,
    pub fs: String,
    /// The kernel's rotational flag; None when it could not be read.
    pub rotational: Option<bool>,
    pub model: String,
    pub size: String,
    /// Average latency of one 4 KiB O_DSYNC write: the cost floor of an fsync'd commit.
    pub dsync_write_4k_ms: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Versions {
    pub ferrata: String,
    pub rustc: String,
    pub seata_server: String,
    pub java: String,
    pub dtm: String,
    pub go: String,
    pub redis: String,
}

/// Whether a system could be measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SystemStatus {
    #[default]
    Pending,
    Ok,
    Failed,
}

/// `systems/<id>.json`: one system over the whole run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SystemRecord {
    pub schema: u32,
    pub id: String,
    pub status: SystemStatus,
    /// Why it could not be measured (status `failed`).
    pub reason: String,
    pub version: String,
    /// The steps taken to obtain and start it, URLs left out.
    pub tried: Vec<String>,
    pub listen: Option<String>,
    pub workloads: Vec<String>,
    /// seata-server only: the JVM options it ran with.
    pub jvm_opts: Option<String>,
    /// Exec to first accepted connection (and, for Seata TCs, first successful begin).
    pub cold_start: Option<ProbeResult>,
    /// DTM only: its Redis store's cold start.
    pub store_cold_start: Option<ProbeResult>,
    /// Lifetime figures of the server process of the workload runs, read before stopping it.
    pub totals: Option<Totals>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    pub log_bytes: Option<u64>,
    pub rss_at_end_kb: Option<u64>,
    pub lifetime_cpu_seconds: Option<f64>,
    pub store_rss_at_end_kb: Option<u64>,
    pub store_lifetime_cpu_seconds: Option<f64>,
}

/// What `ferrata-bench probe` saw while a server started.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProbeResult {
    pub ok: bool,
    pub ms_to_accept: Option<f64>,
    /// Seata TCs: the first successful GlobalBegin (absent with `--accept-only`).
    pub ms_to_first_begin: Option<f64>,
    pub attempts: u64,
    /// `--check-xids`: GlobalStatus code of each saved XID (None: the TC did not know it).
    pub xid_status: BTreeMap<String, Option<u8>>,
    pub reason: Option<String>,
}

/// Samples of one process over a run's measured window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProcessSamples {
    /// VmHWM, reset before the run.
    pub rss_peak_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    /// user + system from the end of the warm-up to the end of the run.
    pub cpu_seconds: f64,
}

/// The machine and the server during one attempt of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerSamples {
    pub alive: bool,
    pub server: ProcessSamples,
    /// DTM's Redis.
    pub store: Option<ProcessSamples>,
    /// The whole attempt, warm-up included.
    pub wall_secs: f64,
    /// From the end of the warm-up to the end of the run.
    pub cpu_window_secs: f64,
    /// Time charged to processes and kernel threads on all cores over the window.
    pub machine_busy_cpu_seconds: f64,
    /// Interrupt and softirq time over the window (on loopback mostly the network stack).
    pub machine_irq_cpu_seconds: f64,
    /// The generator's own CPU over the whole attempt.
    pub generator_cpu_seconds: f64,
    /// Cores the rest of the machine used during the window.
    pub other_cores: f64,
}

/// One attempt of a run (runs on a busy machine are repeated).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub other_cores: f64,
    pub other_cores_before: f64,
    pub tx_per_sec: Option<f64>,
}

/// `runs/<system>__<workload>__c<N>[__r<round>].json`: one measured run, the cleanest attempt
/// kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema: u32,
    pub system: String,
    pub workload: String,
    pub connections: u64,
    /// Which of the interleaved rounds of the system's measurements this run belongs to (1
    /// when it is measured once).
    #[serde(default = "first_round")]
    pub round: u32,
    /// The generator's report; None when the run failed.
    pub bench: Option<Report>,
    /// Why the generator failed, if it did.
    pub bench_error: Option<String>,
    pub samples: ServerSamples,
    pub attempts: Vec<Attempt>,
    pub kept_attempt: u32,
}

/// What `ferrata-bench hold` did: open global transactions left open, and the RSS around it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldResult {
    pub sessions_requested: u64,
    pub begun: u64,
    pub failed: u64,
    pub errors: BTreeMap<String, u64>,
    pub elapsed_secs: f64,
    pub begins_per_sec: Option<f64>,
    pub connections: usize,
    pub timeout_ms: i32,
    pub rss_idle_kb: Option<u64>,
    pub rss_with_sessions_kb: Option<u64>,
    pub rss_peak_while_holding_kb: Option<u64>,
}

/// `sessions/<id>.json`: many open sessions, then kill -9 and restart.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SessionsRecord {
    pub schema: u32,
    pub system: String,
    pub sessions: u64,
    pub status: SystemStatus,
    pub reason: String,
    pub start: Option<ProbeResult>,
    pub hold: Option<HoldResult>,
    pub restart: Option<ProbeResult>,
    pub rss_after_restart_kb: Option<u64>,
    pub rss_peak_after_restart_kb: Option<u64>,
}

/// Files that carry a schema version.
pub trait Versioned {
    fn schema(&self) -> u32;
}

macro_rules! versioned {
    ($($t:ty),*) => {$(
        impl Versioned for $t {
            fn schema(&self) -> u32 {
                self.schema
            }
        }
    )*};
}
versioned!(Report, Meta, SystemRecord, RunRecord, SessionsRecord);

/// Reads one JSON file of type `T`.
pub fn read<T: DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} does not parse", path.display()))
}

/// Reads a versioned results file, refusing other schema versions.
pub fn read_versioned<T: DeserializeOwned + Versioned>(path: &Path) -> anyhow::Result<T> {
    let value: T = read(path)?;
    if value.schema() != SCHEMA_VERSION {
        bail!(
            "{} has results schema {}, this build reads {SCHEMA_VERSION}: re-run scripts/bench",
            path.display(),
            value.schema()
        );
    }
    Ok(value)
}

/// Writes `value` as pretty JSON, through a temporary file so readers never see half of it.
pub fn write<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let text = serde_json::to_string_pretty(value)? + "\n";
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The layout of a results directory.
#[derive(Debug, Clone)]
pub struct ResultsDir(pub PathBuf);

impl ResultsDir {
    pub fn meta(&self) -> PathBuf {
        self.0.join("meta.json")
    }
    pub fn system(&self, id: &str) -> PathBuf {
        self.0.join("systems").join(format!("{id}.json"))
    }
    pub fn sessions(&self, id: &str) -> PathBuf {
        self.0.join("sessions").join(format!("{id}.json"))
    }
    pub fn run(&self, system: &str, workload: &str, connections: u64, round: u32) -> PathBuf {
        let round = if round > 1 {
            format!("__r{round}")
        } else {
            String::new()
        };
        self.0
            .join("runs")
            .join(format!("{system}__{workload}__c{connections}{round}.json"))
    }

    /// The system's record so far, or a fresh one.
    pub fn load_system(&self, id: &str) -> anyhow::Result<SystemRecord> {
        let path = self.system(id);
        if path.is_file() {
            read_versioned(&path)
        } else {
            Ok(SystemRecord {
                schema: SCHEMA_VERSION,
                id: id.to_owned(),
                ..SystemRecord::default()
            })
        }
    }

    /// Every JSON file of a subdirectory, sorted; none when it does not exist.
    pub fn files(&self, sub: &str) -> anyhow::Result<Vec<PathBuf>> {
        let dir = self.0.join(sub);
        if !dir.is_dir() {
            return Ok(Vec::new());
        }
        let mut files = Vec::new();
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
        files.sort();
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_other_versions_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let results = ResultsDir(dir.path().to_path_buf());
        let mut system = results.load_system("ferrata").expect("fresh record");
        assert_eq!(
            (system.schema, system.status),
            (SCHEMA_VERSION, SystemStatus::Pending)
        );
        system.status = SystemStatus::Ok;
        system.tried.push("built".into());
        write(&results.system("ferrata"), &system).expect("write");
        let back = results.load_system("ferrata").expect("read back");
        assert_eq!(back.status, SystemStatus::Ok);
        assert_eq!(back.tried, ["built"]);

        system.schema = SCHEMA_VERSION + 1;
        write(&results.system("ferrata"), &system).expect("write");
        let error = results.load_system("ferrata").expect_err("newer schema");
        assert!(error.to_string().contains("schema"), "{error:#}");
        assert_eq!(
            results.files("systems").expect("list"),
            [results.system("ferrata")]
        );
    }
}
