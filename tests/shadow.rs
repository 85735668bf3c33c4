//! Candidate bundles with the real server, the real audit process and the
//! fake API server: shadow evaluation on live traffic (counted, logged,
//! never deciding), the audit's impact Event, a broken candidate rejected
//! with file:line while the live bundle serves, removal stopping the shadow,
//! `regent promote`, and `--candidate-policies`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::fake_api::{self, FakeApi};
use common::*;
use serde_json::{json, Value};

const BROKEN: &str = "package validate.broken\n\nimport rego.v1\n\nviolation contains msg if {\n  msg := sprintf(\"%v\", [input.x]\n}\n";

const TEAM_LABEL: &str = "package mutate.team\n\nimport rego.v1\n\npatch contains {\"op\": \"add\", \"path\": \"/metadata/labels/owner\", \"value\": \"shop\"} if true\n";

fn pod_with(name: &str, field: Option<&str>) -> Value {
    let mut spec = good_spec();
    if let Some(f) = field {
        spec[f] = json!(true);
    }
    let mut object = object("Pod", spec, pod_meta());
    object["metadata"]["name"] = json!(name);
    let mut r = review("admission.k8s.io/v1", "CREATE", &object);
    r["request"]["name"] = json!(name);
    r
}

/// The live bundle: denies hostPID.
fn live_configmap() -> Value {
    configmap(
        "guardrails",
        "validate/a",
        &[("policy.rego", &deny_field("hostPID", "live"))],
    )
}

/// The candidate: replaces `guardrails`, denies hostPID and hostIPC, and
/// labels every object.
fn candidate_configmap(extra: &[(&str, &str)]) -> Value {
    let mut data = vec![
        ("a/policy.rego", deny_field("hostPID", "candidate")),
        ("b/policy.rego", deny_field("hostIPC", "candidate")),
    ];
    for (k, v) in extra {
        data.push((k, v.to_string()));
    }
    let mut cm = configmap(
        "guardrails-v2",
        "validate",
        &data
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    );
    cm["metadata"]["labels"]["regent.dev/stage"] = json!("candidate");
    cm["metadata"]["annotations"]["regent.dev/replaces"] = json!("guardrails");
    cm
}

fn mutate_configmap() -> Value {
    let mut cm = configmap("labels-v2", "mutate/team", &[("policy.rego", TEAM_LABEL)]);
    cm["metadata"]["labels"]["regent.dev/stage"] = json!("candidate");
    cm
}

const CANDIDATE_INFO: &str = "regent_candidate_info";

fn has_candidate(metrics: &str) -> bool {
    metrics
        .lines()
        .any(|l| l.starts_with(CANDIDATE_INFO) && l.ends_with(" 1"))
}

fn evaluations(metrics: &str, result: &str) -> f64 {
    metric(
        metrics,
        &format!("regent_candidate_evaluations_total{{result=\"{result}\"}}"),
    )
}

fn divergence(metrics: &str, policy: &str, change: &str) -> f64 {
    metric(
        metrics,
        &format!("regent_candidate_divergence_total{{change=\"{change}\",policy=\"{policy}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_is_shadow_evaluated_counted_logged_and_summed_up_by_the_audit() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(live_configmap());
    api.apply(candidate_configmap(&[]));
    api.apply(mutate_configmap());
    let server = configmap_server(&api, tmp.path(), "regent-0");
    eventually(Duration::from_secs(10), "the candidate to be ready", || {
        has_candidate(&server.metrics())
    })
    .await;
    eventually(Duration::from_secs(5), "the candidate status", || {
        status_of(&api, "guardrails-v2", "regent-0")
            .is_some_and(|s| s["stage"] == "candidate" && s["result"] == "loaded")
    })
    .await;
    assert!(api
        .events()
        .iter()
        .any(|e| e["reason"] == "CandidateLoaded" && e["regarding"]["name"] == "guardrails-v2"));

    // The candidate would deny hostIPC: the live bundle admits it.
    let resp = server
        .review("/validate", &pod_with("ipc-pod", Some("hostIPC")))
        .await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    // Both deny hostPID: no divergence.
    let resp = server
        .review("/validate", &pod_with("pid-pod", Some("hostPID")))
        .await;
    assert_eq!(resp["response"]["allowed"], false);
    // The candidate labels what the live bundle leaves alone.
    let resp = server.review("/mutate", &pod_with("plain-pod", None)).await;
    assert_eq!(resp["response"]["allowed"], true);
    assert!(patch_of(&resp).is_none(), "the live bundle does not mutate");

    eventually(
        Duration::from_secs(5),
        "the divergences to be counted",
        || {
            let m = server.metrics();
            divergence(&m, "deny_hostipc", "newly_denied") == 1.0
                && divergence(&m, "team", "patch_differs") == 1.0
                && evaluations(&m, "same") >= 1.0
        },
    )
    .await;
    let m = server.metrics();
    assert_eq!(evaluations(&m, "diverged"), 2.0, "{m}");
    assert_eq!(evaluations(&m, "dropped"), 0.0);
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("candidate bundle diverges") && l.contains("ipc-pod"))
        .unwrap_or_else(|| panic!("no divergence log line:\n{log}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["fields"]["kind"], "Pod");
    assert_eq!(v["fields"]["namespace"], "shop");
    assert!(v["fields"]["changes"]
        .as_str()
        .unwrap()
        .contains("newly_denied: deny_hostipc"));
    assert!(
        !line.contains("containers"),
        "the object is never logged: {line}"
    );

    // The audit: three Pods in two namespaces the candidate would deny.
    let mut pods = Vec::new();
    for (name, ns, field) in [
        ("a", "shop", Some("hostIPC")),
        ("b", "shop", Some("hostIPC")),
        ("c", "payments", Some("hostIPC")),
        ("d", "payments", None),
    ] {
        let mut p = pod_with(name, field)["request"]["object"].clone();
        p["metadata"]["namespace"] = json!(ns);
        pods.push(p);
    }
    api.seed_objects("", "pods", pods);
    let audit = AuditProcess::start(
        &api.kubeconfig(tmp.path()),
        "audit-0",
        &["--watch-configmaps", "--leader-election", "false"],
    );
    eventually(
        Duration::from_secs(30),
        "the candidate's impact Event",
        || {
            api.events()
                .iter()
                .any(|e| e["reason"] == "CandidateImpact")
        },
    )
    .await;
    let events = api.events();
    let impact = events
        .iter()
        .find(|e| e["reason"] == "CandidateImpact")
        .unwrap();
    assert_eq!(impact["regarding"]["name"], "guardrails-v2");
    assert_eq!(impact["type"], "Warning");
    let note = impact["note"].as_str().unwrap();
    assert!(
        note.contains("would newly deny 3 objects in 2 namespaces: deny_hostipc 3"),
        "{note}"
    );
    // The annotation is written right after the Event.
    eventually(Duration::from_secs(5), "the impact annotation", || {
        api.configmap("guardrails-v2").unwrap()["metadata"]["annotations"]
            ["audit.regent.dev/candidate"]
            .is_string()
    })
    .await;
    let cm = api.configmap("guardrails-v2").unwrap();
    let annotation: Value = serde_json::from_str(
        cm["metadata"]["annotations"]["audit.regent.dev/candidate"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(annotation["changes"]["newly_denied"]["objects"], 3);
    assert_eq!(
        annotation["changes"]["newly_denied"]["policies"]["deny_hostipc"],
        3
    );
    let am = audit.metrics();
    assert_eq!(
        metric(
            &am,
            "regent_audit_candidate_objects{change=\"newly_denied\",policy=\"deny_hostipc\"}"
        ),
        3.0,
        "{am}"
    );
    let alog = audit.log_text();
    assert!(
        alog.lines().any(
            |l| l.contains("candidate bundle judges this object differently")
                && l.contains("\"name\":\"c\"")
                && l.contains("payments")
        ),
        "{alog}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_candidate_is_rejected_and_removing_the_candidate_stops_the_shadow() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(live_configmap());
    api.apply(candidate_configmap(&[("broken/policy.rego", BROKEN)]));
    let server = configmap_server(&api, tmp.path(), "regent-1");
    eventually(
        Duration::from_secs(10),
        "the candidate to be rejected",
        || {
            status_of(&api, "guardrails-v2", "regent-1")
                .is_some_and(|s| s["stage"] == "candidate" && s["result"] == "rejected")
        },
    )
    .await;
    let status = status_of(&api, "guardrails-v2", "regent-1").unwrap();
    let error = status["error"].as_str().unwrap();
    assert!(
        error.starts_with("configmap/guardrails-v2/broken/policy.rego:6:7: "),
        "{error}"
    );
    let event = api
        .events()
        .into_iter()
        .find(|e| e["reason"] == "CandidateRejected")
        .expect("a CandidateRejected event");
    assert_eq!(event["type"], "Warning");
    assert!(event["note"]
        .as_str()
        .unwrap()
        .contains("configmap/guardrails-v2/broken/policy.rego:6:7"));
    // The live bundle serves, unaffected, and its status says loaded (the
    // two status writes are independent: the live one may land second).
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    eventually(Duration::from_secs(10), "the live status", || {
        status_of(&api, "guardrails", "regent-1").is_some_and(|s| s["result"] == "loaded")
    })
    .await;
    let resp = server
        .review("/validate", &pod_with("p", Some("hostPID")))
        .await;
    assert_eq!(resp["response"]["allowed"], false);
    let m = server.metrics();
    assert!(!has_candidate(&m));
    assert_eq!(
        metric(&m, "regent_candidate_reloads_total{result=\"failure\"}"),
        1.0
    );
    assert_eq!(evaluations(&m, "same") + evaluations(&m, "diverged"), 0.0);

    // Fixed: shadow evaluation runs.
    api.apply(candidate_configmap(&[]));
    eventually(Duration::from_secs(10), "the fixed candidate", || {
        has_candidate(&server.metrics())
    })
    .await;
    server
        .review("/validate", &pod_with("q", Some("hostIPC")))
        .await;
    eventually(Duration::from_secs(5), "a shadow evaluation", || {
        evaluations(&server.metrics(), "diverged") == 1.0
    })
    .await;

    // Removed: shadow evaluation stops, the live bundle is unchanged.
    api.delete("guardrails-v2");
    eventually(Duration::from_secs(10), "the candidate to go", || {
        !has_candidate(&server.metrics())
    })
    .await;
    for i in 0..5 {
        let resp = server
            .review("/validate", &pod_with(&format!("r{i}"), Some("hostIPC")))
            .await;
        assert_eq!(resp["response"]["allowed"], true);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let m = server.metrics();
    assert_eq!(evaluations(&m, "diverged"), 1.0, "{m}");
    assert_eq!(evaluations(&m, "same"), 0.0);
    assert!(server.log_text().contains("candidate bundle removed"));
}

fn promote(api: &FakeApi, dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["promote", "--namespace", fake_api::NAMESPACE])
        .args(extra)
        .env("KUBECONFIG", api.kubeconfig(dir))
        .output()
        .unwrap()
}

fn stage_of(api: &FakeApi, name: &str) -> Value {
    api.configmap(name).unwrap()["metadata"]["labels"]["regent.dev/stage"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_relabels_after_compiling_and_the_server_follows() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(live_configmap());
    // Nothing to promote.
    let out = promote(&api, tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no candidate"));

    // A broken candidate is refused and nothing is relabelled.
    api.apply(candidate_configmap(&[("broken/policy.rego", BROKEN)]));
    let out = promote(&api, tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configmap/guardrails-v2/broken/policy.rego:6:7"),
        "{stderr}"
    );
    assert_eq!(stage_of(&api, "guardrails-v2"), "candidate");

    api.apply(candidate_configmap(&[]));
    let server = configmap_server(&api, tmp.path(), "regent-2");
    eventually(Duration::from_secs(10), "the candidate", || {
        has_candidate(&server.metrics())
    })
    .await;
    assert_eq!(
        server
            .review("/validate", &pod_with("x", Some("hostIPC")))
            .await["response"]["allowed"],
        true
    );
    // --dry-run changes nothing.
    let out = promote(&api, tmp.path(), &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("would label"));
    assert_eq!(stage_of(&api, "guardrails-v2"), "candidate");

    let out = promote(&api, tmp.path(), &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("compiles"), "{stdout}");
    assert_eq!(stage_of(&api, "guardrails-v2"), "live");
    assert_eq!(stage_of(&api, "guardrails"), "retired");
    // The server now enforces the promoted bundle, and has no candidate.
    eventually(
        Duration::from_secs(5),
        "the promoted bundle to decide",
        || !has_candidate(&server.metrics()),
    )
    .await;
    assert_eq!(
        server
            .review("/validate", &pod_with("y", Some("hostIPC")))
            .await["response"]["allowed"],
        false
    );
    assert_eq!(
        server
            .review("/validate", &pod_with("z", Some("hostPID")))
            .await["response"]["allowed"],
        false
    );
    assert_eq!(
        metric(
            &server.metrics(),
            "regent_bundle_reloads_total{result=\"failure\"}"
        ),
        0.0,
        "promotion never made a bundle with both versions"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidate_directory_next_to_the_embedded_bundle() {
    // The default bundle admits a Pod without a team label; the candidate
    // (the default bundle plus one policy) denies it.
    let candidate = bundle_dir(&[(
        "validate/team/policy.rego",
        "package validate.team\n\nimport rego.v1\n\nviolation contains {\"msg\": \"no team label\", \"path\": \"metadata.labels\"} if not input.request.object.metadata.labels[\"cost-center\"]\n",
    )]);
    let server = Server::start_with(Options {
        extra_args: vec![
            "--candidate-policies".into(),
            candidate.path().display().to_string(),
        ],
        ..Options::default()
    });
    eventually(Duration::from_secs(10), "the candidate", || {
        has_candidate(&server.metrics())
    })
    .await;
    let resp = server.review("/validate", &pod_with("t", None)).await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    eventually(Duration::from_secs(5), "the divergence", || {
        divergence(&server.metrics(), "team", "newly_denied") == 1.0
    })
    .await;
}
