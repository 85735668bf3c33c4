//! Policy exceptions, end to end, with the real server: from a directory of
//! YAML files and from `policyexceptions.regent.dev` served by the fake API
//! server (list/watch, status subresource, Events). A valid exception
//! admits what it names with a warning naming it, and nothing else; a table
//! of invalid and hostile exceptions changes no decision and each is
//! reported (metric, log, status condition and Event, `regent check`); the
//! webhook refuses an invalid PolicyException naming the field; an
//! exception that ends 3 s after it is loaded admits before and denies
//! after, and the audit's report turns back to `fail`, with no reload; and
//! the offline commands (`eval`, `audit`, `diff`, `check`) take
//! `--exceptions`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_api::{FakeApi, NAMESPACE};
use common::*;
use serde_json::{json, Value};

const DAY: i64 = 86_400;
const HELP: &str = "ask #platform-security (https://wiki.example/exceptions)";

fn now() -> i64 {
    regent_core::exceptions::now()
}

/// An RFC 3339 time.
fn at(secs: i64) -> String {
    format!("{}Z", regent_core::exceptions::date_time_of(secs))
}

/// The bundle the tests run: the default bundle, plus `image_tag` made to
/// refuse exceptions, and a Gatekeeper template with two Constraints (one
/// for `team-*` namespaces, one for `vault` that refuses exceptions).
fn bundle() -> tempfile::TempDir {
    bundle_dir(&[
        ("validate/image_tag/data.yaml", "exceptions: forbidden\n"),
        (
            "gatekeeper/privileged.yaml",
            r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8spspprivilegedcontainer}
spec:
  crd: {spec: {names: {kind: K8sPSPPrivilegedContainer}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8spspprivileged
      violation[{"msg": msg, "details": {}}] {
        c := input.review.object.spec.containers[_]
        c.securityContext.privileged
        msg := sprintf("Privileged container is not allowed: %v", [c.name])
      }
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sPSPPrivilegedContainer
metadata: {name: psp-privileged}
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
    namespaces: ["team-*"]
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sPSPPrivilegedContainer
metadata:
  name: psp-privileged-strict
  annotations: {regent.dev/exceptions: forbidden}
spec:
  match:
    kinds: [{apiGroups: [""], kinds: [Pod]}]
    namespaces: [vault]
"#,
        ),
    ])
}

/// A container every default policy admits, privileged when asked.
fn container(name: &str, privileged: bool) -> Value {
    let mut c = good_container();
    c["name"] = json!(name);
    c["securityContext"]["privileged"] = json!(privileged);
    c
}

/// A pod of the given containers (name, privileged).
fn pod(namespace: &str, name: &str, containers: &[(&str, bool)]) -> Value {
    let mut spec = good_spec();
    spec["containers"] = containers.iter().map(|(n, p)| container(n, *p)).collect();
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": namespace,
                        "labels": {"app.kubernetes.io/name": "calico-node", "k8s-app": "calico-node", "team": "net"}},
           "spec": spec})
}

/// A pod with a :latest image (denied by `image_tag`, which refuses exceptions).
fn latest_pod(namespace: &str, name: &str) -> Value {
    let mut p = pod(namespace, name, &[("calico-node", false)]);
    p["spec"]["containers"][0]["image"] = json!("calico/node:latest");
    p
}

/// A v1 AdmissionReview of `object`, CREATE.
fn review_of(object: &Value) -> Value {
    review_op(object, "CREATE")
}

fn review_op(object: &Value, operation: &str) -> Value {
    let kind = object["kind"].as_str().unwrap();
    let (group, version) = match object["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (
            String::new(),
            object["apiVersion"].as_str().unwrap().to_string(),
        ),
    };
    let resource = if kind == "PolicyException" {
        "policyexceptions".to_string()
    } else {
        gvr(kind).1.to_string()
    };
    let (obj, old) = match operation {
        "DELETE" => (Value::Null, object.clone()),
        "UPDATE" => (object.clone(), object.clone()),
        _ => (object.clone(), Value::Null),
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": format!("{}-{}", object["metadata"]["name"].as_str().unwrap_or("x"), rand()),
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": object["metadata"]["name"],
            "namespace": object["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": "alice@example.com", "groups": ["system:authenticated"]},
            "object": obj,
            "oldObject": old,
            "dryRun": false
        }
    })
}

fn rand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A valid exception: `pod_security/privileged` for `calico-node*` Pods in kube-system,
/// for 30 days; `change` edits it.
fn exception(namespace: &str, name: &str, change: impl FnOnce(&mut Value)) -> Value {
    let mut e = json!({
        "apiVersion": "regent.dev/v1alpha1",
        "kind": "PolicyException",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "policies": ["pod_security/privileged"],
            "match": {"kinds": ["Pod", "DaemonSet"], "names": ["calico-node*"]},
            "owner": "network-team",
            "reason": "CNI needs host networking",
            "ticket": "https://tracker.example/NET-42",
            "expires": at(now() + 30 * DAY),
        }
    });
    change(&mut e);
    e
}

fn write_yaml(dir: &Path, file: &str, docs: &[Value]) {
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    std::fs::write(dir.join(file), text.join("---\n")).unwrap();
}

/// A server on the test bundle, reading exceptions from `dir` (and the
/// cluster when `api` is given); the bundle directory lives as long as the
/// returned guard.
fn server(dir: &Path, api: Option<(&FakeApi, &Path)>) -> (Server, tempfile::TempDir) {
    let bundle = bundle();
    let mut extra: Vec<String> = vec![
        "--with-default-bundle".into(),
        "--exceptions".into(),
        dir.display().to_string(),
        "--exception-help".into(),
        HELP.into(),
    ];
    let mut env = Vec::new();
    if let Some((api, tmp)) = api {
        extra.extend([
            "--watch-exceptions".into(),
            "--namespace".into(),
            NAMESPACE.into(),
        ]);
        env.push((
            "KUBECONFIG".to_string(),
            api.kubeconfig(tmp).display().to_string(),
        ));
    }
    let s = Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        extra_args: extra,
        env,
        ..Options::default()
    });
    (s, bundle)
}

async fn decide(server: &Server, object: &Value) -> Value {
    server.review("/validate", &review_of(object)).await["response"].clone()
}

fn warnings(r: &Value) -> Vec<String> {
    r["warnings"]
        .as_array()
        .map(|w| w.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

fn message(r: &Value) -> String {
    r["status"]["message"].as_str().unwrap_or("").to_string()
}

/// What a decision shows, without its uid.
fn shown(r: &Value) -> Value {
    json!({"allowed": r["allowed"], "status": r["status"], "warnings": r["warnings"],
           "auditAnnotations": r["auditAnnotations"]})
}

fn exceptions_metric(server: &Server, status: &str) -> f64 {
    metric(
        &server.metrics(),
        &format!("regent_exceptions{{status=\"{status}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_valid_exception_admits_what_it_names_with_a_warning_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _bundle) = server(dir.path(), None);
    let calico = pod("kube-system", "calico-node-x7k2p", &[("calico-node", true)]);
    let before = decide(&server, &calico).await;
    assert_eq!(before["allowed"], false);
    // The denial says how to ask for an exception, for the policies that allow one.
    assert!(
        message(&before).ends_with(&format!(
            "\nIf you need an exception to pod_security/privileged: {HELP}"
        )),
        "{}",
        message(&before)
    );

    let ends = now() + 30 * DAY;
    let cni = exception("kube-system", "cni-agent", |e| {
        e["spec"]["policies"] = json!(["pod_security/privileged", "pod_security/host_namespaces"]);
        e["spec"]["containers"] = json!(["calico-node"]);
        e["spec"]["expires"] = json!(at(ends));
    });
    write_yaml(dir.path(), "cni.yaml", &[cni]);
    let took = eventually(Duration::from_secs(3), "the exception loaded", || {
        exceptions_metric(&server, "valid") == 1.0
    })
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");

    let after = decide(&server, &calico).await;
    assert_eq!(after["allowed"], true, "{after}");
    let until = regent_core::exceptions::date_of(ends);
    assert_eq!(
        warnings(&after),
        vec![format!(
            "[pod_security] excepted by kube-system/cni-agent (owner network-team, until {until}): \
             spec.containers[0].securityContext.privileged: container \"calico-node\" runs privileged \
             (Pod Security baseline: Privileged Containers)"
        )]
    );
    assert_eq!(
        after["auditAnnotations"]["excepted-by"],
        "kube-system/cni-agent"
    );

    // A container outside `containers` is still denied, for itself only.
    let sidecar = pod(
        "kube-system",
        "calico-node-x7k2p",
        &[("calico-node", true), ("sidecar", true)],
    );
    let r = decide(&server, &sidecar).await;
    assert_eq!(r["allowed"], false);
    assert!(message(&r).contains("container \"sidecar\" runs privileged"));
    assert!(
        !message(&r).contains("container \"calico-node\""),
        "{}",
        message(&r)
    );
    assert_eq!(warnings(&r).len(), 1, "{:?}", warnings(&r));
    // Another control is unaffected: an exception for privileged does not
    // hide a hostPath volume.
    let mut both = calico.clone();
    both["spec"]["volumes"] = json!([{"name": "lib", "hostPath": {"path": "/var/lib/calico"}}]);
    let r = decide(&server, &both).await;
    assert_eq!(r["allowed"], false);
    assert!(
        message(&r).contains("volumes[0].hostPath"),
        "{}",
        message(&r)
    );
    assert!(!message(&r).contains("securityContext.privileged"));
    assert!(message(&r).ends_with(&format!(
        "If you need an exception to pod_security/host_path_volumes: {HELP}"
    )));
    // Another policy neither: image_tag, which refuses exceptions, offers none.
    let mut latest = calico.clone();
    latest["spec"]["containers"][0]["image"] = json!("calico/node:latest");
    let r = decide(&server, &latest).await;
    assert_eq!(r["allowed"], false);
    assert!(message(&r).contains("[image_tag]"), "{}", message(&r));
    assert!(
        !message(&r).contains("If you need an exception"),
        "{}",
        message(&r)
    );
    // Another name, another namespace, another kind: denied.
    for other in [
        pod("kube-system", "coredns-1", &[("calico-node", true)]),
        pod("team-a", "calico-node-x7k2p", &[("calico-node", true)]),
    ] {
        let r = decide(&server, &other).await;
        assert_eq!(r["allowed"], false, "{other}");
        assert!(message(&r).contains("securityContext.privileged"));
    }
    let mut deployment = object(
        "Deployment",
        pod("kube-system", "x", &[("calico-node", true)])["spec"].clone(),
        json!({"labels": good_labels()}),
    );
    deployment["metadata"]["name"] = json!("calico-node");
    deployment["metadata"]["namespace"] = json!("kube-system");
    let r = decide(&server, &deployment).await;
    assert_eq!(r["allowed"], false, "a Deployment is not a kind it names");

    // Within --exception-warn-before of its end, the warning says so.
    let soon = now() + 9 * DAY + 3600;
    let ending = exception("kube-system", "cni-agent", |e| {
        e["spec"]["expires"] = json!(at(soon));
    });
    write_yaml(dir.path(), "cni.yaml", &[ending]);
    eventually(Duration::from_secs(3), "the new end", || {
        server
            .metrics()
            .contains(&format!("regent_exception_expiry_timestamp_seconds{{exception=\"kube-system/cni-agent\"}} {soon}"))
    })
    .await;
    let r = decide(&server, &calico).await;
    assert_eq!(r["allowed"], true);
    assert!(
        warnings(&r)[0].starts_with(&format!(
            "[pod_security] excepted by kube-system/cni-agent (owner network-team, until {}, expires in 9 days): ",
            regent_core::exceptions::date_of(soon)
        )),
        "{:?}",
        warnings(&r)
    );
    // A Constraint is named Kind/name; its violations have no path, so the
    // whole object is excepted only by an exception without `containers`.
    let team = pod("team-a", "calico-node-x7k2p", &[("calico-node", true)]);
    let r = decide(&server, &team).await;
    assert!(
        message(&r).ends_with(&format!(
            "\nIf you need an exception to K8sPSPPrivilegedContainer/psp-privileged, pod_security/privileged: {HELP}"
        )),
        "{}",
        message(&r)
    );
    let gk = exception("team-a", "legacy-agent", |e| {
        e["spec"]["policies"] = json!([
            "K8sPSPPrivilegedContainer/psp-privileged",
            "pod_security/privileged"
        ]);
    });
    write_yaml(dir.path(), "team-a.yaml", &[gk]);
    eventually(Duration::from_secs(3), "two exceptions", || {
        exceptions_metric(&server, "valid") == 2.0
    })
    .await;
    let r = decide(&server, &team).await;
    assert_eq!(r["allowed"], true, "{r}");
    let w = warnings(&r);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w
        .iter()
        .any(|l| l.starts_with(
            "[psp-privileged] excepted by team-a/legacy-agent (owner network-team, until "
        ) && l.ends_with("): Privileged container is not allowed: calico-node")));
    let metrics = server.metrics();
    assert!(
        metric(
            &metrics,
            "regent_exceptions_applied_total{policy=\"pod_security\"}"
        ) >= 3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "regent_exceptions_applied_total{policy=\"psp-privileged\"}"
        ),
        1.0
    );
    // Removed: denied again, within a second, without a bundle reload.
    let reloads = metric(&metrics, "regent_bundle_reloads_total{result=\"success\"}");
    std::fs::remove_file(dir.path().join("team-a.yaml")).unwrap();
    let start = Instant::now();
    loop {
        if decide(&server, &team).await["allowed"] == false {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(1), "still excepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(
            &server.metrics(),
            "regent_bundle_reloads_total{result=\"success\"}"
        ),
        reloads
    );
}

/// One hostile or invalid exception: its document, the probe object it
/// aims at, and what `regent check` and the log must say of it.
struct Hostile {
    doc: Value,
    reason: &'static str,
}

fn hostile_table() -> Vec<Hostile> {
    let h = |doc: Value, reason: &'static str| Hostile { doc, reason };
    let ks = "kube-system";
    vec![
        h(
            exception("team-a", "other-namespace", |e| {
                e["spec"]["match"]["namespaces"] = json!([ks]);
            }),
            "spec.match.namespaces: \"kube-system\" is not this exception's namespace",
        ),
        h(
            exception(ks, "expired", |e| {
                e["spec"]["expires"] = json!(at(now() - DAY));
            }),
            "expired on",
        ),
        h(
            exception(ks, "too-long", |e| {
                e["spec"]["expires"] = json!(at(now() + 400 * DAY));
            }),
            "days away; the maximum is 90d",
        ),
        h(
            exception(ks, "forbidden-policy", |e| {
                e["spec"]["policies"] = json!(["image_tag"]);
            }),
            "spec.policies[0]: image_tag does not allow exceptions",
        ),
        h(
            exception(ks, "unknown-policy", |e| {
                e["spec"]["policies"] = json!(["pod_security/privilegd"]);
            }),
            "spec.policies[0]: \"pod_security/privilegd\" is no policy of the live bundle (did you mean pod_security/privileged?)",
        ),
        h(
            exception(ks, "empty-names", |e| {
                e["spec"]["match"]["names"] = json!([]);
            }),
            "spec.match.names: must not be empty",
        ),
        h(
            exception(ks, "missing-owner", |e| {
                e["spec"].as_object_mut().unwrap().remove("owner");
            }),
            "spec.owner: is required",
        ),
        h(
            exception(ks, "blank-reason", |e| {
                e["spec"]["reason"] = json!("   ");
            }),
            "spec.reason: must not be empty",
        ),
        h(
            exception(ks, "missing-expires", |e| {
                e["spec"].as_object_mut().unwrap().remove("expires");
            }),
            "spec.expires: is required",
        ),
        h(
            exception(ks, "wrong-types", |e| {
                e["spec"]["policies"] = json!("pod_security");
                e["spec"]["owner"] = json!(42);
            }),
            "spec.policies: must be a list of strings, got \"pod_security\"; spec.owner: must be a string, got 42",
        ),
        h(
            exception("vault", "forbidden-constraint", |e| {
                e["spec"]["policies"] = json!(["K8sPSPPrivilegedContainer/psp-privileged-strict", "pod_security/privileged"]);
            }),
            "spec.policies[0]: K8sPSPPrivilegedContainer/psp-privileged-strict does not allow exceptions",
        ),
        h(
            exception(ks, "every-name", |e| {
                e["spec"]["match"]["names"] = json!(["*"]);
            }),
            "spec.match.names[0]: \"*\" names every object",
        ),
        h(
            exception(ks, "every-kind", |e| {
                e["spec"]["match"]["kinds"] = json!(["*"]);
            }),
            "spec.match.kinds[0]: name the kinds",
        ),
        h(
            exception(ks, "cluster-scoped", |e| {
                e["spec"]["match"]["namespaces"] = json!([""]);
            }),
            "cluster-scoped objects may be excepted only from regent-system",
        ),
        h(
            exception(ks, "bad-selector", |e| {
                e["spec"]["match"]["labelSelector"] =
                    json!({"matchExpressions": [{"key": "k8s-app", "operator": "Matches", "values": ["calico"]}]});
            }),
            "spec.match.labelSelector.matchExpressions[0].operator: \"Matches\" is not In, NotIn, Exists or DoesNotExist",
        ),
        h(
            exception("team-a", "other-version", |e| {
                e["apiVersion"] = json!("regent.dev/v1");
                e["spec"]["match"]["namespaces"] = json!([ks, "vault"]);
            }),
            "spec.match.namespaces: \"kube-system\" is not this exception's namespace",
        ),
        h(
            exception(ks, "widening-field", |e| {
                e["spec"]["scope"] = json!("cluster");
            }),
            "spec.scope: is not a field of a PolicyException",
        ),
        h(
            exception(ks, "bad-date", |e| {
                e["spec"]["expires"] = json!("next friday");
            }),
            "spec.expires: \"next friday\" is not an RFC 3339 time",
        ),
        h(
            exception(ks, "no-policies", |e| {
                e["spec"]["policies"] = json!([]);
            }),
            "spec.policies: must not be empty",
        ),
        h(
            exception(ks, "no-match", |e| {
                e["spec"].as_object_mut().unwrap().remove("match");
            }),
            "spec.match: is required",
        ),
    ]
}

/// The objects the hostile exceptions aim at.
fn probes() -> Vec<Value> {
    vec![
        pod("kube-system", "calico-node-x7k2p", &[("calico-node", true)]),
        pod("team-a", "calico-node-x7k2p", &[("calico-node", true)]),
        pod("vault", "calico-node-x7k2p", &[("calico-node", true)]),
        latest_pod("kube-system", "calico-node-x7k2p"),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_and_hostile_exceptions_change_no_decision_and_each_is_reported() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (server, _bundle) = server(dir.path(), Some((&api, tmp.path())));
    let mut baseline = Vec::new();
    for p in probes() {
        let r = decide(&server, &p).await;
        assert_eq!(r["allowed"], false, "{p}");
        baseline.push(shown(&r));
    }

    // The files: every hostile exception, and a duplicate name (the first,
    // harmless one stays; the second would except a probe).
    let table = hostile_table();
    assert!(table.len() >= 15);
    for (i, h) in table.iter().enumerate() {
        write_yaml(
            dir.path(),
            &format!("{i:02}.yaml"),
            std::slice::from_ref(&h.doc),
        );
    }
    let first = exception("kube-system", "duplicate", |e| {
        e["spec"]["match"]["names"] = json!(["unrelated-*"]);
    });
    let second = exception("kube-system", "duplicate", |_| {});
    write_yaml(dir.path(), "zz-duplicate.yaml", &[first, second]);

    // The cluster: exceptions that got in while the webhook was down (the
    // fake API server runs no admission), checked when loaded.
    let created = now() - 100 * DAY;
    let late = [
        (
            exception("kube-system", "late-too-long", |e| {
                e["metadata"]["creationTimestamp"] = json!(at(created));
                e["spec"]["expires"] = json!(at(now() + 10 * DAY));
            }),
            "days away; the maximum is 90d",
        ),
        (
            exception("team-a", "late-other-namespace", |e| {
                e["spec"]["match"]["namespaces"] = json!(["kube-system"]);
            }),
            "is not this exception's namespace",
        ),
        (
            exception("vault", "late-forbidden-constraint", |e| {
                e["spec"]["policies"] = json!(["K8sPSPPrivilegedContainer/psp-privileged-strict"]);
            }),
            "does not allow exceptions",
        ),
    ];
    for (doc, _) in &late {
        api.put_object("regent.dev", "policyexceptions", doc.clone());
    }

    // Expired: 1; valid: the harmless first duplicate; invalid: the rest.
    let invalid = (table.len() - 1 + 1 + late.len()) as f64;
    eventually(Duration::from_secs(5), "every exception read", || {
        exceptions_metric(&server, "invalid") == invalid
            && exceptions_metric(&server, "expired") == 1.0
            && exceptions_metric(&server, "valid") == 1.0
    })
    .await;

    // No decision changed.
    for (p, before) in probes().iter().zip(&baseline) {
        let r = decide(&server, p).await;
        assert_eq!(&shown(&r), before, "{p}");
    }

    // Each is reported in the log with its reason.
    let logs = server.log_text();
    for h in table.iter().filter(|h| h.reason != "expired on") {
        let id = format!(
            "{}/{}",
            h.doc["metadata"]["namespace"].as_str().unwrap(),
            h.doc["metadata"]["name"].as_str().unwrap()
        );
        let line = logs
            .lines()
            .find(|l| {
                l.contains(&format!("\"exception\":\"{id}\"")) && l.contains("applies to nothing")
            })
            .unwrap_or_else(|| panic!("no log line for {id}"));
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["level"], "WARN");
        assert!(
            v["fields"]["status"].as_str().unwrap().contains(h.reason),
            "{id}: {line}"
        );
    }
    assert!(logs.contains("is also defined by"));

    // The cluster ones carry a Valid=False condition and an Event.
    for (doc, reason) in &late {
        let (ns, name) = (
            doc["metadata"]["namespace"].as_str().unwrap(),
            doc["metadata"]["name"].as_str().unwrap(),
        );
        eventually(Duration::from_secs(5), "a status on the exception", || {
            api.object("regent.dev", "policyexceptions", ns, name)
                .is_some_and(|o| o["status"]["valid"] == false)
        })
        .await;
        let o = api
            .object("regent.dev", "policyexceptions", ns, name)
            .unwrap();
        let c = &o["status"]["conditions"][0];
        assert_eq!(c["type"], "Valid");
        assert_eq!(c["status"], "False");
        assert_eq!(c["reason"], "Invalid");
        assert!(c["message"].as_str().unwrap().contains(reason), "{c}");
        // The spec is untouched: status is all the webhook writes.
        assert_eq!(o["spec"], doc["spec"]);
        eventually(Duration::from_secs(5), "an Event", || {
            api.events().iter().any(|e| {
                e["regarding"]["name"] == name
                    && e["metadata"]["namespace"] == ns
                    && e["reason"] == "InvalidException"
                    && e["type"] == "Warning"
            })
        })
        .await;
    }
    // Statuses are written once: no write loop.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = api.writes_to("policyexceptions/status");
    assert_eq!(writes, late.len() as u64, "{:?}", api.writes());

    // `regent check` says the same, and fails.
    let bundle = bundle();
    let out = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["check", "--with-default-bundle"])
        .arg(bundle.path())
        .arg("--exceptions")
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for h in &table {
        let name = h.doc["metadata"]["name"].as_str().unwrap();
        let line = text
            .lines()
            .find(|l| l.contains(&format!("/{name} ")))
            .unwrap_or_else(|| panic!("{name} not listed:\n{text}"));
        assert!(line.contains(h.reason), "{line}");
    }
    assert!(
        text.contains(&format!(
            "exceptions: {} read from {}, 1 in force, {} invalid",
            table.len() + 2,
            dir.path().display(),
            table.len()
        )),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_webhook_refuses_an_invalid_policy_exception_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _bundle) = server(dir.path(), None);
    let ok = exception("kube-system", "cni-agent", |_| {});
    let r = server.review("/validate", &review_of(&ok)).await["response"].clone();
    assert_eq!(r["allowed"], true, "{r}");

    let too_long = exception("kube-system", "cni-agent", |e| {
        e["spec"]["expires"] = json!(at(now() + 400 * DAY));
        e["spec"]["policies"] = json!(["pod_security/privileged", "image_tag"]);
    });
    let r = server.review("/validate", &review_of(&too_long)).await["response"].clone();
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 422);
    let m = message(&r);
    assert!(m.starts_with("PolicyException kube-system/cni-agent is not a valid policy exception, so it would apply to nothing:\n"), "{m}");
    let until = regent_core::exceptions::date_of(now() + 400 * DAY);
    assert!(
        m.contains(&format!(
            "spec.expires: {until} is 400 days away; the maximum is 90d"
        )),
        "{m}"
    );
    assert!(
        m.contains("spec.policies[1]: image_tag does not allow exceptions"),
        "{m}"
    );

    // Any version of the group, checked the same; the namespace is the request's.
    let mut other = exception("team-a", "x", |e| {
        e["apiVersion"] = json!("regent.dev/v1beta1");
        e["spec"]["match"]["namespaces"] = json!(["kube-system"]);
    });
    other["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let mut review = review_of(&other);
    review["request"]["namespace"] = json!("team-a");
    let r = server.review("/validate", &review).await["response"].clone();
    assert_eq!(r["allowed"], false);
    assert!(message(&r).contains("\"kube-system\" is not this exception's namespace"));

    // Already ended at creation: refused; an ended one may still change.
    let ended = exception("kube-system", "ended", |e| {
        e["spec"]["expires"] = json!(at(now() - 60));
    });
    let r = server.review("/validate", &review_of(&ended)).await["response"].clone();
    assert!(message(&r).contains("is in the past"), "{r}");
    let r = server
        .review("/validate", &review_op(&ended, "UPDATE"))
        .await["response"]
        .clone();
    assert_eq!(r["allowed"], true, "{r}");
    // Deleting is always allowed, even an invalid one.
    let r = server
        .review("/validate", &review_op(&too_long, "DELETE"))
        .await["response"]
        .clone();
    assert_eq!(r["allowed"], true, "{r}");
    // Missing fields, wrong types: every problem at once.
    let broken = json!({"apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
        "metadata": {"name": "broken", "namespace": "kube-system"},
        "spec": {"policies": "pod_security", "match": {"kinds": ["Pod"]}, "expires": "soon"}});
    let r = server.review("/validate", &review_of(&broken)).await["response"].clone();
    let m = message(&r);
    for field in [
        "spec.policies: must be a list of strings",
        "spec.match.names: is required",
        "spec.owner: is required",
        "spec.reason: is required",
        "spec.expires: \"soon\" is not an RFC 3339 time",
    ] {
        assert!(m.contains(field), "{field}: {m}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exception_ending_in_3_seconds_admits_before_and_denies_after_and_the_report_turns_to_fail(
) {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let calico = pod("kube-system", "calico-node-x7k2p", &[("calico-node", true)]);
    api.seed_objects("", "pods", vec![calico.clone()]);
    let (server, _bundle) = server(dir.path(), Some((&api, tmp.path())));
    let kubeconfig = api.kubeconfig(tmp.path());
    let audit = AuditProcess::start(&kubeconfig, "audit-0", &["--watch-exceptions"]);
    eventually(Duration::from_secs(30), "the audit's first scan", || {
        audit.ready()
    })
    .await;
    let uid = api
        .object("", "pods", "kube-system", "calico-node-x7k2p")
        .unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let privileged = |api: &FakeApi| -> Option<Value> {
        api.objects("wgpolicyk8s.io", "policyreports")
            .into_iter()
            .find(|r| r["metadata"]["name"] == uid.as_str())?["results"]
            .as_array()?
            .iter()
            .find(|r| r["policy"] == "pod_security" && r["properties"]["control"] == "privileged")
            .cloned()
    };
    eventually(Duration::from_secs(10), "a fail result", || {
        privileged(&api).is_some_and(|r| r["result"] == "fail")
    })
    .await;
    let reloads = |m: &str| metric(m, "regent_bundle_reloads_total{result=\"success\"}");
    let (server_reloads, audit_reloads) = (reloads(&server.metrics()), reloads(&audit.metrics()));

    // Loaded now, ending 3 s from now.
    let loaded = Instant::now();
    let ends = now() + 3;
    let doc = exception("kube-system", "ends-soon", |e| {
        e["spec"]["expires"] = json!(at(ends));
    });
    api.put_object("regent.dev", "policyexceptions", doc);
    let r = loop {
        let r = decide(&server, &calico).await;
        if r["allowed"] == true {
            break r;
        }
        assert!(
            loaded.elapsed() < Duration::from_secs(1),
            "not admitted within a second: {r}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let w = warnings(&r);
    assert!(
        w[0].starts_with(
            "[pod_security] excepted by kube-system/ends-soon (owner network-team, until "
        ) && w[0].contains(", expires in "),
        "{w:?}"
    );
    eventually(Duration::from_secs(3), "a skip result", || {
        privileged(&api).is_some_and(|r| r["result"] == "skip")
    })
    .await;
    let skip = privileged(&api).unwrap();
    assert_eq!(skip["properties"]["exception"], "kube-system/ends-soon");
    assert_eq!(skip["properties"]["owner"], "network-team");
    assert_eq!(skip["properties"]["expires"], at(ends));

    // Denied from its end on.
    let denied_at = loop {
        let r = decide(&server, &calico).await;
        if r["allowed"] == false {
            break now();
        }
        assert!(
            loaded.elapsed() < Duration::from_secs(6),
            "still admitted after its end"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(denied_at >= ends, "denied before its end");
    assert!(
        denied_at <= ends + 1,
        "denied {}s after its end",
        denied_at - ends
    );
    eventually(Duration::from_secs(3), "the report back to fail", || {
        privileged(&api).is_some_and(|r| r["result"] == "fail")
    })
    .await;
    assert!(now() <= ends + 3);
    // With no reload in between.
    assert_eq!(reloads(&server.metrics()), server_reloads);
    assert_eq!(reloads(&audit.metrics()), audit_reloads);
    assert!(audit.log_text().contains("a policy exception ended"));
    assert_eq!(exceptions_metric(&server, "expired"), 1.0);
}

fn regent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn offline_eval_audit_diff_and_check_take_exceptions() {
    let tmp = tempfile::tempdir().unwrap();
    let bundle = bundle();
    let b = bundle.path().to_str().unwrap();
    let manifests = tmp.path().join("pods.yaml");
    write_yaml(
        tmp.path(),
        "pods.yaml",
        &[
            pod("kube-system", "calico-node-x7k2p", &[("calico-node", true)]),
            latest_pod("kube-system", "calico-node-hp"),
        ],
    );
    let m = manifests.to_str().unwrap();
    let ex_dir = tmp.path().join("exceptions");
    std::fs::create_dir(&ex_dir).unwrap();
    let ends = now() + 30 * DAY;
    write_yaml(
        &ex_dir,
        "cni.yaml",
        &[exception("kube-system", "cni-agent", |e| {
            e["spec"]["expires"] = json!(at(ends));
        })],
    );
    let ex = ex_dir.to_str().unwrap();
    let common = ["--with-default-bundle", "--policies", b];

    // eval: the excepted pod is admitted with the warning; JSON lists what was excepted.
    let (code, out, _) = regent(&[&["eval", "-f", m], &common[..], &["-o", "json"]].concat());
    assert_eq!(code, 1);
    let without: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(without[0]["allowed"], false);
    let (code, out, err) = regent(
        &[
            &["eval", "-f", m, "--exceptions", ex],
            &common[..],
            &["-o", "json"],
        ]
        .concat(),
    );
    assert_eq!(code, 1, "the :latest pod is still denied: {out}{err}");
    let with: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(with[0]["allowed"], true, "{out}");
    assert_eq!(with[0]["excepted"][0]["exception"], "kube-system/cni-agent");
    assert_eq!(with[0]["excepted"][0]["owner"], "network-team");
    assert_eq!(with[0]["excepted"][0]["expires"], at(ends));
    assert!(with[0]["warnings"].as_array().unwrap().iter().any(|w| w
        .as_str()
        .unwrap()
        .starts_with("[pod_security] excepted by kube-system/cni-agent")));
    assert_eq!(with[1]["allowed"], false);

    // audit: a skip result with the exception, its owner and its end.
    let (_, out, _) = regent(
        &[
            &["audit", "-f", m, "--exceptions", ex, "-o", "json"],
            &common[..],
        ]
        .concat(),
    );
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    let skip = records
        .iter()
        .find(|r| {
            r["policy"] == "pod_security"
                && r["name"] == "calico-node-x7k2p"
                && r["result"] == "skip"
        })
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(
        skip["properties"],
        json!({"exception": "kube-system/cni-agent", "owner": "network-team", "expires": at(ends),
               "control": "privileged"})
    );
    let (_, yaml, _) = regent(
        &[
            &["audit", "-f", m, "--exceptions", ex, "-o", "yaml"],
            &common[..],
        ]
        .concat(),
    );
    assert!(yaml.contains("exception: kube-system/cni-agent"), "{yaml}");

    // diff: adding the exception is a decision change; removing it makes
    // the pod newly denied (exit 1).
    let empty = tmp.path().join("none");
    std::fs::create_dir(&empty).unwrap();
    let e = empty.to_str().unwrap();
    let (code, out, err) = regent(&[
        "diff",
        "--with-default-bundle",
        "--from",
        b,
        "-f",
        m,
        "--exceptions",
        e,
        "--to-exceptions",
        ex,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("no longer denied"), "{out}");
    assert!(
        out.contains("+ warn  [pod_security] excepted by kube-system/cni-agent"),
        "{out}"
    );
    let (code, out, _) = regent(&[
        "diff",
        "--with-default-bundle",
        "--from",
        b,
        "-f",
        m,
        "--exceptions",
        ex,
        "--to-exceptions",
        e,
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("newly denied"), "{out}");
    // The same exceptions on both sides: no change.
    let (code, out, _) = regent(&[
        "diff",
        "--with-default-bundle",
        "--from",
        b,
        "--to",
        b,
        "-f",
        m,
        "--exceptions",
        ex,
    ]);
    assert_eq!(code, 0);
    assert!(out.contains("no decision changes"), "{out}");

    // check: valid exceptions pass; an invalid one fails with its reason.
    let (code, out, _) = regent(&["check", "--with-default-bundle", b, "--exceptions", ex]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("exceptions: 1 read from"), "{out}");
    assert!(out.contains("kube-system/cni-agent"), "{out}");
    write_yaml(
        &ex_dir,
        "bad.yaml",
        &[exception("kube-system", "bad", |e| {
            e["spec"]["policies"] = json!(["image_tag"]);
        })],
    );
    let (code, out, _) = regent(&["check", "--with-default-bundle", b, "--exceptions", ex]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("image_tag does not allow exceptions"), "{out}");
    // The invalid one applies to nothing, and eval says so on stderr.
    let (_, out, err) = regent(
        &[
            &["eval", "-f", m, "--exceptions", ex],
            &common[..],
            &["-o", "json"],
        ]
        .concat(),
    );
    assert!(err.contains("warning: exception kube-system/bad"), "{err}");
    let with: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(with[1]["allowed"], false);
    // A file that is not YAML is an error, not "no exceptions".
    std::fs::write(ex_dir.join("broken.yaml"), "a: [\n").unwrap();
    let (code, _, err) = regent(&[&["eval", "-f", m, "--exceptions", ex], &common[..]].concat());
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("broken.yaml"), "{err}");
}
