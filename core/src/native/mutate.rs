//! Mutating native policies on one request: every applicable policy
//! evaluated on the object as it is now, the first (in order) whose patch
//! changes it applied, again until nothing changes; each application
//! recorded when asked, a failing policy left out, and what a policy that
//! changed the object says of it (`warning`).

use regorus::Value;
use serde_json::Value as Json;

use super::policy::{Policy, PolicyKind, MUTATE_ENTRY};
use super::NativeSet;
use crate::mutation;
use crate::outcome::EvalError;
use crate::runtime::Budget;

/// What the mutating policies did to one request's object.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationOutcome {
    /// The object as finally mutated (`Null` when the request has no
    /// object, or no mutating policy applies to it).
    pub object: Json,
    /// The RFC 6902 patch from the original object; `None` when unchanged.
    pub patch: Option<json_patch::Patch>,
    /// The policies that changed the object, in the order they were applied.
    pub applied: Vec<String>,
    /// The policies that applied to the request (evaluated in the first round).
    pub evaluated: Vec<String>,
    /// What each application changed, in order (the policy, and the patch
    /// from the object before it to the object after): recorded when asked
    /// (audit attributes each change to the policy that made it).
    pub steps: Vec<(String, json_patch::Patch)>,
    /// Mutating policies whose evaluation failed (each left out; the
    /// others applied).
    pub errors: Vec<(String, crate::outcome::Enforcement, String)>,
    /// What the policies that changed the object say of it (their
    /// `warning` rule), as `[policy] text`.
    pub warnings: Vec<String>,
}

impl MutationOutcome {
    /// Nothing changed yet: `object` as it is.
    pub fn unchanged(object: Json) -> Self {
        Self {
            object,
            patch: None,
            applied: Vec::new(),
            evaluated: Vec::new(),
            steps: Vec::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl NativeSet {
    /// What a mutating policy's `warning` rule says of the object it is
    /// about to change (strings, or objects with `msg`), as `[policy] text`;
    /// nothing when it fails (its patch stands; a warning is advice).
    fn policy_warnings(&self, policy: &Policy, input: &Value, budget: Budget) -> Vec<String> {
        let rule = format!("{}.warning", policy.package());
        let Ok(value) = self.program.eval_rule(&rule, input.clone(), budget) else {
            return Vec::new();
        };
        let Ok(Json::Array(items)) = serde_json::to_value(&value) else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|i| i.as_str().or_else(|| i["msg"].as_str()))
            .map(|text| format!("[{}] {}", policy.name, text))
            .collect()
    }

    /// Runs the mutating policies to a fixed point. Each round evaluates every
    /// applicable policy on the current object; the first one (in order) whose
    /// patch changes it is applied and the round starts again, so every policy
    /// sees the object as changed by the ones before it. It ends when a round
    /// changes nothing. A policy whose evaluation fails, or whose patch cannot
    /// be applied, is left out of this request (and reported in
    /// [`MutationOutcome::errors`]); the others still apply. With `record`,
    /// each application's own patch is kept ([`MutationOutcome::steps`]).
    ///
    /// `input` is the AdmissionReview and `object` its object as it is now
    /// (changed by Gatekeeper mutators, say): the one value the loop
    /// changes. `budget`'s deadline holds for every round; each evaluation
    /// has its memory budget. With `record`, each application's own patch
    /// is kept ([`MutationOutcome::steps`]).
    pub fn mutate(
        &self,
        input: &Value,
        object: &Json,
        budget: Budget,
        record: bool,
    ) -> Result<MutationOutcome, EvalError> {
        let mut outcome = MutationOutcome::unchanged(Json::Null);
        if !self.could_apply(PolicyKind::Mutate, input) {
            return Ok(outcome);
        }
        let original = object.clone();
        outcome.object = original.clone();
        if !original.is_object() {
            return Ok(outcome);
        }
        let n = self
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Mutate)
            .count();
        let max_rounds = 3 * n + 3;
        // The input of the next evaluation: the review as sent while the
        // object is as sent, then rebuilt around the changed object.
        let mut current_input = if input["request"]["object"] == Value::from(object.clone()) {
            input.clone()
        } else {
            with_object(input, object)?
        };
        // Once the combined evaluation fails, each policy runs alone, and
        // the ones that failed are left out.
        let mut each = false;
        let mut failed: Vec<&Policy> = Vec::new();
        for round in 0..max_rounds {
            let mut entries: Vec<(&Policy, Json)> = Vec::new();
            if !each {
                match self.eval(MUTATE_ENTRY, current_input.clone(), budget) {
                    Ok(result) => {
                        if let Json::Object(m) = result {
                            for (name, patch) in m {
                                if let Some(p) = self.find_policy(PolicyKind::Mutate, &name) {
                                    entries.push((p, patch));
                                }
                            }
                        }
                    }
                    Err(e) if e.is_limit() => return Err(e),
                    Err(_) => each = true,
                }
            }
            if each {
                for policy in self.in_scope(PolicyKind::Mutate, input) {
                    if failed.iter().any(|f| std::ptr::eq(*f, policy)) {
                        continue;
                    }
                    match self.eval_one(policy, &current_input, budget) {
                        Ok(Json::Null) => {}
                        Ok(patch) => entries.push((policy, patch)),
                        Err(e) if e.is_limit() => return Err(e),
                        Err(e) => {
                            failed.push(policy);
                            outcome.errors.push((
                                policy.name.clone(),
                                policy.enforcement,
                                e.to_string(),
                            ));
                        }
                    }
                }
            }
            entries.sort_by(|a, b| (a.0.order, &a.0.name).cmp(&(b.0.order, &b.0.name)));
            if round == 0 {
                outcome.evaluated = entries.iter().map(|(p, _)| p.name.clone()).collect();
                outcome
                    .evaluated
                    .extend(failed.iter().map(|p| p.name.clone()));
            }
            let mut progressed = false;
            for (policy, patch) in entries {
                if failed.iter().any(|f| std::ptr::eq(*f, policy)) {
                    continue;
                }
                let before = record.then(|| outcome.object.clone());
                let applied = mutation::parse_ops(&policy.name, &patch)
                    .and_then(|ops| mutation::apply(&policy.name, &mut outcome.object, &ops));
                match applied {
                    Ok(true) => {
                        outcome.applied.push(policy.name.clone());
                        if policy.warns {
                            outcome.warnings.extend(self.policy_warnings(
                                policy,
                                &current_input,
                                budget,
                            ));
                        }
                        if let Some(before) = before {
                            if let Some(step) = mutation::diff(&before, &outcome.object) {
                                outcome.steps.push((policy.name.clone(), step));
                            }
                        }
                        progressed = true;
                        break;
                    }
                    Ok(false) => {}
                    Err(e) => {
                        // `apply` changes nothing unless every operation applies.
                        failed.push(policy);
                        outcome.errors.push((
                            policy.name.clone(),
                            policy.enforcement,
                            EvalError::from(e).to_string(),
                        ));
                    }
                }
            }
            if !progressed {
                outcome.patch = mutation::diff(&original, &outcome.object);
                return Ok(outcome);
            }
            current_input = with_object(input, &outcome.object)?;
        }
        let tail = outcome
            .applied
            .iter()
            .rev()
            .take(n.max(1) * 2)
            .cloned()
            .collect::<Vec<_>>();
        let mut names: Vec<String> = tail;
        names.sort();
        names.dedup();
        Err(EvalError::NotConverging {
            rounds: max_rounds,
            policies: names.join(", "),
        })
    }
}

/// The review with `request.object` replaced.
/// `input` (an AdmissionReview) with `request.object` replaced.
pub fn with_object(input: &Value, object: &Json) -> Result<Value, EvalError> {
    let mut review = input.clone();
    let request = review
        .as_object_mut()
        .ok()
        .and_then(|m| m.get_mut(&Value::from("request")))
        .and_then(|r| r.as_object_mut().ok())
        .ok_or_else(|| EvalError::Failed("review has no request object".to_string()))?;
    request.insert(Value::from("object"), Value::from(object.clone()));
    Ok(review)
}
