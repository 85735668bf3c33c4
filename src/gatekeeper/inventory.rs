//! Gatekeeper's referential data, `data.inventory`, built from objects:
//! cluster-scoped ones under `cluster[<groupVersion>][<Kind>][<name>]`,
//! namespaced ones under `namespace[<ns>][<groupVersion>][<Kind>][<name>]`.

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
pub fn empty() -> regorus::Value {
    regorus::Value::from(inventory(std::iter::empty()))
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
