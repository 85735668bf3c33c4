//! No policy, client or input takes the webhook down: slow and
//! memory-hungry policies are rejected at start and on reload with the
//! culprit named (the last good bundle keeps serving, memory stays bounded),
//! an evaluation over its limits at request time follows the failure mode,
//! slow and idle clients are disconnected, connections beyond the cap wait,
//! and with `--client-ca` only the API server's certificate gets through.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Takes seconds on any Pod: 27 million iterations.
const SLOW: &str = r#"package validate.slow

import rego.v1

violation contains msg if {
	some i in numbers.range(1, 300)
	some j in numbers.range(1, 300)
	some k in numbers.range(1, 300)
	i * j * k < 0
	msg := "never"
}
"#;

/// Asks for about a gigabyte inside one builtin call.
const BOMB: &str = r#"package validate.bomb

import rego.v1

violation contains msg if {
	n := count([x | some x in numbers.range(1, 50000000); x % 7 == 0])
	n < 0
	msg := "never"
}
"#;

/// Decides an ordinary Pod at once, but blows up for Pods labelled
/// `trigger: bomb` or `trigger: slow`.
const TRIGGERED: &str = r#"package validate.triggered

import rego.v1

violation contains msg if {
	input.request.object.metadata.labels.trigger == "bomb"
	n := count(numbers.range(1, 50000000))
	msg := sprintf("%d", [n])
}

violation contains 42 if {
	input.request.object.metadata.labels.trigger == "error"
}

violation contains msg if {
	input.request.object.metadata.labels.trigger == "slow"
	some i in numbers.range(1, 400)
	some j in numbers.range(1, 400)
	some k in numbers.range(1, 400)
	i * j * k < 0
	msg := "never"
}
"#;

const NO_PRIVILEGED: &str = r#"package validate.no_privileged

import rego.v1

violation contains msg if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged
	msg := sprintf("container %s is privileged", [c.name])
}
"#;

const GOOD: &[(&str, &str)] = &[("validate/no_privileged/policy.rego", NO_PRIVILEGED)];

fn pod(labels: Value, privileged: bool) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27",
                 "securityContext": {"privileged": privileged}}]}
    })
}

/// Waits until the server has logged a rejected bundle; the log line.
async fn rejection(server: &Server, after: usize) -> String {
    let mut line = String::new();
    eventually(Duration::from_secs(30), "a rejected bundle", || {
        let logs = server.logs.lock().unwrap();
        match logs
            .iter()
            .skip(after)
            .find(|l| l.contains("policy bundle rejected"))
        {
            Some(l) => {
                line = l.clone();
                true
            }
            None => false,
        }
    })
    .await;
    line
}

const LIMIT: u64 = 32 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_memory_hungry_bundles_never_go_live_at_start() {
    // What a server with a good bundle holds at its peak: the baseline.
    let good = bundle_dir(GOOD);
    let reference = Server::start_with(Options {
        policies: Some(good.path().to_path_buf()),
        ..Options::default()
    });
    let baseline = peak_rss(reference.pid());
    drop(reference);

    for (file, policy, limit) in [
        ("validate/slow/policy.rego", SLOW, "time limit of 1s"),
        ("validate/bomb/policy.rego", BOMB, "memory limit of 32 MiB"),
    ] {
        let dir = bundle_dir(&[(file, policy)]);
        let started = Instant::now();
        let server = Server::start_with(Options {
            policies: Some(dir.path().to_path_buf()),
            extra_args: vec!["--eval-timeout".into(), "1s".into()],
            no_wait: true,
            ..Options::default()
        });
        let line = rejection(&server, 0).await;
        assert!(line.contains(file) && line.contains(limit), "{line}");
        // Rejected within a few limits, not after the minute the policy
        // would take to finish.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let (code, body) = admin_get(server.admin, "/readyz").unwrap();
        assert_eq!(code, 503, "{body}");
        assert!(
            body.contains("no policy bundle is live")
                && body.contains(file)
                && body.contains(limit),
            "{body}"
        );
        let peak = peak_rss(server.pid());
        assert!(
            peak < baseline + 2 * LIMIT,
            "{file}: peak RSS {} MiB, baseline {} MiB",
            peak >> 20,
            baseline >> 20
        );
        // A request before any bundle is live follows the failure mode.
        let review = review("admission.k8s.io/v1", "CREATE", &pod(json!({}), false));
        let out = server.review("/validate", &review).await;
        assert_eq!(out["response"]["allowed"], false);
        assert_eq!(out["response"]["status"]["code"], 500);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_memory_hungry_bundles_are_rejected_on_reload_and_the_last_good_one_serves() {
    let mut dir = KubeletDir::new(GOOD);
    let server = Server::start_with(Options {
        policies: Some(dir.path().to_path_buf()),
        extra_args: vec!["--eval-timeout".into(), "1s".into()],
        ..Options::default()
    });
    let privileged = review("admission.k8s.io/v1", "CREATE", &pod(json!({}), true));
    let before = peak_rss(server.pid());
    for (file, policy, limit) in [
        ("validate/slow/policy.rego", SLOW, "time limit of 1s"),
        ("validate/bomb/policy.rego", BOMB, "memory limit of 32 MiB"),
    ] {
        let seen = server.logs.lock().unwrap().len();
        let mut files = GOOD.to_vec();
        files.push((file, policy));
        dir.update(&files);
        let line = rejection(&server, seen).await;
        assert!(line.contains(file) && line.contains(limit), "{line}");
        assert_eq!(admin_get(server.admin, "/readyz").unwrap().0, 200);
        let out = server.review("/validate", &privileged).await;
        assert_eq!(out["response"]["allowed"], false, "{out}");
        assert!(out["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("[no_privileged]"));
    }
    let peak = peak_rss(server.pid());
    assert!(
        peak < before + 2 * LIMIT,
        "peak RSS {} MiB after the reloads, {} MiB before",
        peak >> 20,
        before >> 20
    );
    let metrics = server.metrics();
    assert_eq!(
        metric(&metrics, "regent_bundle_reloads_total{result=\"failure\"}"),
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_template_that_cannot_decide_an_ordinary_pod_in_time_is_rejected() {
    let template = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: slowtemplate
spec:
  crd:
    spec:
      names:
        kind: SlowTemplate
  targets:
    - target: admission.k8s.gatekeeper.sh
      rego: |
        package slowtemplate
        violation[{"msg": "never"}] {
          count(numbers.range(1, 50000000)) < 0
        }
"#;
    let dir = bundle_dir(&[("gk/template.yaml", template)]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_regent"))
        .arg("check")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("ConstraintTemplate slowtemplate: gk/template.yaml:1:")
            && err.contains("memory limit of 32 MiB"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_evaluation_over_its_limits_follows_the_failure_mode_and_the_next_request_is_decided() {
    let dir = bundle_dir(&[("validate/triggered/policy.rego", TRIGGERED)]);
    for mode in ["deny", "allow"] {
        let server = Server::start_with(Options {
            policies: Some(dir.path().to_path_buf()),
            extra_args: vec![
                "--eval-timeout".into(),
                "500ms".into(),
                "--failure-mode".into(),
                mode.into(),
            ],
            ..Options::default()
        });
        for (trigger, why) in [
            ("bomb", "exceeded its memory limit of 32 MiB"),
            ("slow", "exceeded its time limit"),
            ("error", "policy triggered returned a malformed result"),
        ] {
            let started = Instant::now();
            let r = review(
                "admission.k8s.io/v1",
                "CREATE",
                &pod(json!({"trigger": trigger}), false),
            );
            let out = server.review("/validate", &r).await;
            assert!(started.elapsed() < Duration::from_secs(3));
            let response = &out["response"];
            // A limit spends the request's budget: a webhook failure (500).
            // An error of one policy is that policy's result: with `deny`
            // and failure mode deny, a line of the denial (403).
            let code = if trigger == "error" { 403 } else { 500 };
            if mode == "deny" {
                assert_eq!(response["allowed"], false, "{out}");
                assert_eq!(response["status"]["code"], code);
                assert!(
                    response["status"]["message"]
                        .as_str()
                        .unwrap()
                        .contains(why),
                    "{out}"
                );
            } else {
                assert_eq!(response["allowed"], true, "{out}");
                assert!(
                    response["warnings"][0].as_str().unwrap().contains(why),
                    "{out}"
                );
            }
            let ok = review("admission.k8s.io/v1", "CREATE", &pod(json!({}), false));
            let out = server.review("/validate", &ok).await;
            assert_eq!(out["response"]["allowed"], true, "{out}");
        }
        let metrics = server.metrics();
        assert_eq!(
            metric(
                &metrics,
                "regent_evaluation_failures_total{reason=\"memory\",webhook=\"validate\"}"
            ),
            1.0,
            "{metrics}"
        );
        assert_eq!(
            metric(
                &metrics,
                "regent_evaluation_failures_total{reason=\"timeout\",webhook=\"validate\"}"
            ),
            1.0
        );
        assert_eq!(
            metric(
                &metrics,
                "regent_policy_errors_total{policy=\"triggered\",reason=\"malformed\"}"
            ),
            1.0,
            "{metrics}"
        );
    }
}

/// Reads from `s` until EOF or an error; the time it took.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(s: &mut S, within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), s.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after {within:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn half_open_requests_are_closed_within_the_header_timeout() {
    let server = Server::start_with(Options {
        extra_args: vec!["--header-timeout".into(), "1s".into()],
        ..Options::default()
    });
    let mut conns = Vec::new();
    for _ in 0..50 {
        let mut s = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
            .await
            .unwrap();
        s.write_all(b"POST /validate HTTP/1.1\r\nHost: regent\r\nContent-Ty")
            .await
            .unwrap();
        s.flush().await.unwrap();
        conns.push(s);
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut s in conns {
        tasks.push(tokio::spawn(async move {
            closed_within(&mut s, Duration::from_secs(4)).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(2500), "{took:?}");
    // A slow body is cut off the same way, with 408.
    let mut s = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
        .await
        .unwrap();
    s.write_all(
        b"POST /validate HTTP/1.1\r\nHost: regent\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"apiVersion\":",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(4), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_connections_closed_total{reason=\"header_timeout\"}"
        ),
        50.0,
        "{metrics}"
    );
    // A whole request on a fresh connection is still answered.
    let r = review("admission.k8s.io/v1", "CREATE", &pod(json!({}), false));
    assert_eq!(
        server.review("/validate", &r).await["response"]["allowed"],
        true
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_and_stalled_handshakes_are_closed() {
    let server = Server::start_with(Options {
        extra_args: vec![
            "--idle-timeout".into(),
            "1s".into(),
            "--tls-handshake-timeout".into(),
            "1s".into(),
        ],
        ..Options::default()
    });
    // An idle keep-alive connection, after one full exchange.
    let mut s = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
        .await
        .unwrap();
    let body = serde_json::to_vec(&review(
        "admission.k8s.io/v1",
        "CREATE",
        &pod(json!({}), false),
    ))
    .unwrap();
    s.write_all(
        format!(
            "POST /validate HTTP/1.1\r\nHost: regent\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    let mut first = vec![0u8; 64];
    let n = s.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    let idle = closed_within(&mut s, Duration::from_secs(4)).await;
    assert!(
        idle >= Duration::from_millis(500),
        "closed too early: {idle:?}"
    );
    // A TCP connection that never starts its handshake.
    let addr = server.addr;
    let waited = tokio::task::spawn_blocking(move || {
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let _ = tcp.read(&mut buf);
        let _ = tcp.write_all(b"x");
        started.elapsed()
    })
    .await
    .unwrap();
    assert!(waited < Duration::from_millis(3500), "{waited:?}");
    let metrics = server.metrics();
    assert_eq!(
        metric(
            &metrics,
            "regent_connections_closed_total{reason=\"idle_timeout\"}"
        ),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "regent_connections_closed_total{reason=\"handshake_timeout\"}"
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let server = Server::start_with(Options {
        extra_args: vec!["--max-connections".into(), "2".into()],
        ..Options::default()
    });
    let a = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
        .await
        .unwrap();
    let _b = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
        .await
        .unwrap();
    let addr = server.addr;
    let ca = server.ca_pem.clone();
    let third = tokio::spawn(async move {
        let started = Instant::now();
        let s = tls_connect(addr, &ca, &[b"http/1.1"]).await;
        (s.is_ok(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served past the cap"
    );
    assert_eq!(metric(&server.metrics(), "regent_connections_open"), 2.0);
    drop(a);
    let (ok, waited) = third.await.unwrap();
    assert!(
        ok && waited >= Duration::from_millis(700),
        "{ok} {waited:?}"
    );
}

/// Sends a review over a connection made with `client`; the status, or
/// `None` when the request could not complete.
async fn post_as(server: &Server, client: Option<(&str, &str)>) -> Option<u16> {
    use http_body_util::{BodyExt, Full};
    let stream = tls_connect_as(server.addr, &server.ca_pem, &[b"http/1.1"], client)
        .await
        .ok()?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let body = serde_json::to_vec(&review(
        "admission.k8s.io/v1",
        "CREATE",
        &pod(json!({}), false),
    ))
    .unwrap();
    let req = hyper::Request::post(format!("https://{SERVICE_DNS}/validate"))
        .header("content-type", "application/json")
        .header("host", SERVICE_DNS)
        .body(Full::new(axum::body::Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_client_ca_only_the_right_client_certificate_gets_through() {
    let apiserver = regent::serve::tls::generate_client("kube-apiserver").unwrap();
    let impostor = regent::serve::tls::generate_client("kube-apiserver").unwrap();
    let stranger = regent::serve::tls::generate_client("someone-else").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("client-ca.crt");
    // Two trusted CAs: the API server's, and the stranger's (right CA, wrong name).
    std::fs::write(&ca, format!("{}{}", apiserver.ca_pem, stranger.ca_pem)).unwrap();
    let server = Server::start_with(Options {
        extra_args: vec![
            "--client-ca".into(),
            ca.display().to_string(),
            "--client-cn".into(),
            "kube-apiserver".into(),
        ],
        ..Options::default()
    });
    let with = |c: &regent::serve::tls::DevCertificates| (c.cert_pem.clone(), c.key_pem.clone());
    let (a_cert, a_key) = with(&apiserver);
    let (i_cert, i_key) = with(&impostor);
    let (s_cert, s_key) = with(&stranger);
    assert_eq!(post_as(&server, Some((&a_cert, &a_key))).await, Some(200));
    assert_eq!(post_as(&server, None).await, None, "no certificate");
    assert_eq!(
        post_as(&server, Some((&i_cert, &i_key))).await,
        None,
        "another CA"
    );
    assert_eq!(
        post_as(&server, Some((&s_cert, &s_key))).await,
        None,
        "another name"
    );
    // The CA file is reloaded: trust the impostor's CA instead.
    std::fs::write(&ca, &impostor.ca_pem).unwrap();
    let mut swapped = false;
    for _ in 0..100 {
        if post_as(&server, Some((&i_cert, &i_key))).await == Some(200) {
            swapped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(swapped, "the new client CA was not picked up");
    assert_eq!(post_as(&server, Some((&a_cert, &a_key))).await, None);
    // A broken CA file is refused; the CA in use stays.
    let seen = server.logs.lock().unwrap().len();
    std::fs::write(&ca, "not a certificate").unwrap();
    eventually(Duration::from_secs(10), "the broken CA is refused", || {
        server.logs.lock().unwrap()[seen..]
            .iter()
            .any(|l| l.contains("new client CA rejected"))
    })
    .await;
    assert_eq!(post_as(&server, Some((&i_cert, &i_key))).await, Some(200));
}
