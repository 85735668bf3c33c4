//! Tests of [`super`]: warnings, denial texts and their limits.

use super::*;

fn v(path: &str, msg: &str, fix: &str) -> Violation {
    Violation {
        path: Some(path.into()),
        msg: msg.into(),
        fix: Some(fix.into()),
        control: None,
        enforcement: None,
    }
}

#[test]
fn a_line_names_policy_path_problem_and_fix() {
    assert_eq!(
        line("privileged", &v("spec.containers[0].securityContext.privileged", "container \"app\" runs privileged", "set it to false")),
        "[privileged] spec.containers[0].securityContext.privileged: container \"app\" runs privileged. Fix: set it to false."
    );
    let bare = Violation {
        path: None,
        msg: "plain message.".into(),
        fix: None,
        control: None,
        enforcement: None,
    };
    assert_eq!(line("p", &bare), "[p] plain message.");
}

#[test]
fn denial_is_counted_and_capped() {
    let lines: Vec<String> = (0..25).map(|i| format!("[p{}] x{i:02}", i % 2)).collect();
    let m = denial_message("Pod ns/a", &lines);
    assert!(
        m.starts_with("Pod ns/a violates 2 policies:\n[p0] x00"),
        "{m}"
    );
    assert_eq!(m.lines().count(), 1 + MAX_DENIAL_LINES + 1);
    assert!(
        m.ends_with("... and 5 more (run `regent eval -f <manifest>` to see them all)."),
        "{m}"
    );
    let one = denial_message("Pod ns/a", &["[p] x.".to_string()]);
    assert_eq!(one, "Pod ns/a violates 1 policy:\n[p] x.");
}

#[test]
fn a_long_warning_keeps_its_fix_whole_and_cuts_the_rest_at_a_word() {
    let msg = "container \"app\" has a writable root filesystem ".repeat(8);
    let fix = "set securityContext.readOnlyRootFilesystem: true and mount an emptyDir where the app writes";
    let line = fit(
        "read_only_root_filesystem",
        Some("spec.containers[0]"),
        &msg,
        Some(fix),
        MAX_WARNING_CHARS,
    );
    assert!(line.chars().count() <= MAX_WARNING_CHARS, "{line}");
    assert!(line.ends_with(&format!(". Fix: {fix}.")), "{line}");
    let before_fix = line.split(". Fix:").next().unwrap_or_default();
    let cut = before_fix
        .strip_suffix('…')
        .unwrap_or_else(|| panic!("not shortened: {line}"));
    let last_word = cut.rsplit(' ').next().unwrap_or_default();
    assert!(
        msg.split(' ').any(|w| w == last_word),
        "cut mid-word ({last_word:?}): {line}"
    );
}

#[test]
fn advice_repeated_for_each_container_is_one_line() {
    let fired = vec![Fired {
        policy: "privilege_escalation".into(),
        enforcement: Enforcement::Warn,
        violations: vec![
            v(
                "spec.containers[0].x",
                "container \"a\" may escalate privileges",
                "set it to false",
            ),
            v(
                "spec.containers[1].x",
                "container \"b\" may escalate privileges",
                "set it to false",
            ),
            v(
                "spec.containers[2].y",
                "container \"c\" runs as root",
                "other fix",
            ),
        ],
        gatekeeper: false,
        kind: None,
    }];
    assert_eq!(
        warning_lines(&fired),
        vec![
            "[privilege_escalation] container \"a\" may escalate privileges; container \"b\" may escalate privileges. Fix: set it to false.".to_string(),
            "[privilege_escalation] spec.containers[2].y: container \"c\" runs as root. Fix: other fix.".to_string(),
        ]
    );
}

#[test]
fn long_warnings_are_truncated() {
    let s = "x".repeat(300);
    assert_eq!(
        truncate(&s, MAX_WARNING_CHARS).chars().count(),
        MAX_WARNING_CHARS
    );
}
