//! Property-based fuzzing (proptest, stable Rust): arbitrary and mutated
//! AdmissionReview bodies, bundle files (Rego, data YAML and JSON, Gatekeeper
//! objects, ConfigMap payloads including archives) and patches are fed
//! through the parsers and the decision path. Nothing may panic; every
//! request gets a well-formed answer that echoes its uid; every patch Regent
//! computes turns the original into the result.
//!
//! CI runs a short pass (64 cases per property). The long run:
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::OnceLock;

use proptest::prelude::*;
use regent_core::bundle::BundleFiles;
use regent_core::compose::decision::{self, DecideOptions};
use regent_core::compose::{CompileOptions, CompiledBundle};
use regent_core::review;
use serde_json::{json, Value};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn bundle() -> &'static CompiledBundle {
    static B: OnceLock<CompiledBundle> = OnceLock::new();
    B.get_or_init(|| {
        CompiledBundle::compile(&BundleFiles::embedded().unwrap(), CompileOptions::default())
            .unwrap()
    })
}

/// One mutator of each kind, for the object fuzzer.
const MUTATORS: [&str; 4] = [
    "kind: Assign\nmetadata:\n  name: a\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [Pod]\n    versions: [v1]\n  location: spec.containers[name:*].imagePullPolicy\n  parameters:\n    pathTests:\n    - subPath: spec.containers[name:*].imagePullPolicy\n      condition: MustNotExist\n    assign:\n      value: Always\n",
    "kind: AssignMetadata\nmetadata:\n  name: m\nspec:\n  match:\n    scope: Namespaced\n  location: metadata.labels.team\n  parameters:\n    assign:\n      fromMetadata:\n        field: namespace\n",
    "kind: ModifySet\nmetadata:\n  name: s\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [Pod]\n    versions: [v1]\n  location: spec.containers[name:*].args\n  parameters:\n    operation: prune\n    values:\n      fromList: [--x, 1, {a: b}]\n",
    "kind: AssignImage\nmetadata:\n  name: i\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [Pod]\n    versions: [v1]\n  location: spec.initContainers[name:*].image\n  parameters:\n    assignDomain: mirror.example.com\n    assignTag: \":v1\"\n",
];

/// The default bundle with Gatekeeper mutators of every kind next to its
/// native mutating policies.
fn mutator_bundle() -> &'static CompiledBundle {
    static B: OnceLock<CompiledBundle> = OnceLock::new();
    B.get_or_init(|| {
        let mut files = BundleFiles::embedded().unwrap();
        let extra = format!(
            "{}---\n{}",
            include_str!("fixtures/mutators/defaults.yaml"),
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: ModifySet\nmetadata:\n  name: args\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n  location: \"spec.containers[name: *].args\"\n  parameters:\n    values:\n      fromList: [--verbose]\n---\napiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: mirror\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n  location: \"spec.initContainers[name: *].image\"\n  parameters:\n    assignDomain: mirror.example.com\n---\napiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: ns\nspec:\n  location: metadata.annotations.namespace\n  parameters:\n    assign:\n      fromMetadata:\n        field: namespace\n"
        );
        files.objects.extend(regent_core::objects::parse_policy_objects("fuzz.yaml", &extra).unwrap());
        CompiledBundle::compile(&files, CompileOptions::default()).unwrap()
    })
}

/// The base review's Deployment as the Pod its template makes.
fn base_pod_review() -> Value {
    let mut review = base_review();
    let template = review["request"]["object"]["spec"]["template"].clone();
    let mut pod = template;
    pod["apiVersion"] = json!("v1");
    pod["kind"] = json!("Pod");
    pod["metadata"]["name"] = json!("web-1");
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "Pod"});
    review["request"]["resource"] = json!({"group": "", "version": "v1", "resource": "pods"});
    review["request"]["object"] = pod;
    review
}

fn base_review() -> Value {
    serde_json::from_str(include_str!("../core/src/rego/warmup_violations.json")).unwrap()
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "\\PC{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer into `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// One change to a document: replace, delete or duplicate a node.
#[derive(Debug, Clone)]
enum Change {
    Replace(usize, Value),
    Delete(usize),
    Truncate,
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (any::<usize>(), any_json()).prop_map(|(i, v)| Change::Replace(i, v)),
        any::<usize>().prop_map(Change::Delete),
        Just(Change::Truncate),
    ]
}

fn apply_change(doc: &mut Value, c: &Change) {
    let mut ptrs = Vec::new();
    pointers(doc, String::new(), &mut ptrs);
    let pick = |i: usize| ptrs[i % ptrs.len()].clone();
    match c {
        Change::Replace(i, v) => {
            let p = pick(*i);
            if p.is_empty() {
                *doc = v.clone();
            } else if let Some(slot) = doc.pointer_mut(&p) {
                *slot = v.clone();
            }
        }
        Change::Delete(i) => {
            let p = pick(*i);
            if let Some((parent, key)) = p.rsplit_once('/') {
                match doc.pointer_mut(parent) {
                    Some(Value::Object(m)) => {
                        m.remove(&key.replace("~1", "/").replace("~0", "~"));
                    }
                    Some(Value::Array(a)) => {
                        if let Ok(i) = key.parse::<usize>() {
                            if i < a.len() {
                                a.remove(i);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        Change::Truncate => {}
    }
}

/// Decides a body as the server does and checks the answer's shape.
fn check_answer(body: &[u8]) {
    check_answer_with(bundle(), body);
}

/// [`check_answer`] under `b`; a mutation that succeeds is also idempotent:
/// its result, mutated again, gets no patch.
fn check_answer_with(b: &CompiledBundle, body: &[u8]) {
    let options = DecideOptions::default();
    match review::parse(body) {
        Ok(r) => {
            let mutated = decision::mutate(b, &r, &options);
            if let Some(again) = r.with_object(&mutated.mutated_object).filter(|_| {
                mutated.verdict != decision::Verdict::Failed && !mutated.mutated_by.is_empty()
            }) {
                let second = decision::mutate(b, &again, &options);
                assert!(
                    second.verdict == decision::Verdict::Failed || second.mutated_by.is_empty(),
                    "not idempotent: {:?} changed {} again",
                    second.mutated_by,
                    mutated.mutated_object
                );
            }
            for decided in [decision::validate(b, &r, &options), mutated] {
                let out: Value =
                    serde_json::from_slice(&decided.response.to_review_bytes(r.version)).unwrap();
                assert_eq!(out["kind"], "AdmissionReview");
                assert_eq!(out["response"]["uid"], r.meta.uid.as_str());
                assert!(out["response"]["allowed"].is_boolean());
                if let Some(patch) = out["response"]["patch"].as_str() {
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(patch)
                        .unwrap();
                    let ops: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
                    let mut object = serde_json::to_value(&r.input["request"]["object"]).unwrap();
                    json_patch::patch(&mut object, &ops).unwrap();
                }
            }
        }
        Err(Ok(rejected)) => {
            let out: Value = serde_json::from_slice(
                &review::Response::for_rejected(&rejected).to_review_bytes(rejected.version),
            )
            .unwrap();
            assert_eq!(out["response"]["allowed"], false);
            assert_eq!(out["response"]["uid"], rejected.uid.as_str());
        }
        Err(Err(_)) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(64), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        check_answer(&body);
    }

    #[test]
    fn mutated_reviews_are_always_answered(changes in prop::collection::vec(change(), 1..6), cut in any::<usize>()) {
        let mut doc = base_review();
        for c in &changes {
            apply_change(&mut doc, c);
        }
        let mut bytes = serde_json::to_vec(&doc).unwrap();
        check_answer(&bytes);
        if changes.iter().any(|c| matches!(c, Change::Truncate)) {
            bytes.truncate(cut % (bytes.len() + 1));
            check_answer(&bytes);
        }
    }

    #[test]
    fn mutated_reviews_through_gatekeeper_mutators_are_answered(changes in prop::collection::vec(change(), 1..6), pod in any::<bool>()) {
        let mut doc = if pod { base_pod_review() } else { base_review() };
        for c in &changes {
            apply_change(&mut doc, c);
        }
        check_answer_with(mutator_bundle(), &serde_json::to_vec(&doc).unwrap());
    }

    #[test]
    fn computed_patches_turn_the_original_into_the_result(a in any_json(), b in any_json()) {
        if let Some(patch) = regent_core::mutation::diff(&a, &b) {
            let mut x = a.clone();
            json_patch::patch(&mut x, &patch).unwrap();
            prop_assert_eq!(x, b);
        } else {
            prop_assert_eq!(a, b);
        }
    }

    #[test]
    fn policy_patches_never_panic(patch in any_json(), mut doc in any_json()) {
        if let Ok(ops) = regent_core::mutation::parse_ops("fuzz", &patch) {
            let before = doc.clone();
            match regent_core::mutation::apply("fuzz", &mut doc, &ops) {
                // All or nothing: a refused patch leaves the object alone.
                Err(_) => prop_assert_eq!(doc, before),
                Ok(_) => {
                    serde_json::to_vec(&doc).unwrap();
                }
            }
        }
    }
}

/// A module of the default bundle with a stretch cut out, a stretch
/// repeated, or a token dropped in.
fn mutated_rego() -> impl Strategy<Value = String> {
    let sources: Vec<String> = BundleFiles::embedded()
        .unwrap()
        .modules
        .into_iter()
        .filter(|m| !m.is_test())
        .map(|m| m.source)
        .collect();
    let tokens = prop::sample::select(vec![
        "{",
        "}",
        "[",
        "]",
        "(",
        ")",
        " if ",
        " contains ",
        " := ",
        " = ",
        " some ",
        " in ",
        " not ",
        " with ",
        " else ",
        "\n",
        "\"",
        "`",
        "#",
        ".",
        ",",
        ";",
        "import data.x",
        "package p\n",
        "numbers.range(1, 100000000)",
        "walk(input)",
        "1/0",
    ]);
    (
        prop::sample::select(sources),
        any::<usize>(),
        any::<usize>(),
        0u8..3,
        tokens,
    )
        .prop_map(|(src, a, b, how, token)| {
            let chars: Vec<char> = src.chars().collect();
            let i = a % (chars.len() + 1);
            let j = (i + b % 40).min(chars.len());
            let (head, tail) = (&chars[..i], &chars[j..]);
            let mid: String = match how {
                0 => String::new(),
                1 => chars[i..j].iter().chain(chars[i..j].iter()).collect(),
                _ => token.to_string(),
            };
            head.iter().collect::<String>() + &mid + &tail.iter().collect::<String>()
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_rego_compiles_or_is_refused_with_a_position(src in mutated_rego()) {
        let files = vec![("validate/fuzz/policy.rego".to_string(), src.into_bytes())];
        let options = CompileOptions {
            limits: regent_core::runtime::Limits {
                time: Some(std::time::Duration::from_millis(300)),
                memory: Some(16 << 20),
            },
            ..CompileOptions::default()
        };
        if let Ok(files) = BundleFiles::from_files("fuzz", files) {
            match CompiledBundle::compile(&files, options) {
                Ok(b) => check_decides(&b),
                // A module that does not compile is named, with its line.
                Err(regent_core::compose::CompileError::Rego { path, line, .. }) => {
                    prop_assert_eq!(path, "validate/fuzz/policy.rego");
                    prop_assert!(line > 0);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn arbitrary_data_and_object_files_never_panic(
        data in any_json(),
        raw in "\\PC{0,200}",
        gk in prop::collection::vec(change(), 0..4),
    ) {
        let mut template: Value = serde_yaml_ng::from_str(GK_TEMPLATE).unwrap();
        for c in &gk {
            apply_change(&mut template, c);
        }
        // Keep it a Gatekeeper object, so it is read as one.
        if !template.is_object() {
            template = json!({"kind": "ConstraintTemplate", "spec": template});
        }
        template["apiVersion"] = json!("templates.gatekeeper.sh/v1");
        let files = vec![
            ("validate/d/data.yaml".to_string(), serde_yaml_ng::to_string(&data).unwrap().into_bytes()),
            ("x/data.json".to_string(), raw.clone().into_bytes()),
            ("gk/template.yaml".to_string(), serde_yaml_ng::to_string(&template).unwrap().into_bytes()),
            ("gk/raw.yaml".to_string(), format!("apiVersion: constraints.gatekeeper.sh/v1beta1\n{raw}").into_bytes()),
        ];
        if let Ok(files) = BundleFiles::from_files("fuzz", files) {
            if let Ok(b) = CompiledBundle::compile(&files, CompileOptions::default()) {
                check_decides(&b);
            }
        }
    }

    #[test]
    fn arbitrary_mutator_objects_load_or_are_refused_and_never_panic(
        which in 0usize..4,
        changes in prop::collection::vec(change(), 0..4),
        location in "[a-zA-Z0-9_.:*\\[\\] \"'-]{0,40}",
    ) {
        let mut object: Value = serde_yaml_ng::from_str(MUTATORS[which]).unwrap();
        if which % 2 == 0 {
            object["spec"]["location"] = json!(location);
        }
        for c in &changes {
            apply_change(&mut object, c);
        }
        if !object.is_object() {
            object = json!({"kind": "Assign", "spec": object});
        }
        let api = if object["kind"] == "AssignImage" { "v1alpha1" } else { "v1" };
        object["apiVersion"] = json!(format!("mutations.gatekeeper.sh/{api}"));
        let files = vec![("m.yaml".to_string(), serde_yaml_ng::to_string(&object).unwrap().into_bytes())];
        if let Ok(files) = BundleFiles::from_files("fuzz", files) {
            match CompiledBundle::compile(&files, CompileOptions::default()) {
                Ok(b) => {
                    check_answer_with(&b, &serde_json::to_vec(&base_pod_review()).unwrap());
                    check_answer_with(&b, &serde_json::to_vec(&base_review()).unwrap());
                }
                // A refusal names the file.
                Err(e) => prop_assert!(e.to_string().contains("m.yaml"), "{e}"),
            }
        }
    }

    #[test]
    fn arbitrary_configmap_payloads_never_panic(
        keys in prop::collection::vec(("[a-z_]{1,8}\\.(rego|yaml|yml|json|txt)", "\\PC{0,120}"), 0..5),
        archive in prop::collection::vec(any::<u8>(), 0..300),
        path in "[a-z./]{0,20}",
    ) {
        let mut cm = k8s_openapi::api::core::v1::ConfigMap::default();
        cm.metadata.name = Some("fuzz".to_string());
        cm.metadata.annotations = Some([("regent.dev/bundle-path".to_string(), path)].into());
        cm.data = Some(keys.into_iter().collect());
        cm.binary_data = Some([("b.tar.gz".to_string(), k8s_openapi::ByteString(archive))].into());
        if let Ok(entries) = regent::reload::configmaps::entries(&[&cm]) {
            if let Ok(files) = BundleFiles::from_entries("fuzz", entries) {
                let _ = CompiledBundle::compile(&files, CompileOptions::default());
            }
        }
    }
}

const GK_TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: fuzzlabels
spec:
  crd:
    spec:
      names:
        kind: FuzzLabels
      validation:
        openAPIV3Schema:
          type: object
          properties:
            labels:
              type: array
              items: {type: string}
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package fuzzlabels
        violation[{"msg": msg}] {
          required := input.parameters.labels[_]
          not input.review.object.metadata.labels[required]
          msg := sprintf("missing %v", [required])
        }
"#;

fn check_decides(b: &CompiledBundle) {
    let body = serde_json::to_vec(&base_review()).unwrap();
    let r = review::parse(&body).unwrap();
    let options = DecideOptions {
        timeout: std::time::Duration::from_millis(300),
        ..DecideOptions::default()
    };
    for decided in [
        decision::validate(b, &r, &options),
        decision::mutate(b, &r, &options),
    ] {
        let out: Value =
            serde_json::from_slice(&decided.response.to_review_bytes(r.version)).unwrap();
        assert_eq!(out["response"]["uid"], r.meta.uid.as_str());
    }
}

/// The mutator property is not vacuous: on the unchanged base Pod review
/// the Gatekeeper mutators do change the object.
#[test]
fn gatekeeper_mutators_apply_to_the_base_review() {
    let body = serde_json::to_vec(&base_pod_review()).unwrap();
    let r = review::parse(&body).unwrap();
    let d = decision::mutate(mutator_bundle(), &r, &DecideOptions::default());
    assert!(
        d.mutated_by.iter().any(|m| m == "ModifySet/args"),
        "{:?}",
        d.mutated_by
    );
    check_answer_with(mutator_bundle(), &body);
}
