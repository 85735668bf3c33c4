//! ExpansionTemplates: a workload they name (`applyTo` groups × versions ×
//! kinds) is reviewed again as the object at its `templateSource`, of the
//! `generatedGVK` kind, in the parent's namespace, named
//! `<parent>-<kind>` and owned by the parent, as Gatekeeper's expansion
//! makes it; its `enforcementAction` overrides the Constraint's. (The
//! Gatekeeper set then runs the mutators on it, as Gatekeeper does.)

use regorus::Value;

use super::object::{invalid, name_of, strings, GatekeeperError};
use crate::objects::ObjectDoc;
use crate::outcome::Enforcement;
use crate::runtime::object_of;

/// Deepest chain of expansions (a CronJob makes a Job, which makes a Pod).
pub const MAX_DEPTH: usize = 4;

/// A loaded ExpansionTemplate.
#[derive(Debug, Clone)]
pub struct Expansion {
    /// `metadata.name` (for the `[Implied by <name>]` prefix).
    pub name: String,
    apply_to: Vec<(Vec<String>, Vec<String>, Vec<String>)>,
    source: Vec<String>,
    generated: (String, String, String),
    /// The enforcement action that replaces the Constraint's, if any.
    pub action: Option<Enforcement>,
}

/// Loads an ExpansionTemplate.
pub fn load(doc: &ObjectDoc) -> Result<Expansion, GatekeeperError> {
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
    /// The `applyTo` entries: (groups, versions, kinds).
    pub fn apply_to(&self) -> &[(Vec<String>, Vec<String>, Vec<String>)] {
        &self.apply_to
    }

    /// Whether the template applies to objects of this group, version and kind.
    pub fn applies_to(&self, group: &str, version: &str, kind: &str) -> bool {
        let has = |list: &[String], v: &str| list.iter().any(|x| x == v || x == "*");
        self.apply_to
            .iter()
            .any(|(g, v, k)| has(g, group) && has(v, version) && has(k, kind))
    }

    /// The request for the object this template makes of the request's
    /// object: its `templateSource` as an object of the generated kind, in
    /// the parent's namespace.
    pub fn expand(&self, request: &Value) -> Option<Value> {
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
        let namespace = match crate::runtime::text(&request["object"]["metadata"]["namespace"]) {
            Some(ns) if !ns.is_empty() => Value::from(ns),
            _ => request["namespace"].clone(),
        };
        let mut object = source.clone();
        let map = object.as_object_mut().ok()?;
        map.insert(Value::from("apiVersion"), Value::from(api_version.as_str()));
        map.insert(Value::from("kind"), Value::from(kind.as_str()));
        let parent = &request["object"];
        let parent_name = crate::runtime::text(&parent["metadata"]["name"]).unwrap_or_default();
        let mut metadata = match map.get(&Value::from("metadata")) {
            Some(m @ Value::Object(_)) => m.clone(),
            _ => Value::new_object(),
        };
        if let Ok(m) = metadata.as_object_mut() {
            if let Value::String(ns) = &namespace {
                m.insert(Value::from("namespace"), Value::String(ns.clone()));
            }
            // Gatekeeper's mock name and owner reference.
            let name = format!("{parent_name}-{kind}").to_lowercase();
            m.insert(Value::from("name"), Value::from(name.as_str()));
            let api = crate::runtime::text(&parent["apiVersion"]).unwrap_or_default();
            let parent_kind = crate::runtime::text(&parent["kind"]).unwrap_or_default();
            if !parent_name.is_empty() && !api.is_empty() && !parent_kind.is_empty() {
                let owner = object_of(&[
                    ("apiVersion", Value::from(api)),
                    ("kind", Value::from(parent_kind)),
                    ("name", Value::from(parent_name)),
                ]);
                let mut owners: Vec<Value> = match m.get(&Value::from("ownerReferences")) {
                    Some(Value::Array(a)) => a.iter().cloned().collect(),
                    _ => Vec::new(),
                };
                let same = |o: &Value| {
                    o["apiVersion"] == owner["apiVersion"]
                        && o["kind"] == owner["kind"]
                        && o["name"] == owner["name"]
                };
                if !owners.iter().any(same) {
                    owners.push(owner);
                }
                m.insert(Value::from("ownerReferences"), Value::from(owners));
            }
        }
        map.insert(Value::from("metadata"), metadata);
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
