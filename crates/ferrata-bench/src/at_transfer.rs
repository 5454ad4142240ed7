//! `ferrata-bench at-transfer`: the price of AT on real databases. Each transaction moves money
//! between two accounts, one row of `at_bench_account` on MariaDB and one on PostgreSQL (random
//! accounts out of `--accounts` per database, so conflicts are rare), with one UPDATE on each:
//!
//! * `local`: two plain local transactions (BEGIN, UPDATE, COMMIT on each database), no TC;
//! * `at`: a global transaction through ferrata-at (begin, one `AtDataSource::execute` per
//!   database, each its own AT branch, then global commit);
//! * `java`: the command after `--` (seata-all's DataSourceProxy, `interop/java`'s
//!   `AtTransferBench`) does the same work; it prints `window-start` and `window-end` on stdout
//!   around its measured window, then one JSON line [`JavaResult`].
//!
//! Around the measured window it samples the TC's CPU time (`--server-pid`), MariaDB's
//! `SHOW GLOBAL STATUS` statement counters (`Questions`, `Com_*`: every statement a client
//! sent, so round trips) and PostgreSQL's `pg_stat_database` transaction counters, and reports
//! them per transaction ([`TransferReport`]). After the run it checks that the money is all
//! there (the sum of both tables), waiting for asynchronous phase two.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ferrata::{Client, ClientConfig, TransactionOptions};
use ferrata_at::{AtDataSource, query};
use serde::{Deserialize, Serialize};
use sqlx::{MySqlPool, PgPool};
use tokio::io::AsyncBufReadExt;

use crate::procfs::{self, Pid, TICKS_PER_SEC};
use crate::results::SCHEMA_VERSION;
use crate::stats::{LatencySummary, Recorder, Stats, Window, kind, median};

/// The account table on both databases, and the undo table AT writes beside it.
pub const ACCOUNT_TABLE: &str = "at_bench_account";
pub const UNDO_TABLE: &str = "at_bench_undo";
/// Every account's balance after setup.
pub const OPENING_BALANCE: i64 = 1_000;

/// How the transfer is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransferMode {
    /// Two plain local transactions, no TC.
    Local,
    /// A global transaction with two ferrata-at branches.
    At,
    /// The external command after `--` (seata-all's AT).
    Java,
}

#[derive(Debug, Clone, clap::Args)]
pub struct AtTransferArgs {
    /// The TC (host:port, loopback only); not used by `--mode local`.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub target: String,
    #[arg(long, env = "FERRATA_MYSQL_URL")]
    pub mysql_url: String,
    #[arg(long, env = "FERRATA_POSTGRES_URL")]
    pub postgres_url: String,
    #[arg(long, value_enum)]
    pub mode: TransferMode,
    /// Concurrent transactions (closed loop).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    #[arg(long, default_value_t = 10.0)]
    pub duration_secs: f64,
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// Accounts per database.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: i64,
    /// Recreate and refill the account tables first (and the undo tables, emptied).
    #[arg(long)]
    pub setup: bool,
    /// The TC process: its CPU time over the measured window is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Generator runtime threads.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub label: Option<String>,
    /// `--mode java`: the driver command and its arguments.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// Statement and transaction counters of both databases over the measured window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DbCounters {
    /// MariaDB `SHOW GLOBAL STATUS`: `Questions` and the `Com_*` counters that moved (the
    /// sampling statements themselves taken out).
    pub mariadb: BTreeMap<String, u64>,
    /// PostgreSQL `pg_stat_database` of the database: `xact_commit`, `xact_rollback`,
    /// `tup_updated`, `tup_inserted`, `tup_deleted` (backends report every ~1 s, so these lag
    /// the window by up to a second at each end).
    pub postgres: BTreeMap<String, u64>,
}

/// The report of one `at-transfer` run (`--json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransferReport {
    pub schema: u32,
    pub label: Option<String>,
    pub mode: TransferMode,
    pub concurrency: usize,
    pub accounts: i64,
    pub warmup_secs: f64,
    pub duration_secs: f64,
    pub transactions: u64,
    pub tx_per_sec: f64,
    pub errors: BTreeMap<String, u64>,
    /// Whole transactions as the client sees them.
    pub latency_us: Option<LatencySummary>,
    /// TC CPU (user + system) over the measured window; None without `--server-pid`.
    pub tc_cpu_seconds: Option<f64>,
    pub tc_cpu_us_per_tx: Option<f64>,
    pub counters: DbCounters,
    /// MariaDB round trips per transaction: statements (`Questions`, each one round trip)
    /// plus `Com_admin_commands` (pings, which `Questions` leaves out).
    pub mariadb_round_trips_per_tx: Option<f64>,
    /// PostgreSQL transactions (commits + rollbacks) per transaction.
    pub postgres_transactions_per_tx: Option<f64>,
    /// The sum of all balances was unchanged after the run (phase two included).
    pub total_kept: bool,
}

/// What the Java driver prints as its last stdout line.
#[derive(Debug, Clone, Deserialize)]
pub struct JavaResult {
    pub transactions: u64,
    #[serde(default)]
    pub errors: BTreeMap<String, u64>,
    pub latency_us: Option<LatencySummary>,
}

impl AtTransferArgs {
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.concurrency == 0 || self.accounts < 2 {
            bail!("--concurrency must be at least 1 and --accounts at least 2");
        }
        if self.duration_secs <= 0.0 || self.warmup_secs < 0.0 {
            bail!("--duration-secs must be positive and --warmup-secs not negative");
        }
        if (self.mode == TransferMode::Java) == self.command.is_empty() {
            bail!("--mode java takes the driver command after `--`; the other modes take none");
        }
        Ok(())
    }
}

/// The sampled counters at one moment.
#[derive(Debug, Clone)]
struct Snapshot {
    tc_ticks: Option<u64>,
    mariadb: BTreeMap<String, u64>,
    postgres: BTreeMap<String, u64>,
}

const PG_COUNTERS: [&str; 5] = [
    "xact_commit",
    "xact_rollback",
    "tup_updated",
    "tup_inserted",
    "tup_deleted",
];

/// Connections of their own for sampling the counters.
struct Sampler {
    mysql: MySqlPool,
    postgres: PgPool,
    server: Option<Pid>,
}

impl Sampler {
    async fn take(&self) -> anyhow::Result<Snapshot> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SHOW GLOBAL STATUS WHERE Variable_name = 'Questions' OR Variable_name LIKE 'Com\\_%'",
        )
        .fetch_all(&self.mysql)
        .await?;
        let mariadb = rows
            .into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect();
        let columns = PG_COUNTERS
            .iter()
            .map(|c| format!("{c}::bigint"))
            .collect::<Vec<_>>()
            .join(", ");
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(&format!(
            "SELECT {columns} FROM pg_stat_database WHERE datname = current_database()"
        ))
        .fetch_one(&self.postgres)
        .await?;
        let values = [row.0, row.1, row.2, row.3, row.4];
        let postgres = PG_COUNTERS
            .iter()
            .zip(values)
            .map(|(k, v)| ((*k).to_owned(), u64::try_from(v).unwrap_or(0)))
            .collect();
        Ok(Snapshot {
            tc_ticks: self.server.and_then(procfs::cpu_ticks),
            mariadb,
            postgres,
        })
    }
}

/// `after - before` for the counters that moved; `own` is taken off every MariaDB counter the
/// sampling itself bumps (one SHOW STATUS: one question, one Com_show_status).
fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    own: &[&str],
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, a)| {
            let mut d = a.saturating_sub(*before.get(k).unwrap_or(&0));
            if own.contains(&k.as_str()) {
                d = d.saturating_sub(1);
            }
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Recreates the account tables with `accounts` rows each and empties the undo tables.
pub async fn setup(mysql: &MySqlPool, postgres: &PgPool, accounts: i64) -> anyhow::Result<()> {
    let create =
        format!("CREATE TABLE {ACCOUNT_TABLE} (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)");
    let drop_table = format!("DROP TABLE IF EXISTS {ACCOUNT_TABLE}");
    for sql in [&drop_table, &create] {
        sqlx::query(sql).execute(mysql).await?;
        sqlx::query(sql).execute(postgres).await?;
    }
    // MariaDB stops recursive CTEs after 1,000 iterations by default.
    let mut conn = mysql.acquire().await?;
    sqlx::query("SET SESSION max_recursive_iterations = 100000000")
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO {ACCOUNT_TABLE} (id, balance) WITH RECURSIVE n (i) AS \
         (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?) SELECT i, ? FROM n"
    ))
    .bind(accounts)
    .bind(OPENING_BALANCE)
    .execute(&mut *conn)
    .await?;
    drop(conn);
    sqlx::query(&format!(
        "INSERT INTO {ACCOUNT_TABLE} (id, balance) SELECT i, $2 FROM generate_series(0, $1 - 1) AS i"
    ))
    .bind(accounts)
    .bind(OPENING_BALANCE)
    .execute(postgres)
    .await?;
    // The undo tables are created by AtDataSource when missing; empty them if they exist.
    let _ = sqlx::query(&format!("DELETE FROM {UNDO_TABLE}"))
        .execute(mysql)
        .await;
    let _ = sqlx::query(&format!("DELETE FROM {UNDO_TABLE}"))
        .execute(postgres)
        .await;
    Ok(())
}

/// The sum of every balance on both databases.
async fn total(mysql: &MySqlPool, postgres: &PgPool) -> anyhow::Result<i64> {
    let sql = format!("SELECT CAST(COALESCE(SUM(balance), 0) AS SIGNED) FROM {ACCOUNT_TABLE}");
    let (left,): (i64,) = sqlx::query_as(&sql).fetch_one(mysql).await?;
    let sql = format!("SELECT COALESCE(SUM(balance), 0)::bigint FROM {ACCOUNT_TABLE}");
    let (right,): (i64,) = sqlx::query_as(&sql).fetch_one(postgres).await?;
    Ok(left + right)
}

/// A small deterministic generator (xorshift64*), one per worker.
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

const DEBIT: &str = "UPDATE at_bench_account SET balance = balance - ? WHERE id = ?";
const CREDIT: &str = "UPDATE at_bench_account SET balance = balance + $1 WHERE id = $2";

/// The two data sources of the `at` mode (also what creates the undo tables).
struct AtSources {
    client: Client,
    left: AtDataSource<sqlx::MySql>,
    right: AtDataSource<sqlx::Postgres>,
}

async fn at_sources(
    target: &str,
    mysql: &MySqlPool,
    postgres: &PgPool,
) -> anyhow::Result<AtSources> {
    let config = ClientConfig::builder("ferrata-bench-at-transfer")
        .tc_addresses([target.to_owned()])
        .build()?;
    let client = Client::connect(config).await?;
    let left = AtDataSource::builder(mysql.clone(), client.clone())
        .undo_table(UNDO_TABLE)
        .build()
        .await?;
    let right = AtDataSource::builder(postgres.clone(), client.clone())
        .undo_table(UNDO_TABLE)
        .build()
        .await?;
    Ok(AtSources {
        client,
        left,
        right,
    })
}

/// One transfer; Err is the error kind counted.
async fn transfer(
    mode: TransferMode,
    mysql: &MySqlPool,
    postgres: &PgPool,
    at: Option<&AtSources>,
    (from, to, amount): (i64, i64, i64),
) -> Result<(), String> {
    match (mode, at) {
        (TransferMode::At, Some(at)) => {
            let (left, right) = (at.left.clone(), at.right.clone());
            at.client
                .in_global_transaction(
                    TransactionOptions::new("at-transfer").timeout(Duration::from_secs(60)),
                    |_| async move {
                        left.execute(query(DEBIT).bind(amount).bind(from)).await?;
                        right.execute(query(CREDIT).bind(amount).bind(to)).await?;
                        Ok::<_, ferrata_at::AtError>(())
                    },
                )
                .await
                .map_err(|e| match e {
                    ferrata::TransactionError::Aborted(e) => format!("aborted: {e}"),
                    other => format!("global: {other}"),
                })
        }
        _ => {
            let local = async {
                let mut tx = mysql.begin().await?;
                sqlx::query(DEBIT)
                    .bind(amount)
                    .bind(from)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                let mut tx = postgres.begin().await?;
                sqlx::query(CREDIT)
                    .bind(amount)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok::<_, sqlx::Error>(())
            };
            local.await.map_err(|e| format!("local: {e}"))
        }
    }
}

fn pool_options<DB: sqlx::Database>(size: u32) -> sqlx::pool::PoolOptions<DB> {
    // No ping before each acquire: it would add a round trip per statement to every mode.
    sqlx::pool::PoolOptions::new()
        .max_connections(size)
        .min_connections(size)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(30))
}

/// Runs one `at-transfer` on the current runtime.
pub async fn run(args: &AtTransferArgs) -> anyhow::Result<TransferReport> {
    args.validate()?;
    crate::cli::require_loopback(
        tokio::net::lookup_host(&args.target)
            .await?
            .next()
            .context("--target resolves to nothing")?,
    )?;
    // Workers' connections, plus a few for AT's asynchronous undo-log deletion.
    let size = u32::try_from(args.concurrency + 2).unwrap_or(u32::MAX);
    let mysql: MySqlPool = pool_options(size).connect(&args.mysql_url).await?;
    let postgres: PgPool = pool_options(size).connect(&args.postgres_url).await?;
    let sampler = Sampler {
        mysql: pool_options(1).connect(&args.mysql_url).await?,
        postgres: pool_options(1).connect(&args.postgres_url).await?,
        server: args.server_pid.map(Pid::Other),
    };
    if args.setup {
        setup(&mysql, &postgres, args.accounts).await?;
    }
    let at = match args.mode {
        TransferMode::Local => None,
        TransferMode::At => Some(Arc::new(at_sources(&args.target, &mysql, &postgres).await?)),
        TransferMode::Java => {
            // Only to create the undo tables (Seata's DDL); the Java driver registers its own.
            drop(at_sources(&args.target, &mysql, &postgres).await?);
            None
        }
    };
    let expected = total(&mysql, &postgres).await?;
    let warmup = Duration::from_secs_f64(args.warmup_secs);
    let duration = Duration::from_secs_f64(args.duration_secs);

    let run = if args.mode == TransferMode::Java {
        run_java(args, &sampler).await?
    } else {
        let origin = Instant::now();
        let window = Window::new(origin, warmup, duration);
        let stop = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for worker in 0..args.concurrency {
            let (mysql, postgres, at, stop) =
                (mysql.clone(), postgres.clone(), at.clone(), stop.clone());
            let (mode, accounts) = (args.mode, args.accounts as u64);
            workers.push(tokio::spawn(async move {
                let mut recorder = Recorder::new(window);
                let mut dice = Dice(0x9E37_79B9_7F4A_7C15 ^ (worker as u64 + 1));
                while !stop.load(Ordering::Relaxed) {
                    let from = dice.below(accounts) as i64;
                    let to = dice.below(accounts) as i64;
                    let amount = 1 + dice.below(100) as i64;
                    let started = Instant::now();
                    let result =
                        transfer(mode, &mysql, &postgres, at.as_deref(), (from, to, amount)).await;
                    let now = Instant::now();
                    match result {
                        Ok(()) => recorder.transaction(started, now),
                        Err(kind) => {
                            if recorder.window.contains(now) {
                                crate::measure::log(&format!("transfer failed: {kind}"));
                            }
                            recorder.error(kind.split(':').next().unwrap_or("error"), now);
                        }
                    }
                    if now >= window.end {
                        break;
                    }
                }
                recorder.stats
            }));
        }
        tokio::time::sleep_until(window.start.into()).await;
        let before = sampler.take().await?;
        let t0 = Instant::now();
        tokio::time::sleep_until(window.end.into()).await;
        let after = sampler.take().await?;
        let measured = t0.elapsed();
        stop.store(true, Ordering::Relaxed);
        let mut stats = Stats::default();
        for worker in workers {
            stats.merge(&worker.await?);
        }
        let latency = stats.latency_summary().remove(kind::TRANSACTION);
        Measured {
            stats,
            latency,
            before,
            after,
            measured,
        }
    };

    // Money is neither created nor lost (a rolled-back AT transfer is undone in phase two).
    let mut total_kept = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if total(&mysql, &postgres).await? == expected {
            total_kept = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(at);
    Ok(report(args, run, total_kept))
}

/// What the measured window gave.
struct Measured {
    stats: Stats,
    /// Whole-transaction percentiles (the Java driver computes its own).
    latency: Option<LatencySummary>,
    before: Snapshot,
    after: Snapshot,
    measured: Duration,
}

fn report(args: &AtTransferArgs, run: Measured, total_kept: bool) -> TransferReport {
    let Measured {
        stats,
        latency,
        before,
        after,
        measured,
    } = run;
    let tx = stats.transactions;
    let per_tx = |v: u64| (tx > 0).then(|| round3(v as f64 / tx as f64));
    let counters = DbCounters {
        mariadb: delta(
            &before.mariadb,
            &after.mariadb,
            &["Questions", "Com_show_status"],
        ),
        postgres: delta(&before.postgres, &after.postgres, &["xact_commit"]),
    };
    let tc_cpu_seconds = match (before.tc_ticks, after.tc_ticks) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / TICKS_PER_SEC),
        _ => None,
    };
    let pg_tx = counters.postgres.get("xact_commit").copied().unwrap_or(0)
        + counters.postgres.get("xact_rollback").copied().unwrap_or(0);
    TransferReport {
        schema: SCHEMA_VERSION,
        label: args.label.clone(),
        mode: args.mode,
        concurrency: args.concurrency,
        accounts: args.accounts,
        warmup_secs: args.warmup_secs,
        duration_secs: round3(measured.as_secs_f64()),
        transactions: tx,
        tx_per_sec: round3(tx as f64 / measured.as_secs_f64().max(1e-9)),
        errors: stats.errors().clone(),
        latency_us: latency,
        tc_cpu_us_per_tx: tc_cpu_seconds.and_then(|s| per_tx((s * 1e6) as u64)),
        tc_cpu_seconds,
        mariadb_round_trips_per_tx: per_tx(
            ["Questions", "Com_admin_commands"]
                .iter()
                .map(|k| counters.mariadb.get(*k).copied().unwrap_or(0))
                .sum(),
        ),
        postgres_transactions_per_tx: per_tx(pg_tx),
        counters,
        total_kept,
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Runs the Java driver, sampling at its `window-start` and `window-end` lines.
async fn run_java(args: &AtTransferArgs, sampler: &Sampler) -> anyhow::Result<Measured> {
    let mut child = tokio::process::Command::new(&args.command[0])
        .args(&args.command[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.command[0]))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let (mut before, mut after, mut t0, mut measured) = (None, None, None, Duration::ZERO);
    let mut result: Option<JavaResult> = None;
    let limit = Duration::from_secs_f64(args.warmup_secs + args.duration_secs + 180.0);
    let reading = async {
        while let Some(line) = lines.next_line().await? {
            match line.trim() {
                "window-start" => {
                    before = Some(sampler.take().await?);
                    t0 = Some(Instant::now());
                }
                "window-end" => {
                    after = Some(sampler.take().await?);
                    measured = t0.map_or(Duration::ZERO, |t| t.elapsed());
                }
                json if json.starts_with('{') => result = Some(serde_json::from_str(json)?),
                _ => {}
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(limit, reading)
        .await
        .context("the Java driver did not finish in time")??;
    let status = child.wait().await?;
    let (Some(before), Some(after), Some(result)) = (before, after, result) else {
        bail!("the Java driver ended ({status}) without its window and result lines");
    };
    let mut stats = Stats::default();
    stats.transactions = result.transactions;
    for (kind, count) in result.errors {
        for _ in 0..count {
            stats.error(&kind);
        }
    }
    Ok(Measured {
        stats,
        latency: result.latency_us,
        before,
        after,
        measured,
    })
}

/// Prints one line per run (stdout).
pub fn print(report: &TransferReport) {
    let (p50, p99) = report
        .latency_us
        .as_ref()
        .map_or((0, 0), |l| (l.p50, l.p99));
    let opt = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1}"));
    println!(
        "at-transfer {:?} c={} : {:.0} tx/s, p50 {p50} µs, p99 {p99} µs, errors {}, TC CPU {} µs/tx, \
         MariaDB round trips/tx {}, PostgreSQL transactions/tx {}, total kept: {}",
        report.mode,
        report.concurrency,
        report.tx_per_sec,
        report.errors.values().sum::<u64>(),
        opt(report.tc_cpu_us_per_tx),
        opt(report.mariadb_round_trips_per_tx),
        opt(report.postgres_transactions_per_tx),
        report.total_kept
    );
    for (name, count) in &report.counters.mariadb {
        println!("  mariadb {name}: {count}");
    }
    for (name, count) in &report.counters.postgres {
        println!("  postgres {name}: {count}");
    }
}

/// The medians of several rounds of one (mode, concurrency).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferMedians {
    pub mode: TransferMode,
    pub concurrency: usize,
    pub rounds: usize,
    pub tx_per_sec: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub tc_cpu_us_per_tx: Option<f64>,
    pub mariadb_round_trips_per_tx: Option<f64>,
    pub postgres_transactions_per_tx: Option<f64>,
    /// Failed transactions over all rounds.
    pub errors: u64,
    /// Every round kept the total.
    pub total_kept: bool,
}

/// Medians per (mode, concurrency), in mode then concurrency order.
pub fn medians(reports: &[TransferReport]) -> Vec<TransferMedians> {
    let mut groups: BTreeMap<(u8, usize), Vec<&TransferReport>> = BTreeMap::new();
    for report in reports {
        let order = match report.mode {
            TransferMode::Local => 0,
            TransferMode::At => 1,
            TransferMode::Java => 2,
        };
        groups
            .entry((order, report.concurrency))
            .or_default()
            .push(report);
    }
    groups
        .into_values()
        .map(|group| {
            let of = |f: &dyn Fn(&TransferReport) -> Option<f64>| {
                median(group.iter().filter_map(|r| f(r)).collect())
            };
            TransferMedians {
                mode: group[0].mode,
                concurrency: group[0].concurrency,
                rounds: group.len(),
                tx_per_sec: of(&|r| Some(r.tx_per_sec)).unwrap_or(0.0),
                p50_us: of(&|r| r.latency_us.as_ref().map(|l| l.p50 as f64)).unwrap_or(0.0),
                p99_us: of(&|r| r.latency_us.as_ref().map(|l| l.p99 as f64)).unwrap_or(0.0),
                tc_cpu_us_per_tx: of(&|r| r.tc_cpu_us_per_tx),
                mariadb_round_trips_per_tx: of(&|r| r.mariadb_round_trips_per_tx),
                postgres_transactions_per_tx: of(&|r| r.postgres_transactions_per_tx),
                errors: group.iter().map(|r| r.errors.values().sum::<u64>()).sum(),
                total_kept: group.iter().all(|r| r.total_kept),
            }
        })
        .collect()
}

/// The Markdown table of [`medians`] (docs/BENCHMARKS.md).
pub fn markdown(medians: &[TransferMedians]) -> String {
    let mut out = String::from(
        "| Mode | Concurrent tx | Rounds | tx/s | p50 ms | p99 ms | TC CPU µs/tx | MariaDB round trips/tx | \
         PostgreSQL transactions/tx | Errors | Total kept |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n",
    );
    let opt =
        |v: Option<f64>, digits: usize| v.map_or("–".to_owned(), |v| format!("{v:.digits$}"));
    for m in medians {
        let mode = match m.mode {
            TransferMode::Local => "local (no AT)",
            TransferMode::At => "Rust AT (ferrata-at)",
            TransferMode::Java => "Java AT (seata-all 2.6.0)",
        };
        out.push_str(&format!(
            "| {mode} | {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} |\n",
            m.concurrency,
            m.rounds,
            m.tx_per_sec,
            m.p50_us / 1000.0,
            m.p99_us / 1000.0,
            opt(m.tc_cpu_us_per_tx, 0),
            opt(m.mariadb_round_trips_per_tx, 2),
            opt(m.postgres_transactions_per_tx, 2),
            m.errors,
            if m.total_kept { "yes" } else { "**no**" },
        ));
    }
    out
}

/// `ferrata-bench at-transfer-report`: every `*.json` report under a directory (recursively).
pub fn read_reports(dir: &std::path::Path) -> anyhow::Result<Vec<TransferReport>> {
    let mut reports = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                reports.push(crate::results::read(&path)?);
            }
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(mode: TransferMode, tx_per_sec: f64, p99: u64) -> TransferReport {
        TransferReport {
            schema: SCHEMA_VERSION,
            label: None,
            mode,
            concurrency: 16,
            accounts: 10_000,
            warmup_secs: 1.0,
            duration_secs: 10.0,
            transactions: 100,
            tx_per_sec,
            errors: BTreeMap::new(),
            latency_us: Some(LatencySummary {
                count: 100,
                p50: p99 / 2,
                p90: p99,
                p99,
                p999: p99,
                max: p99,
                mean: 1.0,
            }),
            tc_cpu_seconds: None,
            tc_cpu_us_per_tx: None,
            counters: DbCounters::default(),
            mariadb_round_trips_per_tx: Some(6.0),
            postgres_transactions_per_tx: None,
            total_kept: true,
        }
    }

    #[test]
    fn medians_per_mode_and_concurrency() {
        let reports = [
            report(TransferMode::At, 300.0, 9_000),
            report(TransferMode::Local, 1000.0, 2_000),
            report(TransferMode::At, 100.0, 3_000),
            report(TransferMode::At, 200.0, 6_000),
        ];
        let m = medians(&reports);
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].mode, m[0].rounds), (TransferMode::Local, 1));
        assert_eq!(
            (m[1].mode, m[1].rounds, m[1].tx_per_sec, m[1].p99_us),
            (TransferMode::At, 3, 200.0, 6_000.0)
        );
        assert_eq!(m[1].tc_cpu_us_per_tx, None);
        let table = markdown(&m);
        assert!(
            table.contains(
                "| Rust AT (ferrata-at) | 16 | 3 | 200 | 3.00 | 6.00 | – | 6.00 | – | 0 | yes |"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_sampling_statement_is_not_counted() {
        let before = BTreeMap::from([("Questions".to_owned(), 10), ("Com_update".to_owned(), 4)]);
        let after = BTreeMap::from([("Questions".to_owned(), 16), ("Com_update".to_owned(), 4)]);
        assert_eq!(
            delta(&before, &after, &["Questions"]),
            BTreeMap::from([("Questions".to_owned(), 5)])
        );
    }

    #[test]
    fn java_needs_a_command_and_only_java() {
        use clap::Parser;
        let parse = |extra: &[&str]| {
            let mut argv = vec![
                "ferrata-bench",
                "at-transfer",
                "--mysql-url",
                "m",
                "--postgres-url",
                "p",
            ];
            argv.extend_from_slice(extra);
            match crate::cli::Cli::try_parse_from(argv)
                .expect("parses")
                .command
            {
                crate::cli::Command::AtTransfer(args) => args,
                other => panic!("{other:?}"),
            }
        };
        assert!(parse(&["--mode", "at"]).validate().is_ok());
        assert!(parse(&["--mode", "java"]).validate().is_err());
        let java = parse(&[
            "--mode",
            "java",
            "--concurrency",
            "64",
            "--",
            "java",
            "-cp",
            "x",
        ]);
        assert!(java.validate().is_ok());
        assert_eq!(java.command, ["java", "-cp", "x"]);
        assert!(parse(&["--mode", "local", "--", "x"]).validate().is_err());
    }
}
