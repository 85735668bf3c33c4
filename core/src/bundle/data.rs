//! A bundle's data: each file parsed (JSON or YAML, one mapping), the files
//! of one bundle merged (two files setting one leaf are a conflict naming
//! both), the bundles of a composition laid over each other (a later
//! bundle's value overrides, and says so), and where a key is set.

use serde_json::{Map, Value as Json};

use super::{BundleError, BundleFiles, DataFile, Location};

/// Where `rest` (below the file's mount) is in `file`.
pub fn locate_in(file: &DataFile, rest: &[String]) -> Location {
    let (line, column) = crate::positions::nearest(&file.text, rest).unwrap_or((0, 0));
    Location {
        path: file.path.clone(),
        line,
        column,
    }
}

impl BundleFiles {
    /// Merges every data file into one `data` document. Within one bundle,
    /// two files that set the same leaf are a conflict naming both; in a
    /// composition, a later bundle's data overrides an earlier one's.
    pub fn merged_data(&self) -> Result<Json, BundleError> {
        self.merged_data_with_overrides().map(|(data, _)| data)
    }

    /// [`BundleFiles::merged_data`], and every value a later bundle of a
    /// composition overrides, so an override is never silent.
    pub fn merged_data_with_overrides(&self) -> Result<(Json, Vec<Override>), BundleError> {
        let mut root = Json::Object(Map::new());
        let mut overrides = Vec::new();
        let mut below: Vec<(String, String)> = Vec::new();
        let top = self.data.iter().map(|f| f.layer).max().unwrap_or(0);
        for layer in 0..=top {
            let mut merged = Json::Object(Map::new());
            let mut owners: Vec<(String, String)> = Vec::new();
            for file in self.data.iter().filter(|f| f.layer == layer) {
                let mut doc = file.value.clone();
                for segment in file.mount.iter().rev() {
                    let mut m = Map::new();
                    m.insert(segment.clone(), doc);
                    doc = Json::Object(m);
                }
                merge(&mut merged, doc, &mut Vec::new(), &file.path, &mut owners)?;
            }
            overlay(
                &mut root,
                merged,
                &mut Vec::new(),
                &owners,
                &below,
                &mut overrides,
            );
            below.extend(owners);
        }
        Ok((root, overrides))
    }
}

/// A value of a lower bundle replaced by a later bundle of a composition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    /// The dotted key below `data`.
    pub key: String,
    /// The file that sets it now.
    pub by: String,
    /// The file whose value it replaces.
    pub replaces: String,
}

impl std::fmt::Display for Override {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "data.{} from {} overrides {}",
            self.key, self.by, self.replaces
        )
    }
}

/// Lays a later bundle's merged data over the data so far: objects merge,
/// anything else replaces (and is recorded as an override).
fn overlay(
    target: &mut Json,
    upper: Json,
    at: &mut Vec<String>,
    owners: &[(String, String)],
    below: &[(String, String)],
    out: &mut Vec<Override>,
) {
    let owner = |list: &[(String, String)], key: &str| {
        list.iter()
            .rev()
            .find(|(k, _)| key == k || key.starts_with(&format!("{k}.")))
            .map(|(_, f)| f.clone())
            .unwrap_or_default()
    };
    match (target, upper) {
        (Json::Object(t), Json::Object(u)) => {
            for (k, v) in u {
                at.push(k.clone());
                match t.get_mut(&k) {
                    Some(existing) => overlay(existing, v, at, owners, below, out),
                    None => {
                        t.insert(k, v);
                    }
                }
                at.pop();
            }
        }
        (target, upper) => {
            let key = at.join(".");
            out.push(Override {
                by: owner(owners, &key),
                replaces: owner(below, &key),
                key,
            });
            *target = upper;
        }
    }
}

fn merge(
    target: &mut Json,
    incoming: Json,
    at: &mut Vec<String>,
    file: &str,
    owners: &mut Vec<(String, String)>,
) -> Result<(), BundleError> {
    match (target, incoming) {
        (Json::Object(t), Json::Object(i)) => {
            for (k, v) in i {
                at.push(k.clone());
                match t.get_mut(&k) {
                    Some(existing) => merge(existing, v, at, file, owners)?,
                    None => {
                        owners.push((at.join("."), file.to_string()));
                        t.insert(k, v);
                    }
                }
                at.pop();
            }
            Ok(())
        }
        _ => {
            let key = at.join(".");
            let first = owners
                .iter()
                .rev()
                .find(|(k, _)| key.starts_with(k.as_str()))
                .map(|(_, f)| f.clone())
                .unwrap_or_default();
            Err(BundleError::DataConflict {
                key,
                first,
                second: file.to_string(),
            })
        }
    }
}

/// Parses a data document: JSON for `.json`, YAML (one document) otherwise.
/// An empty YAML file is an empty object.
pub fn parse_data(path: &str, text: &str) -> Result<Json, BundleError> {
    let value = if path.ends_with(".json") {
        serde_json::from_str::<Json>(text).map_err(|e| BundleError::Data {
            path: path.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?
    } else {
        if text.trim().is_empty() {
            return Ok(Json::Object(Map::new()));
        }
        serde_yaml_ng::from_str::<Json>(text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            BundleError::Data {
                path: path.to_string(),
                line,
                column,
                message: e.to_string(),
            }
        })?
    };
    if !value.is_object() {
        return Err(BundleError::Data {
            path: path.to_string(),
            line: 1,
            column: 1,
            message: "a data file must hold an object (a mapping of keys to values)".to_string(),
        });
    }
    Ok(value)
}
