//! Constraints: an instance of a template's kind with its parameters
//! (checked against the template's schema, defaults filled in), its
//! `spec.match`, and what it does with violations at each enforcement point.

use regorus::Value;
use serde_json::Value as Json;

use super::matching;
use super::object::{invalid, name_of, GatekeeperError};
use crate::objects::ObjectDoc;
use crate::outcome::Enforcement;

/// The enforcement point of the admission webhook.
pub const WEBHOOK_POINT: &str = "validation.gatekeeper.sh";
/// The enforcement point of `gator` (and `regent verify`).
pub const GATOR_POINT: &str = "gator.gatekeeper.sh";
/// The enforcement point of audit (`regent audit`).
pub const AUDIT_POINT: &str = "audit.gatekeeper.sh";

/// The annotation that gives a Constraint's severity in audit reports.
pub const SEVERITY_ANNOTATION: &str = "regent.dev/severity";
/// The annotation that gives a Constraint's category in audit reports.
pub const CATEGORY_ANNOTATION: &str = "regent.dev/category";

/// What a Constraint does with its violations at one enforcement point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `deny`, `warn` or `dryrun`, at every enforcement point.
    All(Enforcement),
    /// `scoped`: the actions listed per enforcement point.
    Scoped(Vec<(Enforcement, Vec<String>)>),
}

impl Action {
    /// Reads `spec.enforcementAction` (and `spec.scopedEnforcementActions`).
    pub fn parse(spec: &Json) -> Result<Self, String> {
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
    /// How serious a violation is (reports): the `regent.dev/severity`
    /// annotation.
    pub severity: Option<crate::outcome::Severity>,
    /// What it is about (reports): the `regent.dev/category` annotation.
    pub category: Option<String>,
    /// It refuses policy exceptions: the annotation
    /// `regent.dev/exceptions: forbidden`.
    pub exceptions_forbidden: bool,
    /// The index of its template in the set.
    pub(super) template: usize,
    /// `spec.parameters`, as `input.parameters`.
    pub(super) parameters: Value,
    /// `spec.match`.
    pub(super) matching: matching::Match,
}

impl Constraint {
    /// The `spec.match.kinds` entries (apiGroups × kinds); empty: any kind.
    pub fn kinds(&self) -> &[matching::Kinds] {
        &self.matching.kinds
    }
}

/// Loads a Constraint of the template at `index`, checking its parameters
/// against `schema`.
pub fn load(
    doc: &ObjectDoc,
    index: usize,
    template_name: &str,
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
        crate::schema::check(schema, &mut parameters, "spec.parameters").map_err(|m| {
            GatekeeperError::Parameters {
                path: doc.path.clone(),
                line: doc.line,
                kind: kind.clone(),
                constraint: name.clone(),
                template: template_name.to_string(),
                field: m.field,
                message: m.message,
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
    let annotation = |key: &str| {
        v["metadata"]["annotations"][key]
            .as_str()
            .map(str::to_string)
    };
    let severity = match annotation(SEVERITY_ANNOTATION) {
        None => None,
        Some(s) => Some(crate::outcome::Severity::parse(&s).ok_or_else(|| {
            invalid(
                doc,
                format!("metadata.annotations.{SEVERITY_ANNOTATION}: {s:?} is not critical, high, medium, low or info"),
            )
        })?),
    };
    let exceptions_forbidden = match annotation(crate::exceptions::CONSTRAINT_ANNOTATION) {
        None => false,
        Some(v) if v == crate::exceptions::FORBIDDEN => true,
        Some(v) if v == "allowed" => false,
        Some(v) => {
            return Err(invalid(
                doc,
                format!(
                    "metadata.annotations.{}: {v:?} is not allowed or forbidden",
                    crate::exceptions::CONSTRAINT_ANNOTATION
                ),
            ))
        }
    };
    Ok(Constraint {
        name,
        kind,
        path: doc.path.clone(),
        action,
        severity,
        category: annotation(CATEGORY_ANNOTATION),
        exceptions_forbidden,
        template: index,
        parameters: Value::from(parameters),
        matching,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
