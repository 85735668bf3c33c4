//! The webhook over TLS, spoken to as the API server speaks to it: real
//! AdmissionReview JSON for every pod-bearing kind, CREATE and UPDATE, v1 and
//! v1beta1, with the CA from the caBundle and SNI regent.regent-system.svc.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::*;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

fn privileged_spec() -> Value {
    let mut spec = good_spec();
    spec["containers"][0]["securityContext"]["privileged"] = json!(true);
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denies_privileged_container_in_pod_and_every_workload_template() {
    let server = Server::start();
    for kind in KINDS {
        let obj = object(kind, privileged_spec(), pod_meta());
        let rev = review("admission.k8s.io/v1", "CREATE", &obj);
        let resp = server.review("/validate", &rev).await;
        let r = &resp["response"];
        assert_eq!(r["uid"], rev["request"]["uid"], "{kind}");
        assert_eq!(r["allowed"], false, "{kind}: {resp}");
        assert_eq!(r["status"]["code"], 403);
        assert_eq!(r["status"]["reason"], "Forbidden");
        let message = r["status"]["message"].as_str().unwrap();
        let expected = format!(
            "[pod_security] {}.containers[0].securityContext.privileged: container \"web\" runs privileged (Pod Security baseline: Privileged Containers). Fix:",
            spec_path(kind)
        );
        assert!(message.contains(&expected), "{kind}: {message}");
        assert!(
            message.starts_with(&format!("{kind} shop/web violates 1 policy:\n")),
            "{message}"
        );
        assert_eq!(r["auditAnnotations"]["denied-by"], "pod_security");
        assert!(
            r["auditAnnotations"]["bundle-revision"]
                .as_str()
                .unwrap()
                .len()
                == 16
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admits_well_formed_pod_in_every_kind_version_and_operation_without_warnings() {
    let server = Server::start();
    for api in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        for op in ["CREATE", "UPDATE"] {
            for kind in KINDS {
                let rev = review(api, op, &object(kind, good_spec(), pod_meta()));
                let resp = server.review("/validate", &rev).await;
                assert_eq!(resp["apiVersion"], api);
                assert_eq!(resp["kind"], "AdmissionReview");
                let r = &resp["response"];
                assert_eq!(r["uid"], rev["request"]["uid"]);
                assert_eq!(r["allowed"], true, "{api} {op} {kind}: {resp}");
                assert!(r.get("warnings").is_none(), "{api} {op} {kind}: {resp}");
                // The mutating webhook has nothing to add to it either.
                let m = server.review("/mutate", &rev).await;
                assert_eq!(m["apiVersion"], api);
                assert_eq!(m["response"]["allowed"], true);
                assert!(patch_of(&m).is_none(), "{api} {op} {kind}: {m}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denies_latest_tag_host_path_and_host_network() {
    let server = Server::start();
    let cases: Vec<(&str, Value, &str)> = vec![
        ("latest", {
            let mut s = good_spec();
            s["containers"][0]["image"] = json!("nginx:latest");
            s
        }, "[image_tag] spec.template.spec.containers[0].image: container \"web\" uses the mutable tag :latest"),
        ("untagged", {
            let mut s = good_spec();
            s["initContainers"] = json!([{"name": "init", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}}]);
            s
        }, "[image_tag] spec.template.spec.initContainers[0].image: container \"init\" uses image \"busybox\" without a tag"),
        ("hostPath", {
            let mut s = good_spec();
            s["volumes"] = json!([{"name": "sock", "hostPath": {"path": "/var/run/docker.sock"}}]);
            s
        }, "[pod_security] spec.template.spec.volumes[0].hostPath: volume \"sock\" mounts a path of the node (Pod Security baseline: HostPath Volumes)"),
        ("hostNetwork", {
            let mut s = good_spec();
            s["hostNetwork"] = json!(true);
            s
        }, "[pod_security] spec.template.spec.hostNetwork: the pod shares the node's network namespace (Pod Security baseline: Host Namespaces)"),
    ];
    for (name, spec, expected) in cases {
        let resp = server
            .review(
                "/validate",
                &review(
                    "admission.k8s.io/v1",
                    "CREATE",
                    &object("Deployment", spec, pod_meta()),
                ),
            )
            .await;
        assert_eq!(resp["response"]["allowed"], false, "{name}");
        let message = resp["response"]["status"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_policies_become_kubectl_warnings_and_do_not_block() {
    let server = Server::start();
    let resp = server
        .review(
            "/validate",
            &review(
                "admission.k8s.io/v1",
                "CREATE",
                &object(
                    "StatefulSet",
                    good_spec(),
                    json!({"labels": good_labels(), "annotations": {"regent.dev/inject": "nope"}}),
                ),
            ),
        )
        .await;
    let r = &resp["response"];
    assert_eq!(r["allowed"], true);
    assert_eq!(
        r["warnings"],
        json!(["[sidecar_annotation] spec.template.metadata.annotations[regent.dev/inject]: no sidecar named \"nope\" is defined, so none is injected. Fix: use one of: otel-agent."])
    );
    assert_eq!(r["auditAnnotations"]["warned-by"], "sidecar_annotation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dryrun_hints_are_neither_warnings_nor_denials_but_are_annotated() {
    let server = Server::start();
    let mut spec = good_spec();
    spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = json!(false);
    let resp = server
        .review(
            "/validate",
            &review(
                "admission.k8s.io/v1",
                "CREATE",
                &object("StatefulSet", spec, pod_meta()),
            ),
        )
        .await;
    let r = &resp["response"];
    assert_eq!(r["allowed"], true);
    assert!(r["warnings"].is_null() || r["warnings"] == json!([]), "{r}");
    assert_eq!(
        r["auditAnnotations"]["dryrun-by"],
        "read_only_root_filesystem"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_adds_resources_keeps_user_values_applies_cleanly_and_settles() {
    let server = Server::start();
    let mut spec = good_spec();
    spec["initContainers"] =
        json!([{"name": "migrate", "image": "registry.example.com/shop/migrate:1.4.2"}]);
    spec["containers"] = json!([
        {"name": "web", "image": "registry.example.com/shop/web:1.4.2"},
        {"name": "cache", "image": "registry.example.com/shop/cache:2.0",
         "resources": {"requests": {"memory": "1Gi"}, "limits": {"cpu": "50m"}}}
    ]);
    for api in ["admission.k8s.io/v1", "admission.k8s.io/v1beta1"] {
        for op in ["CREATE", "UPDATE"] {
            let obj = object("Deployment", spec.clone(), pod_meta());
            let resp = server.review("/mutate", &review(api, op, &obj)).await;
            assert_eq!(resp["apiVersion"], api);
            assert_eq!(resp["response"]["allowed"], true);
            let patch = patch_of(&resp).expect("a patch");
            let mutated = apply_patch_independently(&obj, &patch);
            let pod = &mutated["spec"]["template"]["spec"];
            // Requests only: limits are opt-in.
            assert_eq!(
                pod["initContainers"][0]["resources"],
                json!({"requests": {"cpu": "100m", "memory": "128Mi"}})
            );
            assert_eq!(
                pod["containers"][0]["resources"],
                json!({"requests": {"cpu": "100m", "memory": "128Mi"}})
            );
            // User values stay; defaults never contradict them.
            assert_eq!(
                pod["containers"][1]["resources"],
                json!({"requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"cpu": "50m"}})
            );
            // The developer is told their containers were sized by the cluster.
            assert_eq!(
                resp["response"]["warnings"],
                json!(["[default_resources] default resources (requests cpu 100m, memory 128Mi) were set where containers \"cache\", \"migrate\", \"web\" declared none; declare your own resources to size them"])
            );
            // Nothing else changed.
            let mut expected = obj.clone();
            expected["spec"]["template"]["spec"] = pod.clone();
            assert_eq!(mutated, expected);
            assert_eq!(
                resp["response"]["auditAnnotations"]["mutated-by"],
                "default_resources"
            );
            // A second pass over the mutated object yields no patch.
            let again = server.review("/mutate", &review(api, op, &mutated)).await;
            assert!(patch_of(&again).is_none(), "second pass: {again}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_covers_every_kind_and_is_idempotent() {
    let server = Server::start();
    for kind in KINDS {
        let spec =
            json!({"containers": [{"name": "app", "image": "registry.example.com/app:1.0"}]});
        let obj = object(
            kind,
            spec,
            json!({"annotations": {"regent.dev/inject": "otel-agent"}}),
        );
        let resp = server
            .review("/mutate", &review("admission.k8s.io/v1", "CREATE", &obj))
            .await;
        let mutated = apply_patch_independently(&obj, &patch_of(&resp).expect("a patch"));
        let again = server
            .review(
                "/mutate",
                &review("admission.k8s.io/v1", "CREATE", &mutated),
            )
            .await;
        assert!(patch_of(&again).is_none(), "{kind}: {again}");
        let containers = pointer_spec(&mutated, kind)["containers"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(containers.len(), 2, "{kind}");
        assert_eq!(containers[1]["name"], "otel-agent");
        assert_eq!(
            mutated["metadata"]["labels"]["team"],
            if kind == "Pod" {
                json!("unassigned")
            } else {
                json!("storefront")
            }
        );
    }
}

fn pointer_spec<'a>(obj: &'a Value, kind: &str) -> &'a Value {
    match kind {
        "Pod" => &obj["spec"],
        "CronJob" => &obj["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &obj["spec"]["template"]["spec"],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecar_is_injected_once_with_its_volume_and_only_when_asked() {
    let server = Server::start();
    let obj = object(
        "Deployment",
        good_spec(),
        json!({"labels": good_labels(), "annotations": {"regent.dev/inject": "otel-agent"}}),
    );
    let resp = server
        .review("/mutate", &review("admission.k8s.io/v1", "CREATE", &obj))
        .await;
    let mutated = apply_patch_independently(&obj, &patch_of(&resp).expect("a patch"));
    let pod = &mutated["spec"]["template"]["spec"];
    let names: Vec<&str> = pod["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["web", "otel-agent"]);
    let sidecar = &pod["containers"][1];
    assert_eq!(sidecar["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(sidecar["volumeMounts"][0]["name"], "otel-agent-config");
    let volumes: Vec<&str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(volumes, ["tmp", "otel-agent-config"]);
    assert_eq!(
        resp["response"]["auditAnnotations"]["mutated-by"],
        "inject_sidecar"
    );
    // Injected once: a second pass adds nothing.
    let again = server
        .review(
            "/mutate",
            &review("admission.k8s.io/v1", "UPDATE", &mutated),
        )
        .await;
    assert!(patch_of(&again).is_none(), "{again}");
    // The injected sidecar passes the validating policies too.
    let validated = server
        .review(
            "/validate",
            &review("admission.k8s.io/v1", "CREATE", &mutated),
        )
        .await;
    assert_eq!(validated["response"]["allowed"], true, "{validated}");
    assert!(
        validated["response"].get("warnings").is_none(),
        "{validated}"
    );
    // No annotation, no sidecar.
    let plain = object("Deployment", good_spec(), pod_meta());
    let resp = server
        .review("/mutate", &review("admission.k8s.io/v1", "CREATE", &plain))
        .await;
    assert!(patch_of(&resp).is_none(), "{resp}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_answered_clearly_and_the_server_keeps_deciding() {
    let server = Server::start();
    let good = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", privileged_spec(), pod_meta()),
    );
    let with_request = |request: Value| json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request});
    // (name, body, expected HTTP status, expected text in the message)
    let mut deep = "[".repeat(5000);
    deep.push_str(&"]".repeat(5000));
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("malformed", b"{\"apiVersion\": \"admission.k8s.io/v1\", kind".to_vec(), 400, "not valid JSON"),
        ("truncated", serde_json::to_vec(&good).unwrap()[..200].to_vec(), 400, "not valid JSON"),
        ("empty", Vec::new(), 400, "not valid JSON"),
        ("invalid utf-8", b"{\"apiVersion\": \"\xff\xfe\"}".to_vec(), 400, "not valid JSON"),
        ("deeply nested", deep.into_bytes(), 400, "recursion limit"),
        ("null", b"null".to_vec(), 200, "JSON null, not an AdmissionReview"),
        ("array", b"[1,2,3]".to_vec(), 200, "JSON array, not an AdmissionReview"),
        ("no request", br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}"#.to_vec(), 200, "has no request"),
        ("no uid", serde_json::to_vec(&with_request(json!({"kind": {"kind": "Pod"}, "operation": "CREATE"}))).unwrap(), 200, "request.uid is missing"),
        ("unknown apiVersion", br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview","request":{"uid":"x"}}"#.to_vec(), 200, "apiVersion \"admission.k8s.io/v2\" is not supported"),
        ("wrong kind", br#"{"apiVersion":"admission.k8s.io/v1","kind":"Pod"}"#.to_vec(), 200, "expected \"AdmissionReview\""),
        ("object of wrong type", serde_json::to_vec(&with_request(json!({"uid": "x", "kind": {"kind": "Pod"}, "operation": "CREATE", "object": [1]}))).unwrap(), 200, "request.object is missing or not an object or null"),
        ("kind of wrong type", serde_json::to_vec(&with_request(json!({"uid": "x", "kind": "Pod", "operation": "CREATE"}))).unwrap(), 200, "request.kind.kind"),
    ];
    for (name, body, status, text) in cases {
        for path in ["/validate", "/mutate"] {
            let (code, out) = server.post(path, body.clone()).await;
            let out = String::from_utf8_lossy(&out).to_string();
            assert_eq!(code.as_u16(), status, "{name} {path}: {out}");
            if status == 200 {
                let v: Value = serde_json::from_str(&out).unwrap();
                let message = v["response"]["status"]["message"].as_str().unwrap();
                assert!(message.contains(text), "{name} {path}: {message}");
                assert_eq!(v["kind"], "AdmissionReview");
                assert_eq!(v["response"]["allowed"], false, "{name}");
                assert_eq!(v["response"]["status"]["code"], 400, "{name}");
            } else {
                assert!(out.contains(text), "{name} {path}: {out}");
            }
            assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200, "{name}");
        }
    }
    // The uid of a review that has one is echoed even when it is refused.
    let resp = server
        .review(
            "/validate",
            &with_request(json!({"uid": "keep-me", "kind": {"kind": "Pod"}, "operation": "PATCH"})),
        )
        .await;
    assert_eq!(resp["response"]["uid"], "keep-me");

    let oversized = vec![b' '; 5 * 1024 * 1024];
    let (code, out) = server.post("/validate", oversized).await;
    assert_eq!(
        code,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert!(String::from_utf8_lossy(&out).contains("larger than 4194304 bytes"));

    let (code, _) = server
        .request(Method::GET, "/validate", Vec::new(), false)
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, out) = server.post("/nope", b"{}".to_vec()).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&out).contains("POST /validate and POST /mutate"));

    // An absurd ?timeout= is ignored, not a crash.
    let (code, _) = server
        .post(
            "/validate?timeout=99999999999999999999999h",
            serde_json::to_vec(&good).unwrap(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);

    // Still deciding correctly.
    let resp = server.review("/validate", &good).await;
    assert_eq!(resp["response"]["allowed"], false);
    assert_eq!(resp["response"]["uid"], good["request"]["uid"]);
    assert!(server
        .metrics()
        .contains("regent_invalid_requests_total{reason=\"missing_uid\",webhook=\"validate\"} 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_negotiated_with_alpn() {
    let server = Server::start();
    let rev = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", good_spec(), pod_meta()),
    );
    let stream = tls_connect(server.addr, &server.ca_pem, &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (code, body) = server
        .request(
            Method::POST,
            "/validate",
            serde_json::to_vec(&rev).unwrap(),
            true,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["response"]["allowed"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_for_another_name_is_refused_by_the_client() {
    let server = Server::start();
    let other = regent::serve::tls::generate_dev(&["other.example".to_string()]).unwrap();
    assert!(tls_connect(server.addr, &other.ca_pem, &[b"http/1.1"])
        .await
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_development_certificate_is_trusted_through_its_ca() {
    let server = Server::start_with(Options {
        dev_cert: true,
        ..Options::default()
    });
    let rev = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", good_spec(), pod_meta()),
    );
    assert_eq!(
        server.review("/validate", &rev).await["response"]["allowed"],
        true
    );
    assert!(server.log_text().contains("ca.crt"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_use_the_regent_prefix_and_a_seconds_histogram() {
    let server = Server::start();
    let rev = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", privileged_spec(), pod_meta()),
    );
    server.review("/validate", &rev).await;
    server.review("/mutate", &rev).await;
    let m = server.metrics();
    for series in [
        "regent_admission_requests_total{decision=\"denied\",kind=\"Pod\",operation=\"CREATE\",webhook=\"validate\"} 1",
        "regent_admission_requests_total{decision=\"allowed\",kind=\"Pod\",operation=\"CREATE\",webhook=\"mutate\"} 1",
        "regent_admission_request_duration_seconds_bucket{webhook=\"validate\",le=\"0.25\"} 1",
        "regent_admission_request_duration_seconds_count{webhook=\"validate\"} 1",
        "regent_policy_violations_total{enforcement=\"deny\",policy=\"pod_security\"} 1",
        "regent_policy_evaluations_total{policy=\"pod_security\"} 1",
        "regent_bundle_policies{kind=\"validate\"} 7",
    ] {
        assert!(m.contains(series), "missing {series} in\n{m}");
    }
    assert!(
        m.contains("regent_bundle_info{origin=\"embedded default bundle\",revision=\""),
        "{m}"
    );
    // Logs carry the uid, never the object.
    let logs = server.log_text();
    assert!(logs.contains(rev["request"]["uid"].as_str().unwrap()));
    assert!(
        !logs.contains("registry.example.com/shop/web"),
        "object content leaked into logs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evaluation_timeout_follows_the_failure_mode_and_is_counted() {
    let slow = bundle_dir(&[(
        "validate/slow/policy.rego",
        "package validate.slow\nimport rego.v1\nviolation contains \"never\" if {\n  input.request.object.metadata.name == \"slow\"\n  count([x | some i in numbers.range(1, 5000); some j in numbers.range(1, 5000); x := i * j]) < 0\n}\n",
    )]);
    let obj = {
        let mut o = object("Pod", good_spec(), pod_meta());
        o["metadata"]["name"] = json!("slow");
        o
    };
    for (mode, allowed) in [("deny", false), ("allow", true)] {
        let server = Server::start_with(Options {
            policies: Some(slow.path().to_path_buf()),
            extra_args: vec![
                "--eval-timeout".into(),
                "5s".into(),
                "--failure-mode".into(),
                mode.into(),
            ],
            ..Options::default()
        });
        let rev = review("admission.k8s.io/v1", "CREATE", &obj);
        // The API server's own ?timeout= lowers the limit.
        let started = std::time::Instant::now();
        let (code, body) = server
            .post("/validate?timeout=1s", serde_json::to_vec(&rev).unwrap())
            .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(code, StatusCode::OK);
        let resp: Value = serde_json::from_slice(&body).unwrap();
        let r = &resp["response"];
        assert_eq!(r["allowed"], allowed, "{mode}: {resp}");
        let text = if allowed {
            r["warnings"][0].as_str().unwrap().to_string()
        } else {
            assert_eq!(r["status"]["code"], 500);
            r["status"]["message"].as_str().unwrap().to_string()
        };
        assert!(text.contains("could not evaluate its policies"), "{text}");
        assert!(text.contains("time limit"), "{text}");
        assert!(server.metrics().contains(
            "regent_evaluation_failures_total{reason=\"timeout\",webhook=\"validate\"} 1"
        ));
        assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_turns_readiness_off_drains_and_exits() {
    let mut server = Server::start_with(Options {
        extra_args: vec![
            "--shutdown-delay".into(),
            "1s".into(),
            "--shutdown-grace".into(),
            "5s".into(),
        ],
        ..Options::default()
    });
    server.terminate();
    // During the delay: not ready, but still answering.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok((503, _)) = admin_get(server.admin, "/readyz") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readiness never went false"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rev = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", good_spec(), pod_meta()),
    );
    assert_eq!(
        server.review("/validate", &rev).await["response"]["allowed"],
        true
    );
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)),
        Some(0),
        "{}",
        server.log_text()
    );
}
