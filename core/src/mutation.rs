//! Applying what mutating policies ask for, and the patch that goes back to the
//! API server.
//!
//! A mutating policy returns JSON patch `add` operations. Regent applies them
//! with two guarantees a plain RFC 6902 `add` does not give: missing parent
//! objects are created, and a member that already exists is left alone, so a
//! value the user set is never overwritten. All operations of one policy apply
//! together or not at all. The response carries the RFC 6902 diff from the
//! object as sent to the object as finally mutated.

use serde_json::Value as Json;

/// Errors in a policy's patch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MutationError {
    /// The patch is not a list of operation objects.
    #[error("policy {policy}: patch must be a set or array of {{\"op\": \"add\", \"path\": ..., \"value\": ...}} objects, got {got}")]
    Shape {
        /// The policy.
        policy: String,
        /// What was found instead.
        got: String,
    },
    /// An operation other than `add`.
    #[error("policy {policy}: operation {op:?} is not allowed; mutating policies only add (regent never replaces or removes a user's value)")]
    Op {
        /// The policy.
        policy: String,
        /// The operation it asked for.
        op: String,
    },
    /// A path that cannot be applied to the object.
    #[error("policy {policy}: cannot add at {path}: {reason}")]
    Path {
        /// The policy.
        policy: String,
        /// The JSON pointer.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One `add` operation: a JSON pointer split into unescaped tokens, and a value.
#[derive(Debug, Clone, PartialEq)]
pub struct AddOp {
    /// The pointer as written by the policy.
    pub pointer: String,
    /// Its unescaped reference tokens.
    pub tokens: Vec<String>,
    /// The value to add.
    pub value: Json,
}

/// Reads a policy's `patch` result (a set or an array of operations).
pub fn parse_ops(policy: &str, patch: &Json) -> Result<Vec<AddOp>, MutationError> {
    let shape = |got: &Json| MutationError::Shape {
        policy: policy.to_string(),
        got: truncate(&got.to_string(), 80),
    };
    let items = patch.as_array().ok_or_else(|| shape(patch))?;
    items
        .iter()
        .map(|item| {
            let op = item
                .get("op")
                .and_then(Json::as_str)
                .ok_or_else(|| shape(item))?;
            if op != "add" {
                return Err(MutationError::Op {
                    policy: policy.to_string(),
                    op: op.to_string(),
                });
            }
            let pointer = item
                .get("path")
                .and_then(Json::as_str)
                .ok_or_else(|| shape(item))?;
            let value = item.get("value").cloned().ok_or_else(|| shape(item))?;
            let tokens = parse_pointer(pointer).ok_or_else(|| MutationError::Path {
                policy: policy.to_string(),
                path: pointer.to_string(),
                reason: "not a JSON pointer (must start with /)".to_string(),
            })?;
            Ok(AddOp {
                pointer: pointer.to_string(),
                tokens,
                value,
            })
        })
        .collect()
}

fn parse_pointer(pointer: &str) -> Option<Vec<String>> {
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

/// Applies a policy's operations to `doc`, all or none. Returns whether the
/// document changed.
pub fn apply(policy: &str, doc: &mut Json, ops: &[AddOp]) -> Result<bool, MutationError> {
    let mut work = doc.clone();
    let mut changed = false;
    for op in ops {
        changed |= add_if_absent(&mut work, op).map_err(|reason| MutationError::Path {
            policy: policy.to_string(),
            path: op.pointer.clone(),
            reason,
        })?;
    }
    if changed {
        *doc = work;
    }
    Ok(changed)
}

fn add_if_absent(doc: &mut Json, op: &AddOp) -> Result<bool, String> {
    let Some((last, parents)) = op.tokens.split_last() else {
        return Err("the whole object cannot be replaced".to_string());
    };
    let mut node = doc;
    for (i, token) in parents.iter().enumerate() {
        let next_is_append = op.tokens.get(i + 1).is_some_and(|t| t == "-");
        node = match node {
            Json::Object(map) => map.entry(token.clone()).or_insert_with(|| {
                if next_is_append {
                    Json::Array(Vec::new())
                } else {
                    Json::Object(serde_json::Map::new())
                }
            }),
            Json::Array(items) => {
                let len = items.len();
                let index = token
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < len)
                    .ok_or_else(|| format!("index {token} is out of bounds (length {len})"))?;
                &mut items[index]
            }
            Json::Null => {
                // A null parent (e.g. `labels: null`) counts as absent.
                *node = Json::Object(serde_json::Map::new());
                match node {
                    Json::Object(map) => map
                        .entry(token.clone())
                        .or_insert(Json::Object(serde_json::Map::new())),
                    _ => return Err("internal: null parent".to_string()),
                }
            }
            other => {
                return Err(format!(
                    "{token:?} is inside a {}, not an object",
                    type_name(other)
                ))
            }
        };
    }
    match node {
        Json::Object(map) => {
            if map.get(last).is_some_and(|v| !v.is_null()) {
                return Ok(false);
            }
            map.insert(last.clone(), op.value.clone());
            Ok(true)
        }
        Json::Array(items) if last == "-" => {
            items.push(op.value.clone());
            Ok(true)
        }
        Json::Array(items) => {
            let len = items.len();
            let index = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i <= len)
                .ok_or_else(|| format!("index {last} is out of bounds (length {len})"))?;
            items.insert(index, op.value.clone());
            Ok(true)
        }
        other => Err(format!(
            "the parent is a {}, not an object or array",
            type_name(other)
        )),
    }
}

/// The JSON type of a value, for messages.
pub fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// The RFC 6902 patch that turns `original` into `mutated`; `None` when equal.
pub fn diff(original: &Json, mutated: &Json) -> Option<json_patch::Patch> {
    let patch = json_patch::diff(original, mutated);
    if patch.0.is_empty() {
        None
    } else {
        Some(patch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn ops(v: Json) -> Vec<AddOp> {
        parse_ops("p", &v).unwrap()
    }

    #[test]
    fn creates_missing_parents() {
        let mut doc = json!({"spec": {"containers": [{"name": "a"}]}});
        let changed = apply(
            "p",
            &mut doc,
            &ops(json!([{"op": "add", "path": "/spec/containers/0/resources/requests/cpu", "value": "100m"}])),
        )
        .unwrap();
        assert!(changed);
        assert_eq!(
            doc["spec"]["containers"][0]["resources"]["requests"]["cpu"],
            "100m"
        );
    }

    #[test]
    fn never_overwrites_an_existing_value() {
        let mut doc = json!({"metadata": {"labels": {"team": "payments"}}});
        let changed = apply(
            "p",
            &mut doc,
            &ops(json!([{"op": "add", "path": "/metadata/labels/team", "value": "x"}])),
        )
        .unwrap();
        assert!(!changed);
        assert_eq!(doc["metadata"]["labels"]["team"], "payments");
    }

    #[test]
    fn appends_and_creates_arrays() {
        let mut doc = json!({"spec": {}});
        apply(
            "p",
            &mut doc,
            &ops(json!([{"op": "add", "path": "/spec/volumes/-", "value": {"name": "v"}}])),
        )
        .unwrap();
        assert_eq!(doc, json!({"spec": {"volumes": [{"name": "v"}]}}));
    }

    #[test]
    fn escaped_tokens_are_unescaped() {
        let mut doc = json!({"metadata": {}});
        apply(
            "p",
            &mut doc,
            &ops(json!([{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}])),
        )
        .unwrap();
        assert_eq!(doc["metadata"]["labels"]["app.kubernetes.io/name"], "x");
    }

    #[test]
    fn a_failing_op_applies_nothing() {
        let mut doc = json!({"spec": {"containers": "oops"}});
        let before = doc.clone();
        let err = apply(
            "p",
            &mut doc,
            &ops(json!([
                {"op": "add", "path": "/spec/volumes/-", "value": {"name": "v"}},
                {"op": "add", "path": "/spec/containers/-", "value": {"name": "c"}}
            ])),
        )
        .unwrap_err();
        assert!(matches!(err, MutationError::Path { .. }), "{err}");
        assert_eq!(doc, before);
    }

    #[test]
    fn only_add_is_accepted() {
        let err =
            parse_ops("p", &json!([{"op": "replace", "path": "/a", "value": 1}])).unwrap_err();
        assert!(matches!(err, MutationError::Op { .. }));
        let err = parse_ops("p", &json!({"op": "add"})).unwrap_err();
        assert!(matches!(err, MutationError::Shape { .. }));
        let err = parse_ops("p", &json!([{"op": "add", "path": "a", "value": 1}])).unwrap_err();
        assert!(matches!(err, MutationError::Path { .. }));
    }

    #[test]
    fn diff_is_none_when_nothing_changed() {
        let a = json!({"a": 1});
        assert!(diff(&a, &a).is_none());
        let p = diff(&a, &json!({"a": 1, "b": 2})).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!([{"op": "add", "path": "/b", "value": 2}])
        );
    }
}
