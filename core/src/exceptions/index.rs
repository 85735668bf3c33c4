//! The exceptions in force, indexed by the policy they except, and the one
//! question a decision asks after evaluation, for each violation only:
//! does a valid, unexpired exception cover this violation of this policy on
//! this object (and, when it names containers, in this container)? A
//! request with no violation asks nothing.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::{validate, Catalogue, Exception, Governance, Problem, Status};

/// The object a violation was found on.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// Its kind (`Deployment`).
    pub kind: &'a str,
    /// Its name (empty for one with only `generateName`).
    pub name: &'a str,
    /// Its namespace (empty for a cluster-scoped object).
    pub namespace: &'a str,
    /// The object, for its labels and to find the container a violation's
    /// path points into (read only when an exception needs them).
    pub object: &'a dyn ObjectView,
}

impl std::fmt::Debug for Target<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("kind", &self.kind)
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// What an exception reads of an object beyond its kind, name and
/// namespace: its labels, and the container a field path points into. The
/// admission path reads the engine's value of the request in place; the
/// audit reads its `serde_json` object.
pub trait ObjectView {
    /// The object's labels.
    fn labels(&self) -> BTreeMap<String, String>;
    /// The name of the container a violation's field path points into
    /// (`spec.template.spec.containers[1].securityContext` → the second
    /// container's name), or `None` when the path is in no container.
    fn container_at(&self, path: &str) -> Option<String>;
}

impl ObjectView for Json {
    fn labels(&self) -> BTreeMap<String, String> {
        self["metadata"]["labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container_at(&self, path: &str) -> Option<String> {
        container_of(self, path).map(str::to_string)
    }
}

impl ObjectView for regorus::Value {
    fn labels(&self) -> BTreeMap<String, String> {
        let labels = &self["metadata"]["labels"];
        labels
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| {
                        Some((
                            k.as_string().ok()?.to_string(),
                            v.as_string().ok()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn container_at(&self, path: &str) -> Option<String> {
        let mut at = self;
        for (field, index) in container_steps(path)? {
            at = &at[field];
            if let Some(i) = index {
                at = at.as_array().ok()?.get(i)?;
            }
        }
        at["name"].as_string().ok().map(|s| s.to_string())
    }
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
    /// Each valid exception's names and namespaces, compiled once (by
    /// index into `all`; `None` for one not in force).
    matchers: Vec<Option<Matcher>>,
    warn_before: i64,
}

/// An exception's `match.names` and `match.namespaces`, compiled.
#[derive(Debug, Clone)]
struct Matcher {
    names: Vec<Glob>,
    namespaces: Vec<Glob>,
}

/// A name pattern where `*` matches any run of characters, compiled to
/// the cheapest test for its shape.
#[derive(Debug, Clone)]
enum Glob {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Other(String),
}

impl Glob {
    fn new(pattern: &str) -> Self {
        match pattern.matches('*').count() {
            0 => Self::Exact(pattern.to_string()),
            1 if pattern.ends_with('*') => Self::Prefix(pattern.trim_end_matches('*').to_string()),
            1 if pattern.starts_with('*') => {
                Self::Suffix(pattern.trim_start_matches('*').to_string())
            }
            _ => Self::Other(pattern.to_string()),
        }
    }

    fn matches(&self, text: &str) -> bool {
        match self {
            Self::Exact(p) => p == text,
            Self::Prefix(p) => text.starts_with(p.as_str()),
            Self::Suffix(p) => text.ends_with(p.as_str()),
            Self::Other(p) => glob(p, text),
        }
    }
}

/// The valid exceptions of one policy whose match covers one object (its
/// kind, namespace, name and labels), in load order: asked once per policy
/// that fired, then per violation only for its container.
#[derive(Debug)]
pub struct Candidates<'s> {
    set: &'s ExceptionSet,
    list: Vec<usize>,
}

impl<'s> Candidates<'s> {
    /// Whether none covers the object.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The exceptions, first loaded first.
    pub fn exceptions(&self) -> impl Iterator<Item = &'s Exception> + '_ {
        self.list.iter().map(|&i| &self.set.all[i].0)
    }

    /// The first that covers a violation at `path` (an exception naming
    /// containers covers only violations inside them).
    pub fn covering(
        &self,
        path: Option<&str>,
        target: &Target<'_>,
        now: i64,
    ) -> Option<Covered<'s>> {
        let mut container: Option<Option<String>> = None;
        let found = self.list.iter().copied().find(|&i| {
            let e = &self.set.all[i].0;
            if e.containers.is_empty() {
                return true;
            }
            let c =
                container.get_or_insert_with(|| path.and_then(|p| target.object.container_at(p)));
            c.as_ref()
                .is_some_and(|c| e.containers.iter().any(|n| n == c))
        })?;
        let e = &self.set.all[found].0;
        let left = e.expires - now;
        Some(Covered {
            exception: e,
            ending_in: (left <= self.set.warn_before).then_some(left),
        })
    }
}

/// The valid exceptions of one policy, by the namespace they cover, so a
/// lookup reads only those that can apply to the object's namespace
/// (a thousand exceptions elsewhere cost nothing).
#[derive(Debug, Clone, Default)]
struct PolicyIndex {
    /// Namespace (`""` for cluster-scoped objects) → its exceptions, by name.
    by_namespace: HashMap<String, NameIndex>,
    /// Exceptions naming a namespace glob (`team-*`), ascending.
    globbed: Vec<usize>,
}

/// Exceptions by the names they cover, so a lookup reads only those whose
/// name pattern can match (a thousand for other objects of the same
/// namespace cost a few hash lookups).
#[derive(Debug, Clone, Default)]
struct NameIndex {
    /// Exact names.
    exact: HashMap<String, Vec<usize>>,
    /// `prefix*` patterns, by prefix.
    prefix: HashMap<String, Vec<usize>>,
    /// The lengths of those prefixes, ascending.
    prefix_lengths: Vec<usize>,
    /// Every other pattern (`*suffix`, `a*b`).
    other: Vec<usize>,
}

impl NameIndex {
    fn add(&mut self, i: usize, names: &[String]) {
        for n in names {
            let list = match Glob::new(n) {
                Glob::Exact(x) => self.exact.entry(x).or_default(),
                Glob::Prefix(p) => {
                    if let Err(at) = self.prefix_lengths.binary_search(&p.len()) {
                        self.prefix_lengths.insert(at, p.len());
                    }
                    self.prefix.entry(p).or_default()
                }
                _ => &mut self.other,
            };
            if list.last() != Some(&i) {
                list.push(i);
            }
        }
    }

    /// Every exception whose name pattern may match `name`.
    fn lookup(&self, name: &str, out: &mut Vec<usize>) {
        out.extend(self.exact.get(name).into_iter().flatten());
        for &len in &self.prefix_lengths {
            if len > name.len() {
                break;
            }
            if let Some(list) = name.get(..len).and_then(|p| self.prefix.get(p)) {
                out.extend(list);
            }
        }
        out.extend(&self.other);
    }
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
        let mut matchers = Vec::with_capacity(all.capacity());
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
            matchers.push((status == Status::Valid).then(|| Matcher {
                names: e.names.iter().map(|n| Glob::new(n)).collect(),
                namespaces: e.namespaces.iter().map(|n| Glob::new(n)).collect(),
            }));
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
                        ix.by_namespace
                            .entry(ns.to_string())
                            .or_default()
                            .add(i, &e.names);
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
            matchers,
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

    /// The valid exceptions of `policy` (its reference: `privileged`,
    /// `Kind/name`) that cover `target` at `now`, whatever the violation.
    pub fn candidates<'s>(&'s self, policy: &str, target: &Target<'_>, now: i64) -> Candidates<'s> {
        let mut list = Vec::new();
        if let Some(ix) = self.by_policy.get(policy) {
            let mut maybe = Vec::new();
            if let Some(names) = ix.by_namespace.get(target.namespace) {
                names.lookup(target.name, &mut maybe);
            }
            maybe.extend(&ix.globbed);
            maybe.sort_unstable();
            maybe.dedup();
            let mut labels: Option<BTreeMap<String, String>> = None;
            for i in maybe {
                if self.covers_object(i, target, now, &mut labels) {
                    list.push(i);
                }
            }
            // Load order: the first loaded wins.
            list.sort_unstable();
        }
        Candidates { set: self, list }
    }

    /// The valid exception, if any, that covers a violation of `policy`
    /// at `path` on `target`, at `now`. The first in load order wins.
    pub fn covering(
        &self,
        policy: &str,
        path: Option<&str>,
        target: &Target<'_>,
        now: i64,
    ) -> Option<Covered<'_>> {
        self.candidates(policy, target, now)
            .covering(path, target, now)
    }

    fn covers_object(
        &self,
        i: usize,
        t: &Target<'_>,
        now: i64,
        labels: &mut Option<BTreeMap<String, String>>,
    ) -> bool {
        let (e, m) = match (&self.all[i].0, &self.matchers[i]) {
            (e, Some(m)) => (e, m),
            _ => return false,
        };
        if e.expires <= now || !e.kinds.iter().any(|k| k == t.kind) {
            return false;
        }
        let in_scope = if t.namespace.is_empty() {
            e.cluster_scoped
        } else {
            m.namespaces.iter().any(|n| n.matches(t.namespace))
        };
        if !in_scope || !m.names.iter().any(|n| n.matches(t.name)) {
            return false;
        }
        match &e.selector {
            Some(sel) => sel.matches(labels.get_or_insert_with(|| t.object.labels())),
            None => true,
        }
    }
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

/// The name of the container a violation's field path points into
/// (`spec.template.spec.containers[1].securityContext` → the second
/// container's name), or `None` when the path is in no container.
pub fn container_of<'o>(object: &'o Json, path: &str) -> Option<&'o str> {
    let mut at = object;
    for (field, index) in container_steps(path)? {
        at = &at[field];
        if let Some(i) = index {
            at = at.get(i)?;
        }
    }
    at["name"].as_str()
}

/// The steps (`field`, `[index]`) from the object to the container the
/// path points into: up to the index of the last container list on it.
fn container_steps(path: &str) -> Option<Vec<(&str, Option<usize>)>> {
    const LISTS: [&str; 3] = ["initContainers[", "ephemeralContainers[", "containers["];
    let start = LISTS
        .iter()
        .filter_map(|l| path.rfind(&format!(".{l}")).map(|i| i + 1))
        .chain(LISTS.iter().filter(|l| path.starts_with(**l)).map(|_| 0))
        .max()?;
    let close = path[start..].find(']')? + start;
    Some(
        path[..close + 1]
            .split('.')
            .map(|step| match step.split_once('[') {
                Some((f, rest)) => (f, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (step, None),
            })
            .collect(),
    )
}
