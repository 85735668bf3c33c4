//! The ConfigMap source (`--watch-configmaps`): every ConfigMap in the
//! webhook's own namespace that carries the bundle label is part of the
//! bundle. A kube-runtime watcher lists and watches them (resourceVersions,
//! bookmarks, relist after `410 Gone`, backoff on errors) while the last good
//! bundle keeps serving.
//!
//! Each `data` key is a file: `*.rego` modules, `*.json`/`*.yaml`/`*.yml`
//! data documents mounted at the ConfigMap's `regent.dev/bundle-path`
//! annotation (default: the root of `data`), except YAML keys holding
//! Gatekeeper objects (ConstraintTemplates, Constraints, ExpansionTemplates),
//! which load as such. A `binaryData` key ending in
//! `.tar.gz` is an OPA bundle archive. Modules from ConfigMaps may only
//! declare policy packages.
//!
//! A ConfigMap's `regent.dev/stage` label says which bundle it belongs to:
//! none or `live` the live bundle, `candidate` the candidate bundle (shadow
//! evaluation), `retired` neither (kept for the record, or for a rollback).
//! The candidate bundle is what the live one would be after promotion: the
//! live ConfigMaps, less those a candidate names in its `regent.dev/replaces`
//! annotation, plus the candidates. A live ConfigMap may name others in
//! `regent.dev/replaces` too, and they leave the live bundle, so promotion
//! (relabelling a candidate `live`) is one atomic step; retiring the old
//! ConfigMaps afterwards is housekeeping ([`crate::cli`]'s `regent promote`
//! does both).
//!
//! After every reload attempt each source ConfigMap gets an Event
//! (`BundleLoaded`/`BundleRejected`, reporting instance = this pod) and a
//! status annotation keyed by this pod's name, so replicas never overwrite
//! each other and `kubectl get cm -o yaml` shows what every replica serves.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

use super::source::{BundleSource, SourceId, SourceUpdate, View};
use super::{ConfigMapRef, Outcome, Slot, StatusSink};
use crate::metrics::Metrics;
use regent_core::bundle::{self, BundleError, Entry, EntryKind};

/// The annotation giving the directory a ConfigMap's files sit in.
pub const BUNDLE_PATH_ANNOTATION: &str = "regent.dev/bundle-path";
/// The label giving a bundle ConfigMap's stage (`live`, `candidate`, `retired`).
pub const STAGE_LABEL: &str = "regent.dev/stage";
/// The annotation naming the ConfigMaps a ConfigMap replaces (comma-separated).
pub const REPLACES_ANNOTATION: &str = "regent.dev/replaces";
/// The annotation where the audit sums up a candidate's impact.
pub const CANDIDATE_IMPACT_ANNOTATION: &str = "audit.regent.dev/candidate";
/// The prefix of each replica's status annotation (`status.regent.dev/<pod>`).
pub const STATUS_ANNOTATION_PREFIX: &str = "status.regent.dev/";

/// Where the in-cluster service account's namespace is mounted.
const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The namespace to watch: the flag, else `POD_NAMESPACE`, else the service account's.
pub fn resolve_namespace(flag: Option<&str>) -> Option<String> {
    flag.map(str::to_string)
        .or_else(|| std::env::var("POD_NAMESPACE").ok())
        .or_else(|| std::fs::read_to_string(SA_NAMESPACE_FILE).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Bundle ConfigMaps (labelled `--bundle-selector`) in one namespace, with
/// their staging: live, candidate, retired.
#[derive(Clone)]
pub struct ConfigMapSource {
    client: Client,
    namespace: String,
    selector: String,
}

impl std::fmt::Debug for ConfigMapSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigMapSource")
            .field("namespace", &self.namespace)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl ConfigMapSource {
    /// Last in the composition: ConfigMaps override every other source.
    pub const ID: SourceId = SourceId {
        order: 1000,
        kind: "configmaps",
        candidate_for: None,
    };

    /// The ConfigMaps labelled `selector` in `namespace`.
    pub fn new(client: Client, namespace: String, selector: String) -> Self {
        Self {
            client,
            namespace,
            selector,
        }
    }
}

impl BundleSource for ConfigMapSource {
    fn id(&self) -> SourceId {
        Self::ID
    }

    fn describe(&self) -> String {
        format!(
            "ConfigMaps labelled {} in {}",
            self.selector, self.namespace
        )
    }

    fn start(
        self: Box<Self>,
        updates: mpsc::Sender<SourceUpdate>,
        metrics: Metrics,
    ) -> anyhow::Result<()> {
        spawn(self.client, self.namespace, self.selector, updates, metrics);
        Ok(())
    }
}

/// Starts the watcher; sends the assembled files after the initial list and
/// after every change.
fn spawn(
    client: Client,
    namespace: String,
    selector: String,
    updates: mpsc::Sender<SourceUpdate>,
    metrics: Metrics,
) {
    tokio::spawn(async move {
        let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
        let config = watcher::Config::default().labels(&selector);
        let mut stream = watcher::watcher(api, config).default_backoff().boxed();
        let mut store: BTreeMap<String, ConfigMap> = BTreeMap::new();
        let mut relisting: Option<BTreeMap<String, ConfigMap>> = None;
        let origin = format!("ConfigMaps labelled {selector} in {namespace}");
        while let Some(event) = stream.next().await {
            let changed = match event {
                Ok(Event::Init) => {
                    relisting = Some(BTreeMap::new());
                    false
                }
                Ok(Event::InitApply(cm)) => {
                    if let Some(buffer) = relisting.as_mut() {
                        buffer.insert(name_of(&cm), cm);
                    }
                    false
                }
                Ok(Event::InitDone) => {
                    // A relist (first start, or after 410 Gone) replaces the
                    // store, so deletions missed while disconnected count.
                    store = relisting.take().unwrap_or_default();
                    true
                }
                Ok(Event::Apply(cm)) => {
                    store.insert(name_of(&cm), cm);
                    true
                }
                Ok(Event::Delete(cm)) => {
                    store.remove(&name_of(&cm));
                    true
                }
                Err(e) => {
                    metrics
                        .source_errors
                        .with_label_values(&[ConfigMapSource::ID.as_str()])
                        .inc();
                    tracing::warn!(error = %e, "ConfigMap watch failed; retrying with backoff");
                    false
                }
            };
            if !changed {
                continue;
            }
            let cms: Vec<&ConfigMap> = store.values().collect();
            let staged = stages(&cms);
            for (name, stage) in &staged.unknown {
                tracing::warn!(configmap = %name, stage = %stage, "unknown {STAGE_LABEL}; this ConfigMap is in no bundle (use live, candidate or retired)");
            }
            let refs = |set: &[&ConfigMap]| -> Vec<ConfigMapRef> {
                set.iter().map(|cm| reference(cm, &namespace)).collect()
            };
            let update = SourceUpdate {
                source: ConfigMapSource::ID,
                origin: origin.clone(),
                root: None,
                files: entries(&staged.live),
                configmaps: refs(&staged.live),
                candidate: staged.candidate.as_ref().map(|c| View {
                    files: entries(&c.bundle),
                    configmaps: refs(&c.candidates),
                }),
            };
            if updates.send(update).await.is_err() {
                return;
            }
        }
    });
}

fn name_of(cm: &ConfigMap) -> String {
    cm.metadata.name.clone().unwrap_or_default()
}

fn reference(cm: &ConfigMap, namespace: &str) -> ConfigMapRef {
    ConfigMapRef {
        name: name_of(cm),
        namespace: cm
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_string()),
        uid: cm.metadata.uid.clone(),
        resource_version: cm.metadata.resource_version.clone(),
    }
}

/// A bundle ConfigMap's stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// In the live bundle (no stage label, or `live`).
    Live,
    /// In the candidate bundle.
    Candidate,
    /// In neither.
    Retired,
}

/// The stage of a ConfigMap; `Err` with the label's value when it is none of
/// `live`, `candidate`, `retired`.
pub fn stage_of(cm: &ConfigMap) -> Result<Stage, String> {
    match cm
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(STAGE_LABEL))
        .map(String::as_str)
    {
        None | Some("live") | Some("") => Ok(Stage::Live),
        Some("candidate") => Ok(Stage::Candidate),
        Some("retired") => Ok(Stage::Retired),
        Some(other) => Err(other.to_string()),
    }
}

/// The ConfigMaps a ConfigMap names in `regent.dev/replaces`.
pub fn replaces(cm: &ConfigMap) -> Vec<String> {
    cm.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REPLACES_ANNOTATION))
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The ConfigMaps of the candidate bundle.
#[derive(Debug)]
pub struct CandidateSet<'a> {
    /// Every ConfigMap of the candidate bundle (live ones it keeps, and the
    /// candidates).
    pub bundle: Vec<&'a ConfigMap>,
    /// The candidate-labelled ones.
    pub candidates: Vec<&'a ConfigMap>,
    /// Live ConfigMaps the candidates replace.
    pub replaced: Vec<&'a ConfigMap>,
}

/// Bundle ConfigMaps sorted by stage.
#[derive(Debug)]
pub struct Stages<'a> {
    /// The live bundle's ConfigMaps.
    pub live: Vec<&'a ConfigMap>,
    /// The candidate bundle, when a candidate ConfigMap exists.
    pub candidate: Option<CandidateSet<'a>>,
    /// ConfigMaps with a stage label of no known value (name, value).
    pub unknown: Vec<(String, String)>,
}

/// Sorts bundle ConfigMaps into the live and the candidate bundle.
pub fn stages<'a>(cms: &[&'a ConfigMap]) -> Stages<'a> {
    let mut live = Vec::new();
    let mut candidates = Vec::new();
    let mut unknown = Vec::new();
    for cm in cms {
        match stage_of(cm) {
            Ok(Stage::Live) => live.push(*cm),
            Ok(Stage::Candidate) => candidates.push(*cm),
            Ok(Stage::Retired) => {}
            Err(value) => unknown.push((name_of(cm), value)),
        }
    }
    let replaced_by = |set: &[&ConfigMap]| -> Vec<String> {
        set.iter()
            .flat_map(|cm| {
                let own = name_of(cm);
                replaces(cm).into_iter().filter(move |n| *n != own)
            })
            .collect()
    };
    let gone = replaced_by(&live);
    live.retain(|cm| !gone.contains(&name_of(cm)));
    let candidate = (!candidates.is_empty()).then(|| {
        let gone = replaced_by(&candidates);
        let (replaced, kept): (Vec<&ConfigMap>, Vec<&ConfigMap>) =
            live.iter().partition(|cm| gone.contains(&name_of(cm)));
        let mut bundle = kept;
        bundle.extend(candidates.iter().copied());
        CandidateSet {
            bundle,
            candidates,
            replaced,
        }
    });
    Stages {
        live,
        candidate,
        unknown,
    }
}

/// The bundle files of a set of ConfigMaps. A file path provided by two
/// ConfigMaps is an error naming both.
pub fn entries(cms: &[&ConfigMap]) -> Result<Vec<Entry>, BundleError> {
    let mut out = Vec::new();
    let mut owners: BTreeMap<String, String> = BTreeMap::new();
    for cm in cms {
        let name = name_of(cm);
        let base = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(BUNDLE_PATH_ANNOTATION))
            .map(|p| p.trim_matches('/').to_string())
            .unwrap_or_default();
        let mount: Vec<String> = base
            .split('/')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if mount.iter().any(|s| s == "." || s == "..") {
            return Err(BundleError::Archive {
                path: format!("configmap/{name}"),
                message: format!("{BUNDLE_PATH_ANNOTATION} {base:?} must be a plain path"),
            });
        }
        let mut claim = |path: String| -> Result<(), BundleError> {
            if let Some(first) = owners.get(&path) {
                return Err(BundleError::DuplicateFile {
                    path,
                    first: format!("ConfigMap {first}"),
                    second: format!("ConfigMap {name}"),
                });
            }
            owners.insert(path, name.clone());
            Ok(())
        };
        for (key, text) in cm.data.iter().flatten() {
            let bundle_path = if base.is_empty() {
                key.clone()
            } else {
                format!("{base}/{key}")
            };
            let kind = if key.ends_with(".rego") {
                EntryKind::Module
            } else if regent_core::bundle::is_schema_file(key) {
                EntryKind::Schema(mount.clone())
            } else if (key.ends_with(".yaml") || key.ends_with(".yml"))
                && regent_core::objects::holds_policy_objects(text)
            {
                EntryKind::Objects
            } else if key.ends_with(".json") || key.ends_with(".yaml") || key.ends_with(".yml") {
                EntryKind::Data(mount.clone())
            } else {
                continue;
            };
            claim(bundle_path)?;
            out.push(Entry {
                label: format!("configmap/{name}/{key}"),
                kind,
                bytes: text.clone().into_bytes(),
                restricted: true,
                archive: None,
            });
        }
        for (key, bytes) in cm.binary_data.iter().flatten() {
            if !key.ends_with(".tar.gz") {
                continue;
            }
            claim(format!("{base}/{key}"))?;
            let label = format!("configmap/{name}/{key}");
            for mut entry in bundle::unpack_archive(&label, &bytes.0)? {
                entry.restricted = true;
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// Writes Events and per-replica status annotations to source ConfigMaps.
pub struct StatusReporter {
    client: Client,
    recorder: Recorder,
    pod: String,
    metrics: Metrics,
}

impl StatusReporter {
    /// A reporter writing as `pod`.
    pub fn new(client: Client, pod: String, metrics: Metrics) -> Arc<Self> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "regent".to_string(),
                instance: Some(pod.clone()),
            },
        );
        Arc::new(Self {
            client,
            recorder,
            pod,
            metrics,
        })
    }

    /// The annotation key this replica writes.
    pub fn annotation_key(&self) -> String {
        format!("{STATUS_ANNOTATION_PREFIX}{}", self.pod)
    }

    async fn write(&self, outcome: &Outcome, cm: &ConfigMapRef) -> Result<(), kube::Error> {
        let (type_, reason, note) = match (outcome.slot, &outcome.error) {
            (Slot::Live, None) => (
                EventType::Normal,
                "BundleLoaded",
                format!(
                    "bundle revision {} is live on {}",
                    outcome.attempted, self.pod
                ),
            ),
            (Slot::Live, Some(e)) => (
                EventType::Warning,
                "BundleRejected",
                format!(
                    "bundle revision {} rejected on {} (still serving {}): {e}",
                    outcome.attempted,
                    self.pod,
                    outcome.serving.as_deref().unwrap_or("nothing")
                ),
            ),
            (Slot::Candidate, None) => (
                EventType::Normal,
                "CandidateLoaded",
                format!(
                    "candidate bundle revision {} is shadow-evaluated on {} (it decides nothing until promoted)",
                    outcome.attempted, self.pod
                ),
            ),
            (Slot::Candidate, Some(e)) => (
                EventType::Warning,
                "CandidateRejected",
                format!(
                    "candidate bundle revision {} rejected on {} (the live bundle is unaffected; shadowing {}): {e}",
                    outcome.attempted,
                    self.pod,
                    outcome.serving.as_deref().unwrap_or("nothing")
                ),
            ),
        };
        let status = json!({
            "stage": outcome.slot.as_str(),
            "serving": outcome.serving,
            "latest": outcome.attempted,
            "result": if outcome.error.is_none() { "loaded" } else { "rejected" },
            "error": outcome.error.as_deref().map(|e| truncate(e, 2000)),
            "time": now_rfc3339(),
        });
        self.post(
            cm,
            type_,
            reason,
            "Reload",
            &note,
            &self.annotation_key(),
            &status,
        )
        .await
    }

    /// Publishes an Event on `cm` and sets one annotation on it (merge
    /// patch).
    #[allow(clippy::too_many_arguments)]
    async fn post(
        &self,
        cm: &ConfigMapRef,
        type_: EventType,
        reason: &str,
        action: &str,
        note: &str,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), kube::Error> {
        let reference = ObjectReference {
            api_version: Some("v1".to_string()),
            kind: Some("ConfigMap".to_string()),
            name: Some(cm.name.clone()),
            namespace: Some(cm.namespace.clone()),
            uid: cm.uid.clone(),
            resource_version: cm.resource_version.clone(),
            ..ObjectReference::default()
        };
        self.recorder
            .publish(
                &KubeEvent {
                    type_,
                    reason: reason.to_string(),
                    note: Some(truncate(note, 1000)),
                    action: action.to_string(),
                    secondary: None,
                },
                &reference,
            )
            .await?;
        let patch = json!({"metadata": {"annotations": {key: value.to_string()}}});
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &cm.namespace);
        api.patch(&cm.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Reports what the audit found a candidate bundle would change: an
    /// Event on each candidate ConfigMap (a warning when the candidate would
    /// newly deny something) and the [`CANDIDATE_IMPACT_ANNOTATION`].
    pub async fn candidate_impact(
        &self,
        configmaps: &[ConfigMapRef],
        note: &str,
        stricter: bool,
        summary: &serde_json::Value,
    ) {
        let type_ = if stricter {
            EventType::Warning
        } else {
            EventType::Normal
        };
        for cm in configmaps {
            if let Err(e) = self
                .post(
                    cm,
                    type_,
                    "CandidateImpact",
                    "Audit",
                    note,
                    CANDIDATE_IMPACT_ANNOTATION,
                    summary,
                )
                .await
            {
                self.metrics.status_errors.inc();
                tracing::warn!(configmap = %cm.name, error = %e, "writing the candidate's impact failed");
            }
        }
    }
}

impl StatusSink for StatusReporter {
    fn report(&self, outcome: Outcome, configmaps: Vec<ConfigMapRef>) {
        let client = self.client.clone();
        let this = Self {
            client,
            recorder: self.recorder.clone(),
            pod: self.pod.clone(),
            metrics: self.metrics.clone(),
        };
        tokio::spawn(async move {
            for cm in &configmaps {
                if let Err(e) = this.write(&outcome, cm).await {
                    this.metrics.status_errors.inc();
                    tracing::warn!(configmap = %cm.name, error = %e, "writing bundle status failed");
                }
            }
        });
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut cut = max;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use k8s_openapi::ByteString;

    fn cm(name: &str, path: Option<&str>, data: &[(&str, &str)]) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.name = Some(name.to_string());
        if let Some(p) = path {
            c.metadata.annotations =
                Some([(BUNDLE_PATH_ANNOTATION.to_string(), p.to_string())].into());
        }
        c.data = Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        c
    }

    #[test]
    fn keys_become_restricted_entries_mounted_at_the_bundle_path() {
        let a = cm(
            "a",
            Some("validate/x"),
            &[
                ("policy.rego", "package validate.x"),
                ("data.yaml", "k: 1"),
                ("README.md", "hi"),
            ],
        );
        let e = entries(&[&a]).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].label, "configmap/a/data.yaml");
        assert_eq!(
            e[0].kind,
            EntryKind::Data(vec!["validate".into(), "x".into()])
        );
        assert_eq!(e[1].label, "configmap/a/policy.rego");
        assert!(e.iter().all(|x| x.restricted));
    }

    #[test]
    fn the_same_file_from_two_configmaps_names_both() {
        let a = cm("first", None, &[("p.rego", "package validate.p")]);
        let b = cm("second", None, &[("p.rego", "package validate.p")]);
        let err = entries(&[&a, &b]).unwrap_err().to_string();
        assert_eq!(
            err,
            "p.rego is provided by both ConfigMap first and ConfigMap second"
        );
    }

    #[test]
    fn opa_archives_in_binary_data_are_unpacked() {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, text) in [
            (".manifest", "{\"revision\": \"v42\"}"),
            ("validate/t/policy.rego", "package validate.t"),
        ] {
            let mut header = tar::Header::new_gnu();
            header.set_size(text.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, path, text.as_bytes())
                .unwrap();
        }
        let gz = builder.into_inner().unwrap().finish().unwrap();
        let mut c = ConfigMap::default();
        c.metadata.name = Some("arch".into());
        c.binary_data = Some([("bundle.tar.gz".to_string(), ByteString(gz))].into());
        let e = entries(&[&c]).unwrap();
        let files = regent_core::bundle::BundleFiles::from_entries("t", e).unwrap();
        assert_eq!(files.revision, "v42");
        assert_eq!(
            files.modules[0].path,
            "configmap/arch/bundle.tar.gz:validate/t/policy.rego"
        );
        assert!(files.modules[0].restricted);
    }

    fn staged(name: &str, stage: Option<&str>, replaces: Option<&str>) -> ConfigMap {
        let mut c = cm(name, None, &[]);
        if let Some(s) = stage {
            c.metadata.labels = Some([(STAGE_LABEL.to_string(), s.to_string())].into());
        }
        if let Some(r) = replaces {
            c.metadata.annotations =
                Some([(REPLACES_ANNOTATION.to_string(), r.to_string())].into());
        }
        c
    }

    fn names(set: &[&ConfigMap]) -> Vec<String> {
        set.iter().map(|c| name_of(c)).collect()
    }

    #[test]
    fn stages_split_live_candidate_and_retired() {
        let a = staged("a", None, None);
        let b = staged("b", Some("live"), None);
        let old = staged("old", Some("retired"), None);
        let odd = staged("odd", Some("canary"), None);
        let all = [&a, &b, &old, &odd];
        let s = stages(&all);
        assert_eq!(names(&s.live), ["a", "b"]);
        assert!(s.candidate.is_none());
        assert_eq!(s.unknown, [("odd".to_string(), "canary".to_string())]);

        // A candidate replacing `b`: the candidate bundle keeps `a`.
        let b2 = staged("b2", Some("candidate"), Some("b, missing"));
        let all = [&a, &b, &b2];
        let s = stages(&all);
        assert_eq!(names(&s.live), ["a", "b"]);
        let c = s.candidate.unwrap();
        assert_eq!(names(&c.bundle), ["a", "b2"]);
        assert_eq!(names(&c.candidates), ["b2"]);
        assert_eq!(names(&c.replaced), ["b"]);

        // Promoted (relabelled live) before `b` is retired: `b` has left
        // the live bundle already, so the promotion is one step.
        let b2_live = staged("b2", Some("live"), Some("b"));
        let all = [&a, &b, &b2_live];
        let s = stages(&all);
        assert_eq!(names(&s.live), ["a", "b2"]);
        assert!(s.candidate.is_none());
    }

    #[test]
    fn namespace_comes_from_flag_then_environment() {
        assert_eq!(resolve_namespace(Some("ns1")).as_deref(), Some("ns1"));
    }
}
