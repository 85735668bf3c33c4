//! Writing reports: at most `--report-qps` a second, in the order they
//! became due, each one a single call when the store knows whether the
//! report exists (a create, a merge patch or a delete) and a second one when
//! it was wrong. Also reads, at start, the reports Regent wrote before, so
//! a restarted audit rewrites nothing that has not changed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use kube::{Api, Client};
use serde_json::Value as Json;

use super::report::{self, ReportOptions};
use super::store::{Pending, Store};
use crate::metrics::AuditMetrics;

/// The report writer and the store it drains.
pub struct Writer {
    client: Client,
    reports: ReportOptions,
    store: Mutex<Store>,
    metrics: AuditMetrics,
    qps: f64,
    enabled: AtomicBool,
}

impl Writer {
    /// A writer of `reports`, off until [`Writer::set_enabled`].
    pub fn new(
        client: Client,
        reports: ReportOptions,
        store: Store,
        metrics: AuditMetrics,
        qps: f64,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            reports,
            store: Mutex::new(store),
            metrics,
            qps: qps.max(0.01),
            enabled: AtomicBool::new(false),
        })
    }

    /// The store.
    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether reports are written (the cluster serves their resources).
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns writing on or off; returns what it was.
    pub fn set_enabled(&self, on: bool) -> bool {
        self.enabled.swap(on, Ordering::Relaxed)
    }

    fn resource(&self, namespaced: bool) -> ApiResource {
        let f = self.reports.format;
        ApiResource {
            group: f.group().to_string(),
            version: f.version().to_string(),
            api_version: f.api_version(),
            kind: f.kind(namespaced).to_string(),
            plural: f.plural(namespaced).to_string(),
        }
    }

    fn api(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.resource(true)),
            None => Api::all_with(self.client.clone(), &self.resource(false)),
        }
    }

    /// Reads the reports Regent wrote before (label `managed-by: regent`) into
    /// the store: their names (the resource UIDs) and content hashes.
    pub async fn read_existing(&self) -> usize {
        let mut found = 0;
        let selector = format!("{}={}", report::MANAGED_BY.0, report::MANAGED_BY.1);
        for namespaced in [true, false] {
            let api: Api<DynamicObject> =
                Api::all_with(self.client.clone(), &self.resource(namespaced));
            let mut params = ListParams::default().labels(&selector).limit(500);
            loop {
                let page = match api.list_metadata(&params).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(error = %e, "listing existing reports failed; they will be rewritten as needed");
                        break;
                    }
                };
                {
                    let mut store = self.store();
                    for item in &page.items {
                        let (Some(name), Some(hash)) = (
                            item.metadata.name.as_deref(),
                            item.metadata
                                .labels
                                .as_ref()
                                .and_then(|l| l.get(report::HASH_LABEL)),
                        ) else {
                            continue;
                        };
                        store.found_report(name, hash, item.metadata.namespace.clone());
                        found += 1;
                    }
                }
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
        }
        found
    }

    /// Writes queued reports, at most `--report-qps` a second.
    pub async fn run(self: Arc<Self>) {
        let qps = self.qps;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / qps));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let next = self.store().next_write();
            let Some((uid, pending)) = next else {
                continue;
            };
            if !self.enabled() {
                continue;
            }
            match self.write(&pending).await {
                Ok(op) => {
                    self.metrics
                        .writes
                        .with_label_values(&[op, "success"])
                        .inc();
                    let hash = match &pending {
                        Pending::Put { hash, .. } => Some(*hash),
                        Pending::Delete { .. } => None,
                    };
                    self.store().written(&uid, hash);
                }
                Err((op, e)) => {
                    self.metrics
                        .writes
                        .with_label_values(&[op, "failure"])
                        .inc();
                    tracing::warn!(report = pending.name(), error = %e, "writing a report failed; retrying later");
                    self.store().retry(uid, pending);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Makes one write: create (or, if it exists, merge-patch) a report, or
    /// delete one. Returns the operation made.
    async fn write(&self, pending: &Pending) -> Result<&'static str, (&'static str, kube::Error)> {
        match pending {
            Pending::Put {
                name,
                namespace,
                body,
                exists,
                ..
            } => {
                let api = self.api(namespace.as_deref());
                let update = || async {
                    let patch: Json = serde_json::from_slice(body)
                        .map_err(|e| ("update", kube::Error::SerdeError(e)))?;
                    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                        .map(|_| "update")
                        .map_err(|e| ("update", e))
                };
                let create = || async {
                    let object: DynamicObject = serde_json::from_slice(body)
                        .map_err(|e| ("create", kube::Error::SerdeError(e)))?;
                    api.create(&PostParams::default(), &object)
                        .await
                        .map(|_| "create")
                        .map_err(|e| ("create", e))
                };
                // One call when the store knows; the other when it was wrong.
                if *exists {
                    match update().await {
                        Err((_, kube::Error::Api(s))) if s.code == 404 => create().await,
                        other => other,
                    }
                } else {
                    match create().await {
                        Err((_, kube::Error::Api(s))) if s.code == 409 => update().await,
                        other => other,
                    }
                }
            }
            Pending::Delete { name, namespace } => {
                let api = self.api(namespace.as_deref());
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => Ok("delete"),
                    Err(kube::Error::Api(status)) if status.code == 404 => Ok("delete"),
                    Err(e) => Err(("delete", e)),
                }
            }
        }
    }
}
