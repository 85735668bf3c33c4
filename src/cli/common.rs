//! What the commands share: exit codes, decision flags, loading a bundle
//! and printing its compile errors.

use std::path::PathBuf;
use std::time::Duration;

use crate::bundle::BundleFiles;
use crate::compiled::{CompileError, CompileOptions, CompiledBundle};
use crate::decision::{DecideOptions, FailureMode};

/// Exit code: everything admitted / passed.
pub const EXIT_OK: u8 = 0;
/// Exit code: something denied, a test failed, or the bundle does not compile.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or unreadable input.
pub const EXIT_USAGE: u8 = 2;

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
