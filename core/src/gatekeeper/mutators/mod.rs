//! Gatekeeper's mutators (`mutations.gatekeeper.sh`: Assign,
//! AssignMetadata, ModifySet, AssignImage), loaded unchanged from a bundle
//! and run as Gatekeeper's mutation system (`pkg/mutation/system.go`) runs
//! them.
//!
//! The set is sorted by kind, then name (Gatekeeper's order); one pass
//! applies every mutator whose `applyTo` and `match` select the object, in
//! that order, and passes repeat until one changes nothing. More passes than
//! there are mutators, plus one, is Gatekeeper's "mutation not converging"
//! error. The compiled bundle ([`crate::compose`]) composes this with the
//! native `mutate.*` policies.
//!
//! - [`path`]: the `location` syntax;
//! - [`load`]: reading and validating a mutator object;
//! - [`mutator`]: one mutator, and applying it;
//! - [`image`]: AssignImage's image references;
//! - [`schema`]: the check that mutators agree on the object's shape.

pub mod image;
pub mod load;
pub mod mutator;
pub mod path;
pub mod schema;

use std::time::Instant;

use regorus::Value;
use serde_json::Value as Json;

use crate::gatekeeper::object::GatekeeperError;
use crate::objects::ObjectDoc;
pub use mutator::{Context, Kind, Mutator};

/// Errors running the mutators on an object. Each names the mutator and the
/// object, as Gatekeeper's do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MutateError {
    /// A mutator's location does not fit the object.
    #[error("mutator {mutator} failed for {object}: {message}")]
    Failed {
        /// `Kind/name`.
        mutator: String,
        /// `group/version Kind namespace/name`.
        object: String,
        /// Why.
        message: String,
    },
    /// A mutator's `match` cannot be decided (a namespaceSelector on an
    /// object whose Namespace is not known).
    #[error("matching for mutator {mutator} failed for {object}: {message}")]
    Match {
        /// `Kind/name`.
        mutator: String,
        /// The object.
        object: String,
        /// Why.
        message: String,
    },
    /// The mutators ran out of the request's time.
    #[error("mutators exceeded the evaluation time limit on {object}")]
    Timeout {
        /// The object.
        object: String,
    },
    /// The mutators kept changing the object.
    #[error("mutation not converging for {object}: still changing after {iterations} passes (Gatekeeper's bound: the number of mutators + 1); last changed by {mutators}")]
    NotConverging {
        /// The object.
        object: String,
        /// Passes run.
        iterations: usize,
        /// The mutators of the last pass.
        mutators: String,
    },
}

/// The mutators of one bundle, in Gatekeeper's order.
#[derive(Debug, Clone, Default)]
pub struct Mutators {
    list: Vec<Mutator>,
    notes: Vec<String>,
}

/// What running the mutators did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// The mutators that applied to the object (matched), in order.
    pub matched: Vec<String>,
    /// The mutators that changed it, in the order they did (a mutator
    /// changing it in two passes appears twice).
    pub changed: Vec<String>,
    /// With recording on ([`Mutators::mutate_recording`]): each change's
    /// own patch, in order, by mutator.
    pub steps: Vec<(String, json_patch::Patch)>,
}

impl Mutators {
    /// Loads the mutator documents of a bundle. A mutator that uses external
    /// data is left out with a note (the rest of the bundle loads); an
    /// invalid one, a name declared twice for one kind, or two mutators that
    /// disagree on the object's schema refuse the bundle.
    pub fn load<'a>(
        docs: impl IntoIterator<Item = &'a ObjectDoc>,
    ) -> Result<Self, GatekeeperError> {
        let mut set = Self::default();
        let mut docs_of = Vec::new();
        for doc in docs {
            match load::load(doc)? {
                load::Loaded::Mutator(m) => {
                    if set.list.iter().any(|o| o.id == m.id) {
                        return Err(load::refuse(
                            doc,
                            "metadata.name",
                            format!("{} is declared twice", m.id),
                        ));
                    }
                    set.list.push(*m);
                    docs_of.push(doc);
                }
                load::Loaded::Unsupported(note) => set.notes.push(note),
            }
        }
        let mut order: Vec<usize> = (0..set.list.len()).collect();
        order.sort_by(|a, b| {
            let (a, b) = (&set.list[*a], &set.list[*b]);
            (a.kind.as_str(), &a.name).cmp(&(b.kind.as_str(), &b.name))
        });
        let docs_of: Vec<&ObjectDoc> = order.iter().map(|i| docs_of[*i]).collect();
        let mut sorted: Vec<Mutator> = order.iter().map(|i| set.list[*i].clone()).collect();
        std::mem::swap(&mut set.list, &mut sorted);
        if let Some(conflict) = schema::check(&set.list) {
            let names: Vec<String> = conflict
                .mutators
                .iter()
                .map(|(i, what)| {
                    let m = &set.list[*i];
                    format!(
                        "{} ({}:{}) takes it as {what}",
                        m.id, m.origin.0, m.origin.1
                    )
                })
                .collect();
            let last = conflict
                .mutators
                .iter()
                .map(|(i, _)| *i)
                .max()
                .unwrap_or_default();
            let doc = docs_of.get(last).copied();
            let message = format!(
                "conflicting schemas: mutators disagree on what {} is in {}: {}; Gatekeeper would stop running all of them",
                conflict.field,
                conflict.binding,
                names.join("; ")
            );
            return Err(match doc {
                Some(doc) => load::refuse(doc, "spec.location", message),
                None => GatekeeperError::Invalid {
                    path: String::new(),
                    line: 0,
                    object: "mutators".to_string(),
                    message,
                },
            });
        }
        Ok(set)
    }

    /// No mutator loaded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The mutators, in the order they run.
    pub fn list(&self) -> &[Mutator] {
        &self.list
    }

    /// Mutators left out (external data), with where and why.
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Runs the mutators on `object` to a fixed point. `namespace` is the
    /// request's namespace (set on the object while mutators run, as
    /// Gatekeeper does, and put back after), `operation` the request's
    /// (`""` outside admission), `namespace_object` the object's Namespace
    /// when known.
    /// Past `deadline`, the mutation stops with [`MutateError::Timeout`].
    pub fn mutate(
        &self,
        object: &mut Json,
        namespace: &str,
        operation: &str,
        namespace_object: Option<&Value>,
        deadline: Option<Instant>,
    ) -> Result<Applied, MutateError> {
        let ctx = Run {
            namespace,
            operation,
            namespace_object,
            generated: false,
            deadline,
            record: false,
        };
        self.mutate_source(object, ctx)
    }

    /// [`Mutators::mutate`], keeping each change's own patch
    /// ([`Applied::steps`]): audit attributes each change to its mutator.
    pub fn mutate_recording(
        &self,
        object: &mut Json,
        namespace: &str,
        operation: &str,
        namespace_object: Option<&Value>,
        deadline: Option<Instant>,
    ) -> Result<Applied, MutateError> {
        let ctx = Run {
            namespace,
            operation,
            namespace_object,
            generated: false,
            deadline,
            record: true,
        };
        self.mutate_source(object, ctx)
    }

    /// Runs the mutators on an object an ExpansionTemplate generated, as
    /// Gatekeeper's expansion does before the object is reviewed: no
    /// operation, and `match.source` `Generated` or `All`.
    pub fn mutate_generated(
        &self,
        object: &mut Json,
        namespace: &str,
        namespace_object: Option<&Value>,
        deadline: Option<Instant>,
    ) -> Result<Applied, MutateError> {
        let ctx = Run {
            namespace,
            operation: "",
            namespace_object,
            generated: true,
            deadline,
            record: false,
        };
        self.mutate_source(object, ctx)
    }

    fn mutate_source(&self, object: &mut Json, run: Run<'_>) -> Result<Applied, MutateError> {
        let Run {
            namespace,
            operation,
            namespace_object,
            generated,
            deadline,
            record,
        } = run;
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let ctx = Context {
            group,
            version,
            kind: &kind,
            operation,
            namespace_object,
            generated,
        };
        let bound: Vec<&Mutator> = self.list.iter().filter(|m| m.applies(&ctx)).collect();
        let mut applied = Applied::default();
        if bound.is_empty() || !object.is_object() {
            return Ok(applied);
        }
        let had_metadata = object.get("metadata").is_some();
        let saved = object["metadata"].get("namespace").cloned();
        set_namespace(
            object,
            (!namespace.is_empty()).then(|| Json::from(namespace)),
        );
        let result = self.passes(object, &bound, &ctx, deadline, record, &mut applied);
        set_namespace(object, saved);
        if !had_metadata
            && object
                .get("metadata")
                .is_some_and(|m| m == &Json::Object(serde_json::Map::new()))
        {
            if let Some(root) = object.as_object_mut() {
                root.remove("metadata");
            }
        }
        result.map(|()| applied)
    }

    fn passes(
        &self,
        object: &mut Json,
        bound: &[&Mutator],
        ctx: &Context<'_>,
        deadline: Option<Instant>,
        record: bool,
        applied: &mut Applied,
    ) -> Result<(), MutateError> {
        let describe = |object: &Json| {
            let meta = &object["metadata"];
            let name = meta["name"]
                .as_str()
                .filter(|n| !n.is_empty())
                .or(meta["generateName"].as_str())
                .unwrap_or_default();
            let ns = meta["namespace"].as_str().unwrap_or_default();
            let gv = if ctx.group.is_empty() {
                ctx.version.to_string()
            } else {
                format!("{}/{}", ctx.group, ctx.version)
            };
            if ns.is_empty() {
                format!("{gv} {} {name}", ctx.kind)
            } else {
                format!("{gv} {} {ns}/{name}", ctx.kind)
            }
        };
        let max = self.list.len() + 1;
        let mut last_pass = Vec::new();
        for pass in 1..=max {
            let mut changed_in_pass = Vec::new();
            let mut metadata = matchable(object);
            for m in bound {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(MutateError::Timeout {
                        object: describe(object),
                    });
                }
                let matches = m
                    .matches(&metadata, ctx)
                    .map_err(|message| MutateError::Match {
                        mutator: m.id.clone(),
                        object: describe(object),
                        message,
                    })?;
                if !matches {
                    continue;
                }
                if pass == 1 {
                    applied.matched.push(m.id.clone());
                }
                let before = record.then(|| object.clone());
                let changed = m.mutate(object).map_err(|message| MutateError::Failed {
                    mutator: m.id.clone(),
                    object: describe(object),
                    message,
                })?;
                if changed {
                    if let Some(step) = before.and_then(|b| crate::mutation::diff(&b, object)) {
                        applied.steps.push((m.id.clone(), step));
                    }
                    changed_in_pass.push(m.id.clone());
                    metadata = matchable(object);
                }
            }
            if changed_in_pass.is_empty() {
                return Ok(());
            }
            applied.changed.extend(changed_in_pass.iter().cloned());
            last_pass = changed_in_pass;
        }
        Err(MutateError::NotConverging {
            object: describe(object),
            iterations: max,
            mutators: last_pass.join(", "),
        })
    }
}

/// Where and how one mutation runs.
struct Run<'a> {
    namespace: &'a str,
    operation: &'a str,
    namespace_object: Option<&'a Value>,
    generated: bool,
    deadline: Option<Instant>,
    /// Keep each change's own patch.
    record: bool,
}

/// What `match` reads of an object: its name, namespace and labels.
fn matchable(object: &Json) -> Value {
    let meta = &object["metadata"];
    let mut m = serde_json::Map::new();
    for key in ["name", "namespace", "labels"] {
        if let Some(v) = meta.get(key) {
            m.insert(key.to_string(), v.clone());
        }
    }
    Value::from(serde_json::json!({ "metadata": m }))
}

/// Sets (or, with `None`, removes) `metadata.namespace`.
fn set_namespace(object: &mut Json, namespace: Option<Json>) {
    let Some(root) = object.as_object_mut() else {
        return;
    };
    match namespace {
        Some(ns) => {
            if let Some(meta) = root
                .entry("metadata")
                .or_insert_with(|| Json::Object(serde_json::Map::new()))
                .as_object_mut()
            {
                meta.insert("namespace".to_string(), ns);
            }
        }
        None => {
            if let Some(meta) = root.get_mut("metadata").and_then(Json::as_object_mut) {
                meta.remove("namespace");
            }
        }
    }
}

#[cfg(test)]
mod tests;
