//! Gatekeeper mutators end to end: the examples of Gatekeeper's mutation
//! documentation (our own objects, field for field the documented ones)
//! through `regent eval --mutate`, the default bundle's mutating policies
//! next to equivalent mutators, refusals through `regent check` and the
//! reload path, `/mutate` over TLS with metrics naming the mutator, and
//! `regent diff` and audit showing what mutators change.
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
        .output()
        .unwrap()
}

fn write_json(dir: &Path, name: &str, v: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
    p.to_str().unwrap().to_string()
}

/// `regent eval --mutate -o json` of one object under `bundle`: (patch,
/// mutated object, mutated_by); an object no mutator changes comes back as
/// it was, with no patch.
fn eval_mutate(
    bundle: &Path,
    object: &Value,
    extra: &[&str],
) -> (Option<Value>, Value, Vec<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let file = write_json(tmp.path(), "object.json", object);
    let mut args = vec![
        "eval",
        "--policies",
        bundle.to_str().unwrap(),
        "-f",
        &file,
        "--mutate",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let out = regent(&args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let r = &records[0];
    let by: Vec<String> = r["mutated_by"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    match r.get("patch") {
        Some(patch) => (Some(patch.clone()), r["mutated"].clone(), by),
        None => (None, object.clone(), by),
    }
}

/// Mutates `object` under `bundle` and checks what any mutation must hold:
/// the patch applied by an independent RFC 6902 implementation gives the
/// mutated object, and mutating that again changes nothing.
fn mutate_checked(bundle: &Path, object: &Value, extra: &[&str]) -> (Value, Vec<String>) {
    let (patch, mutated, by) = eval_mutate(bundle, object, extra);
    if let Some(patch) = &patch {
        assert_eq!(
            &apply_patch_independently(object, patch),
            &mutated,
            "the patch gives the mutated object"
        );
    }
    let (again, _, by_again) = eval_mutate(bundle, &mutated, extra);
    assert_eq!(
        again, None,
        "a second pass changes nothing (idempotent); it was changed by {by_again:?}"
    );
    (mutated, by)
}

fn pod(name: &str, namespace: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec})
}

const APPLY_TO_POD: &str =
    "  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n";

/// Each example of Gatekeeper's mutation documentation
/// (website/docs/mutation.md) that uses the four kinds without external
/// data, as (name, mutators, input, expected output, eval flags). The
/// mutator objects have the documented fields and values; the inputs are
/// ours, chosen to show the documented effect (and, where the docs name a
/// condition, an input on which nothing happens).
fn documented_examples() -> Vec<(&'static str, String, Value, Value, Vec<&'static str>)> {
    let digest = "@sha256:abcde67890123456789abc345678901a";
    let nginx = json!({"containers": [{"name": "nginx", "image": "nginx:latest"}]});
    let mut out = Vec::new();
    // "Here is an example of a simple AssignMetadata CRD" (name glob nginx-*).
    let owner = "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: demo-annotation-owner\nspec:\n  match:\n    scope: Namespaced\n    name: nginx-*\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n  location: \"metadata.annotations.owner\"\n  parameters:\n    assign:\n      value:  \"admin\"\n".to_string();
    let mut annotated = pod("nginx-1", "default", nginx.clone());
    annotated["metadata"]["annotations"] = json!({"owner": "admin"});
    out.push((
        "simple AssignMetadata",
        owner.clone(),
        pod("nginx-1", "default", nginx.clone()),
        annotated,
        vec![],
    ));
    out.push((
        "simple AssignMetadata, other name",
        owner,
        pod("web", "default", nginx.clone()),
        pod("web", "default", nginx.clone()),
        vec![],
    ));
    // Intent: `spec.containers[name: foo].imagePullPolicy`.
    let intent = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: intent\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name: foo].imagePullPolicy\"\n  parameters:\n    assign:\n      value: \"Always\"\n");
    out.push((
        "intent, element present",
        intent.clone(),
        pod(
            "p",
            "default",
            json!({"containers": [{"name": "foo", "image": "x"}]}),
        ),
        pod(
            "p",
            "default",
            json!({"containers": [{"name": "foo", "image": "x", "imagePullPolicy": "Always"}]}),
        ),
        vec![],
    ));
    // Without a path test the element is created: the docs' reason for
    // pathTests ("accidentally creating an empty sidecar named foo").
    out.push((
        "intent, element absent",
        intent,
        pod("p", "default", json!({"containers": [{"name": "bar"}]})),
        pod(
            "p",
            "default",
            json!({"containers": [{"name": "bar"}, {"name": "foo", "imagePullPolicy": "Always"}]}),
        ),
        vec![],
    ));
    // A composite value.
    let composite = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: composite\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name: networking]\"\n  parameters:\n    assign:\n      value:\n        name: \"networking\"\n        imagePullPolicy: Always\n");
    out.push((
        "composite value",
        composite,
        pod("p", "default", json!({"containers": [{"name": "app"}]})),
        pod("p", "default", json!({"containers": [{"name": "app"}, {"name": "networking", "imagePullPolicy": "Always"}]})),
        vec![],
    ));
    // fromMetadata: the namespace's name as a label.
    let from = "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: demo-annotation-owner\nspec:\n  location: \"metadata.labels.namespace\"\n  parameters:\n    assign:\n      fromMetadata:\n        field: namespace\n".to_string();
    let mut labelled = pod("p", "payments", nginx.clone());
    labelled["metadata"]["labels"] = json!({"namespace": "payments"});
    out.push((
        "fromMetadata",
        from,
        pod("p", "payments", nginx.clone()),
        labelled,
        vec![],
    ));
    // Conditionals: MustExist foo, MustNotExist its capabilities.
    let conditional = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: conditional\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name: foo].securityContext.capabilities\"\n  parameters:\n    assign:\n      value:\n        drop: [\"ALL\"]\n    pathTests:\n    - subPath: \"spec.containers[name: foo]\"\n      condition: MustExist\n    - subPath: \"spec.containers[name: foo].securityContext.capabilities\"\n      condition: MustNotExist\n");
    out.push((
        "pathTests, foo present",
        conditional.clone(),
        pod("p", "default", json!({"containers": [{"name": "foo"}]})),
        pod("p", "default", json!({"containers": [{"name": "foo", "securityContext": {"capabilities": {"drop": ["ALL"]}}}]})),
        vec![],
    ));
    for (what, spec) in [
        (
            "pathTests, foo absent",
            json!({"containers": [{"name": "bar"}]}),
        ),
        (
            "pathTests, capabilities set",
            json!({"containers": [{"name": "foo", "securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}]}),
        ),
    ] {
        out.push((
            what,
            conditional.clone(),
            pod("p", "default", spec.clone()),
            pod("p", "default", spec),
            vec![],
        ));
    }
    // AssignMetadata: the owner label.
    let label = "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: demo-annotation-owner\nspec:\n  match:\n    scope: Namespaced\n  location: \"metadata.labels.owner\"\n  parameters:\n    assign:\n      value: \"admin\"\n".to_string();
    let mut owned = pod("p", "default", nginx.clone());
    owned["metadata"]["labels"] = json!({"owner": "admin"});
    out.push((
        "owner label",
        label.clone(),
        pod("p", "default", nginx.clone()),
        owned,
        vec![],
    ));
    let mut mine = pod("p", "default", nginx.clone());
    mine["metadata"]["labels"] = json!({"owner": "me"});
    out.push(("owner label already set", label, mine.clone(), mine, vec![]));
    // ModifySet: remove --alsologtostderr from every container.
    let prune = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: ModifySet\nmetadata:\n  name: remove-err-logging\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name: *].args\"\n  parameters:\n    operation: prune\n    values:\n      fromList:\n        - --alsologtostderr\n");
    out.push((
        "ModifySet prune",
        prune,
        pod("p", "default", json!({"containers": [{"name": "a", "args": ["--v=2", "--alsologtostderr"]}, {"name": "b", "args": ["--alsologtostderr"]}, {"name": "c"}]})),
        pod("p", "default", json!({"containers": [{"name": "a", "args": ["--v=2"]}, {"name": "b", "args": []}, {"name": "c"}]})),
        vec![],
    ));
    // AssignImage: all three parts.
    let image = format!("apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: assign-container-image\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name:*].image\"\n  parameters:\n    assignDomain: \"my.registry.io\"\n    assignPath: \"repo/app\"\n    assignTag: \"{digest}\"\n  match:\n    source: \"All\"\n    scope: Namespaced\n    kinds:\n    - apiGroups: [ \"*\" ]\n      kinds: [ \"Pod\" ]\n");
    out.push((
        "AssignImage",
        image,
        pod("p", "default", json!({"containers": [{"name": "app", "image": "my.registry.io:2000/repo/app:latest"}]})),
        pod("p", "default", json!({"containers": [{"name": "app", "image": format!("my.registry.io/repo/app{digest}")}]})),
        vec![],
    ));
    // demo-privileged: container foo in namespace bar.
    let privileged = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-privileged\nspec:\n{APPLY_TO_POD}  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n    namespaces: [\"bar\"]\n  location: \"spec.containers[name:foo].securityContext.privileged\"\n  parameters:\n    assign:\n      value: false\n    pathTests:\n    - subPath: \"spec.containers[name:foo]\"\n      condition: MustExist\n");
    let privileged_foo =
        json!({"containers": [{"name": "foo", "securityContext": {"privileged": true}}]});
    out.push((
        "demo-privileged",
        privileged.clone(),
        pod("p", "bar", privileged_foo.clone()),
        pod(
            "p",
            "bar",
            json!({"containers": [{"name": "foo", "securityContext": {"privileged": false}}]}),
        ),
        vec![],
    ));
    out.push((
        "demo-privileged, other namespace",
        privileged,
        pod("p", "default", privileged_foo.clone()),
        pod("p", "default", privileged_foo),
        vec![],
    ));
    // demo-image-pull-policy: every container, except in namespace system.
    let pull = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-image-pull-policy\nspec:\n{APPLY_TO_POD}  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n    excludedNamespaces: [\"system\"]\n  location: \"spec.containers[name:*].imagePullPolicy\"\n  parameters:\n    assign:\n      value: Always\n");
    let two = json!({"containers": [{"name": "a"}, {"name": "b", "imagePullPolicy": "Never"}]});
    out.push((
        "demo-image-pull-policy",
        pull.clone(),
        pod("p", "default", two.clone()),
        pod("p", "default", json!({"containers": [{"name": "a", "imagePullPolicy": "Always"}, {"name": "b", "imagePullPolicy": "Always"}]})),
        vec![],
    ));
    out.push((
        "demo-image-pull-policy, namespace system",
        pull,
        pod("p", "system", two.clone()),
        pod("p", "system", two),
        vec![],
    ));
    // demo-env-create-only: on CREATE only.
    let env = "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-env-create-only\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n    operations: [\"CREATE\"]\n  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n  location: \"spec.containers[name:*].env[name:DEPLOYMENT_TIMESTAMP].value\"\n  parameters:\n    assign:\n      value: \"2024-01-01T00:00:00Z\"\n".to_string();
    let one = json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]});
    out.push((
        "demo-env-create-only on CREATE",
        env.clone(),
        pod("p", "default", one.clone()),
        pod("p", "default", json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "DEPLOYMENT_TIMESTAMP", "value": "2024-01-01T00:00:00Z"}]}]})),
        vec![],
    ));
    out.push((
        "demo-env-create-only on UPDATE",
        env,
        pod("p", "default", one.clone()),
        pod("p", "default", one),
        vec!["--operation", "UPDATE"],
    ));
    // demo-sidecar.
    let sidecar = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-sidecar\nspec:\n{APPLY_TO_POD}  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n  location: \"spec.containers[name:networking]\"\n  parameters:\n    assign:\n      value:\n        name: \"networking\"\n        imagePullPolicy: Always\n        image: quay.io/foo/bar:latest\n        command: [\"/bin/bash\", \"-c\", \"sleep INF\"]\n");
    out.push((
        "demo-sidecar",
        sidecar,
        pod("p", "default", nginx.clone()),
        pod("p", "default", json!({"containers": [{"name": "nginx", "image": "nginx:latest"}, {"name": "networking", "imagePullPolicy": "Always", "image": "quay.io/foo/bar:latest", "command": ["/bin/bash", "-c", "sleep INF"]}]})),
        vec![],
    ));
    // demo-dns-policy and demo-dns-config, together.
    let dns = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-dns-policy\nspec:\n{APPLY_TO_POD}  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n  location: \"spec.dnsPolicy\"\n  parameters:\n    assign:\n      value: None\n---\napiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: demo-dns-config\nspec:\n{APPLY_TO_POD}  match:\n    scope: Namespaced\n    kinds:\n    - apiGroups: [\"*\"]\n      kinds: [\"Pod\"]\n  location: \"spec.dnsConfig\"\n  parameters:\n    assign:\n      value:\n        nameservers:\n        - 1.2.3.4\n");
    out.push((
        "demo-dns-policy and demo-dns-config",
        dns,
        pod("p", "default", nginx.clone()),
        pod("p", "default", json!({"containers": [{"name": "nginx", "image": "nginx:latest"}], "dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"]}})),
        vec![],
    ));
    // add-nginx-digest.
    let add_digest = format!("apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: add-nginx-digest\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name:nginx].image\"\n  parameters:\n    assignTag: \"{digest}\"\n  match:\n    source: \"All\"\n    scope: Namespaced\n    kinds:\n    - apiGroups: [ \"*\" ]\n      kinds: [ \"Pod\" ]\n");
    out.push((
        "add-nginx-digest",
        add_digest,
        pod("p", "default", json!({"containers": [{"name": "nginx", "image": "nginx:latest"}, {"name": "other", "image": "busybox:1"}]})),
        pod("p", "default", json!({"containers": [{"name": "nginx", "image": format!("nginx{digest}")}, {"name": "other", "image": "busybox:1"}]})),
        vec![],
    ));
    out
}

/// Acceptance 1, in the suite: every documented example gives the
/// documented result through `regent eval --mutate`, the patch applies, and
/// a second pass changes nothing.
#[test]
fn gatekeepers_documented_examples_give_the_documented_results() {
    for (what, mutators, input, expected, flags) in documented_examples() {
        let bundle = bundle_dir(&[("mutators.yaml", &mutators)]);
        let check = regent(&["check", bundle.path().to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let (mutated, _) = mutate_checked(bundle.path(), &input, &flags);
        assert_eq!(mutated, expected, "{what}");
    }
}

fn default_bundle_with(extra: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let copy = Command::new("cp")
        .args([
            "-r",
            repo_path("policies").to_str().unwrap(),
            dir.path().join("b").to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(copy.success());
    // Limits as the equivalent mutators of tests/fixtures/mutators set them
    // (the shipped default sets requests only).
    std::fs::write(
        dir.path().join("b/mutate/default_resources/data.yaml"),
        "order: 10\nparameters:\n  requests: {cpu: 100m, memory: 128Mi}\n  limits: {cpu: \"1\", memory: 512Mi}\n",
    )
    .unwrap();
    if let Some(text) = extra {
        std::fs::write(dir.path().join("b/gatekeeper-mutators.yaml"), text).unwrap();
    }
    dir
}

fn gatekeeper_defaults() -> String {
    std::fs::read_to_string(repo_path("tests/fixtures/mutators/defaults.yaml")).unwrap()
}

/// A Pod that asks for the sidecar both ways (the native policy's
/// annotation, the mutators' label), with one container partly resourced.
fn representative_pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "shop",
                     "labels": {"app": "web", "regent.dev/inject-otel-agent": "true"},
                     "annotations": {"regent.dev/inject": "otel-agent"}},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "registry.example.com/migrate:1.0"}],
            "containers": [
                {"name": "app", "image": "registry.example.com/web:1.4",
                 "resources": {"requests": {"cpu": "250m"}, "limits": {"memory": "1Gi"}}},
                {"name": "cache", "image": "registry.example.com/cache:2"}
            ]
        }
    })
}

/// Acceptance 3: the default bundle's mutating policies and equivalent
/// Gatekeeper mutators converge to one result, the one either gives alone;
/// where both would add a different value, the Gatekeeper mutator's stands
/// (mutators run first; native policies never overwrite).
#[test]
fn native_policies_and_equivalent_mutators_converge_to_one_result() {
    let native = default_bundle_with(None);
    let mixed = default_bundle_with(Some(&gatekeeper_defaults()));
    let only_gatekeeper = bundle_dir(&[("defaults.yaml", &gatekeeper_defaults())]);
    let pod = representative_pod();
    let (by_native, native_by) = mutate_checked(&native.path().join("b"), &pod, &[]);
    let (by_mixed, mixed_by) = mutate_checked(&mixed.path().join("b"), &pod, &[]);
    let (by_gatekeeper, _) = mutate_checked(only_gatekeeper.path(), &pod, &[]);
    assert_eq!(by_mixed, by_native, "mixed = native alone");
    assert_eq!(by_gatekeeper, by_native, "mutators alone = native alone");
    // The documented result, spelled out.
    let app = &by_mixed["spec"]["containers"][0]["resources"];
    assert_eq!(
        app,
        &json!({"requests": {"cpu": "250m", "memory": "128Mi"}, "limits": {"memory": "1Gi", "cpu": "1"}})
    );
    assert_eq!(
        by_mixed["spec"]["initContainers"][0]["resources"]["limits"]["cpu"],
        "1"
    );
    assert_eq!(by_mixed["metadata"]["labels"]["team"], "unassigned");
    let names: Vec<&str> = by_mixed["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "cache", "otel-agent"]);
    assert_eq!(
        by_mixed["spec"]["volumes"],
        json!([{"name": "otel-agent-config", "configMap": {"name": "otel-agent-config"}}])
    );
    // Mutators ran first and did the work; the native policies found it done.
    assert!(
        mixed_by
            .iter()
            .all(|n| n.starts_with("Assign/") || n.starts_with("AssignMetadata/")),
        "{mixed_by:?}"
    );
    assert!(
        native_by.contains(&"default_resources".to_string()),
        "{native_by:?}"
    );
    // Precedence where they disagree: the mutator's value stands.
    let platform = gatekeeper_defaults().replace("value: unassigned", "value: platform");
    let disagree = default_bundle_with(Some(&platform));
    let (by_disagree, _) = mutate_checked(&disagree.path().join("b"), &pod, &[]);
    assert_eq!(by_disagree["metadata"]["labels"]["team"], "platform");
    // A Deployment: the Pod-bound mutators do not apply, AssignMetadata
    // (which has no applyTo) labels the Deployment as the native policy does.
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "registry.example.com/web:1.4"}]}}}
    });
    let (d_native, _) = mutate_checked(&native.path().join("b"), &deployment, &[]);
    let (d_mixed, _) = mutate_checked(&mixed.path().join("b"), &deployment, &[]);
    assert_eq!(d_mixed, d_native);
}

/// Invalid mutators are refused with the file, line and field, by `regent
/// check` and through the reload path, where the last good bundle keeps
/// serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_mutators_are_refused_and_the_last_good_bundle_serves() {
    let good = format!("apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: pull\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name:*].imagePullPolicy\"\n  parameters:\n    assign:\n      value: Always\n");
    let bad = "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: rename\nspec:\n  location: metadata.name\n  parameters:\n    assign:\n      value: x\n";
    let broken = bundle_dir(&[("m/bad.yaml", bad)]);
    let out = regent(&["check", broken.path().to_str().unwrap()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("AssignMetadata rename: m/bad.yaml:6: spec.location: invalid location"),
        "{text}"
    );

    let mut dir = KubeletDir::new(&[("m/pull.yaml", &good)]);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        ..Options::default()
    });
    let object = pod(
        "p",
        "default",
        json!({"containers": [{"name": "a", "image": "x"}]}),
    );
    let review = review("admission.k8s.io/v1", "CREATE", &object);
    let pulled = || async {
        let resp = server.review("/mutate", &review).await;
        let patch = patch_of(&resp).unwrap_or(json!([]));
        apply_patch_independently(&object, &patch)["spec"]["containers"][0]["imagePullPolicy"]
            == "Always"
    };
    assert!(pulled().await);
    dir.update(&[("m/pull.yaml", &good), ("m/bad.yaml", bad)]);
    eventually(
        Duration::from_secs(10),
        "the bad mutator is rejected",
        || server.log_text().contains("policy bundle rejected"),
    )
    .await;
    let logs = server.log_text();
    let line = logs
        .lines()
        .find(|l| l.contains("policy bundle rejected"))
        .unwrap();
    assert!(
        line.contains("AssignMetadata rename: m/bad.yaml:6: spec.location"),
        "{line}"
    );
    assert!(pulled().await, "the last good bundle still serves");
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
}

/// `/mutate` over TLS runs the mutators; metrics and the audit annotation
/// name each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_mutates_with_gatekeeper_mutators_and_names_them() {
    let mixed = default_bundle_with(Some(&gatekeeper_defaults()));
    let server = Server::start_with(Options {
        policies: Some(mixed.path().join("b")),
        ..Options::default()
    });
    let object = representative_pod();
    let resp = server
        .review("/mutate", &review("admission.k8s.io/v1", "CREATE", &object))
        .await;
    assert_eq!(resp["response"]["allowed"], true, "{resp}");
    let patched = apply_patch_independently(&object, &patch_of(&resp).unwrap());
    let (by_eval, _) = mutate_checked(&mixed.path().join("b"), &object, &[]);
    assert_eq!(patched, by_eval, "the webhook's patch is regent eval's");
    let mutated_by = resp["response"]["auditAnnotations"]["mutated-by"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(mutated_by.contains("Assign/otel-agent-sidecar"), "{resp}");
    let names: Vec<&str> = mutated_by.split(',').collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "each mutator named once: {mutated_by}"
    );
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_policy_mutations_total{policy=\"Assign/otel-agent-sidecar\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "regent_policy_mutations_total{policy=\"AssignMetadata/default-team-label\"}"
        ),
        1.0
    );
    // A second pass over the mutated object: nothing to do.
    let again = server
        .review(
            "/mutate",
            &review("admission.k8s.io/v1", "CREATE", &patched),
        )
        .await;
    assert_eq!(patch_of(&again), None, "{again}");
}

/// `regent diff` shows a mutator's change as a patch difference.
#[test]
fn diff_shows_what_a_mutator_changes() {
    let before = default_bundle_with(None);
    let with_label = "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: cost-center\nspec:\n  location: metadata.labels.cost-center\n  parameters:\n    assign:\n      value: cc-100\n";
    let after = default_bundle_with(Some(with_label));
    let tmp = tempfile::tempdir().unwrap();
    let file = write_json(tmp.path(), "pod.json", &representative_pod());
    let out = regent(&[
        "diff",
        "--from",
        before.path().join("b").to_str().unwrap(),
        "--to",
        after.path().join("b").to_str().unwrap(),
        "-f",
        &file,
        "-o",
        "json",
    ]);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["counts"]["patch_differs"], 1, "{report}");
    let object = &report["objects"][0];
    assert_eq!(
        object["policies"]["patch_differs"],
        json!(["AssignMetadata/cost-center"]),
        "{object}"
    );
    assert!(
        object["patch_added"]
            .as_array()
            .unwrap()
            .iter()
            .any(|op| op["path"] == "/metadata/labels/cost-center"),
        "{object}"
    );
}

/// Audit reports what admitting an object now would change, as `mutate`
/// results (not failures), for mutators and native policies alike; a
/// mutator bound to CREATE only does not apply in audit (Gatekeeper's rule).
#[test]
fn audit_reports_would_be_mutations_not_failures() {
    let create_only = "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: on-create\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n    operations: [CREATE]\n  location: spec.priorityClassName\n  parameters:\n    assign:\n      value: low\n";
    let bundle = default_bundle_with(Some(&format!(
        "{}---\n{create_only}",
        gatekeeper_defaults()
    )));
    let tmp = tempfile::tempdir().unwrap();
    // Hardened as the default bundle's dry-run findings ask (the restricted
    // Pod Security Standard, a read-only root filesystem, the label), so
    // its only findings are the would-be mutations.
    let mut pod = representative_pod();
    pod["metadata"]["labels"]["app.kubernetes.io/name"] = json!("web");
    pod["spec"]["securityContext"] =
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}});
    for list in ["initContainers", "containers"] {
        for c in pod["spec"][list].as_array_mut().unwrap() {
            c["securityContext"] = json!({"allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}});
        }
    }
    let file = write_json(tmp.path(), "pod.json", &pod);
    let out = regent(&[
        "audit",
        "--policies",
        bundle.path().join("b").to_str().unwrap(),
        "-f",
        &file,
        "-o",
        "json",
    ]);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let mutate: Vec<&str> = records
        .iter()
        .filter(|r| r["result"] == "mutate")
        .map(|r| r["policy"].as_str().unwrap())
        .collect();
    assert!(mutate.contains(&"Assign/otel-agent-sidecar"), "{mutate:?}");
    assert!(
        mutate.contains(&"AssignMetadata/default-team-label"),
        "{mutate:?}"
    );
    assert!(!mutate.contains(&"Assign/on-create"), "{mutate:?}");
    let sidecar = records
        .iter()
        .find(|r| r["policy"] == "Assign/otel-agent-sidecar")
        .unwrap();
    assert_eq!(sidecar["rule"], "mutation");
    assert!(
        sidecar["message"]
            .as_str()
            .unwrap()
            .contains("add /spec/containers/2"),
        "{sidecar}"
    );
    // Would-be mutations alone do not fail the audit.
    assert!(records.iter().all(|r| r["result"] != "fail"));
    assert_eq!(out.status.code(), Some(0));
    // Native policies alone: the same kind of result.
    let native = default_bundle_with(None);
    let out = regent(&[
        "audit",
        "--policies",
        native.path().join("b").to_str().unwrap(),
        "-f",
        &file,
        "-o",
        "json",
    ]);
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert!(records
        .iter()
        .any(|r| r["result"] == "mutate" && r["policy"] == "default_resources"));
}

/// Gatekeeper mutates what an ExpansionTemplate generates before reviewing
/// it (mutators whose `match.source` is `Generated` or `All`), and names it
/// `<parent>-<kind>`: Gatekeeper's gator expand fixture `basic-expansion`,
/// as our own objects, seen through the Constraint it feeds.
#[test]
fn expanded_objects_are_mutated_before_they_are_reviewed() {
    let template = "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: k8salwayspull\nspec:\n  crd:\n    spec:\n      names:\n        kind: K8sAlwaysPull\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n        package k8salwayspull\n        violation[{\"msg\": msg}] {\n          c := input.review.object.spec.containers[_]\n          not c.imagePullPolicy == \"Always\"\n          msg := sprintf(\"%v: container %v does not always pull %v\", [input.review.object.metadata.name, c.name, c.image])\n        }\n---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sAlwaysPull\nmetadata:\n  name: always-pull\nspec:\n  match:\n    kinds:\n    - apiGroups: [\"\"]\n      kinds: [\"Pod\"]\n---\napiVersion: expansion.gatekeeper.sh/v1alpha1\nkind: ExpansionTemplate\nmetadata:\n  name: expand-deployments\nspec:\n  applyTo:\n  - groups: [\"apps\"]\n    kinds: [\"Deployment\"]\n    versions: [\"v1\"]\n  templateSource: \"spec.template\"\n  generatedGVK:\n    kind: \"Pod\"\n    group: \"\"\n    version: \"v1\"\n";
    let pull = "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: Assign\nmetadata:\n  name: always-pull-image\nspec:\n  applyTo:\n  - groups: [ \"\" ]\n    kinds: [ \"Pod\" ]\n    versions: [ \"v1\" ]\n  location: \"spec.containers[name: *].imagePullPolicy\"\n  parameters:\n    assign:\n      value: \"Always\"\n  match:\n    source: \"Generated\"\n    scope: Namespaced\n    kinds:\n    - apiGroups: [ ]\n      kinds: [ ]\n";
    let tag = "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: add-tag-latest\nspec:\n  applyTo:\n  - groups: [ \"\" ]\n    kinds: [ \"Pod\" ]\n    versions: [ \"v1\" ]\n  location: \"spec.containers[name:*].image\"\n  parameters:\n    assignTag: \":latest\"\n  match:\n    source: \"All\"\n    scope: Namespaced\n    kinds:\n    - apiGroups: [ \"*\" ]\n      kinds: [ \"Pod\" ]\n";
    let original_only = pull.replace("source: \"Generated\"", "source: \"Original\"");
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "nginx-deployment", "namespace": "default", "labels": {"app": "nginx"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
                 "template": {"metadata": {"labels": {"app": "nginx"}},
                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [{"containerPort": 80}], "args": ["/bin/sh"]}]}}}
    });
    let tmp = tempfile::tempdir().unwrap();
    let file = write_json(tmp.path(), "deployment.json", &deployment);
    let decide = |files: &[(&str, &str)]| -> Value {
        let bundle = bundle_dir(files);
        let out = regent(&[
            "eval",
            "--policies",
            bundle.path().to_str().unwrap(),
            "-f",
            &file,
            "-o",
            "json",
        ]);
        serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()[0].clone()
    };
    // No mutators: the generated Pod, named as Gatekeeper names it, is denied.
    let r = decide(&[("gk.yaml", template)]);
    assert_eq!(r["allowed"], false, "{r}");
    assert!(
        r["message"].as_str().unwrap().contains("[always-pull] [Implied by expand-deployments] nginx-deployment-pod: container nginx does not always pull nginx:1.14.2"),
        "{r}"
    );
    // The image mutator (source All) changes what the Constraint sees.
    let r = decide(&[("gk.yaml", template), ("tag.yaml", tag)]);
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("does not always pull nginx:latest"),
        "{r}"
    );
    // A mutator for original objects only does not touch the generated Pod.
    let r = decide(&[("gk.yaml", template), ("pull.yaml", &original_only)]);
    assert_eq!(r["allowed"], false, "{r}");
    // The Generated one does: the Deployment is admitted.
    let r = decide(&[
        ("gk.yaml", template),
        ("pull.yaml", pull),
        ("tag.yaml", tag),
    ]);
    assert_eq!(r["allowed"], true, "{r}");
}

/// A mutator that changes the object in two passes is named once (eval,
/// the audit annotation, the metric count).
#[test]
fn a_mutator_changing_the_object_twice_is_named_once() {
    let yaml = format!(
        "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: a-pull\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name:*].imagePullPolicy\"\n  parameters:\n    assign:\n      value: Always\n---\napiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: b-sidecar\nspec:\n{APPLY_TO_POD}  location: \"spec.containers[name:b]\"\n  parameters:\n    assign:\n      value: {{name: b, image: b:1}}\n    pathTests:\n    - subPath: \"spec.containers[name:b]\"\n      condition: MustNotExist\n"
    );
    let bundle = bundle_dir(&[("m.yaml", &yaml)]);
    let (mutated, by) = mutate_checked(
        bundle.path(),
        &pod("p", "default", json!({"containers": [{"name": "a"}]})),
        &[],
    );
    // a-pull ran first, then the sidecar came, then a-pull again for it.
    assert_eq!(
        mutated["spec"]["containers"][1],
        json!({"name": "b", "image": "b:1", "imagePullPolicy": "Always"})
    );
    assert_eq!(by, ["Assign/a-pull", "Assign/b-sidecar"]);
}
