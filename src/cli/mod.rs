//! The `regent` command line: typed clap configuration (every flag also read
//! from a `REGENT_*` variable) and one module per command. `main` parses
//! [`Cli`] and calls [`Cli::run`]; everything else lives here and below.

mod audit;
mod bundle;
mod cert;
mod check;
mod common;
mod diff;
mod eval;
mod inputs;
mod promote;
mod serve;
mod test;
mod verify;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use common::{
    bundle_files, load_bundle, parse_duration, print_compile_error, BundleArgs, DecideArgs,
    LimitArgs, EXIT_FAILED, EXIT_OK, EXIT_USAGE,
};

pub use eval::EvalArgs;
pub use serve::ServeArgs;

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
    /// What changes for the same objects if one bundle replaces another.
    Diff(Box<diff::DiffArgs>),
    /// Audit objects as they are (files, or the cluster with --cluster) and report what fails.
    Audit(Box<audit::AuditArgs>),
    /// Make the candidate bundle live: relabel its ConfigMaps (after compiling it).
    Promote(Box<promote::PromoteArgs>),
    /// Work with bundles: `regent bundle export DIR` writes the embedded default bundle.
    Bundle(bundle::BundleCommand),
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
            Command::Audit(args) => args.run().await?,
            Command::Diff(args) => args.run(),
            Command::Promote(args) => args.run().await?,
            Command::Bundle(args) => args.run(),
        };
        Ok(ExitCode::from(code))
    }
}
