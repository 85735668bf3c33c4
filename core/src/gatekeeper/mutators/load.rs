//! Loading a mutator: reading its object and validating it as Gatekeeper's
//! webhook validates it (`MutatorFor<Kind>` in `pkg/mutation/mutators`),
//! each refusal naming the object, its file and line, and the field.

use serde_json::Value as Json;

use super::image;
use super::mutator::{
    Action, ApplyTo, AssignIf, Condition, Kind, Mutator, Source, SourceMatch, Tester, GROUP,
};
use super::path::{self, Node, Path};
use crate::gatekeeper::matching::Match;
use crate::gatekeeper::object::{name_of, GatekeeperError};
use crate::objects::ObjectDoc;

/// What loading a mutator gives.
#[derive(Debug)]
pub enum Loaded {
    /// A mutator Regent runs.
    Mutator(Box<Mutator>),
    /// A valid mutator Regent does not run, and why (external data).
    Unsupported(String),
}

/// The line of a nested field of a document (`["spec", "location"]`),
/// found by looking for each key in turn below the previous one; the
/// document's first line when it cannot be found.
pub fn field_line(doc: &ObjectDoc, keys: &[&str]) -> usize {
    let lines: Vec<&str> = doc.text.lines().collect();
    let mut from = 0;
    let mut found = None;
    for key in keys {
        let at = lines.iter().enumerate().skip(from).find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
                || t.strip_prefix(&format!("\"{key}\""))
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
        });
        match at {
            Some((i, _)) => {
                found = Some(i);
                from = i + 1;
            }
            None => break,
        }
    }
    doc.line + found.unwrap_or(0)
}

/// A load error at a field of the mutator.
pub fn refuse(doc: &ObjectDoc, field: &str, message: impl Into<String>) -> GatekeeperError {
    let keys: Vec<&str> = field
        .split('.')
        .map(|k| k.split('[').next().unwrap_or(k))
        .collect();
    GatekeeperError::Invalid {
        path: doc.path.clone(),
        line: field_line(doc, &keys),
        object: doc.describe(),
        message: format!("{field}: {}", message.into()),
    }
}

fn strings(doc: &ObjectDoc, field: &str, v: &Json) -> Result<Vec<String>, GatekeeperError> {
    match v {
        Json::Null => Ok(Vec::new()),
        Json::Array(items) => items
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| refuse(doc, field, format!("{s} is not a string")))
            })
            .collect(),
        other => Err(refuse(doc, field, format!("must be a list, got {other}"))),
    }
}

fn apply_to(doc: &ObjectDoc, spec: &Json, kind: Kind) -> Result<Vec<ApplyTo>, GatekeeperError> {
    let field = "spec.applyTo";
    let entries = match &spec["applyTo"] {
        Json::Null => Vec::new(),
        Json::Array(a) => a.clone(),
        other => return Err(refuse(doc, field, format!("must be a list, got {other}"))),
    };
    if entries.is_empty() {
        return Err(refuse(
            doc,
            field,
            format!(
                "applyTo required for {} mutator {}",
                kind.as_str(),
                doc.describe()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let groups = strings(doc, &format!("{at}.groups"), &e["groups"])?;
        let versions = strings(doc, &format!("{at}.versions"), &e["versions"])?;
        let kinds = strings(doc, &format!("{at}.kinds"), &e["kinds"])?;
        if groups.is_empty() || versions.is_empty() || kinds.is_empty() {
            return Err(refuse(
                doc,
                &at,
                "all of group, version and kind must be specified",
            ));
        }
        let operations = strings(doc, &format!("{at}.operations"), &e["operations"])?;
        let mut seen = Vec::new();
        for op in &operations {
            if seen.contains(&op) {
                return Err(refuse(
                    doc,
                    &format!("{at}.operations"),
                    format!("duplicate operation {op:?}"),
                ));
            }
            seen.push(op);
            if !matches!(op.as_str(), "CREATE" | "UPDATE" | "*") {
                return Err(refuse(
                    doc,
                    &format!("{at}.operations"),
                    format!("invalid operation {op:?}: must be one of CREATE, UPDATE, *"),
                ));
            }
        }
        if operations.iter().any(|o| o == "*") && operations.len() > 1 {
            return Err(refuse(
                doc,
                &format!("{at}.operations"),
                "wildcard \"*\" must not be combined with other operations",
            ));
        }
        out.push(ApplyTo {
            groups,
            versions,
            kinds,
            operations,
        });
    }
    Ok(out)
}

/// The deepest location accepted: far beyond any Kubernetes field, and a
/// bound on the walk's recursion, which a bundle must not be able to make
/// overflow the stack.
pub const MAX_LOCATION_DEPTH: usize = 64;

fn location(doc: &ObjectDoc, spec: &Json) -> Result<Path, GatekeeperError> {
    let text = spec["location"]
        .as_str()
        .ok_or_else(|| refuse(doc, "spec.location", "is missing"))?;
    let path = path::parse(text)
        .map_err(|e| refuse(doc, "spec.location", format!("invalid location: {e}")))?;
    if path.nodes.len() > MAX_LOCATION_DEPTH {
        return Err(refuse(
            doc,
            "spec.location",
            format!(
                "the location is {} steps deep; Regent accepts at most {MAX_LOCATION_DEPTH}",
                path.nodes.len()
            ),
        ));
    }
    Ok(path)
}

fn tester(doc: &ObjectDoc, location: &Path, tests: &Json) -> Result<Tester, GatekeeperError> {
    let field = "spec.parameters.pathTests";
    let items = match tests {
        Json::Null => return Ok(Tester::default()),
        Json::Array(items) => items,
        other => return Err(refuse(doc, field, format!("must be a list, got {other}"))),
    };
    let mut tester = Tester::default();
    for (i, t) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        let sub = t["subPath"].as_str().unwrap_or_default();
        let sub = path::parse(sub).map_err(|e| {
            refuse(
                doc,
                &format!("{at}.subPath"),
                format!("problem parsing sub path: {e}"),
            )
        })?;
        let condition = match t["condition"].as_str() {
            Some("MustExist") => Condition::MustExist,
            Some("MustNotExist") => Condition::MustNotExist,
            other => {
                return Err(refuse(
                    doc,
                    &format!("{at}.condition"),
                    format!(
                        "{} is not a valid path test condition (MustExist, MustNotExist)",
                        other.unwrap_or("(missing)")
                    ),
                ))
            }
        };
        if !sub.is_prefix_of(location) {
            return Err(refuse(
                doc,
                &format!("{at}.subPath"),
                format!("all subpaths must be a prefix of the `location` value of the mutation: subpath {sub} is not a prefix of location {location}"),
            ));
        }
        let depth = sub.nodes.len() - 1;
        if tester.0.get(&depth).is_some_and(|c| *c != condition) {
            return Err(refuse(
                doc,
                &at,
                format!("conflicting path test conditions: path {sub} is marked both MustExist and MustNotExist"),
            ));
        }
        tester.0.insert(depth, condition);
    }
    let shallowest_must_not = tester
        .0
        .iter()
        .find(|(_, c)| **c == Condition::MustNotExist)
        .map(|(d, _)| *d);
    let deepest_must = tester
        .0
        .iter()
        .rev()
        .find(|(_, c)| **c == Condition::MustExist)
        .map(|(d, _)| *d);
    if let (Some(not), Some(must)) = (shallowest_must_not, deepest_must) {
        if must > not {
            let prefix = |d: usize| Path {
                nodes: location.nodes[..=d].to_vec(),
            };
            return Err(refuse(
                doc,
                field,
                format!(
                    "conflicting path test conditions: path {} is marked MustExist but parent {} MustNotExist",
                    prefix(must),
                    prefix(not)
                ),
            ));
        }
    }
    Ok(tester)
}

fn assign_source(doc: &ObjectDoc, assign: &Json) -> Result<Option<Source>, GatekeeperError> {
    let field = "spec.parameters.assign";
    let set: Vec<&str> = ["value", "fromMetadata", "externalData"]
        .into_iter()
        .filter(|k| assign.get(*k).is_some_and(|v| !v.is_null()))
        .collect();
    match set.as_slice() {
        [] => Err(refuse(
            doc,
            field,
            "assign must set one of `externalData`, `value` or `fromMetadata`",
        )),
        [_, _, ..] => Err(refuse(
            doc,
            field,
            "assign must only set one of `externalData`, `value` or `fromMetadata`",
        )),
        ["externalData"] => Ok(None),
        ["fromMetadata"] => match assign["fromMetadata"]["field"].as_str() {
            Some("name") => Ok(Some(Source::Name)),
            Some("namespace") => Ok(Some(Source::Namespace)),
            other => Err(refuse(
                doc,
                "spec.parameters.assign.fromMetadata.field",
                format!(
                    "field {} is not recognized: invalid fromMetadata field (name, namespace)",
                    other.unwrap_or("(missing)")
                ),
            )),
        },
        _ => Ok(Some(Source::Value(assign["value"].clone()))),
    }
}

/// Loads a mutator document, validating it as Gatekeeper does.
pub fn load(doc: &ObjectDoc) -> Result<Loaded, GatekeeperError> {
    let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
    let version = api_version
        .strip_prefix(GROUP)
        .and_then(|v| v.strip_prefix('/'));
    let kind_name = doc.value["kind"].as_str().unwrap_or_default();
    let kind = Kind::parse(kind_name).ok_or_else(|| {
        refuse(
            doc,
            "kind",
            format!("{GROUP} has no kind {kind_name:?} (Assign, AssignMetadata, ModifySet, AssignImage)"),
        )
    })?;
    let served: &[&str] = match kind {
        Kind::AssignImage => &["v1alpha1"],
        _ => &["v1", "v1beta1", "v1alpha1"],
    };
    if !version.is_some_and(|v| served.contains(&v)) {
        return Err(refuse(
            doc,
            "apiVersion",
            format!(
                "{kind_name} is served as {}",
                served
                    .iter()
                    .map(|v| format!("{GROUP}/{v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let name = name_of(doc)?;
    if name.len() > 63 {
        return Err(refuse(
            doc,
            "metadata.name",
            "the mutator's name is longer than 63 characters",
        ));
    }
    let spec = &doc.value["spec"];
    let matcher: Match = match &spec["match"] {
        Json::Null => Match::default(),
        m => serde_json::from_value(m.clone())
            .map_err(|e| refuse(doc, "spec.match", e.to_string()))?,
    };
    matcher.check().map_err(|e| refuse(doc, "spec.match", e))?;
    let source = match spec["match"]["source"].as_str() {
        None | Some("") | Some("All") => SourceMatch::All,
        Some("Original") => SourceMatch::Original,
        Some("Generated") => SourceMatch::Generated,
        Some(other) => {
            return Err(refuse(
                doc,
                "spec.match.source",
                format!("invalid source {other:?} (All, Original, Generated)"),
            ))
        }
    };
    let path = location(doc, spec)?;
    let parameters = &spec["parameters"];
    let last = path.nodes.last();
    let ends_in_list = last.is_some_and(Node::is_list);
    if kind != Kind::AssignMetadata && path.starts_at_metadata() {
        return Err(refuse(
            doc,
            "spec.location",
            format!(
                "{} {name} can't change metadata",
                kind.as_str().to_lowercase()
            ),
        ));
    }
    if kind != Kind::AssignMetadata {
        key_not_changed(doc, &path)?;
    }
    let (tests, action) = match kind {
        Kind::AssignMetadata => {
            let valid = path.nodes.len() == 3
                && path.nodes.iter().all(|n| !n.is_list())
                && matches!(&path.nodes[1], Node::Field(f) if f == "labels" || f == "annotations");
            if !valid {
                return Err(refuse(
                    doc,
                    "spec.location",
                    format!(
                        "invalid location for assignmetadata {name}: {path}; only metadata.labels.<key> and metadata.annotations.<key> can be assigned"
                    ),
                ));
            }
            let Some(source) = assign_source(doc, &parameters["assign"])? else {
                return Ok(Loaded::Unsupported(external_data(doc)));
            };
            if let Source::Value(v) = &source {
                if !v.is_string() {
                    return Err(refuse(
                        doc,
                        "spec.parameters.assign.value",
                        format!("spec.parameters.assign.value field must be a string for AssignMetadata {name:?}"),
                    ));
                }
            }
            let mut tests = Tester::default();
            tests.0.insert(2, Condition::MustNotExist);
            (
                tests,
                Action::Assign {
                    source,
                    assign_if: None,
                },
            )
        }
        Kind::Assign => {
            let tests = tester(doc, &path, &parameters["pathTests"])?;
            let Some(source) = assign_source(doc, &parameters["assign"])? else {
                return Ok(Loaded::Unsupported(external_data(doc)));
            };
            if let (Source::Value(v), true) = (&source, ends_in_list) {
                assigned_to_list(doc, last, v)?;
            }
            if ends_in_list && matches!(source, Source::Name | Source::Namespace) {
                return Err(refuse(
                    doc,
                    "spec.parameters.assign.fromMetadata",
                    "cannot assign a metadata field to a list",
                ));
            }
            let assign_if = match &parameters["assignIf"] {
                Json::Null => None,
                cond => Some(AssignIf {
                    any_of: json_list(doc, "spec.parameters.assignIf.in", &cond["in"])?,
                    none_of: json_list(doc, "spec.parameters.assignIf.notIn", &cond["notIn"])?,
                }),
            };
            (tests, Action::Assign { source, assign_if })
        }
        Kind::ModifySet => {
            if ends_in_list {
                return Err(refuse(
                    doc,
                    "spec.location",
                    "final node in a modifyset location cannot be a keyed list",
                ));
            }
            let tests = tester(doc, &path, &parameters["pathTests"])?;
            let values = json_list(
                doc,
                "spec.parameters.values.fromList",
                &parameters["values"]["fromList"],
            )?;
            let action = match parameters["operation"].as_str() {
                None | Some("merge") => Action::Merge(values),
                Some("prune") => Action::Prune(values),
                Some(other) => {
                    return Err(refuse(
                        doc,
                        "spec.parameters.operation",
                        format!("unrecognized operation for modifyset: {other} (merge, prune)"),
                    ))
                }
            };
            (tests, action)
        }
        Kind::AssignImage => {
            if ends_in_list {
                return Err(refuse(
                    doc,
                    "spec.location",
                    format!("assignImage {name} cannot mutate list-type fields"),
                ));
            }
            let part = |k: &str| parameters[k].as_str().unwrap_or_default().to_string();
            let (domain, image_path, tag) =
                (part("assignDomain"), part("assignPath"), part("assignTag"));
            image::validate(&domain, &image_path, &tag).map_err(|e| {
                refuse(
                    doc,
                    "spec.parameters",
                    format!("assignImage {name} has invalid parameters: {e}"),
                )
            })?;
            let tests = tester(doc, &path, &parameters["pathTests"])?;
            (
                tests,
                Action::Image {
                    domain,
                    path: image_path,
                    tag,
                },
            )
        }
    };
    let apply_to = match kind {
        Kind::AssignMetadata => Vec::new(),
        _ => apply_to(doc, spec, kind)?,
    };
    Ok(Loaded::Mutator(Box::new(Mutator {
        kind,
        id: format!("{}/{name}", kind.as_str()),
        name,
        path,
        apply_to,
        origin: (doc.path.clone(), field_line(doc, &["spec", "location"])),
        matcher,
        source,
        tests,
        action,
    })))
}

fn external_data(doc: &ObjectDoc) -> String {
    format!(
        "{}:{}: {} is not enforced: spec.parameters.assign.externalData (external data providers) is not supported by Regent",
        doc.path,
        field_line(doc, &["spec", "parameters", "assign", "externalData"]),
        doc.describe()
    )
}

fn json_list(doc: &ObjectDoc, field: &str, v: &Json) -> Result<Vec<Json>, GatekeeperError> {
    match v {
        Json::Null => Ok(Vec::new()),
        Json::Array(items) => Ok(items.clone()),
        other => Err(refuse(doc, field, format!("must be a list, got {other}"))),
    }
}

/// Gatekeeper's `CheckKeyNotChanged`: the field after a list selector must
/// not be the selector's key.
fn key_not_changed(doc: &ObjectDoc, path: &Path) -> Result<(), GatekeeperError> {
    let n = path.nodes.len();
    if n < 2 {
        return Ok(());
    }
    if let (Node::List { key, .. }, last) = (&path.nodes[n - 2], &path.nodes[n - 1]) {
        match last {
            Node::List { .. } => {
                return Err(refuse(
                    doc,
                    "spec.location",
                    "invalid path format: child of a list can't be a list",
                ))
            }
            Node::Field(f) if f == key => {
                return Err(refuse(
                    doc,
                    "spec.location",
                    "invalid path format: changing the item key is not allowed",
                ))
            }
            Node::Field(_) => {}
        }
    }
    Ok(())
}

/// Gatekeeper's `validateObjectAssignedToList`.
fn assigned_to_list(
    doc: &ObjectDoc,
    last: Option<&Node>,
    value: &Json,
) -> Result<(), GatekeeperError> {
    let field = "spec.parameters.assign.value";
    let Some(Node::List {
        key,
        value: selector,
    }) = last
    else {
        return Ok(());
    };
    let Some(selector) = selector else {
        return Err(refuse(
            doc,
            "spec.location",
            "can't append to a globbed list",
        ));
    };
    let Some(object) = value.as_object() else {
        return Err(refuse(
            doc,
            field,
            format!("invalid value: `{value}`, only objects can be added to keyed lists"),
        ));
    };
    if !object.get(key).is_some_and(|v| selector.matches(v)) {
        return Err(refuse(
            doc,
            field,
            format!(
                "adding object to list with different key {key}: list key {}, object key {}",
                selector.to_json(),
                object.get(key).cloned().unwrap_or(Json::Null)
            ),
        ));
    }
    Ok(())
}
