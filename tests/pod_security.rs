//! The Pod Security Standards (`validate.pod_security`): the project's own
//! table of Pods (`tests/fixtures/pod-security/table.yaml`: every control at
//! both levels of the newest version and every version boundary that
//! changed a control, pass and fail), judged at each level and version; the
//! Namespace labels at the real server (Namespaces from the fake API
//! server's inventory); one control excepted alone; exempt controls; the
//! mutating companion (restricted-clean where it can fix, idempotent); the
//! audit's summary per control; and no finding reported twice on the
//! real-world fixtures. Kubernetes' own fixtures run with
//! `tests/psa/fixtures.py` (a checkout outside the repository).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use common::fake_api::FakeApi;
use common::*;
use regent_core::bundle::BundleFiles;
use regent_core::compose::decision::{self, DecideOptions};
use regent_core::compose::{CompileOptions, CompiledBundle};
use serde_json::{json, Value};

fn policy_file(name: &str) -> Vec<u8> {
    std::fs::read(repo_path(&format!("policies/validate/pod_security/{name}"))).unwrap()
}

/// A bundle of `pod_security` alone with `parameters` (and the mutating
/// companion, on, when `mutate`).
fn bundle(parameters: Value, mutate: bool) -> CompiledBundle {
    let data = json!({"enforcement": "deny", "parameters": parameters});
    let mut files = vec![
        (
            "validate/pod_security/policy.rego".to_string(),
            policy_file("policy.rego"),
        ),
        (
            "validate/pod_security/parameters.schema.yaml".to_string(),
            policy_file("parameters.schema.yaml"),
        ),
        // JSON under a .yaml name: JSON is YAML.
        (
            "validate/pod_security/data.yaml".to_string(),
            serde_json::to_vec(&data).unwrap(),
        ),
    ];
    if mutate {
        for f in ["policy.rego", "parameters.schema.yaml"] {
            files.push((
                format!("mutate/pod_security_defaults/{f}"),
                std::fs::read(repo_path(&format!(
                    "policies/mutate/pod_security_defaults/{f}"
                )))
                .unwrap(),
            ));
        }
        files.push((
            "mutate/pod_security_defaults/data.yaml".to_string(),
            b"enforcement: deny\norder: 40\nparameters: {}\n".to_vec(),
        ));
    }
    let files = BundleFiles::from_files("test", files).unwrap();
    CompiledBundle::compile(&files, CompileOptions::default()).unwrap()
}

struct Table {
    base: Value,
    cases: Vec<Value>,
}

fn table() -> Table {
    let text =
        std::fs::read_to_string(repo_path("tests/fixtures/pod-security/table.yaml")).unwrap();
    let v: Value = serde_yaml_ng::from_str(&text).unwrap();
    Table {
        base: v["base"].clone(),
        cases: v["cases"].as_array().unwrap().clone(),
    }
}

/// The Pod of a case: the base with its merge patches.
fn pod_of(base: &Value, case: &Value) -> Value {
    let mut pod = base.clone();
    pod["metadata"]["name"] = case["name"].clone();
    if !case["metadata"].is_null() {
        json_patch::merge(&mut pod["metadata"], &case["metadata"]);
    }
    if !case["spec"].is_null() {
        json_patch::merge(&mut pod["spec"], &case["spec"]);
    }
    if !case["container"].is_null() {
        json_patch::merge(&mut pod["spec"]["containers"][0], &case["container"]);
    }
    if !case["init"].is_null() {
        json_patch::merge(&mut pod["spec"]["initContainers"][0], &case["init"]);
    }
    if !case["ephemeral"].is_null() {
        let mut debug = base["spec"]["containers"][0].clone();
        debug["name"] = json!("debug");
        json_patch::merge(&mut debug, &case["ephemeral"]);
        pod["spec"]["ephemeralContainers"] = json!([debug]);
    }
    pod
}

/// The controls `pod_security` fails a Pod on.
fn controls(bundle: &CompiledBundle, pod: &Value) -> BTreeSet<String> {
    let results = bundle.audit(pod, &decision::empty_inventory(), Default::default());
    let mut out = BTreeSet::new();
    for r in results {
        assert_ne!(
            r.result,
            regent_core::outcome::AuditOutcome::Error,
            "{}: {}",
            pod["metadata"]["name"],
            r.message
        );
        if r.policy == "pod_security" && r.result == regent_core::outcome::AuditOutcome::Fail {
            out.insert(r.properties.get("control").cloned().unwrap());
        }
    }
    out
}

#[test]
fn the_table_agrees_at_every_level_and_version() {
    let t = table();
    assert!(t.cases.len() >= 60, "{} cases", t.cases.len());
    let mut bundles: BTreeMap<String, CompiledBundle> = BTreeMap::new();
    let mut judged = 0;
    let mut covered: BTreeSet<(String, String, bool)> = BTreeSet::new();
    let mut wrong = Vec::new();
    for case in &t.cases {
        let pod = pod_of(&t.base, case);
        for (key, expected) in case["expect"].as_object().unwrap() {
            let (level, version) = key.split_once('@').unwrap_or((key, "latest"));
            let b = bundles
                .entry(key.clone())
                .or_insert_with(|| bundle(json!({"level": level, "version": version}), false));
            let expected: BTreeSet<String> = expected
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect();
            let got = controls(b, &pod);
            judged += 1;
            if version == "latest" {
                for c in &expected {
                    covered.insert((level.to_string(), c.clone(), true));
                }
                if expected.is_empty() {
                    covered.insert((level.to_string(), String::new(), false));
                }
            }
            if got != expected {
                wrong.push(format!(
                    "{} at {key}: expected {expected:?}, got {got:?}",
                    case["name"]
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    // Every control fails some case at the newest version of its level.
    let b = &bundles["restricted"];
    let all: BTreeSet<String> = b
        .policies()
        .iter()
        .find(|p| p.name == "pod_security")
        .unwrap()
        .controls
        .iter()
        .cloned()
        .collect();
    assert_eq!(all.len(), 19);
    for c in &all {
        assert!(
            covered.iter().any(|(_, x, fail)| *fail && x == c),
            "no failing case for {c}"
        );
    }
    assert!(judged >= 140, "{judged} judgements");
}

#[test]
fn the_mutating_companion_fixes_what_it_may_and_is_idempotent() {
    let t = table();
    let b = bundle(json!({"level": "restricted"}), true);
    let options = DecideOptions::default();
    let inventory = decision::empty_inventory();
    let admit = |pod: &Value| {
        let review = review_of(pod);
        let parsed = regent_core::review::parse(&serde_json::to_vec(&review).unwrap()).unwrap();
        decision::admit(&b, &parsed, &options, &inventory)
    };
    let fired = |a: &decision::Admission| -> BTreeSet<String> {
        a.validation
            .fired
            .iter()
            .flat_map(|f| f.violations.iter().filter_map(|v| v.control.clone()))
            .collect()
    };
    // Fields left unset: fixed; values the user set: kept, still reported.
    for (name, left) in [
        ("caps-no-drop", vec![]),
        ("escalation-unset", vec![]),
        ("seccomp-unset", vec![]),
        ("non-root-unset", vec![]),
        ("escalation-true", vec!["allow_privilege_escalation"]),
        ("non-root-false", vec!["run_as_non_root"]),
        ("seccomp-unconfined", vec!["seccomp_restricted"]),
        ("run-as-root-user", vec!["run_as_user"]),
        ("many", vec!["host_namespaces", "host_ports", "privileged"]),
    ] {
        let case = t.cases.iter().find(|c| c["name"] == name).unwrap();
        let pod = pod_of(&t.base, case);
        let first = admit(&pod);
        let left: BTreeSet<String> = left.iter().map(|s| s.to_string()).collect();
        assert_eq!(fired(&first), left, "{name}");
        // Applied again to what it produced: nothing more to do.
        let mutated = if first.mutation.mutated_object.is_null() {
            pod.clone()
        } else {
            first.mutation.mutated_object.clone()
        };
        let second = admit(&mutated);
        assert!(second.patch.is_none(), "{name}: {:?}", second.patch);
        assert_eq!(fired(&second), left, "{name}");
    }
    // The restricted-clean base is left as it is.
    let base = admit(&t.base);
    assert!(base.patch.is_none());
    assert!(base.allowed);
}

fn review_of(object: &Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u1", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "name": object["metadata"]["name"], "namespace": object["metadata"]["namespace"],
            "operation": "CREATE", "userInfo": {"username": "alice"},
            "object": object, "oldObject": null, "dryRun": false
        }
    })
}

fn labelled_namespace(name: &str, labels: Value) -> Value {
    json!({"metadata": {"name": name, "labels": labels}})
}

#[tokio::test(flavor = "multi_thread")]
async fn namespace_labels_set_the_level_at_the_server() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.seed_objects(
        "",
        "namespaces",
        vec![
            labelled_namespace("locked", json!({"pod-security.kubernetes.io/enforce": "restricted"})),
            labelled_namespace("legacy", json!({"pod-security.kubernetes.io/enforce": "privileged"})),
            labelled_namespace(
                "warned",
                json!({"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "v1.30"}),
            ),
            labelled_namespace("plain", json!({})),
        ],
    );
    let server = Server::start_with(Options {
        extra_args: vec!["--inventory".into(), "v1/Namespace".into()],
        env: vec![(
            "KUBECONFIG".into(),
            api.kubeconfig(tmp.path()).display().to_string(),
        )],
        ..Options::default()
    });
    let t = table();
    let with_ns = |name: &str, ns: &str| {
        let case = t.cases.iter().find(|c| c["name"] == name).unwrap();
        let mut pod = pod_of(&t.base, case);
        pod["metadata"]["namespace"] = json!(ns);
        pod
    };
    let decide = |pod: Value| {
        let s = &server;
        async move { s.review("/validate", &review_of(&pod)).await["response"].clone() }
    };
    // Wait for the inventory to hold the Namespaces.
    let mut ready = false;
    for _ in 0..100 {
        if decide(with_ns("seccomp-unset", "locked")).await["allowed"] == false {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the locked namespace never enforced restricted");
    // restricted by label: a restricted-only finding denies.
    let r = decide(with_ns("seccomp-unset", "locked")).await;
    assert!(r["status"]["message"]
        .as_str()
        .unwrap()
        .contains("(Pod Security restricted: Seccomp)"));
    // Without a label the shipped default (baseline; restricted only in audit).
    assert_eq!(
        decide(with_ns("seccomp-unset", "plain")).await["allowed"],
        true
    );
    assert_eq!(
        decide(with_ns("host-network", "plain")).await["allowed"],
        false
    );
    // privileged by label: nothing enforced.
    assert_eq!(
        decide(with_ns("host-network", "legacy")).await["allowed"],
        true
    );
    // warn by label: restricted findings are warnings.
    let r = decide(with_ns("escalation-unset", "warned")).await;
    assert_eq!(r["allowed"], true);
    let w = r["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].as_str().unwrap().starts_with(
        "[pod_security] spec.containers[0].securityContext.allowPrivilegeEscalation: container \"app\" may escalate privileges (Pod Security restricted: Privilege Escalation)"
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn one_control_can_be_excepted_alone() {
    let dir = tempfile::tempdir().unwrap();
    let ends = regent_core::exceptions::now() + 10 * 86_400;
    let doc = json!({
        "apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
        "metadata": {"name": "node-exporter", "namespace": "monitoring"},
        "spec": {"policies": ["pod_security/host_ports"],
                 "match": {"kinds": ["Pod"], "names": ["node-exporter-*"]},
                 "owner": "observability", "reason": "scraped on the node's port",
                 "expires": format!("{}Z", regent_core::exceptions::date_time_of(ends))}
    });
    std::fs::write(
        dir.path().join("e.yaml"),
        serde_yaml_ng::to_string(&doc).unwrap(),
    )
    .unwrap();
    let server = Server::start_with(Options {
        extra_args: vec!["--exceptions".into(), dir.path().display().to_string()],
        ..Options::default()
    });
    common::eventually(Duration::from_secs(5), "the exception", || {
        metric(&server.metrics(), "regent_exceptions{status=\"valid\"}") == 1.0
    })
    .await;
    let t = table();
    let case = t.cases.iter().find(|c| c["name"] == "host-port").unwrap();
    let mut pod = pod_of(&t.base, case);
    pod["metadata"]["name"] = json!("node-exporter-x1");
    pod["metadata"]["namespace"] = json!("monitoring");
    let r = server.review("/validate", &review_of(&pod)).await["response"].clone();
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r["warnings"][0].as_str().unwrap().starts_with(
        "[pod_security] excepted by monitoring/node-exporter (owner observability, until "
    ));
    // Another control of the same policy on the same Pod is still denied.
    pod["spec"]["hostNetwork"] = json!(true);
    let r = server.review("/validate", &review_of(&pod)).await["response"].clone();
    assert_eq!(r["allowed"], false);
    let m = r["status"]["message"].as_str().unwrap();
    assert!(m.contains("spec.hostNetwork"), "{m}");
    assert!(!m.contains("hostPort"), "{m}");
}

fn regent(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn exempt_controls_are_not_checked_in_their_namespaces() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("b");
    std::fs::create_dir_all(b.join("validate/pod_security")).unwrap();
    std::fs::write(
        b.join("validate/pod_security/data.yaml"),
        "parameters:\n  exempt:\n    - namespaces: [monitoring]\n      controls: [host_ports, host_namespaces]\n",
    )
    .unwrap();
    let t = table();
    let case = t.cases.iter().find(|c| c["name"] == "many").unwrap();
    let mut pod = pod_of(&t.base, case);
    pod["metadata"]["namespace"] = json!("monitoring");
    let f = dir.path().join("pod.json");
    std::fs::write(&f, pod.to_string()).unwrap();
    let (code, out) = regent(&[
        "eval",
        "--with-default-bundle",
        "--policies",
        b.to_str().unwrap(),
        "-f",
        f.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 1, "{out}");
    let records: Value = serde_json::from_str(&out).unwrap();
    let paths: BTreeSet<&str> = records[0]["violations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["policy"] == "pod_security" && v["enforcement"] == "deny")
        .map(|v| v["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from(["spec.containers[0].securityContext.privileged"])
    );
}

#[test]
fn audit_prints_a_summary_per_control() {
    let (code, out) = regent(&[
        "audit",
        "-f",
        repo_path("tests/fixtures/real-world").to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    let summary = out
        .split("\nby control, most objects first:\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no per-control summary:\n{out}"));
    let rows: Vec<&str> = summary
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(rows.len() >= 5, "{summary}");
    assert!(rows
        .iter()
        .all(|r| r.trim_start().starts_with("pod_security/")));
    // Most objects first.
    let objects: Vec<u64> = rows
        .iter()
        .map(|r| r.split_whitespace().nth(1).unwrap().parse().unwrap())
        .collect();
    assert!(objects.windows(2).all(|w| w[0] >= w[1]), "{summary}");
    assert!(
        summary.contains("pod_security/host_path_volumes"),
        "{summary}"
    );
}

#[test]
fn no_finding_is_reported_twice_on_the_real_world_fixtures() {
    let (_, out) = regent(&[
        "eval",
        "-f",
        repo_path("tests/fixtures/real-world").to_str().unwrap(),
        "-o",
        "json",
    ]);
    let records: Value = serde_json::from_str(&out).unwrap();
    let mut findings = 0;
    for r in records.as_array().unwrap() {
        let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for v in r["violations"].as_array().unwrap() {
            findings += 1;
            if let Some(p) = v["path"].as_str() {
                by_path
                    .entry(p.to_string())
                    .or_default()
                    .push(v["policy"].as_str().unwrap().to_string());
            }
        }
        for (path, policies) in by_path {
            assert_eq!(
                policies.len(),
                1,
                "{}: {path} reported by {policies:?}",
                r["source"]
            );
        }
    }
    assert!(findings > 50, "{findings} findings");
}
