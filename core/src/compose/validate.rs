//! Validation of both kinds composed: the native policies, then the
//! Gatekeeper Constraints, under one budget for the request, into one list
//! of what fired and one list of the policies whose own evaluation failed
//! (each confined to its policy). [`super::decision`] turns that into the
//! response; nothing here knows about HTTP.

use regorus::Value;

use super::{CompiledBundle, Load};
use crate::gatekeeper;
use crate::outcome::{Enforcement, EvalError, Violation};
use crate::runtime::Budget;

/// One policy that reported violations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// The policy.
    pub policy: String,
    /// Its enforcement.
    pub enforcement: Enforcement,
    /// Its violations.
    pub violations: Vec<Violation>,
    /// A Gatekeeper Constraint (its messages are shown verbatim).
    pub gatekeeper: bool,
    /// A Constraint's kind (`None` for a native policy).
    pub kind: Option<String>,
}

impl Fired {
    /// One violation as the user sees it: `[policy] path: problem. Fix: how.`
    /// for native policies, `[constraint] msg` for Gatekeeper Constraints.
    pub fn line(&self, v: &Violation) -> String {
        if self.gatekeeper {
            format!("[{}] {}", self.policy, v.msg)
        } else {
            v.line(&self.policy)
        }
    }
}

/// One policy (a native policy or a Constraint) whose evaluation failed on
/// its own: its result, not the request's. With enforcement `deny` it
/// follows the failure mode (deny: a line in the denial; allow: a warning);
/// with `warn` it is a warning; with `dryrun` it is only counted and logged.
#[derive(Debug)]
pub struct PolicyError {
    /// The policy or Constraint.
    pub policy: String,
    /// Its enforcement at this point.
    pub enforcement: Enforcement,
    /// What went wrong.
    pub error: EvalError,
}

/// What every validating policy and Constraint said of one request.
#[derive(Debug, Default)]
pub struct Validation {
    /// The policies and Constraints that applied.
    pub evaluated: Vec<String>,
    /// Those that reported violations (native first, then Constraints).
    pub fired: Vec<Fired>,
    /// Those whose own evaluation failed while the others decided.
    pub errors: Vec<PolicyError>,
}

impl CompiledBundle {
    /// Validates a review with both kinds of policy: the native policies in
    /// scope, then the Constraints (with `inventory` as their
    /// `data.inventory`), all under `budget`. Running out of it, or memory,
    /// is the request's error; any other error is the result of the policy
    /// that raised it. `load` says whether the Constraints may be evaluated
    /// on two threads.
    pub fn validate(
        &self,
        input: &Value,
        inventory: &Value,
        budget: Budget,
        load: Load,
    ) -> Result<Validation, EvalError> {
        let with_namespace = self.native.with_namespace(input, inventory);
        let validated = self
            .native
            .validate(with_namespace.as_ref().unwrap_or(input), budget)?;
        let reviewed = self.review_gatekeeper(input, inventory, budget, load)?;
        let errors: Vec<PolicyError> = validated
            .errors
            .into_iter()
            .map(|(p, error)| PolicyError {
                policy: p.name.clone(),
                enforcement: p.enforcement,
                error,
            })
            .chain(reviewed.errors.into_iter().map(|(c, error)| PolicyError {
                policy: c.constraint,
                enforcement: c.enforcement,
                error,
            }))
            .collect();
        let mut evaluated: Vec<String> = validated
            .results
            .iter()
            .map(|r| r.policy.name.clone())
            .collect();
        evaluated.extend(errors.iter().map(|e| e.policy.clone()));
        evaluated.extend(reviewed.hits.iter().map(|h| h.constraint.clone()));
        let gatekeeper_fired = reviewed.hits.into_iter().map(|h| {
            let mut violations: Vec<Violation> = h
                .messages
                .into_iter()
                .map(|msg| Violation {
                    path: None,
                    msg,
                    fix: None,
                    control: None,
                    enforcement: None,
                })
                .collect();
            violations.sort();
            violations.dedup();
            Fired {
                policy: h.constraint,
                enforcement: h.enforcement,
                violations,
                gatekeeper: true,
                kind: Some(h.kind),
            }
        });
        // A violation may lower its policy's enforcement (Pod Security's
        // warn and audit modes): one entry per enforcement that occurs.
        let fired = validated
            .results
            .into_iter()
            .filter(|r| !r.violations.is_empty())
            .flat_map(|r| {
                let mut violations = r.violations;
                violations.sort();
                violations.dedup();
                let own = r.policy.enforcement;
                let mut by: Vec<(Enforcement, Vec<Violation>)> = Vec::new();
                for v in violations {
                    let e = v.enforcement.map_or(own, |e| own.weaker(e));
                    match by.iter_mut().find(|(x, _)| *x == e) {
                        Some((_, list)) => list.push(v),
                        None => by.push((e, vec![v])),
                    }
                }
                by.sort_by_key(|(e, _)| *e);
                let name = r.policy.name.clone();
                by.into_iter().map(move |(enforcement, violations)| Fired {
                    policy: name.clone(),
                    enforcement,
                    violations,
                    gatekeeper: false,
                    kind: None,
                })
            })
            .chain(gatekeeper_fired)
            .collect();
        Ok(Validation {
            evaluated,
            fired,
            errors,
        })
    }

    /// The native validating policies alone, in one evaluation (the
    /// benchmarks' stage of validation).
    pub fn validate_native(
        &self,
        input: &Value,
        limits: crate::runtime::Limits,
    ) -> Result<crate::native::Validated<'_>, EvalError> {
        self.native.validate(input, limits.start())
    }

    /// Reviews the request of an AdmissionReview against the Gatekeeper
    /// Constraints, at the webhook's enforcement point. An evaluation error
    /// is the result of the Constraint that raised it (the others still
    /// decide), except running out of time, which fails the review: the
    /// request's time is spent for every Constraint. A panic inside the
    /// engine becomes an evaluation error.
    fn review_gatekeeper(
        &self,
        input: &Value,
        inventory: &Value,
        budget: Budget,
        load: Load,
    ) -> Result<gatekeeper::Reviewed, EvalError> {
        if self.gatekeeper.constraints().is_empty() {
            return Ok(gatekeeper::Reviewed::default());
        }
        let reviewed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.gatekeeper.review_at_webhook(
                &input["request"],
                inventory,
                budget,
                load.may_split(),
            )
        }))
        .unwrap_or_else(|_| Err(EvalError::Failed("the policy engine panicked".to_string())))?;
        let mut reviewed = reviewed;
        if let Some(i) = reviewed
            .errors
            .iter()
            .position(|(_, e)| matches!(e, EvalError::Timeout(_)))
        {
            return Err(reviewed.errors.swap_remove(i).1);
        }
        Ok(reviewed)
    }
}
