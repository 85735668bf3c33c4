//! The policy contract through the library: enforcement and scope set by data
//! alone, attribution per policy, older Rego syntax, and mutation ordering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{good_spec, object, pod_meta, review};
use regent_core::bundle::BundleFiles;
use regent_core::compose::decision::{self, DecideOptions, Verdict};
use regent_core::compose::{CompileOptions, CompiledBundle};
use regent_core::native::policy::Enforcement;
use serde_json::{json, Value};

const HOST_PID: &str = "package validate.host_pid\nimport rego.v1\nviolation contains {\"msg\": \"hostPID\", \"path\": \"spec.hostPID\"} if input.request.object.spec.hostPID\n";

fn compile(files: &[(&str, &str)]) -> CompiledBundle {
    let files = files
        .iter()
        .map(|(p, s)| (p.to_string(), s.as_bytes().to_vec()))
        .collect();
    CompiledBundle::compile(
        &BundleFiles::from_files("test", files).unwrap(),
        CompileOptions::default(),
    )
    .unwrap()
}

/// The mutating decision for a plain Pod named "web".
fn mutate_plain_pod(bundle: &CompiledBundle) -> decision::Decision {
    let r = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", good_spec(), json!({})),
    );
    let parsed = regent_core::review::parse(&serde_json::to_vec(&r).unwrap()).unwrap();
    decision::mutate(bundle, &parsed, &DecideOptions::default())
}

fn refused(files: &[(&str, &str)]) -> String {
    let files = files
        .iter()
        .map(|(p, s)| (p.to_string(), s.as_bytes().to_vec()))
        .collect();
    CompiledBundle::compile(
        &BundleFiles::from_files("test", files).unwrap(),
        CompileOptions::default(),
    )
    .unwrap_err()
    .to_string()
}

fn decide(bundle: &CompiledBundle, review_json: &Value) -> decision::Decision {
    let parsed = regent_core::review::parse(&serde_json::to_vec(review_json).unwrap()).unwrap();
    decision::validate(bundle, &parsed, &DecideOptions::default())
}

fn host_pid_pod(namespace: &str) -> Value {
    let mut spec = good_spec();
    spec["hostPID"] = json!(true);
    let mut r = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", spec, pod_meta()),
    );
    r["request"]["namespace"] = json!(namespace);
    r
}

#[test]
fn enforcement_is_set_by_data_alone() {
    for (enforcement, allowed, warnings) in [
        ("deny", false, 0),
        ("warn", true, 1),
        ("dryrun", true, 0),
        ("off", true, 0),
    ] {
        let data = format!("enforcement: {enforcement}\n");
        let bundle = compile(&[
            ("validate/host_pid/policy.rego", HOST_PID),
            ("validate/host_pid/data.yaml", &data),
        ]);
        let d = decide(&bundle, &host_pid_pod("shop"));
        assert_eq!(d.response.allowed, allowed, "{enforcement}");
        assert_eq!(d.response.warnings.len(), warnings, "{enforcement}");
        match enforcement {
            "off" => assert!(d.evaluated.is_empty(), "an off policy is not evaluated"),
            "dryrun" => {
                assert_eq!(d.fired[0].enforcement, Enforcement::Dryrun);
                assert_eq!(d.response.audit_annotations["dryrun-by"], "host_pid");
            }
            _ => assert_eq!(d.evaluated, vec!["host_pid"]),
        }
    }
}

#[test]
fn namespace_kind_and_operation_scopes_are_honoured() {
    let data = "match:\n  excludedNamespaces: [kube-*, legacy]\n";
    let bundle = compile(&[
        ("validate/host_pid/policy.rego", HOST_PID),
        ("validate/host_pid/data.yaml", data),
    ]);
    assert_eq!(
        decide(&bundle, &host_pid_pod("shop")).verdict,
        Verdict::Denied
    );
    assert_eq!(
        decide(&bundle, &host_pid_pod("kube-system")).verdict,
        Verdict::Allowed
    );
    assert_eq!(
        decide(&bundle, &host_pid_pod("legacy")).verdict,
        Verdict::Allowed
    );

    let data = "match:\n  namespaces: [\"*-prod\"]\n  kinds: [Pod]\n  operations: [CREATE]\n";
    let bundle = compile(&[
        ("validate/host_pid/policy.rego", HOST_PID),
        ("validate/host_pid/data.yaml", data),
    ]);
    assert_eq!(
        decide(&bundle, &host_pid_pod("shop-prod")).verdict,
        Verdict::Denied
    );
    assert_eq!(
        decide(&bundle, &host_pid_pod("shop-dev")).verdict,
        Verdict::Allowed
    );
    let mut update = host_pid_pod("shop-prod");
    update["request"]["operation"] = json!("UPDATE");
    assert_eq!(decide(&bundle, &update).verdict, Verdict::Allowed);
    assert!(decide(&bundle, &update).evaluated.is_empty());
}

#[test]
fn violations_are_attributed_to_their_policy_sorted_and_deduplicated() {
    let dup = "package validate.dup\nimport rego.v1\nviolation contains \"b\" if true\nviolation contains \"a\" if true\n";
    let old = "package validate.old\nviolation[msg] {\n  input.request.object.spec.hostPID\n  msg := \"old syntax\"\n}\n";
    let bundle = compile(&[
        ("validate/host_pid/policy.rego", HOST_PID),
        ("validate/dup/policy.rego", dup),
        ("validate/old/policy.rego", old),
    ]);
    let d = decide(&bundle, &host_pid_pod("shop"));
    let message = d.response.status.unwrap().message;
    assert_eq!(
        message,
        "Pod shop/web violates 3 policies:\n[dup] a.\n[dup] b.\n[host_pid] spec.hostPID: hostPID.\n[old] old syntax."
    );
    assert_eq!(
        d.response.audit_annotations["denied-by"],
        "dup,host_pid,old"
    );
}

#[test]
fn mutating_policies_run_in_order_and_see_each_others_changes() {
    // `second` only acts once `first` has added its label: it must see the
    // object as changed by the policy before it.
    let first = "package mutate.first\nimport rego.v1\npatch contains {\"op\": \"add\", \"path\": \"/metadata/labels/stage\", \"value\": \"one\"} if true\n";
    let second = "package mutate.second\nimport rego.v1\npatch contains {\"op\": \"add\", \"path\": \"/metadata/labels/after\", \"value\": input.request.object.metadata.labels.stage} if input.request.object.metadata.labels.stage\n";
    let bundle = compile(&[
        ("mutate/first/policy.rego", first),
        ("mutate/first/data.yaml", "order: 1\n"),
        ("mutate/second/policy.rego", second),
        ("mutate/second/data.yaml", "order: 2\n"),
    ]);
    let d = mutate_plain_pod(&bundle);
    assert_eq!(d.mutated_by, vec!["first", "second"]);
    assert_eq!(
        d.mutated_object["metadata"]["labels"],
        json!({"stage": "one", "after": "one"})
    );
}

#[test]
fn a_mutation_that_never_settles_is_an_error_not_a_loop() {
    // Caught at load time when it fails on the warm-up Pod...
    let grow = "package mutate.grow\nimport rego.v1\npatch contains {\"op\": \"add\", \"path\": \"/spec/containers/-\", \"value\": {\"name\": \"x\"}} if true\n";
    assert!(refused(&[("mutate/grow/policy.rego", grow)]).contains("mutation did not settle"));
    // ...and at request time otherwise.
    let grow = grow.replace(
        "if true",
        "if input.request.object.metadata.name == \"web\"",
    );
    let bundle = compile(&[("mutate/grow/policy.rego", &grow)]);
    let d = mutate_plain_pod(&bundle);
    assert_eq!(d.verdict, Verdict::Failed);
    assert!(!d.response.allowed);
    let message = d.response.status.unwrap().message;
    assert!(
        message.contains("mutation did not settle") && message.contains("grow"),
        "{message}"
    );
}

#[test]
fn a_replace_operation_is_refused() {
    let bad = "package mutate.bad\nimport rego.v1\npatch contains {\"op\": \"replace\", \"path\": \"/metadata/name\", \"value\": \"x\"} if true\n";
    assert!(refused(&[("mutate/bad/policy.rego", bad)]).contains("only add"));
    let bad = bad.replace(
        "if true",
        "if input.request.object.metadata.name == \"web\"",
    );
    let bundle = compile(&[("mutate/bad/policy.rego", &bad)]);
    let d = mutate_plain_pod(&bundle);
    assert_eq!(d.verdict, Verdict::Failed);
    assert!(d.response.status.unwrap().message.contains("only add"));
}

#[test]
fn the_bytecode_vm_decides_exactly_as_the_interpreter() {
    let files = BundleFiles::embedded().unwrap();
    let vm = CompiledBundle::compile(&files, CompileOptions::default()).unwrap();
    let interpreter = CompiledBundle::compile(
        &files,
        CompileOptions {
            interpreter_only: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(vm.evaluator(), regent_core::compose::Evaluator::Vm);
    assert_eq!(
        interpreter.evaluator(),
        regent_core::compose::Evaluator::Interpreter
    );
    // A corpus: every kind, operation and a spread of violations and mutations.
    let mut reviews = Vec::new();
    let variants: Vec<Value> = vec![
        good_spec(),
        json!({"containers": [{"name": "a", "image": "nginx"}]}),
        json!({"hostNetwork": true, "hostIPC": true, "initContainers": [{"name": "i", "image": "busybox:latest",
               "securityContext": {"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}}}],
               "containers": [{"name": "a", "image": "quay.io/x/a:1", "resources": {"limits": {"cpu": "8"}}}],
               "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}),
        json!({"containers": [{"name": "a", "image": "registry.example.com/a@sha256:00", "resources": {"requests": {"memory": "2Gi"}}}],
               "ephemeralContainers": [{"name": "d", "image": "busybox:1"}]}),
    ];
    for kind in common::KINDS {
        for op in ["CREATE", "UPDATE", "DELETE"] {
            for (i, spec) in variants.iter().enumerate() {
                let meta = if i % 2 == 0 {
                    pod_meta()
                } else {
                    json!({"annotations": {"regent.dev/inject": "otel-agent,nope"}})
                };
                reviews.push(review(
                    "admission.k8s.io/v1",
                    op,
                    &object(kind, spec.clone(), meta),
                ));
            }
        }
    }
    for f in [
        "pod-review.json",
        "deployment-review.json",
        "deployment-unmutated-review.json",
    ] {
        let text =
            std::fs::read_to_string(common::repo_path(&format!("benches/fixtures/{f}"))).unwrap();
        reviews.push(serde_json::from_str(&text).unwrap());
    }
    for r in &reviews {
        let parsed = regent_core::review::parse(&serde_json::to_vec(r).unwrap()).unwrap();
        let options = DecideOptions::default();
        let (a, b) = (
            decision::validate(&vm, &parsed, &options),
            decision::validate(&interpreter, &parsed, &options),
        );
        assert_eq!(
            a.response,
            b.response,
            "validate differs for {}",
            parsed.meta.describe()
        );
        let (a, b) = (
            decision::mutate(&vm, &parsed, &options),
            decision::mutate(&interpreter, &parsed, &options),
        );
        assert_eq!(
            a.response,
            b.response,
            "mutate differs for {}",
            parsed.meta.describe()
        );
        assert_eq!(a.mutated_object, b.mutated_object);
    }
    assert!(reviews.len() > 90);
}
