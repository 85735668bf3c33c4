//! Gatekeeper compatibility: ConstraintTemplates, Constraints and
//! ExpansionTemplates loaded unchanged from a bundle, and evaluated the way
//! Gatekeeper evaluates them.
//!
//! This is Regent's second kind of policy source, beside the native
//! `validate.*`/`mutate.*` packages of [`crate::policy`]. Its input shape is
//! Gatekeeper's: `input.review` is the AdmissionRequest, `input.parameters`
//! the Constraint's `spec.parameters`, and `data.inventory` the referential
//! data. Each template is compiled into an engine of its own, as Gatekeeper
//! isolates templates, so two templates may use the same `lib.*` package.
//! The server ([`crate::decision`]) and `regent verify` ([`suite`]) both call
//! [`Set::review`]: one decision engine, not two.
//!
//! - [`matching`]: a Constraint's `spec.match`;
//! - [`schema`]: a Constraint's `parameters` against its template's schema;
//! - [`suite`]: gator's `Suite` files.

// Loading errors carry the source position and are built once per bundle
// load, never on the request path: their size does not matter.
#![allow(clippy::result_large_err)]

pub mod matching;
pub mod schema;
pub mod suite;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use regorus::{Engine, Value};
use serde_json::Value as Json;

use crate::bundle::ObjectDoc;
use crate::engine::{arm_timer, eval_error, EvalError};
use crate::policy::Enforcement;

/// The API group of ConstraintTemplates.
pub const TEMPLATES_GROUP: &str = "templates.gatekeeper.sh";
/// The API group of Constraints.
pub const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";
/// The API group of ExpansionTemplates.
pub const EXPANSION_GROUP: &str = "expansion.gatekeeper.sh";
/// The only target Regent runs: Kubernetes admission.
pub const TARGET: &str = "admission.k8s.gatekeeper.sh";
/// The enforcement point of the admission webhook.
pub const WEBHOOK_POINT: &str = "validation.gatekeeper.sh";
/// The enforcement point of `gator` (and `regent verify`).
pub const GATOR_POINT: &str = "gator.gatekeeper.sh";

/// The rule of the generated module each template engine evaluates.
const ENTRY: &str = "data.regent.gatekeeper.violation";
/// Where the inventory travels in `input` (it is handed to the template as
/// `data.inventory` with a `with` modifier, so one prepared engine serves
/// every inventory).
const INVENTORY_KEY: &str = "__regent_inventory";
/// Deepest chain of expansions (a CronJob makes a Job, which makes a Pod).
const MAX_EXPANSION_DEPTH: usize = 4;

/// Whether an `apiVersion` belongs to one of the Gatekeeper groups Regent loads.
pub fn is_gatekeeper(api_version: &str) -> bool {
    let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
    matches!(group, TEMPLATES_GROUP | CONSTRAINTS_GROUP | EXPANSION_GROUP)
}

/// Errors loading Gatekeeper objects. Each names the file, the line the
/// object starts at, and the object.
#[derive(Debug, thiserror::Error)]
pub enum GatekeeperError {
    /// An object is malformed or refers to something missing.
    #[error("{path}:{line}: {object}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// 1-based line the object starts at.
        line: usize,
        /// `Kind name`.
        object: String,
        /// What is wrong.
        message: String,
    },
    /// A template's Rego does not compile.
    #[error(
        "{path}:{file_line}: ConstraintTemplate {template}: {field}:{line}:{column}: {message}"
    )]
    Rego {
        /// The file.
        path: String,
        /// The line in the file (0 when it could not be located).
        file_line: usize,
        /// The template.
        template: String,
        /// Which source: `spec.targets[0].rego`, `...libs[1]`, `...code[0].source.rego`.
        field: String,
        /// 1-based line inside that source.
        line: usize,
        /// 1-based column inside that source.
        column: usize,
        /// What regorus said (first line).
        message: String,
        /// The full report.
        detail: String,
    },
    /// A Constraint's parameters do not fit its template's schema.
    #[error("{path}:{line}: {kind} {constraint}: {field}: {message} (schema of ConstraintTemplate {template})")]
    Parameters {
        /// The file.
        path: String,
        /// 1-based line the Constraint starts at.
        line: usize,
        /// The Constraint's kind.
        kind: String,
        /// The Constraint.
        constraint: String,
        /// The template.
        template: String,
        /// The field, e.g. `spec.parameters.labels[0].key`.
        field: String,
        /// Why it does not fit.
        message: String,
    },
}

/// What a Constraint does with its violations at one enforcement point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `deny`, `warn` or `dryrun`, at every enforcement point.
    All(Enforcement),
    /// `scoped`: the actions listed per enforcement point.
    Scoped(Vec<(Enforcement, Vec<String>)>),
}

impl Action {
    fn parse(spec: &Json) -> Result<Self, String> {
        let one = |name: &str| match name {
            "deny" => Ok(Enforcement::Deny),
            "warn" => Ok(Enforcement::Warn),
            "dryrun" => Ok(Enforcement::Dryrun),
            other => Err(format!(
                "enforcementAction {other:?} is not deny, warn, dryrun or scoped"
            )),
        };
        match spec["enforcementAction"].as_str().unwrap_or("deny") {
            "" => Ok(Self::All(Enforcement::Deny)),
            "scoped" => {
                let mut out = Vec::new();
                for (i, entry) in spec["scopedEnforcementActions"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .enumerate()
                {
                    let action = one(entry["action"].as_str().unwrap_or_default())
                        .map_err(|e| format!("scopedEnforcementActions[{i}]: {e}"))?;
                    let points = entry["enforcementPoints"]
                        .as_array()
                        .map(Vec::as_slice)
                        .unwrap_or_default()
                        .iter()
                        .filter_map(|p| p["name"].as_str().map(str::to_string))
                        .collect();
                    out.push((action, points));
                }
                if out.is_empty() {
                    return Err(
                        "enforcementAction scoped needs spec.scopedEnforcementActions".to_string(),
                    );
                }
                Ok(Self::Scoped(out))
            }
            other => one(other).map(Self::All),
        }
    }

    /// The action at an enforcement point: for `scoped`, the strongest action
    /// listed for that point (or `*`); `Off` when none is.
    pub fn at(&self, point: &str) -> Enforcement {
        match self {
            Self::All(e) => *e,
            Self::Scoped(list) => list
                .iter()
                .filter(|(_, points)| points.iter().any(|p| p == point || p == "*"))
                .map(|(e, _)| *e)
                .min_by_key(|e| match e {
                    Enforcement::Deny => 0,
                    Enforcement::Warn => 1,
                    Enforcement::Dryrun => 2,
                    Enforcement::Off => 3,
                })
                .unwrap_or(Enforcement::Off),
        }
    }
}

/// A compiled ConstraintTemplate.
#[derive(Clone)]
struct Template {
    name: String,
    kind: String,
    engine: Engine,
}

/// A loaded Constraint.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// `metadata.name`.
    pub name: String,
    /// Its kind (the template's CRD kind).
    pub kind: String,
    /// The file it came from.
    pub path: String,
    /// What it does with violations.
    pub action: Action,
    template: usize,
    parameters: Value,
    matching: matching::Match,
}

/// A loaded ExpansionTemplate.
#[derive(Debug, Clone)]
struct Expansion {
    name: String,
    apply_to: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
    source: Vec<String>,
    generated: (String, String, String),
    action: Option<Enforcement>,
}

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

/// Every Gatekeeper object of a bundle, compiled.
#[derive(Clone, Default)]
pub struct Set {
    templates: Vec<Arc<Template>>,
    constraints: Vec<Constraint>,
    expansions: Vec<Expansion>,
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

fn describe(doc: &ObjectDoc) -> String {
    format!(
        "{} {}",
        doc.value["kind"].as_str().unwrap_or("object"),
        doc.value["metadata"]["name"]
            .as_str()
            .unwrap_or("(unnamed)")
    )
}

/// An object's `metadata.name`, which every Gatekeeper object needs.
fn name_of(doc: &ObjectDoc) -> Result<String, GatekeeperError> {
    doc.value["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| invalid(doc, "metadata.name is missing"))
}

/// The strings of a JSON array (others and non-arrays: none).
fn strings(v: &Json) -> Vec<String> {
    v.as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

fn invalid(doc: &ObjectDoc, message: impl Into<String>) -> GatekeeperError {
    GatekeeperError::Invalid {
        path: doc.path.clone(),
        line: doc.line,
        object: describe(doc),
        message: message.into(),
    }
}

impl Set {
    /// Compiles templates, then Constraints (checked against their
    /// template's schema), then ExpansionTemplates. A template with only CEL
    /// code is not an error: it and its Constraints are reported in
    /// [`Set::notes`] and not enforced.
    pub fn compile(docs: &[ObjectDoc]) -> Result<Self, GatekeeperError> {
        let mut set = Self::default();
        let mut schemas: Vec<Option<Json>> = Vec::new();
        let mut unsupported: BTreeMap<String, String> = BTreeMap::new();
        let kind_of = |d: &ObjectDoc| d.value["kind"].as_str().unwrap_or_default().to_string();
        for doc in docs.iter().filter(|d| kind_of(d) == "ConstraintTemplate") {
            match compile_template(doc)? {
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
                        describe(doc)
                    ));
                    unsupported.insert(kind, describe(doc));
                }
            }
        }
        for doc in docs.iter().filter(|d| {
            d.value["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with(CONSTRAINTS_GROUP))
        }) {
            let kind = kind_of(doc);
            if let Some(template) = unsupported.get(&kind) {
                set.notes.push(format!(
                    "{}:{}: {} is not enforced: {template} is not supported",
                    doc.path,
                    doc.line,
                    describe(doc)
                ));
                continue;
            }
            let Some(index) = set.templates.iter().position(|t| t.kind == kind) else {
                return Err(invalid(
                    doc,
                    format!("no ConstraintTemplate in the bundle defines kind {kind}"),
                ));
            };
            let constraint = load_constraint(doc, index, &set.templates[index], &schemas[index])?;
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
        for doc in docs.iter().filter(|d| {
            kind_of(d) == "ExpansionTemplate"
                && d.value["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with(EXPANSION_GROUP))
        }) {
            set.expansions.push(load_expansion(doc)?);
        }
        Ok(set)
    }

    /// Nothing loaded.
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty() && self.constraints.is_empty() && self.expansions.is_empty()
    }

    /// The loaded Constraints, by name.
    pub fn constraints(&self) -> &[Constraint] {
        &self.constraints
    }

    /// `(template name, kind)` of each compiled template.
    pub fn templates(&self) -> Vec<(String, String)> {
        self.templates
            .iter()
            .map(|t| (t.name.clone(), t.kind.clone()))
            .collect()
    }

    /// What was loaded but will not be enforced, and why (CEL-only templates).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// Reviews one AdmissionRequest (`input.review`) at an enforcement
    /// point: every matching Constraint, then the objects ExpansionTemplates
    /// make of it. `inventory` is `data.inventory`.
    pub fn review(
        &self,
        request: &Value,
        inventory: &Value,
        point: &str,
        deadline: Option<Instant>,
    ) -> Result<Vec<Hit>, EvalError> {
        let mut hits: Vec<Hit> = Vec::new();
        if self.constraints.is_empty() {
            return Ok(hits);
        }
        let request = prepare_request(request, inventory);
        self.review_one(&request, inventory, point, deadline, None, 0, &mut hits)?;
        Ok(hits)
    }

    #[allow(clippy::too_many_arguments)]
    fn review_one(
        &self,
        request: &Value,
        inventory: &Value,
        point: &str,
        deadline: Option<Instant>,
        implied: Option<(&str, Option<Enforcement>)>,
        depth: usize,
        hits: &mut Vec<Hit>,
    ) -> Result<(), EvalError> {
        let text = |v: &Value| v.as_string().map(|s| s.to_string()).unwrap_or_default();
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
        let mut input: Option<Value> = None;
        for c in &self.constraints {
            let mut enforcement = c.action.at(point);
            if enforcement == Enforcement::Off {
                continue;
            }
            let matched = c.matching.matches(&target).map_err(|e| {
                EvalError::Failed(format!("constraint {} ({}): {e}", c.name, c.kind))
            })?;
            if !matched {
                continue;
            }
            let template = &self.templates[c.template];
            let base = match &input {
                Some(v) => v.clone(),
                None => {
                    let v = object_of(&[
                        ("review", request.clone()),
                        (INVENTORY_KEY, inventory.clone()),
                    ]);
                    input = Some(v.clone());
                    v
                }
            };
            let mut this_input = base;
            if let Ok(map) = this_input.as_object_mut() {
                map.insert(Value::from("parameters"), c.parameters.clone());
            }
            let results = evaluate(template, this_input, deadline)?;
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
            if let Some((_, Some(action))) = implied {
                enforcement = action;
            }
            if messages.is_empty() {
                continue;
            }
            match hits.iter_mut().find(|h| {
                h.constraint == c.name && h.kind == c.kind && h.enforcement == enforcement
            }) {
                Some(h) => h.messages.extend(messages),
                None => hits.push(Hit {
                    constraint: c.name.clone(),
                    kind: c.kind.clone(),
                    enforcement,
                    messages,
                }),
            }
        }
        if depth >= MAX_EXPANSION_DEPTH || !matches!(object, Value::Object(_)) {
            return Ok(());
        }
        for e in &self.expansions {
            if !e.applies_to(&group, &version, &kind) {
                continue;
            }
            let Some(child) = e.expand(request) else {
                continue;
            };
            let override_action = e.action.or(implied.and_then(|(_, a)| a));
            self.review_one(
                &child,
                inventory,
                point,
                deadline,
                Some((&e.name, override_action)),
                depth + 1,
                hits,
            )?;
        }
        Ok(())
    }
}

/// The request as Gatekeeper hands it to templates: on DELETE the object
/// under review is the old object, and `_unstable.namespace` carries the
/// object's Namespace when the inventory has it.
fn prepare_request(request: &Value, inventory: &Value) -> Value {
    let mut request = request.clone();
    let deleting = request["operation"]
        .as_string()
        .is_ok_and(|op| op.as_ref() == "DELETE");
    let old = request["oldObject"].clone();
    let namespace = request["namespace"]
        .as_string()
        .map(|s| s.to_string())
        .unwrap_or_default();
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

fn object_of(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::new_object();
    if let Ok(map) = v.as_object_mut() {
        for (k, value) in pairs {
            map.insert(Value::from(*k), value.clone());
        }
    }
    v
}

/// Evaluates a template's `violation` set for one input.
fn evaluate(
    template: &Template,
    input: Value,
    deadline: Option<Instant>,
) -> Result<Vec<Value>, EvalError> {
    let mut engine = template.engine.clone();
    engine.set_input(input);
    let limit = arm_timer(&mut engine, deadline)?;
    let value = engine
        .eval_rule(ENTRY.to_string())
        .map_err(|e| eval_error(format!("template {}: {e}", template.name), limit))?;
    Ok(match value {
        Value::Set(s) => s.iter().cloned().collect(),
        Value::Array(a) => a.iter().cloned().collect(),
        _ => Vec::new(),
    })
}

enum Compiled {
    Rego(Box<Template>, Option<Json>),
    Unsupported { kind: String, why: String },
}

/// Where a template's Rego comes from.
struct RegoSource {
    field: String,
    rego: String,
    libs: Vec<String>,
    v1: bool,
}

fn compile_template(doc: &ObjectDoc) -> Result<Compiled, GatekeeperError> {
    let v = &doc.value;
    let name = name_of(doc)?;
    let kind = v["spec"]["crd"]["spec"]["names"]["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid(doc, "spec.crd.spec.names.kind is missing"))?
        .to_string();
    if kind.to_lowercase() != name {
        return Err(invalid(
            doc,
            format!(
                "metadata.name must be the lower-case kind ({}), as Gatekeeper requires",
                kind.to_lowercase()
            ),
        ));
    }
    let schema = v["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"].clone();
    let schema = schema.is_object().then_some(schema);
    let targets = v["spec"]["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some((ti, target)) = targets
        .iter()
        .enumerate()
        .find(|(_, t)| t["target"].as_str() == Some(TARGET))
    else {
        return Err(invalid(
            doc,
            format!("spec.targets has no entry for target {TARGET}"),
        ));
    };
    let code = target["code"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let source = if let Some((ci, c)) = code
        .iter()
        .enumerate()
        .find(|(_, c)| c["engine"].as_str() == Some("Rego"))
    {
        RegoSource {
            field: format!("spec.targets[{ti}].code[{ci}].source"),
            rego: c["source"]["rego"].as_str().unwrap_or_default().to_string(),
            libs: strings(&c["source"]["libs"]),
            v1: c["source"]["version"].as_str() == Some("v1"),
        }
    } else if let Some(rego) = target["rego"].as_str().filter(|r| !r.trim().is_empty()) {
        RegoSource {
            field: format!("spec.targets[{ti}]"),
            rego: rego.to_string(),
            libs: strings(&target["libs"]),
            v1: false,
        }
    } else if !code.is_empty() {
        let engines: Vec<&str> = code.iter().filter_map(|c| c["engine"].as_str()).collect();
        return Ok(Compiled::Unsupported {
            kind,
            why: format!(
                "has no Rego, only {} code; Regent runs Rego only, so this template and its Constraints are not enforced",
                engines.join(", ")
            ),
        });
    } else {
        return Err(invalid(
            doc,
            format!("spec.targets[{ti}] has no rego and no code"),
        ));
    };
    if source.rego.trim().is_empty() {
        return Err(invalid(doc, format!("{}.rego is empty", source.field)));
    }
    let mut engine = Engine::new();
    engine.set_rego_v0(!source.v1);
    if !source.v1 {
        add_deprecated_builtins(&mut engine)
            .map_err(|e| invalid(doc, format!("registering OPA's deprecated builtins: {e}")))?;
    }
    let rego_error = |field: String, src: &str, e: &dyn std::fmt::Display| {
        let text = e.to_string();
        let located = crate::engine::rego_error(&field, &text);
        let (line, column, message) = match located {
            crate::engine::CompileError::Rego {
                line,
                column,
                message,
                ..
            } => (line, column, message),
            other => (0, 0, other.to_string()),
        };
        GatekeeperError::Rego {
            path: doc.path.clone(),
            file_line: locate(doc, src, line),
            template: name.clone(),
            field,
            line,
            column,
            message,
            detail: text,
        }
    };
    let main_field = format!("{}.rego", source.field);
    let package = engine
        .add_policy(main_field.clone(), source.rego.clone())
        .map_err(|e| rego_error(main_field.clone(), &source.rego, &e))?;
    for (i, lib) in source.libs.iter().enumerate() {
        let field = format!("{}.libs[{i}]", source.field);
        engine
            .add_policy(field.clone(), lib.clone())
            .map_err(|e| rego_error(field.clone(), lib, &e))?;
    }
    if !crate::policy::defines_rule(&source.rego, "violation") {
        return Err(invalid(
            doc,
            format!("{main_field} defines no `violation` rule in {package}"),
        ));
    }
    let uses_inventory = std::iter::once(&source.rego)
        .chain(source.libs.iter())
        .any(|s| s.contains("data.inventory"));
    let entry = if uses_inventory {
        format!(
            "package regent.gatekeeper\n\nviolation := v if {{\n  v := {package}.violation with data.inventory as input.{INVENTORY_KEY}\n}}\n"
        )
    } else {
        format!("package regent.gatekeeper\n\nviolation := {package}.violation\n")
    };
    engine.set_rego_v0(false);
    engine
        .add_policy("regent/gatekeeper.rego (generated)".to_string(), entry)
        .map_err(|e| rego_error(main_field.clone(), &source.rego, &e))?;
    // Analysis (undefined functions, unsafe variables, ...) happens on the
    // first evaluation: do it now, so a broken template fails to load.
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| rego_error(main_field.clone(), &source.rego, &e))?;
    let mut template = Template {
        name: name.clone(),
        kind,
        engine,
    };
    // regorus resolves function names on first evaluation: a call to a
    // function that exists nowhere is a load error, not a request failure.
    if let Err(e) = warm_up(&mut template) {
        if e.contains("could not find function") {
            return Err(rego_error(main_field, &source.rego, &e));
        }
        tracing::debug!(template = %template.name, error = %e, "template warm-up failed on a plain Pod");
    }
    Ok(Compiled::Rego(Box::new(template), schema))
}

/// OPA builtins that older Rego (and so much of Gatekeeper's) still calls
/// but regorus does not provide: `re_match` (now `regex.match`), `any`,
/// `all`, `set_diff`, `cast_array` and `cast_set`. Only v0 templates get them,
/// as only v0 OPA has them.
fn add_deprecated_builtins(engine: &mut Engine) -> Result<(), String> {
    fn items(v: &Value) -> Option<Vec<Value>> {
        match v {
            Value::Array(a) => Some(a.iter().cloned().collect()),
            Value::Set(s) => Some(s.iter().cloned().collect()),
            _ => None,
        }
    }
    let add = |engine: &mut Engine, name: &str, n: u8, f: Box<dyn regorus::Extension>| {
        engine
            .add_extension(name.to_string(), n, f)
            .map_err(|e| e.to_string())
    };
    add(
        engine,
        "re_match",
        2,
        Box::new(|args: Vec<Value>| {
            let (Some(Value::String(p)), Some(Value::String(v))) = (args.first(), args.get(1))
            else {
                return Ok(Value::Undefined);
            };
            let re = regex::Regex::new(p).map_err(|e| anyhow::anyhow!("re_match: {e}"))?;
            Ok(Value::Bool(re.is_match(v)))
        }),
    )?;
    add(
        engine,
        "any",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(match args.first().and_then(items) {
                Some(list) => Value::Bool(list.contains(&Value::Bool(true))),
                None => Value::Undefined,
            })
        }),
    )?;
    add(
        engine,
        "all",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(match args.first().and_then(items) {
                Some(list) => Value::Bool(list.iter().all(|x| *x == Value::Bool(true))),
                None => Value::Undefined,
            })
        }),
    )?;
    add(
        engine,
        "set_diff",
        2,
        Box::new(|args: Vec<Value>| {
            let (Some(Value::Set(a)), Some(Value::Set(b))) = (args.first(), args.get(1)) else {
                return Ok(Value::Undefined);
            };
            let diff: std::collections::BTreeSet<Value> =
                a.iter().filter(|x| !b.contains(x)).cloned().collect();
            Ok(Value::from(diff))
        }),
    )?;
    add(
        engine,
        "cast_array",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(args
                .first()
                .and_then(items)
                .map(Value::from)
                .unwrap_or(Value::Undefined))
        }),
    )?;
    add(
        engine,
        "cast_set",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(args
                .first()
                .and_then(items)
                .map(|l| Value::from(l.into_iter().collect::<std::collections::BTreeSet<_>>()))
                .unwrap_or(Value::Undefined))
        }),
    )?;
    Ok(())
}

/// Evaluates the template once on an ordinary Pod, so the first real
/// request pays no preparation. Errors here are not fatal: a template may
/// legitimately fail on a Pod it was not written for.
fn warm_up(template: &mut Template) -> Result<(), String> {
    let review = Value::from_json_str(include_str!("../rego/warmup_review.json"))
        .map_err(|e| e.to_string())?;
    let input = object_of(&[
        ("review", review["request"].clone()),
        ("parameters", Value::new_object()),
        (INVENTORY_KEY, Value::new_object()),
    ]);
    template.engine.set_input(input);
    template
        .engine
        .eval_rule(ENTRY.to_string())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The line in the YAML file of line `line` of an embedded Rego source: the
/// first line of the source is found in the document's text.
fn locate(doc: &ObjectDoc, source: &str, line: usize) -> usize {
    let Some((offset, first)) = source
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())
    else {
        return 0;
    };
    let first = first.trim();
    let Some(found) = doc.text.lines().position(|l| l.trim() == first) else {
        return 0;
    };
    let line = line.max(1);
    doc.line + found + line.saturating_sub(1 + offset)
}

fn load_constraint(
    doc: &ObjectDoc,
    index: usize,
    template: &Template,
    schema: &Option<Json>,
) -> Result<Constraint, GatekeeperError> {
    let v = &doc.value;
    let name = name_of(doc)?;
    let kind = v["kind"].as_str().unwrap_or_default().to_string();
    let mut parameters = match &v["spec"]["parameters"] {
        Json::Null => Json::Object(serde_json::Map::new()),
        other => other.clone(),
    };
    if let Some(schema) = schema {
        schema::check(schema, &mut parameters, "spec.parameters").map_err(|(field, message)| {
            GatekeeperError::Parameters {
                path: doc.path.clone(),
                line: doc.line,
                kind: kind.clone(),
                constraint: name.clone(),
                template: template.name.clone(),
                field,
                message,
            }
        })?;
    }
    let matching: matching::Match = match &v["spec"]["match"] {
        Json::Null => matching::Match::default(),
        m => serde_json::from_value(m.clone())
            .map_err(|e| invalid(doc, format!("spec.match: {e}")))?,
    };
    matching
        .check()
        .map_err(|e| invalid(doc, format!("spec.match.{e}")))?;
    let action = Action::parse(&v["spec"]).map_err(|e| invalid(doc, format!("spec.{e}")))?;
    Ok(Constraint {
        name,
        kind,
        path: doc.path.clone(),
        action,
        template: index,
        parameters: Value::from(parameters),
        matching,
    })
}

fn load_expansion(doc: &ObjectDoc) -> Result<Expansion, GatekeeperError> {
    let v = &doc.value;
    let name = name_of(doc)?;
    let apply_to = v["spec"]["applyTo"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| {
            (
                strings(&a["groups"]),
                strings(&a["versions"]),
                strings(&a["kinds"]),
            )
        })
        .collect::<Vec<_>>();
    if apply_to.is_empty() {
        return Err(invalid(doc, "spec.applyTo is empty"));
    }
    let source = v["spec"]["templateSource"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid(doc, "spec.templateSource is missing"))?
        .split('.')
        .map(str::to_string)
        .collect();
    let gvk = &v["spec"]["generatedGVK"];
    let kind = gvk["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid(doc, "spec.generatedGVK.kind is missing"))?;
    let generated = (
        gvk["group"].as_str().unwrap_or_default().to_string(),
        gvk["version"].as_str().unwrap_or_default().to_string(),
        kind.to_string(),
    );
    let action = match v["spec"]["enforcementAction"].as_str() {
        None | Some("") => None,
        Some("deny") => Some(Enforcement::Deny),
        Some("warn") => Some(Enforcement::Warn),
        Some("dryrun") => Some(Enforcement::Dryrun),
        Some(other) => {
            return Err(invalid(
                doc,
                format!("spec.enforcementAction {other:?} is not deny, warn or dryrun"),
            ))
        }
    };
    Ok(Expansion {
        name,
        apply_to,
        source,
        generated,
        action,
    })
}

impl Expansion {
    fn applies_to(&self, group: &str, version: &str, kind: &str) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == v || x == "*");
        self.apply_to
            .iter()
            .any(|(g, v, k)| has(g, group) && has(v, version) && has(k, kind))
    }

    /// The request for the object this template makes of the request's
    /// object: its `templateSource` as an object of the generated kind, in
    /// the parent's namespace.
    fn expand(&self, request: &Value) -> Option<Value> {
        let mut source = &request["object"];
        for part in &self.source {
            source = &source[part.as_str()];
        }
        if !matches!(source, Value::Object(_)) {
            return None;
        }
        let (group, version, kind) = &self.generated;
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        let namespace = match request["object"]["metadata"]["namespace"].as_string() {
            Ok(ns) if !ns.is_empty() => Value::from(ns.as_ref()),
            _ => request["namespace"].clone(),
        };
        let mut object = source.clone();
        let map = object.as_object_mut().ok()?;
        map.insert(Value::from("apiVersion"), Value::from(api_version.as_str()));
        map.insert(Value::from("kind"), Value::from(kind.as_str()));
        if let Value::String(ns) = &namespace {
            let mut metadata = match map.get(&Value::from("metadata")) {
                Some(m @ Value::Object(_)) => m.clone(),
                _ => Value::new_object(),
            };
            if let Ok(m) = metadata.as_object_mut() {
                m.insert(Value::from("namespace"), Value::String(ns.clone()));
            }
            map.insert(Value::from("metadata"), metadata);
        }
        let mut child = request.clone();
        let cmap = child.as_object_mut().ok()?;
        cmap.insert(
            Value::from("kind"),
            object_of(&[
                ("group", Value::from(group.as_str())),
                ("version", Value::from(version.as_str())),
                ("kind", Value::from(kind.as_str())),
            ]),
        );
        cmap.insert(Value::from("object"), object);
        cmap.remove(&Value::from("oldObject"));
        Some(child)
    }
}

/// Builds `data.inventory` from objects: cluster-scoped ones under
/// `cluster[<groupVersion>][<Kind>][<name>]`, namespaced ones under
/// `namespace[<ns>][<groupVersion>][<Kind>][<name>]`.
pub fn inventory<'a>(objects: impl IntoIterator<Item = &'a Json>) -> Json {
    use serde_json::Map;
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

fn insert_at(map: &mut serde_json::Map<String, Json>, path: &[&str], name: &str, object: &Json) {
    match path.split_first() {
        None => {
            map.insert(name.to_string(), object.clone());
        }
        Some((head, rest)) => {
            let entry = map
                .entry(head.to_string())
                .or_insert_with(|| Json::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(serde_json::Map::new());
            }
            if let Json::Object(next) = entry {
                insert_at(next, rest, name, object);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn template(rego: &str) -> ObjectDoc {
        let mut text = String::from(
            "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: t\nspec:\n  crd:\n    spec:\n      names:\n        kind: T\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n",
        );
        for line in rego.lines() {
            text.push_str("        ");
            text.push_str(line);
            text.push('\n');
        }
        let value = serde_yaml_ng::from_str(&text).unwrap();
        ObjectDoc {
            path: "t.yaml".into(),
            line: 1,
            text,
            value,
        }
    }

    fn constraint() -> ObjectDoc {
        constraint_of("T", "c")
    }

    fn constraint_of(kind: &str, name: &str) -> ObjectDoc {
        let text = format!(
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\n"
        );
        ObjectDoc {
            path: "c.yaml".into(),
            line: 1,
            value: serde_yaml_ng::from_str(&text).unwrap(),
            text,
        }
    }

    fn messages(rego: &str, object: &str) -> Vec<String> {
        let set = Set::compile(&[template(rego), constraint()]).unwrap();
        let request = Value::from_json_str(&format!(
            r#"{{"kind": {{"group": "", "version": "v1", "kind": "Pod"}}, "object": {object}}}"#
        ))
        .unwrap();
        let inventory = Value::from(inventory(std::iter::empty()));
        set.review(&request, &inventory, WEBHOOK_POINT, None)
            .unwrap()
            .into_iter()
            .flat_map(|h| h.messages)
            .collect()
    }

    #[test]
    fn older_rego_gets_opas_deprecated_builtins() {
        let rego = "package t\nviolation[{\"msg\": m}] {\n  re_match(\"^web-\", input.review.object.metadata.name)\n  any([false, true])\n  not all([true, false])\n  d := set_diff({1, 2, 3}, {2})\n  count(d) == 2\n  count(cast_set([1, 1, 2])) == 2\n  m := \"deprecated builtins work\"\n}\n";
        assert_eq!(
            messages(rego, r#"{"metadata": {"name": "web-1"}}"#),
            vec!["deprecated builtins work".to_string()]
        );
        assert!(messages(rego, r#"{"metadata": {"name": "db-1"}}"#).is_empty());
    }

    #[test]
    fn an_unknown_function_is_a_load_error_with_its_position() {
        let rego = "package t\n\nviolation[{\"msg\": m}] {\n  m := no_such_function(input.review.object)\n}\n";
        let err = Set::compile(&[template(rego)]).err().unwrap().to_string();
        assert!(err.contains("no_such_function"), "{err}");
        assert!(err.contains("spec.targets[0].rego:4:"), "{err}");
        // The Rego's line 4 is line 16 of the YAML file.
        assert!(err.starts_with("t.yaml:16:"), "{err}");
    }

    #[test]
    fn templates_are_isolated_from_each_other() {
        // Two templates may declare the same lib package differently.
        let a = "package a\nimport data.lib.x\nviolation[{\"msg\": x.v}] { true }\n";
        let mut ta = template(a);
        ta.value["metadata"]["name"] = "ta".into();
        ta.value["spec"]["crd"]["spec"]["names"]["kind"] = "TA".into();
        ta.value["spec"]["targets"][0]["libs"] =
            serde_json::json!(["package lib.x\nv := \"from a\"\n"]);
        let mut tb = ta.clone();
        tb.value["metadata"]["name"] = "tb".into();
        tb.value["spec"]["crd"]["spec"]["names"]["kind"] = "TB".into();
        tb.value["spec"]["targets"][0]["libs"] =
            serde_json::json!(["package lib.x\nv := \"from b\"\n"]);
        let set =
            Set::compile(&[ta, tb, constraint_of("TA", "ca"), constraint_of("TB", "cb")]).unwrap();
        let request = Value::from_json_str(
            r#"{"kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": {}}"#,
        )
        .unwrap();
        let inventory = Value::from(inventory(std::iter::empty()));
        let hits = set
            .review(&request, &inventory, WEBHOOK_POINT, None)
            .unwrap();
        let got: Vec<(String, Vec<String>)> = hits
            .into_iter()
            .map(|h| (h.constraint, h.messages))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ca".to_string(), vec!["from a".to_string()]),
                ("cb".to_string(), vec!["from b".to_string()])
            ]
        );
    }

    #[test]
    fn scoped_actions_resolve_per_enforcement_point() {
        let spec = serde_json::json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
            {"action": "warn", "enforcementPoints": [{"name": "*"}]},
            {"action": "deny", "enforcementPoints": [{"name": WEBHOOK_POINT}]}]});
        let action = Action::parse(&spec).unwrap();
        assert_eq!(action.at(WEBHOOK_POINT), Enforcement::Deny);
        assert_eq!(action.at(GATOR_POINT), Enforcement::Warn);
        assert!(Action::parse(&serde_json::json!({"enforcementAction": "block"})).is_err());
        assert!(Action::parse(&serde_json::json!({"enforcementAction": "scoped"})).is_err());
    }
}
