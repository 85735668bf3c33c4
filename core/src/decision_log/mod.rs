//! The decision log's record: one per admission decision (validate and
//! mutate), with who asked, what for, what every policy said, the
//! exceptions applied and the patch, as stable JSON (`docs/decision-log.md`
//! documents each field; `docs/decision-log.schema.yaml` is the schema a
//! test holds the records to). Also the masking of the object when a record
//! carries it: JSON pointers (with `*` for any key or index) from the
//! command line, and those a bundle's `data.regent.log.mask` rule returns.
//!
//! A [`Record`] borrows from the review and the decision: written straight
//! to JSON ([`json`]: [`Record::write`]), it copies nothing but its time,
//! its id and the messages it formats. The object, when a record carries
//! it, is added to the written line afterwards ([`append_object`]):
//! converting and masking it is the one costly part, and is done off the
//! request path.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regorus::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::compose::decision::{Decision, Webhook};
use crate::review::Review;

mod json;
pub use json::append_object;

/// One record, as written (field names are the contract), without the
/// object: [`append_object`] writes that last field.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Record<'a> {
    /// When the decision was made, RFC 3339 in UTC with microseconds.
    pub time: String,
    /// A unique id of this record.
    pub decision_id: String,
    /// The AdmissionReview's uid.
    pub uid: &'a str,
    /// `validate` or `mutate`.
    pub webhook: &'static str,
    /// CREATE, UPDATE, DELETE or CONNECT.
    pub operation: &'a str,
    /// The object's group, version and kind.
    pub kind: Gvk<'a>,
    /// The resource, as the API server names it.
    pub resource: Gvr<'a>,
    /// The subresource, when the request is for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_resource: Option<&'a str>,
    /// The namespace ("" for a cluster-scoped object).
    pub namespace: &'a str,
    /// The object's name ("" when the API server has not assigned one).
    pub name: &'a str,
    /// Who asked.
    pub user: User<'a>,
    /// Whether the request was a dry run.
    pub dry_run: bool,
    /// The answer.
    pub allowed: bool,
    /// The status code of a refusal (403 denied, 422 invalid, 500 failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    /// Every violation reported, whatever its enforcement.
    pub violations: Vec<LoggedViolation<'a>>,
    /// The warnings the response carried.
    pub warnings: &'a [String],
    /// The policy exceptions that covered violations.
    pub exceptions: Vec<LoggedException<'a>>,
    /// What a mutation changed (mutate only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchSummary<'a>>,
    /// Policies whose evaluation failed while the others decided.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_errors: Vec<String>,
    /// The evaluation error that decided the whole request, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The live bundle's revision ("" before one is live).
    pub bundle_revision: &'a str,
    /// Microseconds from the request's body read to its answer.
    pub duration_us: u64,
    /// The replica that decided (its pod name).
    pub replica: &'a str,
}

/// Group, version and kind.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gvk<'a> {
    /// "" for the core group.
    pub group: &'a str,
    /// `v1`.
    pub version: &'a str,
    /// `Deployment`.
    pub kind: &'a str,
}

/// Group, version and resource.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Gvr<'a> {
    /// "" for the core group.
    pub group: &'a str,
    /// `v1`.
    pub version: &'a str,
    /// `deployments`.
    pub resource: &'a str,
}

/// Who asked.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct User<'a> {
    /// The user name.
    pub username: &'a str,
    /// Its groups.
    pub groups: Vec<&'a str>,
}

/// One violation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggedViolation<'a> {
    /// The policy (a Constraint's name for a Constraint).
    pub policy: &'a str,
    /// What it did: deny, warn or dryrun.
    pub enforcement: &'static str,
    /// The message.
    pub message: Cow<'a, str>,
    /// The field path, when the policy gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    /// The control, for a policy that reports controls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<&'a str>,
}

/// One violation a policy exception covered.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LoggedException<'a> {
    /// The exception (`namespace/name`).
    pub exception: &'a str,
    /// The policy it excepted.
    pub policy: &'a str,
    /// Its owner.
    pub owner: &'a str,
    /// Its end (RFC 3339).
    pub expires: &'a str,
    /// The violation's path, when it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
}

/// What a mutation changed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PatchSummary<'a> {
    /// JSON patch operations.
    pub operations: usize,
    /// The mutating policies and Gatekeeper mutators that changed it.
    pub policies: &'a [String],
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

/// Whether a policy said or did anything about a decision: a denial, a
/// warning, an exception used, a mutation, a failure (these are always
/// logged; plain admissions are sampled). Known before any record is built.
pub fn notable(decision: &Decision, webhook: Webhook) -> bool {
    !decision.response.allowed
        || !decision.response.warnings.is_empty()
        || !decision.excepted.is_empty()
        || decision.error.is_some()
        || (webhook == Webhook::Mutate && !decision.mutated_by.is_empty())
}

impl<'a> Record<'a> {
    /// The record of `decision` on `review`.
    pub fn of(review: &'a Review, decision: &'a Decision, ctx: &Context<'a>) -> Record<'a> {
        let [user, resource, kind, sub, dry_run] = fields(
            &review.input["request"],
            ["userInfo", "resource", "kind", "subResource", "dryRun"],
        );
        let [username, groups] = fields(user, ["username", "groups"]);
        let [r_group, r_version, r_resource] = fields(resource, ["group", "version", "resource"]);
        let [version] = fields(kind, ["version"]);
        let text = |v: &'a Value| crate::runtime::text(v).unwrap_or_default();
        let m = &review.meta;
        let mut violations: Vec<LoggedViolation<'a>> = decision
            .fired
            .iter()
            .flat_map(|f| {
                f.violations.iter().map(move |v| LoggedViolation {
                    policy: &f.policy,
                    enforcement: f.enforcement.as_str(),
                    message: if f.gatekeeper {
                        Cow::Borrowed(v.msg.as_str())
                    } else {
                        Cow::Owned(f.line(v))
                    },
                    path: v.path.as_deref(),
                    control: v.control.as_deref(),
                })
            })
            .collect();
        violations.sort_by(|a, b| (a.policy, a.path).cmp(&(b.policy, b.path)));
        let groups = match groups {
            Value::Array(a) => a.iter().filter_map(crate::runtime::text).collect(),
            _ => Vec::new(),
        };
        let sub = text(sub);
        Record {
            time: rfc3339_micros(ctx.at),
            decision_id: decision_id(),
            uid: &m.uid,
            webhook: ctx.webhook.as_str(),
            operation: &m.operation,
            kind: Gvk {
                group: &m.group,
                version: text(version),
                kind: &m.kind,
            },
            resource: Gvr {
                group: text(r_group),
                version: text(r_version),
                resource: text(r_resource),
            },
            sub_resource: (!sub.is_empty()).then_some(sub),
            namespace: &m.namespace,
            name: &m.name,
            user: User {
                username: text(username),
                groups,
            },
            dry_run: *dry_run == Value::Bool(true),
            allowed: decision.response.allowed,
            code: decision.response.status.as_ref().map(|s| s.code),
            violations,
            warnings: &decision.response.warnings,
            exceptions: decision
                .excepted
                .iter()
                .map(|e| LoggedException {
                    exception: &e.exception,
                    policy: &e.policy,
                    owner: &e.owner,
                    expires: &e.expires,
                    path: e.violation.path.as_deref(),
                })
                .collect(),
            patch: (ctx.webhook == Webhook::Mutate).then_some(PatchSummary {
                operations: if decision.response.patch.is_some() {
                    decision.patch_operations
                } else {
                    0
                },
                policies: &decision.mutated_by,
            }),
            policy_errors: decision
                .policy_errors
                .iter()
                .map(|e| format!("{}: {}", e.policy, e.error))
                .collect(),
            error: decision.error.as_ref().map(ToString::to_string),
            bundle_revision: ctx.revision,
            duration_us: ctx.duration.as_micros() as u64,
            replica: ctx.replica,
        }
    }
}

/// What [`fields`] answers for a name it does not find.
static UNDEFINED: Value = Value::Undefined;

/// The values of `names` in the object `v` (`Undefined` where absent, or
/// when `v` is no object), found in one pass over its entries: indexing by
/// name builds a key value per lookup, which costs more than comparing a
/// request's dozen keys with a few names.
fn fields<'a, const N: usize>(v: &'a Value, names: [&str; N]) -> [&'a Value; N] {
    let mut out = [&UNDEFINED; N];
    if let Value::Object(o) = v {
        for (k, value) in o.iter() {
            if let Value::String(k) = k {
                if let Some(i) = names.iter().position(|n| *n == k.as_ref()) {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = value;
                    }
                }
            }
        }
    }
    out
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

/// A unique 128-bit id, as 32 hex digits that look random: each thread's
/// own random half (drawn once from the process's OS-seeded hasher keys),
/// then the thread's count of ids put through a bijective mix (so no two
/// ids of a thread are alike). Nothing is shared between threads.
fn decision_id() -> String {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: (u64, Cell<u64>) = {
            let keys = std::collections::hash_map::RandomState::new();
            let mut h = keys.build_hasher();
            h.write_u64(0x243f_6a88_85a3_08d3);
            let half = h.finish();
            let mut h = keys.build_hasher();
            h.write_u64(half);
            (half, Cell::new(h.finish()))
        };
    }
    STATE.with(|(half, count)| {
        let n = count.get().wrapping_add(1);
        count.set(n);
        let mut out = String::with_capacity(32);
        push_hex(&mut out, *half);
        push_hex(&mut out, mix(n));
        out
    })
}

/// splitmix64's finaliser: a bijection on u64 that scatters its bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `n` as 16 lower-case hex digits.
fn push_hex(out: &mut String, n: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..16).rev() {
        out.push(DIGITS[((n >> (shift * 4)) & 0xf) as usize] as char);
    }
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

    /// Every string a record can hold, written by hand, is what serde_json
    /// writes: each byte that needs escaping, at each offset in and around
    /// an eight-byte chunk, and text that needs none.
    #[test]
    fn records_are_written_exactly_as_serde_json_writes_them() {
        let mut texts: Vec<String> = vec![
            String::new(),
            "plain".into(),
            "é ü 漢字 \u{2028} \u{7f}".into(),
        ];
        for b in (0u8..0x80).chain([b'"', b'\\']) {
            for at in 0..18 {
                let mut t = "abcdefghijklmnopq".to_string();
                t.insert(at.min(t.len()), b as char);
                texts.push(t);
            }
        }
        let groups: Vec<&str> = texts.iter().map(String::as_str).collect();
        let warnings = texts.clone();
        let policies = vec!["p1".to_string(), "Assign/x\"y".to_string()];
        fn full<'a>(
            t: &'a str,
            groups: &[&'a str],
            warnings: &'a [String],
            policies: &'a [String],
        ) -> Record<'a> {
            Record {
                time: t.to_string(),
                decision_id: t.to_string(),
                uid: t,
                webhook: "mutate",
                operation: t,
                kind: Gvk {
                    group: t,
                    version: t,
                    kind: t,
                },
                resource: Gvr {
                    group: t,
                    version: t,
                    resource: t,
                },
                sub_resource: Some(t),
                namespace: t,
                name: t,
                user: User {
                    username: t,
                    groups: groups.to_vec(),
                },
                dry_run: true,
                allowed: false,
                code: Some(403),
                violations: vec![
                    LoggedViolation {
                        policy: t,
                        enforcement: "deny",
                        message: Cow::Owned(format!("[x] {t}")),
                        path: Some(t),
                        control: Some(t),
                    },
                    LoggedViolation {
                        policy: t,
                        enforcement: "warn",
                        message: Cow::Borrowed(t),
                        path: None,
                        control: None,
                    },
                ],
                warnings,
                exceptions: vec![
                    LoggedException {
                        exception: t,
                        policy: t,
                        owner: t,
                        expires: t,
                        path: Some(t),
                    },
                    LoggedException {
                        exception: t,
                        policy: t,
                        owner: t,
                        expires: t,
                        path: None,
                    },
                ],
                patch: Some(PatchSummary {
                    operations: 12345,
                    policies,
                }),
                policy_errors: vec![t.to_string(), "b".into()],
                error: Some(t.to_string()),
                bundle_revision: t,
                duration_us: u64::MAX,
                replica: t,
            }
        }
        let bare = Record {
            sub_resource: None,
            code: None,
            violations: Vec::new(),
            warnings: &[],
            exceptions: Vec::new(),
            patch: None,
            policy_errors: Vec::new(),
            error: None,
            duration_us: 0,
            user: User {
                username: "",
                groups: Vec::new(),
            },
            ..full("", &groups, &warnings, &policies)
        };
        let mut records: Vec<Record> = texts
            .iter()
            .map(|t| full(t, &groups, &warnings, &policies))
            .collect();
        records.push(bare);
        for r in &records {
            let mut ours = Vec::new();
            r.write(&mut ours);
            let theirs = serde_json::to_vec(r).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(theirs).unwrap()
            );
        }
    }

    #[test]
    fn an_object_is_added_as_the_last_field_masked() {
        let object =
            Value::from_json_str(r#"{"spec": {"env": [{"name": "A", "value": "s3cret"}]}}"#)
                .unwrap();
        let mut line = br#"{"uid":"u"}"#.to_vec();
        append_object(&mut line, &object, &["/spec/env/*/value".to_string()]).unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            r#"{"uid":"u","object":{"spec":{"env":[{"name":"A"}]}}}"#
        );
    }

    #[test]
    fn times_and_ids() {
        let t = UNIX_EPOCH + Duration::from_micros(1_796_000_000_123_456);
        assert_eq!(rfc3339_micros(t), "2026-11-30T00:53:20.123456Z");
        let a = decision_id();
        let b = decision_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
        assert_eq!(&a[..16], &b[..16], "one thread, one random half");
        let other = std::thread::spawn(decision_id).join().unwrap();
        assert_ne!(&a[..16], &other[..16], "each thread its own");
        // The mix is a bijection: a thousand counts, a thousand ids.
        let ids: std::collections::HashSet<u64> = (0..1000).map(mix).collect();
        assert_eq!(ids.len(), 1000);
        assert_eq!(format!("{:016x}", 0xdead_beef_u64), {
            let mut s = String::new();
            push_hex(&mut s, 0xdead_beef);
            s
        });
    }
}
