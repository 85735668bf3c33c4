//! `regent promote`: makes the candidate bundle live
//! ([`crate::rollout::promote`]), the operator's act and never automatic.

use super::common::{LimitArgs, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::rollout::promote::{Promoted, Promotion};

/// Arguments of `regent promote`.
#[derive(Debug, clap::Args)]
pub struct PromoteArgs {
    /// The webhook's namespace (default: POD_NAMESPACE, else the service account's).
    #[arg(long, short = 'n', env = "REGENT_NAMESPACE")]
    pub namespace: Option<String>,
    /// Label selector of bundle ConfigMaps (as the webhook's --bundle-selector).
    #[arg(
        long,
        env = "REGENT_BUNDLE_SELECTOR",
        default_value = "regent.dev/bundle"
    )]
    pub bundle_selector: String,
    /// The webhook layers the embedded default bundle under its sources
    /// (as its --with-default-bundle); compile the candidate the same way.
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
    /// Print what would change and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Promote even a candidate that does not compile here (the webhook
    /// will reject it and keep serving the current bundle).
    #[arg(long)]
    pub force: bool,
    /// Evaluation limits of the warm-up compile.
    #[command(flatten)]
    pub limits: LimitArgs,
}

impl PromoteArgs {
    /// Runs the command.
    pub async fn run(self) -> anyhow::Result<u8> {
        let Self {
            namespace,
            bundle_selector,
            with_default_bundle,
            dry_run,
            force,
            limits,
        } = self;
        let outcome = Promotion {
            namespace,
            bundle_selector,
            with_default_bundle,
            dry_run,
            force,
            limits: limits.limits(),
        }
        .run()
        .await?;
        Ok(match outcome {
            Promoted::Done => EXIT_OK,
            Promoted::DoesNotCompile => EXIT_FAILED,
            Promoted::NothingToPromote => EXIT_USAGE,
        })
    }
}
