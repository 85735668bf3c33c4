//! Mutation of both kinds composed: the Gatekeeper mutators first (in
//! Gatekeeper's order, to their own fixed point), then the native `mutate.*`
//! policies (to theirs), the two alternating until a whole round changes
//! nothing, all under one budget for the request. The object is a
//! `serde_json::Value` all along; an engine input is built from it only
//! when a native evaluation needs one.

use regorus::Value;

use super::{CompiledBundle, MUTATION_ROUNDS};
use crate::gatekeeper;
use crate::native::MutationOutcome;
use crate::outcome::EvalError;
use crate::runtime::{Budget, Limits};

impl CompiledBundle {
    /// Mutates the request's object with no referential data (see
    /// [`CompiledBundle::mutate_with_inventory`]).
    pub fn mutate(&self, input: &Value, limits: Limits) -> Result<MutationOutcome, EvalError> {
        self.mutate_with_inventory(input, &Value::Undefined, limits.start())
    }

    /// Mutates the request's object: the Gatekeeper mutators first (in
    /// Gatekeeper's order, to their own fixed point), then the native
    /// `mutate.*` policies (to theirs), the two alternating until a whole
    /// round changes nothing; more than [`MUTATION_ROUNDS`] rounds is a
    /// "not converging" error naming both. Gatekeeper mutators run first
    /// so that a bundle migrated from Gatekeeper mutates exactly as
    /// Gatekeeper did, native defaults filling only what is still absent.
    /// `inventory` gives the object's Namespace to `namespaceSelector`.
    pub fn mutate_with_inventory(
        &self,
        input: &Value,
        inventory: &Value,
        budget: Budget,
    ) -> Result<MutationOutcome, EvalError> {
        self.mutate_as(input, inventory, budget, None, false)
    }

    /// [`CompiledBundle::mutate_with_inventory`], with the operation the
    /// Gatekeeper mutators see replaced (audit: none, so only mutators
    /// bound to every operation apply, as in Gatekeeper).
    pub(super) fn mutate_as(
        &self,
        input: &Value,
        inventory: &Value,
        budget: Budget,
        operation: Option<&str>,
        record: bool,
    ) -> Result<MutationOutcome, EvalError> {
        let request = &input["request"];
        let original = serde_json::to_value(&request["object"]).unwrap_or(serde_json::Value::Null);
        let mutators = self.gatekeeper.mutators();
        if mutators.is_empty() {
            return self.native.mutate(input, &original, budget, record);
        }
        let mut outcome = MutationOutcome::unchanged(original.clone());
        if !original.is_object() {
            return Ok(outcome);
        }
        let started = std::time::Instant::now();
        let text = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
        let namespace = text(&request["namespace"]);
        let operation = operation
            .map(str::to_string)
            .unwrap_or_else(|| text(&request["operation"]));
        let deadline = budget.deadline;
        let namespace_object = match &inventory["cluster"]["v1"]["Namespace"][namespace.as_str()] {
            v @ Value::Object(_) => Some(v),
            _ => None,
        };
        // Each kind runs to its own fixed point, so a round after the first
        // in which the mutators change nothing leaves the native policies
        // at theirs too: no copy of the object is compared.
        for round in 0..MUTATION_ROUNDS {
            let run = if record {
                gatekeeper::mutators::Mutators::mutate_recording
            } else {
                gatekeeper::mutators::Mutators::mutate
            };
            let applied = run(
                mutators,
                &mut outcome.object,
                &namespace,
                &operation,
                namespace_object,
                deadline,
            )
            .map_err(|e| match e {
                gatekeeper::mutators::MutateError::Timeout { .. } => EvalError::Timeout(
                    deadline
                        .map(|d| d.saturating_duration_since(started))
                        .unwrap_or_default(),
                ),
                other => EvalError::Failed(other.to_string()),
            })?;
            let gatekeeper_changed = !applied.changed.is_empty();
            if round == 0 {
                outcome.evaluated = applied.matched;
            }
            outcome.applied.extend(applied.changed);
            outcome.steps.extend(applied.steps);
            if round > 0 && !gatekeeper_changed {
                break;
            }
            let native = self.native.mutate(input, &outcome.object, budget, record)?;
            if round == 0 {
                outcome.evaluated.extend(native.evaluated);
            }
            outcome.steps.extend(native.steps);
            outcome.warnings.extend(native.warnings);
            for e in native.errors {
                if !outcome.errors.iter().any(|(p, _, _)| *p == e.0) {
                    outcome.errors.push(e);
                }
            }
            if native.applied.is_empty() {
                break;
            }
            outcome.applied.extend(native.applied);
            outcome.object = native.object;
            if round + 1 == MUTATION_ROUNDS {
                let mut names = outcome.applied.clone();
                names.sort();
                names.dedup();
                return Err(EvalError::NotConverging {
                    rounds: MUTATION_ROUNDS,
                    policies: names.join(", "),
                });
            }
        }
        outcome.patch = crate::mutation::diff(&original, &outcome.object);
        Ok(outcome)
    }
}
