//! regorus's two evaluators, side by side on a corpus: every template of a
//! corpus built by `benches/evaluator_corpus.py` (the gatekeeper-library's
//! templates, sample parameters and sample objects with fields removed),
//! each object reviewed as a CREATE and as an UPDATE, evaluated by the
//! interpreter and by the bytecode VM; any difference fails the test. The
//! embedded default bundle is taken through the same decision code as
//! admission (mutate, then validate) on both evaluators for every object.
//!
//! Regent keeps a program on the VM only when both agree on its warm-up
//! inputs, so a difference the warm-up does not meet would decide requests
//! differently from OPA. This is how patches 12–14 of
//! `vendor/regorus/REGENT-PATCHES.md` were found. The corpus is built from a
//! checkout kept outside the repository, so the test is ignored by default:
//!
//! ```sh
//! python3 benches/evaluator_corpus.py /path/to/gatekeeper-library /tmp/corpus.json
//! REGENT_EVALUATOR_CORPUS=/tmp/corpus.json cargo test --release --test evaluators -- --ignored
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use regent::bundle::BundleFiles;
use regent::compiled::CompiledBundle;
use regent::decision::{admit, empty_inventory, DecideOptions};
use regent::native::CompileOptions;
use regent::runtime::limits::{Budget, Limits};
use regent::runtime::vm::Bytecode;
use regent::runtime::{add_module, Evaluator, Syntax};
use regorus::{Engine, Value};
use serde_json::json;

fn corpus() -> serde_json::Value {
    let path = std::env::var("REGENT_EVALUATOR_CORPUS")
        .expect("set REGENT_EVALUATOR_CORPUS to a corpus built by benches/evaluator_corpus.py");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read the corpus"))
        .expect("the corpus is JSON")
}

/// The AdmissionReview request the API server would send for `object`.
fn request(object: &serde_json::Value, operation: &str) -> serde_json::Value {
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

#[test]
#[ignore = "needs REGENT_EVALUATOR_CORPUS (benches/evaluator_corpus.py)"]
fn interpreter_and_vm_agree_on_the_corpus() {
    let corpus = corpus();
    let objects = corpus["objects"].as_array().expect("objects");
    let mut evaluations = 0usize;
    let mut differences = Vec::new();
    for template in corpus["templates"].as_array().expect("templates") {
        let name = template["name"].as_str().unwrap_or("?");
        let rego = template["rego"].as_str().expect("rego");
        let package = rego
            .lines()
            .find_map(|l| l.trim().strip_prefix("package "))
            .expect("a package line")
            .trim();
        let entry = format!("data.{package}.violation");
        let mut engine = Engine::new();
        add_module(&mut engine, "template.rego", rego, Syntax::V0).expect(name);
        for (i, lib) in template["libs"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let source = lib.as_str().expect("lib source");
            add_module(&mut engine, &format!("lib{i}.rego"), source, Syntax::V0).expect(name);
        }
        let bytecode = Bytecode::compile(&engine, &[entry.as_str()]).expect(name);
        for parameters in template["params"].as_array().expect("params") {
            for object in objects {
                for operation in ["CREATE", "UPDATE"] {
                    let review = request(object, operation);
                    let input = json!({"review": review, "parameters": parameters}).to_string();
                    let input = Value::from_json_str(&input).expect("input");
                    let mut interpreter = engine.clone();
                    interpreter.set_input(input.clone());
                    let interpreted = interpreter.eval_rule(entry.clone()).ok();
                    let vm = bytecode.run(&entry, input, Budget::UNLIMITED).ok();
                    evaluations += 1;
                    if interpreted != vm {
                        differences.push(format!(
                            "{name} {operation} {}/{} parameters {parameters}: interpreter {:?}, VM {:?}",
                            object["kind"], object["metadata"]["name"],
                            interpreted.map(|v| v.to_string()),
                            vm.map(|v| v.to_string()),
                        ));
                    }
                }
            }
        }
    }
    assert!(evaluations > 0, "the corpus held nothing to evaluate");
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
    println!("{evaluations} evaluations, interpreter and VM agree");
}

#[test]
#[ignore = "needs REGENT_EVALUATOR_CORPUS (benches/evaluator_corpus.py)"]
fn the_default_bundle_decides_alike_on_both_evaluators() {
    let corpus = corpus();
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
    for object in corpus["objects"].as_array().expect("objects") {
        for operation in ["CREATE", "UPDATE"] {
            let body = json!({
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": request(object, operation),
            })
            .to_string();
            let Ok(review) = regent::review::parse(body.as_bytes()) else {
                panic!("the corpus review does not parse: {body}");
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
