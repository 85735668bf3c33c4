//! A fake Kubernetes API server for ConfigMaps and Events, speaking the real
//! wire format kube-rs uses: JSON lists with `metadata.resourceVersion`,
//! chunked watch streams of `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` lines,
//! an `ERROR` event with a `410 Expired` Status for a resourceVersion that is
//! too old, JSON merge PATCH on ConfigMaps (which bumps the resourceVersion
//! and is broadcast like any change), and POST/PATCH of `events.k8s.io/v1`
//! Events. `restart()` drops every watch and compacts history, as an API
//! server restart does.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::mpsc;

pub const NAMESPACE: &str = "regent-system";

struct Watcher {
    selector: String,
    tx: mpsc::UnboundedSender<Bytes>,
}

#[derive(Default)]
struct Inner {
    rv: u64,
    uid: u64,
    configmaps: BTreeMap<String, Value>,
    history: Vec<(u64, &'static str, Value)>,
    compacted: u64,
    watchers: Vec<Watcher>,
    events: Vec<Value>,
    requests: Vec<String>,
    down: bool,
    /// Cluster-wide lists of core kinds (`namespaces`, `serviceaccounts`, ...)
    /// by resource, for the inventory watch.
    cluster: BTreeMap<String, BTreeMap<String, Value>>,
    cluster_history: Vec<(u64, String, &'static str, Value)>,
    cluster_watchers: Vec<(String, mpsc::UnboundedSender<Bytes>)>,
}

/// The fake API server.
#[derive(Clone)]
pub struct FakeApi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeApi {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            rv: 100,
            ..Inner::default()
        }));
        let app = Router::new()
            .route("/api/v1/namespaces/{ns}/configmaps", get(list_or_watch))
            .route("/api/v1/{resource}", get(list_or_watch_cluster))
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                patch(patch_configmap),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events",
                post(create_event),
            )
            .route(
                "/apis/events.k8s.io/v1/namespaces/{ns}/events/{name}",
                patch(patch_event),
            )
            .fallback(|| async { status(404, "NotFound", "no such route in the fake API server") })
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, inner }
    }

    /// A kubeconfig pointing at this server.
    pub fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\nusers:\n- name: fake\n  user: {{}}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {NAMESPACE}\ncurrent-context: fake\n",
            self.addr
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Creates or replaces an object of a core kind, listed cluster-wide at
    /// `/api/v1/<resource>` (ADDED or MODIFIED to watchers).
    pub fn apply_object(&self, resource: &str, mut obj: Value) {
        let mut s = self.inner.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = format!(
            "{}/{}",
            obj["metadata"]["namespace"].as_str().unwrap_or(""),
            obj["metadata"]["name"].as_str().unwrap()
        );
        let store = s.cluster.entry(resource.to_string()).or_default();
        let kind = if store.insert(key, obj.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.cluster_history
            .push((rv, resource.to_string(), kind, obj.clone()));
        let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": obj})));
        s.cluster_watchers
            .retain(|(r, tx)| r != resource || tx.send(line.clone()).is_ok());
    }

    /// Creates or replaces a ConfigMap (ADDED or MODIFIED).
    pub fn apply(&self, mut cm: Value) {
        let mut s = self.inner.lock().unwrap();
        s.rv += 1;
        let rv = s.rv;
        let name = cm["metadata"]["name"].as_str().unwrap().to_string();
        let existing = s.configmaps.get(&name).cloned();
        let kind = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        let uid = match &existing {
            Some(e) => e["metadata"]["uid"].clone(),
            None => {
                s.uid += 1;
                json!(format!("00000000-0000-0000-0000-{:012}", s.uid))
            }
        };
        // Annotations written by others (status) survive a user's apply.
        if let Some(e) = &existing {
            let mut annotations = e["metadata"]["annotations"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            if let Some(new) = cm["metadata"]["annotations"].as_object() {
                annotations.extend(new.clone());
            }
            cm["metadata"]["annotations"] = Value::Object(annotations);
        }
        cm["apiVersion"] = json!("v1");
        cm["kind"] = json!("ConfigMap");
        cm["metadata"]["namespace"] = json!(NAMESPACE);
        cm["metadata"]["uid"] = uid;
        cm["metadata"]["resourceVersion"] = json!(rv.to_string());
        s.configmaps.insert(name, cm.clone());
        broadcast(&mut s, rv, kind, cm);
    }

    /// Deletes a ConfigMap (DELETED).
    pub fn delete(&self, name: &str) {
        let mut s = self.inner.lock().unwrap();
        if let Some(mut cm) = s.configmaps.remove(name) {
            s.rv += 1;
            let rv = s.rv;
            cm["metadata"]["resourceVersion"] = json!(rv.to_string());
            broadcast(&mut s, rv, "DELETED", cm);
        }
    }

    /// An API server restart: every watch ends, history is compacted (an old
    /// resourceVersion now gets 410), and requests fail until `up()`.
    pub fn restart_down(&self) {
        let mut s = self.inner.lock().unwrap();
        s.watchers.clear();
        s.compacted = s.rv;
        s.history.clear();
        s.down = true;
    }

    /// Back up, with an empty watch cache: any earlier resourceVersion is now too old.
    pub fn up(&self) {
        let mut s = self.inner.lock().unwrap();
        s.down = false;
        s.history.clear();
        s.compacted = s.rv + 1;
    }

    /// Ends every watch stream and compacts history without going down.
    pub fn expire_watches(&self) {
        let mut s = self.inner.lock().unwrap();
        s.watchers.clear();
        s.compacted = s.rv + 1;
        s.history.clear();
    }

    pub fn configmap(&self, name: &str) -> Option<Value> {
        self.inner.lock().unwrap().configmaps.get(name).cloned()
    }

    pub fn events(&self) -> Vec<Value> {
        self.inner.lock().unwrap().events.clone()
    }

    pub fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn watcher_count(&self) -> usize {
        let mut s = self.inner.lock().unwrap();
        s.watchers.retain(|w| !w.tx.is_closed());
        s.watchers.len()
    }
}

fn matches(selector: &str, cm: &Value) -> bool {
    selector.split(',').filter(|s| !s.is_empty()).all(|term| {
        let labels = &cm["metadata"]["labels"];
        match term.split_once('=') {
            Some((k, v)) => labels[k.trim_end_matches('=')] == v,
            None => !labels[term].is_null(),
        }
    })
}

fn broadcast(s: &mut Inner, rv: u64, kind: &'static str, object: Value) {
    s.history.push((rv, kind, object.clone()));
    let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": object})));
    s.watchers.retain(|w| {
        if !matches(&w.selector, &object) {
            return !w.tx.is_closed();
        }
        w.tx.send(line.clone()).is_ok()
    });
}

fn status(code: u16, reason: &str, message: &str) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (
        StatusCode::from_u16(code).unwrap(),
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(code: StatusCode, v: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// A chunked watch response: one JSON event per line, as sent.
fn watch_stream(rx: mpsc::UnboundedReceiver<Bytes>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn list_or_watch_cluster(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(resource): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = inner.lock().unwrap();
    s.requests.push(format!("GET {resource} {q:?}"));
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        let items: Vec<Value> = s
            .cluster
            .get(&resource)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let list = json!({"kind": "List", "apiVersion": "v1",
                          "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        return json_response(StatusCode::OK, &list);
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    for (rv, r, kind, obj) in &s.cluster_history {
        if *rv > from && *r == resource {
            let _ = tx.send(Bytes::from(format!(
                "{}\n",
                json!({"type": kind, "object": obj})
            )));
        }
    }
    s.cluster_watchers.push((resource, tx));
    watch_stream(rx)
}

async fn list_or_watch(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(ns): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let mut s = inner.lock().unwrap();
    s.requests.push(format!("GET configmaps {q:?}"));
    if s.down {
        return status(
            503,
            "ServiceUnavailable",
            "the fake API server is restarting",
        );
    }
    if ns != NAMESPACE {
        return status(403, "Forbidden", "regent may only read its own namespace");
    }
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    if !watch {
        let items: Vec<Value> = s
            .configmaps
            .values()
            .filter(|cm| matches(&selector, cm))
            .cloned()
            .collect();
        let list = json!({"kind": "ConfigMapList", "apiVersion": "v1",
                          "metadata": {"resourceVersion": s.rv.to_string()}, "items": items});
        return json_response(StatusCode::OK, &list);
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    if from != 0 && from < s.compacted {
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": format!("too old resource version: {from} ({})", s.compacted),
            "reason": "Expired", "code": 410}});
        let _ = tx.send(Bytes::from(format!("{gone}\n")));
        drop(tx);
    } else {
        for (rv, kind, obj) in &s.history {
            if *rv > from && matches(&selector, obj) {
                let _ = tx.send(Bytes::from(format!(
                    "{}\n",
                    json!({"type": kind, "object": obj})
                )));
            }
        }
        if q.get("allowWatchBookmarks").is_some_and(|b| b == "true") {
            let bookmark = json!({"type": "BOOKMARK", "object": {"kind": "ConfigMap", "apiVersion": "v1",
                "metadata": {"resourceVersion": s.rv.to_string(), "annotations": {"k8s.io/initial-events-end": "true"}}}});
            let _ = tx.send(Bytes::from(format!("{bookmark}\n")));
        }
        s.watchers.push(Watcher { selector, tx });
    }
    watch_stream(rx)
}

async fn patch_configmap(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((ns, name)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = inner.lock().unwrap();
    s.requests.push(format!("PATCH configmap {name}"));
    if s.down {
        return status(503, "ServiceUnavailable", "restarting");
    }
    if ns != NAMESPACE {
        return status(403, "Forbidden", "own namespace only");
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != "application/merge-patch+json" {
        return status(
            415,
            "UnsupportedMediaType",
            &format!("unexpected patch type {ct}"),
        );
    }
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "patch is not JSON");
    };
    let Some(mut cm) = s.configmaps.get(&name).cloned() else {
        return status(404, "NotFound", &format!("configmaps \"{name}\" not found"));
    };
    json_patch::merge(&mut cm, &patch);
    s.rv += 1;
    let rv = s.rv;
    cm["metadata"]["resourceVersion"] = json!(rv.to_string());
    s.configmaps.insert(name, cm.clone());
    broadcast(&mut s, rv, "MODIFIED", cm.clone());
    json_response(StatusCode::OK, &cm)
}

async fn create_event(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(ns): Path<String>,
    body: Bytes,
) -> Response {
    let mut s = inner.lock().unwrap();
    if s.down {
        return status(503, "ServiceUnavailable", "restarting");
    }
    let Ok(mut ev) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "event is not JSON");
    };
    if ns != NAMESPACE
        || ev["metadata"]["namespace"]
            .as_str()
            .is_some_and(|n| n != NAMESPACE)
    {
        return status(403, "Forbidden", "own namespace only");
    }
    s.rv += 1;
    ev["metadata"]["resourceVersion"] = json!(s.rv.to_string());
    s.events.push(ev.clone());
    json_response(StatusCode::CREATED, &ev)
}

async fn patch_event(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((_ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut s = inner.lock().unwrap();
    let Ok(patch) = serde_json::from_slice::<Value>(&body) else {
        return status(400, "BadRequest", "patch is not JSON");
    };
    let Some(ev) = s
        .events
        .iter_mut()
        .rev()
        .find(|e| e["metadata"]["name"] == name)
    else {
        return status(404, "NotFound", "no such event");
    };
    json_patch::merge(ev, &patch);
    let out = ev.clone();
    json_response(StatusCode::OK, &out)
}
