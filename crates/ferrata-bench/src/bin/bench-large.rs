//! `bench-large`: times one global transaction with many branches against a real
//! ferrata-server (registration, commit, restart with it in flight, recovered commit) and prints
//! each round plus the medians as JSON. Used for docs/BENCHMARKS.md "Large transactions".

use std::path::PathBuf;

use clap::Parser;
use ferrata_bench::large::{LargeConfig, LargeMedians, LargeRound, LargeSummary, round};
use ferrata_bench::stats::median;

#[derive(Debug, Parser)]
#[command(
    name = "bench-large",
    about = "Time a global transaction with many branches"
)]
struct Args {
    /// The ferrata-server binary to start (a fresh one per round, on 127.0.0.1).
    #[arg(long, env = "FERRATA_BIN")]
    server_bin: PathBuf,
    #[arg(long, default_value_t = 10_000)]
    branches: usize,
    /// TCC resources the branches are spread over.
    #[arg(long, default_value_t = 1)]
    resources: usize,
    /// Turn on parallel phase 2 (server.enableParallelHandleBranch).
    #[arg(long)]
    parallel: bool,
    /// Do not pass a configuration file (for servers that predate the branch limit).
    #[arg(long)]
    no_config: bool,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = LargeConfig {
        server_bin: args.server_bin,
        branches: args.branches,
        resources: args.resources.max(1),
        parallel: args.parallel,
        configure_limits: !args.no_config,
        rounds: args.rounds.max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rounds: Vec<LargeRound> = Vec::new();
    for _ in 0..config.rounds {
        let result = runtime.block_on(round(&config))?;
        eprintln!("{}", serde_json::to_string(&result)?);
        rounds.push(result);
    }
    let pick =
        |f: fn(&LargeRound) -> f64| median(rounds.iter().map(f).collect()).unwrap_or(f64::NAN);
    let summary = LargeSummary {
        branches: config.branches,
        resources: config.resources,
        parallel: config.parallel,
        median_ms: LargeMedians {
            register: pick(|r| r.register_ms),
            commit: pick(|r| r.commit_ms),
            restart: pick(|r| r.restart_ms),
            recovered_commit: pick(|r| r.recovered_commit_ms),
        },
        rounds,
    };
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
