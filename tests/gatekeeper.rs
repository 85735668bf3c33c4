//! Gatekeeper compatibility end to end: `regent verify` on our own gator
//! suites, the same templates and Constraints served by `regent serve` giving
//! the same decisions, enforcement actions and ExpansionTemplates at the
//! webhook, the inventory watch, and broken templates or parameters rejected
//! through the reload path while the last good bundle keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn regent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn verify_json(path: &str) -> (i32, Vec<Value>) {
    let out = regent(&["verify", path, "--output", "json"]);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    (out.status.code().unwrap(), records)
}

/// An AdmissionReview for an object, as the API server sends it on CREATE;
/// an AdmissionReview from a suite is sent as it is.
fn review_for(object: &Value) -> Value {
    if object["kind"] == "AdmissionReview" {
        return object.clone();
    }
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let mut request = json!({
        "uid": "7d1f5c2e-1111-4000-8000-00000000abcd",
        "kind": {"group": group, "version": version, "kind": object["kind"]},
        "resource": {"group": group, "version": version, "resource": "things"},
        "operation": "CREATE",
        "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
        "object": object,
        "oldObject": null,
        "dryRun": false,
    });
    for field in ["name", "namespace"] {
        if let Some(v) = object["metadata"][field].as_str() {
            request[field] = json!(v);
        }
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

fn read_yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn verify_passes_every_case_of_our_suites() {
    let (code, records) = verify_json("tests/fixtures/gatekeeper");
    let failed: Vec<&Value> = records.iter().filter(|r| r["passed"] != true).collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(code, 0);
    // Every case of every suite ran: nothing was silently dropped.
    assert_eq!(records.len(), 39, "{records:#?}");
    let five = records
        .iter()
        .find(|r| r["case"] == "five-is-too-many")
        .unwrap();
    assert_eq!(
        five["messages"],
        json!(["5 replicas is more than the 3 allowed"])
    );
    let text = regent(&["verify", "tests/fixtures/gatekeeper"]);
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains("5 suites, 39 cases: 39 passed, 0 failed, 0 skipped"),
        "{stdout}"
    );
}

#[test]
fn verify_reports_each_failure_and_exits_1() {
    let (code, records) = verify_json("tests/fixtures/gatekeeper-failing");
    assert_eq!(code, 1);
    let why = |case: &str| -> String {
        let r = records
            .iter()
            .find(|r| r["case"] == case)
            .unwrap_or_else(|| panic!("no record {case}: {records:#?}"));
        assert_eq!(r["passed"], false, "{r}");
        r["why"].as_str().unwrap_or_default().to_string()
    };
    assert!(why("wants-two").contains("got 1 violation(s)"));
    assert!(why("wants-two").contains("want exactly 2"));
    assert!(why("message-does-not-match").contains("matching \"no such text\""));
    assert!(why("missing-object-file").contains("nowhere.yaml"));
    assert!(why("two-objects-in-one-file").contains("exactly one"));
    assert!(why("(invalid constraint)").contains("test says it is invalid"));
    let cel = why("any");
    assert!(
        cel.contains("K8sNativeValidation") && cel.contains("not enforced"),
        "{cel}"
    );
    let skipped = records.iter().find(|r| r["case"] == "skipped").unwrap();
    assert_eq!(skipped["skipped"], true);
    assert_eq!(records.iter().filter(|r| r["passed"] == true).count(), 0);
    // Nothing to verify is a usage error.
    assert_eq!(regent(&["verify", "no/such/dir"]).status.code(), Some(2));
    assert_eq!(regent(&["verify", "src"]).status.code(), Some(2));
}

/// Acceptance 2: each test's template and Constraint, served by
/// `regent serve`, decide each case exactly as `regent verify` did: denied
/// with one `[constraint] msg` line per violation message, or admitted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_decisions_equal_verify_decisions() {
    let root = repo_path("tests/fixtures/gatekeeper");
    let (_, records) = verify_json("tests/fixtures/gatekeeper");
    let mut compared = 0;
    for suite_dir in ["labels", "match", "v1", "inventory"] {
        let dir = root.join(suite_dir);
        let suite = read_yaml(&dir.join("suite.yaml"));
        for test in suite["tests"].as_array().unwrap() {
            if test["invalid"] == true {
                continue;
            }
            let template =
                std::fs::read_to_string(dir.join(test["template"].as_str().unwrap())).unwrap();
            let constraint_path = dir.join(test["constraint"].as_str().unwrap());
            let constraint_text = std::fs::read_to_string(&constraint_path).unwrap();
            let name = read_yaml(&constraint_path)["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string();
            let bundle = bundle_dir(&[
                ("gatekeeper/template.yaml", &template),
                ("gatekeeper/constraint.yaml", &constraint_text),
            ]);
            let server = Server::start_with(Options {
                policies: Some(bundle.path().to_path_buf()),
                ..Options::default()
            });
            for case in test["cases"].as_array().unwrap() {
                // The server's inventory comes from the cluster watch, tested below.
                if case.get("inventory").is_some() {
                    continue;
                }
                let case_name = case["name"].as_str().unwrap();
                let record = records
                    .iter()
                    .find(|r| r["test"] == test["name"] && r["case"] == case_name)
                    .unwrap();
                let object = read_yaml(&dir.join(case["object"].as_str().unwrap()));
                let resp = server.review("/validate", &review_for(&object)).await;
                let r = &resp["response"];
                let messages: Vec<String> = record["messages"]
                    .as_array()
                    .map(|m| m.iter().map(|s| s.as_str().unwrap().to_string()).collect())
                    .unwrap_or_default();
                let what = format!("{suite_dir}/{}/{case_name}: {resp}", test["name"]);
                if messages.is_empty() {
                    assert_eq!(r["allowed"], true, "{what}");
                } else {
                    assert_eq!(r["allowed"], false, "{what}");
                    let text = r["status"]["message"].as_str().unwrap();
                    let lines: Vec<&str> = text.lines().skip(1).map(str::trim).collect();
                    let mut want: Vec<String> =
                        messages.iter().map(|m| format!("[{name}] {m}")).collect();
                    want.sort();
                    want.dedup();
                    let mut got: Vec<String> = lines
                        .iter()
                        .map(|l| l.trim_start_matches("- ").to_string())
                        .collect();
                    got.sort();
                    assert_eq!(got, want, "{what}");
                }
                compared += 1;
            }
        }
    }
    assert!(compared >= 25, "compared only {compared} cases");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforcement_actions_at_the_webhook() {
    let root = repo_path("tests/fixtures/gatekeeper/enforcement");
    let read = |f: &str| std::fs::read_to_string(root.join(f)).unwrap();
    let bundle = bundle_dir(&[
        ("gk/template.yaml", &read("template.yaml")),
        ("gk/warn.yaml", &read("constraint_warn.yaml")),
        ("gk/dryrun.yaml", &read("constraint_dryrun.yaml")),
        (
            "gk/scoped_webhook.yaml",
            &read("constraint_scoped_webhook.yaml"),
        ),
        (
            "gk/scoped_gator.yaml",
            &read("constraint_scoped_gator.yaml"),
        ),
    ]);
    let server = Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        ..Options::default()
    });
    let pod = read_yaml(&root.join("pod.yaml"));
    let resp = server.review("/validate", &review_for(&pod)).await;
    let r = &resp["response"];
    assert_eq!(r["allowed"], false, "{resp}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[scoped-webhook-only] matched Pod web-1"),
        "{message}"
    );
    assert!(!message.contains("action-"), "{message}");
    assert!(!message.contains("scoped-gator"), "{message}");
    assert_eq!(
        r["warnings"],
        json!(["[action-warn] matched Pod web-1"]),
        "{resp}"
    );
    assert_eq!(
        r["auditAnnotations"]["dryrun-by"], "action-dryrun",
        "{resp}"
    );
    assert_eq!(r["auditAnnotations"]["denied-by"], "scoped-webhook-only");
    assert_eq!(r["auditAnnotations"]["warned-by"], "action-warn");
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_policy_violations_total{enforcement=\"dryrun\",policy=\"action-dryrun\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "regent_bundle_policies{kind=\"constraint\"}"),
        4.0
    );
}

/// Acceptance 4 of the Gatekeeper-at-scale issue: one Constraint that fails
/// to evaluate is that Constraint's result. The other Constraint still
/// denies; the failing one follows the failure mode on its own (deny: a
/// line in the denial; allow: a warning) and is counted; a failing `warn`
/// Constraint is a warning either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_constraint_that_fails_to_evaluate_does_not_hide_the_others() {
    let iso = repo_path("tests/fixtures/gatekeeper-failing/isolation");
    let labels = repo_path("tests/fixtures/gatekeeper/labels");
    let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let files = [
        ("gk/explodes.yaml", read(&iso, "template_error.yaml")),
        ("gk/explodes_deny.yaml", read(&iso, "constraint_error.yaml")),
        (
            "gk/explodes_warn.yaml",
            read(&iso, "constraint_error_warn.yaml"),
        ),
        ("gk/labels.yaml", read(&labels, "template.yaml")),
        ("gk/owner.yaml", read(&labels, "constraint.yaml")),
    ];
    let files: Vec<(&str, &str)> = files.iter().map(|(p, s)| (*p, s.as_str())).collect();
    let bundle = bundle_dir(&files);
    let pod = read_yaml(&iso.join("pod.yaml"));
    let error_line =
        "[explodes] could not be evaluated: policy evaluation exceeded its memory limit of 32 MiB";
    let warn_line =
        "[explodes-warn] could not be evaluated: policy evaluation exceeded its memory limit of 32 MiB";
    let owner_line = "[must-have-owner] web-1: you must provide labels: [\"owner\"]";
    for mode in ["deny", "allow"] {
        let server = Server::start_with(Options {
            policies: Some(bundle.path().to_path_buf()),
            extra_args: vec!["--failure-mode".to_string(), mode.to_string()],
            ..Options::default()
        });
        let resp = server.review("/validate", &review_for(&pod)).await;
        let r = &resp["response"];
        assert_eq!(r["allowed"], false, "{mode}: {resp}");
        let message = r["status"]["message"].as_str().unwrap();
        assert!(message.contains(owner_line), "{mode}: {message}");
        let warnings: Vec<&str> = r["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|w| w.as_str())
            .collect();
        assert!(warnings.contains(&warn_line), "{mode}: {warnings:?}");
        if mode == "deny" {
            assert!(message.contains(error_line), "{message}");
            assert_eq!(warnings.len(), 1, "{warnings:?}");
        } else {
            assert!(!message.contains("explodes"), "{message}");
            assert!(
                warnings
                    .iter()
                    .any(|w| w.starts_with(error_line) && w.contains("failure mode allow")),
                "{warnings:?}"
            );
        }
        assert_eq!(
            r["auditAnnotations"]["policy-errors"], "explodes,explodes-warn",
            "{resp}"
        );
        let metrics = server.metrics();
        for policy in ["explodes", "explodes-warn"] {
            assert_eq!(
                metric(
                    &metrics,
                    &format!("regent_policy_errors_total{{policy=\"{policy}\",reason=\"memory\"}}")
                ),
                1.0,
                "{metrics}"
            );
        }
        // A Pod the failing template can judge is decided as usual.
        let mut fine = pod.clone();
        fine["metadata"]["labels"] = json!({"owner": "me.agilebank.demo"});
        let resp = server.review("/validate", &review_for(&fine)).await;
        assert_eq!(resp["response"]["allowed"], true, "{mode}: {resp}");
    }
    // `regent verify` reports the error on the case, in the same words.
    let (code, records) = verify_json("tests/fixtures/gatekeeper-failing/isolation");
    assert_eq!(code, 1);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["passed"], false);
    assert_eq!(records[0]["why"], error_line, "{records:?}");
}

/// A bundle rejected because of one template names that template first, in
/// one line; a call to a function that exists nowhere is caught at load even
/// when an ordinary Pod never reaches it.
#[test]
fn a_broken_template_among_many_is_named_first_in_one_line() {
    let iso = repo_path("tests/fixtures/gatekeeper-failing/isolation");
    let labels = repo_path("tests/fixtures/gatekeeper/labels");
    let enforcement = repo_path("tests/fixtures/gatekeeper/enforcement");
    let read = |dir: &Path, f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let good = read(&iso, "template_error.yaml");
    let cases = [
        (
            good.replace("count(numbers.range(1, size)) < 0", "nosuchfn(size)"),
            "Unknown function: 'nosuchfn'",
        ),
        (
            good.replace(
                "count(numbers.range(1, size)) < 0",
                "count(numbers.range(1, size) < 0",
            ),
            "expecting `)`",
        ),
    ];
    for (broken, cause) in cases {
        assert_ne!(broken, good);
        let bundle = bundle_dir(&[
            ("gk/labels.yaml", &read(&labels, "template.yaml")),
            ("gk/matched.yaml", &read(&enforcement, "template.yaml")),
            ("gk/zz-broken.yaml", &broken),
        ]);
        let out = regent(&["check", bundle.path().to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(
                "error: ConstraintTemplate regenttestexplodes does not compile: gk/zz-broken.yaml:"
            ) && first.contains(cause),
            "{err}"
        );
    }
}

fn workload(kind: &str, api_version: &str, pod_spec_path: &[&str], image: &str) -> Value {
    let mut object = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": "web", "namespace": "shop"},
    });
    let template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": image}]}
    });
    let mut at = &mut object;
    for p in pod_spec_path {
        at = &mut at[*p];
    }
    *at = template;
    object
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expansion_templates_apply_pod_constraints_to_workloads() {
    let text =
        std::fs::read_to_string(repo_path("tests/fixtures/gatekeeper-bundle/latest.yaml")).unwrap();
    let bundle = bundle_dir(&[("gatekeeper.yaml", &text)]);
    let server = Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        ..Options::default()
    });
    // The Pod itself: the constraint's own words.
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "shop"},
                     "spec": {"containers": [{"name": "web", "image": "nginx:latest"}]}});
    let resp = server.review("/validate", &review_for(&pod)).await;
    assert!(resp["response"]["status"]["message"]
        .as_str()
        .unwrap()
        .contains("[images-pinned] container <web> uses an unpinned image <nginx:latest>"));
    // A Deployment: the Pod it implies, with Gatekeeper's prefix; denied.
    let deploy = workload("Deployment", "apps/v1", &["spec", "template"], "nginx");
    let resp = server.review("/validate", &review_for(&deploy)).await;
    let r = &resp["response"];
    assert_eq!(r["allowed"], false, "{resp}");
    let message = r["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("[images-pinned] [Implied by expand-deployments] container <web> uses an unpinned image <nginx>"),
        "{message}"
    );
    // A CronJob: the expansion says warn.
    let cron = workload(
        "CronJob",
        "batch/v1",
        &["spec", "jobTemplate", "spec", "template"],
        "nginx",
    );
    let resp = server.review("/validate", &review_for(&cron)).await;
    let r = &resp["response"];
    assert_eq!(r["allowed"], true, "{resp}");
    assert_eq!(
        r["warnings"],
        json!(["[images-pinned] [Implied by expand-cronjobs] container <web> uses an unpinned image <nginx>"])
    );
    // Pinned images pass everywhere; kinds no expansion names are not expanded.
    for object in [
        workload("Deployment", "apps/v1", &["spec", "template"], "nginx:1.27"),
        workload("DaemonSet", "apps/v1", &["spec", "template"], "nginx"),
    ] {
        let resp = server.review("/validate", &review_for(&object)).await;
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
        assert!(resp["response"].get("warnings").is_none(), "{resp}");
    }
}

/// Acceptance 3: a template whose Rego does not compile, and a Constraint
/// whose parameters break the schema, are rejected through the reload path
/// with file and position; the last good bundle keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_templates_and_parameters_are_rejected_on_reload() {
    let root = repo_path("tests/fixtures/gatekeeper/labels");
    let template = std::fs::read_to_string(root.join("template.yaml")).unwrap();
    let constraint = std::fs::read_to_string(root.join("constraint.yaml")).unwrap();
    let mut dir = KubeletDir::new(&[
        ("gk/template.yaml", &template),
        ("gk/constraint.yaml", &constraint),
    ]);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        ..Options::default()
    });
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "payments"}});
    let denied = || async {
        let resp = server.review("/validate", &review_for(&ns)).await;
        resp["response"]["allowed"] == false
    };
    assert!(denied().await);
    // Rego that does not compile: `:=` with nothing after it, in the lib.
    let broken = template.replace("labels := obj.metadata.labels", "labels := ");
    assert_ne!(broken, template);
    dir.update(&[
        ("gk/template.yaml", &broken),
        ("gk/constraint.yaml", &constraint),
    ]);
    eventually(
        Duration::from_secs(10),
        "the broken template is rejected",
        || server.log_text().contains("policy bundle rejected"),
    )
    .await;
    let logs = server.log_text();
    let line = logs
        .lines()
        .find(|l| l.contains("policy bundle rejected"))
        .unwrap();
    assert!(line.contains("gk/template.yaml:"), "{line}");
    assert!(
        line.contains("ConstraintTemplate regenttestlabels does not compile: gk/template.yaml:"),
        "{line}"
    );
    assert!(line.contains("libs[0]"), "{line}");
    // The YAML line of the Rego line regorus names is given: lib line L is
    // file line (first line of the lib) + L - 1.
    let rego_line: usize = line
        .split("libs[0]:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let lib_start = broken
        .lines()
        .position(|l| l.trim() == "package lib.regenttest")
        .unwrap()
        + 1;
    let file_line = lib_start + rego_line - 1;
    assert!(
        line.contains(&format!("gk/template.yaml:{file_line}:")),
        "want line {file_line}: {line}"
    );
    assert!(denied().await, "the last good bundle still serves");
    // Parameters that break the schema.
    let bad = constraint.replace("- key: owner", "- key: 7");
    dir.update(&[
        ("gk/template.yaml", &template),
        ("gk/constraint.yaml", &bad),
    ]);
    eventually(
        Duration::from_secs(10),
        "the bad constraint is rejected",
        || {
            server
                .log_text()
                .contains("spec.parameters.labels[0].key: must be of type string")
        },
    )
    .await;
    let logs = server.log_text();
    assert!(logs.contains("RegentTestLabels must-have-owner"), "{logs}");
    assert!(denied().await, "the last good bundle still serves");
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
}

/// `regent check` reports a CEL-only template without failing the bundle.
#[test]
fn cel_only_templates_are_reported_not_fatal() {
    let cel = repo_path("tests/fixtures/gatekeeper-failing/cel");
    let labels = repo_path("tests/fixtures/gatekeeper/labels");
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    let bundle = bundle_dir(&[
        ("cel/template.yaml", &read(&cel, "template.yaml")),
        ("cel/constraint.yaml", &read(&cel, "constraint.yaml")),
        ("labels/template.yaml", &read(&labels, "template.yaml")),
        ("labels/constraint.yaml", &read(&labels, "constraint.yaml")),
    ]);
    let out = regent(&["check", bundle.path().to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("regenttestcelonly"), "{text}");
    assert!(text.contains("not enforced"), "{text}");
    assert!(text.contains("1 Gatekeeper constraint"), "{text}");
}

/// The inventory comes from a cluster-wide watch of the listed kinds: a
/// namespaceSelector reads the Namespace's labels and a referential template
/// sees the ServiceAccounts, both updated live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_watch_feeds_referential_constraints() {
    let api = fake_api::FakeApi::start().await;
    let kube_dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(kube_dir.path());
    api.apply_object(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop", "labels": {"env": "prod"}}}),
    );
    let inv = repo_path("tests/fixtures/gatekeeper/inventory");
    let read = |f: &str| std::fs::read_to_string(inv.join(f)).unwrap();
    let selector = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: RegentTestServiceAccount\nmetadata:\n  name: sa-in-prod\nspec:\n  match:\n    kinds: [{apiGroups: [\"\"], kinds: [Pod]}]\n    namespaceSelector: {matchLabels: {env: prod}}\n";
    let bundle = bundle_dir(&[
        ("gk/template.yaml", &read("template.yaml")),
        ("gk/constraint.yaml", selector),
    ]);
    let server = Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        extra_args: vec![
            "--inventory".into(),
            "v1/Namespace,v1/ServiceAccount".into(),
        ],
        env: vec![("KUBECONFIG".into(), kubeconfig.display().to_string())],
        ..Options::default()
    });
    let pod = read_yaml(&inv.join("pod.yaml"));
    eventually(
        Duration::from_secs(10),
        "the namespace is in the inventory",
        || {
            metric(
                &server.metrics(),
                "regent_inventory_objects{kind=\"v1/Namespace\"}",
            ) == 1.0
        },
    )
    .await;
    // The inventory is rebuilt shortly after the watch reports.
    let mut resp = Value::Null;
    for _ in 0..200 {
        resp = server.review("/validate", &review_for(&pod)).await;
        // Until the Namespace is there, the Constraint's namespaceSelector
        // is an evaluation error of that Constraint (a denial line too).
        if resp["response"]["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("does not exist")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(resp["response"]["allowed"], false, "{resp}");
    assert!(
        resp["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[sa-in-prod] service account api does not exist in namespace shop"),
        "{resp}"
    );
    // The account appears: admitted, without a restart.
    api.apply_object(
        "serviceaccounts",
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "api", "namespace": "shop"}}),
    );
    let mut last = Value::Null;
    let mut allowed = false;
    for _ in 0..200 {
        last = server.review("/validate", &review_for(&pod)).await;
        if last["response"]["allowed"] == true {
            allowed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(allowed, "{last}");
    // A new prod namespace: its pods are checked as soon as it is listed.
    api.apply_object(
        "namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "billing", "labels": {"env": "prod"}}}),
    );
    let other = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "billing"},
                       "spec": {"serviceAccountName": "nobody", "containers": [{"name": "c", "image": "nginx"}]}});
    let mut denied = false;
    for _ in 0..200 {
        let r = server.review("/validate", &review_for(&other)).await;
        if r["response"]["allowed"] == false && r["response"]["status"]["code"] == 403 {
            denied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(denied, "a pod in a newly listed prod namespace is checked");
}
