//! Validating native policies on one request: every policy in scope in one
//! evaluation of the generated entry rule, and, when that evaluation fails,
//! each policy alone, so an error is the result of the policy that raised
//! it and the others still decide. Also audit's view of an object at rest.

use regorus::Value;
use serde_json::Value as Json;

use super::policy::{Policy, PolicyKind, VALIDATE_ENTRY};
use super::{Audited, NativeSet, PolicyResult, Validated};
use crate::outcome::{Enforcement, EvalError, Violation};
use crate::runtime::{Budget, Limits};

impl NativeSet {
    /// Runs every validating policy whose scope matches the request, in one
    /// evaluation. `input` is the whole AdmissionReview. When that
    /// evaluation fails (a builtin error, conflicting values, a malformed
    /// result), each policy in scope is evaluated alone, so the error is
    /// the result of the policy that raised it and the others still
    /// decide. Running out of time or memory stays the request's error:
    /// the budget is spent for every policy.
    pub fn validate(&self, input: &Value, budget: Budget) -> Result<Validated<'_>, EvalError> {
        if !self.could_apply(PolicyKind::Validate, input) {
            return Ok(Validated::default());
        }
        let result = match self.eval(VALIDATE_ENTRY, input.clone(), budget) {
            Ok(r) => r,
            Err(e) if e.is_limit() => return Err(e),
            Err(_) => return self.validate_each(input, budget),
        };
        let mut out = Validated::default();
        // Policy name -> its violations, for the policies in scope, by name.
        for (name, violations) in result.as_object().into_iter().flatten() {
            let Some(policy) = self.find_policy(PolicyKind::Validate, name) else {
                continue;
            };
            match violations_of(policy, violations) {
                Ok(violations) => out.results.push(PolicyResult { policy, violations }),
                Err(e) => out.errors.push((policy, e)),
            }
        }
        Ok(out)
    }

    /// The validating policies in scope of `input` (kind, operation and
    /// namespace, as the generated entry module decides), `off` aside.
    pub(super) fn in_scope(&self, kind: PolicyKind, input: &Value) -> Vec<&Policy> {
        fn text(v: &Value) -> &str {
            crate::runtime::text(v).unwrap_or_default()
        }
        let request = &input["request"];
        let (k, op, ns) = (
            text(&request["kind"]["kind"]),
            text(&request["operation"]),
            text(&request["namespace"]),
        );
        self.policies
            .iter()
            .filter(|p| {
                p.kind == kind
                    && p.enforcement != crate::outcome::Enforcement::Off
                    && p.matching.could_apply(k, op)
                    && p.matching.matches_namespace(ns)
            })
            .collect()
    }

    /// Evaluates one policy's rule alone (on the interpreter).
    pub(super) fn eval_one(
        &self,
        policy: &Policy,
        input: &Value,
        budget: Budget,
    ) -> Result<Json, EvalError> {
        let rule = format!("{}.{}", policy.package(), policy.kind.rule());
        let value = self.program.eval_rule(&rule, input.clone(), budget)?;
        serde_json::to_value(&value).map_err(|e| EvalError::Failed(e.to_string()))
    }

    /// Every validating policy in scope evaluated alone, each error
    /// confined to its policy (a limit still fails the request).
    fn validate_each(&self, input: &Value, budget: Budget) -> Result<Validated<'_>, EvalError> {
        let mut out = Validated::default();
        for policy in self.in_scope(PolicyKind::Validate, input) {
            match self
                .eval_one(policy, input, budget)
                .and_then(|v| violations_of(policy, &v))
            {
                Ok(violations) => out.results.push(PolicyResult { policy, violations }),
                Err(e) if e.is_limit() => return Err(e),
                Err(e) => out.errors.push((policy, e)),
            }
        }
        Ok(out)
    }

    /// Audits the object of `review` (an AdmissionReview built for an
    /// object at rest, operation CREATE): every validating policy that is
    /// not `off` and applies to its kind and namespace, whatever its
    /// enforcement. Policies that read what only an admission request has,
    /// or that look only at UPDATE or DELETE, are skipped with the reason.
    /// An evaluation error is attributed to the policies that cause it (each
    /// is evaluated alone), and the others still report.
    pub fn audit(&self, review: &Value, limits: Limits) -> Vec<Audited<'_>> {
        let request = &review["request"];
        let text = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
        let (kind, namespace) = (text(&request["kind"]["kind"]), text(&request["namespace"]));
        let mut out = Vec::new();
        let mut checked: Vec<&Policy> = Vec::new();
        for p in self.policies.iter().filter(|p| {
            p.kind == PolicyKind::Validate
                && p.enforcement != crate::outcome::Enforcement::Off
                && p.matching.matches_kind(&kind)
                && p.matching.matches_namespace(&namespace)
        }) {
            if let Some(reason) = &p.audit_skip {
                out.push(Audited::Skipped(p, reason.clone()));
            } else if !p.matching.matches_create() {
                out.push(Audited::Skipped(
                    p,
                    format!(
                        "looks only at {} requests, which an object at rest is not",
                        p.matching.operations.join(", ")
                    ),
                ));
            } else {
                checked.push(p);
            }
        }
        if checked.is_empty() {
            return out;
        }
        let validated = match self.validate(review, limits.start()) {
            Ok(v) => v,
            // A limit: each policy alone, within a budget of its own, so
            // one that exhausts it does not take the others with it.
            Err(_) => {
                let mut v = Validated::default();
                for p in &checked {
                    match self
                        .eval_one(p, review, limits.start())
                        .and_then(|j| violations_of(p, &j))
                    {
                        Ok(violations) => v.results.push(PolicyResult {
                            policy: p,
                            violations,
                        }),
                        Err(e) => v.errors.push((p, e)),
                    }
                }
                v
            }
        };
        for r in validated.results {
            if checked.iter().any(|p| std::ptr::eq(*p, r.policy)) {
                out.push(Audited::Checked(r.policy, r.violations));
            }
        }
        for (p, e) in validated.errors {
            if checked.iter().any(|c| std::ptr::eq(*c, p)) {
                out.push(Audited::Failed(p, e));
            }
        }
        out
    }
}

/// A policy's `violation` set as violations; undefined is none.
fn violations_of(policy: &Policy, value: &Json) -> Result<Vec<Violation>, EvalError> {
    match value {
        Json::Array(items) => items.iter().map(violation).collect::<Result<Vec<_>, _>>(),
        Json::Null => Ok(Vec::new()),
        other => Err(format!("violation must be a set, got {other}")),
    }
    .map_err(|message| EvalError::Malformed {
        policy: policy.name.clone(),
        message,
    })
}

/// Reads one violation: a string, or an object with `msg` and optional
/// `path`, `fix` and `control`.
fn violation(v: &Json) -> Result<Violation, String> {
    match v {
        Json::String(s) => Ok(Violation {
            path: None,
            msg: s.clone(),
            fix: None,
            control: None,
            enforcement: None,
        }),
        Json::Object(m) => {
            let text = |k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
            Ok(Violation {
                path: text("path"),
                msg: text("msg").ok_or_else(|| format!("violation {v} has no \"msg\" string"))?,
                fix: text("fix"),
                control: text("control"),
                enforcement: match text("enforcement").as_deref() {
                    None | Some("deny") => None,
                    Some("warn") => Some(Enforcement::Warn),
                    Some("dryrun") => Some(Enforcement::Dryrun),
                    Some(other) => {
                        return Err(format!(
                            "violation {v} has enforcement {other:?}: warn or dryrun (a violation may only lower its policy's)"
                        ))
                    }
                },
            })
        }
        other => Err(format!(
            "violation {other} is neither a string nor an object with \"msg\""
        )),
    }
}
