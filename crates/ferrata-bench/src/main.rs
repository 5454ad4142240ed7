//! The `ferrata-bench` binary: parses the command line and runs the subcommand; `run` prints
//! the table and writes the JSON report.

use std::io::BufRead as _;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use ferrata_bench::cli::{Cli, Command};
use ferrata_bench::measure::{Outcome, log, run_matrix};
use ferrata_bench::procfs::Pid;
use ferrata_bench::results;

fn main() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Run(args) => {
            let report =
                ferrata_bench::runtime(args.threads)?.block_on(ferrata_bench::run(&args))?;
            print!("{}", report.table());
            if let Some(path) = &args.json {
                results::write(path, &report)?;
            }
        }
        Command::Measure(args) => {
            if run_matrix(&args)? == Outcome::ServerDied {
                // scripts/bench stops what is left of the system and goes on with the next.
                return Ok(ExitCode::from(3));
            }
        }
        Command::Probe(args) => {
            // The server is started only after READY, so no part of its start-up is missed.
            println!("READY");
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("reading T0 from stdin")?;
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (t0_us, pid) = match fields.as_slice() {
                ["T0", t0, pid] => (t0.parse::<u128>()?, pid.parse::<u32>()?),
                _ => {
                    bail!("expected 'T0 <epoch microseconds> <server pid>' on stdin, got {line:?}")
                }
            };
            let runtime = ferrata_bench::runtime(1)?;
            let result = runtime.block_on(ferrata_bench::sessions::probe(
                &args,
                t0_us,
                Pid::Other(pid),
            ))?;
            results::write(&args.out, &result)?;
            if !result.ok {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Hold(args) => {
            let result =
                ferrata_bench::runtime(2)?.block_on(ferrata_bench::sessions::hold(&args))?;
            results::write(&args.out, &result)?;
            let kb = |v: Option<u64>| v.map_or("?".to_owned(), |kb| kb.to_string());
            log(&format!(
                "{} of {} sessions open ({} begins/s); server RSS {} kB idle -> {} kB with them \
                 (peak {} kB)",
                result.begun,
                result.sessions_requested,
                result.begins_per_sec.unwrap_or(0.0),
                kb(result.rss_idle_kb),
                kb(result.rss_with_sessions_kb),
                kb(result.rss_peak_while_holding_kb),
            ));
            if result.begun != result.sessions_requested {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::AtTransfer(args) => {
            let report = ferrata_bench::runtime(args.threads)?
                .block_on(ferrata_bench::at_transfer::run(&args))?;
            ferrata_bench::at_transfer::print(&report);
            if let Some(path) = &args.json {
                results::write(path, &report)?;
            }
            if !report.total_kept {
                eprintln!("error: the sum of the balances changed");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::AtTransferReport { results: dir, json } => {
            let medians = ferrata_bench::at_transfer::medians(
                &ferrata_bench::at_transfer::read_reports(&dir)?,
            );
            print!("{}", ferrata_bench::at_transfer::markdown(&medians));
            if let Some(path) = &json {
                results::write(path, &medians)?;
            }
        }
        Command::Record(what) => ferrata_bench::record::record(&what)?,
    }
    Ok(ExitCode::SUCCESS)
}
