//! The `ferrata-server` binary: resolves configuration, sets up logging and runs the TC (or
//! prints or checks the configuration, or repairs the log, and exits).

use std::io::IsTerminal;

use clap::Parser;
use ferrata_server::{Cli, CliCommand, Config};

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRATA_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    if let Some(CliCommand::HashToken { name }) = &cli.command {
        print!("{}", hash_token_entry(name)?);
        return Ok(());
    }
    let config = Config::load(&cli)?;
    if let Some(CliCommand::CheckConfig) = cli.command {
        println!("{}", ferrata_server::check_config(&config)?);
        return Ok(());
    }
    if cli.print_config {
        print!("{}", config.to_toml()?);
        return Ok(());
    }
    if cli.repair {
        let report = ferrata_server::repair(&config)?;
        println!("{report}");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("ferrata-io")
        .build()?;
    let result = runtime.block_on(ferrata_server::run_until_signal(config));
    // A store that stopped answering may hold a blocking task forever: do not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

/// `ferrata-server hash-token --name NAME`: the `[[admin.tokens]]` entry for the token on
/// standard input (one line; generate one with `openssl rand -hex 32`).
fn hash_token_entry(name: &str) -> anyhow::Result<String> {
    use ferrata_server::admin::operators::{MIN_TOKEN_CHARS, hash_token};
    let mut token = String::new();
    std::io::stdin().read_line(&mut token)?;
    let token = token.trim();
    anyhow::ensure!(
        token.chars().count() >= MIN_TOKEN_CHARS,
        "the token on standard input has {} characters; use at least {MIN_TOKEN_CHARS} random ones \
         (openssl rand -hex 32)",
        token.chars().count()
    );
    Ok(format!(
        "[[admin.tokens]]\nname = {name:?}\nsha256 = \"{}\"\n",
        hash_token(token)
    ))
}
