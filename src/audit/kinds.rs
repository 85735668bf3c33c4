//! Which kinds the audit watches: only those some loaded policy or
//! Constraint can match (re-derived whenever the bundle changes), resolved
//! against the API server's discovery to resources.
//!
//! A native policy names kinds (`match.kinds`, by default the pod-bearing
//! ones); a Constraint names apiGroups × kinds; an ExpansionTemplate adds the
//! workloads it expands. `*`, or a Constraint without `match.kinds`, means
//! every listable kind the cluster serves, except kinds no policy is about
//! and that churn by the second ([`NEVER_AUDITED`]).

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};

use regent_core::compose::CompiledBundle;
use regent_core::gatekeeper::AUDIT_POINT;
use regent_core::native::policy::PolicyKind;
use regent_core::outcome::Enforcement;

/// Resources never audited for a `*`: events, leases, endpoints and the
/// reports themselves.
pub const NEVER_AUDITED: &[(&str, &str)] = &[
    ("", "events"),
    ("events.k8s.io", "events"),
    ("coordination.k8s.io", "leases"),
    ("", "endpoints"),
    ("discovery.k8s.io", "endpointslices"),
    ("", "componentstatuses"),
    ("wgpolicyk8s.io", "policyreports"),
    ("wgpolicyk8s.io", "clusterpolicyreports"),
    ("openreports.io", "reports"),
    ("openreports.io", "clusterreports"),
];

/// A kind the bundle wants audited.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wanted {
    /// A kind, in one API group or (`None`) in any.
    Kind {
        /// The group; `None` for any.
        group: Option<String>,
        /// The kind.
        kind: String,
    },
    /// Every listable kind.
    Everything,
}

/// The kinds a bundle's policies and Constraints can match.
pub fn wanted(bundle: &CompiledBundle) -> Vec<Wanted> {
    let mut out = Vec::new();
    for p in bundle
        .policies()
        .iter()
        .filter(|p| p.kind == PolicyKind::Validate && p.enforcement != Enforcement::Off)
    {
        for k in &p.matching.kinds {
            out.push(if k == "*" {
                Wanted::Everything
            } else {
                Wanted::Kind {
                    group: None,
                    kind: k.clone(),
                }
            });
        }
    }
    let gk = bundle.gatekeeper();
    for c in gk
        .constraints()
        .iter()
        .filter(|c| c.action.at(AUDIT_POINT) != Enforcement::Off)
    {
        if c.kinds().is_empty() {
            out.push(Wanted::Everything);
        }
        for entry in c.kinds() {
            let any_kind = entry.kinds.is_empty() || entry.kinds.iter().any(|k| k == "*");
            if any_kind {
                out.push(Wanted::Everything);
                continue;
            }
            let groups: Vec<Option<String>> =
                if entry.api_groups.is_empty() || entry.api_groups.iter().any(|g| g == "*") {
                    vec![None]
                } else {
                    entry.api_groups.iter().map(|g| Some(g.clone())).collect()
                };
            for g in &groups {
                for k in &entry.kinds {
                    out.push(Wanted::Kind {
                        group: g.clone(),
                        kind: k.clone(),
                    });
                }
            }
        }
    }
    if !gk.constraints().is_empty() {
        for e in gk.expansions() {
            for (groups, _, kinds) in e.apply_to() {
                for k in kinds {
                    for g in groups {
                        out.push(Wanted::Kind {
                            group: (g != "*").then(|| g.clone()),
                            kind: k.clone(),
                        });
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// One resource the audit watches.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditKind {
    /// What the client needs to list and watch it.
    pub resource: ApiResource,
    /// Namespaced (else cluster-scoped).
    pub namespaced: bool,
}

impl AuditKind {
    /// `group/version/Kind` (`v1/Pod` for the core group), for logs and
    /// metrics.
    pub fn label(&self) -> String {
        label(&self.resource)
    }
}

fn label(r: &ApiResource) -> String {
    format!("{}/{}", r.api_version, r.kind)
}

/// Resolves what is wanted against discovery: the resources to watch, and
/// the wanted kinds the cluster does not serve (with the reason).
pub fn resolve(
    wanted: &[Wanted],
    discovery: &Discovery,
) -> (Vec<AuditKind>, Vec<(String, String)>) {
    let listable = |caps: &ApiCapabilities| {
        caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::WATCH)
    };
    let served: Vec<(ApiResource, ApiCapabilities)> = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .filter(|(_, caps)| listable(caps))
        .collect();
    let mut out: Vec<AuditKind> = Vec::new();
    let mut missing = Vec::new();
    let mut add = |r: &ApiResource, caps: &ApiCapabilities| {
        if !out.iter().any(|k| k.resource == *r) {
            out.push(AuditKind {
                resource: r.clone(),
                namespaced: caps.scope == Scope::Namespaced,
            });
        }
    };
    for w in wanted {
        match w {
            Wanted::Everything => {
                for (r, caps) in &served {
                    if !NEVER_AUDITED
                        .iter()
                        .any(|(g, p)| *g == r.group && *p == r.plural)
                    {
                        add(r, caps);
                    }
                }
            }
            Wanted::Kind { group, kind } => {
                let mut found = false;
                for (r, caps) in &served {
                    if r.kind == *kind && group.as_ref().is_none_or(|g| *g == r.group) {
                        add(r, caps);
                        found = true;
                    }
                }
                if !found {
                    let name = match group {
                        Some(g) if !g.is_empty() => format!("{g}/{kind}"),
                        _ => kind.clone(),
                    };
                    missing.push((name, "not served by this cluster".to_string()));
                }
            }
        }
    }
    out.sort_by_key(|k| label(&k.resource));
    (out, missing)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_default_bundle_wants_the_pod_bearing_kinds() {
        let bundle = CompiledBundle::compile(
            &regent_core::bundle::BundleFiles::embedded().unwrap(),
            regent_core::compose::CompileOptions::default(),
        )
        .unwrap();
        let kinds: Vec<String> = wanted(&bundle)
            .into_iter()
            .map(|w| match w {
                Wanted::Kind { kind, .. } => kind,
                Wanted::Everything => "*".into(),
            })
            .collect();
        let mut expected: Vec<String> = regent_core::native::policy::POD_KINDS
            .iter()
            .map(|k| k.to_string())
            .collect();
        expected.sort();
        assert_eq!(kinds, expected);
    }
}
