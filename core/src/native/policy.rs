//! The policy model: which packages of a bundle are policies, how each one is
//! configured by data (enforcement, scope, order), and the generated entry
//! module that evaluates every applicable policy in one pass.
//!
//! A validating policy is a package `validate.<name>` with a `violation` rule;
//! a mutating policy is a package `mutate.<name>` with a `patch` rule. Its
//! settings live in the data document at the same path
//! (`data.validate.<name>.enforcement`, `.match`, `.order`, `.parameters`), so a
//! policy can be scoped, downgraded or switched off by data alone; reading
//! them strictly is [`crate::native::settings`]' job. Packages
//! under `regent` are reserved for the built-in library and the generated entry
//! points; no bundle may define them.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value as Json;

pub use crate::outcome::{Enforcement, Severity};

/// The reserved package root: the helper library and the entry module.
pub const RESERVED_ROOT: &str = "regent";

/// The one package under the reserved root a bundle may declare
/// (`regent.log`): its `mask` rule names what the decision log leaves out
/// of the objects it records.
pub const LOG_PACKAGE: &str = "log";
/// The rule the server evaluates for validation.
pub const VALIDATE_ENTRY: &str = "data.regent.main.validate";
/// The rule the server evaluates for mutation.
pub const MUTATE_ENTRY: &str = "data.regent.main.mutate";

/// Kinds that carry a pod spec; the default scope of every policy.
pub const POD_KINDS: [&str; 8] = [
    "Pod",
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
    "ReplicationController",
];

/// Errors in a policy's declaration or settings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// A module declares a reserved package.
    #[error("{path}: package {package} is reserved for regent's built-in library; bundle modules may not define data.regent.* (but data.regent.log, the decision log's mask)")]
    Reserved {
        /// The module.
        path: String,
        /// The package it declared.
        package: String,
    },
    /// A policy package name is not a single lower-case identifier.
    #[error("{path}: package {package}: a policy package is validate.<name> or mutate.<name>, with <name> of a-z, 0-9 and _")]
    BadName {
        /// The module.
        path: String,
        /// The package it declared.
        package: String,
    },
    /// A ConfigMap module declares something other than a policy package.
    #[error("{path}: package {package}: modules from ConfigMaps may only declare policy packages (validate.<name> or mutate.<name>)")]
    NotAPolicy {
        /// The module.
        path: String,
        /// The package it declared.
        package: String,
    },
    /// A policy does not define its decision rule.
    #[error("{path}: policy {package} defines no `{rule}` rule")]
    MissingRule {
        /// The module.
        path: String,
        /// The package.
        package: String,
        /// The rule that is missing.
        rule: &'static str,
    },
}

/// Validating or mutating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    /// Package `validate.<name>`, rule `violation`.
    Validate,
    /// Package `mutate.<name>`, rule `patch`.
    Mutate,
}

impl PolicyKind {
    /// The package root, `validate` or `mutate`.
    pub fn root(self) -> &'static str {
        match self {
            Self::Validate => "validate",
            Self::Mutate => "mutate",
        }
    }

    /// The rule that holds the policy's result.
    pub fn rule(self) -> &'static str {
        match self {
            Self::Validate => "violation",
            Self::Mutate => "patch",
        }
    }
}

/// Which requests a policy looks at. Empty lists mean "any"; `kinds` defaults
/// to the pod-bearing kinds and `operations` to CREATE and UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    /// Kinds (e.g. `Deployment`); `*` for every kind.
    #[serde(default = "default_kinds")]
    pub kinds: Vec<String>,
    /// Operations: CREATE, UPDATE, DELETE, CONNECT; `*` for all.
    #[serde(default = "default_operations")]
    pub operations: Vec<String>,
    /// Namespaces the policy is limited to; `prefix*` and `*suffix` globs.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespaces the policy never looks at; same globs.
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
}

impl Default for Match {
    fn default() -> Self {
        Self {
            kinds: default_kinds(),
            operations: default_operations(),
            namespaces: Vec::new(),
            excluded_namespaces: Vec::new(),
        }
    }
}

fn default_kinds() -> Vec<String> {
    POD_KINDS.iter().map(|k| k.to_string()).collect()
}

fn default_operations() -> Vec<String> {
    vec!["CREATE".to_string(), "UPDATE".to_string()]
}

impl Match {
    /// Whether a namespace passes `namespaces` and `excludedNamespaces`, with
    /// the globs the generated entry module uses.
    pub fn matches_namespace(&self, namespace: &str) -> bool {
        let glob = |pattern: &str| {
            if let Some(prefix) = pattern.strip_suffix('*') {
                namespace.starts_with(prefix)
            } else if let Some(suffix) = pattern.strip_prefix('*') {
                namespace.ends_with(suffix)
            } else {
                namespace == pattern
            }
        };
        (self.namespaces.is_empty() || self.namespaces.iter().any(|p| glob(p)))
            && !self.excluded_namespaces.iter().any(|p| glob(p))
    }

    /// Whether the kind is one this policy looks at.
    pub fn matches_kind(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == "*" || k == kind)
    }

    /// Whether the policy looks at CREATE requests (audit reviews objects as
    /// if they were being created).
    pub fn matches_create(&self) -> bool {
        self.operations.iter().any(|o| o == "*" || o == "CREATE")
    }

    /// True when a request of this kind and operation could match (namespace
    /// aside). The server skips evaluation when no policy could; the exact
    /// decision, namespaces included, is made in the generated Rego.
    pub fn could_apply(&self, kind: &str, operation: &str) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        any(&self.kinds, kind) && any(&self.operations, operation)
    }
}

/// One policy of a compiled bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The name (last package component), as shown to users.
    pub name: String,
    /// Validating or mutating.
    pub kind: PolicyKind,
    /// What its violations do (validating policies).
    pub enforcement: Enforcement,
    /// Which requests it looks at.
    pub matching: Match,
    /// Mutation order (ascending, then by name); 100 when not set.
    pub order: i64,
    /// The module that declared it.
    pub source: String,
    /// How serious a violation is (reports), when the settings say.
    pub severity: Option<Severity>,
    /// What the policy is about (reports), when the settings say.
    pub category: Option<String>,
    /// Why audit cannot judge this policy on an object at rest, if it
    /// cannot: it reads what only an admission request has.
    pub audit_skip: Option<String>,
    /// A mutating policy that defines `warning`: what it says (as
    /// `[policy] text` warnings) when its patch changes an object.
    pub warns: bool,
    /// It refuses policy exceptions (`exceptions: forbidden` in its settings).
    pub exceptions_forbidden: bool,
    /// The controls it reports violations by (its `control_names` rule,
    /// read once at load), each of which an exception may name on its own
    /// (`<policy>/<control>`).
    pub controls: Vec<String>,
    /// It defines `control_names`.
    pub has_controls: bool,
}

impl Policy {
    /// A policy with the default settings: `deny`, the default scope,
    /// order 100 ([`crate::native::settings`] reads the real ones).
    pub fn new(kind: PolicyKind, name: &str, source: &str) -> Self {
        Self {
            name: name.to_string(),
            kind,
            enforcement: Enforcement::Deny,
            matching: Match::default(),
            order: 100,
            source: source.to_string(),
            severity: None,
            category: None,
            audit_skip: None,
            warns: false,
            exceptions_forbidden: false,
            controls: Vec::new(),
            has_controls: false,
        }
    }

    /// `data.validate.<name>` or `data.mutate.<name>`.
    pub fn package(&self) -> String {
        format!("data.{}.{}", self.kind.root(), self.name)
    }
}

/// Classifies a package declared by a module: `Ok(Some(..))` for a policy,
/// `Ok(None)` for a helper package, an error for a reserved or malformed one.
/// `package` is as regorus reports it (`data.validate.privileged`).
pub fn classify(path: &str, package: &str) -> Result<Option<(PolicyKind, String)>, PolicyError> {
    let parts: Vec<&str> = package.trim_start_matches("data.").split('.').collect();
    // `regent.log` is the bundle's to write: the decision log's `mask` rule.
    if parts.as_slice() == [RESERVED_ROOT, LOG_PACKAGE] {
        return Ok(None);
    }
    if parts.first() == Some(&RESERVED_ROOT) {
        return Err(PolicyError::Reserved {
            path: path.to_string(),
            package: package.to_string(),
        });
    }
    let kind = match parts.first() {
        Some(&"validate") => PolicyKind::Validate,
        Some(&"mutate") => PolicyKind::Mutate,
        _ => return Ok(None),
    };
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    match parts.as_slice() {
        [_, name] if valid(name) => Ok(Some((kind, name.to_string()))),
        _ => Err(PolicyError::BadName {
            path: path.to_string(),
            package: package.to_string(),
        }),
    }
}

/// The entry module: one rule per webhook that collects, in a single
/// evaluation, the results of every policy whose scope matches the request:
/// an object from policy name to that policy's violations (or patch).
/// Policies switched `off` are left out entirely.
///
/// Each distinct scope is one rule (`applies_0`, ...) that the policies with
/// that scope share, so a bundle whose policies keep the default scope
/// checks kind and operation once per request, not once per policy.
pub fn entry_module(policies: &[Policy]) -> String {
    let mut out = String::from(
        "# Generated by regent from the bundle's policies and their settings.\n\
         package regent.main\n\nimport rego.v1\n\n\
         default validate := {}\n\ndefault mutate := {}\n\n\
         namespace := object.get(input.request, \"namespace\", \"\")\n\n\
         ns_match(ns, pattern) if ns == pattern\n\n\
         ns_match(ns, pattern) if {\n\tendswith(pattern, \"*\")\n\tstartswith(ns, trim_suffix(pattern, \"*\"))\n}\n\n\
         ns_match(ns, pattern) if {\n\tstartswith(pattern, \"*\")\n\tendswith(ns, trim_prefix(pattern, \"*\"))\n}\n",
    );
    let mut scopes: Vec<String> = Vec::new();
    for p in policies
        .iter()
        .filter(|p| p.enforcement != Enforcement::Off)
    {
        let guards = scope_guards(&p.matching);
        let scope = if guards.is_empty() {
            String::new()
        } else {
            let index = match scopes.iter().position(|g| *g == guards) {
                Some(i) => i,
                None => {
                    let _ = write!(out, "\napplies_{} if {{\n{guards}}}\n", scopes.len());
                    scopes.push(guards);
                    scopes.len() - 1
                }
            };
            format!("\tapplies_{index}\n")
        };
        let _ = write!(
            out,
            "\n{head}[name] := result if {{\n{scope}\tname := {name}\n\tresult := {package}.{rule}\n}}\n",
            head = p.kind.root(),
            name = json_str(&p.name),
            package = p.package(),
            rule = p.kind.rule(),
        );
    }
    out
}

/// The body lines of the rule deciding whether a request is in scope.
fn scope_guards(m: &Match) -> String {
    let mut out = String::new();
    if !m.kinds.iter().any(|k| k == "*") {
        let _ = writeln!(out, "\tinput.request.kind.kind in {}", rego_set(&m.kinds));
    }
    if !m.operations.iter().any(|o| o == "*") {
        let _ = writeln!(
            out,
            "\tinput.request.operation in {}",
            rego_set(&m.operations)
        );
    }
    if !m.namespaces.is_empty() {
        let _ = writeln!(
            out,
            "\tsome include in {}\n\tns_match(namespace, include)",
            rego_set(&m.namespaces)
        );
    }
    for exclude in &m.excluded_namespaces {
        let _ = writeln!(out, "\tnot ns_match(namespace, {})", json_str(exclude));
    }
    out
}

fn json_str(s: &str) -> String {
    // A JSON string literal is a valid Rego string literal.
    Json::String(s.to_string()).to_string()
}

fn rego_set(items: &[String]) -> String {
    let set: BTreeSet<String> = items.iter().map(|s| json_str(s)).collect();
    format!("{{{}}}", set.into_iter().collect::<Vec<_>>().join(", "))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classifies_packages() {
        assert_eq!(
            classify("a.rego", "data.validate.privileged"),
            Ok(Some((PolicyKind::Validate, "privileged".into())))
        );
        assert_eq!(
            classify("a.rego", "data.mutate.x1"),
            Ok(Some((PolicyKind::Mutate, "x1".into())))
        );
        assert_eq!(classify("a.rego", "data.lib.strings"), Ok(None));
        assert!(matches!(
            classify("a.rego", "data.regent.lib.workload"),
            Err(PolicyError::Reserved { .. })
        ));
        assert!(matches!(
            classify("a.rego", "data.regent"),
            Err(PolicyError::Reserved { .. })
        ));
        assert!(matches!(
            classify("a.rego", "data.validate"),
            Err(PolicyError::BadName { .. })
        ));
        assert!(matches!(
            classify("a.rego", "data.validate.a.b"),
            Err(PolicyError::BadName { .. })
        ));
        assert!(matches!(
            classify("a.rego", "data.validate.Bad-Name"),
            Err(PolicyError::BadName { .. })
        ));
    }

    #[test]
    fn namespace_globs_match_like_the_entry_module() {
        let m = Match {
            namespaces: vec!["team-*".into()],
            excluded_namespaces: vec!["*-sandbox".into()],
            ..Match::default()
        };
        assert!(m.matches_namespace("team-a"));
        assert!(!m.matches_namespace("team-a-sandbox"));
        assert!(!m.matches_namespace("shop"));
        assert!(Match::default().matches_namespace(""));
    }

    #[test]
    fn entry_module_guards_each_policy_and_skips_off() {
        let mut p = Policy::new(PolicyKind::Validate, "p", "p.rego");
        p.matching.excluded_namespaces = vec!["kube-*".into()];
        let mut off = p.clone();
        off.name = "off".into();
        off.enforcement = Enforcement::Off;
        let mut same_scope = p.clone();
        same_scope.name = "q".into();
        let mut everywhere = p.clone();
        everywhere.name = "r".into();
        everywhere.matching = Match {
            kinds: vec!["*".into()],
            operations: vec!["*".into()],
            ..Match::default()
        };
        let m = entry_module(&[p, off, same_scope, everywhere]);
        assert!(
            m.contains("validate[name] := result if {\n\tapplies_0\n\tname := \"p\"\n\tresult := data.validate.p.violation\n}"),
            "{m}"
        );
        assert!(
            m.contains("validate[name] := result if {\n\tapplies_0\n\tname := \"q\"\n"),
            "{m}"
        );
        assert!(
            m.contains("validate[name] := result if {\n\tname := \"r\"\n"),
            "{m}"
        );
        assert_eq!(
            m.matches("\napplies_").count(),
            1,
            "one rule per scope: {m}"
        );
        assert!(
            m.contains("input.request.operation in {\"CREATE\", \"UPDATE\"}"),
            "{m}"
        );
        assert!(m.contains("not ns_match(namespace, \"kube-*\")"), "{m}");
        assert!(!m.contains("data.validate.off"), "{m}");
    }
}
