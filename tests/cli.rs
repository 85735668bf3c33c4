//! The `regent` commands as a user runs them: output and exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::{bundle_dir, repo_path};
use serde_json::Value;

fn regent(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .output()
        .unwrap()
}

fn regent_stdin(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn manifest(name: &str) -> String {
    repo_path(&format!("tests/fixtures/manifests/{name}"))
        .display()
        .to_string()
}

#[test]
fn eval_admits_the_well_formed_pod_with_exit_0() {
    let out = regent(&["eval", "-f", &manifest("well-formed-pod.yaml")]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("pod/web admitted"), "{t}");
    assert!(!t.contains("Warning:"), "{t}");
}

#[test]
fn eval_denies_with_kubectl_like_text_and_exit_1() {
    let out = regent(&["eval", "-f", &manifest("insecure-deployment.yaml")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("Error from server (Forbidden): error when creating"),
        "{t}"
    );
    assert!(t.contains("admission webhook \"validate.regent.dev\" denied the request: Deployment shop/legacy-api violates 3 policies:"), "{t}");
    assert!(t.contains("\n[pod_security] spec.template.spec.containers[0].securityContext.privileged: container \"api\" runs privileged (Pod Security baseline: Privileged Containers)."), "{t}");
    // Conventions and restricted-profile hints are dry-run: in audit
    // reports, not at apply.
    assert!(!t.contains("[required_labels]"), "{t}");
    // Resources were defaulted, and the developer is told.
    assert!(t.contains("Warning: [default_resources] default resources (requests cpu 100m, memory 128Mi) were set where containers \"api\", \"setup\" declared none"), "{t}");
    assert!(!t.contains("Running as Non-root"), "{t}");
}

#[test]
fn eval_reads_directories_stdin_reviews_and_prints_json() {
    let out = regent(&[
        "eval",
        "-f",
        &repo_path("tests/fixtures/manifests").display().to_string(),
        "-o",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records.as_array().unwrap().len(), 2);
    let denied = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["allowed"] == false)
        .unwrap();
    assert!(denied["violations"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["policy"] == "pod_security"
            && v["enforcement"] == "deny"
            && v["path"].as_str().unwrap().ends_with("hostPath")));

    let review = std::fs::read_to_string(repo_path("core/src/rego/warmup_review.json")).unwrap();
    let out = regent_stdin(&["eval", "-f", "-", "-o", "json"], &review);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(records[0]["name"], "warmup");
}

#[test]
fn eval_mutate_shows_patch_and_mutated_object() {
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\n  annotations: {regent.dev/inject: otel-agent}\nspec:\n  containers:\n  - name: app\n    image: registry.example.com/app:1.0\n";
    let out = regent_stdin(&["eval", "-f", "-", "--mutate", "-o", "json"], pod);
    let records: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &records[0];
    let paths: Vec<&str> = r["patch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert!(paths.contains(&"/spec/containers/0/resources"), "{paths:?}");
    assert!(paths.contains(&"/metadata/labels"), "{paths:?}");
    assert_eq!(r["mutated"]["spec"]["containers"][1]["name"], "otel-agent");
    // Validation saw the mutated object: no complaint about missing
    // resources; the mutation says it set them, and nothing else warns.
    let warnings: Vec<&str> = r["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(
        warnings
            .iter()
            .any(|w| w.starts_with("[default_resources] default resources")),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 1, "{warnings:?}");

    let out = regent_stdin(&["eval", "-f", "-", "--mutate"], pod);
    let t = text(&out);
    assert!(
        t.contains("--- patch for pod/bare (by default_resources, ")
            && t.contains("--- mutated pod/bare:"),
        "{t}"
    );
}

#[test]
fn eval_input_and_usage_errors_exit_2() {
    let out = regent(&["eval", "-f", "/does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("/does/not/exist.yaml"));
    let out = regent_stdin(&["eval", "-f", "-"], "kind: Pod\nmetadata: [unclosed\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = regent_stdin(&["eval", "-f", "-"], "- just\n- a list\n");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = regent(&["eval"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = regent(&["eval", "-f", "x", "--operation", "PATCH"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

#[test]
fn test_runs_the_default_bundle_tests() {
    let out = regent(&["test", &repo_path("policies").display().to_string()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let line = t.lines().find(|l| l.starts_with("PASS: ")).unwrap();
    let (passed, total) = line["PASS: ".len()..].split_once('/').unwrap();
    assert_eq!(passed, total);
    assert!(total.parse::<usize>().unwrap() >= 40, "{line}");
}

#[test]
fn test_reports_failures_with_file_and_line() {
    let dir = bundle_dir(&[
        ("validate/p/policy.rego", "package validate.p\nimport rego.v1\nviolation contains \"x\" if input.request.object.bad\n"),
        (
            "validate/p/policy_test.rego",
            "package validate.p_test\nimport rego.v1\nimport data.validate.p\n\ntest_passes if count(p.violation) == 0 with input as {}\n\ntest_fails if count(p.violation) == 1 with input as {}\n",
        ),
    ]);
    let out = regent(&["test", &dir.path().display().to_string()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("FAIL: data.validate.p_test.test_fails at validate/p/policy_test.rego:7"),
        "{t}"
    );
    assert!(t.contains("PASS: 1/2") && t.contains("FAIL: 1/2"), "{t}");
}

#[test]
fn check_names_file_line_and_column_of_broken_rego() {
    let dir = bundle_dir(&[(
        "validate/broken/policy.rego",
        "package validate.broken\nimport rego.v1\n\nviolation contains msg if {\n  msg := sprintf(\"%v\", [input.x]\n}\n",
    )]);
    let out = regent(&["check", &dir.path().display().to_string()]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("error: validate/broken/policy.rego:5:7: expecting `}`"),
        "{t}"
    );

    let dir = bundle_dir(&[("validate/d/data.yaml", "enforcement: [\n")]);
    let out = regent(&["check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("validate/d/data.yaml:"),
        "{}",
        text(&out)
    );

    let out = regent(&["check", &repo_path("policies").display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("7 validating policies, 4 mutating policies"),
        "{}",
        text(&out)
    );
}

#[test]
fn cert_writes_a_ca_and_pair_and_prints_the_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let out = regent(&[
        "cert",
        "--out",
        &dir.path().display().to_string(),
        "--dns",
        "regent.regent-system.svc,regent.regent-system.svc.cluster.local",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let ca = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();
    let bundle = String::from_utf8(out.stdout).unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle.trim())
        .unwrap();
    assert_eq!(decoded, ca.as_bytes());
    let cert = std::fs::read(dir.path().join("tls.crt")).unwrap();
    let key = std::fs::read(dir.path().join("tls.key")).unwrap();
    regent::serve::tls::certified_key(&cert, &key, "written").unwrap();
    let out = regent(&["cert", "--out", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
}

/// `regent verify ... | head -1`: the reader goes away after the first
/// line; the command ends with SIGPIPE's status, without a panic report.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_regent"))
        .args(["verify", "-v", "tests/fixtures/gatekeeper"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end at once: every line the command prints hits a
    // closed pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(141), "{stderr}");
}
