//! The inventory at scale: in the test suite 2,000 Pods for 3 s (it checks
//! the inventory stays whole and the watch error-free); with
//! `benches/inventory.sh`, the benchmark sizes and the release build. `regent serve
//! --inventory v1/Pod` against the fake API server holding N small Pods
//! (about 300 bytes of JSON each), then one Pod changed every 50 ms. It
//! prints, per size and setting: the time to the full inventory, the RSS
//! once listed, the peak RSS, and the cores used while the changes stream
//! (CPU seconds of the server / wall seconds; the server does nothing else).
//!
//! `INVENTORY_SIZES=20000,100000` (the script's default) sets the sizes,
//! `INVENTORY_SECONDS=20` the length of the change stream, and
//! `REGENT_BENCH_BIN` another build to measure (e.g. the one before).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::fake_api::FakeApi;
use common::*;
use serde_json::{json, Value};

fn pod(i: usize, generation: usize) -> Value {
    json!({
        "metadata": {"name": format!("pod-{i}"), "namespace": format!("team-{}", i % 50),
                     "labels": {"app": format!("app-{}", i % 500), "gen": generation.to_string()}},
        "spec": {"serviceAccountName": format!("sa-{}", i % 50), "nodeName": format!("node-{}", i % 200),
                 "containers": [{"name": "app", "image": "registry.example.com/web:1.4.2"}]}
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_scale() {
    let sizes: Vec<usize> = std::env::var("INVENTORY_SIZES")
        .unwrap_or_else(|_| "2000".to_string())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let seconds: u64 = std::env::var("INVENTORY_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let settings: [(&str, &[&str]); 2] = [
        ("whole objects", &[]),
        (
            "--inventory-fields v1/Pod=metadata.labels",
            &["--inventory-fields", "v1/Pod=metadata.labels"],
        ),
    ];
    let mut rows = Vec::new();
    for n in sizes {
        let bytes: usize = (0..n).map(|i| pod(i, 0).to_string().len() + 40).sum();
        for (setting, extra) in settings {
            if !extra.is_empty() && std::env::var_os("REGENT_BENCH_BIN").is_some() {
                continue; // an older build may not have the flag
            }
            let api = FakeApi::start().await;
            let tmp = tempfile::tempdir().unwrap();
            api.seed_objects("", "pods", (0..n).map(|i| pod(i, 0)).collect());
            let mut args = vec!["--inventory".to_string(), "v1/Pod".to_string()];
            args.extend(extra.iter().map(|s| s.to_string()));
            let started = Instant::now();
            let server = Server::start_with(Options {
                extra_args: args,
                env: vec![(
                    "KUBECONFIG".into(),
                    api.kubeconfig(tmp.path()).display().to_string(),
                )],
                ..Options::default()
            });
            eventually(Duration::from_secs(600), "the inventory is listed", || {
                metric(
                    &server.metrics(),
                    "regent_inventory_objects{kind=\"v1/Pod\"}",
                ) == n as f64
            })
            .await;
            let listed = started.elapsed().as_secs_f64();
            // Let the allocator settle, then read the RSS once listed.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let rss_listed = mib(rss(server.pid()));
            let cpu_before = cpu_seconds(server.pid());
            let stream = Instant::now();
            let mut changes = 0usize;
            let mut tick = tokio::time::interval(Duration::from_millis(50));
            while stream.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                changes += 1;
                let i = (changes * 7919) % n;
                api.put_object("", "pods", pod(i, changes));
            }
            let wall = stream.elapsed().as_secs_f64();
            // The changes replaced objects; none was lost or doubled, and
            // the watch never failed.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let metrics = server.metrics();
            assert_eq!(
                metric(&metrics, "regent_inventory_objects{kind=\"v1/Pod\"}"),
                n as f64,
                "{metrics}"
            );
            assert_eq!(
                metric(&metrics, "regent_source_errors_total{source=\"inventory\"}"),
                0.0
            );
            let cores = (cpu_seconds(server.pid()) - cpu_before) / wall;
            let peak = mib(peak_rss(server.pid()));
            let row = format!(
                "| {n} ({:.1} MB of JSON) | {setting} | {listed:.1} s | {rss_listed:.0} MiB | {peak:.0} MiB | {changes} in {wall:.0} s ({:.0}/s) | {cores:.3} |",
                bytes as f64 / 1e6,
                changes as f64 / wall
            );
            println!("{row}");
            rows.push(row);
            drop(server);
        }
    }
    println!("\n| Pods | setting | to the full inventory | RSS once listed | peak RSS | changes | cores while changing |");
    println!("|---|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
}
