//! In-process benchmarks: the whole decision for a Pod and a Deployment on the
//! default bundle (validate and mutate), each stage of it, and compiling and
//! preparing bundles of 10, 50 and 200 policies, and the default bundle plus
//! Gatekeeper Constraints (the test fixtures' templates) deciding a Pod.
//! `cargo bench --bench decision`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use regent::bundle::BundleFiles;
use regent::compiled::{CompileOptions, CompiledBundle};
use regent::decision::{self, DecideOptions};
use regent::review;

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
    group.bench_function("parse_json_to_engine_value", |b| {
        b.iter(|| serde_json::from_slice::<regorus::Value>(black_box(&body)).unwrap())
    });
    group.bench_function("parse_review_with_meta", |b| {
        b.iter(|| review::parse(black_box(&body)).unwrap())
    });
    group.bench_function("evaluate_validate", |b| {
        b.iter(|| {
            bundle
                .validate(black_box(&parsed.input), options.limits())
                .unwrap()
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
        .mutate(&unmutated.input, regent::runtime::Limits::NONE)
        .unwrap();
    let original = serde_json::to_value(&unmutated.input["request"]["object"]).unwrap();
    group.bench_function("patch_diff", |b| {
        b.iter(|| regent::mutation::diff(black_box(&original), black_box(&outcome.object)))
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
        &BundleFiles::embedded().unwrap().layered(gk),
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

criterion_group!(benches, decisions, stages, compile, gatekeeper);
criterion_main!(benches);
