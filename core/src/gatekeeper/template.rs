//! ConstraintTemplates: each compiled into a program of its own (Gatekeeper
//! isolates templates, so two may both define `lib.helpers`), with OPA's
//! deprecated builtins for templates in the older syntax, and evaluated for
//! one input at a time.
//!
//! The Rego comes from `spec.targets[].rego` + `libs`, or from the `code[]`
//! entry with `engine: Rego` (`source.version: v1` means Rego v1; anything
//! else is the older syntax). A template with only CEL code is not an error:
//! it is reported as not enforced.

use regorus::{Engine, Value};
use serde_json::Value as Json;

use super::object::{invalid, name_of, strings, GatekeeperError};
use crate::objects::ObjectDoc;
use crate::runtime::{self, object_of, Budget, Limits, Program, RunError, Syntax};

/// The only target Regent runs: Kubernetes admission.
pub const TARGET: &str = "admission.k8s.gatekeeper.sh";

/// The rule of the generated module each template program evaluates.
const ENTRY: &str = "data.regent.gatekeeper.violation";
/// Where the inventory travels in `input` (it is handed to the template as
/// `data.inventory` with a `with` modifier, so one prepared engine serves
/// every inventory).
pub const INVENTORY_KEY: &str = "__regent_inventory";

/// A compiled ConstraintTemplate.
#[derive(Debug, Clone)]
pub struct Template {
    /// `metadata.name`.
    pub name: String,
    /// The Constraint kind it defines.
    pub kind: String,
    /// Why audit cannot judge objects at rest with it, if it cannot (its
    /// Rego reads `userInfo` or `oldObject`).
    pub audit_skip: Option<String>,
    /// The rules specialized at load (see [`super::specialize`]), each with
    /// the field bindings of its copies; empty if none was.
    pub specialized: Vec<String>,
    program: Program,
}

/// What loading a template gave.
pub enum Compiled {
    /// A Rego template, and its parameter schema.
    Rego(Box<Template>, Option<Json>),
    /// A template Regent cannot run (CEL only), and why.
    Unsupported {
        /// The kind it defines.
        kind: String,
        /// Why it is not enforced.
        why: String,
    },
}

/// Where a template's Rego comes from.
#[derive(Clone)]
struct RegoSource {
    field: String,
    rego: String,
    libs: Vec<String>,
    v1: bool,
}

impl Template {
    /// Evaluates the template's `violation` set for one input.
    pub fn evaluate(&self, input: Value, budget: Budget) -> Result<Vec<Value>, RunError> {
        self.violations(self.program.eval(ENTRY, input, budget))
    }

    /// The same evaluation on regorus's interpreter, whichever evaluator
    /// the template runs on: to compare the two (`tests/evaluators.rs`).
    pub fn evaluate_interpreted(
        &self,
        input: Value,
        budget: Budget,
    ) -> Result<Vec<Value>, RunError> {
        self.violations(self.program.eval_interpreted(ENTRY, input, budget))
    }

    fn violations(&self, evaluated: Result<Value, RunError>) -> Result<Vec<Value>, RunError> {
        let value = evaluated.map_err(|e| match e {
            RunError::Failed(text) => RunError::Failed(format!("template {}: {text}", self.name)),
            other => other,
        })?;
        Ok(match value {
            Value::Set(s) => s.iter().cloned().collect(),
            Value::Array(a) => a.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }
}

/// Whether [`compile_as`] may rewrite a template's rules for speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Specialize partial set rules the template reads with a key field
    /// fixed (see [`super::specialize`]); the template as written if the
    /// rewrite does not compile.
    Specialize,
    /// The template exactly as written (to compare with).
    AsWritten,
}

/// Compiles a ConstraintTemplate document; its warm-up evaluation runs
/// within `limits`.
pub fn compile(doc: &ObjectDoc, limits: Limits) -> Result<Compiled, GatekeeperError> {
    compile_as(doc, limits, Rewrite::Specialize)
}

/// [`compile`], choosing whether rules may be specialized.
pub fn compile_as(
    doc: &ObjectDoc,
    limits: Limits,
    rewrite: Rewrite,
) -> Result<Compiled, GatekeeperError> {
    let v = &doc.value;
    let name = name_of(doc)?;
    let kind = v["spec"]["crd"]["spec"]["names"]["kind"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| invalid(doc, "spec.crd.spec.names.kind is missing"))?
        .to_string();
    if kind.to_lowercase() != name {
        return Err(invalid(
            doc,
            format!(
                "metadata.name must be the lower-case kind ({}), as Gatekeeper requires",
                kind.to_lowercase()
            ),
        ));
    }
    let schema = v["spec"]["crd"]["spec"]["validation"]["openAPIV3Schema"].clone();
    let schema = schema.is_object().then_some(schema);
    let targets = v["spec"]["targets"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some((ti, target)) = targets
        .iter()
        .enumerate()
        .find(|(_, t)| t["target"].as_str() == Some(TARGET))
    else {
        return Err(invalid(
            doc,
            format!("spec.targets has no entry for target {TARGET}"),
        ));
    };
    let code = target["code"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let source = if let Some((ci, c)) = code
        .iter()
        .enumerate()
        .find(|(_, c)| c["engine"].as_str() == Some("Rego"))
    {
        RegoSource {
            field: format!("spec.targets[{ti}].code[{ci}].source"),
            rego: c["source"]["rego"].as_str().unwrap_or_default().to_string(),
            libs: strings(&c["source"]["libs"]),
            v1: c["source"]["version"].as_str() == Some("v1"),
        }
    } else if let Some(rego) = target["rego"].as_str().filter(|r| !r.trim().is_empty()) {
        RegoSource {
            field: format!("spec.targets[{ti}]"),
            rego: rego.to_string(),
            libs: strings(&target["libs"]),
            v1: false,
        }
    } else if !code.is_empty() {
        let engines: Vec<&str> = code.iter().filter_map(|c| c["engine"].as_str()).collect();
        return Ok(Compiled::Unsupported {
            kind,
            why: format!(
                "has no Rego, only {} code; Regent runs Rego only, so this template and its Constraints are not enforced",
                engines.join(", ")
            ),
        });
    } else {
        return Err(invalid(
            doc,
            format!("spec.targets[{ti}] has no rego and no code"),
        ));
    };
    if source.rego.trim().is_empty() {
        return Err(invalid(doc, format!("{}.rego is empty", source.field)));
    }
    let written = Written {
        doc,
        name: &name,
        kind: &kind,
        limits,
    };
    if rewrite == Rewrite::Specialize {
        let libs: Vec<&str> = source.libs.iter().map(String::as_str).collect();
        if let Some(rewritten) = super::specialize::specialize(&source.rego, &libs, source.v1) {
            let specialized = RegoSource {
                rego: rewritten.source,
                ..source.clone()
            };
            match build(&written, &specialized) {
                Ok(mut template) => {
                    tracing::debug!(template = %name, copies = ?rewritten.copies, "rules specialized");
                    template.specialized = rewritten.copies;
                    return Ok(Compiled::Rego(template, schema));
                }
                Err(e) => {
                    tracing::debug!(template = %name, error = %e, "the specialized template does not compile; compiling it as written");
                }
            }
        }
    }
    Ok(Compiled::Rego(build(&written, &source)?, schema))
}

/// What [`build`] needs of the template besides its Rego.
struct Written<'a> {
    doc: &'a ObjectDoc,
    name: &'a String,
    kind: &'a String,
    limits: Limits,
}

/// Compiles a template's Rego into a program, warms it up and checks that
/// every function it calls exists.
fn build(written: &Written<'_>, source: &RegoSource) -> Result<Box<Template>, GatekeeperError> {
    let Written {
        doc,
        name,
        kind,
        limits,
    } = *written;
    let mut engine = runtime::new_engine();
    let syntax = if source.v1 { Syntax::V1 } else { Syntax::V0 };
    if !source.v1 {
        add_deprecated_builtins(&mut engine)
            .map_err(|e| invalid(doc, format!("registering OPA's deprecated builtins: {e}")))?;
    }
    let positioned = |e: runtime::RegoError, src: &str| GatekeeperError::Rego {
        path: doc.path.clone(),
        file_line: locate(doc, src, e.line),
        template: name.clone(),
        field: e.path,
        line: e.line,
        column: e.column,
        message: e.message,
        detail: e.detail,
    };
    let main_field = format!("{}.rego", source.field);
    let package = runtime::add_module(&mut engine, &main_field, &source.rego, syntax)
        .map_err(|e| positioned(e, &source.rego))?;
    for (i, lib) in source.libs.iter().enumerate() {
        let field = format!("{}.libs[{i}]", source.field);
        runtime::add_module(&mut engine, &field, lib, syntax).map_err(|e| positioned(e, lib))?;
    }
    if !crate::source::defines_rule(&source.rego, "violation") {
        return Err(invalid(
            doc,
            format!("{main_field} defines no `violation` rule in {package}"),
        ));
    }
    let uses_inventory = std::iter::once(&source.rego)
        .chain(source.libs.iter())
        .any(|s| s.contains("data.inventory"));
    let entry = if uses_inventory {
        format!(
            "package regent.gatekeeper\n\nviolation := v if {{\n  v := {package}.violation with data.inventory as input.{INVENTORY_KEY}\n}}\n"
        )
    } else {
        format!("package regent.gatekeeper\n\nviolation := {package}.violation\n")
    };
    let at_main = |text: String| positioned(runtime::rego_error(&main_field, &text), &source.rego);
    runtime::add_module(
        &mut engine,
        "regent/gatekeeper.rego (generated)",
        &entry,
        Syntax::V1,
    )
    .map_err(|e| at_main(e.detail))?;
    // Analysis (undefined functions, unsafe variables, ...) happens on the
    // first evaluation: do it now, so a broken template fails to load.
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| at_main(e.to_string()))?;
    let reach: String = std::iter::once(source.rego.as_str())
        .chain(source.libs.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n");
    let mut template = Template {
        name: name.clone(),
        kind: kind.clone(),
        audit_skip: crate::source::audit_skip_reason(&reach),
        specialized: Vec::new(),
        program: Program::new(engine),
    };
    // regorus resolves function names on first evaluation: a call to a
    // function that exists nowhere is a load error, not a request failure.
    match warm_up(&mut template, limits) {
        Ok(()) => {}
        // A template that cannot decide an ordinary Pod within the limits
        // would fail (or stall) every request it sees.
        Err(e) if e.is_limit() => {
            return Err(invalid(
                doc,
                format!("evaluating the template on an ordinary Pod: {e}; a template must decide it well within the evaluation limits (--eval-timeout, --eval-memory-limit)"),
            ))
        }
        Err(RunError::Failed(e)) if e.contains("could not find function") => {
            return Err(at_main(e));
        }
        Err(e) => {
            tracing::debug!(template = %template.name, error = %e, "template warm-up failed on a plain Pod");
        }
    }
    // The interpreter resolves a function when a call is reached; the
    // bytecode compiler resolves every call. A function that exists nowhere
    // is a load error even when an ordinary Pod does not reach the call.
    if let Err(text) = runtime::vm::Bytecode::compile(template.program.engine(), &[ENTRY]) {
        let unknown = text
            .split("Unknown function: '")
            .nth(1)
            .and_then(|rest| rest.split('\'').next());
        // The deprecated builtins are extensions, which the bytecode compiler
        // does not know either.
        if unknown.is_some_and(|f| !DEPRECATED_BUILTINS.contains(&f)) {
            let modules: Vec<(String, &str)> =
                std::iter::once((main_field.clone(), source.rego.as_str()))
                    .chain(
                        source
                            .libs
                            .iter()
                            .enumerate()
                            .map(|(i, lib)| (format!("{}.libs[{i}]", source.field), lib.as_str())),
                    )
                    .collect();
            let field = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("--> "))
                .and_then(|loc| loc.trim().rsplitn(3, ':').nth(2))
                .unwrap_or(&main_field)
                .to_string();
            let src = modules
                .iter()
                .find(|(f, _)| *f == field)
                .map(|(_, s)| *s)
                .unwrap_or(&source.rego);
            return Err(positioned(runtime::rego_error(&field, &text), src));
        }
    }
    Ok(Box::new(template))
}

thread_local! {
    /// `re_match` patterns compiled on this thread: a template calls it for
    /// every label of every request, and compiling costs far more than matching.
    static PATTERNS: std::cell::RefCell<std::collections::HashMap<String, regex::Regex>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// Patterns kept per thread (a bundle's templates have few).
const PATTERNS_PER_THREAD: usize = 256;

/// Whether `value` matches `pattern`, compiling it at most once per thread.
fn matches_cached(pattern: &str, value: &str) -> anyhow::Result<bool> {
    PATTERNS.with(|cell| {
        let Ok(mut patterns) = cell.try_borrow_mut() else {
            let re = regex::Regex::new(pattern).map_err(|e| anyhow::anyhow!("re_match: {e}"))?;
            return Ok(re.is_match(value));
        };
        if let Some(re) = patterns.get(pattern) {
            return Ok(re.is_match(value));
        }
        let re = regex::Regex::new(pattern).map_err(|e| anyhow::anyhow!("re_match: {e}"))?;
        let matched = re.is_match(value);
        if patterns.len() >= PATTERNS_PER_THREAD {
            patterns.clear();
        }
        patterns.insert(pattern.to_string(), re);
        Ok(matched)
    })
}

/// The names [`add_deprecated_builtins`] registers.
const DEPRECATED_BUILTINS: [&str; 6] = [
    "re_match",
    "any",
    "all",
    "set_diff",
    "cast_array",
    "cast_set",
];

/// OPA builtins that older Rego (and so much of Gatekeeper's) still calls
/// but regorus does not provide: `re_match` (now `regex.match`), `any`,
/// `all`, `set_diff`, `cast_array` and `cast_set`. Only v0 templates get them,
/// as only v0 OPA has them.
fn add_deprecated_builtins(engine: &mut Engine) -> Result<(), String> {
    fn items(v: &Value) -> Option<Vec<Value>> {
        match v {
            Value::Array(a) => Some(a.iter().cloned().collect()),
            Value::Set(s) => Some(s.iter().cloned().collect()),
            _ => None,
        }
    }
    let add = |engine: &mut Engine, name: &str, n: u8, f: Box<dyn regorus::Extension>| {
        engine
            .add_extension(name.to_string(), n, f)
            .map_err(|e| e.to_string())
    };
    add(
        engine,
        "re_match",
        2,
        Box::new(|args: Vec<Value>| {
            let (Some(Value::String(p)), Some(Value::String(v))) = (args.first(), args.get(1))
            else {
                return Ok(Value::Undefined);
            };
            Ok(Value::Bool(matches_cached(p, v)?))
        }),
    )?;
    add(
        engine,
        "any",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(match args.first().and_then(items) {
                Some(list) => Value::Bool(list.contains(&Value::Bool(true))),
                None => Value::Undefined,
            })
        }),
    )?;
    add(
        engine,
        "all",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(match args.first().and_then(items) {
                Some(list) => Value::Bool(list.iter().all(|x| *x == Value::Bool(true))),
                None => Value::Undefined,
            })
        }),
    )?;
    add(
        engine,
        "set_diff",
        2,
        Box::new(|args: Vec<Value>| {
            let (Some(Value::Set(a)), Some(Value::Set(b))) = (args.first(), args.get(1)) else {
                return Ok(Value::Undefined);
            };
            let diff: std::collections::BTreeSet<Value> =
                a.iter().filter(|x| !b.contains(x)).cloned().collect();
            Ok(Value::from(diff))
        }),
    )?;
    add(
        engine,
        "cast_array",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(args
                .first()
                .and_then(items)
                .map(Value::from)
                .unwrap_or(Value::Undefined))
        }),
    )?;
    add(
        engine,
        "cast_set",
        1,
        Box::new(|args: Vec<Value>| {
            Ok(args
                .first()
                .and_then(items)
                .map(|l| Value::from(l.into_iter().collect::<std::collections::BTreeSet<_>>()))
                .unwrap_or(Value::Undefined))
        }),
    )?;
    Ok(())
}

impl Template {
    /// Moves the template to the bytecode VM when the VM decides the
    /// warm-up reviews (an ordinary Pod's CREATE, and the UPDATE of a
    /// Deployment with fields missing and risky ones set), under each of
    /// `parameters` (its Constraints'), exactly as the interpreter does;
    /// otherwise it stays on the interpreter (logged). The two evaluators
    /// have differed on undefined values (`vendor/REGENT-PATCHES.md`
    /// 11–14), which the plain Pod alone does not exercise.
    pub fn prefer_bytecode(&mut self, parameters: &[Value], limits: Limits) {
        let reviews: Vec<Value> = crate::samples::WARMUP_REVIEWS
            .iter()
            .filter_map(|r| Value::from_json_str(r).ok())
            .collect();
        let empty = [Value::new_object()];
        let parameters = if parameters.is_empty() {
            &empty[..]
        } else {
            parameters
        };
        let samples: Vec<Value> = parameters
            .iter()
            .flat_map(|p| {
                reviews.iter().map(move |review| {
                    object_of(&[
                        ("review", review["request"].clone()),
                        ("parameters", p.clone()),
                        (INVENTORY_KEY, Value::new_object()),
                    ])
                })
            })
            .collect();
        if let Err(e) = self.program.compile_bytecode(&[ENTRY], &samples, limits) {
            tracing::debug!(template = %self.name, reason = %e, "template stays on the interpreter");
        }
    }

    /// Which evaluator runs the template.
    pub fn evaluator(&self) -> runtime::Evaluator {
        self.program.evaluator()
    }
}

/// Evaluates the template once on an ordinary Pod, so the first real
/// request pays no preparation. Errors here are not fatal: a template may
/// legitimately fail on a Pod it was not written for.
fn warm_up(template: &mut Template, limits: Limits) -> Result<(), RunError> {
    let review = Value::from_json_str(include_str!("../rego/warmup_review.json"))
        .map_err(|e| RunError::Failed(e.to_string()))?;
    let input = object_of(&[
        ("review", review["request"].clone()),
        ("parameters", Value::new_object()),
        (INVENTORY_KEY, Value::new_object()),
    ]);
    template.program.warm(ENTRY, input, limits).map(|_| ())
}

/// The line in the YAML file of line `line` of an embedded Rego source: the
/// first line of the source is found in the document's text.
fn locate(doc: &ObjectDoc, source: &str, line: usize) -> usize {
    let Some((offset, first)) = source
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())
    else {
        return 0;
    };
    let first = first.trim();
    let Some(found) = doc.text.lines().position(|l| l.trim() == first) else {
        return 0;
    };
    let line = line.max(1);
    doc.line + found + line.saturating_sub(1 + offset)
}
