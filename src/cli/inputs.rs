//! Reading the objects a command is given: files, directories (walked for
//! `.yaml`, `.yml` and `.json`), `-` for standard input; multi-document YAML
//! or JSON; a `List` (what `kubectl get -o yaml` prints) is expanded into its
//! items. Each object is labelled `file#n` for messages.

use std::io::Read;
use std::path::Path;

use serde_json::{json, Value as Json};

/// [`read_inputs`] for a command: at least one object, or the error said
/// on standard error and the usage exit code.
pub fn read_objects(files: &[String]) -> Result<Vec<(String, Json)>, u8> {
    match read_inputs(files) {
        Ok(d) if !d.is_empty() => Ok(d),
        Ok(_) => {
            eprintln!("error: no objects found in {}", files.join(", "));
            Err(super::common::EXIT_USAGE)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(super::common::EXIT_USAGE)
        }
    }
}

/// Reads every object in `files` (paths, directories or `-`).
pub fn read_inputs(files: &[String]) -> Result<Vec<(String, Json)>, String> {
    let mut out = Vec::new();
    for f in files {
        if f == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| format!("stdin: {e}"))?;
            out.extend(parse_documents("stdin", &text)?);
            continue;
        }
        let path = Path::new(f);
        if path.is_dir() {
            for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
                let entry = entry.map_err(|e| format!("{f}: {e}"))?;
                let p = entry.path();
                let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
                if entry.file_type().is_file() && matches!(ext, "yaml" | "yml" | "json") {
                    out.extend(read_file(p)?);
                }
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    Ok(out)
}

/// Reads the objects of one file.
pub fn read_file(path: &Path) -> Result<Vec<(String, Json)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
    parse_documents(&path.display().to_string(), &text)
}

/// Splits YAML (multi-document) or JSON text into objects; a `List` is
/// expanded into its items.
pub fn parse_documents(source: &str, text: &str) -> Result<Vec<(String, Json)>, String> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    if text.trim_start().starts_with('{') || text.trim_start().starts_with('[') {
        let v: Json = serde_json::from_str(text).map_err(|e| format!("{source}: {e}"))?;
        match v {
            Json::Array(items) => docs.extend(items),
            other => docs.push(other),
        }
    } else {
        for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let v =
                Json::deserialize(de).map_err(|e| format!("{source}: document {}: {e}", i + 1))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    let mut out = Vec::new();
    for (i, d) in docs.into_iter().enumerate() {
        let label = format!("{source}#{}", i + 1);
        if !d.is_object() {
            return Err(format!("{label}: not an object"));
        }
        if d["kind"].as_str().is_some_and(|k| k.ends_with("List")) && d["items"].is_array() {
            for item in d["items"].as_array().into_iter().flatten() {
                out.push((label.clone(), item.clone()));
            }
        } else {
            out.push((label, d));
        }
    }
    Ok(out)
}

/// Operations a manifest can be reviewed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
#[clap(rename_all = "UPPER")]
pub enum Operation {
    /// A new object.
    Create,
    /// A change (the manifest is both old and new object).
    Update,
    /// A deletion.
    Delete,
}

/// Wraps a manifest in a v1 AdmissionReview as `regent eval` and `regent
/// diff` review it (operation `operation`, user `regent-eval`, namespace
/// `namespace` when the manifest names none); a review is returned as it is.
pub fn review_for(doc: Json, index: usize, operation: Operation, namespace: &str) -> Json {
    if doc["kind"] == "AdmissionReview" {
        return doc;
    }
    let api_version = doc["apiVersion"].as_str().unwrap_or("v1").to_string();
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    let (group, version) = (group.to_string(), version.to_string());
    let kind = doc["kind"].as_str().unwrap_or("").to_string();
    let name = doc["metadata"]["name"].as_str().unwrap_or("").to_string();
    let namespace = doc["metadata"]["namespace"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| namespace.to_string());
    let resource = format!("{}s", kind.to_lowercase());
    let op = match operation {
        Operation::Create => "CREATE",
        Operation::Update => "UPDATE",
        Operation::Delete => "DELETE",
    };
    let (object, old) = match operation {
        Operation::Create => (doc, Json::Null),
        Operation::Update => (doc.clone(), doc),
        Operation::Delete => (Json::Null, doc),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("regent-eval-{index}"),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": name,
            "namespace": namespace,
            "operation": op,
            "userInfo": {"username": "regent-eval", "groups": ["system:authenticated"]},
            "object": object,
            "oldObject": old,
            "dryRun": true
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_yaml_documents_and_lists() {
        let docs = parse_documents(
            "x.yaml",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: List\nitems:\n- {kind: Pod}\n- {kind: Pod}\n",
        )
        .unwrap();
        assert_eq!(docs.len(), 3);
        assert_eq!(docs[0].0, "x.yaml#1");
        assert!(parse_documents("x.yaml", "- 1\n").is_err());
        assert!(parse_documents("x.json", "{").is_err());
    }
}

/// How an offline command reviews an object whose manifest names no
/// namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespacing {
    /// As `kubectl apply -n NS` creates it: a namespaced object is in NS
    /// (a cluster-scoped one stays without); a Namespace no input declares
    /// is taken as existing, unlabelled.
    In(String),
    /// As `gator test` reviews it: without a namespace, matched against an
    /// empty, unlabelled Namespace (no `namespaces` entry names it, no
    /// `excludedNamespaces` entry excludes it, a `namespaceSelector` sees
    /// no labels); only `default` is taken as existing when no input
    /// declares it.
    GatorCompat,
}

/// Applies `rule` to the objects given and returns their inventory
/// (`data.inventory`): the objects themselves, plus an unlabelled
/// Namespace for each namespace they are in that no input declares (every
/// one with [`Namespacing::In`]; `default` alone, as gator, in compat).
pub fn prepare(docs: &mut [(String, Json)], rule: &Namespacing) -> Json {
    if let Namespacing::In(ns) = rule {
        for (_, d) in docs.iter_mut() {
            let api_version = d["apiVersion"].as_str().unwrap_or("v1").to_string();
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            if kind == "AdmissionReview" || kind.is_empty() {
                continue;
            }
            let named = d["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| !n.is_empty());
            if !named && !regent_core::objects::is_cluster_scoped(&api_version, &kind) {
                if let Some(meta) = d["metadata"].as_object_mut() {
                    meta.insert("namespace".into(), json!(ns));
                }
            }
        }
    }
    let declared: std::collections::BTreeSet<String> = docs
        .iter()
        .filter(|(_, d)| d["kind"] == "Namespace" && d["apiVersion"] == "v1")
        .filter_map(|(_, d)| d["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let used: std::collections::BTreeSet<String> = match rule {
        Namespacing::In(_) => docs
            .iter()
            .filter_map(|(_, d)| d["metadata"]["namespace"].as_str())
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect(),
        Namespacing::GatorCompat => ["default".to_string()].into(),
    };
    let implied: Vec<Json> = used
        .difference(&declared)
        .map(|n| json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}))
        .collect();
    regent_core::gatekeeper::inventory(docs.iter().map(|(_, d)| d).chain(implied.iter()))
}

/// The namespacing flags of `eval`, `audit` and `diff`.
pub fn namespacing(namespace: &str, gator_compat: bool) -> Namespacing {
    if gator_compat {
        Namespacing::GatorCompat
    } else {
        Namespacing::In(namespace.to_string())
    }
}

/// The policy objects among the inputs (templates, Constraints,
/// ExpansionTemplates, mutators), as a bundle: with `--gator-compat` they
/// are the only policies, as in `gator test`.
pub fn gatekeeper_bundle(
    docs: &[(String, Json)],
) -> Result<regent_core::bundle::BundleFiles, regent_core::bundle::BundleError> {
    // As gator adds them: a later object of the same kind and name
    // replaces an earlier one (suites keep variants of one Constraint).
    let key = |d: &Json| {
        (
            d["kind"].as_str().unwrap_or_default().to_string(),
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    let policy = |d: &Json| {
        d["apiVersion"]
            .as_str()
            .is_some_and(regent_core::objects::is_policy_api)
    };
    let last: std::collections::BTreeMap<(String, String), usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, (_, d))| policy(d))
        .map(|(i, (_, d))| (key(d), i))
        .collect();
    let files: Vec<(String, Vec<u8>)> = docs
        .iter()
        .enumerate()
        .filter(|(i, (_, d))| policy(d) && last.get(&key(d)) == Some(i))
        .map(|(i, (_, d))| {
            (
                format!("inputs/{i:05}.yaml"),
                serde_yaml_ng::to_string(d).unwrap_or_default().into_bytes(),
            )
        })
        .collect();
    regent_core::bundle::BundleFiles::from_files("the Gatekeeper objects given", files)
}
