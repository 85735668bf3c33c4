//! Starting the bundle sources of a process (`regent serve`, and the audit
//! process, which takes its bundle from the same sources): the watched
//! directory, the labelled ConfigMaps, the embedded default bundle, the
//! `--inventory` watch, and the [`Reloader`] that swaps bundles into
//! [`Live`].

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::sync::mpsc;

use super::dir::DirectorySource;
use super::source::BundleSource;
use super::{configmaps, ReloadOptions, Reloader};
use crate::serve::state::Live;
use regent_core::compose::CompileOptions;
use regent_core::runtime::Limits;

/// ConfigMap source and reload settings. With neither `--policies` nor
/// `--watch-configmaps`, the embedded default bundle is served.
#[derive(Debug, Clone, clap::Args)]
pub struct SourceArgs {
    /// Load policy bundles from labelled ConfigMaps in the webhook's namespace
    /// (kubeconfig from KUBECONFIG or the in-cluster service account).
    #[arg(long, env = "REGENT_WATCH_CONFIGMAPS")]
    pub watch_configmaps: bool,
    /// Label selector of bundle ConfigMaps.
    #[arg(
        long,
        env = "REGENT_BUNDLE_SELECTOR",
        default_value = "regent.dev/bundle"
    )]
    pub bundle_selector: String,
    /// The namespace to watch (default: POD_NAMESPACE, else the service account's).
    #[arg(long, env = "REGENT_NAMESPACE")]
    pub namespace: Option<String>,
    /// This replica's name in Events and status annotations (default: POD_NAME, else the host name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// A directory holding a candidate bundle: compiled and validated like
    /// the live one, evaluated in the shadow of admission traffic and by the
    /// audit, never deciding (ConfigMaps labelled `regent.dev/stage=candidate`
    /// do the same with `--watch-configmaps`).
    #[arg(long, env = "REGENT_CANDIDATE_POLICIES")]
    pub candidate_policies: Option<PathBuf>,
    /// Compose the embedded default bundle under the configured sources
    /// (its data overridable by theirs); without it, `--policies` and
    /// ConfigMaps are served alone.
    #[arg(long, env = "REGENT_WITH_DEFAULT_BUNDLE")]
    pub with_default_bundle: bool,
    /// Run a new bundle's own test_* rules before it goes live; reject it if any fails.
    #[arg(long, env = "REGENT_RELOAD_REQUIRE_TESTS")]
    pub reload_require_tests: bool,
    /// Kinds to watch cluster-wide as Gatekeeper referential data
    /// (`data.inventory`), e.g. `v1/Namespace,networking.k8s.io/v1/Ingress`;
    /// `=plural` after a kind names its resource. Needs list/watch on each.
    #[arg(long, env = "REGENT_INVENTORY", value_delimiter = ',')]
    pub inventory: Vec<super::inventory::InventoryKind>,
    /// Keep only these fields of a kind's inventory objects (besides
    /// apiVersion, kind, name and namespace), e.g.
    /// `v1/Pod=metadata.labels:spec.serviceAccountName` (repeatable, or
    /// comma-separated). Saves memory; a template that reads a field not
    /// kept sees it undefined.
    #[arg(long, env = "REGENT_INVENTORY_FIELDS", value_delimiter = ',')]
    pub inventory_fields: Vec<super::inventory::KindFields>,
}

/// Says how the embedded default bundle decides, when it is served alone
/// (`regent serve` with no source): its policies' enforcements as shipped,
/// which the Helm chart replaces with an audit-first start.
fn log_default_bundle_mode(bundle: &regent_core::compose::CompiledBundle) {
    use regent_core::native::policy::PolicyKind;
    use regent_core::outcome::Enforcement;
    let count = |kind: PolicyKind, e: Enforcement| {
        bundle
            .policies()
            .iter()
            .filter(|p| p.kind == kind && p.enforcement == e)
            .count()
    };
    let mutating = bundle
        .policies()
        .iter()
        .filter(|p| p.kind == PolicyKind::Mutate && p.enforcement != Enforcement::Off)
        .count();
    tracing::info!(
        deny = count(PolicyKind::Validate, Enforcement::Deny),
        warn = count(PolicyKind::Validate, Enforcement::Warn),
        dryrun = count(PolicyKind::Validate, Enforcement::Dryrun),
        mutating,
        "serving the embedded default bundle with its shipped enforcement (a demonstration: it denies); the Helm chart installs it audit-first (policies.default.mode: dryrun)"
    );
}

/// Starts the bundle sources and the reloader; with no source configured,
/// installs the embedded default bundle.
pub async fn start(
    live: &Arc<Live>,
    policies: Vec<PathBuf>,
    sources: &SourceArgs,
    limits: Limits,
) -> anyhow::Result<()> {
    let SourceArgs {
        watch_configmaps,
        bundle_selector,
        namespace,
        pod_name,
        candidate_policies,
        with_default_bundle,
        reload_require_tests,
        inventory,
        inventory_fields,
    } = sources;
    let metrics = live.metrics().clone();
    let mut client: Option<kube::Client> = None;
    if let Some(f) = inventory_fields
        .iter()
        .find(|f| !inventory.iter().any(|k| k.label() == f.kind))
    {
        anyhow::bail!(
            "--inventory-fields names {}, which --inventory does not watch",
            f.kind
        );
    }
    if !inventory.is_empty() {
        let c = kube::Client::try_default().await.context(
            "connecting to the Kubernetes API for --inventory (KUBECONFIG or in-cluster config)",
        )?;
        super::inventory::spawn(
            c.clone(),
            inventory.clone(),
            inventory_fields.clone(),
            live.clone(),
        );
        client = Some(c);
    }
    if policies.is_empty() && !watch_configmaps {
        let compile = CompileOptions {
            limits,
            ..Default::default()
        };
        let files = regent_core::bundle::BundleFiles::embedded()?;
        let bundle = regent_core::compose::CompiledBundle::compile(&files, compile)
            .context("the embedded bundle does not compile")?;
        log_default_bundle_mode(&bundle);
        live.install(bundle);
        if candidate_policies.is_none() {
            return Ok(());
        }
        // A candidate next to the embedded bundle: the reloader only keeps
        // the candidate.
    }
    // Every source of this process, in the order of the composition; the
    // reloader waits for each before its first bundle.
    let mut sources: Vec<Box<dyn BundleSource>> = Vec::new();
    let mut reporter = None;
    if *with_default_bundle {
        sources.push(Box::new(super::embedded::EmbeddedSource));
    }
    if policies.len() > usize::from(u8::MAX) {
        anyhow::bail!("--policies: at most {} directories", u8::MAX);
    }
    for (i, dir) in policies.iter().enumerate() {
        let index = u8::try_from(i).unwrap_or(u8::MAX);
        sources.push(Box::new(DirectorySource::live(dir.clone(), index)));
    }
    if let Some(dir) = candidate_policies {
        sources.push(Box::new(DirectorySource::candidate(dir.clone())));
    }
    if *watch_configmaps {
        let ns = configmaps::resolve_namespace(namespace.as_deref())
            .context("no namespace to watch: pass --namespace or set POD_NAMESPACE")?;
        let client = match client.take() {
            Some(c) => c,
            None => kube::Client::try_default()
                .await
                .context("connecting to the Kubernetes API (KUBECONFIG or in-cluster config)")?,
        };
        let pod = pod_name
            .clone()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "regent".to_string());
        tracing::info!(namespace = %ns, selector = %bundle_selector, pod = %pod, "watching bundle ConfigMaps");
        sources.push(Box::new(configmaps::ConfigMapSource::new(
            client.clone(),
            ns,
            bundle_selector.clone(),
        )));
        reporter = Some(configmaps::StatusReporter::new(
            client,
            pod,
            metrics.clone(),
        ));
    }
    sources.sort_by_key(|s| s.id());
    let composed: Vec<String> = sources
        .iter()
        .filter(|s| s.id().candidate_for.is_none())
        .map(|s| s.describe())
        .collect();
    if composed.is_empty() {
        // Only a candidate next to the embedded bundle, installed above.
    } else if *with_default_bundle {
        tracing::info!(bundles = %composed.join(" + "), "serving a composition of bundles, later ones overriding the data of earlier ones");
    } else {
        tracing::info!(
            bundles = %composed.join(" + "),
            "serving these bundles only: the default bundle's policies are not included (add --with-default-bundle to compose them underneath)"
        );
    }
    let (tx, rx) = mpsc::channel(16);
    let expected = sources.iter().map(|s| s.id()).collect();
    for source in sources {
        source.start(tx.clone(), metrics.clone())?;
    }
    let options = ReloadOptions {
        require_tests: *reload_require_tests,
        limits,
    };
    drop(tx);
    let mut reloader = Reloader::new(live.clone(), options, expected);
    if let Some(r) = reporter {
        reloader = reloader.with_reporter(r);
    }
    tokio::spawn(reloader.run(rx));
    Ok(())
}
