//! An object at rest judged as audit does: as it is (no mutation), with
//! every applicable validating policy and Constraint whatever its
//! enforcement, and what admitting it now would change, attributed to the
//! policy or mutator that would change it.

use regorus::Value;

use super::{CompiledBundle, Excepted, Exceptions};
use crate::exceptions::{ExceptionSet, Target};
use crate::gatekeeper;
use crate::native::Audited;
use crate::outcome::Violation;
use crate::outcome::{AuditOutcome, AuditResult};
use crate::runtime::Limits;

/// What a violation is in an audit report: `warn` for a policy that warns,
/// `fail` for one that denies, or would (`dryrun`).
fn failing(enforcement: crate::outcome::Enforcement) -> AuditOutcome {
    match enforcement {
        crate::outcome::Enforcement::Warn => AuditOutcome::Warn,
        _ => AuditOutcome::Fail,
    }
}

/// The AdmissionReview audit evaluates native policies with: the object as
/// it is, as if it were being created, by nobody in particular.
pub fn audit_review(object: &serde_json::Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let kind = object["kind"].as_str().unwrap_or_default();
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": object["metadata"]["uid"].as_str().unwrap_or_default(),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": ""},
            "name": object["metadata"]["name"].as_str().unwrap_or_default(),
            "namespace": object["metadata"]["namespace"].as_str().unwrap_or_default(),
            "operation": "CREATE",
            "userInfo": {},
            "object": object,
            "oldObject": null,
            "dryRun": true
        }
    });
    Value::from(review)
}

impl CompiledBundle {
    /// Reviews an object as audit does: as it is (no mutation), with every
    /// applicable validating policy and Constraint whatever its enforcement
    /// (`off` aside), without the `userInfo`, `oldObject` and operation only
    /// an admission request has (policies that need them are skipped), and
    /// with each evaluation error confined to the policy that caused it.
    /// `object` is the object (with `apiVersion` and `kind`); `inventory`
    /// is `data.inventory`.
    pub fn audit(
        &self,
        object: &serde_json::Value,
        inventory: &Value,
        limits: Limits,
    ) -> Vec<AuditResult> {
        let none = ExceptionSet::empty();
        let exceptions = Exceptions {
            set: &none,
            help: None,
            now: 0,
        };
        self.audit_with(object, inventory, &exceptions, limits)
    }

    /// [`CompiledBundle::audit`], with policy exceptions: a violation an
    /// exception in force covers is a `skip` result naming it (properties
    /// `exception`, `owner`, `expires`), not a failure.
    pub fn audit_with(
        &self,
        object: &serde_json::Value,
        inventory: &Value,
        exceptions: &Exceptions<'_>,
        limits: Limits,
    ) -> Vec<AuditResult> {
        self.audit_in(object, inventory, exceptions, limits, false)
    }

    /// [`CompiledBundle::audit_with`]; with `as_gator`, the Constraints
    /// review the object as `gator test` does: at gator's enforcement
    /// point, and an object that names no namespace against an empty,
    /// unlabelled Namespace ([`gatekeeper::gator_empty_namespace`]).
    pub fn audit_in(
        &self,
        object: &serde_json::Value,
        inventory: &Value,
        exceptions: &Exceptions<'_>,
        limits: Limits,
        as_gator: bool,
    ) -> Vec<AuditResult> {
        let meta = &object["metadata"];
        let name = meta["name"]
            .as_str()
            .map(str::to_string)
            .or_else(|| meta["generateName"].as_str().map(|g| format!("{g}*")))
            .unwrap_or_default();
        let target = Target {
            kind: object["kind"].as_str().unwrap_or_default(),
            name: &name,
            namespace: meta["namespace"].as_str().unwrap_or_default(),
            object,
        };
        // A violation an exception covers: a skip naming the exception.
        let excepted = |reference: &str, v: &Violation, policy: &str, gatekeeper: bool| {
            let key = v.control.as_ref().map(|c| format!("{reference}/{c}"));
            let covered = key
                .as_deref()
                .and_then(|k| {
                    exceptions
                        .set
                        .covering(k, v.path.as_deref(), &target, exceptions.now)
                })
                .or_else(|| {
                    exceptions
                        .set
                        .covering(reference, v.path.as_deref(), &target, exceptions.now)
                })?;
            let e = covered.exception;
            let line = Excepted {
                policy: policy.to_string(),
                enforcement: crate::outcome::Enforcement::Deny,
                exception: e.id(),
                owner: e.owner.clone(),
                until: e.until(),
                expires: e.expires_text.clone(),
                ending_in: covered.ending_in,
                violation: v.clone(),
                gatekeeper,
            }
            .line();
            let mut properties = std::collections::BTreeMap::new();
            properties.insert("exception".to_string(), e.id());
            properties.insert("owner".to_string(), e.owner.clone());
            properties.insert("expires".to_string(), e.expires_text.clone());
            Some((line, properties))
        };
        let mut out = Vec::new();
        let json = object;
        let review = audit_review(json);
        out.extend(self.audit_mutation(&review, inventory, limits));
        let with_namespace = self.native.with_namespace(&review, inventory);
        for audited in self
            .native
            .audit(with_namespace.as_ref().unwrap_or(&review), limits)
        {
            let (policy, found) = match audited {
                Audited::Checked(p, v) => (p, Ok(v)),
                Audited::Skipped(p, why) => (p, Err((AuditOutcome::Skip, why))),
                Audited::Failed(p, e) => (p, Err((AuditOutcome::Error, e.to_string()))),
            };
            let result = |outcome, message: String, path: Option<String>| AuditResult {
                policy: policy.name.clone(),
                rule: "violation".to_string(),
                result: outcome,
                enforcement: policy.enforcement,
                message,
                path,
                severity: policy.severity,
                category: policy.category.clone(),
                properties: Default::default(),
            };
            match found {
                Ok(violations) if violations.is_empty() => {
                    out.push(result(AuditOutcome::Pass, String::new(), None))
                }
                Ok(mut violations) => {
                    violations.sort();
                    violations.dedup();
                    for v in violations {
                        // A violation may lower its policy's enforcement
                        // (Pod Security's warn and audit modes).
                        let enforcement = v
                            .enforcement
                            .map_or(policy.enforcement, |e| policy.enforcement.weaker(e));
                        let mut r = match excepted(&policy.name, &v, &policy.name, false) {
                            Some((line, properties)) => {
                                let mut r = result(AuditOutcome::Skip, line, v.path.clone());
                                r.properties = properties;
                                r
                            }
                            None => {
                                result(failing(enforcement), v.line(&policy.name), v.path.clone())
                            }
                        };
                        r.enforcement = enforcement;
                        // The control, so reports can be grouped by it.
                        if let Some(c) = &v.control {
                            r.properties.insert("control".to_string(), c.clone());
                        }
                        out.push(r);
                    }
                }
                Err((outcome, why)) => out.push(result(outcome, why, None)),
            }
        }
        if self.gatekeeper.constraints().is_empty() {
            return out;
        }
        let empty = as_gator.then(gatekeeper::gator_empty_namespace);
        let request = match gatekeeper::request_for_object_in(json, empty.as_ref()) {
            Ok(r) => r,
            Err(_) => return out,
        };
        let point = if as_gator {
            gatekeeper::GATOR_POINT
        } else {
            gatekeeper::AUDIT_POINT
        };
        let reviewed = self
            .gatekeeper
            .review_all(&request, inventory, point, limits.start(), true);
        let Ok(reviewed) = reviewed else {
            return out;
        };
        let meta = |name: &str, kind: &str| {
            self.gatekeeper
                .constraints()
                .iter()
                .find(|c| c.name == name && c.kind == kind)
                .map(|c| (c.severity, c.category.clone()))
                .unwrap_or((None, None))
        };
        let result = |r: &gatekeeper::ConstraintRef, outcome, message: String| {
            let (severity, category) = meta(&r.constraint, &r.kind);
            AuditResult {
                policy: r.constraint.clone(),
                rule: r.kind.clone(),
                result: outcome,
                enforcement: r.enforcement,
                message,
                path: None,
                severity,
                category,
                properties: Default::default(),
            }
        };
        for c in &reviewed.checked {
            let hits: Vec<&gatekeeper::Hit> = reviewed
                .hits
                .iter()
                .filter(|h| {
                    h.constraint == c.constraint
                        && h.kind == c.kind
                        && h.enforcement == c.enforcement
                })
                .collect();
            if hits.is_empty() {
                out.push(result(c, AuditOutcome::Pass, String::new()));
                continue;
            }
            let mut messages: Vec<&String> = hits.iter().flat_map(|h| h.messages.iter()).collect();
            messages.sort();
            messages.dedup();
            for m in messages {
                let v = Violation {
                    path: None,
                    msg: m.clone(),
                    fix: None,
                    control: None,
                    enforcement: None,
                };
                let reference = format!("{}/{}", c.kind, c.constraint);
                match excepted(&reference, &v, &c.constraint, true) {
                    Some((line, properties)) => {
                        let mut r = result(c, AuditOutcome::Skip, line);
                        r.properties = properties;
                        out.push(r);
                    }
                    None => out.push(result(
                        c,
                        failing(c.enforcement),
                        format!("[{}] {m}", c.constraint),
                    )),
                }
            }
        }
        for (c, why) in &reviewed.skipped {
            out.push(result(c, AuditOutcome::Skip, why.clone()));
        }
        for (c, e) in &reviewed.errors {
            out.push(result(
                c,
                AuditOutcome::Error,
                crate::outcome::error_line(&c.constraint, e),
            ));
        }
        out
    }

    /// What admitting the object now would change: one `mutate` result per
    /// mutating policy or Gatekeeper mutator that would change it, each
    /// with the mutation's patch summarised; an `error` result when the
    /// mutation fails.
    fn audit_mutation(
        &self,
        review: &Value,
        inventory: &Value,
        limits: Limits,
    ) -> Vec<AuditResult> {
        let result = |policy: &str, outcome, message: String| AuditResult {
            policy: policy.to_string(),
            rule: "mutation".to_string(),
            result: outcome,
            enforcement: crate::outcome::Enforcement::default(),
            message,
            path: None,
            severity: None,
            category: None,
            properties: Default::default(),
        };
        match self.mutate_as(review, inventory, limits.start(), Some(""), true) {
            Ok(outcome) => {
                let mut out = Vec::new();
                // Each policy with its own changes, in the order it first
                // made one (a policy that changed the object twice, once).
                let mut order: Vec<&String> = Vec::new();
                for (name, _) in &outcome.steps {
                    if !order.contains(&name) {
                        order.push(name);
                    }
                }
                for name in order {
                    let ops: Vec<String> = outcome
                        .steps
                        .iter()
                        .filter(|(n, _)| n == name)
                        .flat_map(|(_, patch)| patch.0.iter())
                        .map(|op| {
                            let v = serde_json::to_value(op).unwrap_or_default();
                            format!(
                                "{} {}",
                                v["op"].as_str().unwrap_or_default(),
                                v["path"].as_str().unwrap_or_default()
                            )
                        })
                        .collect();
                    let shown = ops.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                    let more = ops.len().saturating_sub(5);
                    let summary = if more > 0 {
                        format!("{shown} and {more} more")
                    } else {
                        shown
                    };
                    out.push(result(
                        name,
                        AuditOutcome::Mutate,
                        format!("[{name}] would change this object on admission: {summary}"),
                    ));
                }
                for (name, _, error) in &outcome.errors {
                    out.push(result(
                        name,
                        AuditOutcome::Error,
                        format!("[{name}] could not be evaluated: {error}"),
                    ));
                }
                out
            }
            Err(e) => vec![result(
                "mutation",
                AuditOutcome::Error,
                format!("mutating this object on admission would fail: {e}"),
            )],
        }
    }
}
