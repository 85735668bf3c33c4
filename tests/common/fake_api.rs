//! A fake Kubernetes API server for ConfigMaps and Events, speaking the real
//! wire format kube-rs uses: JSON lists with `metadata.resourceVersion`,
//! chunked watch streams of `ADDED`/`MODIFIED`/`DELETED`/`BOOKMARK` lines,
//! an `ERROR` event with a `410 Expired` Status for a resourceVersion that is
//! too old, JSON merge PATCH on ConfigMaps (which bumps the resourceVersion
//! and is broadcast like any change), and POST/PATCH of `events.k8s.io/v1`
//! Events. `restart()` drops every watch and compacts history, as an API
//! server restart does.
//!
//! Beyond ConfigMaps it serves what the audit needs, for any resource in its
//! discovery table ([`RESOURCES`]): discovery (`/api`, `/api/v1`, `/apis`,
//! `/apis/<group>/<version>`), paginated lists (`limit`/`continue`, label
//! selectors), watches from a resourceVersion, and get, create, update (with
//! resourceVersion preconditions), merge patch and delete of single objects,
//! including the report resources of both formats and Leases (server-side
//! apply with field-manager conflicts, and strategic merge, as
//! kube-lease-manager uses them). A resource can be forbidden (403) to test
//! missing RBAC, and every write is counted.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
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
    /// Objects of every other resource, by (group, resource, namespace, name).
    objects: BTreeMap<(String, String, String, String), Value>,
    /// Their changes, for watches: (rv, group, resource, namespace, type, object).
    object_history: Vec<(u64, String, String, String, &'static str, Value)>,
    object_watchers: Vec<ObjectWatcher>,
    /// Resources that answer 403 to lists and watches.
    forbidden: Vec<String>,
    /// Groups left out of discovery (CRDs not installed).
    hidden_groups: Vec<String>,
    /// Writes by "METHOD resource".
    writes: BTreeMap<String, u64>,
    /// Lease field owners: (namespace/name, field) -> field manager.
    lease_owners: BTreeMap<(String, String), String>,
}

struct ObjectWatcher {
    group: String,
    resource: String,
    namespace: Option<String>,
    tx: mpsc::UnboundedSender<Bytes>,
}

/// One resource the fake serves: (group, version, resource, kind, namespaced).
pub const RESOURCES: &[(&str, &str, &str, &str, bool)] = &[
    ("", "v1", "pods", "Pod", true),
    ("", "v1", "namespaces", "Namespace", false),
    ("", "v1", "serviceaccounts", "ServiceAccount", true),
    (
        "",
        "v1",
        "replicationcontrollers",
        "ReplicationController",
        true,
    ),
    ("", "v1", "configmaps", "ConfigMap", true),
    ("", "v1", "events", "Event", true),
    ("apps", "v1", "deployments", "Deployment", true),
    ("apps", "v1", "replicasets", "ReplicaSet", true),
    ("apps", "v1", "statefulsets", "StatefulSet", true),
    ("apps", "v1", "daemonsets", "DaemonSet", true),
    ("batch", "v1", "jobs", "Job", true),
    ("batch", "v1", "cronjobs", "CronJob", true),
    ("networking.k8s.io", "v1", "ingresses", "Ingress", true),
    ("coordination.k8s.io", "v1", "leases", "Lease", true),
    (
        "wgpolicyk8s.io",
        "v1alpha2",
        "policyreports",
        "PolicyReport",
        true,
    ),
    (
        "wgpolicyk8s.io",
        "v1alpha2",
        "clusterpolicyreports",
        "ClusterPolicyReport",
        false,
    ),
    ("openreports.io", "v1alpha1", "reports", "Report", true),
    (
        "regent.dev",
        "v1alpha1",
        "policyexceptions",
        "PolicyException",
        true,
    ),
    (
        "openreports.io",
        "v1alpha1",
        "clusterreports",
        "ClusterReport",
        false,
    ),
];

fn resource_info(group: &str, resource: &str) -> Option<(&'static str, &'static str, bool)> {
    RESOURCES
        .iter()
        .find(|(g, _, r, _, _)| *g == group && *r == resource)
        .map(|(_, v, _, k, n)| (*v, *k, *n))
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
            .route(
                "/api/v1/namespaces/{ns}/configmaps/{name}",
                patch(patch_configmap),
            )
            .route("/api", get(discovery_core))
            .route("/api/v1", get(discovery_core_v1))
            .route("/apis", get(discovery_groups))
            .route("/apis/{group}/{version}", get(discovery_group_version))
            .route("/api/v1/{resource}", get(core_collection).post(core_create))
            .route(
                "/api/v1/namespaces/{ns}/{resource}",
                get(core_ns_collection).post(core_ns_create),
            )
            .route(
                "/api/v1/namespaces/{ns}/{resource}/{name}",
                get(core_ns_item)
                    .put(core_ns_item_put)
                    .patch(core_ns_item_patch)
                    .delete(core_ns_item_delete),
            )
            .route(
                "/apis/{group}/{version}/{resource}",
                get(group_collection).post(group_create),
            )
            .route(
                "/apis/{group}/{version}/{resource}/{name}",
                get(group_item)
                    .put(group_item_put)
                    .patch(group_item_patch)
                    .delete(group_item_delete),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{resource}",
                get(group_ns_collection).post(group_ns_create),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}",
                get(group_ns_item)
                    .put(group_ns_item_put)
                    .patch(group_ns_item_patch)
                    .delete(group_ns_item_delete),
            )
            .route(
                "/apis/{group}/{version}/namespaces/{ns}/{resource}/{name}/status",
                patch(group_ns_status_patch),
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

    /// Creates or replaces an object of a core kind (ADDED or MODIFIED to
    /// watchers).
    pub fn apply_object(&self, resource: &str, obj: Value) {
        self.put_object("", resource, obj);
    }

    /// Creates or replaces an object of any served resource (ADDED or
    /// MODIFIED to watchers). A new object gets a uid.
    pub fn put_object(&self, group: &str, resource: &str, mut obj: Value) -> Value {
        let mut s = self.inner.lock().unwrap();
        let (version, kind, _) = resource_info(group, resource).expect("a served resource");
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let key = (group.to_string(), resource.to_string(), ns.clone(), name);
        s.rv += 1;
        let rv = s.rv;
        let existing = s.objects.get(&key).cloned();
        let uid = match existing
            .as_ref()
            .and_then(|e| e["metadata"]["uid"].as_str())
        {
            Some(u) => u.to_string(),
            None => obj["metadata"]["uid"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| {
                    s.uid += 1;
                    format!("00000000-0000-4000-8000-{:012}", s.uid)
                }),
        };
        obj["apiVersion"] = json!(if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        });
        obj["kind"] = json!(kind);
        obj["metadata"]["uid"] = json!(uid);
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let event = if existing.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        s.objects.insert(key, obj.clone());
        broadcast_object(&mut s, rv, group, resource, &ns, event, obj.clone());
        obj
    }

    /// Loads many objects at once without watch history (as if they had
    /// been there before any watch began); each gets a uid.
    pub fn seed_objects(&self, group: &str, resource: &str, objects: Vec<Value>) {
        let mut s = self.inner.lock().unwrap();
        let (version, kind, _) = resource_info(group, resource).expect("a served resource");
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        for mut obj in objects {
            s.rv += 1;
            s.uid += 1;
            let rv = s.rv;
            let uid = format!("00000000-0000-4000-8000-{:012}", s.uid);
            let ns = obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let name = obj["metadata"]["name"].as_str().unwrap().to_string();
            obj["apiVersion"] = json!(api_version);
            obj["kind"] = json!(kind);
            obj["metadata"]["uid"] = json!(uid);
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            s.objects
                .insert((group.to_string(), resource.to_string(), ns, name), obj);
        }
    }

    /// Deletes an object of any served resource (DELETED to watchers).
    pub fn delete_object(&self, group: &str, resource: &str, namespace: &str, name: &str) {
        let mut s = self.inner.lock().unwrap();
        let key = (
            group.to_string(),
            resource.to_string(),
            namespace.to_string(),
            name.to_string(),
        );
        if let Some(mut obj) = s.objects.remove(&key) {
            s.rv += 1;
            let rv = s.rv;
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            broadcast_object(&mut s, rv, group, resource, namespace, "DELETED", obj);
        }
    }

    /// The objects of a resource (all namespaces).
    pub fn objects(&self, group: &str, resource: &str) -> Vec<Value> {
        let s = self.inner.lock().unwrap();
        s.objects
            .iter()
            .filter(|((g, r, _, _), _)| g == group && r == resource)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// One object.
    pub fn object(
        &self,
        group: &str,
        resource: &str,
        namespace: &str,
        name: &str,
    ) -> Option<Value> {
        let s = self.inner.lock().unwrap();
        s.objects
            .get(&(
                group.to_string(),
                resource.to_string(),
                namespace.to_string(),
                name.to_string(),
            ))
            .cloned()
    }

    /// Lists and watches of `resource` answer 403 from now on.
    pub fn forbid(&self, resource: &str) {
        self.inner
            .lock()
            .unwrap()
            .forbidden
            .push(resource.to_string());
    }

    /// Discovery leaves `group` out (its CRDs are not installed).
    pub fn hide_group(&self, group: &str) {
        self.inner
            .lock()
            .unwrap()
            .hidden_groups
            .push(group.to_string());
    }

    /// Writes made so far, by "METHOD resource" (POST, PUT, PATCH, DELETE).
    pub fn writes(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap().writes.clone()
    }

    /// Writes to one resource, all methods.
    pub fn writes_to(&self, resource: &str) -> u64 {
        self.writes()
            .iter()
            .filter(|(k, _)| k.ends_with(&format!(" {resource}")))
            .map(|(_, v)| *v)
            .sum()
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
    // Regent records Events in its own namespace, except about a
    // PolicyException, which is recorded where its owner looks (the chart
    // grants that cluster-wide).
    let about_exception =
        ev["regarding"]["kind"] == "PolicyException" && ev["regarding"]["namespace"] == ns.as_str();
    if !about_exception
        && (ns != NAMESPACE
            || ev["metadata"]["namespace"]
                .as_str()
                .is_some_and(|n| n != NAMESPACE))
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

// ---- every other resource: discovery, lists, watches, single objects ----

fn broadcast_object(
    s: &mut Inner,
    rv: u64,
    group: &str,
    resource: &str,
    namespace: &str,
    kind: &'static str,
    object: Value,
) {
    s.object_history.push((
        rv,
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        kind,
        object.clone(),
    ));
    let line = Bytes::from(format!("{}\n", json!({"type": kind, "object": object})));
    s.object_watchers.retain(|w| {
        let wanted = w.group == group
            && w.resource == resource
            && w.namespace.as_deref().is_none_or(|n| n == namespace);
        if !wanted {
            return !w.tx.is_closed();
        }
        w.tx.send(line.clone()).is_ok()
    });
}

async fn discovery_core() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
    )
}

fn resource_list(group: &str, version: &str) -> Value {
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut resources = Vec::new();
    for (g, v, r, k, namespaced) in RESOURCES {
        if *g == group && *v == version {
            resources.push(json!({
                "name": r, "singularName": k.to_lowercase(), "namespaced": namespaced, "kind": k,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }));
            if *r == "pods" || *r == "deployments" {
                // A subresource: never audited.
                resources.push(json!({"name": format!("{r}/status"), "singularName": "", "namespaced": namespaced,
                                      "kind": k, "verbs": ["get", "patch", "update"]}));
            }
        }
    }
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
}

async fn discovery_core_v1() -> Response {
    json_response(StatusCode::OK, &resource_list("", "v1"))
}

async fn discovery_groups(State(inner): State<Arc<Mutex<Inner>>>) -> Response {
    let hidden = inner.lock().unwrap().hidden_groups.clone();
    let mut groups: Vec<(String, String)> = Vec::new();
    for (g, v, _, _, _) in RESOURCES {
        if !g.is_empty() && !hidden.iter().any(|h| h == g) && !groups.iter().any(|(x, _)| x == g) {
            groups.push((g.to_string(), v.to_string()));
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, v)| {
            let gv = json!({"groupVersion": format!("{g}/{v}"), "version": v});
            json!({"name": g, "versions": [gv.clone()], "preferredVersion": gv})
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
    )
}

async fn discovery_group_version(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path((group, version)): Path<(String, String)>,
) -> Response {
    if inner.lock().unwrap().hidden_groups.contains(&group) {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    json_response(StatusCode::OK, &resource_list(&group, &version))
}

fn selector_matches(selector: &str, obj: &Value) -> bool {
    selector.split(',').filter(|t| !t.is_empty()).all(|term| {
        let labels = &obj["metadata"]["labels"];
        match term.split_once("!=") {
            Some((k, v)) => labels[k] != v,
            None => match term.split_once('=') {
                Some((k, v)) => labels[k.trim_end_matches('=')] == v,
                None => match term.strip_prefix('!') {
                    Some(k) => labels[k].is_null(),
                    None => !labels[term].is_null(),
                },
            },
        }
    })
}

/// A list or a watch of a resource, in one namespace or all.
fn collection(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    q: &HashMap<String, String>,
) -> Response {
    let mut s = inner.lock().unwrap();
    s.requests.push(format!("GET {resource} {q:?}"));
    if s.down {
        return status(
            503,
            "ServiceUnavailable",
            "the fake API server is restarting",
        );
    }
    let Some((version, kind, _)) = resource_info(group, resource) else {
        return status(404, "NotFound", "no such resource");
    };
    if s.hidden_groups.iter().any(|g| g == group) {
        return status(
            404,
            "NotFound",
            "the server could not find the requested resource",
        );
    }
    if s.forbidden.iter().any(|r| r == resource) {
        return status(
            403,
            "Forbidden",
            &format!("{resource}.{group} is forbidden: User cannot list resource {resource}"),
        );
    }
    let selector = q.get("labelSelector").cloned().unwrap_or_default();
    let watch = q.get("watch").is_some_and(|w| w == "true" || w == "1");
    let in_scope = |(g, r, ns, _): &(String, String, String, String)| {
        g == group && r == resource && namespace.is_none_or(|n| n == ns)
    };
    if !watch {
        let limit: usize = q
            .get("limit")
            .and_then(|l| l.parse().ok())
            .filter(|l| *l > 0)
            .unwrap_or(usize::MAX);
        let after: Option<(String, String)> = q
            .get("continue")
            .filter(|c| !c.is_empty())
            .and_then(|c| c.split_once('/'))
            .map(|(a, b)| (a.to_string(), b.to_string()));
        let mut items = Vec::new();
        let mut next = None;
        for (key, obj) in s.objects.iter() {
            if !in_scope(key) {
                continue;
            }
            if let Some((ans, aname)) = &after {
                if (&key.2, &key.3) <= (ans, aname) {
                    continue;
                }
            }
            if !selector_matches(&selector, obj) {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|o: &Value| {
                    format!(
                        "{}/{}",
                        o["metadata"]["namespace"].as_str().unwrap_or(""),
                        o["metadata"]["name"].as_str().unwrap_or("")
                    )
                });
                break;
            }
            items.push(obj.clone());
        }
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let mut metadata = json!({"resourceVersion": s.rv.to_string()});
        if let Some(token) = next {
            metadata["continue"] = json!(token);
        }
        let list = json!({"kind": format!("{kind}List"), "apiVersion": api_version, "metadata": metadata, "items": items});
        return json_response(StatusCode::OK, &list);
    }
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|r| r.parse().ok())
        .unwrap_or(0);
    let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
    for (rv, g, r, ns, kind, obj) in &s.object_history {
        if *rv > from && g == group && r == resource && namespace.is_none_or(|n| n == ns) {
            let _ = tx.send(Bytes::from(format!(
                "{}\n",
                json!({"type": kind, "object": obj})
            )));
        }
    }
    if q.get("allowWatchBookmarks").is_some_and(|b| b == "true") {
        let api_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        let bookmark = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
            "metadata": {"resourceVersion": s.rv.to_string()}}});
        let _ = tx.send(Bytes::from(format!("{bookmark}\n")));
    }
    s.object_watchers.push(ObjectWatcher {
        group: group.to_string(),
        resource: resource.to_string(),
        namespace: namespace.map(str::to_string),
        tx,
    });
    watch_stream(rx)
}

fn count_write(s: &mut Inner, method: &str, resource: &str) {
    *s.writes.entry(format!("{method} {resource}")).or_default() += 1;
}

fn create(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: &str,
    body: &[u8],
) -> Response {
    let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON");
    };
    let mut s = inner.lock().unwrap();
    count_write(&mut s, "POST", resource);
    let Some((version, kind, _)) = resource_info(group, resource) else {
        return status(404, "NotFound", "no such resource");
    };
    let Some(name) = obj["metadata"]["name"].as_str().map(str::to_string) else {
        return status(422, "Invalid", "metadata.name: Required value");
    };
    let key = (
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        name.clone(),
    );
    if s.objects.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            &format!("{resource}.{group} \"{name}\" already exists"),
        );
    }
    s.rv += 1;
    s.uid += 1;
    let rv = s.rv;
    obj["apiVersion"] = json!(if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    });
    obj["kind"] = json!(kind);
    if !namespace.is_empty() {
        obj["metadata"]["namespace"] = json!(namespace);
    }
    obj["metadata"]["uid"] = json!(format!("00000000-0000-4000-9000-{:012}", s.uid));
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    obj["metadata"]["creationTimestamp"] = json!("2026-11-29T00:00:00Z");
    s.objects.insert(key, obj.clone());
    broadcast_object(&mut s, rv, group, resource, namespace, "ADDED", obj.clone());
    json_response(StatusCode::CREATED, &obj)
}

fn get_item(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Response {
    let s = inner.lock().unwrap();
    match s.objects.get(&(
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        name.to_string(),
    )) {
        Some(o) => json_response(StatusCode::OK, o),
        None => status(
            404,
            "NotFound",
            &format!("{resource}.{group} \"{name}\" not found"),
        ),
    }
}

fn put_item(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    body: &[u8],
) -> Response {
    let Ok(mut obj) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "body is not JSON");
    };
    let mut s = inner.lock().unwrap();
    count_write(&mut s, "PUT", resource);
    let key = (
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        name.to_string(),
    );
    let Some(existing) = s.objects.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("{resource}.{group} \"{name}\" not found"),
        );
    };
    if let Some(want) = obj["metadata"]["resourceVersion"].as_str() {
        if Some(want) != existing["metadata"]["resourceVersion"].as_str() {
            return status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again");
        }
    }
    s.rv += 1;
    let rv = s.rv;
    obj["metadata"]["uid"] = existing["metadata"]["uid"].clone();
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    s.objects.insert(key, obj.clone());
    broadcast_object(
        &mut s,
        rv,
        group,
        resource,
        namespace,
        "MODIFIED",
        obj.clone(),
    );
    json_response(StatusCode::OK, &obj)
}

#[allow(clippy::too_many_arguments)]
fn patch_item(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return status(400, "BadRequest", "patch is not JSON");
    };
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut s = inner.lock().unwrap();
    count_write(&mut s, "PATCH", resource);
    let key = (
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        name.to_string(),
    );
    let manager = q
        .get("fieldManager")
        .cloned()
        .unwrap_or_else(|| "unknown".to_string());
    let force = q.get("force").is_some_and(|f| f == "true");
    let existing = s.objects.get(&key).cloned();
    let mut obj = match (&existing, ct.as_str()) {
        (Some(o), _) => o.clone(),
        (None, "application/apply-patch+yaml") => {
            // Server-side apply creates.
            let (version, kind, _) = resource_info(group, resource).unwrap();
            s.uid += 1;
            json!({"apiVersion": if group.is_empty() { version.to_string() } else { format!("{group}/{version}") },
                   "kind": kind, "metadata": {"name": name, "namespace": namespace,
                   "uid": format!("00000000-0000-4000-a000-{:012}", s.uid)}})
        }
        (None, _) => {
            return status(
                404,
                "NotFound",
                &format!("{resource}.{group} \"{name}\" not found"),
            )
        }
    };
    let lease_key = format!("{namespace}/{name}");
    match ct.as_str() {
        "application/merge-patch+json" => json_patch::merge(&mut obj, &patch),
        "application/strategic-merge-patch+json" | "application/apply-patch+yaml" => {
            let apply = ct == "application/apply-patch+yaml";
            // Field ownership of the spec's top-level fields, as server-side
            // apply tracks it: applying a different value to a field another
            // manager owns is a conflict.
            if let Some(spec) = patch["spec"].as_object() {
                if apply && !force {
                    for (field, value) in spec {
                        let owner = s.lease_owners.get(&(lease_key.clone(), field.clone()));
                        let current = &obj["spec"][field];
                        if !value.is_null()
                            && !current.is_null()
                            && current != value
                            && owner.is_some_and(|o| *o != manager)
                        {
                            return status(409, "Conflict", &format!("Apply failed with 1 conflict: conflict with \"{}\": .spec.{field}", owner.cloned().unwrap_or_default()));
                        }
                    }
                }
                for (field, value) in spec {
                    let k = (lease_key.clone(), field.clone());
                    if value.is_null() {
                        if let Some(m) = obj["spec"].as_object_mut() {
                            m.remove(field);
                        }
                        s.lease_owners.remove(&k);
                    } else {
                        obj["spec"][field] = value.clone();
                        s.lease_owners.insert(k, manager.clone());
                    }
                }
            }
            let mut rest = patch.clone();
            if let Some(m) = rest.as_object_mut() {
                m.remove("spec");
                m.remove("apiVersion");
                m.remove("kind");
            }
            json_patch::merge(&mut obj, &rest);
        }
        other => {
            return status(
                415,
                "UnsupportedMediaType",
                &format!("unexpected patch type {other}"),
            )
        }
    }
    s.rv += 1;
    let rv = s.rv;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    let event = if existing.is_some() {
        "MODIFIED"
    } else {
        "ADDED"
    };
    s.objects.insert(key, obj.clone());
    broadcast_object(&mut s, rv, group, resource, namespace, event, obj.clone());
    json_response(StatusCode::OK, &obj)
}

/// PATCH of the `status` subresource (merge patch): only `status` changes,
/// whatever else the patch holds, as the API server does.
async fn group_ns_status_patch(
    State(inner): St,
    Path((group, _v, ns, resource, name)): Path<(String, String, String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
    let mut s = inner.lock().unwrap();
    count_write(&mut s, "PATCH", &format!("{resource}/status"));
    let key = (group.clone(), resource.clone(), ns.clone(), name.clone());
    let Some(mut obj) = s.objects.get(&key).cloned() else {
        return status(
            404,
            "NotFound",
            &format!("{resource}.{group} \"{name}\" not found"),
        );
    };
    let mut current = obj["status"].take();
    if current.is_null() {
        current = json!({});
    }
    json_patch::merge(&mut current, &patch["status"]);
    obj["status"] = current;
    s.rv += 1;
    let rv = s.rv;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    s.objects.insert(key, obj.clone());
    broadcast_object(&mut s, rv, &group, &resource, &ns, "MODIFIED", obj.clone());
    json_response(StatusCode::OK, &obj)
}

fn delete_item(
    inner: &Arc<Mutex<Inner>>,
    group: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> Response {
    let mut s = inner.lock().unwrap();
    count_write(&mut s, "DELETE", resource);
    let key = (
        group.to_string(),
        resource.to_string(),
        namespace.to_string(),
        name.to_string(),
    );
    let Some(mut obj) = s.objects.remove(&key) else {
        return status(
            404,
            "NotFound",
            &format!("{resource}.{group} \"{name}\" not found"),
        );
    };
    s.rv += 1;
    let rv = s.rv;
    obj["metadata"]["resourceVersion"] = json!(rv.to_string());
    broadcast_object(
        &mut s,
        rv,
        group,
        resource,
        namespace,
        "DELETED",
        obj.clone(),
    );
    json_response(
        StatusCode::OK,
        &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
    )
}

type Q = Query<HashMap<String, String>>;
type St = State<Arc<Mutex<Inner>>>;

async fn core_collection(State(i): St, Path(r): Path<String>, Query(q): Q) -> Response {
    collection(&i, "", &r, None, &q)
}
async fn core_create(State(i): St, Path(r): Path<String>, body: Bytes) -> Response {
    create(&i, "", &r, "", &body)
}
async fn core_ns_collection(
    State(i): St,
    Path((ns, r)): Path<(String, String)>,
    Query(q): Q,
) -> Response {
    collection(&i, "", &r, Some(&ns), &q)
}
async fn core_ns_create(
    State(i): St,
    Path((ns, r)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    create(&i, "", &r, &ns, &body)
}
async fn core_ns_item(State(i): St, Path((ns, r, n)): Path<(String, String, String)>) -> Response {
    get_item(&i, "", &r, &ns, &n)
}
async fn core_ns_item_put(
    State(i): St,
    Path((ns, r, n)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    put_item(&i, "", &r, &ns, &n, &body)
}
async fn core_ns_item_patch(
    State(i): St,
    Path((ns, r, n)): Path<(String, String, String)>,
    Query(q): Q,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch_item(&i, "", &r, &ns, &n, &h, &q, &body)
}
async fn core_ns_item_delete(
    State(i): St,
    Path((ns, r, n)): Path<(String, String, String)>,
) -> Response {
    delete_item(&i, "", &r, &ns, &n)
}
async fn group_collection(
    State(i): St,
    Path((g, _v, r)): Path<(String, String, String)>,
    Query(q): Q,
) -> Response {
    collection(&i, &g, &r, None, &q)
}
async fn group_create(
    State(i): St,
    Path((g, _v, r)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    create(&i, &g, &r, "", &body)
}
async fn group_item(
    State(i): St,
    Path((g, _v, r, n)): Path<(String, String, String, String)>,
) -> Response {
    get_item(&i, &g, &r, "", &n)
}
async fn group_item_put(
    State(i): St,
    Path((g, _v, r, n)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    put_item(&i, &g, &r, "", &n, &body)
}
async fn group_item_patch(
    State(i): St,
    Path((g, _v, r, n)): Path<(String, String, String, String)>,
    Query(q): Q,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch_item(&i, &g, &r, "", &n, &h, &q, &body)
}
async fn group_item_delete(
    State(i): St,
    Path((g, _v, r, n)): Path<(String, String, String, String)>,
) -> Response {
    delete_item(&i, &g, &r, "", &n)
}
async fn group_ns_collection(
    State(i): St,
    Path((g, _v, ns, r)): Path<(String, String, String, String)>,
    Query(q): Q,
) -> Response {
    collection(&i, &g, &r, Some(&ns), &q)
}
async fn group_ns_create(
    State(i): St,
    Path((g, _v, ns, r)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Response {
    create(&i, &g, &r, &ns, &body)
}
async fn group_ns_item(
    State(i): St,
    Path((g, _v, ns, r, n)): Path<(String, String, String, String, String)>,
) -> Response {
    get_item(&i, &g, &r, &ns, &n)
}
async fn group_ns_item_put(
    State(i): St,
    Path((g, _v, ns, r, n)): Path<(String, String, String, String, String)>,
    body: Bytes,
) -> Response {
    put_item(&i, &g, &r, &ns, &n, &body)
}
async fn group_ns_item_patch(
    State(i): St,
    Path((g, _v, ns, r, n)): Path<(String, String, String, String, String)>,
    Query(q): Q,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    patch_item(&i, &g, &r, &ns, &n, &h, &q, &body)
}
async fn group_ns_item_delete(
    State(i): St,
    Path((g, _v, ns, r, n)): Path<(String, String, String, String, String)>,
) -> Response {
    delete_item(&i, &g, &r, &ns, &n)
}
