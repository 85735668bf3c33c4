//! The Rego runtime: regorus wrapped once, knowing nothing about policies.
//!
//! Everything Regent evaluates goes through here, whatever kind of policy it
//! is (native `validate.*`/`mutate.*` packages, Gatekeeper templates):
//! - compiling a module with its positions kept, in modern Rego or the older
//!   syntax ([`add_module`], [`RegoError`]);
//! - the limits every evaluation runs under, time and memory ([`limits`]);
//! - a [`Program`]: a prepared engine plus, when it decides sample inputs
//!   exactly as the interpreter does, the same entry rules compiled for
//!   regorus's bytecode VM ([`vm`]);
//! - evaluation errors ([`RunError`]); a panic inside regorus becomes one;
//! - Regent's own builtins, for the workload library ([`builtins`]).
//!
//! A program is prepared once, off the request path; an evaluation clones
//! nothing but the engine's shared handles, takes no lock and does no I/O.

pub mod builtins;
pub mod check;
pub mod limits;
pub mod vm;

pub use limits::{arm_timer, run_error, Budget, Limits, RunError, TIMER_CHECK_INTERVAL};

use std::sync::Arc;

use regorus::{Engine, Value};

/// A Rego module that does not parse or compile, with its position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct RegoError {
    /// The module (bundle path, ConfigMap key, or a template field).
    pub path: String,
    /// 1-based line (0 when regorus gave none).
    pub line: usize,
    /// 1-based column (0 when regorus gave none).
    pub column: usize,
    /// The first line of the error.
    pub message: String,
    /// The full report, with the source excerpt.
    pub detail: String,
}

/// The syntax a module is read in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// Modern Rego (Rego v1).
    V1,
    /// The older syntax (Rego v0).
    V0,
    /// Modern Rego if the module parses so, else the older syntax.
    Detect,
}

/// A fresh engine with the semantics every Regent evaluation runs under.
///
/// Builtin errors (`lower(null)`, `to_number("abc")`, `1/0`, a `sprintf`
/// argument that is not an array) make the expression undefined, as in OPA
/// by default and in Gatekeeper, which does not turn OPA's strict builtin
/// errors on. regorus's interpreter is strict unless told otherwise while its
/// bytecode VM is not: without this one place the same policy decided
/// differently on the two evaluators. Resource limits stay errors on both.
///
/// Regent's own builtins ([`builtins`]) are registered with regorus before
/// the first engine exists.
pub fn new_engine() -> Engine {
    if let Err(e) = builtins::register() {
        // Only possible if regorus's builtin table was built before this
        // first engine: the library's calls then fail to compile and say so.
        tracing::error!(error = %e, "regent's builtins are not registered");
    }
    let mut engine = Engine::new();
    engine.set_strict_builtin_errors(false);
    engine
}

/// Adds a module to `engine` and returns its package (`data.x.y`).
pub fn add_module(
    engine: &mut Engine,
    path: &str,
    source: &str,
    syntax: Syntax,
) -> Result<String, RegoError> {
    let mut add = |v0: bool| {
        engine.set_rego_v0(v0);
        let added = engine.add_policy(path.to_string(), source.to_string());
        engine.set_rego_v0(false);
        added
    };
    match syntax {
        Syntax::V1 => add(false).map_err(|e| rego_error(path, &e.to_string())),
        Syntax::V0 => add(true).map_err(|e| rego_error(path, &e.to_string())),
        Syntax::Detect => {
            let v1_err = match add(false) {
                Ok(package) => return Ok(package),
                Err(e) => e,
            };
            if source.contains("import rego.v1") {
                return Err(rego_error(path, &v1_err.to_string()));
            }
            match add(true) {
                Ok(package) => Ok(package),
                Err(v0_err) => {
                    let v1_text = v1_err.to_string();
                    // A module that only fails v1 for want of `if` is older
                    // Rego with a real error: report what the older parser said.
                    if v1_text.contains("`if` keyword is required")
                        || v1_text.contains("`contains` keyword is required")
                    {
                        Err(rego_error(path, &v0_err.to_string()))
                    } else {
                        Err(rego_error(path, &v1_text))
                    }
                }
            }
        }
    }
}

/// Turns a regorus report ("--> file:line:col ... error: message") into a
/// positioned error.
pub fn rego_error(path: &str, text: &str) -> RegoError {
    let mut line = 0;
    let mut column = 0;
    let mut message = None;
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
    } else if let Some((at, rest)) = text.lines().find_map(|l| l.split_once(" error: ")) {
        // The short form: "file:line:col error: message".
        let mut parts = at.trim().rsplitn(3, ':');
        let col = parts.next().and_then(|c| c.parse().ok());
        let ln = parts.next().and_then(|l| l.parse().ok());
        if let (Some(ln), Some(col)) = (ln, col) {
            line = ln;
            column = col;
            message = Some(rest.trim().to_string());
        }
    }
    let message = message.unwrap_or_else(|| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or_else(|| text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text))
            .trim()
            .to_string()
    });
    RegoError {
        path: path.to_string(),
        line,
        column,
        message,
        detail: text.trim().to_string(),
    }
}

/// Which evaluator serves a program.
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

/// Why a program stays on the interpreter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BytecodeRefused {
    /// An entry rule did not compile to bytecode (a construct the VM lacks).
    #[error("bytecode compilation failed: {0}")]
    Compile(String),
    /// The VM and the interpreter decided a sample input differently.
    #[error("the bytecode VM and the interpreter disagree on a sample input for {entry}")]
    Disagree {
        /// The entry rule.
        entry: String,
    },
}

/// A prepared engine and, when it proved itself, its entry rules in bytecode.
#[derive(Clone)]
pub struct Program {
    engine: Engine,
    bytecode: Option<Arc<vm::Bytecode>>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Program")
            .field("evaluator", &self.evaluator())
            .finish_non_exhaustive()
    }
}

impl Program {
    /// A program evaluated by the interpreter.
    pub fn new(engine: Engine) -> Self {
        Self {
            engine,
            bytecode: None,
        }
    }

    /// The engine (for test rules and queries outside the entry rules).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Which evaluator serves the entry rules.
    pub fn evaluator(&self) -> Evaluator {
        if self.bytecode.is_some() {
            Evaluator::Vm
        } else {
            Evaluator::Interpreter
        }
    }

    /// Evaluates `entry` on the engine itself (not a clone), within
    /// `limits`, so that its analysis is done once, before the program serves.
    pub fn warm(&mut self, entry: &str, input: Value, limits: Limits) -> Result<Value, RunError> {
        let budget = limits.start();
        self.engine.set_input(input);
        let result = arm_timer(&mut self.engine, budget.deadline).and_then(|limit| {
            budget.run(|| {
                self.engine
                    .eval_rule(entry.to_string())
                    .map_err(|e| run_error(e.to_string(), limit, budget.memory))
            })
        });
        self.engine.set_input(Value::Undefined);
        self.engine.clear_execution_timer_config();
        result
    }

    /// Compiles `entries` to bytecode and keeps them only if the VM decides
    /// every sample input exactly as the interpreter does; each of those
    /// evaluations runs within `limits`.
    pub fn compile_bytecode(
        &mut self,
        entries: &[&str],
        samples: &[Value],
        limits: Limits,
    ) -> Result<(), BytecodeRefused> {
        let bytecode =
            vm::Bytecode::compile(&self.engine, entries).map_err(BytecodeRefused::Compile)?;
        for sample in samples {
            for entry in entries {
                let interpreted = self.eval_interpreted(entry, sample.clone(), limits.start());
                let compiled = bytecode.run(entry, sample.clone(), limits.start());
                if interpreted.as_ref().ok() != compiled.as_ref().ok() {
                    return Err(BytecodeRefused::Disagree {
                        entry: (*entry).to_string(),
                    });
                }
            }
        }
        self.bytecode = Some(Arc::new(bytecode));
        Ok(())
    }

    /// Evaluates an entry rule for `input` within `budget`: on the VM when
    /// the entry is in bytecode, else on a clone of the prepared engine. A
    /// panic inside regorus is an error, not a lost thread.
    pub fn eval(&self, entry: &str, input: Value, budget: Budget) -> Result<Value, RunError> {
        let evaluated = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            match self.bytecode.as_ref().filter(|b| b.has(entry)) {
                Some(bytecode) => bytecode.run(entry, input, budget),
                None => self.eval_interpreted(entry, input, budget),
            }
        }));
        match evaluated {
            Ok(result) => result,
            Err(_) => {
                // The thread's prepared VMs may be mid-run: drop them.
                vm::forget_thread_vms();
                Err(RunError::Failed("the policy engine panicked".to_string()))
            }
        }
    }

    /// Evaluates an entry rule on the interpreter, whatever serves it.
    pub fn eval_interpreted(
        &self,
        entry: &str,
        input: Value,
        budget: Budget,
    ) -> Result<Value, RunError> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        let limit = arm_timer(&mut engine, budget.deadline)?;
        budget.run(|| {
            engine
                .eval_rule(entry.to_string())
                .map_err(|e| run_error(e.to_string(), limit, budget.memory))
        })
    }

    /// Evaluates any rule of the program (a test rule, one policy's rule) on
    /// the interpreter, within `budget`.
    pub fn eval_rule(&self, rule: &str, input: Value, budget: Budget) -> Result<Value, RunError> {
        self.eval_interpreted(rule, input, budget)
    }

    /// [`Program::eval_rule`], keeping what `print` wrote (each line
    /// `file:line: text`) instead of sending it to standard error.
    pub fn eval_rule_printing(
        &self,
        rule: &str,
        input: Value,
        budget: Budget,
    ) -> (Result<Value, RunError>, Vec<String>) {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        engine.set_gather_prints(true);
        let result = arm_timer(&mut engine, budget.deadline).and_then(|limit| {
            budget.run(|| {
                engine
                    .eval_rule(rule.to_string())
                    .map_err(|e| run_error(e.to_string(), limit, budget.memory))
            })
        });
        let prints = engine.take_prints().unwrap_or_default();
        (result, prints)
    }

    /// A copy of this program on the interpreter with one more module (in
    /// modern Rego when `v1`, else the older syntax); `None` when it does
    /// not compile. For probes outside the request path (`regent test`).
    pub fn with_module(&self, path: &str, source: &str, v1: bool) -> Option<Program> {
        let mut engine = self.engine.clone();
        let syntax = if v1 { Syntax::V1 } else { Syntax::V0 };
        add_module(&mut engine, path, source, syntax).ok()?;
        Some(Program::new(engine))
    }
}

/// The text of a string value; `None` for anything else. Unlike regorus's
/// `as_string`, it builds no error: an absent field is the common case on
/// the request path, and an `anyhow` error allocates and, when
/// `RUST_BACKTRACE` is set, captures a backtrace.
pub fn text(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// An object value built from pairs.
pub fn object_of(pairs: &[(&str, Value)]) -> Value {
    let mut v = Value::new_object();
    if let Ok(map) = v.as_object_mut() {
        for (k, value) in pairs {
            map.insert(Value::from(*k), value.clone());
        }
    }
    v
}

#[cfg(test)]
mod tests;
