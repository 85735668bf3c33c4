//! Kubernetes objects in YAML files: splitting a stream into documents (each
//! with the line it starts at) and saying, from `apiVersion` and `kind`
//! alone, what an object is to Regent.
//!
//! This is the one place that knows which API groups carry policy objects.
//! The bundle reader asks it which YAML files belong to a bundle, and the
//! Gatekeeper loader asks it which documents are templates, Constraints or
//! expansions; neither asks the other.

use serde_json::Value as Json;

/// The API group of ConstraintTemplates.
pub const TEMPLATES_GROUP: &str = "templates.gatekeeper.sh";
/// The API group of Constraints.
pub const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";
/// The API group of ExpansionTemplates.
pub const EXPANSION_GROUP: &str = "expansion.gatekeeper.sh";
/// The API group of mutators (Assign, AssignMetadata, ModifySet, AssignImage).
pub const MUTATIONS_GROUP: &str = "mutations.gatekeeper.sh";

/// What a policy object of a bundle is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectClass {
    /// A Gatekeeper `ConstraintTemplate`.
    ConstraintTemplate,
    /// A Gatekeeper Constraint (any kind a template defines).
    Constraint,
    /// A Gatekeeper `ExpansionTemplate`.
    ExpansionTemplate,
    /// A Gatekeeper mutator (any kind of the mutations group).
    Mutator,
    /// Another object of a Gatekeeper group (loaded, not used).
    OtherGatekeeper,
}

/// The API group of an `apiVersion` (`""` for the core group).
pub fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map(|(g, _)| g).unwrap_or("")
}

/// Whether objects of a kind live outside namespaces, as the API server
/// defines them (the built-in cluster-scoped kinds, and those of the policy
/// groups and of common add-ons). A kind not listed is taken as namespaced,
/// as most custom resources are: what an offline command gives a namespace
/// when the manifest names none.
pub fn is_cluster_scoped(api_version: &str, kind: &str) -> bool {
    const CORE: [&str; 5] = [
        "Namespace",
        "Node",
        "PersistentVolume",
        "ComponentStatus",
        "Binding",
    ];
    const BY_GROUP: [(&str, &[&str]); 16] = [
        (
            "rbac.authorization.k8s.io",
            &["ClusterRole", "ClusterRoleBinding"],
        ),
        ("apiextensions.k8s.io", &["CustomResourceDefinition"]),
        (
            "admissionregistration.k8s.io",
            &[
                "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration",
                "ValidatingAdmissionPolicy",
                "ValidatingAdmissionPolicyBinding",
                "MutatingAdmissionPolicy",
                "MutatingAdmissionPolicyBinding",
            ],
        ),
        ("apiregistration.k8s.io", &["APIService"]),
        (
            "storage.k8s.io",
            &[
                "StorageClass",
                "CSIDriver",
                "CSINode",
                "VolumeAttachment",
                "VolumeAttributesClass",
            ],
        ),
        ("scheduling.k8s.io", &["PriorityClass"]),
        ("node.k8s.io", &["RuntimeClass"]),
        (
            "networking.k8s.io",
            &["IngressClass", "IPAddress", "ServiceCIDR"],
        ),
        (
            "certificates.k8s.io",
            &["CertificateSigningRequest", "ClusterTrustBundle"],
        ),
        (
            "flowcontrol.apiserver.k8s.io",
            &["FlowSchema", "PriorityLevelConfiguration"],
        ),
        ("policy", &["PodSecurityPolicy"]),
        ("resource.k8s.io", &["DeviceClass", "ResourceSlice"]),
        ("cert-manager.io", &["ClusterIssuer"]),
        ("wgpolicyk8s.io", &["ClusterPolicyReport"]),
        ("openreports.io", &["ClusterReport"]),
        ("gateway.networking.k8s.io", &["GatewayClass"]),
    ];
    let group = group_of(api_version);
    if group.is_empty() {
        return CORE.contains(&kind);
    }
    // Every object of the Gatekeeper groups is cluster-scoped.
    if is_policy_api(api_version) {
        return true;
    }
    BY_GROUP
        .iter()
        .any(|(g, kinds)| *g == group && kinds.contains(&kind))
}

/// Whether an `apiVersion` belongs to a group whose objects a bundle loads.
pub fn is_policy_api(api_version: &str) -> bool {
    matches!(
        group_of(api_version),
        TEMPLATES_GROUP | CONSTRAINTS_GROUP | EXPANSION_GROUP | MUTATIONS_GROUP
    )
}

/// Classifies an object by its `apiVersion` and `kind`; `None` for objects
/// that are not policy objects (they are skipped).
pub fn classify(api_version: &str, kind: &str) -> Option<ObjectClass> {
    if !is_policy_api(api_version) {
        return None;
    }
    let group = group_of(api_version);
    Some(if kind == "ConstraintTemplate" {
        ObjectClass::ConstraintTemplate
    } else if group == CONSTRAINTS_GROUP {
        ObjectClass::Constraint
    } else if group == EXPANSION_GROUP && kind == "ExpansionTemplate" {
        ObjectClass::ExpansionTemplate
    } else if group == MUTATIONS_GROUP {
        ObjectClass::Mutator
    } else {
        ObjectClass::OtherGatekeeper
    })
}

/// One policy object of a bundle, already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectDoc {
    /// The file it came from, as shown in errors.
    pub path: String,
    /// The 1-based line of the file its document starts at.
    pub line: usize,
    /// The document's text (to locate embedded Rego in errors).
    pub text: String,
    /// The object.
    pub value: Json,
}

impl ObjectDoc {
    /// What the object is (`None` is never stored in a bundle).
    pub fn class(&self) -> Option<ObjectClass> {
        classify(
            self.value["apiVersion"].as_str().unwrap_or_default(),
            self.value["kind"].as_str().unwrap_or_default(),
        )
    }

    /// `Kind name`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{} {}",
            self.value["kind"].as_str().unwrap_or("object"),
            self.value["metadata"]["name"]
                .as_str()
                .unwrap_or("(unnamed)")
        )
    }
}

/// Whether a YAML text declares a policy object: a top-level `apiVersion:`
/// line of a policy group. Other YAML (a kustomization, a chart's values) is
/// not part of a bundle.
pub fn holds_policy_objects(text: &str) -> bool {
    text.lines().any(|l| {
        l.strip_prefix("apiVersion:")
            .is_some_and(|v| is_policy_api(v.trim().trim_matches(['"', '\''])))
    })
}

/// A YAML document that does not parse, with its position in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}:{line}:{column}: {message}")]
pub struct YamlError {
    /// The file.
    pub path: String,
    /// 1-based line in the file (the document's first line when unknown).
    pub line: usize,
    /// 1-based column (0 when unknown).
    pub column: usize,
    /// What the parser said.
    pub message: String,
}

/// Parses a YAML file of Kubernetes objects (`---`-separated documents) and
/// keeps the policy objects, each with the line its document starts at.
pub fn parse_policy_objects(path: &str, text: &str) -> Result<Vec<ObjectDoc>, YamlError> {
    let mut out = Vec::new();
    for (start, doc) in split_documents(text) {
        if doc.trim().is_empty() {
            continue;
        }
        let value = serde_yaml_ng::from_str::<Json>(&doc).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line() + start - 1, l.column()))
                .unwrap_or((start, 0));
            YamlError {
                path: path.to_string(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        let is_policy = value["apiVersion"].as_str().is_some_and(is_policy_api);
        if is_policy {
            out.push(ObjectDoc {
                path: path.to_string(),
                line: start,
                text: doc,
                value,
            });
        }
    }
    Ok(out)
}

/// Splits a YAML stream at `---` lines: `(first line, text)` per document.
pub fn split_documents(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 1;
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let separator = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if separator {
            out.push((start, std::mem::take(&mut current)));
            start = i + 2;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    out.push((start, current));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn classifies_by_api_version_and_kind() {
        use ObjectClass::*;
        let cases = [
            (
                "templates.gatekeeper.sh/v1",
                "ConstraintTemplate",
                Some(ConstraintTemplate),
            ),
            (
                "templates.gatekeeper.sh/v1beta1",
                "ConstraintTemplate",
                Some(ConstraintTemplate),
            ),
            (
                "constraints.gatekeeper.sh/v1beta1",
                "K8sRequiredLabels",
                Some(Constraint),
            ),
            (
                "expansion.gatekeeper.sh/v1beta1",
                "ExpansionTemplate",
                Some(ExpansionTemplate),
            ),
            (
                "expansion.gatekeeper.sh/v1beta1",
                "Other",
                Some(OtherGatekeeper),
            ),
            ("v1", "ConfigMap", None),
            ("apps/v1", "Deployment", None),
            ("gatekeeper.sh/v1", "ConstraintTemplate", None),
        ];
        for (api, kind, want) in cases {
            assert_eq!(classify(api, kind), want, "{api} {kind}");
        }
    }

    #[test]
    fn keeps_policy_documents_with_their_first_line() {
        let text = "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K\nmetadata:\n  name: c\n";
        assert!(holds_policy_objects(text));
        let docs = parse_policy_objects("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].line, 4);
        assert_eq!(docs[0].class(), Some(ObjectClass::Constraint));
        assert_eq!(docs[0].describe(), "K c");
        let err = parse_policy_objects("f.yaml", "a: 1\n---\nb: [\n").unwrap_err();
        assert_eq!(err.path, "f.yaml");
        assert!(err.line >= 3, "{err}");
        assert!(!holds_policy_objects("apiVersion: v1\nkind: Pod\n"));
    }
}
