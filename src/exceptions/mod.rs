//! Policy exceptions in the running process: where they come from (YAML
//! files, [`files`]; the `policyexceptions.regent.dev` resource watched
//! cluster-wide, [`cluster`]), the [`Registry`] that validates them against
//! the live bundle whenever either changes and serves the set in force to
//! every decision without a lock, and the flags that govern them.
//!
//! What an exception is and when it is valid is the core's
//! ([`regent_core::exceptions`]); this module only keeps the set current:
//! on every change of a source, on every bundle swap (a policy may appear or
//! disappear), and at the moment an exception ends (so reports turn back to
//! `fail` then, with no reload).

pub mod cluster;
pub mod files;
mod registry;

use std::path::PathBuf;
use std::time::Duration;

use regent_core::exceptions::Governance;
pub use registry::{Registry, Source};

/// Exception sources and governance: the flags of `serve` and of the
/// in-cluster audit.
#[derive(Debug, Clone, clap::Args)]
pub struct ExceptionArgs {
    /// PolicyException YAML: a file or a directory (multi-document YAML),
    /// watched and reloaded within a second.
    #[arg(long = "exceptions", env = "REGENT_EXCEPTIONS")]
    pub exceptions: Option<PathBuf>,
    /// Watch `policyexceptions.regent.dev` cluster-wide.
    #[arg(long, env = "REGENT_WATCH_EXCEPTIONS")]
    pub watch_exceptions: bool,
    /// Governance of exceptions.
    #[command(flatten)]
    pub governance: GovernanceArgs,
}

/// How exceptions are governed; shared by every command that reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct GovernanceArgs {
    /// The namespace whose exceptions may name other namespaces and
    /// cluster-scoped objects (default: POD_NAMESPACE, else regent-system).
    #[arg(long, env = "REGENT_EXCEPTION_ADMIN_NAMESPACE")]
    pub exception_admin_namespace: Option<String>,
    /// The longest an exception may last from its creation.
    #[arg(long, env = "REGENT_EXCEPTION_MAX_DURATION", default_value = "90d", value_parser = parse_days)]
    pub exception_max_duration: Duration,
    /// Warnings say an exception is ending this long before it does.
    #[arg(long, env = "REGENT_EXCEPTION_WARN_BEFORE", default_value = "14d", value_parser = parse_days)]
    pub exception_warn_before: Duration,
    /// Appended to a denial by a policy that allows exceptions: how to ask
    /// for one (a sentence or a URL).
    #[arg(long, env = "REGENT_EXCEPTION_HELP")]
    pub exception_help: Option<String>,
}

impl GovernanceArgs {
    /// The governance these flags set.
    pub fn governance(&self) -> Governance {
        Governance {
            admin_namespace: self
                .exception_admin_namespace
                .clone()
                .or_else(|| std::env::var("POD_NAMESPACE").ok())
                .unwrap_or_else(|| Governance::default().admin_namespace),
            max_duration: self.exception_max_duration,
            warn_before: self.exception_warn_before,
        }
    }
}

/// Configures the exceptions' governance and starts their sources: files
/// (`--exceptions`), the cluster resource (`--watch-exceptions`, whose
/// statuses this process writes), and the rebuild at each exception's end.
pub async fn start(
    registry: &std::sync::Arc<Registry>,
    args: &ExceptionArgs,
    namespace: Option<&str>,
    report: bool,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut governance = args.governance.governance();
    if args.governance.exception_admin_namespace.is_none() {
        if let Some(ns) = namespace {
            governance.admin_namespace = ns.to_string();
        }
    }
    let registry = registry.clone();
    registry.configure(governance, args.governance.exception_help.clone());
    if let Some(path) = &args.exceptions {
        files::spawn(path.clone(), registry.clone())?;
    }
    if args.watch_exceptions {
        let client = kube::Client::try_default().await.context(
            "connecting to the Kubernetes API for --watch-exceptions (KUBECONFIG or in-cluster config)",
        )?;
        cluster::spawn(client, registry.clone(), report);
    }
    tokio::spawn(registry.run_expiries());
    Ok(())
}

/// A duration in days (`90d`) or as Go writes one (`36h`, `10m`, `5s`).
pub fn parse_days(s: &str) -> Result<Duration, String> {
    match s.strip_suffix('d') {
        Some(days) => days
            .parse::<u64>()
            .map(|d| Duration::from_secs(d * 86_400))
            .map_err(|_| format!("{s:?} is not a duration (90d, 36h, 10m)")),
        None => crate::cli::parse_duration(s),
    }
}
