//! Gatekeeper compatibility: ConstraintTemplates, Constraints and
//! ExpansionTemplates loaded unchanged from a bundle, and evaluated the way
//! Gatekeeper evaluates them.
//!
//! This is Regent's second kind of policy, a peer of the native
//! `validate.*`/`mutate.*` packages of [`crate::native`]; both run on
//! [`crate::runtime`] and neither knows the other. Its input shape is
//! Gatekeeper's: `input.review` is the AdmissionRequest, `input.parameters`
//! the Constraint's `spec.parameters`, and `data.inventory` the referential
//! data. The compiled bundle ([`crate::compose`]), and through it the
//! server, `regent eval` and `regent verify` ([`suite`]), all call
//! [`Set::review`]: one decision engine, not two.
//!
//! - [`template`]: compiling a template into a program of its own;
//! - [`constraint`]: parameters, schema, enforcement actions;
//! - [`matching`]: a Constraint's `spec.match`;
//! - [`expansion`]: ExpansionTemplates (a workload reviewed as its pods);
//! - [`mutators`]: Assign, AssignMetadata, ModifySet and AssignImage;
//! - [`schema`]: a Constraint's `parameters` against its template's schema;
//! - [`inventory`]: building `data.inventory`;
//! - [`suite`]: gator's `Suite` files;
//! - [`object`]: what the loaders share (errors, names).

// Loading errors carry the source position and are built once per bundle
// load, never on the request path: their size does not matter.
#![allow(clippy::result_large_err)]

pub mod constraint;
pub mod expansion;
mod helper;
pub mod inventory;
pub mod matching;
pub mod mutators;
pub mod object;
pub mod specialize;
pub mod suite;
pub mod template;

use std::collections::BTreeMap;
use std::sync::Arc;

use regorus::Value;
use serde_json::Value as Json;

use crate::objects::{ObjectClass, ObjectDoc};
use crate::outcome::{Enforcement, EvalError};
use crate::runtime::{object_of, Budget, Limits, RunError};

pub use constraint::{Action, Constraint, AUDIT_POINT, GATOR_POINT, WEBHOOK_POINT};
pub use expansion::Expansion;
pub use inventory::inventory;
use object::invalid;
pub use object::GatekeeperError;
use template::{Compiled, Template, INVENTORY_KEY};

/// The violations of one Constraint for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// The Constraint's name.
    pub constraint: String,
    /// The Constraint's kind.
    pub kind: String,
    /// What its violations do here.
    pub enforcement: Enforcement,
    /// The messages, in the template's words (with `[Implied by <name>]` for
    /// violations found in an expanded object).
    pub messages: Vec<String>,
}

/// How a loaded template runs (`regent check` prints it).
#[derive(Debug, Clone)]
pub struct TemplateInfo {
    /// `metadata.name`.
    pub name: String,
    /// The Constraint kind it defines.
    pub kind: String,
    /// The evaluator that runs it.
    pub evaluator: crate::runtime::Evaluator,
    /// Its rules specialized at load (see [`specialize`]).
    pub specialized: Vec<String>,
}

/// Every Gatekeeper object of a bundle, compiled.
#[derive(Clone, Default)]
pub struct Set {
    templates: Vec<Arc<Template>>,
    constraints: Vec<Constraint>,
    expansions: Vec<Expansion>,
    mutators: mutators::Mutators,
    notes: Vec<String>,
}

impl std::fmt::Debug for Set {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Set")
            .field("templates", &self.templates.len())
            .field("constraints", &self.constraints.len())
            .field("expansions", &self.expansions.len())
            .finish_non_exhaustive()
    }
}

impl Set {
    /// Compiles templates, then Constraints (checked against their
    /// template's schema), then ExpansionTemplates. A template with only CEL
    /// code is not an error: it and its Constraints are reported in
    /// [`Set::notes`] and not enforced.
    pub fn compile(docs: &[ObjectDoc], limits: Limits) -> Result<Self, GatekeeperError> {
        let mut set = Self::default();
        let mut schemas: Vec<Option<Json>> = Vec::new();
        let mut unsupported: BTreeMap<String, String> = BTreeMap::new();
        let kind_of = |d: &ObjectDoc| d.value["kind"].as_str().unwrap_or_default().to_string();
        let of_class = |class: ObjectClass| docs.iter().filter(move |d| d.class() == Some(class));
        for doc in of_class(ObjectClass::ConstraintTemplate) {
            match template::compile(doc, limits)? {
                Compiled::Rego(template, schema) => {
                    if let Some(first) = set.templates.iter().find(|t| t.kind == template.kind) {
                        return Err(invalid(
                            doc,
                            format!(
                                "kind {} is already defined by ConstraintTemplate {}",
                                template.kind, first.name
                            ),
                        ));
                    }
                    set.templates.push(Arc::new(*template));
                    schemas.push(schema);
                }
                Compiled::Unsupported { kind, why } => {
                    set.notes.push(format!(
                        "{}:{}: {}: {why}",
                        doc.path,
                        doc.line,
                        doc.describe()
                    ));
                    unsupported.insert(kind, doc.describe());
                }
            }
        }
        for doc in of_class(ObjectClass::Constraint) {
            let kind = kind_of(doc);
            if let Some(template) = unsupported.get(&kind) {
                set.notes.push(format!(
                    "{}:{}: {} is not enforced: {template} is not supported",
                    doc.path,
                    doc.line,
                    doc.describe()
                ));
                continue;
            }
            let Some(index) = set.templates.iter().position(|t| t.kind == kind) else {
                return Err(invalid(
                    doc,
                    format!("no ConstraintTemplate in the bundle defines kind {kind}"),
                ));
            };
            let constraint =
                constraint::load(doc, index, &set.templates[index].name, &schemas[index])?;
            if set
                .constraints
                .iter()
                .any(|c| c.kind == constraint.kind && c.name == constraint.name)
            {
                return Err(invalid(doc, "declared twice"));
            }
            set.constraints.push(constraint);
        }
        set.constraints
            .sort_by(|a, b| (&a.name, &a.kind).cmp(&(&b.name, &b.kind)));
        for (i, template) in set.templates.iter_mut().enumerate() {
            let parameters: Vec<Value> = set
                .constraints
                .iter()
                .filter(|c| c.template == i)
                .map(|c| c.parameters.clone())
                .collect();
            if let Some(t) = Arc::get_mut(template) {
                t.prefer_bytecode(&parameters, limits);
            }
        }
        for doc in of_class(ObjectClass::ExpansionTemplate) {
            set.expansions.push(expansion::load(doc)?);
        }
        set.mutators = mutators::Mutators::load(of_class(ObjectClass::Mutator))?;
        set.notes.extend(set.mutators.notes().iter().cloned());
        Ok(set)
    }

    /// Nothing loaded.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
            && self.constraints.is_empty()
            && self.expansions.is_empty()
            && self.mutators.is_empty()
    }

    /// The loaded mutators, in the order they run.
    pub fn mutators(&self) -> &mutators::Mutators {
        &self.mutators
    }

    /// The loaded Constraints, by name.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// The loaded ExpansionTemplates.
    pub fn expansions(&self) -> &[Expansion] {
        &self.expansions
    }

    /// `(template name, kind)` of each compiled template.
    pub fn templates(&self) -> Vec<(String, String)> {
        self.templates
            .iter()
            .map(|t| (t.name.clone(), t.kind.clone()))
            .collect()
    }

    /// `(template name, kind, evaluator)` of each compiled template.
    pub fn template_evaluators(&self) -> Vec<TemplateInfo> {
        self.templates
            .iter()
            .map(|t| TemplateInfo {
                name: t.name.clone(),
                kind: t.kind.clone(),
                evaluator: t.evaluator(),
                specialized: t.specialized.clone(),
            })
            .collect()
    }

    /// What was loaded but will not be enforced, and why (CEL-only
    /// templates, mutators that use external data).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Reviews one AdmissionRequest (`input.review`) at an enforcement
    /// point: every matching Constraint, then the objects ExpansionTemplates
    /// make of it. `inventory` is `data.inventory`. The first evaluation
    /// error fails the whole review.
    pub fn review(
        &self,
        request: &Value,
        inventory: &Value,
        point: &str,
        budget: Budget,
    ) -> Result<Vec<Hit>, EvalError> {
        let reviewed = self.review_all(request, inventory, point, budget, false)?;
        Ok(reviewed.hits)
    }

    /// Reviews one AdmissionRequest and says, besides the violations, which
    /// Constraints were checked, which were skipped (at the audit point, a
    /// Constraint whose template reads what only an admission request has)
    /// and, with `isolate`, which failed to evaluate: each failure is that
    /// Constraint's result, and the others still decide. Without `isolate`
    /// the first failure fails the review.
    pub fn review_all(
        &self,
        request: &Value,
        inventory: &Value,
        point: &str,
        budget: Budget,
        isolate: bool,
    ) -> Result<Reviewed, EvalError> {
        let mut out = Reviewed::default();
        if self.constraints.is_empty() {
            return Ok(out);
        }
        let request = prepare_request(request, inventory);
        let pass = Pass {
            inventory,
            point,
            budget,
            isolate,
            split: false,
        };
        self.review_one(&request, &pass, None, 0, &mut out)?;
        Ok(out)
    }

    /// Reviews an admission request at the webhook, as [`Set::review_all`]
    /// with `isolate`; with `split` (the caller says no other admission
    /// request is in progress), the matching templates are evaluated on two
    /// threads (latency only: under load nothing is split).
    pub fn review_at_webhook(
        &self,
        request: &Value,
        inventory: &Value,
        budget: Budget,
        split: bool,
    ) -> Result<Reviewed, EvalError> {
        let mut out = Reviewed::default();
        if self.constraints.is_empty() {
            return Ok(out);
        }
        let request = prepare_request(request, inventory);
        let pass = Pass {
            inventory,
            point: WEBHOOK_POINT,
            budget,
            isolate: true,
            split,
        };
        self.review_one(&request, &pass, None, 0, &mut out)?;
        Ok(out)
    }

    fn review_one(
        &self,
        request: &Value,
        pass: &Pass<'_>,
        implied: Option<(&str, Option<Enforcement>)>,
        depth: usize,
        out: &mut Reviewed,
    ) -> Result<(), EvalError> {
        let text = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
        let group = text(&request["kind"]["group"]);
        let version = text(&request["kind"]["version"]);
        let kind = text(&request["kind"]["kind"]);
        let namespace = text(&request["namespace"]);
        let object = &request["object"];
        let namespace_object = match &request["_unstable"]["namespace"] {
            Value::Object(_) => Some(&request["_unstable"]["namespace"]),
            _ => None,
        };
        let target = matching::Target {
            group: &group,
            kind: &kind,
            object,
            namespace: &namespace,
            namespace_object,
        };
        // First what each Constraint needs (match, skip, its input), in
        // order; then the evaluations (split with the helper thread when
        // the replica is otherwise idle); then the results, in order.
        enum Step<'c> {
            Failed(&'c Constraint, Enforcement, EvalError),
            Skipped(&'c Constraint, String),
            Evaluate(&'c Constraint, Enforcement),
        }
        let mut steps = Vec::new();
        let mut work: Vec<helper::Work> = Vec::new();
        let mut input: Option<Value> = None;
        let parameters_key = Value::from("parameters");
        for c in &self.constraints {
            let mut enforcement = c.action.at(pass.point);
            if enforcement == Enforcement::Off {
                continue;
            }
            if let Some((_, Some(action))) = implied {
                enforcement = action;
            }
            let matched = match c.matching.matches(&target) {
                Ok(m) => m,
                Err(e) => {
                    if !pass.isolate {
                        return Err(EvalError::Failed(format!(
                            "constraint {} ({}): {e}",
                            c.name, c.kind
                        )));
                    }
                    // The error line names the Constraint already.
                    let error = EvalError::Failed(e.to_string());
                    steps.push(Step::Failed(
                        c,
                        enforcement,
                        match implied {
                            Some((name, _)) => EvalError::Implied {
                                by: name.to_string(),
                                error: Box::new(error),
                            },
                            None => error,
                        },
                    ));
                    continue;
                }
            };
            if !matched {
                continue;
            }
            let template = &self.templates[c.template];
            if pass.point == AUDIT_POINT {
                if let Some(reason) = &template.audit_skip {
                    steps.push(Step::Skipped(c, reason.clone()));
                    continue;
                }
            }
            let base = input
                .get_or_insert_with(|| {
                    object_of(&[
                        ("review", request.clone()),
                        (INVENTORY_KEY, pass.inventory.clone()),
                    ])
                })
                .clone();
            let mut this_input = base;
            if let Ok(map) = this_input.as_object_mut() {
                map.insert(parameters_key.clone(), c.parameters.clone());
            }
            work.push((template.clone(), this_input));
            steps.push(Step::Evaluate(c, enforcement));
        }
        let results = if pass.split {
            helper::evaluate_split(work, pass.budget, pass.split)
        } else {
            helper::evaluate(&work, pass.budget)
        };
        let mut results = results.into_iter();
        for step in steps {
            let (c, enforcement) = match step {
                Step::Failed(c, enforcement, error) => {
                    out.push_error(c, enforcement, error);
                    continue;
                }
                Step::Skipped(c, reason) => {
                    out.push_skipped(c, &reason);
                    continue;
                }
                Step::Evaluate(c, enforcement) => (c, enforcement),
            };
            let evaluated = results
                .next()
                .unwrap_or_else(|| Err(RunError::Failed("no result".to_string())));
            let messages = evaluated
                .map_err(EvalError::from)
                .and_then(|results| messages_of(c, results, implied));
            let messages = match messages {
                Ok(m) => m,
                Err(error) => {
                    // In an implied object, the error says so, as its
                    // violations do.
                    let error = match implied {
                        Some((name, _)) => EvalError::Implied {
                            by: name.to_string(),
                            error: Box::new(error),
                        },
                        None => error,
                    };
                    if !pass.isolate {
                        return Err(error);
                    }
                    out.push_error(c, enforcement, error);
                    continue;
                }
            };
            out.push_checked(c, enforcement);
            if messages.is_empty() {
                continue;
            }
            match out.hits.iter_mut().find(|h| {
                h.constraint == c.name && h.kind == c.kind && h.enforcement == enforcement
            }) {
                Some(h) => h.messages.extend(messages),
                None => out.hits.push(Hit {
                    constraint: c.name.clone(),
                    kind: c.kind.clone(),
                    enforcement,
                    messages,
                }),
            }
        }
        if depth >= expansion::MAX_DEPTH || !matches!(object, Value::Object(_)) {
            return Ok(());
        }
        for e in &self.expansions {
            if !e.applies_to(&group, &version, &kind) {
                continue;
            }
            let Some(mut child) = e.expand(request) else {
                continue;
            };
            self.mutate_generated(&mut child, pass.inventory, pass.budget.deadline)?;
            let override_action = e.action.or(implied.and_then(|(_, a)| a));
            self.review_one(
                &child,
                pass,
                Some((&e.name, override_action)),
                depth + 1,
                out,
            )?;
        }
        Ok(())
    }
}

impl Set {
    /// Runs the mutators on the object of a request an ExpansionTemplate
    /// made, as Gatekeeper's expansion does before reviewing it.
    fn mutate_generated(
        &self,
        child: &mut Value,
        inventory: &Value,
        deadline: Option<std::time::Instant>,
    ) -> Result<(), EvalError> {
        if self.mutators.is_empty() {
            return Ok(());
        }
        let mut object = serde_json::to_value(&child["object"])
            .map_err(|e| EvalError::Failed(format!("expanding: {e}")))?;
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .map(str::to_string)
            .or_else(|| crate::runtime::text(&child["namespace"]).map(str::to_string))
            .unwrap_or_default();
        let ns_object = match &inventory["cluster"]["v1"]["Namespace"][namespace.as_str()] {
            v @ Value::Object(_) => Some(v),
            _ => None,
        };
        let applied = self
            .mutators
            .mutate_generated(&mut object, &namespace, ns_object, deadline)
            .map_err(|e| match e {
                mutators::MutateError::Timeout { .. } => EvalError::Timeout(
                    deadline
                        .map(|d| d.saturating_duration_since(std::time::Instant::now()))
                        .unwrap_or_default(),
                ),
                other => EvalError::Failed(format!("mutating the expanded object: {other}")),
            })?;
        if !applied.changed.is_empty() {
            if let Ok(map) = child.as_object_mut() {
                map.insert(Value::from("object"), Value::from(object));
            }
        }
        Ok(())
    }
}

/// The settings of one review, shared by its expansions.
struct Pass<'a> {
    inventory: &'a Value,
    point: &'a str,
    budget: Budget,
    isolate: bool,
    /// Evaluations may be split with the helper thread (the webhook).
    split: bool,
}

/// The messages of a template's results, in Gatekeeper's words.
fn messages_of(
    c: &Constraint,
    results: Vec<Value>,
    implied: Option<(&str, Option<Enforcement>)>,
) -> Result<Vec<String>, EvalError> {
    let mut messages = Vec::new();
    for r in results {
        let msg = match &r["msg"] {
            Value::String(s) => s.to_string(),
            other => {
                return Err(EvalError::Malformed {
                    policy: c.name.clone(),
                    message: format!(
                        "a violation needs a string `msg`, got {}",
                        serde_json::to_string(other).unwrap_or_default()
                    ),
                })
            }
        };
        messages.push(match implied {
            Some((name, _)) => format!("[Implied by {name}] {msg}"),
            None => msg,
        });
    }
    Ok(messages)
}

/// One Constraint as a review saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstraintRef {
    /// The Constraint's name.
    pub constraint: String,
    /// Its kind.
    pub kind: String,
    /// What its violations do at this point.
    pub enforcement: Enforcement,
}

/// Everything one review found.
#[derive(Debug, Default)]
pub struct Reviewed {
    /// Constraints with violations, and the messages.
    pub hits: Vec<Hit>,
    /// Constraints that matched and were evaluated (with or without hits).
    pub checked: Vec<ConstraintRef>,
    /// Constraints that matched but were not evaluated, and why.
    pub skipped: Vec<(ConstraintRef, String)>,
    /// Constraints whose evaluation failed (with `isolate`), and why.
    pub errors: Vec<(ConstraintRef, EvalError)>,
}

impl Reviewed {
    fn reference(c: &Constraint, enforcement: Enforcement) -> ConstraintRef {
        ConstraintRef {
            constraint: c.name.clone(),
            kind: c.kind.clone(),
            enforcement,
        }
    }

    fn push_checked(&mut self, c: &Constraint, enforcement: Enforcement) {
        let r = Self::reference(c, enforcement);
        if !self.checked.contains(&r) {
            self.checked.push(r);
        }
    }

    fn push_skipped(&mut self, c: &Constraint, reason: &str) {
        let r = Self::reference(c, c.action.at(AUDIT_POINT));
        if !self.skipped.iter().any(|(x, _)| *x == r) {
            self.skipped.push((r, reason.to_string()));
        }
    }

    fn push_error(&mut self, c: &Constraint, enforcement: Enforcement, error: EvalError) {
        let r = Self::reference(c, enforcement);
        if !self.errors.iter().any(|(x, _)| *x == r) {
            self.errors.push((r, error));
        }
    }
}

/// The `input.review` gator (and Gatekeeper's audit) builds for an object
/// at rest: an AdmissionReview's request as it is, or for any other object
/// an AdmissionRequest with only `kind`, `name`, `namespace` and `object`
/// set.
pub fn request_for_object(object: &Json) -> Result<Value, String> {
    request_for_object_in(object, None)
}

/// The Namespace `gator test` reviews an object that names none against:
/// Go's empty `corev1.Namespace{}`, as it serializes.
pub fn gator_empty_namespace() -> Json {
    serde_json::json!({"metadata": {"creationTimestamp": null}, "spec": {}, "status": {}})
}

/// [`request_for_object`], reviewing an object that names no namespace as
/// if in `unnamespaced` (its Namespace object), as `gator test` reviews
/// such objects against an empty, unlabelled Namespace.
pub fn request_for_object_in(object: &Json, unnamespaced: Option<&Json>) -> Result<Value, String> {
    let mut request = request_base(object)?;
    let has_namespace = object["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    if let (Some(ns), false) = (unnamespaced, has_namespace) {
        if let Ok(map) = request.as_object_mut() {
            map.insert(
                Value::from("_unstable"),
                object_of(&[("namespace", Value::from(ns.clone()))]),
            );
        }
    }
    Ok(request)
}

fn request_base(object: &Json) -> Result<Value, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    if kind == "AdmissionReview" && api_version.starts_with("admission.k8s.io/") {
        let request = &object["request"];
        if !request.is_object() {
            return Err("an AdmissionReview without a request".to_string());
        }
        return Ok(Value::from(request.clone()));
    }
    if kind.is_empty() || api_version.is_empty() {
        return Err("the object has no apiVersion or kind".to_string());
    }
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let mut request = serde_json::json!({
        "uid": "",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": "", "version": "", "resource": ""},
        "operation": "",
        "userInfo": {},
        "object": object,
    });
    for field in ["name", "namespace"] {
        if let Some(v) = object["metadata"][field].as_str().filter(|v| !v.is_empty()) {
            request[field] = Json::String(v.to_string());
        }
    }
    Ok(Value::from(request))
}

/// The request as Gatekeeper hands it to templates: on DELETE the object
/// under review is the old object, and `_unstable.namespace` carries the
/// object's Namespace when the inventory has it.
fn prepare_request(request: &Value, inventory: &Value) -> Value {
    let mut request = request.clone();
    let deleting = crate::runtime::text(&request["operation"]) == Some("DELETE");
    let old = request["oldObject"].clone();
    let namespace = crate::runtime::text(&request["namespace"])
        .unwrap_or_default()
        .to_string();
    let ns_object = if namespace.is_empty() {
        Value::Undefined
    } else {
        inventory["cluster"]["v1"]["Namespace"][namespace.as_str()].clone()
    };
    if let Ok(map) = request.as_object_mut() {
        if deleting && matches!(old, Value::Object(_)) {
            map.insert(Value::from("object"), old);
        }
        if matches!(ns_object, Value::Object(_)) {
            map.insert(
                Value::from("_unstable"),
                object_of(&[("namespace", ns_object)]),
            );
        }
    }
    request
}

#[cfg(test)]
mod tests;
