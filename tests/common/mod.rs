//! Test harness: start the real `regent` binary on 127.0.0.1, talk to it the
//! way the API server does (TLS verified against the caBundle, SNI
//! `regent.regent-system.svc`), build AdmissionReviews, and apply patches
//! with an independent RFC 6902 implementation (Python's `jsonpatch`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};

/// The name the API server uses for the webhook service.
pub const SERVICE_DNS: &str = "regent.regent-system.svc";

/// A running `regent serve`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub ca_pem: String,
    pub logs: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

pub mod fake_api;

/// Options for starting a server.
#[derive(Default)]
pub struct Options {
    pub policies: Option<PathBuf>,
    pub extra_args: Vec<String>,
    /// Let the server generate its own development certificate.
    pub dev_cert: bool,
    /// Serve this certificate pair; the CA PEM is what the client trusts.
    pub tls: Option<(PathBuf, PathBuf, String)>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Return once listening, without waiting for readiness.
    pub no_wait: bool,
}

impl Server {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let dir = tempfile::tempdir().unwrap();
        // Benchmarks may compare with another build (`REGENT_BENCH_BIN`).
        let bin = std::env::var("REGENT_BENCH_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_regent").to_string());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--log-format",
            "json",
            "--log",
            "info",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ]);
        let ca_pem = if let Some((cert, key, ca)) = &options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            ca.clone()
        } else if options.dev_cert {
            cmd.args(["--tls-san", SERVICE_DNS, "--dev-cert-dir"])
                .arg(dir.path().join("dev"));
            String::new()
        } else {
            let certs = regent::serve::tls::generate_dev(&[SERVICE_DNS.to_string()]).unwrap();
            certs.write(dir.path()).unwrap();
            cmd.arg("--tls-cert").arg(dir.path().join("tls.crt"));
            cmd.arg("--tls-key").arg(dir.path().join("tls.key"));
            certs.ca_pem
        };
        if let Some(p) = &options.policies {
            cmd.arg("--policies").arg(p);
        }
        cmd.args(&options.extra_args);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn regent serve");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"listening\"") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "regent serve did not start; logs:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        let addr = v["fields"]["addr"].as_str().unwrap().parse().unwrap();
        let admin = v["fields"]["admin"].as_str().unwrap().parse().unwrap();
        let ca_pem = if let Some((cert, key, ca)) = &options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            ca.clone()
        } else if options.dev_cert {
            std::fs::read_to_string(dir.path().join("dev").join("ca.crt")).unwrap()
        } else {
            ca_pem
        };
        let server = Self {
            child,
            addr,
            admin,
            ca_pem,
            logs,
            _dir: dir,
        };
        if !options.no_wait {
            server.wait_ready();
        }
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok((200, _)) = admin_get(self.admin, "/readyz") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("server never became ready");
    }

    /// POSTs a body to the admission port over TLS, as the API server does.
    pub async fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        self.request(Method::POST, path, body, false).await
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Vec<u8>,
        h2: bool,
    ) -> (StatusCode, Vec<u8>) {
        let stream = tls_connect(
            self.addr,
            &self.ca_pem,
            if h2 { &[b"h2"] } else { &[b"http/1.1"] },
        )
        .await
        .expect("TLS connection");
        let req = Request::builder()
            .method(method)
            .uri(format!("https://{SERVICE_DNS}{path}"))
            .header("content-type", "application/json")
            .header("host", SERVICE_DNS)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let io = TokioIo::new(stream);
        let resp = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
            tokio::spawn(conn);
            send.send_request(req).await.unwrap()
        };
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        (status, bytes)
    }

    /// Sends a review and returns the parsed response review.
    pub async fn review(&self, path: &str, review: &Value) -> Value {
        let (status, body) = self.post(path, serde_json::to_vec(review).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    pub fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics").unwrap().1
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS connection verified against `ca_pem`, with SNI = the service DNS name.
pub async fn tls_connect(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    tls_connect_as(addr, ca_pem, alpn, None).await
}

/// Like [`tls_connect`], presenting a client certificate `(cert PEM, key PEM)`.
pub async fn tls_connect_as(
    addr: SocketAddr,
    ca_pem: &str,
    alpn: &[&[u8]],
    client: Option<(&str, &str)>,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect();
            let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
            config.with_client_auth_cert(chain, key).unwrap()
        }
        None => config.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(SERVICE_DNS.to_string()).unwrap(), tcp)
        .await
}

/// A plain HTTP/1.1 GET on the admin port: (status, body).
pub fn admin_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// Every kind that carries a pod spec (the server's own list).
pub const KINDS: [&str; 8] = regent_core::native::policy::POD_KINDS;

/// (group, resource) of a kind.
pub fn gvr(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "Pod" => ("", "pods"),
        "ReplicationController" => ("", "replicationcontrollers"),
        "Deployment" => ("apps", "deployments"),
        "ReplicaSet" => ("apps", "replicasets"),
        "StatefulSet" => ("apps", "statefulsets"),
        "DaemonSet" => ("apps", "daemonsets"),
        "Job" => ("batch", "jobs"),
        "CronJob" => ("batch", "cronjobs"),
        _ => ("", "unknown"),
    }
}

/// Where a kind keeps its pod spec (field path prefix).
pub fn spec_path(kind: &str) -> &'static str {
    match kind {
        "Pod" => "spec",
        "CronJob" => "spec.jobTemplate.spec.template.spec",
        _ => "spec.template.spec",
    }
}

pub fn good_container() -> Value {
    json!({
        "name": "web",
        "image": "registry.example.com/shop/web:1.4.2",
        "ports": [{"containerPort": 8080}],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "512Mi"}},
        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}
    })
}

/// The well-formed pod spec every default policy admits without a warning.
pub fn good_spec() -> Value {
    json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [good_container()],
        "volumes": [{"name": "tmp", "emptyDir": {}}]
    })
}

pub fn good_labels() -> Value {
    json!({"app.kubernetes.io/name": "web", "team": "storefront"})
}

/// An object of `kind` carrying `spec` as its pod spec.
pub fn object(kind: &str, spec: Value, pod_meta: Value) -> Value {
    let (group, _) = gvr(kind);
    let api_version = if group.is_empty() {
        "v1".to_string()
    } else {
        format!("{group}/v1")
    };
    let meta = json!({"name": "web", "namespace": "shop", "labels": good_labels()});
    let template = json!({"metadata": pod_meta, "spec": spec});
    match kind {
        "Pod" => {
            let mut m = pod_meta;
            m["name"] = json!("web");
            m["namespace"] = json!("shop");
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": template["spec"]})
        }
        "CronJob" => json!({"apiVersion": api_version, "kind": kind, "metadata": meta,
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}}}),
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            json!({"apiVersion": api_version, "kind": kind, "metadata": meta,
            "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "web"}}, "template": template}})
        }
        _ => {
            json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": {"template": template}})
        }
    }
}

/// The standard pod metadata (labels) for templates.
pub fn pod_meta() -> Value {
    json!({"labels": good_labels()})
}

/// A real-shaped AdmissionReview, as kube-apiserver sends it.
pub fn review(api_version: &str, operation: &str, object: &Value) -> Value {
    let kind = object["kind"].as_str().unwrap().to_string();
    let (group, resource) = gvr(&kind);
    let uid = format!(
        "{:08x}-{}-{}",
        rand_u32(),
        kind.to_lowercase(),
        operation.to_lowercase()
    );
    let old = if operation == "UPDATE" {
        object.clone()
    } else {
        Value::Null
    };
    json!({
        "apiVersion": api_version,
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "kind": {"group": group, "version": "v1", "kind": kind},
            "resource": {"group": group, "version": "v1", "resource": resource},
            "requestKind": {"group": group, "version": "v1", "kind": kind},
            "requestResource": {"group": group, "version": "v1", "resource": resource},
            "name": "web",
            "namespace": "shop",
            "operation": operation,
            "userInfo": {"username": "alice@example.com", "uid": "42", "groups": ["system:authenticated", "dev"]},
            "object": object,
            "oldObject": old,
            "dryRun": false,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": if operation == "CREATE" { "CreateOptions" } else { "UpdateOptions" }, "fieldManager": "kubectl-client-side-apply"}
        }
    })
}

fn rand_u32() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
        .wrapping_mul(2_654_435_761)
}

/// Decodes the base64 patch of a response, if any.
pub fn patch_of(resp: &Value) -> Option<Value> {
    use base64::Engine as _;
    let b64 = resp["response"]["patch"].as_str()?;
    assert_eq!(resp["response"]["patchType"], "JSONPatch");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

/// Applies an RFC 6902 patch with Python's `jsonpatch` (an implementation
/// independent of ours).
pub fn apply_patch_independently(doc: &Value, patch: &Value) -> Value {
    let python = std::env::var("REGENT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let mut child = Command::new(&python)
        .args([
            "-c",
            "import json, sys, jsonpatch\nd = json.load(sys.stdin)\nprint(json.dumps(jsonpatch.apply_patch(d['doc'], d['patch'])))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}; run tests/run.sh, which installs the Python test tools"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            serde_json::to_string(&json!({"doc": doc, "patch": patch}))
                .unwrap()
                .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jsonpatch failed (is it installed? run tests/run.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes a bundle directory from (path, contents) pairs.
pub fn bundle_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

/// A directory laid out as the kubelet mounts a ConfigMap or Secret: the
/// files live in a timestamped folder, `..data` links to it, and each visible
/// name links through `..data`. An update writes a new folder and swaps
/// `..data` with one atomic rename.
pub struct KubeletDir {
    pub dir: tempfile::TempDir,
    generation: u32,
}

impl KubeletDir {
    pub fn new(files: &[(&str, &str)]) -> Self {
        let mut k = Self {
            dir: tempfile::tempdir().unwrap(),
            generation: 0,
        };
        k.update(files);
        k
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Atomically replaces the whole content.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let root = self.dir.path();
        let folder = format!(
            "..2026_11_21_00_00_{:02}.{}",
            self.generation % 60,
            self.generation
        );
        for (path, text) in files {
            let p = root.join(&folder).join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let old = std::fs::read_link(root.join("..data")).ok();
        std::os::unix::fs::symlink(&folder, root.join("..data_tmp")).unwrap();
        std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
        // Visible names: one link per top-level entry, through ..data.
        let tops: std::collections::BTreeSet<String> = files
            .iter()
            .map(|(p, _)| p.split('/').next().unwrap().to_string())
            .collect();
        for entry in std::fs::read_dir(root).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if !name.starts_with('.') && !tops.contains(&name) {
                std::fs::remove_file(root.join(&name)).unwrap();
            }
        }
        for top in &tops {
            let link = root.join(top);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(format!("..data/{top}"), &link).unwrap();
            }
        }
        if let Some(old) = old {
            let _ = std::fs::remove_dir_all(root.join(old));
        }
    }
}

/// Polls `f` until it returns true or the deadline passes.
pub async fn eventually(within: Duration, what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < within {
        if f() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

/// The value of one metric series line (exact labels), or 0.
pub fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

/// CPU seconds (user + system) a process has used.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The resident set size of a process now, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// A process's peak resident set size (VmHWM), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap()
        * 1024
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A running `regent audit --cluster`.
pub struct AuditProcess {
    child: Child,
    pub admin: SocketAddr,
    pub logs: Arc<Mutex<Vec<String>>>,
}

impl AuditProcess {
    /// Starts `regent audit --cluster` against the fake API server `kubeconfig`.
    pub fn start(kubeconfig: &Path, pod: &str, extra: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_regent"));
        cmd.args([
            "--log-format",
            "json",
            "--log",
            "info",
            "audit",
            "--cluster",
            "--admin-addr",
            "127.0.0.1:0",
            "--namespace",
            fake_api::NAMESPACE,
            "--pod-name",
            pod,
        ]);
        cmd.args(extra);
        cmd.env("KUBECONFIG", kubeconfig);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn regent audit");
        let stderr = child.stderr.take().unwrap();
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("\"audit listening\"") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            panic!(
                "regent audit did not start; logs:\n{}",
                logs.lock().unwrap().join("\n")
            );
        };
        let v: Value = serde_json::from_str(&line).unwrap();
        let admin = v["fields"]["admin"].as_str().unwrap().parse().unwrap();
        Self { child, admin, logs }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn metrics(&self) -> String {
        admin_get(self.admin, "/metrics")
            .map(|r| r.1)
            .unwrap_or_default()
    }

    pub fn status(&self) -> Value {
        let body = admin_get(self.admin, "/status").unwrap().1;
        serde_json::from_str(&body).unwrap()
    }

    pub fn ready(&self) -> bool {
        matches!(admin_get(self.admin, "/readyz"), Ok((200, _)))
    }

    pub fn log_text(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Kills the process at once (no Lease release).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
    }
}

impl Drop for AuditProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- bundles in ConfigMaps, served from the fake API server ----

/// A policy that denies pods whose spec sets `field: true`.
pub fn deny_field(field: &str, note: &str) -> String {
    format!(
        "# {note}\npackage validate.deny_{lower}\n\nimport rego.v1\n\nviolation contains {{\"msg\": \"{field} is set\", \"path\": \"spec.{field}\"}} if input.request.object.spec.{field} == true\n",
        lower = field.to_lowercase()
    )
}

pub fn configmap(name: &str, path: &str, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({"metadata": {"name": name, "labels": {"regent.dev/bundle": "true"},
           "annotations": {"regent.dev/bundle-path": path}}, "data": data})
}

pub fn status_of(api: &fake_api::FakeApi, cm: &str, pod: &str) -> Option<Value> {
    let cm = api.configmap(cm)?;
    let text = cm["metadata"]["annotations"][format!("status.regent.dev/{pod}")]
        .as_str()?
        .to_string();
    serde_json::from_str(&text).ok()
}

pub fn configmap_server(api: &fake_api::FakeApi, dir: &std::path::Path, pod: &str) -> Server {
    Server::start_with(Options {
        extra_args: vec![
            "--watch-configmaps".into(),
            "--namespace".into(),
            fake_api::NAMESPACE.into(),
            "--pod-name".into(),
            pod.into(),
        ],
        env: vec![(
            "KUBECONFIG".into(),
            api.kubeconfig(dir).display().to_string(),
        )],
        ..Options::default()
    })
}
