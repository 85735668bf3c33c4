//! The soak run: the server under mixed load while everything that can
//! change does, for 40 s in the test suite and for N minutes with the
//! release build in `tests/soak/run.sh [MINUTES]`. Valid reviews on keep-alive connections, invalid and oversized
//! bodies, and half-open slow clients arrive all the time; the bundle
//! ConfigMap is replaced every second (half of the revisions broken, too
//! slow or too memory-hungry to load); the serving certificate rotates every
//! 10 s; the ConfigMap watch is expired (410 Gone) every 30 s.
//!
//! It prints a line per window (a minute on a long run; requests, failed valid requests, p50 and p99
//! of valid requests, RSS) and fails if any valid request failed or got a
//! wrong answer, if the peak RSS passes the chart's 96 Mi limit, or (on runs
//! of 5 minutes or more) if the peak RSS at the end is more than 10 % above
//! the peak after the first window.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// How long to run: `SOAK_MINUTES` (tests/soak/run.sh, 10 by default
/// there), else 40 seconds (the test suite: the same churn, shorter).
fn length() -> Duration {
    std::env::var("SOAK_MINUTES")
        .ok()
        .and_then(|m| m.parse::<u64>().ok())
        .map_or(Duration::from_secs(40), |m| Duration::from_secs(m * 60))
}

fn good_policy(revision: u64) -> String {
    format!(
        "# revision {revision}\npackage validate.privileged\n\nimport data.regent.lib.workload.containers\nimport rego.v1\n\nviolation contains \"privileged\" if {{\n  some c in containers\n  c.container.securityContext.privileged == true\n}}\n"
    )
}

/// Every other revision cannot load: it does not parse, takes too long, or
/// asks for too much memory.
fn revision(n: u64) -> String {
    match n % 6 {
        1 => "package validate.privileged\n\nimport rego.v1\n\nviolation contains msg if {\n".to_string(),
        3 => format!("# {n}\npackage validate.privileged\n\nimport rego.v1\n\nviolation contains \"x\" if {{\n  some i in numbers.range(1, 400)\n  some j in numbers.range(1, 400)\n  some k in numbers.range(1, 400)\n  i * j * k < 0\n}}\n"),
        5 => format!("# {n}\npackage validate.privileged\n\nimport rego.v1\n\nviolation contains \"x\" if {{\n  count([x | some x in numbers.range(1, 50000000)]) < 0\n}}\n"),
        _ => good_policy(n),
    }
}

fn configmap(n: u64) -> Value {
    json!({"metadata": {"name": "soak", "labels": {"regent.dev/bundle": "true"},
           "annotations": {"regent.dev/bundle-path": "validate/privileged"}},
           "data": {"policy.rego": revision(n)}})
}

fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

#[derive(Default)]
struct Window {
    latencies_us: Vec<u64>,
    failed: u64,
    invalid: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let length = length();
    // Figures per minute on a long run, per quarter on a short one.
    let period = Duration::from_secs(60).min(length / 4);
    let api = FakeApi::start().await;
    let tmp = tempfile::tempdir().unwrap();
    // One CA throughout, a new serving pair every 10 s, as cert-manager does.
    let ca = TestCa::new();
    let (cert, key) = ca.serving_pair();
    let mut certs = KubeletDir::new(&[("tls.crt", &cert), ("tls.key", &key)]);
    api.apply(configmap(0));
    let server = Arc::new(Server::start_with(Options {
        tls: Some((
            certs.path().join("tls.crt"),
            certs.path().join("tls.key"),
            ca.pem.clone(),
        )),
        extra_args: vec![
            "--watch-configmaps".into(),
            "--namespace".into(),
            common::fake_api::NAMESPACE.into(),
            "--pod-name".into(),
            "regent-soak".into(),
            "--eval-timeout".into(),
            "500ms".into(),
            "--header-timeout".into(),
            "2s".into(),
            "--log".into(),
            "warn,regent::cli=info".into(),
        ],
        env: vec![(
            "KUBECONFIG".into(),
            api.kubeconfig(tmp.path()).display().to_string(),
        )],
        ..Options::default()
    }));
    let stop = Arc::new(AtomicBool::new(false));
    let window = Arc::new(Mutex::new(Window::default()));
    let total = Arc::new(AtomicU64::new(0));

    // Valid reviews on keep-alive connections: a privileged Pod must be
    // denied and a plain one admitted by every revision that loads.
    let mut privileged = good_spec();
    privileged["containers"][0]["securityContext"]["privileged"] = json!(true);
    let deny = serde_json::to_vec(&review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", privileged, pod_meta()),
    ))
    .unwrap();
    let allow = serde_json::to_vec(&review(
        "admission.k8s.io/v1",
        "CREATE",
        &object("Pod", good_spec(), pod_meta()),
    ))
    .unwrap();
    let mut tasks = Vec::new();
    for client in 0..3 {
        let (server, stop, window, total) =
            (server.clone(), stop.clone(), window.clone(), total.clone());
        let (deny, allow) = (deny.clone(), allow.clone());
        tasks.push(tokio::spawn(async move {
            use http_body_util::{BodyExt, Full};
            let mut sender = None;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if sender.is_none() {
                    let s = tls_connect(server.addr, &ca_of(&server), &[b"http/1.1"])
                        .await
                        .unwrap();
                    let (send, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    sender = Some(send);
                }
                n += 1;
                let denied = (n + client).is_multiple_of(2);
                let body = if denied { deny.clone() } else { allow.clone() };
                let req = hyper::Request::post(format!("https://{SERVICE_DNS}/validate"))
                    .header("content-type", "application/json")
                    .header("host", SERVICE_DNS)
                    .body(Full::new(axum::body::Bytes::from(body)))
                    .unwrap();
                let started = Instant::now();
                let outcome = async {
                    let resp = sender.as_mut()?.send_request(req).await.ok()?;
                    let ok = resp.status() == 200;
                    let bytes = resp.into_body().collect().await.ok()?.to_bytes();
                    let v: Value = serde_json::from_slice(&bytes).ok()?;
                    (ok && v["response"]["allowed"] == !denied).then_some(())
                }
                .await;
                let took = started.elapsed().as_micros() as u64;
                total.fetch_add(1, Ordering::Relaxed);
                let mut w = window.lock().unwrap();
                match outcome {
                    Some(()) => w.latencies_us.push(took),
                    None => {
                        w.failed += 1;
                        drop(w);
                        sender = None;
                    }
                }
                // Fresh connections now and then, so new certificates are used.
                if n.is_multiple_of(500) {
                    sender = None;
                }
            }
        }));
    }
    // Invalid and oversized bodies.
    {
        let (server, stop, window) = (server.clone(), stop.clone(), window.clone());
        tasks.push(tokio::spawn(async move {
            let bodies: Vec<Vec<u8>> = vec![
                b"{not json".to_vec(),
                br#"{"apiVersion":"admission.k8s.io/v2","kind":"AdmissionReview"}"#.to_vec(),
                br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"kind":{"kind":"Pod"}}}"#.to_vec(),
                vec![b'['; 5 * 1024 * 1024],
            ];
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                // An oversized body may be refused (413) and the connection
                // closed before all of it is sent: either is fine.
                if let Some(status) = post_tolerant(&server, bodies[i % bodies.len()].clone()).await {
                    assert!(status.is_client_error() || status == 200, "{status}");
                }
                window.lock().unwrap().invalid += 1;
                i += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    // Slow clients: 20 half-open requests at a time.
    {
        let (server, stop) = (server.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let mut held = Vec::new();
                for _ in 0..20 {
                    if let Ok(mut s) =
                        tls_connect(server.addr, &ca_of(&server), &[b"http/1.1"]).await
                    {
                        let _ = s
                            .write_all(b"POST /validate HTTP/1.1\r\nHost: regent\r\nContent-Le")
                            .await;
                        held.push(s);
                    }
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
                drop(held);
            }
        }));
    }

    let started = Instant::now();
    let end = started + length;
    let mut revision_n = 0u64;
    let mut rotation = 0u64;
    let mut report = Vec::new();
    let mut peak_after_first_window = 0u64;
    let mut failed_total = 0u64;
    let mut next_window = started + period;
    let pid = server.pid();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    while Instant::now() < end {
        tick.tick().await;
        let secs = started.elapsed().as_secs();
        revision_n += 1;
        api.apply(configmap(revision_n));
        if secs > 0 && secs.is_multiple_of(10) {
            rotation += 1;
            let (cert, key) = ca.serving_pair();
            certs.update(&[("tls.crt", &cert), ("tls.key", &key)]);
        }
        if secs > 0 && secs.is_multiple_of(30) {
            api.expire_watches();
        }
        if Instant::now() >= next_window {
            next_window += period;
            let mut w = std::mem::take(&mut *window.lock().unwrap());
            w.latencies_us.sort_unstable();
            let pct = |p: f64| {
                w.latencies_us
                    .get(
                        ((w.latencies_us.len() as f64 * p) as usize)
                            .min(w.latencies_us.len().saturating_sub(1)),
                    )
                    .copied()
                    .unwrap_or(0)
            };
            let hwm = peak_rss(pid);
            let now_rss = rss(pid);
            if report.is_empty() {
                peak_after_first_window = hwm;
            }
            failed_total += w.failed;
            let line = format!(
                "| {} | {} | {} | {} | {:.2} | {:.2} | {:.1} | {:.1} |",
                report.len() + 1,
                w.latencies_us.len() as u64 + w.failed,
                w.failed,
                w.invalid,
                pct(0.5) as f64 / 1000.0,
                pct(0.99) as f64 / 1000.0,
                now_rss as f64 / 1048576.0,
                hwm as f64 / 1048576.0,
            );
            println!("{line}");
            report.push(line);
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let metrics = server.metrics();
    let peak_end = peak_rss(pid);
    println!("\n| window ({period:?}) | valid requests | failed | invalid sent | p50 ms | p99 ms | RSS MiB | peak RSS MiB |");
    println!("|---|---|---|---|---|---|---|---|");
    for l in &report {
        println!("{l}");
    }
    println!(
        "\nran {length:?}; valid requests {}; failed valid {failed_total}; bundle revisions applied {revision_n} (reloads: {} loaded, {} rejected); certificate rotations {rotation} ({} loaded); watch expiries {}; connections closed by header timeout {}; peak RSS after the first window {:.1} MiB, at the end {:.1} MiB",
        total.load(Ordering::Relaxed),
        metric(&metrics, "regent_bundle_reloads_total{result=\"success\"}"),
        metric(&metrics, "regent_bundle_reloads_total{result=\"failure\"}"),
        metric(&metrics, "regent_tls_reloads_total{result=\"success\"}"),
        length.as_secs() / 30,
        metric(&metrics, "regent_connections_closed_total{reason=\"header_timeout\"}"),
        peak_after_first_window as f64 / 1048576.0,
        peak_end as f64 / 1048576.0,
    );
    assert_eq!(failed_total, 0, "valid requests failed");
    // Under the chart's memory limit (96 Mi) whatever the length.
    assert!(
        peak_end <= 96 * 1024 * 1024,
        "peak RSS {peak_end} over the chart's 96 Mi limit"
    );
    // Growth says something only once the allocator has settled: the first
    // minutes of churn still fill its arenas (a 40 s run grows by a few MiB
    // per window; the 10-minute run stayed within 6 % of minute 1).
    if length >= Duration::from_secs(300) {
        assert!(
            peak_end as f64 <= peak_after_first_window as f64 * 1.10,
            "RSS grew: {} -> {}",
            peak_after_first_window,
            peak_end
        );
    }
}

/// POSTs a body; the status, or `None` if the server closed the connection first.
async fn post_tolerant(server: &Server, body: Vec<u8>) -> Option<hyper::StatusCode> {
    use http_body_util::{BodyExt, Full};
    let s = tls_connect(server.addr, &server.ca_pem, &[b"http/1.1"])
        .await
        .ok()?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(s))
        .await
        .ok()?;
    tokio::spawn(conn);
    let req = hyper::Request::post(format!("https://{SERVICE_DNS}/validate"))
        .header("content-type", "application/json")
        .header("host", SERVICE_DNS)
        .body(Full::new(axum::body::Bytes::from(body)))
        .unwrap();
    let resp = send.send_request(req).await.ok()?;
    let status = resp.status();
    let _ = resp.into_body().collect().await;
    Some(status)
}

fn ca_of(server: &Server) -> String {
    server.ca_pem.clone()
}

/// A CA that issues serving pairs for the service name.
struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> Self {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "soak CA");
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    fn serving_pair(&self) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![SERVICE_DNS.to_string()]).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}
