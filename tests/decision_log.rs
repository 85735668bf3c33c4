//! The decision log, with the real server and a real local HTTP receiver:
//! records arrive with every field for denied, warned, excepted, mutated
//! and sampled allowed requests, held to the documented schema
//! (`docs/decision-log.schema.yaml`, closed); masking removes what it names
//! (flags and the bundle's `regent.log` mask); gzip and batching; file
//! rotation; the receiver down, slow and failing (every request answered,
//! the queues within their bounds, drops counted, delivery resumed when it
//! recovers); shutdown flushes; and `regent eval --decision-log stdout`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::*;
use serde_json::{json, Value};

const SECRET: &str = "s3cr3t-value-never-logged";

/// How the receiver answers.
const OK: u8 = 0;
const SLOW: u8 = 1;
const FAIL: u8 = 2;

/// A local receiver of decision log POSTs.
#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    records: Arc<Mutex<Vec<Value>>>,
    posts: Arc<AtomicUsize>,
    gzipped: Arc<AtomicUsize>,
    auth: Arc<Mutex<Vec<String>>>,
    mode: Arc<AtomicU8>,
    stop: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    async fn start_on(addr: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        let r = Receiver {
            addr: listener.local_addr().unwrap(),
            records: Default::default(),
            posts: Default::default(),
            gzipped: Default::default(),
            auth: Default::default(),
            mode: Default::default(),
            stop: Default::default(),
        };
        let state = r.clone();
        let app = axum::Router::new().route(
            "/logs",
            post(move |headers: HeaderMap, body: Bytes| {
                let s = state.clone();
                async move {
                    match s.mode.load(Ordering::SeqCst) {
                        SLOW => tokio::time::sleep(Duration::from_secs(10)).await,
                        FAIL => return StatusCode::INTERNAL_SERVER_ERROR,
                        _ => {}
                    }
                    s.posts.fetch_add(1, Ordering::SeqCst);
                    if let Some(a) = headers.get("authorization") {
                        s.auth.lock().unwrap().push(a.to_str().unwrap().to_string());
                    }
                    let text = if headers.get("content-encoding").is_some_and(|v| v == "gzip") {
                        s.gzipped.fetch_add(1, Ordering::SeqCst);
                        let mut out = String::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_string(&mut out)
                            .unwrap();
                        out
                    } else {
                        String::from_utf8(body.to_vec()).unwrap()
                    };
                    let mut records = s.records.lock().unwrap();
                    for line in text.lines().filter(|l| !l.is_empty()) {
                        records.push(serde_json::from_str(line).unwrap());
                    }
                    StatusCode::OK
                }
            }),
        );
        let stop = r.stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await;
        });
        r
    }

    fn url(&self) -> String {
        format!("http://{}/logs", self.addr)
    }

    fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap().clone()
    }
}

/// The documented schema, closed.
fn check_schema(record: &Value) {
    let text = std::fs::read_to_string(repo_path("docs/decision-log.schema.yaml")).unwrap();
    let schema: Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut r = record.clone();
    regent_core::schema::check_mode(&schema, &mut r, "record", regent_core::schema::Mode::Closed)
        .unwrap_or_else(|m| panic!("record does not fit the schema: {m:?}\n{record}"));
}

/// A review of a Deployment `name` in `shop` with `spec` and pod annotations.
fn deployment_review(name: &str, spec: Value, annotations: Value) -> Value {
    let mut obj = object(
        "Deployment",
        spec,
        json!({"labels": good_labels(), "annotations": annotations}),
    );
    obj["metadata"]["name"] = json!(name);
    obj["metadata"]["annotations"] = json!({"vault.example.com/token": SECRET, "team": "shop"});
    let mut r = review("admission.k8s.io/v1", "CREATE", &obj);
    r["request"]["name"] = json!(name);
    r
}

fn spec_with_secret_env() -> Value {
    let mut spec = good_spec();
    spec["containers"][0]["env"] =
        json!([{"name": "API_TOKEN", "value": SECRET}, {"name": "MODE", "value": "prod"}]);
    spec
}

/// A bundle over the default one with a `regent.log` mask rule.
fn mask_bundle() -> tempfile::TempDir {
    bundle_dir(&[(
        "regent/log.rego",
        "package regent.log\n\nimport rego.v1\n\nmask contains \"/metadata/annotations/vault.example.com~1token\"\n",
    )])
}

#[tokio::test(flavor = "multi_thread")]
async fn records_arrive_with_every_field_masked_gzipped_and_batched() {
    let receiver = Receiver::start().await;
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "t0ken-1\n").unwrap();
    let exceptions = tmp.path().join("exceptions");
    std::fs::create_dir(&exceptions).unwrap();
    let ends = regent_core::exceptions::now() + 20 * 86_400;
    std::fs::write(
        exceptions.join("e.yaml"),
        serde_yaml_ng::to_string(&json!({
            "apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
            "metadata": {"name": "legacy", "namespace": "shop"},
            "spec": {"policies": ["pod_security/host_ports"], "match": {"kinds": ["Deployment"], "names": ["excepted"]},
                     "owner": "shop-team", "reason": "migration",
                     "expires": format!("{}Z", regent_core::exceptions::date_time_of(ends))}
        }))
        .unwrap(),
    )
    .unwrap();
    let bundle = mask_bundle();
    let server = Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        extra_args: vec![
            "--with-default-bundle".into(),
            "--decision-log".into(),
            receiver.url(),
            "--decision-log".into(),
            format!("file:{}", tmp.path().join("d.log").display()),
            "--decision-log-allowed".into(),
            "all".into(),
            "--decision-log-include-object".into(),
            "--decision-log-mask".into(),
            "/spec/template/spec/containers/*/env/*/value".into(),
            "--decision-log-token-file".into(),
            token.display().to_string(),
            "--decision-log-flush-interval".into(),
            "200ms".into(),
            "--exceptions".into(),
            exceptions.display().to_string(),
            "--pod-name".into(),
            "regent-0".into(),
        ],
        ..Options::default()
    });
    eventually(Duration::from_secs(5), "the exception", || {
        metric(&server.metrics(), "regent_exceptions{status=\"valid\"}") == 1.0
    })
    .await;
    // Denied (privileged), warned (an unknown sidecar), excepted (a host
    // port), mutated (no resources: defaults), allowed (well-formed).
    let mut privileged = spec_with_secret_env();
    privileged["containers"][0]["securityContext"]["privileged"] = json!(true);
    let mut host_port = good_spec();
    host_port["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
    let mut bare = good_spec();
    bare["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("resources");
    let cases = [
        (
            "denied",
            "/validate",
            deployment_review("denied", privileged, json!({})),
        ),
        (
            "warned",
            "/validate",
            deployment_review(
                "warned",
                good_spec(),
                json!({"regent.dev/inject": "nosuch"}),
            ),
        ),
        (
            "excepted",
            "/validate",
            deployment_review("excepted", host_port, json!({})),
        ),
        (
            "mutated",
            "/mutate",
            deployment_review("mutated", bare, json!({})),
        ),
        (
            "allowed",
            "/validate",
            deployment_review("allowed", spec_with_secret_env(), json!({})),
        ),
    ];
    for (name, path, r) in &cases {
        let resp = server.review(path, r).await;
        assert_eq!(
            resp["response"]["allowed"],
            *name != "denied",
            "{name}: {resp}"
        );
    }
    eventually(Duration::from_secs(5), "five records", || {
        receiver.records().len() >= 5
    })
    .await;
    let records = receiver.records();
    let by = |name: &str| -> Value {
        records
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no record for {name}: {records:?}"))
    };
    for r in &records {
        check_schema(r);
        assert!(
            !r.to_string().contains(SECRET),
            "a secret reached the log: {r}"
        );
        assert_eq!(r["replica"], "regent-0");
        assert_eq!(r["user"]["username"], "alice@example.com");
        assert_eq!(r["user"]["groups"], json!(["system:authenticated", "dev"]));
        assert_eq!(
            r["kind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(r["resource"]["resource"], "deployments");
        assert_eq!(r["namespace"], "shop");
        assert_eq!(r["bundle_revision"].as_str().unwrap().len(), 16);
        // The object is there, masked by the flag and by the bundle's rule.
        assert_eq!(
            r["object"]["metadata"]["annotations"],
            json!({"team": "shop"})
        );
    }
    let denied = by("denied");
    assert_eq!(denied["allowed"], false);
    assert_eq!(denied["code"], 403);
    assert!(denied["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["policy"] == "pod_security"
            && v["enforcement"] == "deny"
            && v["control"] == "privileged"
            && v["path"] == "spec.template.spec.containers[0].securityContext.privileged"
            && v["message"].as_str().unwrap().starts_with(
                "[pod_security] spec.template.spec.containers[0].securityContext.privileged:"
            )));
    assert_eq!(
        denied["object"]["spec"]["template"]["spec"]["containers"][0]["env"],
        json!([{"name": "API_TOKEN"}, {"name": "MODE"}])
    );
    let warned = by("warned");
    assert_eq!(warned["allowed"], true);
    assert!(warned["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("[sidecar_annotation]"));
    let excepted = by("excepted");
    assert_eq!(excepted["exceptions"][0]["exception"], "shop/legacy");
    assert_eq!(excepted["exceptions"][0]["owner"], "shop-team");
    assert_eq!(excepted["exceptions"][0]["policy"], "pod_security");
    let mutated = by("mutated");
    assert_eq!(mutated["webhook"], "mutate");
    assert!(mutated["patch"]["operations"].as_u64().unwrap() >= 1);
    assert!(mutated["patch"]["policies"]
        .as_array()
        .unwrap()
        .contains(&json!("default_resources")));
    let allowed = by("allowed");
    assert_eq!(allowed["allowed"], true);
    assert!(allowed["violations"].as_array().unwrap().is_empty());
    assert!(allowed["duration_us"].as_u64().unwrap() > 0);
    // Gzip, batches, the token.
    assert!(receiver.posts.load(Ordering::SeqCst) >= 1);
    assert_eq!(
        receiver.gzipped.load(Ordering::SeqCst),
        receiver.posts.load(Ordering::SeqCst)
    );
    assert!(receiver
        .auth
        .lock()
        .unwrap()
        .iter()
        .all(|a| a == "Bearer t0ken-1"));
    // A burst goes in few POSTs.
    let before = receiver.posts.load(Ordering::SeqCst);
    for i in 0..60 {
        let r = deployment_review(&format!("burst-{i}"), good_spec(), json!({}));
        server.review("/validate", &r).await;
    }
    eventually(Duration::from_secs(5), "the burst", || {
        receiver.records().len() >= 65
    })
    .await;
    let posts = receiver.posts.load(Ordering::SeqCst) - before;
    assert!(posts < 20, "60 records in {posts} POSTs");
    // The token file changed: the next batch carries the new one.
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(&token, "t0ken-2\n").unwrap();
    server
        .review(
            "/validate",
            &deployment_review("after-rotation", good_spec(), json!({})),
        )
        .await;
    eventually(Duration::from_secs(5), "the new token", || {
        receiver
            .auth
            .lock()
            .unwrap()
            .last()
            .is_some_and(|a| a == "Bearer t0ken-2")
    })
    .await;
    // The file sink has the same records.
    eventually(Duration::from_secs(5), "the file", || {
        std::fs::read_to_string(tmp.path().join("d.log"))
            .map(|t| t.lines().count() >= 66)
            .unwrap_or(false)
    })
    .await;
    let m = server.metrics();
    assert!(
        metric(
            &m,
            "regent_decision_log_records_total{result=\"sent\",sink=\"http\"}"
        ) >= 66.0,
        "{m}"
    );
    assert!(
        metric(
            &m,
            "regent_decision_log_records_total{result=\"sent\",sink=\"file\"}"
        ) >= 66.0
    );
    assert_eq!(
        metric(
            &m,
            "regent_decision_log_records_total{result=\"dropped\",sink=\"http\"}"
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn allowed_decisions_are_sampled_and_files_rotate() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("logs").join("d.log");
    let server = Server::start_with(Options {
        extra_args: vec![
            "--decision-log".into(),
            format!("file:{}", log.display()),
            "--decision-log-allowed".into(),
            "0.5".into(),
            "--decision-log-max-file-size".into(),
            "8Ki".into(),
            "--decision-log-max-files".into(),
            "3".into(),
            "--decision-log-flush-interval".into(),
            "200ms".into(),
        ],
        ..Options::default()
    });
    let n = 300;
    for i in 0..n {
        let r = deployment_review(&format!("ok-{i}"), good_spec(), json!({}));
        server.review("/validate", &r).await;
    }
    let mut bad = good_spec();
    bad["hostPID"] = json!(true);
    for i in 0..10 {
        server
            .review(
                "/validate",
                &deployment_review(&format!("bad-{i}"), bad.clone(), json!({})),
            )
            .await;
    }
    let queued = || {
        metric(
            &server.metrics(),
            "regent_decision_log_records_total{result=\"sent\",sink=\"file\"}",
        )
    };
    eventually(Duration::from_secs(5), "every denied record", || {
        queued() >= 10.0 + 100.0
    })
    .await;
    // Sinks write in batches (up to the flush interval): wait until the
    // count stops moving.
    let mut sent = queued();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let now = queued();
        if now == sent {
            break;
        }
        sent = now;
    }
    // About half of the plain admissions, and every denial.
    assert!(
        (10.0 + 110.0..=10.0 + 190.0).contains(&sent),
        "{sent} records sent"
    );
    let files: Vec<String> = std::fs::read_dir(log.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(files.len() <= 3, "{files:?}");
    assert!(files.iter().any(|f| f == "d.log.2"), "{files:?}");
    for f in &files {
        let len = std::fs::metadata(log.parent().unwrap().join(f))
            .unwrap()
            .len();
        assert!(len <= 8 * 1024, "{f}: {len}");
    }
    // The newest file ends with the denials, each a whole record.
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    check_schema(&last);
    assert_eq!(last["allowed"], false);
    assert!(
        last.get("object").is_none(),
        "no object without --decision-log-include-object"
    );
}

/// Sends `n` reviews on 4 concurrent clients; every one must be answered
/// (the decision log never holds a request up). Returns the slowest.
async fn hammer(server: &Server, n: usize, prefix: &str) -> Duration {
    let server_addr = server.addr;
    let ca = server.ca_pem.clone();
    let mut tasks = Vec::new();
    let per = n / 4;
    for t in 0..4 {
        let ca = ca.clone();
        let prefix = prefix.to_string();
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for i in 0..per {
                let mut spec = good_spec();
                spec["containers"][0]["env"] = json!([{"name": "PAD", "value": "x".repeat(4000)}]);
                spec["hostIPC"] = json!(i % 2 == 0);
                let r = deployment_review(&format!("{prefix}-{t}-{i}"), spec, json!({}));
                let started = Instant::now();
                let resp = post_review(server_addr, &ca, &r).await;
                slowest = slowest.max(started.elapsed());
                assert!(resp["response"]["uid"].is_string(), "{resp}");
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        slowest = slowest.max(t.await.unwrap());
    }
    slowest
}

async fn post_review(addr: SocketAddr, ca: &str, review: &Value) -> Value {
    use http_body_util::{BodyExt, Full};
    let stream = tls_connect(addr, ca, &[b"http/1.1"]).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("https://{SERVICE_DNS}/validate"))
        .header("content-type", "application/json")
        .header("host", SERVICE_DNS)
        .body(Full::new(Bytes::from(serde_json::to_vec(review).unwrap())))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&body).unwrap()
}

fn unused_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_slow_or_failing_never_holds_up_admission_and_delivery_resumes() {
    // Down: nothing listens on the port yet.
    let addr = unused_port();
    let server = Server::start_with(Options {
        extra_args: vec![
            "--decision-log".into(),
            format!("http://{addr}/logs"),
            "--decision-log-allowed".into(),
            "all".into(),
            "--decision-log-include-object".into(),
            "--decision-log-buffer".into(),
            "200".into(),
            "--decision-log-buffer-bytes".into(),
            "512Ki".into(),
            "--decision-log-batch".into(),
            "50".into(),
            "--decision-log-flush-interval".into(),
            "100ms".into(),
            "--decision-log-timeout".into(),
            "2s".into(),
            "--decision-log-attempts".into(),
            "2".into(),
        ],
        ..Options::default()
    });
    let rss_before = rss(server.pid());
    let slowest = hammer(&server, 800, "down").await;
    assert!(
        slowest < Duration::from_secs(3),
        "a request took {slowest:?}"
    );
    let m = server.metrics();
    let http = |result: &str| {
        metric(
            &server.metrics(),
            &format!("regent_decision_log_records_total{{result=\"{result}\",sink=\"http\"}}"),
        )
    };
    eventually(Duration::from_secs(10), "drops or failures counted", || {
        http("dropped") + http("failed") > 0.0
    })
    .await;
    // Within the bounds: records and bytes of each queue.
    assert!(
        metric(&m, "regent_decision_log_queue_records{sink=\"http\"}") <= 200.0,
        "{m}"
    );
    assert!(
        metric(&m, "regent_decision_log_queue_bytes{sink=\"http\"}") <= 600.0 * 1024.0,
        "{m}"
    );
    assert!(
        metric(&m, "regent_decision_log_queue_bytes{sink=\"pending\"}") <= 600.0 * 1024.0,
        "{m}"
    );
    let grew = rss(server.pid()).saturating_sub(rss_before);
    assert!(grew < 64 * 1024 * 1024, "RSS grew by {grew} bytes");

    // Back up: delivery resumes without a restart.
    let receiver = Receiver::start_on(addr).await;
    server
        .review(
            "/validate",
            &deployment_review("after-recovery", good_spec(), json!({})),
        )
        .await;
    eventually(Duration::from_secs(15), "delivery resumed", || {
        receiver
            .records()
            .iter()
            .any(|r| r["name"] == "after-recovery")
    })
    .await;

    // Slow: 10 s per request. Admission does not notice.
    receiver.mode.store(SLOW, Ordering::SeqCst);
    let slowest = hammer(&server, 400, "slow").await;
    assert!(
        slowest < Duration::from_secs(3),
        "a request took {slowest:?}"
    );
    assert!(
        metric(
            &server.metrics(),
            "regent_decision_log_queue_records{sink=\"http\"}"
        ) <= 200.0
    );

    // Failing: 500s are retried, then counted failed.
    receiver.mode.store(FAIL, Ordering::SeqCst);
    let failed = http("failed");
    tokio::time::sleep(Duration::from_secs(11)).await; // the slow request ends
    let slowest = hammer(&server, 200, "failing").await;
    assert!(
        slowest < Duration::from_secs(3),
        "a request took {slowest:?}"
    );
    eventually(Duration::from_secs(15), "500s counted failed", || {
        http("failed") > failed
    })
    .await;

    // Healthy again: records flow.
    receiver.mode.store(OK, Ordering::SeqCst);
    server
        .review(
            "/validate",
            &deployment_review("healthy-again", good_spec(), json!({})),
        )
        .await;
    eventually(Duration::from_secs(15), "delivery after the 500s", || {
        receiver
            .records()
            .iter()
            .any(|r| r["name"] == "healthy-again")
    })
    .await;
    receiver.stop.notify_waiters();
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_flushes_what_is_queued() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("d.log");
    let mut server = Server::start_with(Options {
        extra_args: vec![
            "--decision-log".into(),
            format!("file:{}", log.display()),
            "--decision-log-allowed".into(),
            "all".into(),
        ],
        ..Options::default()
    });
    for i in 0..50 {
        server
            .review(
                "/validate",
                &deployment_review(&format!("p-{i}"), good_spec(), json!({})),
            )
            .await;
    }
    server.terminate();
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 50, "{text}");
    assert!(server.log_text().contains("decision log flushed"));
}

#[test]
fn eval_prints_the_records_the_server_would_log() {
    let bundle = mask_bundle();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["eval", "--with-default-bundle", "--policies"])
        .arg(bundle.path())
        .args([
            "--decision-log",
            "stdout",
            "--decision-log-include-object",
            "-f",
        ])
        .arg(repo_path("tests/fixtures/manifests"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // One mutate and one validate record per manifest.
    assert_eq!(records.len(), 4, "{text}");
    for r in &records {
        check_schema(r);
        assert_eq!(r["replica"], "regent-eval");
        assert!(r["object"].is_object());
    }
    assert!(records
        .iter()
        .any(|r| r["webhook"] == "validate" && r["allowed"] == false));
    assert!(records
        .iter()
        .any(|r| r["webhook"] == "mutate" && r["patch"]["operations"].as_u64().unwrap() > 0));
    assert!(
        std::process::Command::new(env!("CARGO_BIN_EXE_regent"))
            .args(["eval", "--decision-log", "https://x.example", "-f"])
            .arg(repo_path("tests/fixtures/manifests"))
            .output()
            .unwrap()
            .status
            .code()
            == Some(2)
    );
}

#[test]
fn the_schema_is_documented_field_by_field_and_records_cannot_drift_from_it() {
    let text = std::fs::read_to_string(repo_path("docs/decision-log.schema.yaml")).unwrap();
    let schema: Value = serde_yaml_ng::from_str(&text).unwrap();
    let doc = std::fs::read_to_string(repo_path("docs/decision-log.md")).unwrap();
    for field in schema["properties"].as_object().unwrap().keys() {
        assert!(
            doc.contains(&format!("`{field}`")),
            "{field} is not documented"
        );
    }
    // A field that changes type, disappears, or appears undeclared fails.
    let record = json!({
        "time": "2026-12-07T18:06:36.227767Z", "decision_id": "0123456789abcdef0123456789abcdef",
        "uid": "u", "webhook": "validate", "operation": "CREATE",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": "shop", "name": "web", "user": {"username": "alice", "groups": []},
        "dry_run": false, "allowed": true, "violations": [], "warnings": [], "exceptions": [],
        "bundle_revision": "0123456789abcdef", "duration_us": 120, "replica": "regent-0"
    });
    check_schema(&record);
    let fails = |change: &dyn Fn(&mut Value)| {
        let mut r = record.clone();
        change(&mut r);
        let mut r2 = r.clone();
        regent_core::schema::check_mode(
            &schema,
            &mut r2,
            "record",
            regent_core::schema::Mode::Closed,
        )
        .is_err()
    };
    assert!(fails(&|r| r["duration_us"] = json!("120")));
    assert!(fails(&|r| {
        r.as_object_mut().unwrap().remove("user");
    }));
    assert!(fails(&|r| r["extra"] = json!(1)));
    assert!(fails(&|r| r["allowed"] = json!("yes")));
}
