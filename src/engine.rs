//! The compiled bundle: Rego modules and data loaded into a prepared regorus
//! engine, and the two evaluations the webhooks need.
//!
//! Compilation happens once per bundle, off the request path: modules are
//! parsed (modern Rego first, then the older syntax), policies are found and
//! configured from data, the generated entry module is added, and the engine is
//! warmed with a sample review so that the first real request pays no analysis.
//! A request clones the prepared engine (cheap: its parts are shared) and
//! evaluates one entry rule that covers every applicable policy, so helper
//! rules are computed once per request and results stay attributed per policy.
//! Nothing here locks, does I/O or compiles on the request path.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use regorus::{Engine, Value};
use serde_json::Value as Json;

use crate::bundle::{BundleError, BundleFiles, ModuleFile};
use crate::mutation::{self, MutationError};
use crate::policy::{self, Policy, PolicyError, PolicyKind, MUTATE_ENTRY, VALIDATE_ENTRY};

/// The built-in helper library, always loaded; its package is reserved.
pub const LIBRARY: &[(&str, &str)] = &[
    (
        "regent/lib/workload.rego",
        include_str!("rego/workload.rego"),
    ),
    ("regent/lib/images.rego", include_str!("rego/images.rego")),
];

/// How many work units the evaluator runs between two looks at the clock for
/// the time limit. Looking at every unit (interval 1) spent a tenth of the
/// server's CPU in `clock_gettime`; a few hundred units take microseconds, so
/// the limit is still honoured to well under a millisecond.
pub(crate) const TIMER_CHECK_INTERVAL: NonZeroU32 = match NonZeroU32::new(256) {
    Some(n) => n,
    None => NonZeroU32::MIN,
};

/// Reviews used to warm a freshly compiled engine and to check that the
/// bytecode VM decides exactly as the interpreter does: an ordinary Pod, and
/// a Deployment that trips every default policy and mutation.
const WARMUP_REVIEWS: [&str; 2] = [
    include_str!("rego/warmup_review.json"),
    include_str!("rego/warmup_violations.json"),
];

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
    Gatekeeper(Box<crate::gatekeeper::GatekeeperError>),
    /// Loading data or warming the engine failed.
    #[error("{context}: {message}")]
    Engine {
        /// What was being done.
        context: String,
        /// What regorus said.
        message: String,
    },
}

/// Errors evaluating a request. These are webhook failures, not verdicts on
/// the object; the configured failure mode decides what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The evaluation ran out of time.
    #[error("policy evaluation exceeded its time limit of {0:?}")]
    Timeout(Duration),
    /// regorus reported an error (a builtin failed, a conflict, ...).
    #[error("policy evaluation failed: {0}")]
    Failed(String),
    /// A policy returned something of the wrong shape.
    #[error("policy {policy} returned a malformed result: {message}")]
    Malformed {
        /// The policy.
        policy: String,
        /// What was wrong.
        message: String,
    },
    /// A mutating policy's patch cannot be applied.
    #[error(transparent)]
    Mutation(#[from] MutationError),
    /// Mutating policies kept changing the object.
    #[error(
        "mutation did not settle after {rounds} rounds; still changing the object: {policies}"
    )]
    NotConverging {
        /// Rounds run.
        rounds: usize,
        /// The policies applied in the last rounds.
        policies: String,
    },
}

impl EvalError {
    /// A short label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Failed(_) => "error",
            Self::Malformed { .. } => "malformed",
            Self::Mutation(_) => "patch",
            Self::NotConverging { .. } => "not_converging",
        }
    }
}

/// One violation reported by a validating policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Violation {
    /// The field path in the object under review, when the policy gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong.
    pub msg: String,
    /// How to fix it, when the policy said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// The violations of one policy for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyResult<'a> {
    /// The policy.
    pub policy: &'a Policy,
    /// Its violations (possibly none: the policy applied and found nothing).
    pub violations: Vec<Violation>,
}

/// What the mutating policies did to one request's object.
#[derive(Debug, Clone, PartialEq)]
pub struct MutationOutcome {
    /// The object as finally mutated (`Null` when the request has no object).
    pub object: Json,
    /// The RFC 6902 patch from the original object; `None` when unchanged.
    pub patch: Option<json_patch::Patch>,
    /// The policies that changed the object, in the order they were applied.
    pub applied: Vec<String>,
    /// The policies that applied to the request (evaluated in the first round).
    pub evaluated: Vec<String>,
}

/// A `test_*` rule found in a test module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestCase {
    /// The rule's full path, e.g. `data.validate.privileged.test_denies`.
    pub rule: String,
    /// The module it is in.
    pub path: String,
    /// The 1-based line of its first definition.
    pub line: usize,
}

/// One entry point compiled to regorus bytecode.
#[derive(Clone)]
struct VmEntry {
    compiled: regorus::CompiledPolicy,
    program: std::sync::Arc<regorus::rvm::program::Program>,
}

/// Both entry points in bytecode, and the data they read.
#[derive(Clone)]
struct VmPrograms {
    validate: VmEntry,
    mutate: VmEntry,
    data: Value,
}

/// Which evaluator serves a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluator {
    /// regorus's bytecode VM (about three times faster on the default bundle).
    Vm,
    /// regorus's tree-walking interpreter.
    Interpreter,
}

impl Evaluator {
    /// `vm` or `interpreter`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vm => "vm",
            Self::Interpreter => "interpreter",
        }
    }
}

/// A bundle compiled into a prepared engine, ready to serve.
#[derive(Clone)]
pub struct CompiledBundle {
    engine: Engine,
    vm: Option<VmPrograms>,
    revision: String,
    origin: String,
    policies: Vec<Policy>,
    gatekeeper: crate::gatekeeper::Set,
    tests: Vec<TestCase>,
    compile_time: Duration,
}

impl std::fmt::Debug for CompiledBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledBundle")
            .field("revision", &self.revision)
            .field("origin", &self.origin)
            .field("policies", &self.policies.len())
            .finish_non_exhaustive()
    }
}

/// What to compile.
#[derive(Debug, Clone, Copy, Default)]
pub struct CompileOptions {
    /// Also compile `*_test.rego` modules and collect their `test_*` rules.
    pub include_tests: bool,
    /// Never use the bytecode VM (for comparing evaluators).
    pub interpreter_only: bool,
}

impl CompiledBundle {
    /// Compiles and warms a bundle.
    pub fn compile(files: &BundleFiles, options: CompileOptions) -> Result<Self, CompileError> {
        let started = Instant::now();
        let mut engine = Engine::new();
        for (path, source) in LIBRARY {
            add_module(
                &mut engine,
                &ModuleFile {
                    path: (*path).to_string(),
                    source: (*source).to_string(),
                    restricted: false,
                },
            )?;
        }
        let data = files.merged_data()?;
        let mut declared: BTreeMap<(PolicyKind, String), String> = BTreeMap::new();
        let mut sources: BTreeMap<(PolicyKind, String), String> = BTreeMap::new();
        let mut tests = Vec::new();
        for module in &files.modules {
            if module.is_test() && !options.include_tests {
                continue;
            }
            let package = add_module(&mut engine, module)?;
            let class = policy::classify(&module.path, &package)?;
            if module.restricted && !module.is_test() && class.is_none() {
                return Err(PolicyError::NotAPolicy {
                    path: module.path.clone(),
                    package,
                }
                .into());
            }
            if module.is_test() {
                tests.extend(find_tests(module, &package));
                continue;
            }
            if let Some(key) = class {
                if let Some(first) = declared.get(&key) {
                    if dir_of(first) != dir_of(&module.path) {
                        return Err(CompileError::Duplicate {
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
        for ((kind, name), path) in &declared {
            let source = sources
                .get(&(*kind, name.clone()))
                .map(String::as_str)
                .unwrap_or("");
            if !policy::defines_rule(source, kind.rule()) {
                return Err(PolicyError::MissingRule {
                    path: path.clone(),
                    package: format!("data.{}.{name}", kind.root()),
                    rule: kind.rule(),
                }
                .into());
            }
            policies.push(policy::settings(*kind, name, path, &data)?);
        }
        policies.sort_by(|a, b| (a.kind, a.order, &a.name).cmp(&(b.kind, b.order, &b.name)));
        engine
            .add_data(Value::from(data))
            .map_err(|e| CompileError::Engine {
                context: "loading data".to_string(),
                message: e.to_string(),
            })?;
        add_module(
            &mut engine,
            &ModuleFile {
                path: "regent/main.rego (generated)".to_string(),
                source: policy::entry_module(&policies),
                restricted: false,
            },
        )?;
        let gatekeeper = crate::gatekeeper::Set::compile(&files.objects)
            .map_err(|e| CompileError::Gatekeeper(Box::new(e)))?;
        let mut bundle = Self {
            engine,
            vm: None,
            revision: files.revision.clone(),
            origin: files.origin.clone(),
            policies,
            gatekeeper,
            tests,
            compile_time: Duration::ZERO,
        };
        bundle.warm_up()?;
        if !options.include_tests && !options.interpreter_only {
            bundle.vm = bundle.bytecode();
        }
        bundle.compile_time = started.elapsed();
        Ok(bundle)
    }

    /// Compiles both entry points to bytecode, and keeps them only if the VM
    /// decides every warm-up review exactly as the interpreter does; a bundle
    /// using a construct the VM does not support stays on the interpreter.
    fn bytecode(&mut self) -> Option<VmPrograms> {
        let compile = |engine: &mut Engine, entry: &str| -> Result<VmEntry, String> {
            let rule: regorus::Rc<str> = regorus::Rc::from(entry);
            let compiled = engine
                .compile_with_entrypoint(&rule)
                .map_err(|e| e.to_string())?;
            let program = regorus::languages::rego::compiler::Compiler::compile_from_policy(
                &compiled,
                &[entry],
            )
            .map_err(|e| e.to_string())?;
            Ok(VmEntry { compiled, program })
        };
        let mut engine = self.engine.clone();
        let programs = (|| -> Result<VmPrograms, String> {
            Ok(VmPrograms {
                validate: compile(&mut engine, VALIDATE_ENTRY)?,
                mutate: compile(&mut engine, MUTATE_ENTRY)?,
                data: engine.get_data(),
            })
        })();
        let programs = match programs {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(revision = %self.revision, error = %e, "bytecode compilation failed; serving with the interpreter");
                return None;
            }
        };
        for review in WARMUP_REVIEWS {
            let Ok(input) = Value::from_json_str(review) else {
                return None;
            };
            for (entry, vm_entry) in [
                (VALIDATE_ENTRY, &programs.validate),
                (MUTATE_ENTRY, &programs.mutate),
            ] {
                let interpreted = self.eval_interpreted(entry, input.clone(), None);
                let compiled = run_vm(vm_entry, &programs.data, entry, input.clone(), None);
                if interpreted.as_ref().ok() != compiled.as_ref().ok() {
                    tracing::warn!(
                        revision = %self.revision, entry,
                        "the bytecode VM and the interpreter disagree on a warm-up review; serving with the interpreter"
                    );
                    return None;
                }
            }
        }
        Some(programs)
    }

    /// Which evaluator serves this bundle.
    pub fn evaluator(&self) -> Evaluator {
        if self.vm.is_some() {
            Evaluator::Vm
        } else {
            Evaluator::Interpreter
        }
    }

    /// Evaluates both entry points once on a sample Pod, so the engine's
    /// analysis is done before the bundle serves, and a policy that fails on
    /// an ordinary Pod is caught before it goes live.
    fn warm_up(&mut self) -> Result<(), CompileError> {
        let input = Value::from_json_str(WARMUP_REVIEWS[0]).map_err(|e| CompileError::Engine {
            context: "warm-up input".to_string(),
            message: e.to_string(),
        })?;
        self.validate(&input, None)
            .map_err(|e| CompileError::Engine {
                context: "warm-up validation".to_string(),
                message: e.to_string(),
            })?;
        self.mutate(&input, None)
            .map_err(|e| CompileError::Engine {
                context: "warm-up mutation".to_string(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// The content revision of the bundle.
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Where the bundle came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The policies, validating first (by name), then mutating (by order).
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// The Gatekeeper templates, Constraints and ExpansionTemplates.
    pub fn gatekeeper(&self) -> &crate::gatekeeper::Set {
        &self.gatekeeper
    }

    /// Reviews the request of an AdmissionReview against the Gatekeeper
    /// Constraints, at the webhook's enforcement point. A panic inside the
    /// engine becomes an evaluation error.
    pub fn review_gatekeeper(
        &self,
        input: &Value,
        inventory: &Value,
        timeout: Option<Duration>,
    ) -> Result<Vec<crate::gatekeeper::Hit>, EvalError> {
        if self.gatekeeper.constraints().is_empty() {
            return Ok(Vec::new());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.gatekeeper.review(
                &input["request"],
                inventory,
                crate::gatekeeper::WEBHOOK_POINT,
                deadline,
            )
        }))
        .unwrap_or_else(|_| Err(EvalError::Failed("the policy engine panicked".to_string())))
    }

    /// The `test_*` rules found (when compiled with tests).
    pub fn tests(&self) -> &[TestCase] {
        &self.tests
    }

    /// How long compiling and warming took.
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    fn find_policy(&self, kind: PolicyKind, name: &str) -> Option<&Policy> {
        self.policies
            .iter()
            .find(|p| p.kind == kind && p.name == name)
    }

    fn could_apply(&self, kind: PolicyKind, input: &Value) -> bool {
        let request = &input["request"];
        let (Ok(k), Ok(op)) = (
            request["kind"]["kind"].as_string(),
            request["operation"].as_string(),
        ) else {
            return false;
        };
        self.policies
            .iter()
            .any(|p| p.kind == kind && p.matching.could_apply(k, op))
    }

    fn eval(
        &self,
        entry: &str,
        input: Value,
        deadline: Option<Instant>,
    ) -> Result<Json, EvalError> {
        // A panic inside the policy engine must not take the connection (or
        // the answer) with it: it becomes an evaluation error, which the
        // failure mode decides like any other.
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.vm {
            Some(vm) => {
                let program = if entry == VALIDATE_ENTRY {
                    &vm.validate
                } else {
                    &vm.mutate
                };
                run_vm(program, &vm.data, entry, input, deadline)
            }
            None => self.eval_interpreted(entry, input, deadline),
        }));
        let value = match evaluated {
            Ok(result) => result?,
            Err(_) => {
                // The thread's prepared VMs may be mid-run: drop them.
                VMS.with(|cell| {
                    if let Ok(mut vms) = cell.try_borrow_mut() {
                        vms.clear();
                    }
                });
                return Err(EvalError::Failed("the policy engine panicked".to_string()));
            }
        };
        serde_json::to_value(&value).map_err(|e| EvalError::Failed(e.to_string()))
    }

    fn eval_interpreted(
        &self,
        entry: &str,
        input: Value,
        deadline: Option<Instant>,
    ) -> Result<Value, EvalError> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        let limit = arm_timer(&mut engine, deadline)?;
        engine
            .eval_rule(entry.to_string())
            .map_err(|e| eval_error(e.to_string(), limit))
    }

    /// Runs every validating policy whose scope matches the request, in one
    /// evaluation. `input` is the whole AdmissionReview.
    pub fn validate(
        &self,
        input: &Value,
        timeout: Option<Duration>,
    ) -> Result<Vec<PolicyResult<'_>>, EvalError> {
        if !self.could_apply(PolicyKind::Validate, input) {
            return Ok(Vec::new());
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let result = self.eval(VALIDATE_ENTRY, input.clone(), deadline)?;
        let mut out = Vec::new();
        for entry in result.as_array().map(Vec::as_slice).unwrap_or_default() {
            let name = entry["policy"].as_str().unwrap_or_default();
            let Some(policy) = self.find_policy(PolicyKind::Validate, name) else {
                continue;
            };
            let violations = match &entry["violations"] {
                Json::Array(items) => items.iter().map(violation).collect::<Result<Vec<_>, _>>(),
                other => Err(format!("violation must be a set, got {other}")),
            }
            .map_err(|message| EvalError::Malformed {
                policy: name.to_string(),
                message,
            })?;
            out.push(PolicyResult { policy, violations });
        }
        Ok(out)
    }

    /// Runs the mutating policies to a fixed point. Each round evaluates every
    /// applicable policy on the current object; the first one (in order) whose
    /// patch changes it is applied and the round starts again, so every policy
    /// sees the object as changed by the ones before it. It ends when a round
    /// changes nothing.
    pub fn mutate(
        &self,
        input: &Value,
        timeout: Option<Duration>,
    ) -> Result<MutationOutcome, EvalError> {
        let original = serde_json::to_value(&input["request"]["object"]).unwrap_or(Json::Null);
        let mut outcome = MutationOutcome {
            object: original.clone(),
            patch: None,
            applied: Vec::new(),
            evaluated: Vec::new(),
        };
        if original.is_null()
            || !original.is_object()
            || !self.could_apply(PolicyKind::Mutate, input)
        {
            return Ok(outcome);
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let n = self
            .policies
            .iter()
            .filter(|p| p.kind == PolicyKind::Mutate)
            .count();
        let max_rounds = 3 * n + 3;
        let mut current_input = input.clone();
        for round in 0..max_rounds {
            let result = self.eval(MUTATE_ENTRY, current_input.clone(), deadline)?;
            let mut entries: Vec<(&Policy, &Json)> = result
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .filter_map(|e| {
                    let name = e["policy"].as_str()?;
                    Some((self.find_policy(PolicyKind::Mutate, name)?, &e["patch"]))
                })
                .collect();
            entries.sort_by(|a, b| (a.0.order, &a.0.name).cmp(&(b.0.order, &b.0.name)));
            if round == 0 {
                outcome.evaluated = entries.iter().map(|(p, _)| p.name.clone()).collect();
            }
            let mut progressed = false;
            for (policy, patch) in entries {
                let ops = mutation::parse_ops(&policy.name, patch)?;
                if mutation::apply(&policy.name, &mut outcome.object, &ops)? {
                    outcome.applied.push(policy.name.clone());
                    progressed = true;
                    break;
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

    /// Evaluates one test rule; `Ok(true)` when it is true.
    pub fn run_test(&self, case: &TestCase) -> Result<bool, String> {
        let mut engine = self.engine.clone();
        engine.set_input(Value::Undefined);
        match engine.eval_rule(case.rule.clone()) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(Value::Undefined) => Ok(false),
            Ok(other) => Err(format!("test rule evaluated to {other}, not true")),
            Err(e) => Err(e.to_string()),
        }
    }
}

thread_local! {
    /// Prepared VMs of this thread, by program: creating one, loading the
    /// program and checking data against it is skipped on every request but
    /// the first. A VM resets its evaluation state on each run. A cached VM
    /// holds its program alive, so a program address cannot be reused while
    /// it is a key here.
    static VMS: std::cell::RefCell<Vec<(usize, regorus::rvm::vm::RegoVM)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Prepared VMs kept per thread (two entry points of the live bundle, and of
/// the one before it during a swap).
const VMS_PER_THREAD: usize = 4;

/// Runs one bytecode entry point on this thread's prepared VM for it.
fn run_vm(
    program: &VmEntry,
    data: &Value,
    entry: &str,
    input: Value,
    deadline: Option<Instant>,
) -> Result<Value, EvalError> {
    let key = std::sync::Arc::as_ptr(&program.program) as usize;
    VMS.with(|cell| {
        let Ok(mut vms) = cell.try_borrow_mut() else {
            // Not reachable (no evaluation re-enters this one); stay correct anyway.
            let mut vm = prepare_vm(program, data)?;
            return execute_vm(&mut vm, entry, input, deadline);
        };
        let index = match vms.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                if vms.len() >= VMS_PER_THREAD {
                    vms.remove(0);
                }
                vms.push((key, prepare_vm(program, data)?));
                vms.len() - 1
            }
        };
        execute_vm(&mut vms[index].1, entry, input, deadline)
    })
}

fn prepare_vm(program: &VmEntry, data: &Value) -> Result<regorus::rvm::vm::RegoVM, EvalError> {
    let mut vm = regorus::rvm::vm::RegoVM::new_with_policy(program.compiled.clone());
    vm.load_program(program.program.clone());
    // The VM's default instruction budget (25,000) is far below what a large
    // object needs; the execution timer is the limit that matters.
    vm.set_max_instructions(usize::MAX);
    vm.set_data(data.clone())
        .map_err(|e| EvalError::Failed(e.to_string()))?;
    Ok(vm)
}

fn execute_vm(
    vm: &mut regorus::rvm::vm::RegoVM,
    entry: &str,
    input: Value,
    deadline: Option<Instant>,
) -> Result<Value, EvalError> {
    vm.set_input(input);
    let limit = match deadline {
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(EvalError::Timeout(Duration::ZERO));
            }
            vm.set_execution_timer_config(Some(regorus::utils::limits::ExecutionTimerConfig {
                limit: left,
                check_interval: TIMER_CHECK_INTERVAL,
            }));
            Some(left)
        }
        None => {
            vm.set_execution_timer_config(None);
            None
        }
    };
    let result = vm
        .execute_entry_point_by_name(entry)
        .map_err(|e| eval_error(e.to_string(), limit));
    // Do not keep this request's object alive in the cache.
    vm.set_input(Value::Undefined);
    result
}

/// Sets the engine's time limit to what is left before `deadline`; the
/// limit set, or a timeout when nothing is left.
pub(crate) fn arm_timer(
    engine: &mut Engine,
    deadline: Option<Instant>,
) -> Result<Option<Duration>, EvalError> {
    let Some(d) = deadline else {
        return Ok(None);
    };
    let left = d.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(EvalError::Timeout(Duration::ZERO));
    }
    engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
        limit: left,
        check_interval: TIMER_CHECK_INTERVAL,
    });
    Ok(Some(left))
}

pub(crate) fn eval_error(text: String, limit: Option<Duration>) -> EvalError {
    match limit {
        Some(l) if text.contains("exceeded time limit") || text.contains("time limit exceeded") => {
            EvalError::Timeout(l)
        }
        _ => EvalError::Failed(text),
    }
}

/// The review with `request.object` replaced.
fn with_object(input: &Value, object: &Json) -> Result<Value, EvalError> {
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

/// Reads one violation: a string, or an object with `msg` and optional `path`
/// and `fix`.
fn violation(v: &Json) -> Result<Violation, String> {
    match v {
        Json::String(s) => Ok(Violation {
            path: None,
            msg: s.clone(),
            fix: None,
        }),
        Json::Object(m) => {
            let text = |k: &str| m.get(k).and_then(Json::as_str).map(str::to_string);
            Ok(Violation {
                path: text("path"),
                msg: text("msg").ok_or_else(|| format!("violation {v} has no \"msg\" string"))?,
                fix: text("fix"),
            })
        }
        other => Err(format!(
            "violation {other} is neither a string nor an object with \"msg\""
        )),
    }
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// Adds a module, in modern Rego if it parses so, else in the older syntax.
/// Returns the package (`data.x.y`).
pub fn add_module(engine: &mut Engine, module: &ModuleFile) -> Result<String, CompileError> {
    engine.set_rego_v0(false);
    let v1 = engine.add_policy(module.path.clone(), module.source.clone());
    let v1_err = match v1 {
        Ok(package) => return Ok(package),
        Err(e) => e,
    };
    if module.source.contains("import rego.v1") {
        return Err(rego_error(&module.path, &v1_err.to_string()));
    }
    engine.set_rego_v0(true);
    let v0 = engine.add_policy(module.path.clone(), module.source.clone());
    engine.set_rego_v0(false);
    match v0 {
        Ok(package) => Ok(package),
        Err(v0_err) => {
            let v1_text = v1_err.to_string();
            // A module that only fails v1 for want of `if` is older Rego with
            // a real error: report what the older parser said.
            if v1_text.contains("`if` keyword is required")
                || v1_text.contains("`contains` keyword is required")
            {
                Err(rego_error(&module.path, &v0_err.to_string()))
            } else {
                Err(rego_error(&module.path, &v1_text))
            }
        }
    }
}

/// Turns a regorus report ("--> file:line:col ... error: message") into a
/// positioned error.
pub fn rego_error(path: &str, text: &str) -> CompileError {
    let mut line = 0;
    let mut column = 0;
    if let Some(loc) = text.lines().find_map(|l| l.trim().strip_prefix("--> ")) {
        let mut parts = loc.rsplitn(3, ':');
        column = parts
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(0);
        line = parts
            .next()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
    }
    let message = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or_else(|| text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text))
        .trim()
        .to_string();
    CompileError::Rego {
        path: path.to_string(),
        line,
        column,
        message,
        detail: text.trim().to_string(),
    }
}

/// Finds the `test_*` rules a test module defines.
fn find_tests(module: &ModuleFile, package: &str) -> Vec<TestCase> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (i, line) in module.source.lines().enumerate() {
        let Some(rest) = line.strip_prefix("test_") else {
            continue;
        };
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = format!("test_{}", &rest[..name_len]);
        if seen.insert(name.clone()) {
            out.push(TestCase {
                rule: format!("{package}.{name}"),
                path: module.path.clone(),
                line: i + 1,
            });
        }
    }
    out
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
            "package validate.x\nimport rego.v1\nviolation contains v if { v := 1 / 0 }\n",
        )])
        .unwrap_err();
        assert!(err.to_string().contains("warm-up"), "{err}");
    }

    #[test]
    fn finds_test_rules_with_lines() {
        let m = ModuleFile {
            path: "a_test.rego".into(),
            source: "package a\n\ntest_one if true\n\ntest_two if {\n true\n}\ntest_one if false\n"
                .into(),
            restricted: false,
        };
        let t = find_tests(&m, "data.a");
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].rule, "data.a.test_one");
        assert_eq!(t[1].line, 5);
    }
}
