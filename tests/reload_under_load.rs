//! Reviews keep flowing while the bundle is swapped 50 times (good and broken
//! alternating) and the serving certificate is rotated, then replaced by a
//! broken pair: not one request may fail or get a wrong answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn policy(version: usize) -> String {
    format!(
        "# revision {version}\npackage validate.privileged\n\nimport data.regent.lib.workload\nimport rego.v1\n\nviolation contains \"privileged\" if {{\n  some c in workload.containers\n  c.container.securityContext.privileged == true\n}}\n"
    )
}

const BROKEN: &str =
    "package validate.privileged\n\nimport rego.v1\n\nviolation contains msg if {\n";

fn reloads(server: &Server) -> f64 {
    let m = server.metrics();
    metric(&m, "regent_bundle_reloads_total{result=\"success\"}")
        + metric(&m, "regent_bundle_reloads_total{result=\"failure\"}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_swaps_and_certificate_rotations_under_load_fail_nothing() {
    let a = regent::serve::tls::generate_dev(&[SERVICE_DNS.to_string()]).unwrap();
    let b = regent::serve::tls::generate_dev(&[SERVICE_DNS.to_string()]).unwrap();
    let mut certs = KubeletDir::new(&[("tls.crt", &a.cert_pem), ("tls.key", &a.key_pem)]);
    let mut bundle = KubeletDir::new(&[("validate/privileged/policy.rego", &policy(0))]);
    // The caBundle carries both CAs during a rotation, as operators do.
    let ca_bundle = format!("{}{}", a.ca_pem, b.ca_pem);
    let server = Arc::new(Server::start_with(Options {
        policies: Some(bundle.path().to_path_buf()),
        tls: Some((
            certs.path().join("tls.crt"),
            certs.path().join("tls.key"),
            ca_bundle,
        )),
        ..Options::default()
    }));

    let mut privileged = good_spec();
    privileged["containers"][0]["securityContext"]["privileged"] = json!(true);
    let bad = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Deployment", privileged, pod_meta()),
    );
    let good = review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Deployment", good_spec(), pod_meta()),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failures: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut clients = Vec::new();
    for worker in 0..2 {
        let (server, stop, sent, failures) =
            (server.clone(), stop.clone(), sent.clone(), failures.clone());
        let (bad, good) = (bad.clone(), good.clone());
        clients.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (body, expect): (&Value, bool) = if i % 2 == 0 {
                    (&good, true)
                } else {
                    (&bad, false)
                };
                // Every request on a new TLS connection, so handshakes run
                // across certificate swaps.
                let (code, out) = server
                    .post("/validate", serde_json::to_vec(body).unwrap())
                    .await;
                sent.fetch_add(1, Ordering::Relaxed);
                let answer: Option<Value> = serde_json::from_slice(&out).ok();
                let ok = code == 200
                    && answer
                        .as_ref()
                        .is_some_and(|a| a["response"]["allowed"] == expect);
                if !ok {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{code}: {}", String::from_utf8_lossy(&out)));
                }
            }
        }));
    }

    for swap in 1..=50 {
        let before = reloads(&server);
        if swap % 2 == 1 {
            bundle.update(&[("validate/privileged/policy.rego", BROKEN)]);
        } else {
            bundle.update(&[("validate/privileged/policy.rego", &policy(swap))]);
        }
        eventually(Duration::from_secs(5), "the swap to be processed", || {
            reloads(&server) > before
        })
        .await;
        if swap == 20 {
            certs.update(&[("tls.crt", &b.cert_pem), ("tls.key", &b.key_pem)]);
            eventually(Duration::from_secs(5), "the certificate rotation", || {
                metric(
                    &server.metrics(),
                    "regent_tls_reloads_total{result=\"success\"}",
                ) == 1.0
            })
            .await;
            let conn = tls_connect(server.addr, &b.ca_pem, &[b"http/1.1"])
                .await
                .expect("the new certificate is served");
            let served = conn.get_ref().1.peer_certificates().unwrap()[0].clone();
            let expected = rustls::pki_types::pem::PemObject::from_pem_slice(b.cert_pem.as_bytes())
                .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec());
            assert_eq!(Some(served.to_vec()), expected.ok());
        }
        if swap == 35 {
            // A broken pair (B's certificate with A's key) is rejected; B stays.
            certs.update(&[("tls.crt", &b.cert_pem), ("tls.key", &a.key_pem)]);
            eventually(
                Duration::from_secs(5),
                "the broken pair to be rejected",
                || {
                    metric(
                        &server.metrics(),
                        "regent_tls_reloads_total{result=\"failure\"}",
                    ) == 1.0
                },
            )
            .await;
            assert!(tls_connect(server.addr, &b.ca_pem, &[b"http/1.1"])
                .await
                .is_ok());
        }
    }
    // The last swap was to a good bundle.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let m = server.metrics();
    assert_eq!(
        metric(&m, "regent_bundle_reloads_total{result=\"failure\"}"),
        25.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "regent_bundle_reloads_total{result=\"success\"}"),
        26.0,
        "{m}"
    );
    let failures = failures.lock().unwrap();
    let total = sent.load(Ordering::Relaxed);
    assert!(
        failures.is_empty(),
        "{} of {total} requests failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(total > 200, "only {total} requests were sent");
    eprintln!("{total} requests, 0 failed, across 50 bundle swaps and 2 certificate changes");
}
