//! The inventory (`--inventory`): an opt-in, cluster-wide watch of the kinds
//! an operator lists, kept as Gatekeeper's `data.inventory` for referential
//! Constraints (unique ingress hosts, namespace selectors, ...).
//!
//! Each kind is a kube-runtime watcher (list, then watch from the list's
//! resourceVersion; relist after `410 Gone`; backoff on errors). After a
//! change the whole inventory is rebuilt off the request path (debounced) and
//! swapped into [`Live`]; requests read it without a lock. `managedFields`
//! are dropped to save memory. Off by default: it needs `list` and `watch` on
//! every listed kind, cluster-wide.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::Value as Json;
use tokio::sync::Notify;

use crate::state::Live;

/// How long after a change the inventory is rebuilt (changes in between are
/// folded into one rebuild).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// One watched kind: `v1/Namespace`, `networking.k8s.io/v1/Ingress`, with an
/// optional `=plural` when the resource name is not the usual plural.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryKind {
    /// Group, version and kind.
    pub gvk: GroupVersionKind,
    /// The resource (plural) name.
    pub plural: String,
}

impl std::str::FromStr for InventoryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (spec, plural) = match s.split_once('=') {
            Some((spec, plural)) => (spec, Some(plural.to_string())),
            None => (s, None),
        };
        let parts: Vec<&str> = spec.split('/').collect();
        let (group, version, kind) = match parts.as_slice() {
            [version, kind] => ("", *version, *kind),
            [group, version, kind] => (*group, *version, *kind),
            _ => {
                return Err(format!(
                    "{s:?}: expected <version>/<Kind> or <group>/<version>/<Kind> (v1/Namespace, networking.k8s.io/v1/Ingress), optionally =<plural>"
                ))
            }
        };
        if version.is_empty() || kind.is_empty() {
            return Err(format!("{s:?}: version and kind must not be empty"));
        }
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let plural = plural.unwrap_or_else(|| ApiResource::from_gvk(&gvk).plural);
        Ok(Self { gvk, plural })
    }
}

impl InventoryKind {
    fn label(&self) -> String {
        if self.gvk.group.is_empty() {
            format!("{}/{}", self.gvk.version, self.gvk.kind)
        } else {
            format!("{}/{}/{}", self.gvk.group, self.gvk.version, self.gvk.kind)
        }
    }
}

/// One kind's objects by (namespace, name).
type Objects = BTreeMap<(String, String), Json>;
/// Every kind's objects, by kind label.
type Store = Arc<Mutex<BTreeMap<String, Objects>>>;

/// Starts one watcher per kind and the task that rebuilds `data.inventory`.
pub fn spawn(client: Client, kinds: Vec<InventoryKind>, live: Arc<Live>) {
    let store: Store = Arc::new(Mutex::new(BTreeMap::new()));
    let changed = Arc::new(Notify::new());
    for kind in kinds {
        tokio::spawn(watch_kind(
            client.clone(),
            kind,
            store.clone(),
            changed.clone(),
            live.clone(),
        ));
    }
    tokio::spawn(async move {
        loop {
            changed.notified().await;
            tokio::time::sleep(DEBOUNCE).await;
            let objects: Vec<Json> = {
                let guard = store.lock().unwrap_or_else(|e| e.into_inner());
                guard.values().flat_map(|m| m.values().cloned()).collect()
            };
            let inventory = crate::gatekeeper::inventory(&objects);
            live.set_inventory(regorus::Value::from(inventory));
            tracing::debug!(objects = objects.len(), "inventory rebuilt");
        }
    });
}

async fn watch_kind(
    client: Client,
    kind: InventoryKind,
    store: Store,
    changed: Arc<Notify>,
    live: Arc<Live>,
) {
    let label = kind.label();
    let mut resource = ApiResource::from_gvk(&kind.gvk);
    resource.plural = kind.plural.clone();
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut relisting: Option<Objects> = None;
    tracing::info!(kind = %label, "watching for the inventory");
    while let Some(event) = stream.next().await {
        let update = |f: &mut dyn FnMut(&mut Objects)| {
            let mut guard = store.lock().unwrap_or_else(|e| e.into_inner());
            let map = guard.entry(label.clone()).or_default();
            f(map);
            live.metrics()
                .inventory_objects
                .with_label_values(&[label.as_str()])
                .set(map.len() as i64);
        };
        match event {
            Ok(Event::Init) => relisting = Some(BTreeMap::new()),
            Ok(Event::InitApply(o)) => {
                if let (Some(buffer), Some((key, value))) = (relisting.as_mut(), entry(&kind, o)) {
                    buffer.insert(key, value);
                }
            }
            Ok(Event::InitDone) => {
                let fresh = relisting.take().unwrap_or_default();
                tracing::info!(kind = %label, objects = fresh.len(), "inventory listed");
                update(&mut |map| *map = fresh.clone());
                changed.notify_one();
            }
            Ok(Event::Apply(o)) => {
                if let Some((key, value)) = entry(&kind, o) {
                    update(&mut |map| {
                        map.insert(key.clone(), value.clone());
                    });
                    changed.notify_one();
                }
            }
            Ok(Event::Delete(o)) => {
                if let Some((key, _)) = entry(&kind, o) {
                    update(&mut |map| {
                        map.remove(&key);
                    });
                    changed.notify_one();
                }
            }
            Err(e) => {
                live.metrics()
                    .source_errors
                    .with_label_values(&["inventory"])
                    .inc();
                tracing::warn!(kind = %label, error = %e, "inventory watch failed; retrying with backoff");
            }
        }
    }
}

/// The object as stored: with `apiVersion` and `kind` set (lists leave them
/// out of items) and without `managedFields`.
fn entry(kind: &InventoryKind, o: DynamicObject) -> Option<((String, String), Json)> {
    let mut value = serde_json::to_value(&o).ok()?;
    let api_version = if kind.gvk.group.is_empty() {
        kind.gvk.version.clone()
    } else {
        format!("{}/{}", kind.gvk.group, kind.gvk.version)
    };
    let map = value.as_object_mut()?;
    map.insert("apiVersion".to_string(), Json::String(api_version));
    map.insert("kind".to_string(), Json::String(kind.gvk.kind.clone()));
    if let Some(Json::Object(meta)) = map.get_mut("metadata") {
        meta.remove("managedFields");
    }
    let namespace = o.metadata.namespace.clone().unwrap_or_default();
    let name = o.metadata.name.clone()?;
    Some(((namespace, name), value))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kinds_parse_with_plurals() {
        let ns: InventoryKind = "v1/Namespace".parse().unwrap();
        assert_eq!(ns.gvk.group, "");
        assert_eq!(ns.plural, "namespaces");
        let ing: InventoryKind = "networking.k8s.io/v1/Ingress".parse().unwrap();
        assert_eq!(ing.gvk.group, "networking.k8s.io");
        assert_eq!(ing.plural, "ingresses");
        let odd: InventoryKind = "example.com/v1/Mouse=mice".parse().unwrap();
        assert_eq!(odd.plural, "mice");
        assert!("Namespace".parse::<InventoryKind>().is_err());
        assert!("a/b/c/d".parse::<InventoryKind>().is_err());
    }
}
