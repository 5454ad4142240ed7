//! The `ferrata-bench` binary: parses the command line, runs the workload on a tokio runtime
//! sized by `--threads`, prints the table and writes the JSON report.

use anyhow::Context;
use clap::Parser;
use ferrata_bench::cli::{Cli, Command};

fn main() -> anyhow::Result<()> {
    let Command::Run(args) = Cli::parse().command;
    // A single thread avoids cross-thread wake-ups; more overlap socket calls.
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()?
    };
    let report = runtime.block_on(ferrata_bench::run(&args))?;
    print!("{}", report.table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
