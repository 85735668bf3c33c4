//! In-process benchmarks: the whole decision for a Pod and a Deployment on the
//! default bundle (validate and mutate), the same decision on one thread and
//! on two at once (what threads sharing a compiled bundle cost each other),
//! each stage of it, and compiling and
//! preparing bundles of 10, 50 and 200 policies, and the default bundle plus
//! Gatekeeper Constraints (the test fixtures' templates) deciding a Pod, and
//! the same Pod with 0, 10, 25 and 50 Constraints of templates written here
//! in the gatekeeper-library's style; and a privileged Pod decided with no
//! policy exception, with 1,000 that do not match it (elsewhere, and all in
//! its own namespace for its policy: the worst case), and with 1,000 others
//! plus the one that excepts it; and the Pod Security Standards against the
//! previous default bundle's pod-security policies.
//! `cargo bench --bench decision`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use regent_core::bundle::{embedded_files, BundleFiles};
use regent_core::compose::decision::{self, DecideOptions};
use regent_core::compose::{CompileOptions, CompiledBundle};
use regent_core::review;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/benches/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn default_bundle() -> CompiledBundle {
    CompiledBundle::compile(&BundleFiles::embedded().unwrap(), CompileOptions::default()).unwrap()
}

fn decisions(c: &mut Criterion) {
    let bundle = default_bundle();
    let options = DecideOptions::default();
    let mut group = c.benchmark_group("decision");
    for (name, file) in [
        ("pod_8k", "pod-review.json"),
        ("deployment", "deployment-review.json"),
        ("deployment_unmutated", "deployment-unmutated-review.json"),
    ] {
        let body = fixture(file);
        group.bench_function(BenchmarkId::new("validate", name), |b| {
            b.iter(|| {
                let r = review::parse(black_box(&body)).unwrap();
                decision::validate(&bundle, &r, &options)
                    .response
                    .to_review_bytes(r.version)
            })
        });
        group.bench_function(BenchmarkId::new("mutate", name), |b| {
            b.iter(|| {
                let r = review::parse(black_box(&body)).unwrap();
                decision::mutate(&bundle, &r, &options)
                    .response
                    .to_review_bytes(r.version)
            })
        });
    }
    group.finish();
}

fn stages(c: &mut Criterion) {
    let bundle = default_bundle();
    let options = DecideOptions::default();
    let body = fixture("pod-review.json");
    let parsed = review::parse(&body).unwrap();
    let mut group = c.benchmark_group("stage");
    // The ceiling of a parse: the same body into serde_json's own value.
    group.bench_function("parse_json_to_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap())
    });
    group.bench_function("parse_json_to_engine_value", |b| {
        b.iter(|| serde_json::from_slice::<regorus::Value>(black_box(&body)).unwrap())
    });
    group.bench_function("parse_review_with_meta", |b| {
        b.iter(|| review::parse(black_box(&body)).unwrap())
    });
    group.bench_function("evaluate_validate", |b| {
        b.iter(|| {
            bundle
                .validate_native(black_box(&parsed.input), options.limits())
                .unwrap()
                .results
                .len()
        })
    });
    group.bench_function("evaluate_mutate", |b| {
        b.iter(|| {
            bundle
                .mutate(black_box(&parsed.input), options.limits())
                .unwrap()
        })
    });
    let decided = decision::validate(&bundle, &parsed, &options);
    group.bench_function("encode_response", |b| {
        b.iter(|| black_box(&decided.response).to_review_bytes(parsed.version))
    });
    let unmutated = review::parse(&fixture("deployment-unmutated-review.json")).unwrap();
    let outcome = bundle
        .mutate(&unmutated.input, regent_core::runtime::Limits::NONE)
        .unwrap();
    let original = serde_json::to_value(&unmutated.input["request"]["object"]).unwrap();
    group.bench_function("patch_diff", |b| {
        b.iter(|| regent_core::mutation::diff(black_box(&original), black_box(&outcome.object)))
    });
    group.finish();
}

/// A bundle of `n` validating policies, each a variation of a container check.
pub fn synthetic_bundle(n: usize) -> BundleFiles {
    let fields = [
        "privileged",
        "allowPrivilegeEscalation",
        "readOnlyRootFilesystem",
        "runAsNonRoot",
    ];
    let files = (0..n)
        .map(|i| {
            let field = fields[i % fields.len()];
            let source = format!(
                "package validate.p{i}\n\nimport data.regent.lib.workload\nimport rego.v1\n\nviolation contains v if {{\n\tsome c in workload.containers\n\tc.container.securityContext.{field} == {value}\n\tv := workload.violation(sprintf(\"%s.securityContext.{field}\", [c.path]), \"policy {i}\", \"fix {i}\")\n}}\n",
                value = if i % 2 == 0 { "true" } else { "false" }
            );
            (format!("validate/p{i}/policy.rego"), source.into_bytes())
        })
        .collect();
    BundleFiles::from_files("synthetic", files).unwrap()
}

fn compile(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile_and_prepare");
    group.sample_size(20);
    for n in [10, 50, 200] {
        let files = synthetic_bundle(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &files, |b, files| {
            b.iter(|| CompiledBundle::compile(files, CompileOptions::default()).unwrap())
        });
    }
    let embedded = BundleFiles::embedded().unwrap();
    group.bench_function("default_bundle", |b| {
        b.iter(|| CompiledBundle::compile(&embedded, CompileOptions::default()).unwrap())
    });
    group.finish();
}

/// The default bundle with Gatekeeper templates and Constraints from the test
/// fixtures layered on top: the labels template (with a lib) and the
/// match-everything template with one Constraint per action.
fn gatekeeper(c: &mut Criterion) {
    let root = format!("{}/tests/fixtures/gatekeeper", env!("CARGO_MANIFEST_DIR"));
    let read = |f: &str| std::fs::read(format!("{root}/{f}")).unwrap();
    let files = vec![
        ("gk/labels.yaml".to_string(), read("labels/template.yaml")),
        (
            "gk/labels-c.yaml".to_string(),
            read("labels/constraint.yaml"),
        ),
        (
            "gk/matched.yaml".to_string(),
            read("enforcement/template.yaml"),
        ),
        (
            "gk/warn.yaml".to_string(),
            read("enforcement/constraint_warn.yaml"),
        ),
        (
            "gk/dryrun.yaml".to_string(),
            read("enforcement/constraint_dryrun.yaml"),
        ),
    ];
    let gk = BundleFiles::from_files("gatekeeper fixtures", files).unwrap();
    let bundle = CompiledBundle::compile(
        &BundleFiles::compose(vec![BundleFiles::embedded().unwrap(), gk]).unwrap(),
        CompileOptions::default(),
    )
    .unwrap();
    assert_eq!(bundle.gatekeeper().constraints().len(), 3);
    let options = DecideOptions::default();
    let body = fixture("pod-review.json");
    c.bench_function("decision/validate/pod_8k_with_3_constraints", |b| {
        b.iter(|| {
            let r = review::parse(black_box(&body)).unwrap();
            decision::validate(&bundle, &r, &options)
                .response
                .to_review_bytes(r.version)
        })
    });
}

/// Rego bodies in the gatekeeper-library's style (older syntax,
/// `violation[{"msg": msg}]`, container loops, helper functions), written
/// for this benchmark; template `i` uses body `i % 5`.
const STYLES: [&str; 5] = [
    // Required labels, each matching a pattern (k8srequiredlabels-like).
    r#"violation[{"msg": msg, "details": {"missing_labels": missing}}] {
  provided := {label | input.review.object.metadata.labels[label]}
  required := {label | label := input.parameters.labels[_].key}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("you must provide labels: %v", [missing])
}
violation[{"msg": msg}] {
  value := input.review.object.metadata.labels[key]
  expected := input.parameters.labels[_]
  expected.key == key
  expected.allowedRegex != ""
  not re_match(expected.allowedRegex, value)
  msg := sprintf("Label <%v: %v> does not satisfy allowed regex: %v", [key, value, expected.allowedRegex])
}"#,
    // Memory limits parsed and compared (k8scontainerlimits-like).
    r#"mem_multiple("Ki") = 1024 { true }
mem_multiple("Mi") = 1048576 { true }
mem_multiple("Gi") = 1073741824 { true }
mem_multiple("") = 1 { true }
get_suffix(mem) = suffix {
  count(mem) > 1
  suffix := substring(mem, count(mem) - 2, -1)
  mem_multiple(suffix)
}
get_suffix(mem) = "" {
  count(mem) > 1
  not mem_multiple(substring(mem, count(mem) - 2, -1))
}
canonify_mem(orig) = new {
  suffix := get_suffix(orig)
  raw := replace(orig, suffix, "")
  new := to_number(raw) * mem_multiple(suffix)
}
violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  mem := canonify_mem(container.resources.limits.memory)
  max := canonify_mem(input.parameters.memory)
  mem > max
  msg := sprintf("container <%v> memory limit <%v> is higher than the maximum allowed of <%v>", [container.name, container.resources.limits.memory, input.parameters.memory])
}
violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  not container.resources.limits.memory
  msg := sprintf("container <%v> has no memory limit", [container.name])
}"#,
    // Allowed image registries (k8sallowedrepos-like).
    r#"violation[{"msg": msg}] {
  container := input_containers[_]
  not strings.any_prefix_match(container.image, input.parameters.repos)
  msg := sprintf("container <%v> has an invalid image repo <%v>, allowed repos are %v", [container.name, container.image, input.parameters.repos])
}
input_containers[c] { c := input.review.object.spec.containers[_] }
input_containers[c] { c := input.review.object.spec.initContainers[_] }"#,
    // Capabilities dropped and privilege (k8spspcapabilities-like).
    r#"violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  has_disallowed_capabilities(container)
  msg := sprintf("container <%v> has a disallowed capability. Allowed capabilities are %v", [container.name, get_default(input.parameters, "allowedCapabilities", "NONE")])
}
violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  container.securityContext.privileged
  msg := sprintf("Privileged container is not allowed: %v", [container.name])
}
has_disallowed_capabilities(container) {
  allowed := {c | c := get_default(input.parameters, "allowedCapabilities", [])[_]}
  not allowed["*"]
  capabilities := {c | c := container.securityContext.capabilities.add[_]}
  count(capabilities - allowed) > 0
}
get_default(obj, param, _default) = out {
  out = obj[param]
}
get_default(obj, param, _default) = out {
  not obj[param]
  not obj[param] == false
  out = _default
}"#,
    // Probes required (k8srequiredprobes-like).
    r#"probe_type_set = probe_types { probe_types := {type | type := input.parameters.probeTypes[_]} }
violation[{"msg": msg}] {
  container := input.review.object.spec.containers[_]
  probe := input.parameters.probes[_]
  probe_is_missing(container, probe)
  msg := sprintf("Container <%v> has no <%v>", [container.name, probe])
}
probe_is_missing(ctr, probe) = true { not ctr[probe] }
probe_is_missing(ctr, probe) = true {
  probe_field_empty(ctr, probe)
}
probe_field_empty(ctr, probe) = true {
  probe_fields := {field | ctr[probe][field]}
  diff_fields := probe_type_set - probe_fields
  count(diff_fields) == count(probe_type_set)
}"#,
];

/// Parameters of a Constraint of body `style`.
const PARAMETERS: [&str; 5] = [
    "labels: [{key: team, allowedRegex: \"^[a-z-]+$\"}, {key: app}]",
    "memory: 1Gi",
    "repos: [\"registry.example.com/\"]",
    "allowedCapabilities: [NET_BIND_SERVICE]",
    "probes: [readinessProbe, livenessProbe]\n    probeTypes: [httpGet, tcpSocket, exec]",
];

/// `n` templates, one Constraint each, matching Pods.
fn constraints_bundle(n: usize) -> BundleFiles {
    let mut files = Vec::new();
    for i in 0..n {
        let style = i % STYLES.len();
        let body: String = STYLES[style]
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect();
        let template = format!(
            "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: benchtemplate{i}\nspec:\n  crd:\n    spec:\n      names:\n        kind: BenchTemplate{i}\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package benchtemplate{i}\n{body}"
        );
        let constraint = format!(
            "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: BenchTemplate{i}\nmetadata:\n  name: bench-{i}\nspec:\n  match:\n    kinds: [{{apiGroups: [\"\"], kinds: [Pod]}}]\n  parameters:\n    {}\n",
            PARAMETERS[style]
        );
        files.push((format!("gk/t{i}.yaml"), template.into_bytes()));
        files.push((format!("gk/c{i}.yaml"), constraint.into_bytes()));
    }
    BundleFiles::from_files("bench constraints", files).unwrap()
}

/// The 8 KB Pod decided by the default bundle plus 0, 10, 25 and 50
/// Constraints, each of its own template.
fn gatekeeper_curve(c: &mut Criterion) {
    let options = DecideOptions::default();
    let body = fixture("pod-review.json");
    let mut group = c.benchmark_group("decision/validate/pod_8k_constraints");
    for n in [0, 10, 25, 50] {
        let bundle = CompiledBundle::compile(
            &BundleFiles::compose(vec![
                BundleFiles::embedded().unwrap(),
                constraints_bundle(n),
            ])
            .unwrap(),
            CompileOptions::default(),
        )
        .unwrap();
        assert_eq!(bundle.gatekeeper().constraints().len(), n);
        // Every constraint decides without an error.
        let r = review::parse(&body).unwrap();
        let decided = decision::validate(&bundle, &r, &options);
        assert!(
            decided.policy_errors.is_empty(),
            "{:?}",
            decided.policy_errors
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &bundle, |b, bundle| {
            b.iter(|| {
                let r = review::parse(black_box(&body)).unwrap();
                decision::validate(bundle, &r, &options)
                    .response
                    .to_review_bytes(r.version)
            })
        });
    }
    group.finish();
}

/// The same decision on one thread and on two at once (each thread its own
/// evaluator, the compiled bundle shared, as in the server's two workers):
/// the time of `iters` decisions per thread. On two idle cores the two
/// figures are equal unless the threads contend for shared memory (the
/// reference counts of a shared program or shared values, the allocator).
fn parallel(c: &mut Criterion) {
    let bundle = default_bundle();
    let options = DecideOptions::default();
    let body = fixture("pod-review.json");
    let decide = || {
        let r = review::parse(black_box(&body)).unwrap();
        decision::validate(&bundle, &r, &options)
            .response
            .to_review_bytes(r.version)
    };
    let mut group = c.benchmark_group("parallel");
    for threads in [1usize, 2] {
        group.bench_function(BenchmarkId::new("validate_pod_8k", threads), |b| {
            b.iter_custom(|iters| {
                let start = std::sync::Barrier::new(threads);
                std::thread::scope(|s| {
                    let handles: Vec<_> = (0..threads)
                        .map(|_| {
                            s.spawn(|| {
                                for _ in 0..20 {
                                    black_box(decide());
                                }
                                start.wait();
                                let t = std::time::Instant::now();
                                for _ in 0..iters {
                                    black_box(decide());
                                }
                                t.elapsed()
                            })
                        })
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().unwrap())
                        .max()
                        .unwrap()
                })
            })
        });
    }
    group.finish();
}

/// `n` valid exceptions for other objects: spread over 200 namespaces and
/// five policies, or (`crowded`) all in `shop` for `pod_security/privileged`, naming
/// other Pods.
fn other_exceptions(n: usize, crowded: bool) -> Vec<regent_core::exceptions::Exception> {
    let expires =
        regent_core::exceptions::date_time_of(regent_core::exceptions::now() + 30 * 86_400);
    let policies = [
        "pod_security/privileged",
        "pod_security/host_path_volumes",
        "image_tag",
        "pod_security/capabilities_baseline",
        "pod_security/host_namespaces",
    ];
    (0..n)
        .map(|i| {
            let (ns, policy) = if crowded {
                ("shop".to_string(), "pod_security/privileged")
            } else {
                (format!("team-{}", i % 200), policies[i % policies.len()])
            };
            let doc = serde_json::json!({
                "apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
                "metadata": {"name": format!("x-{i}"), "namespace": ns},
                "spec": {"policies": [policy],
                         "match": {"kinds": ["Pod", "Deployment"], "names": [format!("svc-{i}-*")]},
                         "owner": "team", "reason": "benchmark", "expires": format!("{expires}Z")}
            });
            regent_core::exceptions::parse(&doc, "bench").unwrap()
        })
        .collect()
}

fn exceptions(c: &mut Criterion) {
    use regent_core::compose::except::Exceptions;
    use regent_core::exceptions::{ExceptionSet, Governance};
    let bundle = default_bundle();
    let options = DecideOptions::default();
    // The 8 KB Pod, privileged: `pod_security` denies it, so the lookup runs.
    let mut doc: serde_json::Value = serde_json::from_slice(&fixture("pod-review.json")).unwrap();
    for c in doc["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
    {
        c["securityContext"]["privileged"] = serde_json::json!(true);
    }
    let body = serde_json::to_vec(&doc).unwrap();
    let expires =
        regent_core::exceptions::date_time_of(regent_core::exceptions::now() + 30 * 86_400);
    let this_one = regent_core::exceptions::parse(
        &serde_json::json!({
            "apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {"policies": ["pod_security/privileged"], "match": {"kinds": ["Pod"], "names": ["web-*"]},
                     "owner": "shop-team", "reason": "benchmark", "expires": format!("{expires}Z")}
        }),
        "bench",
    )
    .unwrap();
    let catalogue = bundle.catalogue();
    let build = |list: Vec<regent_core::exceptions::Exception>| {
        ExceptionSet::build(
            list,
            Vec::new(),
            &Governance::default(),
            &catalogue,
            regent_core::exceptions::now(),
        )
    };
    let mut with_one = other_exceptions(1000, false);
    with_one.push(this_one.clone());
    let mut crowded_with_one = other_exceptions(1000, true);
    crowded_with_one.push(this_one);
    let sets = [
        ("none", build(Vec::new()), false),
        (
            "1000_elsewhere",
            build(other_exceptions(1000, false)),
            false,
        ),
        (
            "1000_same_namespace_and_policy",
            build(other_exceptions(1000, true)),
            false,
        ),
        ("1000_elsewhere_plus_this_one", build(with_one), true),
        (
            "1000_same_namespace_plus_this_one",
            build(crowded_with_one),
            true,
        ),
    ];
    let inventory = decision::empty_inventory();
    let mut group = c.benchmark_group("exceptions/validate_privileged_pod_8k");
    for (name, set, admits) in &sets {
        let excepted = Exceptions {
            set,
            help: None,
            now: regent_core::exceptions::now(),
        };
        // What is measured is what it claims to be.
        let r = review::parse(&body).unwrap();
        let d = decision::validate_in(&bundle, &r, &options, &inventory, &excepted);
        assert_eq!(d.response.allowed, *admits, "{name}");
        group.bench_function(*name, |b| {
            b.iter(|| {
                let r = review::parse(black_box(&body)).unwrap();
                decision::validate_in(&bundle, &r, &options, &inventory, &excepted)
                    .response
                    .to_review_bytes(r.version)
            })
        });
    }
    group.finish();
}

/// The Pod Security Standards' cost: the default bundle before
/// `pod_security` replaced its six pod-security policies
/// (`benches/fixtures/previous-default-bundle`), and now, as shipped
/// (baseline enforced, restricted in the audit mode), at baseline alone and
/// at restricted, on the 8 KB Pod and on the same Pod privileged.
fn pod_security(c: &mut Criterion) {
    let options = DecideOptions::default();
    let previous = CompiledBundle::compile(
        &BundleFiles::from_dir(std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/fixtures/previous-default-bundle"
        )))
        .unwrap(),
        CompileOptions::default(),
    )
    .unwrap();
    // The default bundle with pod_security's settings file replaced.
    let with = |data: &str| {
        let mut files = embedded_files();
        let settings = files
            .iter_mut()
            .find(|(path, _)| path == "validate/pod_security/data.yaml")
            .unwrap();
        settings.1 = data.as_bytes().to_vec();
        let files = BundleFiles::from_files("bench", files).unwrap();
        CompiledBundle::compile(&files, CompileOptions::default()).unwrap()
    };
    let bundles = [
        ("previous_default_bundle", previous),
        ("default_bundle", default_bundle()),
        (
            "baseline_only",
            with("enforcement: deny\nparameters: {level: baseline, audit: {level: privileged}}\n"),
        ),
        (
            "restricted",
            with("enforcement: deny\nparameters: {level: restricted}\n"),
        ),
    ];
    let clean = fixture("pod-review.json");
    let mut doc: serde_json::Value = serde_json::from_slice(&clean).unwrap();
    for c in doc["request"]["object"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
    {
        c["securityContext"]["privileged"] = serde_json::json!(true);
    }
    let privileged = serde_json::to_vec(&doc).unwrap();
    let mut group = c.benchmark_group("pod_security/validate");
    for (body_name, body) in [("pod_8k", &clean), ("pod_8k_privileged", &privileged)] {
        for (name, bundle) in &bundles {
            group.bench_function(BenchmarkId::new(*name, body_name), |b| {
                b.iter(|| {
                    let r = review::parse(black_box(body)).unwrap();
                    decision::validate(bundle, &r, &options)
                        .response
                        .to_review_bytes(r.version)
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    pod_security,
    exceptions,
    decisions,
    parallel,
    stages,
    compile,
    gatekeeper,
    gatekeeper_curve
);
criterion_main!(benches);
