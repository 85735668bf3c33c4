//! regorus's two evaluators, side by side. Regent keeps a program on the
//! bytecode VM only when the VM decides its warm-up reviews as the
//! interpreter does; a difference the warm-up does not meet would decide
//! requests differently from OPA. These tests look for such differences:
//!
//! - every ConstraintTemplate found (this directory's `evaluators/` and
//!   `fixtures/manifests/`, and `REGENT_EVALUATOR_CORPUS` when set) that
//!   Regent runs on the VM, under each of its Constraints' parameters and
//!   none, on every object found and variants of it with container and pod
//!   fields removed, as a CREATE and as an UPDATE: the VM and the
//!   interpreter must agree;
//! - the embedded default bundle, through admission (mutate, then
//!   validate), compiled for the VM and for the interpreter only: the same
//!   admissions for every object.
//!
//! - small programs over the language (`evaluators/language.yaml`: every
//!   rule of each, on every input there): the VM and the interpreter must
//!   agree, or the VM compiler must refuse the program, or (for a rule
//!   listed as such) the check at load must refuse the VM.
//!
//! `evaluators/constructs.yaml` holds the constructs of
//! `vendor/REGENT-PATCHES.md` 11–16, with the violations they must
//! give. To run the comparison on the whole gatekeeper-library (kept
//! outside the repository; that is how patches 12–14 were found):
//!
//! ```sh
//! REGENT_EVALUATOR_CORPUS=/path/to/gatekeeper-library cargo test --release --test evaluators -- --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use regent_core::bundle::BundleFiles;
use regent_core::compose::decision::{admit, empty_inventory, DecideOptions};
use regent_core::compose::CompiledBundle;
use regent_core::gatekeeper::template::{self, Compiled, Rewrite, Template, INVENTORY_KEY};
use regent_core::native::CompileOptions;
use regent_core::objects::{split_documents, ObjectDoc};
use regent_core::runtime::limits::{Budget, Limits};
use regent_core::runtime::{add_module, new_engine, Evaluator, Program, Syntax};
use regorus::Value;
use serde_json::{json, Value as Json};

/// Templates (with their Constraints' parameters) and objects read from
/// the corpus directories.
struct Corpus {
    templates: Vec<(PathBuf, Template, Vec<Json>)>,
    /// The templates whose rules were specialized at load, compiled as
    /// written, by their index in `templates` (the corpus may hold several
    /// versions of one template).
    as_written: BTreeMap<usize, Template>,
    objects: Vec<Json>,
}

fn directories() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![
        root.join("tests/evaluators"),
        root.join("tests/fixtures/manifests"),
    ];
    if let Ok(extra) = std::env::var("REGENT_EVALUATOR_CORPUS") {
        dirs.push(PathBuf::from(extra));
    }
    dirs
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

fn read_corpus() -> Corpus {
    let mut templates = Vec::new();
    let mut as_written = BTreeMap::new();
    let mut parameters: BTreeMap<String, Vec<Json>> = BTreeMap::new();
    let mut objects = Vec::new();
    let mut files = Vec::new();
    for dir in directories() {
        yaml_files(&dir, &mut files);
    }
    for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (line, doc) in split_documents(&text) {
            let Ok(value) = serde_yaml_ng::from_str::<Json>(&doc) else {
                continue;
            };
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            let api_version = value["apiVersion"].as_str().unwrap_or_default();
            if kind.is_empty() || !value["metadata"].is_object() {
                continue;
            }
            if kind == "ConstraintTemplate" {
                let doc = ObjectDoc {
                    path: path.display().to_string(),
                    line,
                    text: doc.clone(),
                    value,
                };
                // Templates that do not load (fixtures of errors) are
                // another test's business.
                if let Ok(Compiled::Rego(t, _)) = template::compile(&doc, Limits::default()) {
                    if !t.specialized.is_empty() {
                        if let Ok(Compiled::Rego(w, _)) =
                            template::compile_as(&doc, Limits::default(), Rewrite::AsWritten)
                        {
                            as_written.insert(templates.len(), *w);
                        }
                    }
                    templates.push((path.clone(), *t, Vec::new()));
                }
            } else if api_version.starts_with("constraints.gatekeeper.sh/") {
                let p = value["spec"]["parameters"].clone();
                parameters
                    .entry(kind)
                    .or_default()
                    .push(if p.is_object() { p } else { json!({}) });
            } else if !api_version.contains("gatekeeper.sh") && kind != "Suite" {
                objects.extend(variants(&value));
            }
        }
    }
    for (_, template, params) in &mut templates {
        *params = parameters.remove(&template.kind).unwrap_or_default();
        params.push(json!({}));
        let values: Vec<Value> = params.iter().map(to_value).collect();
        template.prefer_bytecode(&values, Limits::default());
    }
    Corpus {
        templates,
        as_written,
        objects,
    }
}

fn to_value(json: &Json) -> Value {
    Value::from_json_str(&json.to_string()).unwrap()
}

/// The pod specs of a workload (a Pod's, a template's, a CronJob's).
fn pod_specs(object: &mut Json) -> Vec<&mut Json> {
    let Some(spec) = object.get_mut("spec") else {
        return Vec::new();
    };
    if spec.get("containers").is_some() {
        return vec![spec];
    }
    let path: &[&str] = if spec.get("jobTemplate").is_some() {
        &["jobTemplate", "spec", "template", "spec"]
    } else {
        &["template", "spec"]
    };
    let mut at = Some(spec);
    for key in path {
        at = at.and_then(|v| v.get_mut(*key));
    }
    at.into_iter().collect()
}

/// The object, and copies with one container field, one pod field or the
/// labels and annotations removed: where policies meet undefined values.
fn variants(object: &Json) -> Vec<Json> {
    let mut out = vec![object.clone()];
    let container_fields = [
        "securityContext",
        "resources",
        "image",
        "ports",
        "volumeMounts",
    ];
    let pod_fields = [
        "securityContext",
        "volumes",
        "hostNetwork",
        "serviceAccountName",
    ];
    for field in container_fields {
        let mut v = object.clone();
        let mut changed = false;
        for spec in pod_specs(&mut v) {
            for key in ["containers", "initContainers", "ephemeralContainers"] {
                // `get_mut`, not `spec[key]`: indexing would add `key: null`.
                for c in spec
                    .get_mut(key)
                    .and_then(Json::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    changed |= c.as_object_mut().and_then(|c| c.remove(field)).is_some();
                }
            }
        }
        if changed {
            out.push(v);
        }
    }
    for field in pod_fields {
        let mut v = object.clone();
        let mut changed = false;
        for spec in pod_specs(&mut v) {
            changed |= spec.as_object_mut().and_then(|s| s.remove(field)).is_some();
        }
        if changed {
            out.push(v);
        }
    }
    let mut v = object.clone();
    if let Some(meta) = v["metadata"].as_object_mut() {
        let labels = meta.remove("labels").is_some();
        let annotations = meta.remove("annotations").is_some();
        if labels || annotations {
            out.push(v);
        }
    }
    out
}

/// The AdmissionReview request the API server would send for `object`.
fn request(object: &Json, operation: &str) -> Json {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    json!({
        "uid": "00000000-0000-0000-0000-000000000001",
        "operation": operation,
        "kind": {"group": group, "version": version, "kind": object["kind"]},
        "name": object["metadata"]["name"],
        "namespace": object["metadata"]["namespace"],
        "userInfo": {"username": "corpus", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": if operation == "UPDATE" { object.clone() } else { json!(null) },
    })
}

fn template_input(object: &Json, operation: &str, parameters: &Json) -> Value {
    to_value(&json!({
        "review": request(object, operation),
        "parameters": parameters,
        INVENTORY_KEY: {},
    }))
}

fn messages(violations: &[Value]) -> Vec<String> {
    let mut m: Vec<String> = violations
        .iter()
        .filter_map(|v| v["msg"].as_string().ok().map(|s| s.to_string()))
        .collect();
    m.sort();
    m
}

#[test]
fn templates_on_the_vm_decide_as_the_interpreter_does() {
    let corpus = read_corpus();
    let on_vm: Vec<_> = corpus
        .templates
        .iter()
        .filter(|(_, t, _)| t.evaluator() == Evaluator::Vm)
        .map(|(path, t, params)| (path, t, t, params))
        .collect();
    let evaluations = compare_on_corpus(&corpus, &on_vm, ("VM", "interpreter"));
    println!(
        "{evaluations} evaluations of {} templates on the VM, {} objects: VM and interpreter agree",
        on_vm.len(),
        corpus.objects.len()
    );
}

/// Rule specialization (`core/src/gatekeeper/specialize.rs`) must not change a
/// decision: each specialized template, on the evaluator it runs on,
/// against the same template as written on the interpreter.
#[test]
fn specialized_templates_decide_as_written() {
    let corpus = read_corpus();
    let specialized: Vec<_> = corpus
        .templates
        .iter()
        .enumerate()
        .filter_map(|(i, (path, t, params))| {
            corpus.as_written.get(&i).map(|w| (path, t, w, params))
        })
        .collect();
    let evaluations = compare_on_corpus(&corpus, &specialized, ("specialized", "as written"));
    println!(
        "{evaluations} evaluations of {} specialized templates: as written",
        specialized.len()
    );
}

/// Each `(path, left, right, parameters)`: `left` on its evaluator and
/// `right` on the interpreter, under each parameter set, on every object of
/// the corpus as a CREATE and an UPDATE; panics listing the first
/// differences, else returns how many evaluations were compared.
fn compare_on_corpus(
    corpus: &Corpus,
    pairs: &[(&PathBuf, &Template, &Template, &Vec<Json>)],
    labels: (&str, &str),
) -> usize {
    let mut evaluations = 0usize;
    let mut differences = Vec::new();
    for (path, left, right, params) in pairs {
        for parameters in params.iter() {
            for object in &corpus.objects {
                for operation in ["CREATE", "UPDATE"] {
                    let input = template_input(object, operation, parameters);
                    let l = left.evaluate(input.clone(), Budget::UNLIMITED).ok();
                    let r = right.evaluate_interpreted(input, Budget::UNLIMITED).ok();
                    evaluations += 1;
                    if l != r {
                        differences.push(format!(
                            "{} ({}) {operation} {}/{} parameters {parameters}: {} {:?}, {} {:?}",
                            left.name,
                            path.display(),
                            object["kind"],
                            object["metadata"]["name"],
                            labels.0,
                            l.as_deref().map(messages),
                            labels.1,
                            r.as_deref().map(messages),
                        ));
                    }
                }
            }
        }
    }
    assert!(
        !pairs.is_empty() && evaluations > 0,
        "nothing compared ({} / {})",
        labels.0,
        labels.1
    );
    assert!(
        differences.is_empty(),
        "{} of {evaluations} evaluations differ:\n{}",
        differences.len(),
        differences
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    evaluations
}

#[test]
fn the_fixed_constructs_run_on_the_vm_and_decide_as_opa() {
    let corpus = read_corpus();
    let (_, constructs, _) = corpus
        .templates
        .iter()
        .find(|(_, t, _)| t.kind == "K8sEvaluatorConstructs")
        .expect("tests/evaluators/constructs.yaml");
    // Before patch 11 the warm-up Pod (no `tier` label) already made the two
    // evaluators differ, and the template stayed on the interpreter.
    assert_eq!(constructs.evaluator(), Evaluator::Vm);
    let object = |name: &str| {
        corpus
            .objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap()
            .clone()
    };
    let parameters = json!({"modes": ["other"]});
    let decide = |name: &str| {
        let input = template_input(&object(name), "CREATE", &parameters);
        let vm = constructs.evaluate(input.clone(), Budget::UNLIMITED);
        let interpreted = constructs.evaluate_interpreted(input, Budget::UNLIMITED);
        (vm.map(|v| messages(&v)), interpreted.map(|v| messages(&v)))
    };
    let decides = |name: &str, expected: &[&str]| {
        let (vm, interpreted) = decide(name);
        assert_eq!(vm.unwrap(), expected, "{name} on the VM");
        assert_eq!(interpreted.unwrap(), expected, "{name} on the interpreter");
    };
    let fails = |name: &str, any_of: &[&str]| {
        let (vm, interpreted) = decide(name);
        for result in [vm, interpreted] {
            let error = result.expect_err(name).to_string();
            assert!(any_of.iter().any(|n| error.contains(n)), "{name}: {error}");
        }
    };
    decides(
        "plain",
        &[
            "runs as admin",
            "size plain",
            "strict without a listed mode",
            "tier label not allowed",
        ],
    );
    // Patch 14: the Deployment's service account is found by the second body.
    decides(
        "admin-deployment",
        &["runs as admin", "strict without a listed mode"],
    );
    // Builtin errors are undefined on both (`lower(null)`).
    decides("null-proc-mount", &["proc mount of nullable", "size plain"]);
    // Patch 15: a container and an ephemeral container sharing a name
    // give `by_name` two values for one key: an error on both.
    fails("shared-name", &["must be unique", "conflicts with"]);
    // Patch 12: two answers for one container are an error on both.
    fails("conflicting", &["multiple outputs", "conflict"]);
}

#[test]
fn the_default_bundle_decides_alike_on_both_evaluators() {
    let corpus = read_corpus();
    let files = BundleFiles::embedded().expect("the embedded bundle");
    let compile = |interpreter_only| {
        CompiledBundle::compile(
            &files,
            CompileOptions {
                include_tests: false,
                interpreter_only,
                limits: Limits::default(),
            },
        )
        .expect("the default bundle compiles")
    };
    let (vm, interpreter) = (compile(false), compile(true));
    assert_eq!(vm.evaluator(), Evaluator::Vm);
    assert_eq!(interpreter.evaluator(), Evaluator::Interpreter);
    let options = DecideOptions::default();
    let inventory = empty_inventory();
    let mut decisions = 0usize;
    let mut differences = Vec::new();
    for object in &corpus.objects {
        for operation in ["CREATE", "UPDATE"] {
            let body = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": request(object, operation),
            })
            .to_string();
            let Ok(review) = regent_core::review::parse(body.as_bytes()) else {
                continue; // not a review the API server would send (no name, ...)
            };
            let on_vm = format!("{:?}", admit(&vm, &review, &options, &inventory));
            let interpreted = format!("{:?}", admit(&interpreter, &review, &options, &inventory));
            decisions += 1;
            if on_vm != interpreted {
                differences.push(format!(
                    "{operation} {}/{}:\n  VM          {on_vm}\n  interpreter {interpreted}",
                    object["kind"], object["metadata"]["name"]
                ));
            }
        }
    }
    assert!(decisions > 0, "the corpus held no object");
    assert!(
        differences.is_empty(),
        "{} of {decisions} admissions differ:\n{}",
        differences.len(),
        differences
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!("{decisions} admissions through the default bundle, alike on both evaluators");
}

/// The rules a program defines (functions and `default`/`else` lines aside).
fn rule_names(source: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in source.lines() {
        let name: String = line
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = &line[name.len()..];
        if name.is_empty()
            || rest.starts_with('(')
            || ["default", "else", "import", "package"].contains(&name.as_str())
            || names.contains(&name)
        {
            continue;
        }
        names.push(name);
    }
    names
}

#[test]
fn language_constructs_decide_alike_on_both_evaluators() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/evaluators/language.yaml"),
    )
    .unwrap();
    let spec: Json = serde_yaml_ng::from_str(&text).unwrap();
    let inputs: Vec<Value> = spec["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(to_value)
        .collect();
    let refused_at_load: Vec<&str> = spec["vm_refused_at_load"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Json::as_str)
        .collect();
    let (mut compared, mut not_compiled, mut differences) = (0usize, Vec::new(), Vec::new());
    let show = |r: &Result<Value, regent_core::runtime::RunError>| match r {
        Ok(v) => v.to_string(),
        Err(e) => format!(
            "error: {}",
            e.to_string().lines().last().unwrap_or_default()
        ),
    };
    for (name, program) in spec["programs"].as_object().unwrap() {
        let program = program.as_str().unwrap();
        let source = if program.starts_with("package") {
            program.to_string()
        } else {
            format!("package p\nimport rego.v1\n{program}")
        };
        for rule in rule_names(program) {
            let label = format!("{name}.{rule}");
            let entry = format!("data.p.{rule}");
            let mut engine = new_engine();
            add_module(&mut engine, "p.rego", &source, Syntax::Detect)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut program = Program::new(engine);
            if refused_at_load.contains(&label.as_str()) {
                assert!(
                    program
                        .compile_bytecode(&[entry.as_str()], &inputs, Limits::default())
                        .is_err(),
                    "{label}: the check at load kept the VM"
                );
                continue;
            }
            if program
                .compile_bytecode(&[entry.as_str()], &[], Limits::default())
                .is_err()
            {
                not_compiled.push(label);
                continue;
            }
            for input in &inputs {
                let vm = program.eval(&entry, input.clone(), Budget::UNLIMITED);
                let interpreted =
                    program.eval_interpreted(&entry, input.clone(), Budget::UNLIMITED);
                compared += 1;
                let alike = match (&vm, &interpreted) {
                    (Ok(a), Ok(b)) => a == b,
                    (Err(_), Err(_)) => true,
                    _ => false,
                };
                if !alike {
                    differences.push(format!(
                        "{label} on {input}:\n  VM          {}\n  interpreter {}",
                        show(&vm),
                        show(&interpreted)
                    ));
                }
            }
        }
    }
    assert!(compared > 500, "only {compared} evaluations compared");
    assert!(
        differences.is_empty(),
        "{} of {compared} evaluations differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
    println!(
        "{compared} evaluations alike; not compiled for the VM (run on the interpreter): {}",
        not_compiled.join(", ")
    );
}
