//! Gatekeeper's `spec.match`: which objects a Constraint looks at.
//!
//! The semantics follow Gatekeeper's own matcher (`pkg/mutation/match`) field
//! by field: every field that is set must match; `kinds` is any of its
//! apiGroups × kinds entries; `namespaces`, `excludedNamespaces` and `name`
//! take an exact name or a glob with `*` at the start, the end or both;
//! `scope` is `*`, `Cluster` or `Namespaced`; `labelSelector` is matched
//! against the object's labels and `namespaceSelector` against the labels of
//! its Namespace (or of the object itself when it is a Namespace).

use regorus::Value;
use serde::Deserialize;

/// A Constraint's `spec.match`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// apiGroups × kinds entries; any one matching is enough.
    #[serde(default)]
    pub kinds: Vec<Kinds>,
    /// `*` (default), `Cluster` or `Namespaced`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Namespace names or globs the object must be in (one of).
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Namespace names or globs the object must not be in.
    #[serde(default)]
    pub excluded_namespaces: Vec<String>,
    /// A selector on the object's labels.
    #[serde(default)]
    pub label_selector: Option<LabelSelector>,
    /// A selector on the labels of the object's Namespace.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// The object's name, or a glob.
    #[serde(default)]
    pub name: Option<String>,
}

/// One `kinds` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Kinds {
    /// API groups; empty or `*` is any.
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// Kinds; empty or `*` is any.
    #[serde(default)]
    pub kinds: Vec<String>,
}

/// A Kubernetes label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default)]
    pub match_labels: std::collections::BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(default)]
    pub match_expressions: Vec<Requirement>,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// The values for `In` and `NotIn`.
    #[serde(default)]
    pub values: Vec<String>,
}

impl LabelSelector {
    /// Checks the operators and values as Kubernetes does when it turns a
    /// selector into a matcher.
    pub fn check(&self) -> Result<(), String> {
        for r in &self.match_expressions {
            match r.operator.as_str() {
                "In" | "NotIn" if r.values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: operator {} needs at least one value",
                        r.key, r.operator
                    ))
                }
                "Exists" | "DoesNotExist" if !r.values.is_empty() => {
                    return Err(format!(
                        "matchExpressions key {:?}: operator {} takes no values",
                        r.key, r.operator
                    ))
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => {
                    return Err(format!(
                        "matchExpressions key {:?}: unknown operator {other:?} (In, NotIn, Exists or DoesNotExist)",
                        r.key
                    ))
                }
            }
        }
        Ok(())
    }

    /// Whether these labels (`metadata.labels`, possibly undefined) match.
    pub fn matches(&self, labels: &Value) -> bool {
        let get = |key: &str| crate::runtime::text(&labels[key]);
        self.match_labels
            .iter()
            .all(|(k, v)| get(k) == Some(v.as_str()))
            && self.match_expressions.iter().all(|r| {
                let value = get(&r.key);
                match r.operator.as_str() {
                    "In" => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
                    "NotIn" => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
                    "Exists" => value.is_some(),
                    "DoesNotExist" => value.is_none(),
                    _ => false,
                }
            })
    }
}

/// Gatekeeper's name glob: exact, `prefix*`, `*suffix` or `*infix*`.
pub fn glob(pattern: &str, candidate: &str) -> bool {
    match (pattern.strip_prefix('*'), pattern.strip_suffix('*')) {
        (Some(_), Some(_)) if pattern.len() >= 2 => {
            candidate.contains(&pattern[1..pattern.len() - 1])
        }
        (Some(suffix), _) => candidate.ends_with(suffix),
        (None, Some(prefix)) => candidate.starts_with(prefix),
        (None, None) => pattern == candidate,
    }
}

/// What the matcher looks at for one object.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The object's API group ("" for core).
    pub group: &'a str,
    /// The object's kind.
    pub kind: &'a str,
    /// The object (`metadata` is read).
    pub object: &'a Value,
    /// The request's namespace, when the request has one.
    pub namespace: &'a str,
    /// The object's Namespace, when known.
    pub namespace_object: Option<&'a Value>,
}

impl<'a> Target<'a> {
    fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }

    fn object_namespace(&self) -> &'a str {
        match crate::runtime::text(&self.object["metadata"]["namespace"]) {
            Some(ns) if !ns.is_empty() => ns,
            _ => self.namespace,
        }
    }

    fn name(&self) -> &'a str {
        crate::runtime::text(&self.object["metadata"]["name"]).unwrap_or_default()
    }

    /// The namespace the namespace rules test: the object's own name for a
    /// Namespace, else the known Namespace, else the one the object declares.
    fn namespace_for_rules(&self) -> Option<&'a str> {
        if self.is_namespace() {
            return Some(self.name());
        }
        // A known Namespace names the namespace, even unnamed (gator's
        // empty Namespace for an object that names none: no `namespaces`
        // entry matches it, no `excludedNamespaces` entry excludes it).
        if let Some(ns) = self.namespace_object {
            return Some(crate::runtime::text(&ns["metadata"]["name"]).unwrap_or_default());
        }
        Some(self.object_namespace()).filter(|n| !n.is_empty())
    }
}

impl Match {
    /// Checks the selectors (the rest is checked by the constraint schema).
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = &self.label_selector {
            s.check().map_err(|e| format!("labelSelector: {e}"))?;
        }
        if let Some(s) = &self.namespace_selector {
            s.check().map_err(|e| format!("namespaceSelector: {e}"))?;
        }
        Ok(())
    }

    /// Whether the constraint applies to the target. The error is
    /// Gatekeeper's: a namespaceSelector on a namespaced object whose
    /// Namespace is unknown cannot be decided.
    pub fn matches(&self, t: &Target<'_>) -> Result<bool, String> {
        Ok(self.kinds_match(t)
            && self.scope_match(t)
            && self.namespaces_match(t)
            && self.excluded_match(t)
            && self
                .label_selector
                .as_ref()
                .is_none_or(|s| s.matches(&t.object["metadata"]["labels"]))
            && self.namespace_selector_match(t)?
            && self
                .name
                .as_deref()
                .filter(|n| !n.is_empty())
                .is_none_or(|n| glob(n, t.name())))
    }

    fn kinds_match(&self, t: &Target<'_>) -> bool {
        let any = |list: &[String], value: &str| {
            list.is_empty() || list.iter().any(|x| x == "*" || x == value)
        };
        self.kinds.is_empty()
            || self
                .kinds
                .iter()
                .any(|k| any(&k.kinds, t.kind) && any(&k.api_groups, t.group))
    }

    fn scope_match(&self, t: &Target<'_>) -> bool {
        let has_namespace = !t.object_namespace().is_empty() || t.namespace_object.is_some();
        match self.scope.as_deref() {
            Some("Cluster") => t.is_namespace() || !has_namespace,
            Some("Namespaced") => !t.is_namespace() && has_namespace,
            _ => true,
        }
    }

    fn namespaces_match(&self, t: &Target<'_>) -> bool {
        if self.namespaces.is_empty() {
            return true;
        }
        match t.namespace_for_rules() {
            Some(ns) => self.namespaces.iter().any(|p| glob(p, ns)),
            None => true,
        }
    }

    fn excluded_match(&self, t: &Target<'_>) -> bool {
        if self.excluded_namespaces.is_empty() {
            return true;
        }
        match t.namespace_for_rules() {
            Some(ns) => !self.excluded_namespaces.iter().any(|p| glob(p, ns)),
            None => true,
        }
    }

    fn namespace_selector_match(&self, t: &Target<'_>) -> Result<bool, String> {
        let Some(selector) = &self.namespace_selector else {
            return Ok(true);
        };
        if t.is_namespace() {
            return Ok(selector.matches(&t.object["metadata"]["labels"]));
        }
        if let Some(ns) = t.namespace_object {
            return Ok(selector.matches(&ns["metadata"]["labels"]));
        }
        if t.object_namespace().is_empty() {
            // Cluster-scoped objects that are not Namespaces always match.
            return Ok(true);
        }
        Err(format!(
            "namespaceSelector needs the labels of Namespace {:?}, which is not known (list v1/Namespace in the inventory)",
            t.object_namespace()
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(json: &str) -> Value {
        Value::from_json_str(json).unwrap()
    }

    fn m(yaml: &str) -> Match {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn globs_follow_gatekeeper() {
        assert!(glob("kube-*", "kube-system"));
        assert!(!glob("kube-*", "my-kube"));
        assert!(glob("*-system", "gatekeeper-system"));
        assert!(glob("*sys*", "kube-system-x"));
        assert!(glob("prod", "prod"));
        assert!(!glob("prod", "prod-1"));
        assert!(glob("*", "anything"));
    }

    #[test]
    fn each_field_must_match() {
        let pod = obj(
            r#"{"metadata":{"name":"web-1","namespace":"prod","labels":{"app":"web","tier":"fe"}}}"#,
        );
        let t = Target {
            group: "",
            kind: "Pod",
            object: &pod,
            namespace: "prod",
            namespace_object: None,
        };
        assert!(m("{}").matches(&t).unwrap());
        assert!(m("kinds: [{apiGroups: [''], kinds: [Pod]}]")
            .matches(&t)
            .unwrap());
        assert!(!m("kinds: [{apiGroups: [apps], kinds: [Pod]}]")
            .matches(&t)
            .unwrap());
        assert!(m("kinds: [{apiGroups: ['*'], kinds: []}]")
            .matches(&t)
            .unwrap());
        assert!(m("scope: Namespaced").matches(&t).unwrap());
        assert!(!m("scope: Cluster").matches(&t).unwrap());
        assert!(m("namespaces: [dev, 'pro*']").matches(&t).unwrap());
        assert!(!m("namespaces: [dev]").matches(&t).unwrap());
        assert!(!m("excludedNamespaces: ['*od']").matches(&t).unwrap());
        assert!(m("name: 'web-*'").matches(&t).unwrap());
        assert!(!m("name: 'db-*'").matches(&t).unwrap());
        assert!(m("labelSelector: {matchLabels: {app: web}}")
            .matches(&t)
            .unwrap());
        assert!(!m(
            "labelSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [fe]}]}"
        )
        .matches(&t)
        .unwrap());
        assert!(
            m("labelSelector: {matchExpressions: [{key: x, operator: DoesNotExist}]}")
                .matches(&t)
                .unwrap()
        );
        // namespaceSelector without the Namespace: Gatekeeper's error.
        assert!(m("namespaceSelector: {matchLabels: {env: prod}}")
            .matches(&t)
            .is_err());
        let ns = obj(r#"{"metadata":{"name":"prod","labels":{"env":"prod"}}}"#);
        let with_ns = Target {
            namespace_object: Some(&ns),
            ..t
        };
        assert!(m("namespaceSelector: {matchLabels: {env: prod}}")
            .matches(&with_ns)
            .unwrap());
        assert!(!m("namespaceSelector: {matchLabels: {env: dev}}")
            .matches(&with_ns)
            .unwrap());
    }

    #[test]
    fn namespaces_and_cluster_objects() {
        let ns = obj(r#"{"metadata":{"name":"kube-system","labels":{"a":"b"}}}"#);
        let t = Target {
            group: "",
            kind: "Namespace",
            object: &ns,
            namespace: "",
            namespace_object: None,
        };
        // A Namespace is matched by its own name and labels.
        assert!(!m("excludedNamespaces: ['kube-*']").matches(&t).unwrap());
        assert!(m("namespaceSelector: {matchLabels: {a: b}}")
            .matches(&t)
            .unwrap());
        assert!(m("scope: Cluster").matches(&t).unwrap());
        let role = obj(r#"{"metadata":{"name":"admin"}}"#);
        let t = Target {
            group: "rbac.authorization.k8s.io",
            kind: "ClusterRole",
            object: &role,
            namespace: "",
            namespace_object: None,
        };
        assert!(m("namespaces: [prod]").matches(&t).unwrap());
        assert!(m("namespaceSelector: {matchLabels: {a: b}}")
            .matches(&t)
            .unwrap());
        assert!(!m("scope: Namespaced").matches(&t).unwrap());
    }

    #[test]
    fn bad_selectors_are_reported() {
        let e = m("labelSelector: {matchExpressions: [{key: a, operator: Equals, values: [b]}]}")
            .check()
            .unwrap_err();
        assert!(e.contains("unknown operator"), "{e}");
        assert!(
            m("labelSelector: {matchExpressions: [{key: a, operator: In}]}")
                .check()
                .is_err()
        );
    }
}
