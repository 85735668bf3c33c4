//! The audit at scale: 2,000 objects in the test suite (it checks one report
//! per violating object and no write on an unchanged second scan), the
//! benchmark sizes with `benches/audit.sh` and the release build. A generated
//! cluster of Pods and Deployments (a tenth of them violating the default
//! bundle) served by the fake API server, audited by the release
//! `regent audit --cluster`. It prints, per size: the first full scan's
//! duration and objects per second, the audit process's peak RSS, the report
//! writes, and the writes of a second full scan over the unchanged cluster.
//!
//! `AUDIT_SIZES=10000,100000` (the script's default) sets the sizes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use common::*;
use serde_json::{json, Value};

fn object(i: usize, bad: bool) -> (bool, Value) {
    let image = if bad {
        "nginx:latest"
    } else {
        "registry.example.com/web:1.4.2"
    };
    let ns = format!("team-{}", i % 50);
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "app", "image": image,
            "securityContext": {"privileged": bad, "allowPrivilegeEscalation": false,
                "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}},
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                          "limits": {"cpu": "500m", "memory": "128Mi"}},
            "env": [{"name": "MODE", "value": "production"}],
            "ports": [{"containerPort": 8080, "name": "http"}]
        }]
    });
    let labels =
        json!({"app.kubernetes.io/name": format!("app-{i}"), "team": format!("team-{}", i % 50)});
    // Four Pods for each Deployment.
    if i.is_multiple_of(5) {
        (
            true,
            json!({"metadata": {"name": format!("deploy-{i}"), "namespace": ns, "labels": labels},
                   "spec": {"replicas": 2, "selector": {"matchLabels": {"app": format!("app-{i}")}},
                            "template": {"metadata": {"labels": labels}, "spec": spec}}}),
        )
    } else {
        (
            false,
            json!({"metadata": {"name": format!("pod-{i}"), "namespace": ns, "labels": labels,
                                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                     "name": format!("rs-{i}"), "uid": format!("rs-uid-{i}")}]},
                   "spec": spec}),
        )
    }
}

fn peak_rss_mib(pid: u32) -> f64 {
    peak_rss(pid) as f64 / 1048576.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_scale() {
    let sizes: Vec<usize> = std::env::var("AUDIT_SIZES")
        .unwrap_or_else(|_| "2000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut rows = Vec::new();
    for n in sizes {
        let api = FakeApi::start().await;
        let tmp = tempfile::tempdir().unwrap();
        let (mut pods, mut deployments) = (Vec::new(), Vec::new());
        let mut violating = 0;
        for i in 0..n {
            let bad = i % 10 == 3;
            violating += usize::from(bad);
            let (is_deployment, o) = object(i, bad);
            if is_deployment {
                deployments.push(o);
            } else {
                pods.push(o);
            }
        }
        let (np, nd) = (pods.len(), deployments.len());
        api.seed_objects("", "pods", pods);
        api.seed_objects("apps", "deployments", deployments);
        let started = Instant::now();
        let audit = AuditProcess::start(
            &api.kubeconfig(tmp.path()),
            "audit-bench",
            &[
                "--report-qps",
                "5000",
                "--audit-interval",
                "1s",
                "--log",
                "warn,regent::audit=info",
            ],
        );
        let scans = |audit: &AuditProcess| metric(&audit.metrics(), "regent_audit_scans_total");
        eventually(Duration::from_secs(600), "the first full scan", || {
            scans(&audit) >= 1.0
        })
        .await;
        let first_wall = started.elapsed().as_secs_f64();
        let metrics = audit.metrics();
        let scan = metric(&metrics, "regent_audit_last_scan_duration_seconds");
        let cores = cpu_seconds(audit.pid()) / first_wall;
        let rss_scan = peak_rss_mib(audit.pid());
        eventually(
            Duration::from_secs(600),
            "the report backlog drained",
            || {
                metric(&audit.metrics(), "regent_audit_report_backlog") == 0.0
                    && api.writes_to("policyreports") as usize >= violating
            },
        )
        .await;
        let writes_first = api.writes_to("policyreports");
        let reports = api.objects("wgpolicyk8s.io", "policyreports").len();
        // The second full scan over the unchanged cluster.
        let done = scans(&audit);
        eventually(Duration::from_secs(600), "a second full scan", || {
            scans(&audit) >= done + 1.0
        })
        .await;
        let second = metric(&audit.metrics(), "regent_audit_last_scan_duration_seconds");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let writes_second = api.writes_to("policyreports") - writes_first;
        assert_eq!(reports, violating, "one report per violating object");
        assert_eq!(
            writes_second, 0,
            "an unchanged cluster is not written again"
        );
        let rss_end = peak_rss_mib(audit.pid());
        let row = format!(
            "| {n} ({np} Pods, {nd} Deployments) | {violating} | {scan:.1} s | {:.0} | {cores:.2} | {second:.1} s | {rss_scan:.1} MiB | {rss_end:.1} MiB | {writes_first} ({reports} reports) | {writes_second} | {first_wall:.1} s |",
            n as f64 / scan
        );
        println!("{row}");
        rows.push(row);
        drop(audit);
    }
    println!("\n| objects | violating | first full scan | objects/s | cores used (CPU s / wall s, to the first scan's end) | second scan | peak RSS after the first scan | peak RSS at the end | report writes | writes in the second scan | start to first scan done |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
