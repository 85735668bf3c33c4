//! The compiled bundle: the native policies and the Gatekeeper set of one
//! bundle revision, compiled side by side, and the questions every caller
//! asks of it (the server, `regent eval`, `regent verify`, reload):
//! validate this review, mutate this review, review it against the
//! Constraints.
//!
//! Compilation happens once per bundle, off the request path. Nothing here
//! locks, does I/O or compiles on the request path; a bundle is immutable
//! once compiled and shared through an `Arc`.

mod audit;
pub mod decision;
pub mod except;
pub mod exception_review;
mod mutate;
pub mod validate;

pub use audit::audit_review;
pub use except::{Excepted, Exceptions};
pub use validate::{Fired, Validation};

use std::time::{Duration, Instant};

use crate::runtime::{Limits, RunError};

use crate::bundle::{BundleError, BundleFiles};
use crate::gatekeeper;
use crate::native::policy::{Policy, PolicyError};
use crate::native::{NativeError, NativeSet};

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

/// How busy this process is with admission requests, as its caller sees
/// it: whether a request may use a second core to evaluate its
/// Gatekeeper templates. The server tells; the core keeps no count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Load {
    /// No other admission request is in progress: the templates may be
    /// split over two threads (latency only).
    #[default]
    Alone,
    /// Other requests are in progress: every request stays on its thread.
    Busy,
    /// A background evaluation (shadow, audit): never takes the second
    /// core from admission.
    Background,
}

impl Load {
    /// Whether the templates may be split over two threads.
    pub fn may_split(self) -> bool {
        self == Self::Alone
    }
}

/// A bundle compiled and warmed, ready to serve.
#[derive(Clone)]
pub struct CompiledBundle {
    native: NativeSet,
    gatekeeper: gatekeeper::Set,
    revision: String,
    origin: String,
    compile_time: Duration,
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

    /// The JSON pointers the bundle's `data.regent.log.mask` rule names
    /// for a review (the decision log leaves them out of the objects it
    /// records); none without the rule.
    pub fn log_mask(
        &self,
        input: &regorus::Value,
        limits: Limits,
    ) -> Result<Vec<String>, crate::outcome::EvalError> {
        self.native.log_mask(input, limits)
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
