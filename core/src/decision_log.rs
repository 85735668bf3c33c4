//! The decision log's record: one per admission decision (validate and
//! mutate), with who asked, what for, what every policy said, the
//! exceptions applied and the patch, as stable JSON (`docs/decision-log.md`
//! documents each field; `docs/decision-log.schema.yaml` is the schema a
//! test holds the records to). Also the masking of the object when a record
//! carries it: JSON pointers (with `*` for any key or index) from the
//! command line, and those a bundle's `data.regent.log.mask` rule returns.
//!
//! A [`Record`] borrows from the review and the decision: written straight
//! to JSON ([`Record::line`]), it copies nothing but its time, its id and
//! the messages it formats. The object, when a record carries it, is added
//! to the written line afterwards ([`append_object`]): converting and
//! masking it is the one costly part, and is done off the request path.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use regorus::Value;
use serde::Serialize;
use serde_json::Value as Json;

use crate::compose::decision::{Decision, Webhook};
use crate::review::Review;

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

    /// Writes the record as one JSON object, without a newline, to `out`
    /// (appended): byte for byte what `serde_json` writes for it (a test
    /// holds the two together), without its per-key escaping and
    /// dispatch. This runs on the request path for every record logged.
    pub fn write(&self, out: &mut Vec<u8>) {
        let w = &mut Out(out);
        w.raw(b"{\"time\":");
        w.str(&self.time);
        w.raw(b",\"decision_id\":");
        w.str(&self.decision_id);
        w.raw(b",\"uid\":");
        w.str(self.uid);
        w.raw(b",\"webhook\":");
        w.str(self.webhook);
        w.raw(b",\"operation\":");
        w.str(self.operation);
        w.raw(b",\"kind\":");
        w.raw(b"{\"group\":");
        w.str(self.kind.group);
        w.raw(b",\"version\":");
        w.str(self.kind.version);
        w.raw(b",\"kind\":");
        w.str(self.kind.kind);
        w.raw(b"}");
        w.raw(b",\"resource\":");
        w.raw(b"{\"group\":");
        w.str(self.resource.group);
        w.raw(b",\"version\":");
        w.str(self.resource.version);
        w.raw(b",\"resource\":");
        w.str(self.resource.resource);
        w.raw(b"}");
        if let Some(sub) = self.sub_resource {
            w.raw(b",\"sub_resource\":");
            w.str(sub);
        }
        w.raw(b",\"namespace\":");
        w.str(self.namespace);
        w.raw(b",\"name\":");
        w.str(self.name);
        w.raw(b",\"user\":");
        w.raw(b"{\"username\":");
        w.str(self.user.username);
        w.raw(b",\"groups\":");
        w.strs(self.user.groups.iter().copied());
        w.raw(b"}");
        w.raw(b",\"dry_run\":");
        w.bool(self.dry_run);
        w.raw(b",\"allowed\":");
        w.bool(self.allowed);
        if let Some(code) = self.code {
            w.raw(b",\"code\":");
            w.num(u64::from(code));
        }
        w.raw(b",\"violations\":");
        w.raw(b"[");
        for (i, v) in self.violations.iter().enumerate() {
            w.raw(if i == 0 { b"{" } else { b",{" });
            w.raw(b"\"policy\":");
            w.str(v.policy);
            w.raw(b",\"enforcement\":");
            w.str(v.enforcement);
            w.raw(b",\"message\":");
            w.str(&v.message);
            if let Some(path) = v.path {
                w.raw(b",\"path\":");
                w.str(path);
            }
            if let Some(control) = v.control {
                w.raw(b",\"control\":");
                w.str(control);
            }
            w.raw(b"}");
        }
        w.raw(b"]");
        w.raw(b",\"warnings\":");
        w.strs(self.warnings.iter().map(String::as_str));
        w.raw(b",\"exceptions\":");
        w.raw(b"[");
        for (i, e) in self.exceptions.iter().enumerate() {
            w.raw(if i == 0 { b"{" } else { b",{" });
            w.raw(b"\"exception\":");
            w.str(e.exception);
            w.raw(b",\"policy\":");
            w.str(e.policy);
            w.raw(b",\"owner\":");
            w.str(e.owner);
            w.raw(b",\"expires\":");
            w.str(e.expires);
            if let Some(path) = e.path {
                w.raw(b",\"path\":");
                w.str(path);
            }
            w.raw(b"}");
        }
        w.raw(b"]");
        if let Some(patch) = &self.patch {
            w.raw(b",\"patch\":");
            w.raw(b"{\"operations\":");
            w.num(patch.operations as u64);
            w.raw(b",\"policies\":");
            w.strs(patch.policies.iter().map(String::as_str));
            w.raw(b"}");
        }
        if !self.policy_errors.is_empty() {
            w.raw(b",\"policy_errors\":");
            w.strs(self.policy_errors.iter().map(String::as_str));
        }
        if let Some(error) = &self.error {
            w.raw(b",\"error\":");
            w.str(error);
        }
        w.raw(b",\"bundle_revision\":");
        w.str(self.bundle_revision);
        w.raw(b",\"duration_us\":");
        w.num(self.duration_us);
        w.raw(b",\"replica\":");
        w.str(self.replica);
        w.raw(b"}");
    }
}

/// JSON written by hand for [`Record::write`]: keys are constants written
/// with their punctuation in one piece (nothing to escape), strings are escaped exactly as `serde_json` escapes them,
/// eight bytes at a time where nothing needs escaping.
struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn raw(&mut self, b: &[u8]) {
        self.0.extend_from_slice(b);
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { b"true" } else { b"false" });
    }

    fn num(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.0.extend_from_slice(&digits[at..]);
    }

    fn strs<'s>(&mut self, items: impl Iterator<Item = &'s str>) {
        self.0.push(b'[');
        for (i, s) in items.enumerate() {
            if i > 0 {
                self.0.push(b',');
            }
            self.str(s);
        }
        self.0.push(b']');
    }

    /// A JSON string: `"` and `\` escaped with a backslash, control
    /// characters as `\b \f \n \r \t` or `\u00XX`, everything else as it
    /// is (as `serde_json` does).
    fn str(&mut self, s: &str) {
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        // Whether any byte of `w` is below 0x20, a quote or a backslash.
        let special = |w: u64| {
            let zero = |v: u64| v.wrapping_sub(LO) & !v & HI;
            (w.wrapping_sub(LO * 0x20) & !w & HI) | zero(w ^ (LO * 0x22)) | zero(w ^ (LO * 0x5c))
                != 0
        };
        let bytes = s.as_bytes();
        self.0.push(b'"');
        let mut clean_from = 0;
        let mut i = 0;
        while i < bytes.len() {
            if let Some(chunk) = bytes[i..].first_chunk::<8>() {
                if !special(u64::from_le_bytes(*chunk)) {
                    i += 8;
                    continue;
                }
            }
            let b = bytes[i];
            let escape: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0x08 => b"\\b",
                0x0c => b"\\f",
                0..=0x1f => b"",
                _ => {
                    i += 1;
                    continue;
                }
            };
            self.0.extend_from_slice(&bytes[clean_from..i]);
            if escape.is_empty() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                self.0.extend_from_slice(b"\\u00");
                self.0.push(HEX[usize::from(b >> 4)]);
                self.0.push(HEX[usize::from(b & 0xf)]);
            } else {
                self.0.extend_from_slice(escape);
            }
            i += 1;
            clean_from = i;
        }
        self.0.extend_from_slice(&bytes[clean_from..]);
        self.0.push(b'"');
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

/// Adds the `object` field to a record written by [`Record::write`] (the
/// last byte of `line` must be that record's closing brace): the object,
/// converted from the engine's value, with what `masks` name removed (JSON
/// pointers; `*` matches any key or index). On an error `line` is as it
/// was.
pub fn append_object(
    line: &mut Vec<u8>,
    object: &Value,
    masks: &[String],
) -> Result<(), serde_json::Error> {
    let mut json = serde_json::to_value(object)?;
    for m in masks {
        mask(&mut json, m);
    }
    let written = serde_json::to_vec(&json)?;
    if line.last() == Some(&b'}') {
        line.pop();
        line.extend_from_slice(b",\"object\":");
        line.extend_from_slice(&written);
        line.push(b'}');
    }
    Ok(())
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
