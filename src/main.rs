//! The `regent` binary: set the allocator's options, parse the command line,
//! set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use regent::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    regent::allocator::reexec_with_lean_allocator();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::from(regent::cli::EXIT_USAGE);
        }
    };
    match runtime.block_on(cli.run()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(regent::cli::EXIT_USAGE)
        }
    }
}
