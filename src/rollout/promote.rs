//! Promotion: makes the candidate bundle live by relabelling its
//! ConfigMaps through the API, the operator's act and never automatic.
//!
//! First it compiles the candidate exactly as the webhook would (the same
//! ConfigMaps, the same reload code), and refuses a candidate that does not
//! compile. Then it labels each candidate ConfigMap `regent.dev/stage=live`:
//! the ConfigMaps they name in `regent.dev/replaces` leave the live bundle in
//! that same step. Last it labels those replaced ConfigMaps `retired`, which
//! changes no bundle and keeps them for a rollback.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;

use crate::reload::configmaps::{
    self, stages, CANDIDATE_IMPACT_ANNOTATION, REPLACES_ANNOTATION, STAGE_LABEL,
};
use regent_core::bundle::BundleFiles;
use regent_core::compose::{CompileOptions, CompiledBundle};
use regent_core::runtime::Limits;

/// What to promote, and how.
#[derive(Debug, Clone)]
pub struct Promotion {
    /// The webhook's namespace (default: POD_NAMESPACE, else the service account's).
    pub namespace: Option<String>,
    /// Label selector of bundle ConfigMaps (as the webhook's --bundle-selector).
    pub bundle_selector: String,
    /// Compile the candidate over the embedded default bundle, as the
    /// webhook does with --with-default-bundle.
    pub with_default_bundle: bool,
    /// Print what would change and change nothing.
    pub dry_run: bool,
    /// Promote even a candidate that does not compile here.
    pub force: bool,
    /// Evaluation limits of the warm-up compile.
    pub limits: Limits,
}

/// How a promotion ended (the command's exit code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Promoted {
    /// Relabelled (or, with `dry_run`, would be).
    Done,
    /// The candidate does not compile; nothing changed.
    DoesNotCompile,
    /// No namespace, or no candidate in it.
    NothingToPromote,
}

impl Promotion {
    /// Promotes the candidate: compiles it, then relabels its ConfigMaps.
    pub async fn run(self) -> anyhow::Result<Promoted> {
        let Some(namespace) = configmaps::resolve_namespace(self.namespace.as_deref()) else {
            eprintln!("error: no namespace: pass --namespace or set POD_NAMESPACE");
            return Ok(Promoted::NothingToPromote);
        };
        let client = Client::try_default()
            .await
            .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster config)")?;
        let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let list = api
            .list(&ListParams::default().labels(&self.bundle_selector))
            .await
            .with_context(|| format!("listing bundle ConfigMaps in {namespace}"))?;
        let cms: Vec<&ConfigMap> = list.items.iter().collect();
        let staged = stages(&cms);
        for (name, value) in &staged.unknown {
            eprintln!("warning: ConfigMap {name} has {STAGE_LABEL}={value}, which is no stage; it is left alone");
        }
        let Some(candidate) = staged.candidate else {
            eprintln!(
                "error: no candidate in {namespace}: no ConfigMap labelled {} and {STAGE_LABEL}=candidate",
                self.bundle_selector
            );
            return Ok(Promoted::NothingToPromote);
        };
        let names = |set: &[&ConfigMap]| -> Vec<String> {
            set.iter()
                .map(|cm| cm.metadata.name.clone().unwrap_or_default())
                .collect()
        };
        let promoted = names(&candidate.candidates);
        let retired = names(&candidate.replaced);

        // The candidate as the webhook will compile it.
        let compiled = configmaps::entries(&candidate.bundle)
            .map_err(crate::reload::ReloadError::from)
            .and_then(|entries| {
                let files =
                    BundleFiles::from_entries(&format!("ConfigMaps in {namespace}"), entries)?;
                Ok(if self.with_default_bundle {
                    BundleFiles::compose(vec![BundleFiles::embedded()?, files])?
                } else {
                    files
                })
            })
            .and_then(|files| {
                CompiledBundle::compile(
                    &files,
                    CompileOptions {
                        limits: self.limits,
                        ..CompileOptions::default()
                    },
                )
                .map_err(crate::reload::ReloadError::from)
            });
        match &compiled {
            Ok(bundle) => println!(
                "candidate revision {} compiles: {} policies, {} constraints",
                bundle.revision(),
                bundle.policies().len(),
                bundle.gatekeeper().constraints().len()
            ),
            Err(e) if self.force => eprintln!(
                "warning: the candidate does not compile ({e}); promoting anyway (--force)"
            ),
            Err(e) => {
                eprintln!("error: the candidate does not compile, nothing promoted: {e}");
                return Ok(Promoted::DoesNotCompile);
            }
        }
        for cm in &candidate.candidates {
            if let Some(impact) = cm
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CANDIDATE_IMPACT_ANNOTATION))
                .and_then(|v| serde_json::from_str::<serde_json::Value>(v).ok())
            {
                if let Some(summary) = impact["summary"].as_str() {
                    println!("audit: {summary}");
                }
            }
        }
        let verb = if self.dry_run {
            "would label"
        } else {
            "labelled"
        };
        for name in &promoted {
            if !self.dry_run {
                relabel(&api, name, "live").await?;
            }
            println!("{verb} ConfigMap {namespace}/{name} {STAGE_LABEL}=live");
        }
        for name in &retired {
            if !self.dry_run {
                relabel(&api, name, "retired").await?;
            }
            println!("{verb} ConfigMap {namespace}/{name} {STAGE_LABEL}=retired (replaced through {REPLACES_ANNOTATION})");
        }
        Ok(Promoted::Done)
    }
}

async fn relabel(api: &Api<ConfigMap>, name: &str, stage: &str) -> anyhow::Result<()> {
    let patch = json!({"metadata": {"labels": {STAGE_LABEL: stage}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("labelling ConfigMap {name} {STAGE_LABEL}={stage}"))?;
    Ok(())
}
