//! The `regent` binary: set the allocator's options, parse the command line,
//! set up logging, run.

use std::process::ExitCode;

use clap::Parser;
use regent::cli::{Cli, LogFormat};

fn main() -> ExitCode {
    regent::allocator::reexec_with_lean_allocator();
    quiet_broken_pipe();
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| "info".into());
    // Colour only on a terminal: a redirected log stays plain text.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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

/// `regent check | head`: when the reader of standard output goes away, the
/// command ends quietly with the status a shell gives a process killed by
/// SIGPIPE (141), as other Unix tools do, instead of a panic report
/// (Rust's `println!` panics on a closed pipe).
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
