//! Audit, offline and in the cluster. The cluster side runs the real
//! `regent audit --cluster` against the fake API server (discovery,
//! paginated lists, watches, report resources with resourceVersions,
//! Leases): the first scan writes one report per failing resource, a fixed
//! object loses its report and a broken one gains one within a second, a
//! bundle change rewrites only the reports it changes and an unchanged scan
//! writes nothing, a policy reading `userInfo` is skipped, a forbidden kind
//! is reported while the rest is audited, only the Lease holder writes and a
//! standby takes over, and `regent audit -o yaml` writes exactly what the
//! cluster audit wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, NAMESPACE};
use common::*;
use serde_json::{json, Value};

fn pod(name: &str, namespace: &str, bad: bool) -> Value {
    let image = if bad {
        "nginx:latest"
    } else {
        "registry.example.com/web:1.4.2"
    };
    json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/name": name}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "app", "image": image,
                "securityContext": {"privileged": bad, "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                              "limits": {"cpu": "500m", "memory": "128Mi"}}
            }]
        }
    })
}

fn deployment(name: &str, namespace: &str, bad: bool) -> Value {
    let p = pod(name, namespace, bad);
    json!({
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name, "app.kubernetes.io/name": name}},
                              "spec": p["spec"]}}
    })
}

fn reports(api: &FakeApi) -> Vec<Value> {
    api.objects("wgpolicyk8s.io", "policyreports")
}

fn report_for(api: &FakeApi, uid: &str) -> Option<Value> {
    reports(api)
        .into_iter()
        .find(|r| r["metadata"]["name"] == uid)
}

fn uid_of(api: &FakeApi, group: &str, resource: &str, ns: &str, name: &str) -> String {
    api.object(group, resource, ns, name).unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn ready(audit: &AuditProcess) -> Duration {
    eventually(Duration::from_secs(30), "the first full scan", || {
        audit.ready()
    })
    .await
}

fn policies_of(report: &Value, result: &str) -> BTreeSet<String> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == result)
        .map(|r| r["policy"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn first_scan_writes_a_report_per_failing_resource_and_follows_changes() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.seed_objects(
        "",
        "pods",
        vec![
            pod("good-1", "shop", false),
            pod("good-2", "shop", false),
            pod("bad-1", "shop", true),
            pod("bad-2", "payments", true),
        ],
    );
    api.seed_objects("apps", "deployments", vec![deployment("web", "shop", true)]);
    let audit = AuditProcess::start(&api.kubeconfig(tmp.path()), "audit-0", &[]);
    ready(&audit).await;
    // Reports are written at --report-qps (20/s): three of them.
    eventually(Duration::from_secs(10), "three reports", || {
        reports(&api).len() == 3
    })
    .await;
    let bad = uid_of(&api, "", "pods", "payments", "bad-2");
    let r = report_for(&api, &bad).unwrap();
    assert_eq!(r["kind"], "PolicyReport");
    assert_eq!(r["metadata"]["namespace"], "payments");
    assert_eq!(r["metadata"]["ownerReferences"][0]["uid"], bad.as_str());
    assert_eq!(r["metadata"]["ownerReferences"][0]["kind"], "Pod");
    assert_eq!(
        r["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "regent"
    );
    assert_eq!(
        r["scope"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "bad-2", "namespace": "payments", "uid": bad})
    );
    assert_eq!(
        policies_of(&r, "fail"),
        ["image_tag", "pod_security"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let privileged = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["policy"] == "pod_security")
        .unwrap();
    assert_eq!(privileged["source"], "regent");
    assert_eq!(privileged["severity"], "high");
    assert_eq!(privileged["category"], "Pod Security");
    assert_eq!(privileged["scored"], true);
    assert_eq!(privileged["properties"]["enforcement"], "deny");
    assert_eq!(privileged["properties"]["control"], "privileged");
    assert!(privileged["message"]
        .as_str()
        .unwrap()
        .starts_with("[pod_security] spec.containers[0].securityContext.privileged:"));
    // Pass results are counted, not listed.
    assert!(
        r["summary"]["pass"].as_u64().unwrap() >= 5,
        "{}",
        r["summary"]
    );
    assert_eq!(policies_of(&r, "pass"), BTreeSet::new());
    let good = uid_of(&api, "", "pods", "shop", "good-1");
    assert!(report_for(&api, &good).is_none());
    let deployment_uid = uid_of(&api, "apps", "deployments", "shop", "web");
    assert!(report_for(&api, &deployment_uid).is_some());

    let metrics = audit.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_audit_results{policy=\"pod_security\",result=\"fail\"}"
        ),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "regent_audit_results{policy=\"pod_security\",result=\"pass\"}"
        ),
        2.0
    );
    assert_eq!(
        metric(&metrics, "regent_audit_objects{kind=\"v1/Pod\"}"),
        4.0
    );
    assert_eq!(metric(&metrics, "regent_audit_scans_total"), 1.0);
    let status = audit.status();
    assert_eq!(status["leader"], true);
    assert!(status["kinds"]
        .as_array()
        .unwrap()
        .contains(&json!("apps/v1/Deployment")));

    // Fixed: its report goes. Broken: a report within a second.
    api.put_object("", "pods", pod("bad-2", "payments", false));
    eventually(
        Duration::from_secs(3),
        "the fixed pod's report deleted",
        || report_for(&api, &bad).is_none(),
    )
    .await;
    api.put_object("", "pods", pod("good-1", "shop", true));
    let took = eventually(Duration::from_secs(3), "the broken pod's report", || {
        report_for(&api, &good).is_some()
    })
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A deleted object's report goes with it.
    api.delete_object("", "pods", "shop", "good-1");
    eventually(Duration::from_secs(3), "the deleted pod's report", || {
        report_for(&api, &good).is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lists_are_read_page_by_page_and_every_object_is_audited() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    // 1,203 Pods: three pages of 500 and a short one.
    let pods: Vec<Value> = (0..1203)
        .map(|i| pod(&format!("p{i:04}"), &format!("ns{}", i % 7), i % 10 == 0))
        .collect();
    api.seed_objects("", "pods", pods);
    let audit = AuditProcess::start(
        &api.kubeconfig(tmp.path()),
        "audit-0",
        &["--report-qps", "1000"],
    );
    ready(&audit).await;
    assert_eq!(
        metric(&audit.metrics(), "regent_audit_objects{kind=\"v1/Pod\"}"),
        1203.0
    );
    let pages = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET pods") && r.contains("\"limit\": \"500\""))
        .count();
    assert!(pages >= 3, "{pages} list pages");
    assert!(api
        .requests()
        .iter()
        .any(|r| r.starts_with("GET pods") && r.contains("continue")));
    eventually(Duration::from_secs(10), "121 reports", || {
        reports(&api).len() == 121
    })
    .await;
}

const PRIVILEGED: &str = r#"package validate.privileged

import rego.v1

violation contains {"msg": msg, "path": "spec"} if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged
	msg := sprintf("container %s is privileged", [c.name])
}
"#;

fn image_tag(message: &str) -> String {
    format!(
        r#"package validate.image_tag

import rego.v1

violation contains {{"msg": "{message}", "path": "spec"}} if {{
	some c in input.request.object.spec.containers
	endswith(c.image, ":latest")
}}
"#
    )
}

const WHO: &str = r#"package validate.who

import rego.v1

violation contains "only admins" if {
	not input.request.userInfo.username == "admin"
}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_bundle_change_rewrites_only_affected_reports_and_an_unchanged_scan_writes_nothing() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    // One pod fails only `privileged`, the other only `image_tag`.
    let mut only_privileged = pod("a", "shop", true);
    only_privileged["spec"]["containers"][0]["image"] = json!("nginx:1.27");
    let mut only_tag = pod("b", "shop", false);
    only_tag["spec"]["containers"][0]["image"] = json!("nginx:latest");
    api.seed_objects("", "pods", vec![only_privileged, only_tag]);
    let mut bundle = KubeletDir::new(&[
        ("validate/privileged/policy.rego", PRIVILEGED),
        ("validate/image_tag/policy.rego", &image_tag("mutable tag")),
        ("validate/who/policy.rego", WHO),
    ]);
    let bundle_path = bundle.path().display().to_string();
    let audit = AuditProcess::start(
        &api.kubeconfig(tmp.path()),
        "audit-0",
        &["--policies", &bundle_path, "--audit-interval", "1s"],
    );
    ready(&audit).await;
    eventually(Duration::from_secs(10), "two reports", || {
        reports(&api).len() == 2
    })
    .await;
    let b = uid_of(&api, "", "pods", "shop", "b");
    let a = uid_of(&api, "", "pods", "shop", "a");
    // A policy that reads userInfo is skipped, with the reason.
    let report_a = report_for(&api, &a).unwrap();
    let who = report_a["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["policy"] == "who")
        .unwrap()
        .clone();
    assert_eq!(who["result"], "skip");
    assert!(
        who["message"].as_str().unwrap().contains("userInfo"),
        "{who}"
    );
    // Scans every second change nothing: no writes.
    let writes = api.writes_to("policyreports");
    let scans = metric(&audit.metrics(), "regent_audit_scans_total");
    eventually(Duration::from_secs(10), "two more full scans", || {
        metric(&audit.metrics(), "regent_audit_scans_total") >= scans + 2.0
    })
    .await;
    assert_eq!(api.writes_to("policyreports"), writes, "{:?}", api.writes());
    // A bundle change that alters one policy's message: only that report.
    let before_a = report_for(&api, &a).unwrap();
    bundle.update(&[
        ("validate/privileged/policy.rego", PRIVILEGED),
        ("validate/image_tag/policy.rego", &image_tag("pin the tag")),
        ("validate/who/policy.rego", WHO),
    ]);
    eventually(Duration::from_secs(10), "b's report rewritten", || {
        report_for(&api, &b).is_some_and(|r| r.to_string().contains("pin the tag"))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        api.writes_to("policyreports"),
        writes + 1,
        "{:?}",
        api.writes()
    );
    assert_eq!(api.writes().get("PATCH policyreports"), Some(&1));
    let after_a = report_for(&api, &a).unwrap();
    assert_eq!(
        after_a["metadata"]["resourceVersion"],
        before_a["metadata"]["resourceVersion"]
    );
    // The unchanged report keeps the revision that produced its content.
    assert_ne!(
        report_for(&api, &b).unwrap()["metadata"]["labels"]["regent.dev/bundle-revision"],
        after_a["metadata"]["labels"]["regent.dev/bundle-revision"]
    );
    // A policy removed: its results leave the reports.
    bundle.update(&[
        ("validate/privileged/policy.rego", PRIVILEGED),
        ("validate/who/policy.rego", WHO),
    ]);
    eventually(
        Duration::from_secs(10),
        "image_tag gone from b's report",
        || report_for(&api, &b).is_some_and(|r| !r.to_string().contains("image_tag")),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kind_that_cannot_be_listed_is_reported_and_the_others_are_audited() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.seed_objects("", "pods", vec![pod("bad", "shop", true)]);
    api.seed_objects("apps", "deployments", vec![deployment("web", "shop", true)]);
    api.forbid("deployments");
    let audit = AuditProcess::start(&api.kubeconfig(tmp.path()), "audit-0", &[]);
    ready(&audit).await;
    eventually(Duration::from_secs(10), "the pod's report", || {
        reports(&api).len() == 1
    })
    .await;
    let metrics = audit.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_audit_kind_unavailable{kind=\"apps/v1/Deployment\",reason=\"forbidden\"}"
        ),
        1.0,
        "{metrics}"
    );
    let status = audit.status();
    assert!(
        status["unavailable"]
            .to_string()
            .contains("apps/v1/Deployment"),
        "{status}"
    );
    assert!(audit.log_text().contains("cannot list or watch this kind"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_report_crd_is_said_clearly_and_nothing_is_written() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.hide_group("wgpolicyk8s.io");
    api.seed_objects("", "pods", vec![pod("bad", "shop", true)]);
    let audit = AuditProcess::start(&api.kubeconfig(tmp.path()), "audit-0", &[]);
    ready(&audit).await;
    let status = audit.status();
    assert_eq!(status["writesEnabled"], false);
    assert!(
        status["whyNotWriting"]
            .as_str()
            .unwrap()
            .contains("wgpolicyk8s.io/v1alpha2"),
        "{status}"
    );
    assert!(audit
        .log_text()
        .contains("does not serve wgpolicyk8s.io/v1alpha2 PolicyReport"));
    assert_eq!(
        metric(
            &audit.metrics(),
            "regent_audit_results{policy=\"pod_security\",result=\"fail\"}"
        ),
        1.0
    );
    assert_eq!(api.writes_to("policyreports"), 0);
    // The other format is served: --report-format openreports writes Reports.
    let other = AuditProcess::start(
        &api.kubeconfig(tmp.path()),
        "audit-1",
        &[
            "--report-format",
            "openreports",
            "--leader-election",
            "false",
        ],
    );
    ready(&other).await;
    eventually(Duration::from_secs(10), "an openreports Report", || {
        api.objects("openreports.io", "reports").len() == 1
    })
    .await;
    let r = &api.objects("openreports.io", "reports")[0];
    assert_eq!(r["apiVersion"], "openreports.io/v1alpha1");
    assert_eq!(r["source"], "regent");
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_lease_holder_writes_and_a_standby_takes_over() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(tmp.path());
    api.seed_objects(
        "",
        "pods",
        vec![pod("bad", "shop", true), pod("good", "shop", false)],
    );
    let lease = ["--lease-duration", "3s"];
    let mut first = AuditProcess::start(&kubeconfig, "audit-a", &lease);
    eventually(Duration::from_secs(20), "a leader", || {
        metric(&first.metrics(), "regent_audit_leader") == 1.0
    })
    .await;
    let second = AuditProcess::start(&kubeconfig, "audit-b", &lease);
    eventually(Duration::from_secs(10), "the first report", || {
        reports(&api).len() == 1
    })
    .await;
    // The standby is ready (it can take over) but writes nothing.
    eventually(Duration::from_secs(10), "the standby ready", || {
        second.ready()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let standby = second.metrics();
    assert_eq!(metric(&standby, "regent_audit_leader"), 0.0);
    assert_eq!(
        metric(
            &standby,
            "regent_audit_report_writes_total{op=\"create\",result=\"success\"}"
        ),
        0.0
    );
    assert!(
        metric(
            &first.metrics(),
            "regent_audit_report_writes_total{op=\"create\",result=\"success\"}"
        ) >= 1.0
    );
    let lease_object = api
        .object("coordination.k8s.io", "leases", NAMESPACE, "regent-audit")
        .unwrap();
    assert_eq!(lease_object["spec"]["holderIdentity"], "audit-a");
    // The holder dies without releasing: the standby takes over within the
    // Lease duration (and its grace), and audits.
    first.kill();
    let started = Instant::now();
    eventually(Duration::from_secs(15), "the standby leading", || {
        metric(&second.metrics(), "regent_audit_leader") == 1.0
    })
    .await;
    // Expected: the 3 s Lease plus its 1 s grace and a watch round. The
    // bound leaves room for a loaded 2-core machine running every test
    // binary at once (8 s was exceeded there once); a standby that waited
    // for the default 15 s Lease, or never took over, still fails it.
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "{took:?}");
    api.put_object("", "pods", pod("good", "shop", true));
    eventually(Duration::from_secs(15), "the new leader's report", || {
        reports(&api).len() == 2
    })
    .await;
    // The fake API server holds the report before the write's answer
    // reaches the new leader and its counter: wait for the counter too.
    eventually(
        Duration::from_secs(5),
        "the new leader's write counted",
        || {
            metric(
                &second.metrics(),
                "regent_audit_report_writes_total{op=\"create\",result=\"success\"}",
            ) >= 1.0
        },
    )
    .await;
}

/// The server fields a report gains in the cluster, and timestamps.
fn normalized(mut report: Value) -> Value {
    for field in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    ] {
        report["metadata"].as_object_mut().unwrap().remove(field);
    }
    for r in report["results"].as_array_mut().unwrap() {
        r["timestamp"] = json!(null);
    }
    report
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_yaml_equals_what_the_cluster_audit_wrote() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.seed_objects(
        "",
        "pods",
        vec![pod("bad", "shop", true), pod("good", "shop", false)],
    );
    api.seed_objects(
        "apps",
        "deployments",
        vec![deployment("web", "payments", true)],
    );
    let audit = AuditProcess::start(&api.kubeconfig(tmp.path()), "audit-0", &[]);
    ready(&audit).await;
    eventually(Duration::from_secs(10), "two reports", || {
        reports(&api).len() == 2
    })
    .await;
    // What `kubectl get pods,deployments -A -o yaml` would print.
    let mut items = api.objects("", "pods");
    items.extend(api.objects("apps", "deployments"));
    let dump = tmp.path().join("dump.yaml");
    std::fs::write(
        &dump,
        serde_yaml_ng::to_string(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
            .unwrap(),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["audit", "-o", "yaml", "-f"])
        .arg(&dump)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut offline: Vec<Value> = text
        .split("\n---\n")
        .map(|d| normalized(serde_yaml_ng::from_str(d).unwrap()))
        .collect();
    let mut written: Vec<Value> = reports(&api).into_iter().map(normalized).collect();
    let key = |v: &Value| v["metadata"]["name"].as_str().unwrap().to_string();
    offline.sort_by_key(key);
    written.sort_by_key(key);
    assert_eq!(offline, written);
}

/// `regent audit` agrees with the server's `/validate` on every manifest
/// fixture of the repository: the same policies deny, warn and dry-run.
#[tokio::test(flavor = "multi_thread")]
async fn offline_audit_agrees_with_the_server_on_every_manifest_fixture() {
    let mut objects: Vec<(std::path::PathBuf, Value)> = Vec::new();
    for entry in walkdir(&repo_path("tests/fixtures")) {
        let text = std::fs::read_to_string(&entry).unwrap();
        for doc in text.split("\n---") {
            let Ok(v) = serde_yaml_ng::from_str::<Value>(doc) else {
                continue;
            };
            let kind = v["kind"].as_str().unwrap_or("");
            if KINDS.contains(&kind) && v["metadata"]["name"].is_string() {
                objects.push((entry.clone(), v));
            }
        }
    }
    assert!(objects.len() >= 10, "{}", objects.len());
    for bundle in [None, Some(repo_path("tests/fixtures/gatekeeper-bundle"))] {
        let server = Server::start_with(Options {
            policies: bundle.clone(),
            ..Options::default()
        });
        for (file, object) in &objects {
            let tmp = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(tmp.path(), serde_json::to_vec(object).unwrap()).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_regent"));
            cmd.args(["audit", "-o", "json", "-f"]).arg(tmp.path());
            if let Some(b) = &bundle {
                cmd.arg("--policies").arg(b);
            }
            let out = cmd.output().unwrap();
            let records: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
                panic!(
                    "{}: {}",
                    file.display(),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let audited = |result: &str, enforcement: &str| -> BTreeSet<String> {
                records
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| r["result"] == result && r["enforcement"] == enforcement)
                    .map(|r| r["policy"].as_str().unwrap().to_string())
                    .collect()
            };
            let mut obj = object.clone();
            if obj["metadata"]["namespace"].is_null() {
                obj["metadata"]["namespace"] = json!("default");
            }
            let response = server
                .review("/validate", &review("admission.k8s.io/v1", "CREATE", &obj))
                .await;
            let served = |key: &str| -> BTreeSet<String> {
                response["response"]["auditAnnotations"][key]
                    .as_str()
                    .map(|s| s.split(',').map(str::to_string).collect())
                    .unwrap_or_default()
            };
            let what = format!("{} ({:?})", file.display(), bundle);
            assert_eq!(audited("fail", "deny"), served("denied-by"), "{what}");
            assert_eq!(audited("warn", "warn"), served("warned-by"), "{what}");
            assert_eq!(audited("fail", "dryrun"), served("dryrun-by"), "{what}");
        }
    }
}

fn walkdir(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}
