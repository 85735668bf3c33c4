//! Reading the objects a command is given: files, directories (walked for
//! `.yaml`, `.yml` and `.json`), `-` for standard input; multi-document YAML
//! or JSON; a `List` (what `kubectl get -o yaml` prints) is expanded into its
//! items. Each object is labelled `file#n` for messages.

use std::io::Read;
use std::path::Path;

use serde_json::{json, Value as Json};

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
