//! PolicyExceptions from the cluster: `policyexceptions.regent.dev` watched
//! in every namespace (list, then watch from its resourceVersion, relisting
//! after a `410 Gone`, with backoff). Each change is validated at once, and
//! an exception's verdict is written back where its owner looks: a `Valid`
//! condition in its status (with the reasons when it is not), and an Event
//! when it becomes invalid. Objects created while the webhook was down are
//! checked here like any other.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Value as Json};

use super::registry::{Loaded, Registry, Source};
use regent_core::exceptions::{self, Status};

/// The resource.
pub fn resource() -> ApiResource {
    ApiResource {
        group: exceptions::GROUP.to_string(),
        version: "v1alpha1".to_string(),
        api_version: exceptions::API_VERSION.to_string(),
        kind: exceptions::KIND.to_string(),
        plural: "policyexceptions".to_string(),
    }
}

/// Watches the resource cluster-wide and keeps the registry's cluster
/// exceptions current; with `report`, writes each one's status.
pub fn spawn(client: Client, registry: Arc<Registry>, report: bool) {
    tokio::spawn(async move {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource());
        let mut stream = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut store: BTreeMap<String, Json> = BTreeMap::new();
        let mut relisting: Option<BTreeMap<String, Json>> = None;
        let mut written: BTreeMap<String, String> = BTreeMap::new();
        while let Some(event) = stream.next().await {
            let key = |o: &DynamicObject| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.clone().unwrap_or_default(),
                    o.metadata.name.clone().unwrap_or_default()
                )
            };
            let as_json = |o: &DynamicObject| serde_json::to_value(o).unwrap_or(Json::Null);
            let changed = match event {
                Ok(Event::Init) => {
                    relisting = Some(BTreeMap::new());
                    false
                }
                Ok(Event::InitApply(o)) => {
                    if let Some(r) = relisting.as_mut() {
                        r.insert(key(&o), as_json(&o));
                    }
                    false
                }
                Ok(Event::InitDone) => {
                    store = relisting.take().unwrap_or_default();
                    true
                }
                Ok(Event::Apply(o)) => {
                    store.insert(key(&o), as_json(&o));
                    true
                }
                Ok(Event::Delete(o)) => {
                    store.remove(&key(&o));
                    true
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PolicyException watch failed; retrying with backoff");
                    false
                }
            };
            if !changed {
                continue;
            }
            let mut loaded = Loaded::default();
            for doc in store.values() {
                // The API server sets apiVersion and kind on watch events of
                // a typed resource; a dynamic object may lack them.
                let mut doc = doc.clone();
                doc["apiVersion"] = json!(exceptions::API_VERSION);
                doc["kind"] = json!(exceptions::KIND);
                loaded.exceptions.push(exceptions::read(&doc, "cluster"));
            }
            registry.set_source(Source::Cluster, loaded);
            if report {
                write_statuses(&client, &registry, &store, &mut written).await;
            }
        }
    });
}

/// The status an exception should show: `(valid, reason, message)`.
fn verdict(registry: &Registry, id: &str) -> Option<(bool, &'static str, String)> {
    let set = registry.current();
    if let Some((_, status)) = set
        .all()
        .iter()
        .find(|(e, _)| e.id() == id && e.source == "cluster")
    {
        return Some(match status {
            Status::Valid => (true, "Valid", "in force".to_string()),
            Status::Expired => (false, "Expired", "ended; it applies to nothing".to_string()),
            Status::Invalid(p) => (
                false,
                "Invalid",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        });
    }
    set.unreadable()
        .iter()
        .find(|(who, _)| who == id)
        .map(|(_, p)| {
            (
                false,
                "Invalid",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

async fn write_statuses(
    client: &Client,
    registry: &Registry,
    store: &BTreeMap<String, Json>,
    written: &mut BTreeMap<String, String>,
) {
    for (id, doc) in store {
        let Some((valid, reason, message)) = verdict(registry, id) else {
            continue;
        };
        let current = &doc["status"]["conditions"][0];
        let summary = format!("{valid}:{reason}:{message}");
        if written.get(id) == Some(&summary)
            || (current["status"] == if valid { "True" } else { "False" }
                && current["reason"] == reason
                && current["message"] == message.as_str())
        {
            written.insert(id.clone(), summary);
            continue;
        }
        let (Some(ns), Some(name)) = (
            doc["metadata"]["namespace"].as_str(),
            doc["metadata"]["name"].as_str(),
        ) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource());
        let now = chrono_now();
        let status = json!({"status": {
            "valid": valid,
            "conditions": [{
                "type": "Valid",
                "status": if valid { "True" } else { "False" },
                "reason": reason,
                "message": message,
                "lastTransitionTime": now,
            }]
        }});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {
                written.insert(id.clone(), summary);
                if !valid && reason == "Invalid" {
                    event(client, ns, name, doc, &message).await;
                }
            }
            Err(e) => {
                tracing::warn!(exception = %id, error = %e, "writing the exception's status failed")
            }
        }
    }
}

async fn event(client: &Client, ns: &str, name: &str, doc: &Json, message: &str) {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource {
            group: "events.k8s.io".to_string(),
            version: "v1".to_string(),
            api_version: "events.k8s.io/v1".to_string(),
            kind: "Event".to_string(),
            plural: "events".to_string(),
        },
    );
    let now = chrono_now();
    let body = json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": ns},
        "eventTime": now,
        "reportingController": "regent.dev/exceptions",
        "reportingInstance": std::env::var("POD_NAME").unwrap_or_else(|_| "regent".to_string()),
        "action": "Validate",
        "reason": "InvalidException",
        "type": "Warning",
        "note": message.chars().take(1024).collect::<String>(),
        "regarding": {
            "apiVersion": exceptions::API_VERSION,
            "kind": exceptions::KIND,
            "namespace": ns,
            "name": name,
            "uid": doc["metadata"]["uid"],
        }
    });
    let Ok(obj) = serde_json::from_value::<DynamicObject>(body) else {
        return;
    };
    if let Err(e) = api.create(&kube::api::PostParams::default(), &obj).await {
        tracing::warn!(exception = %format!("{ns}/{name}"), error = %e, "recording an Event failed");
    }
}

fn chrono_now() -> String {
    let secs = exceptions::now();
    format!("{}Z", exceptions::date_time_of(secs))
}
