//! `regent diff` on fixture bundles: every change class, the exit codes and
//! `--fail-on`, the Markdown summary, and decisions that are `regent eval`'s
//! under each bundle.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::{json, Value};

fn policy(name: &str, condition: &str, msg: &str) -> String {
    format!(
        "package validate.{name}\n\nimport rego.v1\n\nviolation contains {{\"msg\": \"{msg}\", \"path\": \"spec\"}} if {{\n\tsome c in input.request.object.spec.containers\n\t{condition}\n}}\n"
    )
}

fn label(value: &str) -> String {
    format!(
        "package mutate.team\n\nimport rego.v1\n\npatch contains {{\"op\": \"add\", \"path\": \"/metadata/labels/team\", \"value\": \"{value}\"}} if true\n"
    )
}

/// The bundle running now: `tag` warns, `priv` denies, `res` warns, `team` labels `a`.
fn old_bundle() -> tempfile::TempDir {
    bundle_dir(&[
        (
            "validate/tag/policy.rego",
            &policy("tag", "endswith(c.image, \":latest\")", "mutable tag"),
        ),
        ("validate/tag/data.yaml", "enforcement: warn\n"),
        (
            "validate/priv/policy.rego",
            &policy("priv", "c.securityContext.privileged", "privileged"),
        ),
        (
            "validate/res/policy.rego",
            &policy("res", "not c.resources", "no resources"),
        ),
        ("validate/res/data.yaml", "enforcement: warn\n"),
        ("mutate/team/policy.rego", &label("a")),
    ])
}

/// The bundle to ship: `tag` denies, `priv` is gone, `res` is gone, `host`
/// warns, `team` labels `b`.
fn new_bundle() -> tempfile::TempDir {
    bundle_dir(&[
        (
            "validate/tag/policy.rego",
            &policy("tag", "endswith(c.image, \":latest\")", "mutable tag"),
        ),
        (
            "validate/host/policy.rego",
            &policy("host", "c.name == \"host\"", "named host"),
        ),
        ("validate/host/data.yaml", "enforcement: warn\n"),
        ("mutate/team/policy.rego", &label("b")),
    ])
}

fn pod(name: &str, image: &str, privileged: bool, resources: bool) -> Value {
    let mut c =
        json!({"name": name, "image": image, "securityContext": {"privileged": privileged}});
    if resources {
        c["resources"] = json!({"limits": {"cpu": "1"}});
    }
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "shop", "labels": {"app": name}},
           "spec": {"containers": [c]}})
}

fn manifests(dir: &Path) -> std::path::PathBuf {
    let docs = [
        pod("latest", "nginx:latest", false, true), // newly denied, warning removed
        pod("privileged", "nginx:1.27", true, true), // no longer denied
        pod("host", "nginx:1.27", false, true),     // new warning
        pod("plain", "nginx:1.27", false, false),   // warning removed
    ];
    let text: Vec<String> = docs
        .iter()
        .map(|d| serde_yaml_ng::to_string(d).unwrap())
        .collect();
    let path = dir.join("pods.yaml");
    std::fs::write(&path, text.join("---\n")).unwrap();
    path
}

fn regent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .output()
        .unwrap()
}

fn diff(old: &Path, new: &Path, files: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "diff",
        "--from",
        old.to_str().unwrap(),
        "--to",
        new.to_str().unwrap(),
        "-f",
        files.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    regent(&args)
}

#[test]
fn each_change_class_is_found_with_its_policies() {
    let (old, new, tmp) = (old_bundle(), new_bundle(), tempfile::tempdir().unwrap());
    let files = manifests(tmp.path());
    let out = diff(old.path(), new.path(), &files, &["-o", "json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["compared"], 4);
    assert_eq!(report["stricter"], true);
    assert_eq!(
        report["counts"],
        json!({"newly_denied": 1, "no_longer_denied": 1, "denial_changed": 0,
               "new_warning": 1, "removed_warning": 2, "patch_differs": 4})
    );
    let by_name = |n: &str| -> Value {
        report["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == n)
            .unwrap()
            .clone()
    };
    let latest = by_name("latest");
    assert_eq!(
        latest["changes"],
        json!(["newly_denied", "removed_warning", "patch_differs"])
    );
    assert_eq!(latest["policies"]["newly_denied"], json!(["tag"]));
    assert_eq!(latest["denials_added"], json!(["[tag] spec: mutable tag."]));
    let privileged = by_name("privileged");
    assert_eq!(
        privileged["changes"],
        json!(["no_longer_denied", "patch_differs"])
    );
    assert_eq!(privileged["policies"]["no_longer_denied"], json!(["priv"]));
    let host = by_name("host");
    assert_eq!(host["policies"]["new_warning"], json!(["host"]));
    let plain = by_name("plain");
    assert_eq!(plain["policies"]["removed_warning"], json!(["res"]));
    // The patch operations that differ.
    assert_eq!(
        plain["patch_added"],
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "b"}])
    );
    assert_eq!(
        plain["patch_removed"],
        json!([{"op": "add", "path": "/metadata/labels/team", "value": "a"}])
    );
}

#[test]
fn exit_codes_follow_what_got_stricter() {
    let (old, new, tmp) = (old_bundle(), new_bundle(), tempfile::tempdir().unwrap());
    // Only a new warning: 0, or 1 with --fail-on warn.
    let host_only = tmp.path().join("host.yaml");
    std::fs::write(
        &host_only,
        serde_yaml_ng::to_string(&pod("host", "nginx:1.27", false, true)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        diff(old.path(), new.path(), &host_only, &[]).status.code(),
        Some(0)
    );
    assert_eq!(
        diff(old.path(), new.path(), &host_only, &["--fail-on", "warn"])
            .status
            .code(),
        Some(1)
    );
    // The reverse direction relaxes: nothing got stricter.
    let privileged = tmp.path().join("priv.yaml");
    std::fs::write(
        &privileged,
        serde_yaml_ng::to_string(&pod("privileged", "nginx:1.27", true, true)).unwrap(),
    )
    .unwrap();
    assert_eq!(
        diff(old.path(), new.path(), &privileged, &[]).status.code(),
        Some(0)
    );
    assert_eq!(
        diff(new.path(), old.path(), &privileged, &[]).status.code(),
        Some(1)
    );
    // Errors: a bundle that does not compile, input that cannot be read.
    let broken = bundle_dir(&[(
        "validate/x/policy.rego",
        "package validate.x\nviolation contains x if {\n",
    )]);
    let out = diff(old.path(), broken.path(), &host_only, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validate/x/policy.rego:"));
    assert_eq!(
        diff(
            old.path(),
            new.path(),
            &tmp.path().join("missing.yaml"),
            &[]
        )
        .status
        .code(),
        Some(2)
    );
    // Without --from: the embedded default bundle, whose `pod_security`
    // policy denied the Pod before; `priv` denies it now, so the denial changed but
    // nothing got stricter.
    let out = regent(&[
        "diff",
        "--to",
        old.path().to_str().unwrap(),
        "-f",
        privileged.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("denial_changed"), "{text}");
    assert!(text.contains("- deny  [pod_security]"), "{text}");
    assert!(text.contains("+ deny  [priv]"), "{text}");
}

#[test]
fn markdown_puts_counts_first_and_caps_the_objects() {
    let (old, new, tmp) = (old_bundle(), new_bundle(), tempfile::tempdir().unwrap());
    let files = manifests(tmp.path());
    let out = diff(
        old.path(),
        new.path(),
        &files,
        &["-o", "markdown", "--max-objects", "2"],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let table = text.find("| newly denied | 1 |").unwrap();
    let first_section = text.find("#### ").unwrap();
    assert!(table < first_section, "{text}");
    assert!(text.contains("#### patch differs (4): `team` 4"), "{text}");
    assert!(text.contains("- … and 2 more"), "{text}");
    assert!(text.lines().count() < 40, "{text}");
}

#[test]
fn its_decisions_are_regent_evals_under_each_bundle() {
    let (old, new, tmp) = (old_bundle(), new_bundle(), tempfile::tempdir().unwrap());
    let files = manifests(tmp.path());
    let out = diff(old.path(), new.path(), &files, &["-o", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for (bundle, side) in [(old.path(), "before"), (new.path(), "after")] {
        let eval = regent(&[
            "eval",
            "--mutate",
            "-o",
            "json",
            "--policies",
            bundle.to_str().unwrap(),
            "-f",
            files.to_str().unwrap(),
        ]);
        let records: Value = serde_json::from_slice(&eval.stdout).unwrap();
        for record in records.as_array().unwrap() {
            let name = record["name"].as_str().unwrap();
            let Some(changed) = report["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["name"] == name)
            else {
                continue;
            };
            let s = &changed[side];
            assert_eq!(s["allowed"], record["allowed"], "{name} {side}");
            let mut warnings: Vec<Value> = record["warnings"].as_array().unwrap().clone();
            warnings.sort_by_key(|w| w.to_string());
            assert_eq!(s["warnings"], Value::Array(warnings), "{name} {side}");
            assert_eq!(
                s["patch"],
                record["patch"]
                    .clone()
                    .as_array()
                    .map(|a| Value::Array(a.clone()))
                    .unwrap_or(json!([])),
                "{name} {side}"
            );
            for line in s["denials"].as_array().unwrap() {
                assert!(
                    record["message"]
                        .as_str()
                        .unwrap()
                        .contains(line.as_str().unwrap()),
                    "{name} {side}"
                );
            }
        }
    }
}
