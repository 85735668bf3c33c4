//! The compiled bundle: the native policies and the Gatekeeper set of one
//! bundle revision, compiled side by side, and the questions every caller
//! asks of it (the server, `regent eval`, `regent verify`, reload):
//! validate this review, mutate this review, review it against the
//! Constraints.
//!
//! Compilation happens once per bundle, off the request path. Nothing here
//! locks, does I/O or compiles on the request path; a bundle is immutable
//! once compiled and shared through an `Arc`.

pub mod decision;

use std::time::{Duration, Instant};

use regorus::Value;

use crate::runtime::{Limits, RunError};

use crate::bundle::{BundleError, BundleFiles};
use crate::gatekeeper;
use crate::native::policy::{Policy, PolicyError};
use crate::native::Audited;
use crate::native::{NativeError, NativeSet};
use crate::outcome::{AuditOutcome, AuditResult, EvalError};

pub use crate::native::testing::{TestCase, TestRun};
pub use crate::native::{CompileOptions, MutationOutcome, PolicyResult, Validated};
pub use crate::runtime::Evaluator;

/// Errors compiling a bundle. Each names the file, and where known the line
/// and column, it came from.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// Reading the bundle's files failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A Rego module does not parse or compile.
    #[error("{path}:{line}:{column}: {message}")]
    Rego {
        /// The module (bundle path, or ConfigMap/key).
        path: String,
        /// 1-based line (0 when regorus gave none).
        line: usize,
        /// 1-based column (0 when regorus gave none).
        column: usize,
        /// The first line of the error.
        message: String,
        /// The full report, with the source excerpt.
        detail: String,
    },
    /// A policy is declared or configured wrongly.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Modules call functions, or import or reference names, that exist
    /// nowhere.
    #[error("{}", crate::runtime::check::summary(.0))]
    Check(Vec<crate::runtime::check::Finding>),
    /// Two modules of different files declare the same policy package.
    #[error("policy {package} is declared by both {first} and {second}")]
    Duplicate {
        /// The package.
        package: String,
        /// The first module.
        first: String,
        /// The second module.
        second: String,
    },
    /// A Gatekeeper object does not load.
    #[error(transparent)]
    Gatekeeper(Box<gatekeeper::GatekeeperError>),
    /// A policy does not decide an ordinary Pod within the evaluation limits.
    #[error("{path}: policy {policy}: on an ordinary Pod ({context}), {error}; a policy must decide one well within the evaluation limits (--eval-timeout, --eval-memory-limit)")]
    Limit {
        /// The module that declares the policy.
        path: String,
        /// The policy (`data.validate.<name>`).
        policy: String,
        /// What was being done.
        context: String,
        /// The limit it hit.
        error: RunError,
    },
    /// Loading data or warming the engine failed.
    #[error("{context}: {message}")]
    Engine {
        /// What was being done.
        context: String,
        /// What regorus said.
        message: String,
    },
}

impl From<NativeError> for CompileError {
    fn from(e: NativeError) -> Self {
        match e {
            NativeError::Bundle(e) => Self::Bundle(e),
            NativeError::Rego(e) => Self::Rego {
                path: e.path,
                line: e.line,
                column: e.column,
                message: e.message,
                detail: e.detail,
            },
            NativeError::Policy(e) => Self::Policy(e),
            NativeError::Check(findings) => Self::Check(findings),
            NativeError::Duplicate {
                package,
                first,
                second,
            } => Self::Duplicate {
                package,
                first,
                second,
            },
            NativeError::Limit {
                path,
                policy,
                context,
                error,
            } => Self::Limit {
                path,
                policy,
                context,
                error,
            },
            NativeError::Engine { context, message } => Self::Engine { context, message },
        }
    }
}

impl From<gatekeeper::GatekeeperError> for CompileError {
    fn from(e: gatekeeper::GatekeeperError) -> Self {
        Self::Gatekeeper(Box::new(e))
    }
}

/// Most rounds of Gatekeeper mutators then native mutating policies before
/// a mutation is "not converging" (each kind runs to its own fixed point
/// within a round, so two rounds settle any pair that agrees).
pub const MUTATION_ROUNDS: usize = 4;

/// A bundle compiled and warmed, ready to serve.
#[derive(Clone)]
pub struct CompiledBundle {
    native: NativeSet,
    gatekeeper: gatekeeper::Set,
    revision: String,
    origin: String,
    compile_time: Duration,
}

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

impl std::fmt::Debug for CompiledBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledBundle")
            .field("revision", &self.revision)
            .field("origin", &self.origin)
            .field("policies", &self.native.policies().len())
            .finish_non_exhaustive()
    }
}

impl CompiledBundle {
    /// Compiles and warms a bundle: native policies, then Gatekeeper objects.
    pub fn compile(files: &BundleFiles, options: CompileOptions) -> Result<Self, CompileError> {
        let started = Instant::now();
        let mut native = NativeSet::load(files, options)?;
        let gatekeeper = gatekeeper::Set::compile(&files.objects, options.limits)?;
        native.prepare(options)?;
        Ok(Self {
            native,
            gatekeeper,
            revision: files.revision.clone(),
            origin: files.origin.clone(),
            compile_time: started.elapsed(),
        })
    }

    /// The content revision of the bundle.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Where the bundle came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The native policies, validating first (by name), then mutating (by order).
    pub fn policies(&self) -> &[Policy] {
        self.native.policies()
    }

    /// The Gatekeeper templates, Constraints and ExpansionTemplates.
    pub fn gatekeeper(&self) -> &gatekeeper::Set {
        &self.gatekeeper
    }

    /// The `test_*` rules found (when compiled with tests).
    pub fn tests(&self) -> &[TestCase] {
        self.native.tests()
    }

    /// How long compiling and warming took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Which evaluator serves the native policies.
    pub fn evaluator(&self) -> Evaluator {
        self.native.evaluator()
    }

    /// Data values a later bundle of the composition overrides (a default
    /// policy's `enforcement` set by your bundle, say).
    pub fn overrides(&self) -> &[crate::bundle::Override] {
        self.native.overrides()
    }

    /// What the author should know although the bundle serves: the
    /// bytecode VM refused the native policies (they run on the
    /// interpreter, about three times slower), and Gatekeeper objects that
    /// are loaded but not enforced.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(why) = self.native.interpreter_reason() {
            out.push(format!(
                "the native policies run on the interpreter, about three times slower than the bytecode VM: {}",
                why.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
            ));
        }
        out.extend(self.gatekeeper.notes().iter().cloned());
        out
    }

    /// Runs every validating native policy whose scope matches the request,
    /// in one evaluation. `input` is the whole AdmissionReview.
    pub fn validate(&self, input: &Value, limits: Limits) -> Result<Validated<'_>, EvalError> {
        self.native.validate(input, limits)
    }

    /// Mutates the request's object with no referential data (see
    /// [`CompiledBundle::mutate_with_inventory`]).
    pub fn mutate(&self, input: &Value, limits: Limits) -> Result<MutationOutcome, EvalError> {
        self.mutate_with_inventory(input, &Value::Undefined, limits)
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
        limits: Limits,
    ) -> Result<MutationOutcome, EvalError> {
        self.mutate_as(input, inventory, limits, None, false)
    }

    /// [`CompiledBundle::mutate_with_inventory`], with the operation the
    /// Gatekeeper mutators see replaced (audit: none, so only mutators
    /// bound to every operation apply, as in Gatekeeper).
    fn mutate_as(
        &self,
        input: &Value,
        inventory: &Value,
        limits: Limits,
        operation: Option<&str>,
        record: bool,
    ) -> Result<MutationOutcome, EvalError> {
        let mutators = self.gatekeeper.mutators();
        if mutators.is_empty() {
            return self.native.mutate_recording(input, limits, record);
        }
        let started = Instant::now();
        let request = &input["request"];
        let original = serde_json::to_value(&request["object"]).unwrap_or(serde_json::Value::Null);
        let mut outcome = MutationOutcome::unchanged(original.clone());
        if !original.is_object() {
            return Ok(outcome);
        }
        let text = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
        let namespace = text(&request["namespace"]);
        let operation = operation
            .map(str::to_string)
            .unwrap_or_else(|| text(&request["operation"]));
        let deadline = limits.start().deadline;
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
                gatekeeper::mutators::MutateError::Timeout { .. } => {
                    EvalError::Timeout(limits.time.unwrap_or_default())
                }
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
            let native_input = if gatekeeper_changed {
                Some(crate::native::with_object(input, &outcome.object)?)
            } else {
                None
            };
            let left = limits.time.map(|t| t.saturating_sub(started.elapsed()));
            let native = self.native.mutate_recording(
                native_input.as_ref().unwrap_or(input),
                limits.with_time(left),
                record,
            )?;
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

    /// Reviews the request of an AdmissionReview against the Gatekeeper
    /// Constraints, at the webhook's enforcement point. An evaluation error
    /// is the result of the Constraint that raised it (the others still
    /// decide), except running out of time, which fails the review: the
    /// request's time is spent for every Constraint. A panic inside the
    /// engine becomes an evaluation error.
    pub fn review_gatekeeper(
        &self,
        input: &Value,
        inventory: &Value,
        limits: Limits,
    ) -> Result<gatekeeper::Reviewed, EvalError> {
        if self.gatekeeper.constraints().is_empty() {
            return Ok(gatekeeper::Reviewed::default());
        }
        let budget = limits.start();
        let reviewed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.gatekeeper
                .review_at_webhook(&input["request"], inventory, budget)
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
        let mut out = Vec::new();
        let json = object;
        let review = audit_review(json);
        out.extend(self.audit_mutation(&review, inventory, limits));
        for audited in self.native.audit(&review, limits) {
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
            };
            match found {
                Ok(violations) if violations.is_empty() => {
                    out.push(result(AuditOutcome::Pass, String::new(), None))
                }
                Ok(mut violations) => {
                    violations.sort();
                    violations.dedup();
                    let outcome = failing(policy.enforcement);
                    for v in violations {
                        out.push(result(outcome, v.line(&policy.name), v.path.clone()));
                    }
                }
                Err((outcome, why)) => out.push(result(outcome, why, None)),
            }
        }
        if self.gatekeeper.constraints().is_empty() {
            return out;
        }
        let request = match gatekeeper::request_for_object(json) {
            Ok(r) => r,
            Err(_) => return out,
        };
        let reviewed = self.gatekeeper.review_all(
            &request,
            inventory,
            gatekeeper::AUDIT_POINT,
            limits.start(),
            true,
        );
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
                out.push(result(
                    c,
                    failing(c.enforcement),
                    format!("[{}] {m}", c.constraint),
                ));
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
        };
        match self.mutate_as(review, inventory, limits, Some(""), true) {
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

    /// Evaluates one test rule within the default limits; `Ok(true)` when
    /// it is true.
    pub fn run_test(&self, case: &TestCase) -> Result<bool, String> {
        self.native.run_test(case, Limits::default()).outcome
    }

    /// Evaluates one test rule within `limits`.
    pub fn run_test_within(&self, case: &TestCase, limits: Limits) -> Result<bool, String> {
        self.native.run_test(case, limits).outcome
    }

    /// Runs one test within `limits`, with its `print` output.
    pub fn run_test_printing(&self, case: &TestCase, limits: Limits) -> TestRun {
        self.native.run_test(case, limits)
    }

    /// Why a failed test failed (see [`crate::native::testing::explain`]).
    pub fn explain_test(&self, case: &TestCase, limits: Limits) -> Vec<String> {
        self.native.explain_test(case, limits)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn bundle(files: &[(&str, &str)]) -> Result<CompiledBundle, CompileError> {
        let files = files
            .iter()
            .map(|(p, s)| (p.to_string(), s.as_bytes().to_vec()))
            .collect();
        CompiledBundle::compile(
            &BundleFiles::from_files("test", files).unwrap(),
            CompileOptions::default(),
        )
    }

    #[test]
    fn rego_errors_keep_file_line_and_column() {
        let err = bundle(&[(
            "validate/x/policy.rego",
            "package validate.x\nimport rego.v1\nviolation contains v if {\n  v := \n}\n",
        )])
        .unwrap_err();
        match err {
            CompileError::Rego {
                path, line, column, ..
            } => {
                assert_eq!(path, "validate/x/policy.rego");
                assert_eq!(line, 4);
                assert!(column >= 1);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn older_rego_syntax_is_accepted() {
        let b = bundle(&[("validate/old/policy.rego", "package validate.old\nviolation[msg] {\n  input.request.object.spec.hostPID\n  msg := \"hostPID\"\n}\n")])
            .unwrap();
        assert_eq!(b.policies()[0].name, "old");
    }

    #[test]
    fn reserved_packages_are_refused() {
        let err = bundle(&[(
            "x.rego",
            "package regent.lib.workload\nimport rego.v1\nx := 1\n",
        )])
        .unwrap_err();
        assert!(err.to_string().contains("reserved"), "{err}");
    }

    #[test]
    fn policy_without_its_rule_is_refused() {
        let err = bundle(&[(
            "validate/x/p.rego",
            "package validate.x\nimport rego.v1\nviolations contains 1 if true\n",
        )])
        .unwrap_err();
        assert!(
            err.to_string().contains("defines no `violation` rule"),
            "{err}"
        );
    }

    #[test]
    fn policy_failing_on_a_plain_pod_is_refused_at_warm_up() {
        let err = bundle(&[(
            "validate/x/p.rego",
            // Two values for one complete rule: an evaluation error on a
            // plain Pod (a builtin error such as `1 / 0` is undefined, as in
            // OPA, and would not be).
            "package validate.x\nimport rego.v1\nlevel := \"a\" if true\nlevel := \"b\" if true\nviolation contains level\n",
        )])
        .unwrap_err();
        assert!(err.to_string().contains("warm-up"), "{err}");
    }
}
