//! `ferrata-bench record …`: the results files scripts/bench does not measure through the
//! generator — the run's settings and machine (`meta.json`), each system's status and how it was
//! obtained (`systems/`), and the open-sessions measurement (`sessions/`).

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::procfs::{self, Pid};
use crate::results::{
    self, Disk, HoldResult, Machine, Meta, ProbeResult, ResultsDir, SCHEMA_VERSION, SessionsRecord,
    SystemStatus, Versions,
};

#[derive(Debug, Clone, Subcommand)]
pub enum Record {
    /// Write meta.json: the settings of this run, the machine and the versions.
    Meta(MetaArgs),
    /// Add the end time and load to meta.json.
    Finish(FinishArgs),
    /// Update `systems/<id>.json`.
    System(SystemArgs),
    /// Write `sessions/<id>.json` from the probe and hold results.
    Sessions(SessionsArgs),
}

#[derive(Debug, Clone, Args)]
pub struct MetaArgs {
    #[arg(long)]
    pub results: PathBuf,
    #[arg(long)]
    pub started_at: String,
    /// /proc/loadavg's first three fields when the script started.
    #[arg(long)]
    pub load_at_start: String,
    #[arg(long)]
    pub duration_secs: u64,
    #[arg(long)]
    pub warmup_secs: u64,
    #[arg(long, num_args = 1..)]
    pub connections: Vec<u64>,
    #[arg(long, num_args = 1..)]
    pub systems: Vec<String>,
    #[arg(long)]
    pub sessions: u64,
    #[arg(long)]
    pub quiet_cores: f64,
    #[arg(long)]
    pub retries: u32,
    #[arg(long)]
    pub ferrata_version: String,
    #[arg(long)]
    pub seata_version: String,
    #[arg(long)]
    pub dtm_version: String,
    /// A directory on the disk the servers write to (for the O_DSYNC write probe).
    #[arg(long)]
    pub scratch: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct FinishArgs {
    #[arg(long)]
    pub results: PathBuf,
    #[arg(long)]
    pub finished_at: String,
    #[arg(long)]
    pub elapsed_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct SystemArgs {
    #[arg(long)]
    pub results: PathBuf,
    #[arg(long)]
    pub id: String,
    #[arg(long, value_enum)]
    pub status: Option<SystemStatus>,
    #[arg(long)]
    pub reason: Option<String>,
    #[arg(long)]
    pub version: Option<String>,
    /// A step taken to obtain or start the system (appended; URLs are left out).
    #[arg(long)]
    pub tried: Vec<String>,
    #[arg(long)]
    pub listen: Option<String>,
    #[arg(long, num_args = 1..)]
    pub workloads: Vec<String>,
    #[arg(long)]
    pub jvm_opts: Option<String>,
    /// A probe result: the cold start. A failed one marks the system failed.
    #[arg(long)]
    pub cold_start: Option<PathBuf>,
    /// A probe result: the store's cold start (DTM's Redis).
    #[arg(long)]
    pub store_cold_start: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct SessionsArgs {
    #[arg(long)]
    pub results: PathBuf,
    #[arg(long)]
    pub system: String,
    #[arg(long)]
    pub sessions: u64,
    /// Probe result of the fresh start.
    #[arg(long)]
    pub start: PathBuf,
    /// `ferrata-bench hold` result.
    #[arg(long)]
    pub hold: PathBuf,
    /// Probe result of the restart after kill -9.
    #[arg(long)]
    pub restart: PathBuf,
    /// The restarted server, whose memory is read now.
    #[arg(long)]
    pub server_pid: Option<u32>,
}

pub fn record(what: &Record) -> anyhow::Result<()> {
    match what {
        Record::Meta(args) => meta(args),
        Record::Finish(args) => finish(args),
        Record::System(args) => system(args),
        Record::Sessions(args) => sessions(args),
    }
}

fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The first line a command prints (stdout, else stderr); empty when it cannot run.
fn first_line(program: &str, args: &[&str]) -> String {
    let Ok(out) = Process::new(program).args(args).output() else {
        return String::new();
    };
    let text = if out.stdout.is_empty() {
        out.stderr
    } else {
        out.stdout
    };
    String::from_utf8_lossy(&text)
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The value of `key: value` lines in a /proc file.
fn proc_value(path: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

fn os_name() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
        .unwrap_or_default()
}

fn kernel() -> String {
    let read = |f: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{f}"))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    format!("{} {}", read("ostype"), read("osrelease"))
}

/// Average latency of one 4 KiB O_DSYNC write in `dir`, in ms (500 writes).
fn dsync_write_ms(dir: &Path) -> Option<f64> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    const WRITES: u32 = 500;
    let path = dir.join("dsync.probe");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DSYNC)
        .open(&path)
        .ok()?;
    let block = [0u8; 4096];
    let started = Instant::now();
    for _ in 0..WRITES {
        file.write_all(&block).ok()?;
    }
    let ms = started.elapsed().as_secs_f64() * 1000.0 / f64::from(WRITES);
    let _ = std::fs::remove_file(&path);
    Some((ms * 1000.0).round() / 1000.0)
}

fn disk(dir: &Path) -> Disk {
    let dir = dir.to_string_lossy();
    let source = first_line("findmnt", &["-no", "SOURCE", "-T", &dir]);
    let fs = first_line("findmnt", &["-no", "FSTYPE", "-T", &dir]);
    let mut device = first_line("lsblk", &["-no", "PKNAME", &source]);
    if device.is_empty() {
        device = source.rsplit('/').next().unwrap_or_default().to_owned();
    }
    let dev = format!("/dev/{device}");
    let lsblk = |column: &str| {
        first_line("lsblk", &["-dno", column, &dev])
            .trim()
            .to_owned()
    };
    Disk {
        rotational: match lsblk("ROTA").as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        },
        model: lsblk("MODEL"),
        size: lsblk("SIZE"),
        device,
        source,
        fs,
        dsync_write_4k_ms: None,
    }
}

fn meta(args: &MetaArgs) -> anyhow::Result<()> {
    let mut disk = disk(&args.scratch);
    disk.dsync_write_4k_ms = dsync_write_ms(&args.scratch);
    let machine = Machine {
        nproc: std::thread::available_parallelism().map_or(0, |n| n.get() as u64),
        cpu_model: proc_value("/proc/cpuinfo", "model name").unwrap_or_default(),
        mem_total_kb: proc_value("/proc/meminfo", "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
        kernel: kernel(),
        os: os_name(),
        disk,
    };
    let redis = first_line("redis-server", &["--version"]);
    let versions = Versions {
        ferrata: args.ferrata_version.clone(),
        rustc: first_line("rustc", &["--version"]),
        seata_server: args.seata_version.clone(),
        java: first_line("java", &["-version"]),
        dtm: args.dtm_version.clone(),
        go: first_line("go", &["version"]),
        redis: redis
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .unwrap_or_default()
            .to_owned(),
    };
    let meta = Meta {
        schema: SCHEMA_VERSION,
        command: "./scripts/bench".to_owned(),
        started_at: args.started_at.clone(),
        load_average_at_start: args.load_at_start.clone(),
        load_average_before_measuring: load_average(),
        duration_secs: args.duration_secs,
        warmup_secs: args.warmup_secs,
        connections: args.connections.clone(),
        systems: args.systems.clone(),
        sessions: args.sessions,
        quiet_cores: args.quiet_cores,
        retries: args.retries,
        machine,
        versions,
        finished_at: None,
        elapsed_secs: None,
        load_average_at_end: None,
    };
    results::write(&ResultsDir(args.results.clone()).meta(), &meta)
}

fn finish(args: &FinishArgs) -> anyhow::Result<()> {
    let path = ResultsDir(args.results.clone()).meta();
    let mut meta: Meta = results::read_versioned(&path)?;
    meta.finished_at = Some(args.finished_at.clone());
    meta.elapsed_secs = Some(args.elapsed_secs);
    meta.load_average_at_end = Some(load_average());
    results::write(&path, &meta)?;
    let layout = ResultsDir(args.results.clone());
    for id in &meta.systems {
        let system = layout.load_system(id)?;
        if system.status != SystemStatus::Ok {
            eprintln!("[bench] {id}: NOT MEASURED: {}", system.reason);
        }
    }
    Ok(())
}

/// A step as recorded: addresses are left out (the module proxy's version list named as such).
fn without_urls(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            if word.starts_with("http://") || word.starts_with("https://") {
                if word.ends_with("/@v/list") {
                    "the module proxy's version list (@v/list)"
                } else {
                    "(URL)"
                }
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn probe_file(path: &Path) -> anyhow::Result<ProbeResult> {
    results::read(path).with_context(|| format!("probe result {}", path.display()))
}

fn system(args: &SystemArgs) -> anyhow::Result<()> {
    let results = ResultsDir(args.results.clone());
    let mut record = results.load_system(&args.id)?;
    for step in &args.tried {
        let step = without_urls(step);
        crate::measure::log(&format!("{}: {step}", args.id));
        record.tried.push(step);
    }
    if let Some(path) = &args.cold_start {
        let probe = probe_file(path)?;
        let ms = |v: Option<f64>| v.map_or("?".to_owned(), |ms| format!("{ms} ms"));
        if probe.ok {
            crate::measure::log(&format!(
                "{}: cold start {} to first accepted connection, {} to first begin",
                args.id,
                ms(probe.ms_to_accept),
                ms(probe.ms_to_first_begin)
            ));
        } else {
            record.status = SystemStatus::Failed;
            record.reason = format!(
                "did not start serving: {}",
                probe.reason.as_deref().unwrap_or("unknown")
            );
        }
        record.cold_start = Some(probe);
    }
    if let Some(path) = &args.store_cold_start {
        record.store_cold_start = Some(probe_file(path)?);
    }
    if let Some(status) = args.status {
        record.status = status;
    }
    if let Some(reason) = &args.reason {
        record.reason.clone_from(reason);
    }
    if let Some(version) = &args.version {
        record.version.clone_from(version);
    }
    if args.listen.is_some() {
        record.listen.clone_from(&args.listen);
    }
    if !args.workloads.is_empty() {
        record.workloads.clone_from(&args.workloads);
    }
    if args.jvm_opts.is_some() {
        record.jvm_opts.clone_from(&args.jvm_opts);
    }
    if record.status == SystemStatus::Failed && (args.status.is_some() || args.cold_start.is_some())
    {
        eprintln!(
            "\n[bench] *** {} could not be measured: {}\n",
            args.id, record.reason
        );
    }
    results::write(&results.system(&args.id), &record)
}

/// The probe or hold result in `path`, if that step ran.
fn optional<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<Option<T>> {
    if path.is_file() {
        results::read(path).map(Some)
    } else {
        Ok(None)
    }
}

fn sessions(args: &SessionsArgs) -> anyhow::Result<()> {
    let start: Option<ProbeResult> = optional(&args.start)?;
    let hold: Option<HoldResult> = optional(&args.hold)?;
    let restart: Option<ProbeResult> = optional(&args.restart)?;
    let reason = |probe: &Option<ProbeResult>| {
        probe
            .as_ref()
            .and_then(|p| p.reason.clone())
            .unwrap_or_else(|| "unknown".to_owned())
    };
    let failure = if !start.as_ref().is_some_and(|p| p.ok) {
        Some(format!("did not start: {}", reason(&start)))
    } else if hold.as_ref().is_none_or(|h| h.begun != args.sessions) {
        Some(match &hold {
            Some(h) => format!(
                "could not hold {} sessions: begun {}, failed {}, errors {:?}",
                args.sessions, h.begun, h.failed, h.errors
            ),
            None => format!("could not hold {} sessions: no result", args.sessions),
        })
    } else if !restart.as_ref().is_some_and(|p| p.ok) {
        Some(format!(
            "did not serve again after kill -9: {}",
            reason(&restart)
        ))
    } else {
        None
    };
    let server = args.server_pid.map(Pid::Other);
    let record = SessionsRecord {
        schema: SCHEMA_VERSION,
        system: args.system.clone(),
        sessions: args.sessions,
        status: if failure.is_some() {
            SystemStatus::Failed
        } else {
            SystemStatus::Ok
        },
        reason: failure.clone().unwrap_or_default(),
        start,
        hold,
        restart,
        rss_after_restart_kb: server.and_then(|p| procfs::status_kb(p, "VmRSS")),
        rss_peak_after_restart_kb: server.and_then(|p| procfs::status_kb(p, "VmHWM")),
    };
    match (
        &failure,
        record.restart.as_ref().and_then(|r| r.ms_to_first_begin),
    ) {
        (Some(reason), _) => {
            crate::measure::log(&format!("WARNING: {} sessions: {reason}", args.system));
        }
        (None, Some(ms)) => crate::measure::log(&format!(
            "{}: restart with {} in flight: first begin after {ms} ms",
            args.system, args.sessions
        )),
        (None, None) => {}
    }
    results::write(
        &ResultsDir(args.results.clone()).sessions(&args.system),
        &record,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_steps_leave_addresses_out() {
        assert_eq!(
            without_urls("fetched https://proxy.golang.org/x/@v/list and http://a/b ok"),
            "fetched the module proxy's version list (@v/list) and (URL) ok"
        );
    }

    #[test]
    fn sessions_status_names_the_first_failed_step() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = |name: &str| dir.path().join(name);
        let ok = ProbeResult {
            ok: true,
            ms_to_first_begin: Some(12.5),
            ..ProbeResult::default()
        };
        results::write(&path("start.json"), &ok).expect("write");
        let hold = HoldResult {
            sessions_requested: 10,
            begun: 10,
            ..HoldResult::default()
        };
        results::write(&path("hold.json"), &hold).expect("write");
        let args = SessionsArgs {
            results: path("results"),
            system: "ferrata".into(),
            sessions: 10,
            start: path("start.json"),
            hold: path("hold.json"),
            restart: path("restart.json"),
            server_pid: None,
        };
        sessions(&args).expect("record");
        let results = ResultsDir(path("results"));
        let record: SessionsRecord =
            results::read_versioned(&results.sessions("ferrata")).expect("read");
        assert_eq!(record.status, SystemStatus::Failed);
        assert!(
            record.reason.starts_with("did not serve again"),
            "{}",
            record.reason
        );

        results::write(&path("restart.json"), &ok).expect("write");
        sessions(&args).expect("record");
        let record: SessionsRecord =
            results::read_versioned(&results.sessions("ferrata")).expect("read");
        assert_eq!(
            (record.status, record.reason.as_str()),
            (SystemStatus::Ok, "")
        );
        assert_eq!(record.hold.map(|h| h.begun), Some(10));
    }
}
