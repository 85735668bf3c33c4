//! Policy exceptions: a governed way out of a guardrail for named objects,
//! with an owner, a reason and an end date.
//!
//! A `regent.dev/v1alpha1` `PolicyException` (a custom resource, or the
//! same object in a YAML file) names the policies it excepts (native
//! policies by name, Constraints as `Kind/name`, Pod Security controls as
//! `pod_security/<control>`), the objects (kinds and name globs, both
//! required; namespaces; a label selector) and optionally the containers it
//! covers. This module reads one ([`parse`]), decides whether it is valid
//! against the policies of the live bundle and the governance settings
//! ([`validate`]), and keeps the valid ones indexed for the decision
//! ([`ExceptionSet`]).
//!
//! Governed, not trusted: an exception only ever narrows enforcement for
//! the objects it names. It applies only in its own namespace unless it
//! lives in the admin namespace; never past `expires`; never for longer
//! than the maximum duration from its creation; never to a policy that
//! forbids exceptions; and an invalid one applies to nothing (it is
//! reported, with every reason).

mod index;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value as Json;

pub use index::{
    container_of, glob, Candidates, Covered, ExceptionSet, ObjectView, ReportLine, Target,
};

/// The API group of PolicyExceptions.
pub const GROUP: &str = "regent.dev";
/// The kind.
pub const KIND: &str = "PolicyException";
/// The API version the contract is written in.
pub const API_VERSION: &str = "regent.dev/v1alpha1";
/// The annotation (on a Constraint) or setting value (`exceptions:` in a
/// native policy's data) by which a policy refuses exceptions.
pub const FORBIDDEN: &str = "forbidden";
/// The Constraint annotation that refuses exceptions.
pub const CONSTRAINT_ANNOTATION: &str = "regent.dev/exceptions";

/// How exceptions are governed (the server's and the CLI's flags).
#[derive(Debug, Clone)]
pub struct Governance {
    /// The namespace whose exceptions may name other namespaces and
    /// cluster-scoped objects (`--exception-admin-namespace`).
    pub admin_namespace: String,
    /// The longest an exception may last from its creation
    /// (`--exception-max-duration`).
    pub max_duration: Duration,
    /// How long before its end a warning says it is ending
    /// (`--exception-warn-before`).
    pub warn_before: Duration,
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            admin_namespace: "regent-system".to_string(),
            max_duration: Duration::from_secs(90 * 86_400),
            warn_before: Duration::from_secs(14 * 86_400),
        }
    }
}

/// What an exception may name: the policies of the live bundle, and
/// whether each allows exceptions.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// Policy reference (`privileged`, `Kind/name`, `pod_security/host_ports`)
    /// → whether it allows exceptions.
    pub policies: BTreeMap<String, bool>,
}

impl Catalogue {
    /// Adds a policy that allows exceptions unless `forbidden`.
    pub fn add(&mut self, reference: impl Into<String>, forbidden: bool) {
        self.policies.insert(reference.into(), !forbidden);
    }
}

/// A label selector (`matchLabels` and `matchExpressions`), as Kubernetes
/// defines it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Labels that must have these values.
    pub match_labels: BTreeMap<String, String>,
    /// `(key, operator, values)`: `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub match_expressions: Vec<(String, String, Vec<String>)>,
}

impl Selector {
    /// Whether `labels` satisfy the selector.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|(k, op, values)| {
                let value = labels.get(k);
                match op.as_str() {
                    "In" => value.is_some_and(|v| values.contains(v)),
                    "NotIn" => !value.is_some_and(|v| values.contains(v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// One PolicyException, as read.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Where it came from: a file (`exceptions/cni.yaml#2`) or `cluster`.
    pub source: String,
    /// The policies it excepts.
    pub policies: Vec<String>,
    /// The kinds it covers (`match.kinds`).
    pub kinds: Vec<String>,
    /// The names it covers (`match.names`, `prefix*` / `*suffix` globs).
    pub names: Vec<String>,
    /// The namespaces it covers (`match.namespaces`; default its own).
    pub namespaces: Vec<String>,
    /// Whether it covers cluster-scoped objects (an admin exception whose
    /// `match.namespaces` is `[""]`).
    pub cluster_scoped: bool,
    /// `match.labelSelector`, ANDed with the rest.
    pub selector: Option<Selector>,
    /// The containers it covers; empty: the whole object.
    pub containers: Vec<String>,
    /// Who owns it.
    pub owner: String,
    /// Why it exists.
    pub reason: String,
    /// A ticket or link, if given.
    pub ticket: Option<String>,
    /// When it ends (seconds since the epoch).
    pub expires: i64,
    /// `expires` as written.
    pub expires_text: String,
    /// When it was created (`metadata.creationTimestamp`), if known.
    pub created: Option<i64>,
    /// Problems of shape found when it was read (a missing field, a wrong
    /// type): an exception with any is invalid, and says all of them.
    pub problems: Vec<Problem>,
}

impl Exception {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Its end date, `2027-01-31`.
    pub fn until(&self) -> String {
        date_of(self.expires)
    }
}

/// Why an exception is not valid (one problem, with its field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The field (`spec.expires`), or empty for the object.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

fn problem(field: &str, message: impl Into<String>) -> Problem {
    Problem {
        field: field.to_string(),
        message: message.into(),
    }
}

/// Whether a document is a PolicyException (any version of the group: a
/// second version must not be a way around the checks).
pub fn is_exception(doc: &Json) -> bool {
    doc["kind"] == KIND
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.split('/').next() == Some(GROUP))
}

/// Reads a PolicyException object. Every problem of shape (a missing or
/// empty required field, a wrong type, a date that does not parse) is
/// returned; an object with any is invalid.
pub fn parse(doc: &Json, source: &str) -> Result<Exception, Vec<Problem>> {
    let e = read(doc, source);
    if e.problems.is_empty() {
        Ok(e)
    } else {
        Err(e.problems)
    }
}

/// Reads a PolicyException object as far as it goes, keeping its problems
/// of shape in [`Exception::problems`], so that [`validate`] can say every
/// problem at once (shape, governance and policies).
pub fn read(doc: &Json, source: &str) -> Exception {
    let mut problems = Vec::new();
    let meta = &doc["metadata"];
    let spec = &doc["spec"];
    let text = |v: &Json, field: &str, problems: &mut Vec<Problem>| -> String {
        match v {
            Json::String(s) if !s.trim().is_empty() => s.clone(),
            Json::Null => {
                problems.push(problem(field, "is required"));
                String::new()
            }
            Json::String(_) => {
                problems.push(problem(field, "must not be empty"));
                String::new()
            }
            other => {
                problems.push(problem(field, format!("must be a string, got {other}")));
                String::new()
            }
        }
    };
    let list =
        |v: &Json, field: &str, required: bool, problems: &mut Vec<Problem>| -> Vec<String> {
            match v {
                Json::Null if !required => Vec::new(),
                Json::Null => {
                    problems.push(problem(field, "is required"));
                    Vec::new()
                }
                Json::Array(items) => {
                    let mut out = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        match item.as_str() {
                            Some(s) => out.push(s.to_string()),
                            None => problems.push(problem(
                                &format!("{field}[{i}]"),
                                format!("must be a string, got {item}"),
                            )),
                        }
                    }
                    if required && out.is_empty() && items.is_empty() {
                        problems.push(problem(field, "must not be empty"));
                    }
                    out
                }
                other => {
                    problems.push(problem(
                        field,
                        format!("must be a list of strings, got {other}"),
                    ));
                    Vec::new()
                }
            }
        };
    if !is_exception(doc) {
        problems.push(problem(
            "",
            format!(
                "not a {API_VERSION} {KIND} (apiVersion {}, kind {})",
                doc["apiVersion"], doc["kind"]
            ),
        ));
    }
    let name = text(&meta["name"], "metadata.name", &mut problems);
    let namespace = text(&meta["namespace"], "metadata.namespace", &mut problems);
    if !spec.is_object() {
        problems.push(problem("spec", "is required"));
    }
    let policies = list(&spec["policies"], "spec.policies", true, &mut problems);
    let m = &spec["match"];
    if !m.is_object() {
        problems.push(problem("spec.match", "is required (kinds and names)"));
    }
    let kinds = list(&m["kinds"], "spec.match.kinds", true, &mut problems);
    let names = list(&m["names"], "spec.match.names", true, &mut problems);
    let namespaces = list(
        &m["namespaces"],
        "spec.match.namespaces",
        false,
        &mut problems,
    );
    let selector = match &m["labelSelector"] {
        Json::Null => None,
        s => match parse_selector(s) {
            Ok(sel) => Some(sel),
            Err(p) => {
                problems.push(p);
                None
            }
        },
    };
    let containers = list(&spec["containers"], "spec.containers", false, &mut problems);
    let owner = text(&spec["owner"], "spec.owner", &mut problems);
    let reason = text(&spec["reason"], "spec.reason", &mut problems);
    let ticket = match &spec["ticket"] {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => {
            problems.push(problem(
                "spec.ticket",
                format!("must be a string, got {other}"),
            ));
            None
        }
    };
    let expires_text = text(&spec["expires"], "spec.expires", &mut problems);
    let expires = if expires_text.is_empty() {
        0
    } else {
        match parse_time(&expires_text) {
            Some(t) => t,
            None => {
                problems.push(problem(
                    "spec.expires",
                    format!("{expires_text:?} is not an RFC 3339 time (2027-01-31T00:00:00Z)"),
                ));
                0
            }
        }
    };
    let created = meta["creationTimestamp"].as_str().and_then(parse_time);
    for key in spec.as_object().into_iter().flat_map(|o| o.keys()) {
        const KNOWN: [&str; 7] = [
            "policies",
            "match",
            "containers",
            "owner",
            "reason",
            "ticket",
            "expires",
        ];
        if !KNOWN.contains(&key.as_str()) {
            problems.push(problem(
                &format!("spec.{key}"),
                format!("is not a field of a {KIND} ({})", KNOWN.join(", ")),
            ));
        }
    }
    for key in m.as_object().into_iter().flat_map(|o| o.keys()) {
        const KNOWN: [&str; 4] = ["kinds", "names", "namespaces", "labelSelector"];
        if !KNOWN.contains(&key.as_str()) {
            problems.push(problem(
                &format!("spec.match.{key}"),
                format!("is not a field of match ({})", KNOWN.join(", ")),
            ));
        }
    }
    let cluster_scoped = namespaces.iter().any(String::is_empty);
    let namespaces = if namespaces.is_empty() {
        vec![namespace.clone()]
    } else {
        namespaces.into_iter().filter(|n| !n.is_empty()).collect()
    };
    Exception {
        namespace,
        name,
        source: source.to_string(),
        policies,
        kinds,
        names,
        namespaces,
        cluster_scoped,
        selector,
        containers,
        owner,
        reason,
        ticket,
        expires,
        expires_text,
        created,
        problems,
    }
}

fn parse_selector(s: &Json) -> Result<Selector, Problem> {
    let field = "spec.match.labelSelector";
    let Json::Object(o) = s else {
        return Err(problem(field, format!("must be a mapping, got {s}")));
    };
    let mut sel = Selector::default();
    for key in o.keys() {
        if key != "matchLabels" && key != "matchExpressions" {
            return Err(problem(
                &format!("{field}.{key}"),
                "is not a field of a label selector (matchLabels, matchExpressions)",
            ));
        }
    }
    if let Some(labels) = o.get("matchLabels") {
        let Json::Object(labels) = labels else {
            return Err(problem(
                &format!("{field}.matchLabels"),
                "must be a mapping of strings",
            ));
        };
        for (k, v) in labels {
            let Some(v) = v.as_str() else {
                return Err(problem(
                    &format!("{field}.matchLabels.{k}"),
                    "must be a string",
                ));
            };
            sel.match_labels.insert(k.clone(), v.to_string());
        }
    }
    if let Some(exprs) = o.get("matchExpressions") {
        let Json::Array(exprs) = exprs else {
            return Err(problem(
                &format!("{field}.matchExpressions"),
                "must be a list",
            ));
        };
        for (i, e) in exprs.iter().enumerate() {
            let at = format!("{field}.matchExpressions[{i}]");
            let key = e["key"]
                .as_str()
                .ok_or_else(|| problem(&at, "needs a key"))?;
            let op = e["operator"].as_str().unwrap_or_default();
            if !["In", "NotIn", "Exists", "DoesNotExist"].contains(&op) {
                return Err(problem(
                    &format!("{at}.operator"),
                    format!("{op:?} is not In, NotIn, Exists or DoesNotExist"),
                ));
            }
            let values: Vec<String> = e["values"]
                .as_array()
                .map(|v| {
                    v.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            sel.match_expressions
                .push((key.to_string(), op.to_string(), values));
        }
    }
    Ok(sel)
}

/// Checks a parsed exception against the governance and the policies it may
/// name, at `now` (seconds since the epoch): every problem that makes it
/// apply to nothing. An expired exception is not invalid (it ended), but
/// does not apply either: see [`Status`].
pub fn validate(
    e: &Exception,
    governance: &Governance,
    catalogue: &Catalogue,
    now: i64,
) -> Vec<Problem> {
    let mut problems = e.problems.clone();
    let admin = e.namespace == governance.admin_namespace;
    if !admin {
        for ns in &e.namespaces {
            if *ns != e.namespace {
                problems.push(problem(
                    "spec.match.namespaces",
                    format!(
                        "{ns:?} is not this exception's namespace: an exception in {} covers objects of {} only (exceptions for other namespaces live in {})",
                        e.namespace, e.namespace, governance.admin_namespace
                    ),
                ));
            }
        }
        if e.cluster_scoped {
            problems.push(problem(
                "spec.match.namespaces",
                format!(
                    "cluster-scoped objects may be excepted only from {}",
                    governance.admin_namespace
                ),
            ));
        }
    }
    for (i, n) in e.names.iter().enumerate() {
        if n.trim_matches('*').is_empty() {
            problems.push(problem(
                &format!("spec.match.names[{i}]"),
                format!("{n:?} names every object: an exception names the objects it is for"),
            ));
        }
    }
    for (i, k) in e.kinds.iter().enumerate() {
        if k == "*" || k.is_empty() {
            problems.push(problem(
                &format!("spec.match.kinds[{i}]"),
                "name the kinds (Pod, Deployment, ...): \"*\" is not allowed",
            ));
        }
    }
    for (i, p) in e.policies.iter().enumerate() {
        match catalogue.policies.get(p) {
            None => {
                let hint = crate::runtime::check::closest(
                    p,
                    catalogue.policies.keys().map(String::as_str),
                );
                problems.push(problem(
                    &format!("spec.policies[{i}]"),
                    format!(
                        "{p:?} is no policy of the live bundle{}",
                        hint.map(|h| format!(" (did you mean {h}?)"))
                            .unwrap_or_default()
                    ),
                ));
            }
            Some(false) => problems.push(problem(
                &format!("spec.policies[{i}]"),
                format!("{p} does not allow exceptions"),
            )),
            Some(true) => {}
        }
    }
    // From its creation (a clock ahead of ours counts as now); a file has
    // no creation time, so its duration counts from now.
    let start = e.created.map_or(now, |c| c.min(now));
    let max = governance.max_duration.as_secs() as i64;
    if e.expires > 0 && e.expires - start > max {
        let days = (e.expires - start + 86_399) / 86_400;
        problems.push(problem(
            "spec.expires",
            format!(
                "{} is {days} days away; the maximum is {}",
                date_of(e.expires),
                duration_text(governance.max_duration)
            ),
        ));
    }
    problems
}

/// What an exception is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// It applies (until its end).
    Valid,
    /// It ended; it applies to nothing.
    Expired,
    /// It applies to nothing, and why.
    Invalid(Vec<Problem>),
}

impl Status {
    /// `valid`, `expired` or `invalid` (metrics, printer columns).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Expired => "expired",
            Self::Invalid(_) => "invalid",
        }
    }
}

/// One PolicyException document: parsed, or its description and problems.
pub type ParsedDocument = Result<Exception, (String, Vec<Problem>)>;

/// Reads the PolicyExceptions of a YAML or JSON text (several documents, a
/// `List`); other documents are left out. Each is parsed; those that do not
/// parse are returned with their problems.
pub fn read_documents(label: &str, text: &str) -> Result<Vec<ParsedDocument>, String> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Json::deserialize(de).map_err(|e| format!("{label}: document {}: {e}", i + 1))?;
        match &v {
            Json::Null => {}
            Json::Object(_) if v["kind"].as_str().is_some_and(|k| k.ends_with("List")) => {
                docs.extend(v["items"].as_array().cloned().unwrap_or_default())
            }
            _ => docs.push(v),
        }
    }
    Ok(docs
        .iter()
        .enumerate()
        .filter(|(_, d)| is_exception(d))
        .map(|(i, d)| {
            let source = format!("{label}#{}", i + 1);
            Ok(read(d, &source))
        })
        .collect())
}

/// `namespace/name` of a document, or its source when it has none.
pub fn describe_doc(d: &Json, source: &str) -> String {
    match (
        d["metadata"]["namespace"].as_str(),
        d["metadata"]["name"].as_str(),
    ) {
        (Some(ns), Some(n)) => format!("{ns}/{n}"),
        _ => source.to_string(),
    }
}

/// Seconds since the epoch of an RFC 3339 time.
pub fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.timestamp())
}

/// `YYYY-MM-DD` of a time.
pub fn date_of(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a time.
pub fn date_time_of(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default()
}

/// Now, in seconds since the epoch.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How long until an exception ends, in words: `9 days`, `5 hours`, `1
/// minute`, `30 seconds` (whole units, rounded down, never below 1 second).
pub fn time_left_text(seconds: i64) -> String {
    let (n, unit) = match seconds.max(1) {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s if s >= 60 => (s / 60, "minute"),
        s => (s, "second"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// `90d`, `36h`, `10m`, `5s`: a duration as the flags write it.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    if s > 0 && s.is_multiple_of(86_400) {
        format!("{}d", s / 86_400)
    } else if s > 0 && s.is_multiple_of(3600) {
        format!("{}h", s / 3600)
    } else if s > 0 && s.is_multiple_of(60) {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests;
