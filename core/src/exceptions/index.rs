//! The exceptions in force, indexed by the policy they except, and the one
//! question a decision asks after evaluation, for each violation only:
//! does a valid, unexpired exception cover this violation of this policy on
//! this object (and, when it names containers, in this container)? A
//! request with no violation asks nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::{validate, Catalogue, Exception, Governance, Problem, Status};

/// The object a violation was found on.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// Its kind (`Deployment`).
    pub kind: &'a str,
    /// Its name (empty for one with only `generateName`).
    pub name: &'a str,
    /// Its namespace (empty for a cluster-scoped object).
    pub namespace: &'a str,
    /// The object, for its labels and to find the container a violation's
    /// path points into.
    pub object: &'a Json,
}

/// What [`ExceptionSet::report`] says of one exception.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    /// `namespace/name` (or the file of one that did not parse).
    pub exception: String,
    /// Where it was read.
    pub source: String,
    /// Whether it applies.
    pub in_force: bool,
    /// Its status, in words.
    pub text: String,
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A violation an exception covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Covered<'a> {
    /// The exception.
    pub exception: &'a Exception,
    /// Seconds until it ends, when that is within the warning period.
    pub ending_in: Option<i64>,
}

/// Every exception loaded, with its status, and the valid ones indexed.
#[derive(Debug, Clone, Default)]
pub struct ExceptionSet {
    all: Vec<(Exception, Status)>,
    /// Problems of documents that did not even parse: (id or source, problems).
    unreadable: Vec<(String, Vec<Problem>)>,
    /// Policy reference → where its valid exceptions apply.
    by_policy: HashMap<String, PolicyIndex>,
    warn_before: i64,
}

/// The valid exceptions of one policy, by the namespace they cover, so a
/// lookup reads only those that can apply to the object's namespace
/// (a thousand exceptions elsewhere cost nothing).
#[derive(Debug, Clone, Default)]
struct PolicyIndex {
    /// Namespace (`""` for cluster-scoped objects) → indexes into `all`,
    /// ascending.
    by_namespace: HashMap<String, Vec<usize>>,
    /// Exceptions naming a namespace glob (`team-*`), ascending.
    globbed: Vec<usize>,
}

impl ExceptionSet {
    /// No exceptions.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Validates `exceptions` (and keeps `unreadable` ones as invalid) at
    /// `now` against the governance and the live bundle's policies.
    pub fn build(
        exceptions: Vec<Exception>,
        unreadable: Vec<(String, Vec<Problem>)>,
        governance: &Governance,
        catalogue: &Catalogue,
        now: i64,
    ) -> Self {
        let mut all = Vec::with_capacity(exceptions.len());
        let mut by_policy: HashMap<String, PolicyIndex> = HashMap::new();
        // Two exceptions of one name: the second is refused (a typo must not
        // silently replace a reviewed exception).
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        for e in exceptions {
            let mut problems = validate(&e, governance, catalogue, now);
            if let Some(first) = seen.get(&e.id()) {
                problems.push(Problem {
                    field: "metadata.name".to_string(),
                    message: format!("{} is also defined by {first}", e.id()),
                });
            } else {
                seen.insert(e.id(), e.source.clone());
            }
            let status = if !problems.is_empty() {
                Status::Invalid(problems)
            } else if e.expires <= now {
                Status::Expired
            } else {
                Status::Valid
            };
            if status == Status::Valid {
                let i = all.len();
                for p in &e.policies {
                    let ix: &mut PolicyIndex = by_policy.entry(p.clone()).or_default();
                    let mut exact: Vec<&str> = e
                        .namespaces
                        .iter()
                        .filter(|n| !n.contains('*'))
                        .map(String::as_str)
                        .collect();
                    if e.cluster_scoped {
                        exact.push("");
                    }
                    exact.dedup();
                    for ns in exact {
                        let list = ix.by_namespace.entry(ns.to_string()).or_default();
                        if list.last() != Some(&i) {
                            list.push(i);
                        }
                    }
                    if e.namespaces.iter().any(|n| n.contains('*')) && ix.globbed.last() != Some(&i)
                    {
                        ix.globbed.push(i);
                    }
                }
            }
            all.push((e, status));
        }
        Self {
            all,
            unreadable,
            by_policy,
            warn_before: governance.warn_before.as_secs() as i64,
        }
    }

    /// Whether no exception is in force.
    pub fn is_empty(&self) -> bool {
        self.by_policy.is_empty()
    }

    /// Every exception read, with its status when the set was built.
    pub fn all(&self) -> &[(Exception, Status)] {
        &self.all
    }

    /// Documents that did not parse, with their problems.
    pub fn unreadable(&self) -> &[(String, Vec<Problem>)] {
        &self.unreadable
    }

    /// The earliest end of a valid exception after `now`: when decisions
    /// and reports must be made again.
    pub fn next_expiry(&self, now: i64) -> Option<i64> {
        self.all
            .iter()
            .filter(|(e, s)| *s == Status::Valid && e.expires > now)
            .map(|(e, _)| e.expires)
            .min()
    }

    /// How many exceptions read are invalid (including documents that did
    /// not parse).
    pub fn invalid_count(&self) -> usize {
        self.all
            .iter()
            .filter(|(_, s)| matches!(s, Status::Invalid(_)))
            .count()
            + self.unreadable.len()
    }

    /// One line per exception read, as `regent check` and the offline
    /// commands print it: whether it is in force, and if not, why.
    pub fn report(&self) -> Vec<ReportLine> {
        let mut out: Vec<ReportLine> = self
            .all
            .iter()
            .map(|(e, status)| ReportLine {
                exception: e.id(),
                source: e.source.clone(),
                in_force: *status == Status::Valid,
                text: match status {
                    Status::Valid => format!(
                        "valid until {} (owner {}; {})",
                        e.until(),
                        e.owner,
                        e.policies.join(", ")
                    ),
                    Status::Expired => format!("expired on {}: applies to nothing", e.until()),
                    Status::Invalid(p) => format!("invalid, applies to nothing: {}", join(p)),
                },
            })
            .collect();
        out.extend(self.unreadable.iter().map(|(who, p)| ReportLine {
            exception: who.clone(),
            source: who.clone(),
            in_force: false,
            text: format!("invalid, applies to nothing: {}", join(p)),
        }));
        out
    }

    /// The valid exception, if any, that covers a violation of `policy`
    /// (its reference: `privileged`, `Kind/name`) at `path` on `target`, at
    /// `now`. The first in load order wins.
    pub fn covering(
        &self,
        policy: &str,
        path: Option<&str>,
        target: &Target<'_>,
        now: i64,
    ) -> Option<Covered<'_>> {
        let ix = self.by_policy.get(policy)?;
        let mut labels: Option<BTreeMap<String, String>> = None;
        let exact = ix
            .by_namespace
            .get(target.namespace)
            .map(Vec::as_slice)
            .unwrap_or_default();
        // The first in load order wins: the first match of each list, then
        // the earlier of the two.
        let mut first = |list: &[usize]| {
            list.iter().copied().find(|&i| {
                let e = &self.all[i].0;
                e.expires > now && covers(e, target, path, &mut labels)
            })
        };
        let found = match (first(exact), first(&ix.globbed)) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b)?,
        };
        let e = &self.all[found].0;
        let left = e.expires - now;
        Some(Covered {
            exception: e,
            ending_in: (left <= self.warn_before).then_some(left),
        })
    }
}

fn covers(
    e: &Exception,
    t: &Target<'_>,
    path: Option<&str>,
    labels: &mut Option<BTreeMap<String, String>>,
) -> bool {
    if !e.kinds.iter().any(|k| k == t.kind) {
        return false;
    }
    let in_scope = if t.namespace.is_empty() {
        e.cluster_scoped
    } else {
        e.namespaces.iter().any(|n| glob(n, t.namespace))
    };
    if !in_scope || !e.names.iter().any(|n| glob(n, t.name)) {
        return false;
    }
    if let Some(sel) = &e.selector {
        let labels = labels.get_or_insert_with(|| labels_of(t.object));
        if !sel.matches(labels) {
            return false;
        }
    }
    if e.containers.is_empty() {
        return true;
    }
    // Named containers: only a violation inside one of them is covered.
    path.and_then(|p| container_of(t.object, p))
        .is_some_and(|c| e.containers.iter().any(|n| n == c))
}

/// `*` matches any run of characters; everything else itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first)
        || !text[first.len()..].ends_with(last)
        || text.len() < first.len() + last.len()
    {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

fn labels_of(object: &Json) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The name of the container a violation's field path points into
/// (`spec.template.spec.containers[1].securityContext` → the second
/// container's name), or `None` when the path is in no container.
pub fn container_of<'o>(object: &'o Json, path: &str) -> Option<&'o str> {
    const LISTS: [&str; 3] = ["initContainers[", "ephemeralContainers[", "containers["];
    // The last container list on the path, and where its index ends.
    let start = LISTS
        .iter()
        .filter_map(|l| path.rfind(&format!(".{l}")).map(|i| i + 1))
        .chain(LISTS.iter().filter(|l| path.starts_with(**l)).map(|_| 0))
        .max()?;
    let close = path[start..].find(']')? + start;
    let prefix = &path[..close + 1];
    let mut at = object;
    for step in prefix.split('.') {
        let (field, index) = match step.split_once('[') {
            Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (step, None),
        };
        at = &at[field];
        if let Some(i) = index {
            at = at.get(i)?;
        }
    }
    at["name"].as_str()
}
