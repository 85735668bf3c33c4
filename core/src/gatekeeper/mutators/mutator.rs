//! One Gatekeeper mutator (`Assign`, `AssignMetadata`, `ModifySet`,
//! `AssignImage`), as [`super::load`] makes it, applied to an object as
//! `pkg/mutation/mutators/core` applies it.
//!
//! Applying walks the `location` from the root: a missing field or keyed
//! list element is created on the way (and kept only if the value is then
//! set), `[key: *]` visits every element, and `pathTests` stop the walk at
//! the depth they name. What the walk finds at the end is handed to the
//! kind's setter: assign a value, add a set's values, prune them, or change
//! part of an image reference.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regorus::Value;
use serde_json::{Map, Value as Json};

use super::image;
use super::path::{KeyValue, Node, Path};
use crate::gatekeeper::matching::{Match, Target};
use crate::mutation::type_name;

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
    pub(super) fn parse(kind: &str) -> Option<Self> {
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
pub(super) enum Condition {
    MustExist,
    MustNotExist,
}

/// The pathTests of one mutator, by the depth of the location they test.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tester(pub(super) BTreeMap<usize, Condition>);

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
    pub(super) operations: Vec<String>,
}

/// The operations the mutation webhook handles (Gatekeeper's list).
pub(super) const OPERATIONS: [&str; 2] = ["CREATE", "UPDATE"];

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
pub(super) enum Source {
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
pub(super) struct AssignIf {
    pub(super) any_of: Vec<Json>,
    pub(super) none_of: Vec<Json>,
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
pub(super) enum Action {
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
    pub(super) matcher: Match,
    pub(super) source: SourceMatch,
    pub(super) tests: Tester,
    pub(super) action: Action,
}

/// `match.source`: which objects a mutator sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SourceMatch {
    /// Objects under admission and objects an ExpansionTemplate generates.
    All,
    /// Objects under admission only.
    Original,
    /// Generated objects only.
    Generated,
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
        // A constant is borrowed; only a value from metadata is built here.
        let from_metadata = |field: &str| {
            Json::String(
                object["metadata"][field]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        };
        let value = match &self.action {
            Action::Assign { source, .. } => Some(match source {
                Source::Value(v) => Cow::Borrowed(v),
                Source::Name => Cow::Owned(from_metadata("name")),
                Source::Namespace => Cow::Owned(from_metadata("namespace")),
            }),
            _ => None,
        };
        let walk = Walk {
            mutator: self,
            value: value.as_deref(),
        };
        walk.at(object, 0)
    }
}

struct Walk<'m> {
    mutator: &'m Mutator,
    value: Option<&'m Json>,
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
