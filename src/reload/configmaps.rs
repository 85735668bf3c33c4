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

use super::{ConfigMapRef, Outcome, SourceKind, SourceUpdate, StatusSink};
use crate::bundle::{self, BundleError, Entry, EntryKind};
use crate::metrics::Metrics;

/// The annotation giving the directory a ConfigMap's files sit in.
pub const BUNDLE_PATH_ANNOTATION: &str = "regent.dev/bundle-path";
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

/// Starts the watcher; sends the assembled files after the initial list and
/// after every change.
pub fn spawn(
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
                        .with_label_values(&[SourceKind::ConfigMaps.as_str()])
                        .inc();
                    tracing::warn!(error = %e, "ConfigMap watch failed; retrying with backoff");
                    false
                }
            };
            if !changed {
                continue;
            }
            let cms: Vec<&ConfigMap> = store.values().collect();
            let update = SourceUpdate {
                source: SourceKind::ConfigMaps,
                origin: origin.clone(),
                files: entries(&cms),
                configmaps: cms.iter().map(|cm| reference(cm, &namespace)).collect(),
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
            } else if (key.ends_with(".yaml") || key.ends_with(".yml"))
                && crate::objects::holds_policy_objects(text)
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
        let (type_, reason, note) = match &outcome.error {
            None => (
                EventType::Normal,
                "BundleLoaded",
                format!(
                    "bundle revision {} is live on {}",
                    outcome.attempted, self.pod
                ),
            ),
            Some(e) => (
                EventType::Warning,
                "BundleRejected",
                format!(
                    "bundle revision {} rejected on {} (still serving {}): {e}",
                    outcome.attempted,
                    self.pod,
                    outcome.serving.as_deref().unwrap_or("nothing")
                ),
            ),
        };
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
                    note: Some(truncate(&note, 1000)),
                    action: "Reload".to_string(),
                    secondary: None,
                },
                &reference,
            )
            .await?;
        let status = json!({
            "serving": outcome.serving,
            "latest": outcome.attempted,
            "result": if outcome.error.is_none() { "loaded" } else { "rejected" },
            "error": outcome.error.as_deref().map(|e| truncate(e, 2000)),
            "time": now_rfc3339(),
        });
        let patch =
            json!({"metadata": {"annotations": {self.annotation_key(): status.to_string()}}});
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &cm.namespace);
        api.patch(&cm.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
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
        let files = crate::bundle::BundleFiles::from_entries("t", e).unwrap();
        assert_eq!(files.revision, "v42");
        assert_eq!(
            files.modules[0].path,
            "configmap/arch/bundle.tar.gz:validate/t/policy.rego"
        );
        assert!(files.modules[0].restricted);
    }

    #[test]
    fn namespace_comes_from_flag_then_environment() {
        assert_eq!(resolve_namespace(Some("ns1")).as_deref(), Some("ns1"));
    }
}
