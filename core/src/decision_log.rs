//! The decision log's record: one per admission decision (validate and
//! mutate), with who asked, what for, what every policy said, the
//! exceptions applied and the patch, as stable JSON (`docs/decision-log.md`
//! documents each field; `docs/decision-log.schema.yaml` is the schema a
//! test holds the records to). Also the masking of the object when a record
//! carries it: JSON pointers (with `*` for any key or index) from the
//! command line, and those a bundle's `data.regent.log.mask` rule returns.
//!
//! Building a record copies a few strings ([`Pending::new`]); its time and
//! id, encoding it, reading the object and masking happen later, off the
//! request path ([`Pending::finish`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regorus::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::compose::decision::{Decision, Webhook};
use crate::review::Review;

/// One record, as written (field names are the contract).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record {
    /// When the decision was made, RFC 3339 in UTC with microseconds.
    pub time: String,
    /// A unique id of this record.
    pub decision_id: String,
    /// The AdmissionReview's uid.
    pub uid: String,
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: String,
    /// The object's group, version and kind.
    pub kind: Gvk,
    /// The resource, as the API server names it.
    pub resource: Gvr,
    /// The subresource, when the request is for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<String>,
    /// The namespace ("" for a cluster-scoped object).
    pub namespace: String,
    /// The object's name ("" when the API server has not assigned one).
    pub name: String,
    /// Who asked.
    pub user: User,
    /// Whether the request was a dry run.
    pub dry_run: bool,
    /// The answer.
    pub allowed: bool,
    /// The status code of a refusal (403 denied, 422 invalid, 500 failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Every violation reported, whatever its enforcement.
    pub violations: Vec<LoggedViolation>,
    /// The warnings the response carried.
    pub warnings: Vec<String>,
    /// The policy exceptions that covered violations.
    pub exceptions: Vec<LoggedException>,
    /// What a mutation changed (mutate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchSummary>,
    /// Policies whose evaluation failed while the others decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_errors: Vec<String>,
    /// The evaluation error that decided the whole request, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The live bundle's revision ("" before one is live).
    pub bundle_revision: String,
    /// Microseconds from the request's body read to its answer.
    pub duration_us: u64,
    /// The replica that decided (its pod name).
    pub replica: String,
    /// The object under review, masked, with `--decision-log-include-object`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<Json>,
}

/// Group, version and kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gvk {
    /// "" for the core group.
    pub group: String,
    /// `v1`.
    pub version: String,
    /// `Deployment`.
    pub kind: String,
}

/// Group, version and resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gvr {
    /// "" for the core group.
    pub group: String,
    /// `v1`.
    pub version: String,
    /// `deployments`.
    pub resource: String,
}

/// Who asked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub username: String,
    /// Its groups.
    pub groups: Vec<String>,
}

/// One violation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggedViolation {
    /// The policy (a Constraint's name for a Constraint).
    pub policy: String,
    /// What it did: deny, warn or dryrun.
    pub enforcement: &'static str,
    /// The message.
    pub message: String,
    /// The field path, when the policy gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The control, for a policy that reports controls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
}

/// One violation a policy exception covered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggedException {
    /// The exception (`namespace/name`).
    pub exception: String,
    /// The policy it excepted.
    pub policy: String,
    /// Its owner.
    pub owner: String,
    /// Its end (RFC 3339).
    pub expires: String,
    /// The violation's path, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What a mutation changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PatchSummary {
    /// JSON patch operations.
    pub operations: usize,
    /// The mutating policies and Gatekeeper mutators that changed it.
    pub policies: Vec<String>,
}

/// What a record needs besides the decision.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The webhook.
    pub webhook: Webhook,
    /// From the body read to the answer.
    pub duration: Duration,
    /// The bundle revision.
    pub revision: &'a str,
    /// This replica's name.
    pub replica: &'a str,
    /// When (seconds and microseconds since the epoch).
    pub at: SystemTime,
}

/// A record built on the request path, to be finished in the background:
/// its time and id are written, the patch counted and the object (when
/// asked for, kept as the engine's value, shared rather than copied)
/// converted and masked there.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The record so far (no `time`, no `decision_id` yet).
    pub record: Record,
    /// When the decision was made.
    pub at: SystemTime,
    /// The object under review (a shared handle), when the record carries it.
    pub object: Option<Value>,
    /// The whole review (a shared handle), for the bundle's mask rule, when
    /// the record carries the object.
    pub input: Option<Value>,
    /// The response's patch (base64), to count its operations.
    pub patch: Option<String>,
}

impl Record {
    /// A record of `decision` on `review`, whole (as [`Pending::new`] then
    /// [`Pending::finish`] without masks, the object left out).
    pub fn of(review: &Review, decision: &Decision, ctx: &Context<'_>) -> Record {
        Pending::new(review, decision, ctx, false).finish(&[])
    }

    /// What the request path copies: everything but the time and the id.
    fn partial(review: &Review, decision: &Decision, ctx: &Context<'_>) -> Record {
        let request = &review.input["request"];
        let user = &request["userInfo"];
        let resource = &request["resource"];
        let text = |v: &Value| crate::runtime::text(v).unwrap_or_default().to_string();
        let m = &review.meta;
        let mut violations: Vec<LoggedViolation> = decision
            .fired
            .iter()
            .flat_map(|f| {
                f.violations.iter().map(move |v| LoggedViolation {
                    policy: f.policy.clone(),
                    enforcement: f.enforcement.as_str(),
                    message: if f.gatekeeper {
                        v.msg.clone()
                    } else {
                        f.line(v)
                    },
                    path: v.path.clone(),
                    control: v.control.clone(),
                })
            })
            .collect();
        violations.sort_by(|a, b| (&a.policy, &a.path).cmp(&(&b.policy, &b.path)));
        let groups = match &user["groups"] {
            Value::Array(a) => a
                .iter()
                .filter_map(|g| crate::runtime::text(g).map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let sub = text(&request["subResource"]);
        Record {
            time: String::new(),
            decision_id: String::new(),
            uid: m.uid.clone(),
            webhook: ctx.webhook.as_str(),
            operation: m.operation.clone(),
            kind: Gvk {
                group: m.group.clone(),
                version: text(&request["kind"]["version"]),
                kind: m.kind.clone(),
            },
            resource: Gvr {
                group: text(&resource["group"]),
                version: text(&resource["version"]),
                resource: text(&resource["resource"]),
            },
            sub_resource: (!sub.is_empty()).then_some(sub),
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            user: User {
                username: text(&user["username"]),
                groups,
            },
            dry_run: request["dryRun"] == Value::Bool(true),
            allowed: decision.response.allowed,
            code: decision.response.status.as_ref().map(|s| s.code),
            violations,
            warnings: decision.response.warnings.clone(),
            exceptions: decision
                .excepted
                .iter()
                .map(|e| LoggedException {
                    exception: e.exception.clone(),
                    policy: e.policy.clone(),
                    owner: e.owner.clone(),
                    expires: e.expires.clone(),
                    path: e.violation.path.clone(),
                })
                .collect(),
            patch: (ctx.webhook == Webhook::Mutate).then(|| PatchSummary {
                operations: 0,
                policies: decision.mutated_by.clone(),
            }),
            policy_errors: decision
                .policy_errors
                .iter()
                .map(|e| format!("{}: {}", e.policy, e.error))
                .collect(),
            error: decision.error.as_ref().map(ToString::to_string),
            bundle_revision: ctx.revision.to_string(),
            duration_us: ctx.duration.as_micros() as u64,
            replica: ctx.replica.to_string(),
            object: None,
        }
    }

    /// Whether a policy said or did anything: a denial, a warning, an
    /// exception used, a mutation, a failure (these are always logged;
    /// plain admissions are sampled).
    pub fn notable(&self) -> bool {
        !self.allowed
            || !self.warnings.is_empty()
            || !self.exceptions.is_empty()
            || self.error.is_some()
            || self.patch.as_ref().is_some_and(|p| !p.policies.is_empty())
    }
}

impl Pending {
    /// The request path's part of a record of `decision` on `review`: a few
    /// copied strings, and shared handles on the object and the review when
    /// `carries_object`.
    pub fn new(
        review: &Review,
        decision: &Decision,
        ctx: &Context<'_>,
        carries_object: bool,
    ) -> Pending {
        Pending {
            record: Record::partial(review, decision, ctx),
            at: ctx.at,
            object: carries_object.then(|| review.input["request"]["object"].clone()),
            input: carries_object.then(|| review.input.clone()),
            patch: decision.response.patch.clone(),
        }
    }

    /// Finishes the record off the request path: writes its time and id,
    /// counts the patch's operations and, when the object is carried,
    /// converts it and removes what `masks` name (JSON pointers; `*`
    /// matches any key or index).
    pub fn finish(self, masks: &[String]) -> Record {
        let Pending {
            mut record,
            at,
            object,
            input: _,
            patch,
        } = self;
        record.time = rfc3339_micros(at);
        record.decision_id = decision_id();
        if let (Some(summary), Some(b64)) = (record.patch.as_mut(), patch) {
            use base64::Engine as _;
            summary.operations = base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Json>(&bytes).ok())
                .and_then(|p| p.as_array().map(Vec::len))
                .unwrap_or(0);
        }
        if let Some(object) = object {
            let mut json = serde_json::to_value(&object).unwrap_or(Json::Null);
            for m in masks {
                mask(&mut json, m);
            }
            record.object = Some(json);
        }
        record
    }
}

/// Removes what `pointer` names from `value`: an RFC 6901 JSON pointer
/// whose segments may be `*` (any key of an object, any index of an array).
/// Nothing happens where it names nothing.
pub fn mask(value: &mut Json, pointer: &str) {
    let Some(rest) = pointer.strip_prefix('/') else {
        return;
    };
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect();
    remove(value, &segments);
}

fn remove(value: &mut Json, segments: &[String]) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    if rest.is_empty() {
        match value {
            Json::Object(m) if first == "*" => m.clear(),
            Json::Object(m) => {
                m.remove(first);
            }
            Json::Array(a) if first == "*" => a.clear(),
            Json::Array(a) => {
                if let Ok(i) = first.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        }
        return;
    }
    match value {
        Json::Object(m) if first == "*" => m.values_mut().for_each(|v| remove(v, rest)),
        Json::Object(m) => {
            if let Some(v) = m.get_mut(first) {
                remove(v, rest);
            }
        }
        Json::Array(a) if first == "*" => a.iter_mut().for_each(|v| remove(v, rest)),
        Json::Array(a) => {
            if let Some(v) = first.parse::<usize>().ok().and_then(|i| a.get_mut(i)) {
                remove(v, rest);
            }
        }
        _ => {}
    }
}

/// `2026-12-07T17:10:39.835424Z`.
pub fn rfc3339_micros(at: SystemTime) -> String {
    let d = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    chrono::DateTime::from_timestamp(d.as_secs() as i64, d.subsec_nanos())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// A random 128-bit id, as 32 hex digits.
fn decision_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // RandomState is seeded per process from the OS; a counter makes each
    // id of this process distinct.
    let seed = std::collections::hash_map::RandomState::new();
    let mut h = seed.build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let a = h.finish();
    let mut h = seed.build_hasher();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_remove_what_they_name_with_wildcards() {
        let mut o = json!({"metadata": {"annotations": {"a/b": "x", "c": "y"}},
            "spec": {"containers": [
                {"env": [{"name": "TOKEN", "value": "s3cret"}, {"name": "MODE", "value": "p"}]},
                {"env": [{"name": "KEY", "valueFrom": {}}]}]}});
        mask(&mut o, "/spec/containers/*/env/*/value");
        mask(&mut o, "/metadata/annotations/a~1b");
        mask(&mut o, "/nothing/here");
        mask(&mut o, "not-a-pointer");
        assert!(!o.to_string().contains("s3cret"));
        assert_eq!(
            o["spec"]["containers"][0]["env"][1],
            json!({"name": "MODE"})
        );
        assert_eq!(o["metadata"]["annotations"], json!({"c": "y"}));
        mask(&mut o, "/spec/containers/0");
        assert_eq!(o["spec"]["containers"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn times_and_ids() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_000_000_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-30T00:53:20.123456Z");
        let a = decision_id();
        let b = decision_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
