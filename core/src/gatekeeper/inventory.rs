//! Gatekeeper's referential data, `data.inventory`: cluster-scoped objects
//! under `cluster[<groupVersion>][<Kind>][<name>]`, namespaced ones under
//! `namespace[<ns>][<groupVersion>][<Kind>][<name>]`.
//!
//! Two ways to build it: [`inventory`] from a list of objects at once (files
//! of `regent verify`, `eval`, `audit`), and [`Tree`], which a watch keeps up
//! to date one change at a time. A `Tree` holds each object once, as the
//! engine's value, in a persistent tree: publishing it shares every node with
//! the copy requests read, and the next change copies only the maps on its
//! own path (copy on write), never the objects. Object keys are interned, so
//! `metadata`, `labels`, `containers`... are one allocation each, not one per
//! object. [`Projection`] keeps only named fields of a kind's objects.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regorus::Value;
use serde_json::{Map, Value as Json};

/// Builds `data.inventory` from objects.
pub fn inventory<'a>(objects: impl IntoIterator<Item = &'a Json>) -> Json {
    let mut root = Map::new();
    for o in objects {
        let (Some(gv), Some(kind), Some(name)) = (
            o["apiVersion"].as_str(),
            o["kind"].as_str(),
            o["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let mut path: Vec<&str> = match o["metadata"]["namespace"].as_str() {
            Some(ns) if !ns.is_empty() => vec!["namespace", ns],
            _ => vec!["cluster"],
        };
        path.extend([gv, kind]);
        insert_at(&mut root, &path, name, o);
    }
    for key in ["cluster", "namespace"] {
        root.entry(key.to_string())
            .or_insert_with(|| Json::Object(Map::new()));
    }
    Json::Object(root)
}

/// An empty `data.inventory`.
pub fn empty() -> Value {
    Value::from(inventory(std::iter::empty()))
}

fn insert_at(map: &mut Map<String, Json>, path: &[&str], name: &str, object: &Json) {
    match path.split_first() {
        None => {
            map.insert(name.to_string(), object.clone());
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Json::Object(Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(Map::new());
            }
            if let Json::Object(next) = entry {
                insert_at(next, rest, name, object);
            }
        }
    }
}

/// Where an object sits in the inventory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    /// Its namespace; empty for a cluster-scoped object.
    pub namespace: String,
    /// `apiVersion`.
    pub group_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl Key {
    /// The key of an object, if it has `apiVersion`, `kind` and a name.
    pub fn of(object: &Json) -> Option<Self> {
        Some(Self {
            namespace: object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            group_version: object["apiVersion"].as_str()?.to_string(),
            kind: object["kind"].as_str()?.to_string(),
            name: object["metadata"]["name"].as_str()?.to_string(),
        })
    }

    fn path(&self) -> Vec<&str> {
        let mut path = if self.namespace.is_empty() {
            vec!["cluster"]
        } else {
            vec!["namespace", self.namespace.as_str()]
        };
        path.extend([self.group_version.as_str(), self.kind.as_str()]);
        path
    }
}

/// Object keys kept as one shared string each (beyond this many distinct
/// keys, new ones are not interned: label keys can be unbounded).
const MAX_INTERNED_KEYS: usize = 65_536;

/// `data.inventory`, kept up to date one object at a time.
pub struct Tree {
    root: Value,
    keys: HashMap<String, Value>,
    held: BTreeSet<Key>,
    counts: BTreeMap<(String, String), usize>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// An empty inventory (with its `cluster` and `namespace` roots).
    pub fn new() -> Self {
        let mut tree = Self {
            root: Value::new_object(),
            keys: HashMap::new(),
            held: BTreeSet::new(),
            counts: BTreeMap::new(),
        };
        for top in ["cluster", "namespace"] {
            let key = tree.key(top);
            if let Ok(map) = tree.root.as_object_mut() {
                map.insert(key, Value::new_object());
            }
        }
        tree
    }

    /// The inventory as the engine reads it: shares every node with the
    /// tree (a reference count, not a copy).
    pub fn value(&self) -> Value {
        self.root.clone()
    }

    /// How many objects are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Nothing is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// How many objects of one `apiVersion` and `kind` are held.
    pub fn count_of(&self, group_version: &str, kind: &str) -> usize {
        self.counts
            .get(&(group_version.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// The keys of the objects held of one `apiVersion` and `kind`.
    pub fn keys_of(&self, group_version: &str, kind: &str) -> Vec<Key> {
        self.held
            .iter()
            .filter(|k| k.group_version == group_version && k.kind == kind)
            .cloned()
            .collect()
    }

    /// Adds or replaces an object (JSON as the API server sent it); returns
    /// its key, or `None` when it lacks `apiVersion`, `kind` or a name.
    pub fn insert(&mut self, object: &Json) -> Option<Key> {
        let key = Key::of(object)?;
        let value = self.convert(object);
        self.insert_value(&key, value);
        Some(key)
    }

    fn insert_value(&mut self, key: &Key, value: Value) {
        let path: Vec<Value> = key.path().into_iter().map(|p| self.key(p)).collect();
        insert_at_path(&mut self.root, &path, Value::from(key.name.as_str()), value);
        if self.held.insert(key.clone()) {
            *self
                .counts
                .entry((key.group_version.clone(), key.kind.clone()))
                .or_default() += 1;
        }
    }

    /// Removes an object; maps it leaves empty are removed too.
    pub fn remove(&mut self, key: &Key) {
        if !self.held.remove(key) {
            return;
        }
        if let Some(n) = self
            .counts
            .get_mut(&(key.group_version.clone(), key.kind.clone()))
        {
            *n = n.saturating_sub(1);
        }
        let path: Vec<Value> = key.path().into_iter().map(Value::from).collect();
        remove_at(&mut self.root, &path, &Value::from(key.name.as_str()), true);
    }

    /// The engine's value of a JSON object, with its keys interned.
    fn convert(&mut self, json: &Json) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::from(i)
                } else if let Some(u) = n.as_u64() {
                    Value::from(u)
                } else {
                    Value::from_numeric_string(&n.to_string())
                        .unwrap_or_else(|_| Value::from(n.as_f64().unwrap_or_default()))
                }
            }
            Json::String(s) => Value::from(s.as_str()),
            Json::Array(items) => {
                Value::from(items.iter().map(|i| self.convert(i)).collect::<Vec<_>>())
            }
            Json::Object(fields) => {
                let mut map = BTreeMap::new();
                for (k, v) in fields {
                    let key = self.key(k);
                    map.insert(key, self.convert(v));
                }
                Value::from(map)
            }
        }
    }

    fn key(&mut self, k: &str) -> Value {
        if let Some(v) = self.keys.get(k) {
            return v.clone();
        }
        let v = Value::from(k);
        if self.keys.len() < MAX_INTERNED_KEYS {
            self.keys.insert(k.to_string(), v.clone());
        }
        v
    }
}

/// Sets `name` to `value` in the map under `path`, creating maps on the way;
/// each map on the path is copied first if it is shared with a published
/// inventory (`Rc::make_mut`), nothing else is.
fn insert_at_path(node: &mut Value, path: &[Value], name: Value, value: Value) {
    if !matches!(node, Value::Object(_)) {
        *node = Value::new_object();
    }
    let Ok(map) = node.as_object_mut() else {
        return;
    };
    match path.split_first() {
        None => {
            map.insert(name, value);
        }
        Some((head, rest)) => match map.get_mut(head) {
            Some(next) => insert_at_path(next, rest, name, value),
            None => {
                let mut next = Value::new_object();
                insert_at_path(&mut next, rest, name, value);
                map.insert(head.clone(), next);
            }
        },
    }
}

/// Removes `name` under `path`, and each map on the way that it empties
/// (the two roots, `cluster` and `namespace`, stay). Returns whether `node`
/// is now empty.
fn remove_at(node: &mut Value, path: &[Value], name: &Value, root: bool) -> bool {
    let Ok(map) = node.as_object_mut() else {
        return false;
    };
    match path.split_first() {
        None => {
            map.remove(name);
        }
        Some((head, rest)) => {
            let emptied = map
                .get_mut(head)
                .is_some_and(|c| remove_at(c, rest, name, false));
            if emptied && !root {
                map.remove(head);
            }
        }
    }
    map.is_empty()
}

/// The fields kept of one kind's objects in the inventory (`--inventory-fields`):
/// `apiVersion`, `kind`, `metadata.name` and `metadata.namespace` always, and
/// each named dotted path (`metadata.labels`, `spec.rules`). A template that
/// reads a field not kept sees it undefined, and may so miss a violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    paths: Vec<Vec<String>>,
}

impl Projection {
    /// A projection keeping `paths` (dotted, e.g. `spec.rules`).
    pub fn new(paths: &[&str]) -> Self {
        Self {
            paths: paths
                .iter()
                .filter(|p| !p.is_empty())
                .map(|p| p.split('.').map(str::to_string).collect())
                .collect(),
        }
    }

    /// The object reduced to the kept fields.
    pub fn apply(&self, object: &Json) -> Json {
        let mut out = Json::Object(Map::new());
        for always in [
            &["apiVersion"][..],
            &["kind"],
            &["metadata", "name"],
            &["metadata", "namespace"],
        ] {
            copy_path(object, &mut out, always);
        }
        for path in &self.paths {
            let path: Vec<&str> = path.iter().map(String::as_str).collect();
            copy_path(object, &mut out, &path);
        }
        out
    }
}

/// Copies the value at `path` of `from` into `to`, with the objects on the
/// way; nothing when `from` has no value there.
fn copy_path(from: &Json, to: &mut Json, path: &[&str]) {
    let Some(value) = path.iter().try_fold(from, |v, p| v.get(p)) else {
        return;
    };
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut target = to;
    for p in parents {
        let Json::Object(map) = target else {
            return;
        };
        target = map
            .entry((*p).to_string())
            .or_insert_with(|| Json::Object(Map::new()));
    }
    if let Json::Object(map) = target {
        map.insert((*last).to_string(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use serde_json::json;

    fn pod(ns: &str, name: &str, image: &str) -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
               "spec": {"containers": [{"name": "app", "image": image, "port": 8080, "ratio": 0.5}]}})
    }

    fn expected(objects: &[Json]) -> Value {
        Value::from(inventory(objects))
    }

    #[test]
    fn a_tree_kept_one_change_at_a_time_equals_one_built_at_once() {
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let a = pod("shop", "a", "web:1");
        let b = pod("shop", "b", "web:1");
        let c = pod("ops", "c", "tool:2");
        let mut tree = Tree::new();
        assert_eq!(tree.value(), expected(&[]));
        for o in [&node, &a, &b, &c] {
            tree.insert(o).unwrap();
        }
        assert_eq!(
            tree.value(),
            expected(&[node.clone(), a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(
            (tree.count_of("v1", "Pod"), tree.count_of("v1", "Node")),
            (3, 1)
        );
        // What requests read does not change under them.
        let published = tree.value();
        let a2 = pod("shop", "a", "web:2");
        tree.insert(&a2).unwrap();
        assert_eq!(
            published,
            expected(&[node.clone(), a.clone(), b.clone(), c.clone()])
        );
        assert_eq!(
            tree.value(),
            expected(&[node.clone(), a2.clone(), b.clone(), c.clone()])
        );
        // Removing the last object of a namespace removes the namespace.
        tree.remove(&Key::of(&c).unwrap());
        tree.remove(&Key::of(&node).unwrap());
        assert_eq!(tree.value(), expected(&[a2.clone(), b.clone()]));
        tree.remove(&Key::of(&a2).unwrap());
        tree.remove(&Key::of(&b).unwrap());
        assert_eq!(tree.value(), expected(&[]));
        assert!(tree.is_empty());
        assert_eq!(tree.count_of("v1", "Pod"), 0);
        // Removing what is not there changes nothing.
        tree.remove(&Key::of(&b).unwrap());
        assert_eq!(tree.value(), expected(&[]));
    }

    #[test]
    fn unchanged_objects_are_shared_not_copied_by_a_change() {
        let mut tree = Tree::new();
        tree.insert(&pod("shop", "a", "web:1")).unwrap();
        tree.insert(&pod("shop", "b", "web:1")).unwrap();
        let published = tree.value();
        tree.insert(&pod("shop", "b", "web:2")).unwrap();
        let a = |v: &Value| v["namespace"]["shop"]["v1"]["Pod"]["a"].clone();
        let (Value::Object(before), Value::Object(after)) = (a(&published), a(&tree.value()))
        else {
            panic!("not objects")
        };
        assert!(regorus::Rc::ptr_eq(&before, &after));
    }

    #[test]
    fn a_projection_keeps_the_identity_and_the_named_fields() {
        let p = Projection::new(&["metadata.labels", "spec.containers", "status.missing"]);
        let mut o = pod("shop", "a", "web:1");
        o["metadata"]["annotations"] = json!({"big": "x"});
        o["status"] = json!({"phase": "Running"});
        assert_eq!(
            p.apply(&o),
            json!({"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": "a", "namespace": "shop", "labels": {"app": "a"}},
                   "spec": {"containers": o["spec"]["containers"].clone()}})
        );
    }
}
