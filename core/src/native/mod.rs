//! Native policies: the `validate.<name>` and `mutate.<name>` packages of a
//! bundle, compiled with the built-in helper library and the bundle's data
//! into one prepared [`Program`], and the two evaluations the webhooks need.
//!
//! Compilation happens once per bundle, off the request path: modules are
//! parsed (modern Rego first, then the older syntax), policies are found and
//! configured from data ([`crate::native::policy`]), the generated entry module is
//! added, and the program is warmed with a sample review so that the first
//! real request pays no analysis. A request evaluates one entry rule that
//! covers every applicable policy, so helper rules are computed once per
//! request and results stay attributed per policy.

mod mutate;
pub mod policy;
pub mod settings;
pub mod testing;
mod validate;

pub use mutate::{with_object, MutationOutcome};

use std::collections::BTreeMap;

use regorus::Value;
use serde_json::Value as Json;

use crate::bundle::{BundleError, BundleFiles};
use crate::native::testing::{TestCase, TestRun};
use crate::outcome::{EvalError, Violation};
use crate::runtime::{self, Budget, Evaluator, Limits, Program, RegoError, RunError, Syntax};
use crate::samples::WARMUP_REVIEWS;
use policy::{Policy, PolicyError, PolicyKind, MUTATE_ENTRY, VALIDATE_ENTRY};

/// The built-in helper library, always loaded; its package is reserved.
pub const LIBRARY: &[(&str, &str)] = &[
    (
        "regent/lib/workload.rego",
        include_str!("../rego/workload.rego"),
    ),
    (
        "regent/lib/images.rego",
        include_str!("../rego/images.rego"),
    ),
];

/// Errors compiling native policies. Each names the file, and where known
/// the line and column, it came from.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// The bundle's data does not merge.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A Rego module does not parse or compile.
    #[error(transparent)]
    Rego(#[from] RegoError),
    /// A policy is declared or configured wrongly.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// Modules call functions, or import or reference names, that exist
    /// nowhere (each with its position and the closest existing name).
    #[error("{}", runtime::check::summary(.0))]
    Check(Vec<runtime::check::Finding>),
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
    /// A policy does not decide an ordinary Pod within the evaluation
    /// limits: it would fail every request.
    #[error("{path}: policy {policy}: on an ordinary Pod ({context}), {error}; a policy must decide one well within the evaluation limits (--eval-timeout, --eval-memory-limit)")]
    Limit {
        /// The module that declares the policy.
        path: String,
        /// The policy (`data.validate.<name>`).
        policy: String,
        /// What was being done (`warm-up validation`).
        context: String,
        /// The limit it hit.
        error: RunError,
    },
    /// Loading data or warming the program failed.
    #[error("{context}: {message}")]
    Engine {
        /// What was being done.
        context: String,
        /// What regorus said.
        message: String,
    },
}

/// What to compile, and within which limits its warm-up evaluations run.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileOptions {
    /// Also compile `*_test.rego` modules and collect their `test_*` rules.
    pub include_tests: bool,
    /// Never use the bytecode VM (for comparing evaluators).
    pub interpreter_only: bool,
    /// The limits of every evaluation at load time (warm-up, the bytecode
    /// check); the same as at request time, so a bundle that cannot decide
    /// an ordinary Pod within them never goes live.
    pub limits: Limits,
}

/// The violations of one policy for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Its violations (possibly none: the policy applied and found nothing).
    pub violations: Vec<Violation>,
}

/// What the validating policies found for one request.
#[derive(Debug, Default)]
pub struct Validated<'a> {
    /// Each policy in scope that was evaluated, with its violations.
    pub results: Vec<PolicyResult<'a>>,
    /// Policies whose own evaluation failed while the others decided: an
    /// error in one policy is that policy's result, not the request's.
    pub errors: Vec<(&'a Policy, EvalError)>,
}

/// What audit found for one native validating policy on one object.
#[derive(Debug)]
pub enum Audited<'a> {
    /// Evaluated: its violations (none: it passed).
    Checked(&'a Policy, Vec<Violation>),
    /// Applicable, but not judged on an object at rest, and why.
    Skipped(&'a Policy, String),
    /// Its evaluation failed.
    Failed(&'a Policy, EvalError),
}

/// Policies the default bundle retired, and what reports their findings now.
const RETIRED: [(&str, &str); 6] = [
    ("privileged", "pod_security/privileged"),
    ("host_namespaces", "pod_security/host_namespaces"),
    ("host_path", "pod_security/host_path_volumes"),
    ("capabilities", "pod_security/capabilities_baseline"),
    (
        "privilege_escalation",
        "pod_security/allow_privilege_escalation",
    ),
    ("run_as_non_root", "pod_security/run_as_non_root"),
];

/// The native policies of a bundle, compiled.
#[derive(Debug, Clone)]
pub struct NativeSet {
    program: Program,
    policies: Vec<Policy>,
    tests: Vec<TestCase>,
    /// The test modules' sources as written, by path (to explain a failure).
    test_sources: BTreeMap<String, String>,
    /// Why the policies are served by the interpreter rather than the
    /// bytecode VM, when they are (a construct the VM lacks).
    interpreter_reason: Option<String>,
    /// Data values a later bundle of a composition overrides.
    overrides: Vec<crate::bundle::Override>,
    /// Some policy reads `input.namespace`: the request's Namespace object,
    /// attached when the inventory holds it.
    reads_namespace: bool,
    /// The bundle defines `data.regent.log.mask` (the decision log's).
    has_log_mask: bool,
}

impl NativeSet {
    /// The JSON pointers the bundle's `data.regent.log.mask` rule names for
    /// the review `input` (none without the rule). An error is the
    /// caller's to report; the record is then logged without the object.
    pub fn log_mask(
        &self,
        input: &Value,
        limits: crate::runtime::Limits,
    ) -> Result<Vec<String>, EvalError> {
        if !self.has_log_mask {
            return Ok(Vec::new());
        }
        let v = self
            .program
            .eval_rule("data.regent.log.mask", input.clone(), limits.start())
            .map_err(EvalError::from)?;
        let items: Vec<&Value> = match &v {
            Value::Set(s) => s.iter().collect(),
            Value::Array(a) => a.iter().collect(),
            Value::Undefined => Vec::new(),
            other => {
                return Err(EvalError::Failed(format!(
                    "data.regent.log.mask must be a set of JSON pointers, got {other}"
                )))
            }
        };
        items
            .into_iter()
            .map(|p| {
                p.as_string().map(|s| s.to_string()).map_err(|_| {
                    EvalError::Failed(format!(
                        "data.regent.log.mask: {p} is not a JSON pointer string"
                    ))
                })
            })
            .collect()
    }

    /// The review with `input.namespace` set to the request's Namespace
    /// object from `inventory` (Gatekeeper's `data.inventory` layout), when
    /// a policy reads it and the inventory holds it; otherwise `None` (use
    /// the review as it is).
    pub fn with_namespace(&self, input: &Value, inventory: &Value) -> Option<Value> {
        if !self.reads_namespace {
            return None;
        }
        let ns = runtime::text(&input["request"]["namespace"]).filter(|n| !n.is_empty())?;
        let object = &inventory["cluster"]["v1"]["Namespace"][ns];
        if !matches!(object, Value::Object(_)) {
            return None;
        }
        let mut input = input.clone();
        input
            .as_object_mut()
            .ok()?
            .insert(Value::from("namespace"), object.clone());
        Some(input)
    }

    /// Loads the helper library, the bundle's modules and data and the
    /// generated entry module into one engine. The set is not warmed yet:
    /// [`NativeSet::prepare`] does that.
    pub fn load(files: &BundleFiles, options: CompileOptions) -> Result<Self, NativeError> {
        let mut engine = runtime::new_engine();
        for (path, source) in LIBRARY {
            runtime::add_module(&mut engine, path, source, Syntax::Detect)?;
        }
        let (mut data, overrides) = files.merged_data_with_overrides()?;
        let mut declared: BTreeMap<(PolicyKind, String), String> = BTreeMap::new();
        let mut sources: BTreeMap<(PolicyKind, String), String> = BTreeMap::new();
        // Helper packages (neither policies nor tests), for audit's reading
        // of what a policy reaches.
        let mut helpers: Vec<(String, String)> = Vec::new();
        let mut tests = Vec::new();
        let mut test_sources = BTreeMap::new();
        for module in &files.modules {
            if module.is_test() && !options.include_tests {
                continue;
            }
            let package = if module.is_test() {
                // Each definition of a test is its own test (`test_x#01`):
                // further definitions of a name are compiled renamed.
                let (rewritten, cases) = crate::native::testing::find(&module.path, &module.source);
                let package =
                    runtime::add_module(&mut engine, &module.path, &rewritten, Syntax::Detect)?;
                tests.extend(cases);
                test_sources.insert(module.path.clone(), module.source.clone());
                package
            } else {
                runtime::add_module(&mut engine, &module.path, &module.source, Syntax::Detect)?
            };
            let class = policy::classify(&module.path, &package)?;
            if module.restricted && !module.is_test() && class.is_none() {
                return Err(PolicyError::NotAPolicy {
                    path: module.path.clone(),
                    package,
                }
                .into());
            }
            if module.is_test() {
                continue;
            }
            if class.is_none() {
                helpers.push((package.clone(), module.source.clone()));
            }
            if let Some(key) = class {
                if let Some(first) = declared.get(&key) {
                    if dir_of(first) != dir_of(&module.path) {
                        return Err(NativeError::Duplicate {
                            package,
                            first: first.clone(),
                            second: module.path.clone(),
                        });
                    }
                }
                declared
                    .entry(key.clone())
                    .or_insert_with(|| module.path.clone());
                sources.entry(key).or_default().push_str(&module.source);
            }
        }
        let mut policies = Vec::new();
        let mut findings = Vec::new();
        for ((kind, name), path) in &declared {
            let source = sources
                .get(&(*kind, name.clone()))
                .map(String::as_str)
                .unwrap_or("");
            if !crate::source::defines_rule(source, kind.rule()) {
                return Err(PolicyError::MissingRule {
                    path: path.clone(),
                    package: format!("data.{}.{name}", kind.root()),
                    rule: kind.rule(),
                }
                .into());
            }
            let mut policy =
                match crate::native::settings::read(*kind, name, path, &mut data, files) {
                    Ok(p) => p,
                    Err(problems) => {
                        findings.extend(problems);
                        continue;
                    }
                };
            // What the policy reads: its own modules and the helper packages
            // they name.
            let mut reach = source.to_string();
            for (package, helper) in &helpers {
                if source.contains(package.as_str()) {
                    reach.push('\n');
                    reach.push_str(helper);
                }
            }
            policy.audit_skip = crate::source::audit_skip_reason(&reach);
            policy.warns =
                *kind == PolicyKind::Mutate && crate::source::defines_rule(source, "warning");
            policy.has_controls = *kind == PolicyKind::Validate
                && crate::source::defines_rule(source, "control_names");
            policies.push(policy);
        }
        // Settings for a policy no module defines (a typo in a directory
        // name, or a policy retired from the default bundle) would apply to
        // nothing, silently: refused, naming it.
        for d in &files.data {
            let (Some(root), Some(name)) = (d.mount.first(), d.mount.get(1)) else {
                continue;
            };
            let kind = match root.as_str() {
                "validate" => PolicyKind::Validate,
                "mutate" => PolicyKind::Mutate,
                _ => continue,
            };
            if declared.contains_key(&(kind, name.clone())) {
                continue;
            }
            let retired = RETIRED
                .iter()
                .find(|(old, _)| *old == name.as_str() && kind == PolicyKind::Validate);
            let known: Vec<&str> = declared
                .keys()
                .filter(|(k, _)| *k == kind)
                .map(|(_, n)| n.as_str())
                .collect();
            findings.push(runtime::check::Finding {
                path: d.path.clone(),
                line: 1,
                column: 1,
                message: match retired {
                    Some((_, now)) => format!(
                        "data.{root}.{name}: settings for {name}, which the default bundle retired: {now} reports these findings now (docs/pod-security.md#migrating-from-the-older-policies)"
                    ),
                    None => {
                        // What the modules beside it declare, if any.
                        let dir = d.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                        let beside: Vec<String> = declared
                            .iter()
                            .filter(|(_, p)| p.rsplit_once('/').is_some_and(|(pd, _)| pd == dir))
                            .map(|((k, n), _)| format!("{}.{n}", k.root()))
                            .collect();
                        if beside.is_empty() {
                            format!("data.{root}.{name}: settings for a policy no module defines (package {root}.{name})")
                        } else {
                            format!(
                                "data.{root}.{name}: settings for a policy no module defines (package {root}.{name}); the policy in this directory is {}: a policy's settings are data at its package, so name the directory after it",
                                beside.join(", ")
                            )
                        }
                    }
                },
                hint: if retired.is_some() {
                    None
                } else {
                    runtime::check::closest(name, known.iter().copied())
                },
            });
        }
        policies.sort_by(|a, b| (a.kind, a.order, &a.name).cmp(&(b.kind, b.order, &b.name)));
        // Calls and imports regorus resolves only when a request reaches
        // them: an author's mistake is a load error, not a request failure.
        let texts: Vec<runtime::check::ModuleText<'_>> = LIBRARY
            .iter()
            .map(|(path, source)| runtime::check::ModuleText {
                path,
                source,
                checked: false,
            })
            .chain(
                files
                    .modules
                    .iter()
                    .filter(|m| options.include_tests || !m.is_test())
                    .map(|m| runtime::check::ModuleText {
                        path: &m.path,
                        source: &m.source,
                        checked: true,
                    }),
            )
            .collect();
        findings.extend(runtime::check::check(&texts, &data, &[]));
        if !findings.is_empty() {
            return Err(NativeError::Check(findings));
        }
        engine
            .add_data(Value::from(data))
            .map_err(|e| NativeError::Engine {
                context: "loading data".to_string(),
                message: e.to_string(),
            })?;
        runtime::add_module(
            &mut engine,
            "regent/main.rego (generated)",
            &policy::entry_module(&policies),
            Syntax::Detect,
        )?;
        let reads_namespace = sources.values().any(|s| s.contains("input.namespace"));
        let has_log_mask = files.modules.iter().any(|m| {
            !m.is_test()
                && m.source.lines().any(|l| l.trim() == "package regent.log")
                && crate::source::defines_rule(&m.source, "mask")
        });
        Ok(Self {
            program: Program::new(engine),
            policies,
            tests,
            test_sources,
            interpreter_reason: None,
            overrides,
            reads_namespace,
            has_log_mask,
        })
    }

    /// Evaluates both entry points on a sample Pod, so the engine's analysis
    /// is done before the set serves and a policy that fails on an ordinary
    /// Pod is caught before it goes live; then, unless told not to, moves the
    /// entry points to the bytecode VM if it decides the warm-up reviews
    /// exactly as the interpreter does.
    pub fn prepare(&mut self, options: CompileOptions) -> Result<(), NativeError> {
        let limits = options.limits;
        let input = Value::from_json_str(WARMUP_REVIEWS[0]).map_err(|e| NativeError::Engine {
            context: "warm-up input".to_string(),
            message: e.to_string(),
        })?;
        // Analyse the program itself once. A limit hit here is reported at
        // once (the checks below would only hit it again); other errors
        // surface in them with their proper context.
        if let Err(e) = self.program.warm(VALIDATE_ENTRY, input.clone(), limits) {
            if e.is_limit() {
                return Err(self.warm_up_error(
                    PolicyKind::Validate,
                    "warm-up validation",
                    e.into(),
                    &input,
                    limits,
                ));
            }
        }
        // A policy that cannot decide an ordinary Pod would fail every
        // request it sees: refused here, naming it, rather than confined
        // to it at request time.
        let failing =
            |path: &str, package: String, context: &str, error: String| NativeError::Engine {
                context: format!("{path}: policy {package} fails on an ordinary Pod ({context})"),
                message: error,
            };
        match self.validate(&input, limits.start()) {
            Err(e) => {
                return Err(self.warm_up_error(
                    PolicyKind::Validate,
                    "warm-up validation",
                    e,
                    &input,
                    limits,
                ))
            }
            Ok(v) => {
                if let Some((p, e)) = v.errors.first() {
                    return Err(failing(
                        &p.source,
                        p.package(),
                        "warm-up validation",
                        e.to_string(),
                    ));
                }
            }
        }
        // The controls a policy reports by, read once.
        for i in 0..self.policies.len() {
            if !self.policies[i].has_controls {
                continue;
            }
            let p = &self.policies[i];
            let rule = format!("{}.control_names", p.package());
            let names = self
                .program
                .eval_rule(&rule, input.clone(), limits.start())
                .map_err(|e| {
                    failing(
                        &p.source,
                        p.package(),
                        "reading control_names",
                        e.to_string(),
                    )
                })?;
            let items: Option<Vec<&Value>> = match &names {
                Value::Array(a) => Some(a.iter().collect()),
                Value::Set(s) => Some(s.iter().collect()),
                _ => None,
            };
            let controls: Option<Vec<String>> = items.and_then(|items| {
                items
                    .into_iter()
                    .map(|v| v.as_string().ok().map(|s| s.to_string()))
                    .collect()
            });
            match controls {
                Some(c) => self.policies[i].controls = c,
                None => {
                    return Err(failing(
                        &p.source,
                        p.package(),
                        "reading control_names",
                        format!("control_names must be a set or list of strings, got {names}"),
                    ))
                }
            }
        }
        let object = serde_json::to_value(&input["request"]["object"]).unwrap_or(Json::Null);
        match self.mutate(&input, &object, limits.start(), false) {
            Err(e) => {
                return Err(self.warm_up_error(
                    PolicyKind::Mutate,
                    "warm-up mutation",
                    e,
                    &input,
                    limits,
                ))
            }
            Ok(m) => {
                if let Some((name, _, e)) = m.errors.first() {
                    let (path, package) = self
                        .find_policy(PolicyKind::Mutate, name)
                        .map(|p| (p.source.clone(), p.package()))
                        .unwrap_or_default();
                    return Err(failing(&path, package, "warm-up mutation", e.clone()));
                }
            }
        }
        if options.include_tests || options.interpreter_only {
            return Ok(());
        }
        let samples: Vec<Value> = WARMUP_REVIEWS
            .iter()
            .filter_map(|r| Value::from_json_str(r).ok())
            .collect();
        if let Err(why) =
            self.program
                .compile_bytecode(&[VALIDATE_ENTRY, MUTATE_ENTRY], &samples, limits)
        {
            self.interpreter_reason = Some(why.to_string());
        }
        Ok(())
    }

    /// The error for a failed warm-up. When a limit stopped it, the policy
    /// at fault is found by evaluating each one alone, within the same
    /// limits, and named with its file.
    fn warm_up_error(
        &self,
        kind: PolicyKind,
        context: &str,
        error: EvalError,
        input: &Value,
        limits: Limits,
    ) -> NativeError {
        let limited = match &error {
            EvalError::Timeout(d) => Some(RunError::Timeout(*d)),
            EvalError::MemoryLimit(n) => Some(RunError::MemoryLimit(*n)),
            _ => None,
        };
        if let Some(limited) = limited {
            let request = &input["request"];
            let (Some(k), Some(op)) = (
                crate::runtime::text(&request["kind"]["kind"]),
                crate::runtime::text(&request["operation"]),
            ) else {
                return NativeError::Engine {
                    context: context.to_string(),
                    message: limited.to_string(),
                };
            };
            let applicable = self
                .policies
                .iter()
                .filter(|p| p.kind == kind && p.matching.could_apply(k, op));
            for policy in applicable {
                let rule = format!("{}.{}", policy.package(), kind.rule());
                match self.program.eval_rule(&rule, input.clone(), limits.start()) {
                    Err(RunError::Timeout(d)) => {
                        return NativeError::Limit {
                            path: policy.source.clone(),
                            policy: policy.package(),
                            context: context.to_string(),
                            error: RunError::Timeout(limits.time.unwrap_or(d)),
                        };
                    }
                    Err(e @ RunError::MemoryLimit(_)) => {
                        return NativeError::Limit {
                            path: policy.source.clone(),
                            policy: policy.package(),
                            context: context.to_string(),
                            error: e,
                        };
                    }
                    _ => {}
                }
            }
            return NativeError::Engine {
                context: context.to_string(),
                message: limited.to_string(),
            };
        }
        NativeError::Engine {
            context: context.to_string(),
            message: error.to_string(),
        }
    }

    /// The policies, validating first (by name), then mutating (by order).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The `test_*` rules found (when compiled with tests).
    pub fn tests(&self) -> &[TestCase] {
        &self.tests
    }

    /// Which evaluator serves the policies.
    pub fn evaluator(&self) -> Evaluator {
        self.program.evaluator()
    }

    /// Data values a later bundle of the composition overrides.
    pub fn overrides(&self) -> &[crate::bundle::Override] {
        &self.overrides
    }

    /// Why the interpreter serves the policies, when the bytecode VM was
    /// refused (a construct the VM lacks, or a disagreement on a sample).
    pub fn interpreter_reason(&self) -> Option<&str> {
        self.interpreter_reason.as_deref()
    }

    pub(super) fn find_policy(&self, kind: PolicyKind, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.kind == kind && p.name == name)
    }

    pub(super) fn could_apply(&self, kind: PolicyKind, input: &Value) -> bool {
        let request = &input["request"];
        let (Some(k), Some(op)) = (
            crate::runtime::text(&request["kind"]["kind"]),
            crate::runtime::text(&request["operation"]),
        ) else {
            return false;
        };
        self.policies
            .iter()
            .any(|p| p.kind == kind && p.matching.could_apply(k, op))
    }

    pub(super) fn eval(
        &self,
        entry: &str,
        input: Value,
        budget: Budget,
    ) -> Result<Json, EvalError> {
        let value = self.program.eval(entry, input, budget)?;
        serde_json::to_value(&value).map_err(|e| EvalError::Failed(e.to_string()))
    }

    /// Runs one test within `limits`, keeping its `print` output.
    pub fn run_test(&self, case: &TestCase, limits: Limits) -> TestRun {
        crate::native::testing::run(&self.program, case, limits.start())
    }

    /// Why a failed test failed: its first statement that does not hold,
    /// and the values of that statement's operands.
    pub fn explain_test(&self, case: &TestCase, limits: Limits) -> Vec<String> {
        match self.test_sources.get(&case.path) {
            Some(source) => {
                crate::native::testing::explain(&self.program, case, source, limits.start())
            }
            None => Vec::new(),
        }
    }
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}
