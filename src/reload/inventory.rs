//! The inventory (`--inventory`): an opt-in, cluster-wide watch of the kinds
//! an operator lists, kept as Gatekeeper's `data.inventory` for referential
//! Constraints (unique ingress hosts, namespace selectors, ...).
//!
//! Each kind is a kube-runtime watcher (list in pages, then watch from the
//! list's resourceVersion; relist after `410 Gone`; backoff on errors). The
//! watchers send each change to one task that owns the inventory
//! ([`gatekeeper::inventory::Tree`]): a change costs work proportional to the
//! object it changes, and the objects are held once, as the engine's values.
//! At most every [`DEBOUNCE`] the task publishes the tree into [`Live`]
//! (sharing its nodes); requests read it without a lock. `managedFields` are
//! always dropped; `--inventory-fields` keeps only named fields of a kind.
//! Off by default: it needs `list` and `watch` on every listed kind,
//! cluster-wide.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::serve::state::Live;
use regent_core::gatekeeper::inventory::{Key, Projection, Tree};

/// How long after a change the inventory is published (changes in between
/// are published together).
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Changes waiting for the inventory task (watchers wait when it is full).
const QUEUE: usize = 1024;

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
    /// `v1/Namespace`, `networking.k8s.io/v1/Ingress`.
    pub fn label(&self) -> String {
        if self.gvk.group.is_empty() {
            format!("{}/{}", self.gvk.version, self.gvk.kind)
        } else {
            format!("{}/{}/{}", self.gvk.group, self.gvk.version, self.gvk.kind)
        }
    }
}

/// The fields kept of one kind (`--inventory-fields v1/Pod=metadata.labels,spec.nodeName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindFields {
    /// The kind, as in `--inventory`.
    pub kind: String,
    /// The dotted paths kept besides the object's identity.
    pub paths: Vec<String>,
}

impl std::str::FromStr for KindFields {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (kind, paths) = s.split_once('=').ok_or_else(|| {
            format!("{s:?}: expected <kind>=<path>[:<path>...], e.g. v1/Pod=metadata.labels:spec.nodeName")
        })?;
        let kind: InventoryKind = kind.parse()?;
        let paths: Vec<String> = paths
            .split(':')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        if paths.is_empty() {
            return Err(format!("{s:?}: name at least one field to keep"));
        }
        Ok(Self {
            kind: kind.label(),
            paths,
        })
    }
}

/// What a watcher tells the inventory task.
enum Change {
    /// A (re)list of a kind begins.
    Relist(String),
    /// An object was listed or changed.
    Apply(String, Json),
    /// An object was deleted.
    Delete(Key),
    /// The (re)list of a kind is complete.
    Listed(String),
}

/// Starts one watcher per kind and the task that owns `data.inventory`.
pub fn spawn(client: Client, kinds: Vec<InventoryKind>, fields: Vec<KindFields>, live: Arc<Live>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    for kind in kinds {
        let projection = fields
            .iter()
            .find(|f| f.kind == kind.label())
            .map(|f| Projection::new(&f.paths.iter().map(String::as_str).collect::<Vec<_>>()));
        tokio::spawn(watch_kind(
            client.clone(),
            kind,
            projection,
            tx.clone(),
            live.clone(),
        ));
    }
    tokio::spawn(keep(rx, live));
}

/// Applies changes to the tree; publishes at most every [`DEBOUNCE`].
async fn keep(mut rx: mpsc::Receiver<Change>, live: Arc<Live>) {
    let mut tree = Tree::new();
    // Per kind, during a (re)list: the objects held before it that it has
    // not listed again (deleted while the watch was down).
    let mut unseen: std::collections::BTreeMap<String, BTreeSet<Key>> = Default::default();
    // The kinds seen, for `regent_inventory_objects{kind}`.
    let mut kinds: BTreeSet<String> = BTreeSet::new();
    while let Some(first) = rx.recv().await {
        let mut apply = |change: Change, tree: &mut Tree| match change {
            Change::Relist(label) => {
                let held = held_of(tree, &label);
                unseen.insert(label, held.into_iter().collect());
            }
            Change::Apply(label, object) => {
                if let Some(key) = tree.insert(&object) {
                    if let Some(u) = unseen.get_mut(&label) {
                        u.remove(&key);
                    }
                    kinds.insert(label);
                }
            }
            Change::Delete(key) => tree.remove(&key),
            Change::Listed(label) => {
                let gone = unseen.remove(&label).unwrap_or_default();
                for key in &gone {
                    tree.remove(key);
                }
                tracing::info!(kind = %label, objects = count_of(tree, &label), removed = gone.len(), "inventory listed");
                kinds.insert(label);
            }
        };
        apply(first, &mut tree);
        let deadline = tokio::time::Instant::now() + DEBOUNCE;
        loop {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(change) => apply(change, &mut tree),
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        live.set_inventory(tree.value());
        for label in &kinds {
            live.metrics()
                .inventory_objects
                .with_label_values(&[label.as_str()])
                .set(count_of(&tree, label) as i64);
        }
        tracing::debug!(objects = tree.len(), "inventory published");
    }
}

/// The keys held of the kind labelled `label` (`v1/Pod`, `apps/v1/Deployment`).
fn held_of(tree: &Tree, label: &str) -> Vec<Key> {
    let (gv, kind) = label.rsplit_once('/').unwrap_or(("", label));
    tree.keys_of(gv, kind)
}

/// How many objects of the kind labelled `label` are held.
fn count_of(tree: &Tree, label: &str) -> usize {
    let (gv, kind) = label.rsplit_once('/').unwrap_or(("", label));
    tree.count_of(gv, kind)
}

async fn watch_kind(
    client: Client,
    kind: InventoryKind,
    projection: Option<Projection>,
    tx: mpsc::Sender<Change>,
    live: Arc<Live>,
) {
    let label = kind.label();
    let mut resource = ApiResource::from_gvk(&kind.gvk);
    resource.plural = kind.plural.clone();
    let api: Api<DynamicObject> = Api::all_with(client, &resource);
    let mut stream = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tracing::info!(kind = %label, "watching for the inventory");
    while let Some(event) = stream.next().await {
        let change = match event {
            Ok(Event::Init) => Some(Change::Relist(label.clone())),
            Ok(Event::InitApply(o) | Event::Apply(o)) => {
                entry(&kind, o, projection.as_ref()).map(|v| Change::Apply(label.clone(), v))
            }
            Ok(Event::InitDone) => Some(Change::Listed(label.clone())),
            Ok(Event::Delete(o)) => entry(&kind, o, None)
                .and_then(|v| Key::of(&v))
                .map(Change::Delete),
            Err(e) => {
                live.metrics()
                    .source_errors
                    .with_label_values(&["inventory"])
                    .inc();
                tracing::warn!(kind = %label, error = %e, "inventory watch failed; retrying with backoff");
                None
            }
        };
        if let Some(change) = change {
            if tx.send(change).await.is_err() {
                return;
            }
        }
    }
}

/// The object as stored: with `apiVersion` and `kind` set (lists leave them
/// out of items), without `managedFields`, and reduced to the kind's
/// projection if it has one.
fn entry(kind: &InventoryKind, o: DynamicObject, projection: Option<&Projection>) -> Option<Json> {
    o.metadata.name.as_ref()?;
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
    Some(match projection {
        Some(p) => p.apply(&value),
        None => value,
    })
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

    #[test]
    fn fields_parse_per_kind() {
        let f: KindFields = "v1/Pod=metadata.labels:spec.nodeName".parse().unwrap();
        assert_eq!(f.kind, "v1/Pod");
        assert_eq!(f.paths, ["metadata.labels", "spec.nodeName"]);
        let f: KindFields = "networking.k8s.io/v1/Ingress=spec.rules".parse().unwrap();
        assert_eq!(f.kind, "networking.k8s.io/v1/Ingress");
        assert!("v1/Pod".parse::<KindFields>().is_err());
        assert!("v1/Pod=".parse::<KindFields>().is_err());
        assert!("Pod=spec".parse::<KindFields>().is_err());
    }
}
