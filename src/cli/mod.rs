//! The `regent` command line: typed clap configuration (every flag also read
//! from a `REGENT_*` variable) and one module per command. `main` parses
//! [`Cli`] and calls [`Cli::run`]; everything else lives here and below.

mod cert;
mod check;
mod eval;
mod serve;
mod test;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::bundle::BundleFiles;
use crate::decision::{DecideOptions, FailureMode};
use crate::engine::{CompileError, CompileOptions, CompiledBundle};

pub use eval::EvalArgs;
pub use serve::ServeArgs;

/// Exit code: everything admitted / passed.
pub const EXIT_OK: u8 = 0;
/// Exit code: something denied, a test failed, or the bundle does not compile.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or unreadable input.
pub const EXIT_USAGE: u8 = 2;

/// Policy-as-code admission webhook for Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "regent", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, env = "REGENT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber EnvFilter syntax, e.g. `info,regent=debug`).
    #[arg(long, env = "REGENT_LOG", default_value = "info", global = true)]
    pub log: String,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the admission webhooks over TLS.
    Serve(Box<ServeArgs>),
    /// Decide manifests or AdmissionReviews offline, as the server would.
    Eval(EvalArgs),
    /// Run the bundle's `test_*` rules.
    Test(test::TestArgs),
    /// Compile the bundle and report errors with file:line:col.
    Check(check::CheckArgs),
    /// Write a development CA and serving certificate.
    Cert(cert::CertArgs),
    /// Run gator test suites (kind: Suite) against their templates and constraints.
    Verify(verify::VerifyArgs),
}

impl Cli {
    /// Runs the command; returns the process exit code.
    pub async fn run(self) -> anyhow::Result<ExitCode> {
        let code = match self.command {
            Command::Serve(args) => args.run().await?,
            Command::Eval(args) => args.run(),
            Command::Test(args) => args.run(),
            Command::Check(args) => args.run(),
            Command::Cert(args) => args.run()?,
            Command::Verify(args) => args.run(),
        };
        Ok(ExitCode::from(code))
    }
}

/// How decisions are made; shared by `serve` and `eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    /// What an evaluation error or timeout does: deny (fail closed) or allow (fail open).
    #[arg(long, env = "REGENT_FAILURE_MODE", value_enum, default_value_t = FailureMode::Deny)]
    pub failure_mode: FailureMode,
    /// Evaluation time limit per request (Go duration: 2s, 500ms). The API
    /// server's own ?timeout= lowers it further.
    #[arg(long, env = "REGENT_EVAL_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub eval_timeout: Duration,
}

impl DecideArgs {
    /// The decision options.
    pub fn options(&self) -> DecideOptions {
        let Self {
            failure_mode,
            eval_timeout,
        } = self;
        DecideOptions {
            failure_mode: *failure_mode,
            timeout: *eval_timeout,
        }
    }
}

/// Parses a Go-style duration flag.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::server::parse_go_duration(s)
        .ok_or_else(|| format!("{s:?} is not a duration (examples: 2s, 500ms, 1m30s)"))
}

/// Reads and compiles a bundle: `dir`, or the embedded default bundle.
pub fn load_bundle(
    dir: Option<&PathBuf>,
    options: CompileOptions,
) -> Result<CompiledBundle, CompileError> {
    let files = match dir {
        Some(d) => BundleFiles::from_dir(d)?,
        None => BundleFiles::embedded()?,
    };
    CompiledBundle::compile(&files, options)
}

/// Prints a compile error the way an editor can jump to it.
pub fn print_compile_error(e: &CompileError) {
    eprintln!("error: {e}");
    if let CompileError::Rego { detail, .. } = e {
        for line in detail.lines() {
            eprintln!("  {line}");
        }
    }
}
