//! `regent audit` and `regent eval` on repository manifests, as CI gates
//! use `gator test`: one rule for objects whose manifest names no namespace
//! (the `-n` namespace, `default` by default, for namespaced kinds), and
//! `--gator-compat`, which reproduces `gator test`'s matching (an empty,
//! unlabelled Namespace), policies (only the Gatekeeper objects given) and
//! exit code; Namespace objects given are used by `namespaceSelector`, and
//! an unlabelled one stands in where none is given; objects with only
//! `generateName` are reviewed; an evaluation error in an expanded object
//! carries the expansion's prefix and no engine internals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::repo_path;
use serde_json::Value;

const TEMPLATE: &str = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8srequiredowner}
spec:
  crd: {spec: {names: {kind: K8sRequiredOwner}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8srequiredowner
      violation[{"msg": msg}] {
        not input.review.object.metadata.labels.owner
        msg := sprintf("%v has no owner label", [input.review.object.kind])
      }
---
apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata: {name: k8sbrokenonpods}
spec:
  crd: {spec: {names: {kind: K8sBrokenOnPods}}}
  targets:
  - target: admission.k8s.gatekeeper.sh
    rego: |
      package k8sbrokenonpods
      twice := 1 { input.review.object.kind == "Pod" }
      twice := 2 { input.review.object.kind == "Pod" }
      violation[{"msg": "never"}] { twice == 3 }
"#;

const CONSTRAINTS: &str = r#"apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredOwner
metadata: {name: only-prod}
spec:
  match: {kinds: [{apiGroups: ["apps"], kinds: [Deployment]}], namespaces: [prod]}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredOwner
metadata: {name: not-kube-system}
spec:
  match: {kinds: [{apiGroups: ["apps"], kinds: [Deployment]}], excludedNamespaces: [kube-system]}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredOwner
metadata: {name: team-a-selector}
spec:
  match:
    kinds: [{apiGroups: ["apps"], kinds: [Deployment]}]
    namespaceSelector: {matchLabels: {team: a}}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sRequiredOwner
metadata: {name: warn-only}
spec:
  enforcementAction: warn
  match: {kinds: [{apiGroups: [""], kinds: [ConfigMap]}]}
---
apiVersion: constraints.gatekeeper.sh/v1beta1
kind: K8sBrokenOnPods
metadata: {name: broken}
spec:
  match: {kinds: [{apiGroups: [""], kinds: [Pod]}]}
---
apiVersion: expansion.gatekeeper.sh/v1beta1
kind: ExpansionTemplate
metadata: {name: expand-deployments}
spec:
  applyTo:
  - groups: ["apps"]
    kinds: ["Deployment"]
    versions: ["v1"]
  templateSource: "spec.template"
  generatedGVK: {kind: "Pod", group: "", version: "v1"}
"#;

fn deployment(name_field: &str, namespace: Option<&str>) -> String {
    let ns = namespace
        .map(|n| format!("  namespace: {n}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  {name_field}\n{ns}spec:\n  selector: {{matchLabels: {{app: x}}}}\n  template:\n    metadata: {{labels: {{app: x}}}}\n    spec:\n      containers: [{{name: c, image: 'registry.example.com/x:1'}}]\n"
    )
}

/// The policies (`policies/`) and the manifests (`manifests/`).
fn fixtures(dir: &Path) {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::create_dir_all(dir.join("manifests")).unwrap();
    std::fs::write(dir.join("policies/templates.yaml"), TEMPLATE).unwrap();
    std::fs::write(dir.join("policies/constraints.yaml"), CONSTRAINTS).unwrap();
    let manifests = [
        ("no-namespace.yaml", deployment("name: no-namespace", None)),
        (
            "team-a.yaml",
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a, labels: {{team: a}}}}\n---\n{}",
                deployment("name: in-team-a", Some("team-a"))
            ),
        ),
        ("undeclared.yaml", deployment("name: in-undeclared", Some("undeclared"))),
        ("hook.yaml", deployment("generateName: migrate-", Some("prod"))),
        (
            "config.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: prod}\ndata: {a: b}\n"
                .to_string(),
        ),
        (
            "role.yaml",
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: reader}\nrules: []\n"
                .to_string(),
        ),
    ];
    for (f, text) in manifests {
        std::fs::write(dir.join("manifests").join(f), text).unwrap();
    }
}

fn regent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// `(object name, constraint)` of every violation (`fail` or `warn`
/// result), and the error lines.
fn audit(
    dir: &Path,
    extra: &[&str],
    compat: bool,
) -> (i32, BTreeSet<(String, String)>, Vec<String>) {
    let p = dir.join("policies");
    let m = dir.join("manifests");
    let mut args = vec!["audit", "-o", "json"];
    if compat {
        args.extend(["--gator-compat", "-f", p.to_str().unwrap()]);
    } else {
        args.extend(["--policies", p.to_str().unwrap()]);
    }
    args.extend(["-f", m.to_str().unwrap()]);
    args.extend(extra);
    let (code, out, err) = regent(&args);
    let records: Vec<Value> =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    let fails = records
        .iter()
        .filter(|r| r["result"] == "fail" || r["result"] == "warn")
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_string(),
                r["policy"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let errors = records
        .iter()
        .filter(|r| r["result"] == "error")
        .map(|r| {
            format!(
                "{} {}",
                r["name"].as_str().unwrap(),
                r["message"].as_str().unwrap()
            )
        })
        .collect();
    (code, fails, errors)
}

fn set(items: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn namespace_less_objects_are_in_the_default_namespace_or_matched_as_gator_does() {
    let tmp = tempfile::tempdir().unwrap();
    fixtures(tmp.path());
    // The rule: a namespaced object without a namespace is in `default`
    // (-n); an undeclared Namespace is unlabelled, not an error.
    let (code, fails, errors) = audit(tmp.path(), &[], false);
    assert_eq!(code, 1);
    assert_eq!(
        fails,
        set(&[
            ("no-namespace", "not-kube-system"),
            ("in-team-a", "not-kube-system"),
            ("in-team-a", "team-a-selector"),
            ("in-undeclared", "not-kube-system"),
            ("migrate-*", "only-prod"),
            ("migrate-*", "not-kube-system"),
            ("settings", "warn-only"),
        ]),
        "{errors:?}"
    );
    // -n moves them: in prod, `only-prod` applies; in kube-system, `not-kube-system` does not.
    let (_, fails, _) = audit(tmp.path(), &["-n", "prod"], false);
    assert!(fails.contains(&("no-namespace".into(), "only-prod".into())));
    let (_, fails, _) = audit(tmp.path(), &["-n", "kube-system"], false);
    assert!(!fails
        .iter()
        .any(|(o, c)| o == "no-namespace" && c == "not-kube-system"));
    // A namespace-less object under a namespaceSelector: the unlabelled
    // `default` does not match team=a; given labelled, it would.
    let (_, fails, _) = audit(tmp.path(), &["-n", "team-a"], false);
    assert!(fails.contains(&("no-namespace".into(), "team-a-selector".into())));

    // gator test: the object without a namespace is in an empty Namespace:
    // no `namespaces` entry names it, none excludes it, the selector sees
    // no labels. The undeclared namespace has no Namespace: gator's error.
    let (code, fails, errors) = audit(tmp.path(), &[], true);
    assert_eq!(
        fails,
        set(&[
            ("no-namespace", "not-kube-system"),
            ("in-team-a", "not-kube-system"),
            ("in-team-a", "team-a-selector"),
            ("in-undeclared", "not-kube-system"),
            ("migrate-*", "only-prod"),
            ("migrate-*", "not-kube-system"),
            ("settings", "warn-only"),
        ])
    );
    assert!(
        errors.iter().any(|e| e
            .starts_with("in-undeclared [team-a-selector] could not be evaluated: ")
            && e.contains("namespaceSelector")),
        "{errors:?}"
    );
    assert_eq!(code, 1, "deny Constraints are violated");
    // Cluster-scoped objects are reviewed in both modes without a namespace.
    let (_, fails, _) = audit(tmp.path(), &["-n", "prod"], true);
    assert!(
        !fails
            .iter()
            .any(|(o, c)| o == "no-namespace" && c == "only-prod"),
        "-n has no effect in compat"
    );
}

#[test]
fn gator_compat_exits_like_gator_and_takes_only_the_gatekeeper_objects_given() {
    let tmp = tempfile::tempdir().unwrap();
    fixtures(tmp.path());
    // Only the warn Constraint violated: gator exits 0.
    let only_warn = tmp.path().join("only-warn");
    std::fs::create_dir_all(&only_warn).unwrap();
    std::fs::write(only_warn.join("t.yaml"), TEMPLATE).unwrap();
    std::fs::write(
        only_warn.join("c.yaml"),
        CONSTRAINTS.split("---\n").nth(3).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        tmp.path().join("manifests/config.yaml"),
        only_warn.join("config.yaml"),
    )
    .unwrap();
    // A Pod that the default bundle would deny (privileged): not a policy here.
    std::fs::write(
        only_warn.join("pod.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: prod}\nspec:\n  containers: [{name: c, image: 'nginx:latest', securityContext: {privileged: true}}]\n",
    )
    .unwrap();
    let (code, out, err) = regent(&[
        "audit",
        "--gator-compat",
        "-f",
        only_warn.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(records
        .iter()
        .any(|r| r["policy"] == "warn-only" && r["result"] == "warn"));
    assert!(!records
        .iter()
        .any(|r| r["policy"] == "pod_security" || r["policy"] == "image_tag"));
    // Without compat the same directory is audited by the default bundle too: exit 1.
    let (code, _, _) = regent(&["audit", "-f", only_warn.to_str().unwrap(), "-o", "json"]);
    assert_eq!(code, 1);
    // An object with neither name nor generateName is reviewed in compat
    // (gator does), refused otherwise.
    std::fs::write(
        only_warn.join("nameless.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: prod}\n",
    )
    .unwrap();
    let (code, out, _) = regent(&[
        "audit",
        "--gator-compat",
        "-f",
        only_warn.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert_eq!(code, 0);
    let records: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(records
        .iter()
        .any(|r| r["name"] == "" && r["policy"] == "warn-only"));
    // --gator-compat with --policies is refused (compat means the inputs' policies only).
    let (code, _, err) = regent(&["audit", "--gator-compat", "--policies", "x", "-f", "y"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn eval_follows_the_same_rule_and_compat() {
    let tmp = tempfile::tempdir().unwrap();
    fixtures(tmp.path());
    let p = tmp.path().join("policies");
    let m = tmp.path().join("manifests");
    let denied_by = |args: &[&str]| -> BTreeSet<(String, String)> {
        let (_, out, err) = regent(args);
        let records: Vec<Value> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        records
            .iter()
            .flat_map(|r| {
                let name = if r["name"] == "" {
                    format!("{}/(generated)", r["kind"].as_str().unwrap())
                } else {
                    r["name"].as_str().unwrap().to_string()
                };
                r["violations"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(move |v| (name.clone(), v["policy"].as_str().unwrap().to_string()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let default = denied_by(&[
        "eval",
        "--policies",
        p.to_str().unwrap(),
        "-f",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(default.contains(&("no-namespace".into(), "not-kube-system".into())));
    assert!(
        default.contains(&("in-team-a".into(), "team-a-selector".into())),
        "{default:?}"
    );
    assert!(!default.contains(&("in-undeclared".into(), "team-a-selector".into())));
    // The generateName-only Deployment is reviewed.
    assert!(
        default.contains(&("Deployment/(generated)".into(), "only-prod".into())),
        "{default:?}"
    );
    let prod = denied_by(&[
        "eval",
        "-n",
        "prod",
        "--policies",
        p.to_str().unwrap(),
        "-f",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(prod.contains(&("no-namespace".into(), "only-prod".into())));
    let compat = denied_by(&[
        "eval",
        "--gator-compat",
        "-f",
        p.to_str().unwrap(),
        "-f",
        m.to_str().unwrap(),
        "-o",
        "json",
    ]);
    assert!(compat.contains(&("no-namespace".into(), "not-kube-system".into())));
    assert!(!compat.contains(&("no-namespace".into(), "only-prod".into())));
    assert!(compat.contains(&("in-team-a".into(), "team-a-selector".into())));
    // A ClusterRole stays cluster-scoped: nothing namespaced applies.
    assert!(!default.iter().any(|(o, _)| o == "reader"));
}

#[test]
fn an_error_in_an_expanded_object_carries_the_expansion_and_no_engine_internals() {
    let tmp = tempfile::tempdir().unwrap();
    fixtures(tmp.path());
    for compat in [false, true] {
        let (_, _, errors) = audit(tmp.path(), &[], compat);
        let line = errors
            .iter()
            .find(|e| e.starts_with("no-namespace [broken]"))
            .unwrap_or_else(|| panic!("{errors:?}"));
        assert!(
            line.starts_with(
                "no-namespace [broken] [Implied by expand-deployments] could not be evaluated: "
            ),
            "{line}"
        );
        assert!(!line.contains("pc="), "{line}");
    }
    // The same at admission (eval decides as the webhook does).
    let (_, out, _) = regent(&[
        "eval",
        "--policies",
        tmp.path().join("policies").to_str().unwrap(),
        "-f",
        tmp.path()
            .join("manifests/no-namespace.yaml")
            .to_str()
            .unwrap(),
    ]);
    assert!(
        out.contains("[broken] [Implied by expand-deployments] could not be evaluated: "),
        "{out}"
    );
    assert!(!out.contains("pc="), "{out}");
    let _ = repo_path("");
}
