//! `ferrata-bench`: a load generator that speaks the Seata protocol (through ferrata-proto) to
//! any Seata-protocol TC, and submits DTM sagas for comparison; closed and open loop, latency
//! per request type with hdrhistogram, reports as a table and as JSON.

pub mod at_transfer;
pub mod cli;
pub mod dtm;
pub mod large;
pub mod measure;
pub mod procfs;
pub mod record;
pub mod report;
pub mod results;
pub mod samples;
pub mod schedule;
pub mod seata;
pub mod sessions;
pub mod stats;
pub mod transport;
pub mod workload;

use crate::cli::RunArgs;
use crate::report::Report;
use crate::workload::Workload;

/// Runs one benchmark on the current tokio runtime.
pub async fn run(args: &RunArgs) -> anyhow::Result<Report> {
    args.validate()?;
    let stats = if args.workload == Workload::DtmSaga {
        dtm::run(args.dtm_config()?).await?
    } else {
        seata::run(args.seata_config()?).await?
    };
    Ok(Report::new(&args.run_info(), &stats))
}

/// The generator's runtime: one thread avoids cross-thread wake-ups; more overlap socket calls.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}
