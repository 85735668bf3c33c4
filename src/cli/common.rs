//! What the commands share: exit codes, decision flags, loading a bundle
//! and printing its compile errors.

use std::path::PathBuf;
use std::time::Duration;

pub use regent_core::units::{parse_bytes, parse_duration};

use regent_core::bundle::{BundleError, BundleFiles};
use regent_core::compose::decision::{DecideOptions, FailureMode};
use regent_core::compose::{CompileError, CompileOptions, CompiledBundle};
use regent_core::runtime::Limits;

/// Exit code: everything admitted / passed.
pub const EXIT_OK: u8 = 0;
/// Exit code: something denied, a test failed, or the bundle does not compile.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad usage or unreadable input.
pub const EXIT_USAGE: u8 = 2;

/// The limits every evaluation runs under; shared by every command that
/// evaluates (at request time, at load time, in tests and in audit).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct LimitArgs {
    /// Evaluation time limit (Go duration: 2s, 500ms). At admission the API
    /// server's own ?timeout= lowers it further; a bundle whose warm-up
    /// evaluation exceeds it is rejected.
    #[arg(long, env = "REGENT_EVAL_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub eval_timeout: Duration,
    /// Memory an evaluation may allocate (32Mi, 64MiB, 1Gi or bytes; 0 for
    /// no limit). An evaluation over it is stopped like a timeout; a bundle
    /// whose warm-up exceeds it is rejected.
    #[arg(long, env = "REGENT_EVAL_MEMORY_LIMIT", default_value = "32Mi", value_parser = parse_bytes)]
    pub eval_memory_limit: u64,
}

impl LimitArgs {
    /// The limits.
    pub fn limits(&self) -> Limits {
        let Self {
            eval_timeout,
            eval_memory_limit,
        } = self;
        Limits {
            time: Some(*eval_timeout),
            memory: (*eval_memory_limit > 0).then_some(*eval_memory_limit),
        }
    }
}

/// How decisions are made; shared by `serve` and `eval`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecideArgs {
    /// What an evaluation error, timeout or memory limit does: deny (fail
    /// closed) or allow (fail open).
    #[arg(long, env = "REGENT_FAILURE_MODE", default_value = "deny",
          value_parser = clap::builder::TypedValueParser::try_map(
              clap::builder::PossibleValuesParser::new(["deny", "allow"]),
              |s: String| s.parse::<FailureMode>()))]
    pub failure_mode: FailureMode,
    /// Evaluation limits.
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl DecideArgs {
    /// The decision options.
    pub fn options(&self) -> DecideOptions {
        let Self {
            failure_mode,
            limits,
        } = self;
        let limits = limits.limits();
        DecideOptions {
            failure_mode: *failure_mode,
            timeout: limits
                .time
                .unwrap_or(regent_core::runtime::limits::DEFAULT_TIME_LIMIT),
            memory_limit: limits.memory,
            load: regent_core::compose::Load::Alone,
        }
    }
}

/// Which bundles a command decides with, composed as the server composes
/// them.
#[derive(Debug, Clone, clap::Args)]
pub struct BundleArgs {
    /// A bundle directory; repeatable, composed in the order given (later
    /// data overrides earlier). The embedded default bundle when omitted.
    #[arg(long, env = "REGENT_POLICIES", value_delimiter = ',')]
    pub policies: Vec<PathBuf>,
    /// Compose the embedded default bundle under `--policies`, as `regent
    /// serve --with-default-bundle` does: "the defaults plus mine".
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
}

/// The files of the bundles `dirs`, composed in order, with the embedded
/// default bundle underneath when `with_default` (or alone when `dirs` is
/// empty).
pub fn bundle_files(dirs: &[PathBuf], with_default: bool) -> Result<BundleFiles, BundleError> {
    let mut layers = Vec::new();
    if with_default || dirs.is_empty() {
        layers.push(BundleFiles::embedded()?);
    }
    for d in dirs {
        layers.push(BundleFiles::from_dir(d)?);
    }
    BundleFiles::compose(layers)
}

/// Reads and compiles the bundles `dirs` (see [`bundle_files`]).
pub fn load_bundle(
    dirs: &[PathBuf],
    with_default: bool,
    options: CompileOptions,
) -> Result<CompiledBundle, CompileError> {
    let files = bundle_files(dirs, with_default)?;
    CompiledBundle::compile(&files, options)
}

/// Prints a compile error the way an editor can jump to it.
pub fn print_compile_error(e: &CompileError) {
    match e {
        CompileError::Check(findings) => {
            for f in findings {
                eprintln!("error: {f}");
            }
        }
        CompileError::Rego { detail, .. } => {
            eprintln!("error: {e}");
            for line in detail.lines() {
                eprintln!("  {line}");
            }
        }
        _ => eprintln!("error: {e}"),
    }
}

/// PolicyExceptions for an offline command (`--exceptions PATH`), under the
/// same governance flags as the server.
#[derive(Debug, Clone, clap::Args)]
pub struct OfflineExceptionArgs {
    /// PolicyExceptions applied to the decisions: a YAML file or a
    /// directory of them (multi-document YAML, `kind: List`).
    #[arg(long = "exceptions", env = "REGENT_EXCEPTIONS")]
    pub exceptions: Option<PathBuf>,
    /// Governance of exceptions, as at the server.
    #[command(flatten)]
    pub governance: crate::exceptions::GovernanceArgs,
}

/// Exceptions read for an offline command, validated against one bundle.
#[derive(Debug)]
pub struct OfflineExceptions {
    /// The set (valid, expired and invalid ones).
    pub set: regent_core::exceptions::ExceptionSet,
    /// `--exception-help`.
    pub help: Option<String>,
    /// When they were judged.
    pub now: i64,
}

impl OfflineExceptions {
    /// What a decision applies.
    pub fn in_force(&self) -> regent_core::compose::except::Exceptions<'_> {
        regent_core::compose::except::Exceptions {
            set: &self.set,
            help: self.help.as_deref(),
            now: self.now,
        }
    }
}

/// Reads the exceptions at `path` (none when `None`) and validates them
/// against `bundle` under `governance`; each invalid one is said on stderr
/// (it applies to nothing).
pub fn load_exceptions(
    path: Option<&std::path::Path>,
    governance: &crate::exceptions::GovernanceArgs,
    bundle: &CompiledBundle,
) -> Result<OfflineExceptions, String> {
    let now = regent_core::exceptions::now();
    let help = governance.exception_help.clone();
    let Some(path) = path else {
        return Ok(OfflineExceptions {
            set: regent_core::exceptions::ExceptionSet::empty(),
            help,
            now,
        });
    };
    let loaded = crate::exceptions::files::read(path)?;
    let set = regent_core::exceptions::ExceptionSet::build(
        loaded.exceptions,
        loaded.unreadable,
        &governance.governance(),
        &bundle.catalogue(),
        now,
    );
    for line in set.report().iter().filter(|l| !l.in_force) {
        eprintln!(
            "warning: exception {} ({}): {}",
            line.exception, line.source, line.text
        );
    }
    Ok(OfflineExceptions { set, help, now })
}
