//! One Gatekeeper mutator (`Assign`, `AssignMetadata`, `ModifySet`,
//! `AssignImage`): loaded and validated as Gatekeeper's webhook validates
//! it, and applied to an object as `pkg/mutation/mutators/core` applies it.
//!
//! Applying walks the `location` from the root: a missing field or keyed
//! list element is created on the way (and kept only if the value is then
//! set), `[key: *]` visits every element, and `pathTests` stop the walk at
//! the depth they name. What the walk finds at the end is handed to the
//! kind's setter: assign a value, add a set's values, prune them, or change
//! part of an image reference.

use std::collections::BTreeMap;

use regorus::Value;
use serde_json::{Map, Value as Json};

use super::image;
use super::path::{self, KeyValue, Node, Path};
use crate::gatekeeper::matching::{Match, Target};
use crate::gatekeeper::object::{name_of, GatekeeperError};
use crate::objects::ObjectDoc;

/// The mutation API group.
pub const GROUP: &str = "mutations.gatekeeper.sh";

/// The four kinds of mutator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// Any change outside `metadata`.
    Assign,
    /// Changes to an image reference's domain, path or tag.
    AssignImage,
    /// Adds a label or an annotation that is absent.
    AssignMetadata,
    /// Adds values to, or removes them from, a list used as a set.
    ModifySet,
}

impl Kind {
    fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "Assign" => Self::Assign,
            "AssignImage" => Self::AssignImage,
            "AssignMetadata" => Self::AssignMetadata,
            "ModifySet" => Self::ModifySet,
            _ => return None,
        })
    }

    /// The kind's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assign => "Assign",
            Self::AssignImage => "AssignImage",
            Self::AssignMetadata => "AssignMetadata",
            Self::ModifySet => "ModifySet",
        }
    }

    /// What the location's last field holds, for the schema check:
    /// anything (Assign), a set (ModifySet), a string (AssignImage).
    pub fn terminal(self) -> Terminal {
        match self {
            Self::Assign | Self::AssignMetadata => Terminal::Unknown,
            Self::ModifySet => Terminal::Set,
            Self::AssignImage => Terminal::String,
        }
    }
}

/// The type a location's last field is taken to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Terminal {
    /// Assign: any value.
    Unknown,
    /// ModifySet: a list of values.
    Set,
    /// AssignImage: a string.
    String,
}

/// A `pathTests` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    MustExist,
    MustNotExist,
}

/// The pathTests of one mutator, by the depth of the location they test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Tester(BTreeMap<usize, Condition>);

impl Tester {
    fn exists_ok(&self, depth: usize) -> bool {
        self.0.get(&depth) != Some(&Condition::MustNotExist)
    }

    fn missing_ok(&self, depth: usize) -> bool {
        self.0.get(&depth) != Some(&Condition::MustExist)
    }
}

/// One `applyTo` entry: groups × versions × kinds, and the operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyTo {
    /// API groups ("" is core).
    pub groups: Vec<String>,
    /// Versions.
    pub versions: Vec<String>,
    /// Kinds.
    pub kinds: Vec<String>,
    /// CREATE and/or UPDATE; empty or `*` is both.
    operations: Vec<String>,
}

/// The operations the mutation webhook handles (Gatekeeper's list).
const OPERATIONS: [&str; 2] = ["CREATE", "UPDATE"];

impl ApplyTo {
    fn all_operations(&self) -> bool {
        self.operations.is_empty() || self.operations.iter().any(|o| o == "*")
    }

    /// The operations it binds, CREATE before UPDATE.
    pub fn effective_operations(&self) -> Vec<&'static str> {
        OPERATIONS
            .into_iter()
            .filter(|op| self.all_operations() || self.operations.iter().any(|o| o == op))
            .collect()
    }

    fn matches(&self, group: &str, version: &str, kind: &str, operation: &str) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == v);
        if !(has(&self.groups, group) && has(&self.versions, version) && has(&self.kinds, kind)) {
            return false;
        }
        if operation.is_empty() {
            // Audit, expansion: no operation; only a mutator bound to every
            // supported operation applies.
            return self.all_operations()
                || OPERATIONS
                    .iter()
                    .all(|op| self.operations.iter().any(|o| o == op));
        }
        OPERATIONS.contains(&operation)
            && (self.all_operations() || self.operations.iter().any(|o| o == operation))
    }
}

/// Where an assigned value comes from.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// `value`: a constant.
    Value(Json),
    /// `fromMetadata: {field: name}`.
    Name,
    /// `fromMetadata: {field: namespace}`.
    Namespace,
}

/// The retired `assignIf` test (Gatekeeper v3.4–v3.6): assign only when the
/// current value is one of `in` (a missing value never is) and none of
/// `notIn` (a missing value never is).
#[derive(Debug, Clone, Default, PartialEq)]
struct AssignIf {
    any_of: Vec<Json>,
    none_of: Vec<Json>,
}

impl AssignIf {
    fn allows(&self, current: Option<&Json>) -> bool {
        if !self.any_of.is_empty() && !current.is_some_and(|v| self.any_of.contains(v)) {
            return false;
        }
        current.is_none_or(|v| !self.none_of.contains(v))
    }
}

/// What a mutator does where its location leads.
#[derive(Debug, Clone, PartialEq)]
enum Action {
    Assign {
        source: Source,
        assign_if: Option<AssignIf>,
    },
    Merge(Vec<Json>),
    Prune(Vec<Json>),
    Image {
        domain: String,
        path: String,
        tag: String,
    },
}

/// A loaded mutator.
#[derive(Debug, Clone)]
pub struct Mutator {
    /// Its kind.
    pub kind: Kind,
    /// Its name.
    pub name: String,
    /// `Kind/name`, how results, metrics and errors name it.
    pub id: String,
    /// The parsed location.
    pub path: Path,
    /// `applyTo` (empty for AssignMetadata, which has none).
    pub apply_to: Vec<ApplyTo>,
    /// Where its `location` is declared (file, line), for errors.
    pub origin: (String, usize),
    matcher: Match,
    source: SourceMatch,
    tests: Tester,
    action: Action,
}

/// `match.source`: which objects a mutator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceMatch {
    /// Objects under admission and objects an ExpansionTemplate generates.
    All,
    /// Objects under admission only.
    Original,
    /// Generated objects only.
    Generated,
}

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

/// What a mutator needs to know of the request besides the object.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The object's API group, version and kind (from its apiVersion).
    pub group: &'a str,
    /// The version.
    pub version: &'a str,
    /// The kind.
    pub kind: &'a str,
    /// `CREATE`, `UPDATE`, ... ("" outside admission: audit, `regent eval`
    /// of a bare object).
    pub operation: &'a str,
    /// The object's Namespace, when known (for `namespaceSelector`).
    pub namespace_object: Option<&'a Value>,
    /// Whether the object was generated by an ExpansionTemplate (rather
    /// than sent for admission), for `match.source`.
    pub generated: bool,
}

impl Mutator {
    /// Whether `applyTo` binds the object's kind and the operation.
    pub fn applies(&self, ctx: &Context<'_>) -> bool {
        match self.kind {
            Kind::AssignMetadata => true,
            _ => self
                .apply_to
                .iter()
                .any(|a| a.matches(ctx.group, ctx.version, ctx.kind, ctx.operation)),
        }
    }

    /// Whether `match` selects the object; `metadata` is the object's
    /// `{"metadata": {name, namespace, labels}}` as the matcher reads it.
    pub fn matches(&self, metadata: &Value, ctx: &Context<'_>) -> Result<bool, String> {
        let wanted = match self.source {
            SourceMatch::All => true,
            SourceMatch::Original => !ctx.generated,
            SourceMatch::Generated => ctx.generated,
        };
        if !wanted {
            return Ok(false);
        }
        let namespace =
            crate::runtime::text(&metadata["metadata"]["namespace"]).unwrap_or_default();
        self.matcher.matches(&Target {
            group: ctx.group,
            kind: ctx.kind,
            object: metadata,
            namespace,
            namespace_object: ctx.namespace_object,
        })
    }

    /// Applies the mutator to `object`; `Ok(true)` when the object changed.
    /// An error is Gatekeeper's: the location does not fit the object.
    pub fn mutate(&self, object: &mut Json) -> Result<bool, String> {
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let value = match &self.action {
            Action::Assign { source, .. } => Some(match source {
                Source::Value(v) => v.clone(),
                Source::Name => Json::String(name),
                Source::Namespace => Json::String(namespace),
            }),
            _ => None,
        };
        let walk = Walk {
            mutator: self,
            value: value.as_ref(),
        };
        walk.at(object, 0)
    }
}

struct Walk<'m> {
    mutator: &'m Mutator,
    value: Option<&'m Json>,
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "object",
    }
}

impl Walk<'_> {
    fn nodes(&self) -> &[Node] {
        &self.mutator.path.nodes
    }

    fn tests(&self) -> &Tester {
        &self.mutator.tests
    }

    fn here(&self, depth: usize) -> String {
        Path {
            nodes: self.nodes()[..depth].to_vec(),
        }
        .to_string()
    }

    fn at(&self, current: &mut Json, depth: usize) -> Result<bool, String> {
        let last = depth + 1 == self.nodes().len();
        match &self.nodes()[depth] {
            Node::Field(field) => {
                let Json::Object(map) = current else {
                    return Err(format!(
                        "mismatch between path entry (type: object) and received object (type: {}) at {:?}",
                        type_name(current),
                        self.here(depth)
                    ));
                };
                let exists = map.contains_key(field);
                if (exists && !self.tests().exists_ok(depth))
                    || (!exists && !self.tests().missing_ok(depth))
                {
                    return Ok(false);
                }
                if last {
                    return self.set(map, field);
                }
                match map.get_mut(field) {
                    Some(next) => self.at(next, depth + 1),
                    None => {
                        let mut next = self.create(depth)?;
                        let changed = self.at(&mut next, depth + 1)?;
                        if changed {
                            map.insert(field.clone(), next);
                        }
                        Ok(changed)
                    }
                }
            }
            Node::List { key, value } => {
                let Json::Array(items) = current else {
                    return Err(format!(
                        "mismatch between path entry (type: List) and received object (type: {}) at {:?}",
                        type_name(current),
                        self.here(depth)
                    ));
                };
                if last {
                    return self.set_element(items, key, value.as_ref(), depth);
                }
                let Some(selector) = value else {
                    // A MustNotExist test on a glob can never hold.
                    if !self.tests().exists_ok(depth) {
                        return Ok(false);
                    }
                    let mut changed = false;
                    for item in items.iter_mut() {
                        changed |= self.at(item, depth + 1)?;
                    }
                    return Ok(changed);
                };
                let picked = |item: &Json| item.get(key).is_some_and(|v| selector.matches(v));
                if items.iter().any(picked) {
                    if !self.tests().exists_ok(depth) {
                        return Ok(false);
                    }
                    let mut changed = false;
                    for item in items.iter_mut().filter(|i| picked(i)) {
                        changed |= self.at(item, depth + 1)?;
                    }
                    return Ok(changed);
                }
                if !self.tests().missing_ok(depth) {
                    return Ok(false);
                }
                let mut next = self.create(depth)?;
                let changed = self.at(&mut next, depth + 1)?;
                if changed {
                    items.push(next);
                }
                Ok(changed)
            }
        }
    }

    /// The element to create for a missing `nodes[depth]`: an object or a
    /// list, as the next step needs; a new list element carries its key.
    fn create(&self, depth: usize) -> Result<Json, String> {
        let mut next = match self.nodes().get(depth + 1) {
            Some(Node::List { .. }) => Json::Array(Vec::new()),
            _ => Json::Object(Map::new()),
        };
        if let Node::List { key, value } = &self.nodes()[depth] {
            let Some(value) = value else {
                return Err("list entry has no key value".to_string());
            };
            match &mut next {
                Json::Object(map) => {
                    map.insert(key.clone(), value.to_json());
                }
                _ => return Err("two consecutive list path entries not allowed".to_string()),
            }
        }
        Ok(next)
    }

    /// The setter at the location's last field.
    fn set(&self, map: &mut Map<String, Json>, field: &str) -> Result<bool, String> {
        let current = map.get(field);
        let new = match &self.mutator.action {
            Action::Assign { assign_if, .. } => {
                if assign_if.as_ref().is_some_and(|t| !t.allows(current)) {
                    return Ok(false);
                }
                self.value.cloned().unwrap_or(Json::Null)
            }
            Action::Merge(values) => match current {
                None => Json::Array(values.clone()),
                Some(Json::Array(items)) => {
                    let mut items = items.clone();
                    for v in values {
                        if !items.contains(v) {
                            items.push(v.clone());
                        }
                    }
                    Json::Array(items)
                }
                Some(other) => {
                    return Err(format!(
                        "{other} is not a list of values, cannot treat it as a set"
                    ))
                }
            },
            Action::Prune(values) => match current {
                None => return Ok(false),
                Some(Json::Array(items)) => Json::Array(
                    items
                        .iter()
                        .filter(|i| !values.contains(i))
                        .cloned()
                        .collect(),
                ),
                Some(other) => {
                    return Err(format!(
                        "{other} is not a list of values, cannot treat it as a set"
                    ))
                }
            },
            Action::Image { domain, path, tag } => {
                let old = match current {
                    None => "",
                    Some(Json::String(s)) => s.as_str(),
                    Some(other) => {
                        return Err(format!(
                            "expected value at AssignImage location to be a string, got {other} of type {}",
                            type_name(other)
                        ))
                    }
                };
                Json::String(image::mutate(domain, path, tag, old))
            }
        };
        if current == Some(&new) {
            return Ok(false);
        }
        map.insert(field.to_string(), new);
        Ok(true)
    }

    /// The setter when the location ends in a keyed list: the element with
    /// the key is replaced by the value, or appended.
    fn set_element(
        &self,
        items: &mut Vec<Json>,
        key: &str,
        selector: Option<&KeyValue>,
        depth: usize,
    ) -> Result<bool, String> {
        let (Action::Assign { assign_if, .. }, Some(value)) = (&self.mutator.action, self.value)
        else {
            return Err("this mutator cannot set a keyed list element".to_string());
        };
        let Some(selector) = selector else {
            return Err("last path entry can not be globbed".to_string());
        };
        for item in items.iter_mut() {
            let Json::Object(element) = item else {
                return Err(format!(
                    "cast error, unable to cast {} to an object",
                    type_name(item)
                ));
            };
            if element.get(key).is_some_and(|v| selector.matches(v)) {
                if value.get(key) != element.get(key) {
                    return Err("key value of replaced object must not change".to_string());
                }
                if !self.tests().exists_ok(depth)
                    || assign_if.as_ref().is_some_and(|t| !t.allows(Some(item)))
                {
                    return Ok(false);
                }
                if item == value {
                    return Ok(false);
                }
                *item = value.clone();
                return Ok(true);
            }
        }
        if !self.tests().missing_ok(depth) || assign_if.as_ref().is_some_and(|t| !t.allows(None)) {
            return Ok(false);
        }
        items.push(value.clone());
        Ok(true)
    }
}
