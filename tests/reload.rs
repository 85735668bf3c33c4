//! Hot reload from a directory in the kubelet's `..data` layout and from
//! ConfigMaps through a fake API server: changes take effect within a second,
//! a broken bundle never replaces a working one, and the status is visible.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use common::*;
use serde_json::{json, Value};

const BROKEN: &str = "package validate.broken\n\nimport rego.v1\n\nviolation contains msg if {\n  msg := sprintf(\"%v\", [input.x]\n}\n";

fn pod_with(field: &str) -> Value {
    let mut spec = good_spec();
    spec[field] = json!(true);
    review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", spec, pod_meta()),
    )
}

async fn allowed(server: &Server, field: &str) -> bool {
    server.review("/validate", &pod_with(field)).await["response"]["allowed"] == true
}

/// Polls until a pod setting `field` gets `expect_allowed`; returns how long it took.
async fn until_decision(
    server: &Server,
    field: &str,
    expect_allowed: bool,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if allowed(server, field).await == expect_allowed {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!(
        "{field}: never became allowed={expect_allowed}; logs:\n{}",
        server.log_text()
    );
}

const SUCCESS: &str = "regent_bundle_reloads_total{result=\"success\"}";
const FAILURE: &str = "regent_bundle_reloads_total{result=\"failure\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_swap_takes_effect_within_a_second_and_a_broken_bundle_is_rejected() {
    let mut dir = KubeletDir::new(&[("validate/a/policy.rego", &deny_field("hostPID", "v1"))]);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        ..Options::default()
    });
    assert!(!allowed(&server, "hostPID").await);
    assert!(allowed(&server, "hostIPC").await);
    assert_eq!(metric(&server.metrics(), SUCCESS), 1.0);

    // A kubelet-style swap to a bundle that denies hostIPC instead.
    dir.update(&[("validate/b/policy.rego", &deny_field("hostIPC", "v2"))]);
    let took = until_decision(&server, "hostIPC", false, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert!(allowed(&server, "hostPID").await);

    // A swap to a bundle with a syntax error: counted as a failure, the
    // previous policies keep being enforced, readiness stays.
    dir.update(&[
        ("validate/b/policy.rego", &deny_field("hostIPC", "v2")),
        ("validate/broken/policy.rego", BROKEN),
    ]);
    eventually(Duration::from_secs(3), "the failure to be counted", || {
        metric(&server.metrics(), FAILURE) == 1.0
    })
    .await;
    assert!(!allowed(&server, "hostIPC").await);
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    let logs = server.log_text();
    assert!(logs.contains("validate/broken/policy.rego:6:7"), "{logs}");

    // Back to a good bundle: counted as a success.
    dir.update(&[("validate/a/policy.rego", &deny_field("hostPID", "v3"))]);
    eventually(Duration::from_secs(3), "the success to be counted", || {
        metric(&server.metrics(), SUCCESS) == 3.0
    })
    .await;
    assert!(!allowed(&server, "hostPID").await);
    assert!(allowed(&server, "hostIPC").await);
    let m = server.metrics();
    assert!(
        m.contains("regent_bundle_last_reload_success_timestamp_seconds "),
        "{m}"
    );
    assert!(
        m.contains("regent_bundle_reload_duration_seconds_count 4"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_not_ready_until_its_configured_bundle_is_live() {
    let mut dir = KubeletDir::new(&[("validate/broken/policy.rego", BROKEN)]);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        no_wait: true,
        ..Options::default()
    });
    eventually(
        Duration::from_secs(5),
        "the first bundle to be rejected",
        || metric(&server.metrics(), FAILURE) == 1.0,
    )
    .await;
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 503);
    dir.update(&[("validate/a/policy.rego", &deny_field("hostPID", "fixed"))]);
    eventually(Duration::from_secs(3), "readiness", || {
        admin_get(server.admin, "/readyz").unwrap().0 == 200
    })
    .await;
    assert!(!allowed(&server, "hostPID").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_can_require_the_bundle_tests_to_pass() {
    let test_ok = "package validate.deny_hostpid_test\nimport rego.v1\nimport data.validate.deny_hostpid\ntest_denies if count(deny_hostpid.violation) == 1 with input as {\"request\": {\"object\": {\"spec\": {\"hostPID\": true}}}}\n";
    let test_bad = test_ok.replace("== 1", "== 2");
    let mut dir = KubeletDir::new(&[
        ("validate/a/policy.rego", &deny_field("hostPID", "v1")),
        ("validate/a/policy_test.rego", test_ok),
    ]);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        extra_args: vec!["--reload-require-tests".into()],
        ..Options::default()
    });
    dir.update(&[
        ("validate/a/policy.rego", &deny_field("hostIPC", "v2")),
        ("validate/a/policy_test.rego", &test_bad),
    ]);
    eventually(
        Duration::from_secs(3),
        "the failing tests to reject the bundle",
        || metric(&server.metrics(), FAILURE) == 1.0,
    )
    .await;
    assert!(
        !allowed(&server, "hostPID").await,
        "the old bundle keeps serving"
    );
    assert!(server.log_text().contains("bundle tests failed: data.validate.deny_hostpid_test.test_denies at validate/a/policy_test.rego:4"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_changes_take_effect_and_broken_modules_are_reported_with_their_position() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(configmap(
        "guardrails",
        "validate/a",
        &[("policy.rego", &deny_field("hostPID", "v1"))],
    ));
    // Not labelled: ignored.
    api.apply(json!({"metadata": {"name": "unrelated"}, "data": {"x.rego": "package nope"}}));
    let server = configmap_server(&api, tmp.path(), "regent-0");
    assert!(!allowed(&server, "hostPID").await);
    eventually(Duration::from_secs(5), "the loaded status", || {
        status_of(&api, "guardrails", "regent-0").is_some_and(|s| s["result"] == "loaded")
    })
    .await;
    let loaded = status_of(&api, "guardrails", "regent-0").unwrap();
    assert_eq!(loaded["serving"], loaded["latest"]);

    // MODIFIED takes effect in under a second.
    api.apply(configmap(
        "guardrails",
        "validate/a",
        &[("policy.rego", &deny_field("hostIPC", "v2"))],
    ));
    let took = until_decision(&server, "hostIPC", false, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
    let serving = eventually(
        Duration::from_secs(3),
        "the new revision in the status",
        || {
            status_of(&api, "guardrails", "regent-0")
                .is_some_and(|s| s["serving"] != loaded["serving"])
        },
    )
    .await;
    let _ = serving;
    let good_revision = status_of(&api, "guardrails", "regent-0").unwrap()["serving"].clone();

    // A broken module: rejected with ConfigMap, key, line and column, in the
    // annotation and an Event; the last good bundle keeps serving.
    api.apply(configmap(
        "guardrails",
        "validate/a",
        &[
            ("policy.rego", &deny_field("hostIPC", "v2")),
            ("broken.rego", BROKEN),
        ],
    ));
    eventually(Duration::from_secs(3), "the rejected status", || {
        status_of(&api, "guardrails", "regent-0").is_some_and(|s| s["result"] == "rejected")
    })
    .await;
    let rejected = status_of(&api, "guardrails", "regent-0").unwrap();
    let error = rejected["error"].as_str().unwrap();
    assert!(
        error.starts_with("configmap/guardrails/broken.rego:6:7: "),
        "{error}"
    );
    assert_eq!(rejected["serving"], good_revision);
    assert_ne!(rejected["latest"], good_revision);
    assert!(!allowed(&server, "hostIPC").await);
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    let events = api.events();
    let event = events
        .iter()
        .find(|e| e["reason"] == "BundleRejected")
        .expect("a BundleRejected event");
    assert_eq!(event["regarding"]["name"], "guardrails");
    assert_eq!(event["regarding"]["kind"], "ConfigMap");
    assert_eq!(event["reportingInstance"], "regent-0");
    assert_eq!(event["type"], "Warning");
    assert!(event["note"]
        .as_str()
        .unwrap()
        .contains("configmap/guardrails/broken.rego:6:7"));
    assert!(events
        .iter()
        .any(|e| e["reason"] == "BundleLoaded" && e["type"] == "Normal"));

    // Status patches are MODIFIED events too; they must not cause reloads.
    let successes = metric(&server.metrics(), SUCCESS);
    let failures = metric(&server.metrics(), FAILURE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&server.metrics(), SUCCESS), successes);
    assert_eq!(metric(&server.metrics(), FAILURE), failures);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_and_package_clashes_name_both_configmaps_and_deletion_goes_through_the_same_path() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(configmap(
        "team-a",
        "validate/a",
        &[("policy.rego", &deny_field("hostPID", "a"))],
    ));
    let server = configmap_server(&api, tmp.path(), "regent-1");
    assert!(!allowed(&server, "hostPID").await);

    // The same file path from a second ConfigMap.
    api.apply(configmap(
        "team-b",
        "validate/a",
        &[("policy.rego", &deny_field("hostIPC", "b"))],
    ));
    eventually(Duration::from_secs(3), "the clash", || {
        status_of(&api, "team-b", "regent-1").is_some_and(|s| s["result"] == "rejected")
    })
    .await;
    let error = status_of(&api, "team-b", "regent-1").unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("provided by both ConfigMap team-a and ConfigMap team-b"),
        "{error}"
    );
    assert!(allowed(&server, "hostIPC").await);

    // The same policy package from a second ConfigMap, at another path.
    api.apply(configmap(
        "team-b",
        "validate/b",
        &[("policy.rego", &deny_field("hostPID", "b"))],
    ));
    eventually(Duration::from_secs(3), "the package clash", || {
        status_of(&api, "team-b", "regent-1").is_some_and(|s| {
            s["error"]
                .as_str()
                .is_some_and(|e| e.contains("declared by both"))
        })
    })
    .await;
    let error = status_of(&api, "team-b", "regent-1").unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("configmap/team-a/policy.rego")
            && error.contains("configmap/team-b/policy.rego"),
        "{error}"
    );

    // A ConfigMap module may only declare policy packages.
    api.apply(configmap(
        "team-b",
        "lib",
        &[(
            "lib.rego",
            "package regent.lib.workload\nimport rego.v1\ncontainers := set()\n",
        )],
    ));
    eventually(
        Duration::from_secs(3),
        "the reserved package refusal",
        || {
            status_of(&api, "team-b", "regent-1")
                .is_some_and(|s| s["error"].as_str().is_some_and(|e| e.contains("reserved")))
        },
    )
    .await;
    api.apply(configmap(
        "team-b",
        "lib",
        &[("lib.rego", "package lib.mine\nimport rego.v1\nx := 1\n")],
    ));
    eventually(Duration::from_secs(3), "the helper package refusal", || {
        status_of(&api, "team-b", "regent-1").is_some_and(|s| {
            s["error"]
                .as_str()
                .is_some_and(|e| e.contains("may only declare policy packages"))
        })
    })
    .await;

    // Now a good second policy, then its deletion.
    api.apply(configmap(
        "team-b",
        "validate/b",
        &[("policy.rego", &deny_field("hostIPC", "b"))],
    ));
    until_decision(&server, "hostIPC", false, Duration::from_secs(3)).await;
    api.delete("team-b");
    until_decision(&server, "hostIPC", true, Duration::from_secs(3)).await;
    assert!(!allowed(&server, "hostPID").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_an_api_server_restart_and_410_gone() {
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    api.apply(configmap(
        "guardrails",
        "validate/a",
        &[("policy.rego", &deny_field("hostPID", "v1"))],
    ));
    api.apply(configmap(
        "extra",
        "validate/b",
        &[("policy.rego", &deny_field("hostIPC", "v1"))],
    ));
    let server = configmap_server(&api, tmp.path(), "regent-2");
    assert!(!allowed(&server, "hostPID").await);
    assert!(!allowed(&server, "hostIPC").await);
    eventually(Duration::from_secs(5), "a watch to be open", || {
        api.watcher_count() > 0
    })
    .await;

    // The API server goes away mid-watch; a ConfigMap is deleted while it is
    // down, and history is compacted (the old resourceVersion is now 410).
    api.restart_down();
    api.delete("extra");
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Still serving the last good bundle meanwhile.
    assert!(!allowed(&server, "hostIPC").await);
    assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    api.up();
    // The relist notices the deletion.
    until_decision(&server, "hostIPC", true, Duration::from_secs(15)).await;
    assert!(!allowed(&server, "hostPID").await);

    // A resumed watch with a stale resourceVersion gets 410 and relists.
    api.expire_watches();
    api.apply(configmap(
        "guardrails",
        "validate/a",
        &[("policy.rego", &deny_field("hostNetwork", "v2"))],
    ));
    until_decision(&server, "hostNetwork", false, Duration::from_secs(15)).await;
    let lists = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET") && !r.contains("\"watch\""))
        .count();
    assert!(
        lists >= 3,
        "expected an initial list and two relists: {:?}",
        api.requests()
    );
    let m = server.metrics();
    assert!(
        metric(&m, "regent_source_errors_total{source=\"configmaps\"}") >= 1.0,
        "{m}"
    );
}
