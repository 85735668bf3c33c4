//! Audit reports: one `PolicyReport` (namespaced objects) or
//! `ClusterPolicyReport` (cluster-scoped objects) per audited resource, in
//! `wgpolicyk8s.io/v1alpha2` (the CRDs Kyverno and Kubewarden ship, with
//! `source` on each result and severities critical/high/medium/low/info) or
//! OpenReports' `openreports.io/v1alpha1` `Report`/`ClusterReport` (the same
//! result fields, and `source` at the top).
//!
//! A report is named after its resource's UID, scoped to it, and owned by
//! it (an `ownerReference`), so the API server's garbage collector deletes
//! it with the resource. Its labels carry `app.kubernetes.io/managed-by:
//! regent`, the bundle revision that produced its content, and a hash of that
//! content (timestamps and revision excluded): audit writes a report only
//! when the hash changes. Building one is pure: the offline `regent audit
//! -o yaml` and the in-cluster audit write the same objects.

use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use regent_core::outcome::{AuditOutcome, AuditResult};

/// The label every report carries.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "regent");
/// The label with the bundle revision that produced a report's content.
pub const REVISION_LABEL: &str = "regent.dev/bundle-revision";
/// The label with the hash of a report's content.
pub const HASH_LABEL: &str = "regent.dev/results-hash";
/// `source` of every result.
pub const SOURCE: &str = "regent";

/// Which report resources are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ReportFormat {
    /// `wgpolicyk8s.io/v1alpha2` PolicyReport and ClusterPolicyReport.
    #[default]
    #[value(name = "wgpolicyk8s")]
    Wgpolicy,
    /// `openreports.io/v1alpha1` Report and ClusterReport.
    Openreports,
}

impl ReportFormat {
    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            Self::Wgpolicy => "wgpolicyk8s.io",
            Self::Openreports => "openreports.io",
        }
    }

    /// The API version.
    pub fn version(self) -> &'static str {
        match self {
            Self::Wgpolicy => "v1alpha2",
            Self::Openreports => "v1alpha1",
        }
    }

    /// `group/version`.
    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }

    /// The kind for a namespaced or a cluster-scoped resource.
    pub fn kind(self, namespaced: bool) -> &'static str {
        match (self, namespaced) {
            (Self::Wgpolicy, true) => "PolicyReport",
            (Self::Wgpolicy, false) => "ClusterPolicyReport",
            (Self::Openreports, true) => "Report",
            (Self::Openreports, false) => "ClusterReport",
        }
    }

    /// The resource (plural) for a namespaced or a cluster-scoped resource.
    pub fn plural(self, namespaced: bool) -> &'static str {
        match (self, namespaced) {
            (Self::Wgpolicy, true) => "policyreports",
            (Self::Wgpolicy, false) => "clusterpolicyreports",
            (Self::Openreports, true) => "reports",
            (Self::Openreports, false) => "clusterreports",
        }
    }
}

/// Which results a report lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ReportResults {
    /// Only resources with a non-pass result get a report, and pass results
    /// are counted in its summary but not listed.
    #[default]
    Failing,
    /// Every audited resource gets a report listing every result.
    All,
}

/// The resource a report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// The namespace; `None` for a cluster-scoped resource.
    pub namespace: Option<String>,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`, when the object has one (objects read from a cluster
    /// do; manifests from a repository do not).
    pub uid: Option<String>,
}

impl Subject {
    /// The subject of an object; `None` without apiVersion, kind or name.
    ///
    /// An object with only `generateName` (a Helm hook, an Argo CD sync
    /// Job: its name is made when it is created) is named
    /// `<generateName>*`.
    pub fn of(object: &Json) -> Option<Self> {
        let text = |v: &Json| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let meta = &object["metadata"];
        Some(Self {
            api_version: text(&object["apiVersion"])?,
            kind: text(&object["kind"])?,
            namespace: text(&meta["namespace"]),
            name: text(&meta["name"])
                .or_else(|| text(&meta["generateName"]).map(|g| format!("{g}*")))?,
            uid: text(&meta["uid"]),
        })
    }

    /// `Kind namespace/name` for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }

    /// The report's name: the UID, or for an object without one a name
    /// derived from what it is (`regent-<hash>`).
    pub fn report_name(&self) -> String {
        match &self.uid {
            Some(uid) => uid.clone(),
            None => format!(
                "regent-{}",
                short_hash(&[
                    &self.api_version,
                    &self.kind,
                    self.namespace.as_deref().unwrap_or(""),
                    &self.name
                ])
            ),
        }
    }
}

/// How reports are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportOptions {
    /// Which resources.
    pub format: ReportFormat,
    /// Which results.
    pub results: ReportResults,
}

/// One report, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (`None`: a cluster report).
    pub namespace: Option<String>,
    /// The hash of its content (also its [`HASH_LABEL`]).
    pub hash: String,
    /// The whole object.
    pub body: Json,
}

/// Counts of results by outcome.
pub fn summary(results: &[AuditResult]) -> [usize; 5] {
    let mut counts = [0usize; 5];
    for r in results {
        let as_reported = match r.result {
            AuditOutcome::Mutate => AuditOutcome::Pass,
            other => other,
        };
        if let Some(i) = AuditOutcome::ALL.iter().position(|o| *o == as_reported) {
            counts[i] += 1;
        }
    }
    counts
}

/// The hash of a report's content: the subject and every result's policy,
/// rule, outcome, enforcement, message, path, severity and category, in
/// order; not timestamps, not the bundle revision.
pub fn content_hash(subject: &Subject, options: ReportOptions, results: &[AuditResult]) -> String {
    let mut h = Sha256::new();
    for part in [
        options.format.api_version().as_str(),
        match options.results {
            ReportResults::Failing => "failing",
            ReportResults::All => "all",
        },
        &subject.api_version,
        &subject.kind,
        subject.namespace.as_deref().unwrap_or(""),
        &subject.name,
        subject.uid.as_deref().unwrap_or(""),
    ] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    for r in results {
        for part in [
            r.policy.as_str(),
            &r.rule,
            r.result.as_str(),
            r.enforcement.as_str(),
            &r.message,
            r.path.as_deref().unwrap_or(""),
            r.severity.map(|s| s.as_str()).unwrap_or(""),
            r.category.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update([1]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Sorts results the way reports list them: failures first, then warnings,
/// errors, skips and passes; by policy and message within each.
pub fn sort(results: &mut [AuditResult]) {
    let rank = |o: AuditOutcome| match o {
        AuditOutcome::Fail => 0,
        AuditOutcome::Warn => 1,
        AuditOutcome::Error => 2,
        AuditOutcome::Skip => 3,
        AuditOutcome::Mutate => 4,
        AuditOutcome::Pass => 5,
    };
    results.sort_by(|a, b| {
        (rank(a.result), &a.policy, &a.rule, &a.message).cmp(&(
            rank(b.result),
            &b.policy,
            &b.rule,
            &b.message,
        ))
    });
}

/// The report for one resource, or `None` when, with
/// [`ReportResults::Failing`], every result passed (the resource needs no
/// report; an existing one is deleted). `results` must be sorted
/// ([`sort`]); `revision` is the bundle revision; `now` the time, in
/// seconds since the epoch, stamped on each result.
pub fn build(
    subject: &Subject,
    results: &[AuditResult],
    options: ReportOptions,
    revision: &str,
    now: i64,
) -> Option<Report> {
    // A would-be mutation is drift, not a failure: like a pass it is
    // counted and, with every result asked for, listed.
    let quiet = |o: AuditOutcome| matches!(o, AuditOutcome::Pass | AuditOutcome::Mutate);
    let failing = results.iter().any(|r| !quiet(r.result));
    if options.results == ReportResults::Failing && !failing {
        return None;
    }
    let hash = content_hash(subject, options, results);
    let counts = summary(results);
    let namespaced = subject.namespace.is_some();
    let listed = results
        .iter()
        .filter(|r| options.results == ReportResults::All || !quiet(r.result));
    let entries: Vec<Json> = listed
        .map(|r| {
            let mut properties = Map::new();
            if r.result != AuditOutcome::Mutate {
                properties.insert("enforcement".into(), json!(r.enforcement.as_str()));
            }
            if let Some(path) = &r.path {
                properties.insert("path".into(), json!(path));
            }
            if r.result == AuditOutcome::Mutate {
                properties.insert("mutation".into(), json!("would-mutate"));
            }
            for (k, v) in &r.properties {
                properties.insert(k.clone(), json!(v));
            }
            properties.insert("bundle-revision".into(), json!(revision));
            properties.insert(
                "resultID".into(),
                json!(short_hash(&[
                    &r.policy,
                    &r.rule,
                    r.result.as_str(),
                    &r.message,
                    r.path.as_deref().unwrap_or("")
                ])),
            );
            let mut e = Map::new();
            e.insert("source".into(), json!(SOURCE));
            e.insert("policy".into(), json!(r.policy));
            e.insert("rule".into(), json!(r.rule));
            e.insert("result".into(), json!(r.result.report_result()));
            if !r.message.is_empty() {
                e.insert("message".into(), json!(r.message));
            }
            if let Some(s) = r.severity {
                e.insert("severity".into(), json!(s.as_str()));
            }
            if let Some(c) = &r.category {
                e.insert("category".into(), json!(c));
            }
            e.insert("timestamp".into(), json!({"seconds": now, "nanos": 0}));
            e.insert("scored".into(), json!(true));
            e.insert("properties".into(), Json::Object(properties));
            Json::Object(e)
        })
        .collect();
    let name = subject.report_name();
    let mut metadata = json!({
        "name": name,
        "labels": {
            MANAGED_BY.0: MANAGED_BY.1,
            REVISION_LABEL: revision,
            HASH_LABEL: hash,
        },
    });
    if let Some(ns) = &subject.namespace {
        metadata["namespace"] = json!(ns);
    }
    let mut scope = json!({
        "apiVersion": subject.api_version,
        "kind": subject.kind,
        "name": subject.name,
    });
    if let Some(ns) = &subject.namespace {
        scope["namespace"] = json!(ns);
    }
    if let Some(uid) = &subject.uid {
        scope["uid"] = json!(uid);
        metadata["ownerReferences"] = json!([{
            "apiVersion": subject.api_version,
            "kind": subject.kind,
            "name": subject.name,
            "uid": uid,
        }]);
    }
    let mut body = json!({
        "apiVersion": options.format.api_version(),
        "kind": options.format.kind(namespaced),
        "metadata": metadata,
    });
    if options.format == ReportFormat::Openreports {
        body["source"] = json!(SOURCE);
    }
    body["scope"] = scope;
    body["summary"] = json!({
        "pass": counts[0], "fail": counts[1], "warn": counts[2], "skip": counts[3], "error": counts[4],
    });
    body["results"] = Json::Array(entries);
    Some(Report {
        name,
        namespace: subject.namespace.clone(),
        hash,
        body,
    })
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use regent_core::outcome::{Enforcement, Severity};

    fn result(policy: &str, outcome: AuditOutcome, message: &str) -> AuditResult {
        AuditResult {
            policy: policy.into(),
            rule: "violation".into(),
            result: outcome,
            enforcement: Enforcement::Deny,
            message: message.into(),
            path: None,
            severity: Some(Severity::High),
            category: Some("Pod Security".into()),
            properties: Default::default(),
        }
    }

    fn pod() -> Json {
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "shop", "uid": "1f2e"}})
    }

    #[test]
    fn a_would_be_mutation_is_listed_as_a_pass_and_makes_no_report_alone() {
        let subject = Subject::of(&pod()).unwrap();
        let mutate = result("Assign/x", AuditOutcome::Mutate, "[Assign/x] would change");
        let failing = ReportOptions::default();
        assert!(build(&subject, std::slice::from_ref(&mutate), failing, "r", 1).is_none());
        let all = ReportOptions {
            results: ReportResults::All,
            ..ReportOptions::default()
        };
        let r = build(&subject, std::slice::from_ref(&mutate), all, "r", 1).unwrap();
        let entry = &r.body["results"][0];
        assert_eq!(entry["result"], "pass");
        assert_eq!(entry["properties"]["mutation"], "would-mutate");
        assert!(entry["properties"].get("enforcement").is_none());
        assert_eq!(r.body["summary"]["pass"], 1);
        // Next to a failure, a failing-only report lists the failure alone.
        let mut results = vec![
            mutate,
            result("privileged", AuditOutcome::Fail, "[privileged] x."),
        ];
        sort(&mut results);
        let r = build(&subject, &results, failing, "r", 1).unwrap();
        let listed: Vec<&str> = r.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["policy"].as_str().unwrap())
            .collect();
        assert_eq!(listed, ["privileged"]);
    }

    #[test]
    fn one_report_per_resource_named_scoped_and_owned_by_it() {
        let subject = Subject::of(&pod()).unwrap();
        let mut results = vec![
            result("image_tag", AuditOutcome::Pass, ""),
            result("privileged", AuditOutcome::Fail, "[privileged] x."),
        ];
        sort(&mut results);
        let r = build(&subject, &results, ReportOptions::default(), "rev1", 7).unwrap();
        assert_eq!(r.name, "1f2e");
        let b = &r.body;
        assert_eq!(b["apiVersion"], "wgpolicyk8s.io/v1alpha2");
        assert_eq!(b["kind"], "PolicyReport");
        assert_eq!(b["metadata"]["namespace"], "shop");
        assert_eq!(b["metadata"]["ownerReferences"][0]["uid"], "1f2e");
        assert_eq!(b["metadata"]["labels"][HASH_LABEL], r.hash.as_str());
        assert_eq!(b["scope"]["uid"], "1f2e");
        // Pass results are counted, not listed.
        assert_eq!(b["summary"]["pass"], 1);
        assert_eq!(b["summary"]["fail"], 1);
        assert_eq!(b["results"].as_array().unwrap().len(), 1);
        let e = &b["results"][0];
        assert_eq!(e["source"], "regent");
        assert_eq!(e["result"], "fail");
        assert_eq!(e["severity"], "high");
        assert_eq!(e["timestamp"], json!({"seconds": 7, "nanos": 0}));
        assert_eq!(e["scored"], true);
        assert_eq!(e["properties"]["enforcement"], "deny");
        assert_eq!(e["properties"]["bundle-revision"], "rev1");
        assert!(e["properties"]["resultID"].is_string());
    }

    #[test]
    fn the_hash_ignores_time_and_revision_but_not_content() {
        let subject = Subject::of(&pod()).unwrap();
        let results = vec![result("privileged", AuditOutcome::Fail, "[privileged] x.")];
        let a = build(&subject, &results, ReportOptions::default(), "rev1", 1).unwrap();
        let b = build(&subject, &results, ReportOptions::default(), "rev2", 2).unwrap();
        assert_eq!(a.hash, b.hash);
        let other = vec![result("privileged", AuditOutcome::Fail, "[privileged] y.")];
        let c = build(&subject, &other, ReportOptions::default(), "rev1", 1).unwrap();
        assert_ne!(a.hash, c.hash);
    }

    #[test]
    fn all_passing_resources_get_no_report_unless_asked() {
        let subject = Subject::of(&pod()).unwrap();
        let results = vec![result("image_tag", AuditOutcome::Pass, "")];
        assert!(build(&subject, &results, ReportOptions::default(), "r", 1).is_none());
        let all = ReportOptions {
            results: ReportResults::All,
            ..ReportOptions::default()
        };
        let r = build(&subject, &results, all, "r", 1).unwrap();
        assert_eq!(r.body["results"][0]["result"], "pass");
    }

    #[test]
    fn cluster_scoped_objects_and_openreports() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        let subject = Subject::of(&ns).unwrap();
        let results = vec![result("p", AuditOutcome::Warn, "[p] w.")];
        let options = ReportOptions {
            format: ReportFormat::Openreports,
            ..ReportOptions::default()
        };
        let r = build(&subject, &results, options, "r", 1).unwrap();
        assert_eq!(r.body["apiVersion"], "openreports.io/v1alpha1");
        assert_eq!(r.body["kind"], "ClusterReport");
        assert_eq!(r.body["source"], "regent");
        assert!(r.body["metadata"]["namespace"].is_null());
        // No uid (a manifest from a repository): a derived name, no owner.
        assert!(r.name.starts_with("regent-"));
        assert!(r.body["metadata"]["ownerReferences"].is_null());
    }
}
