//! Tests of the parent module.

#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;

fn template(rego: &str) -> ObjectDoc {
    let mut text = String::from(
        "apiVersion: templates.gatekeeper.sh/v1\nkind: ConstraintTemplate\nmetadata:\n  name: t\nspec:\n  crd:\n    spec:\n      names:\n        kind: T\n  targets:\n    - target: admission.k8s.gatekeeper.sh\n      rego: |\n",
    );
    for line in rego.lines() {
        text.push_str("        ");
        text.push_str(line);
        text.push('\n');
    }
    let value = serde_yaml_ng::from_str(&text).unwrap();
    ObjectDoc {
        path: "t.yaml".into(),
        line: 1,
        text,
        value,
    }
}

fn constraint() -> ObjectDoc {
    constraint_of("T", "c")
}

fn constraint_of(kind: &str, name: &str) -> ObjectDoc {
    let text = format!(
        "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: {kind}\nmetadata:\n  name: {name}\n"
    );
    ObjectDoc {
        path: "c.yaml".into(),
        line: 1,
        value: serde_yaml_ng::from_str(&text).unwrap(),
        text,
    }
}

fn messages(rego: &str, object: &str) -> Vec<String> {
    let set = Set::compile(&[template(rego), constraint()], Limits::default()).unwrap();
    let request = Value::from_json_str(&format!(
        r#"{{"kind": {{"group": "", "version": "v1", "kind": "Pod"}}, "object": {object}}}"#
    ))
    .unwrap();
    let inventory = Value::from(inventory(std::iter::empty()));
    set.review(&request, &inventory, WEBHOOK_POINT, Budget::UNLIMITED)
        .unwrap()
        .into_iter()
        .flat_map(|h| h.messages)
        .collect()
}

#[test]
fn older_rego_gets_opas_deprecated_builtins() {
    let rego = "package t\nviolation[{\"msg\": m}] {\n  re_match(\"^web-\", input.review.object.metadata.name)\n  any([false, true])\n  not all([true, false])\n  d := set_diff({1, 2, 3}, {2})\n  count(d) == 2\n  count(cast_set([1, 1, 2])) == 2\n  m := \"deprecated builtins work\"\n}\n";
    assert_eq!(
        messages(rego, r#"{"metadata": {"name": "web-1"}}"#),
        vec!["deprecated builtins work".to_string()]
    );
    assert!(messages(rego, r#"{"metadata": {"name": "db-1"}}"#).is_empty());
}

#[test]
fn the_vm_is_checked_on_an_update_with_missing_fields_too() {
    // Two definitions of a multi-level rule head (`cfg.mode.a`,
    // `cfg.mode.b`) merge on the interpreter, as in OPA, and conflict on
    // the VM; both are defined only on an UPDATE that has an old object,
    // which the plain Pod sample is not.
    let evaluator = |rego: &str| {
        Set::compile(&[template(rego), constraint()], Limits::default())
            .unwrap()
            .template_evaluators()
            .into_iter()
            .map(|t| t.evaluator)
            .collect::<Vec<_>>()
    };
    let diverges_on_update = "package t\ncfg.mode.a = 1 {\n  input.review.operation == \"UPDATE\"\n}\ncfg.mode.b = 2 {\n  input.review.oldObject\n}\nviolation[{\"msg\": m}] {\n  input.review.operation == \"UPDATE\"\n  c := cfg\n  m := sprintf(\"%v\", [c])\n}\n";
    assert_eq!(
        evaluator(diverges_on_update),
        vec![crate::runtime::Evaluator::Interpreter]
    );
    let agrees = "package t\nviolation[{\"msg\": m}] {\n  input.review.operation == \"UPDATE\"\n  input.review.oldObject\n  m := \"updated\"\n}\n";
    assert_eq!(evaluator(agrees), vec![crate::runtime::Evaluator::Vm]);
}

#[test]
fn an_unknown_function_is_a_load_error_with_its_position() {
    let rego =
        "package t\n\nviolation[{\"msg\": m}] {\n  m := no_such_function(input.review.object)\n}\n";
    let err = Set::compile(&[template(rego)], Limits::default())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no_such_function"), "{err}");
    assert!(err.contains("spec.targets[0].rego:4:"), "{err}");
    // The Rego's line 4 is line 16 of the YAML file.
    assert!(
        err.starts_with("ConstraintTemplate t does not compile: t.yaml:16:"),
        "{err}"
    );
}

#[test]
fn templates_are_isolated_from_each_other() {
    // Two templates may declare the same lib package differently.
    let a = "package a\nimport data.lib.x\nviolation[{\"msg\": x.v}] { true }\n";
    let mut ta = template(a);
    ta.value["metadata"]["name"] = "ta".into();
    ta.value["spec"]["crd"]["spec"]["names"]["kind"] = "TA".into();
    ta.value["spec"]["targets"][0]["libs"] =
        serde_json::json!(["package lib.x\nv := \"from a\"\n"]);
    let mut tb = ta.clone();
    tb.value["metadata"]["name"] = "tb".into();
    tb.value["spec"]["crd"]["spec"]["names"]["kind"] = "TB".into();
    tb.value["spec"]["targets"][0]["libs"] =
        serde_json::json!(["package lib.x\nv := \"from b\"\n"]);
    let set = Set::compile(
        &[ta, tb, constraint_of("TA", "ca"), constraint_of("TB", "cb")],
        Limits::default(),
    )
    .unwrap();
    let request = Value::from_json_str(
        r#"{"kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": {}}"#,
    )
    .unwrap();
    let inventory = Value::from(inventory(std::iter::empty()));
    let hits = set
        .review(&request, &inventory, WEBHOOK_POINT, Budget::UNLIMITED)
        .unwrap();
    let got: Vec<(String, Vec<String>)> = hits
        .into_iter()
        .map(|h| (h.constraint, h.messages))
        .collect();
    assert_eq!(
        got,
        vec![
            ("ca".to_string(), vec!["from a".to_string()]),
            ("cb".to_string(), vec!["from b".to_string()])
        ]
    );
}

/// Seven templates, each reporting its own message (one fails to
/// evaluate), a Pod request and an empty inventory.
fn seven_templates() -> (Set, Value, Value) {
    let mut docs = Vec::new();
    for i in 0..7 {
        let rego = if i == 3 {
            "package t\nviolation[{\"msg\": m}] {\n  m := sprintf(\"%v\", [to_number(\"x\")])\n}\n"
                .to_string()
        } else {
            format!("package t\nviolation[{{\"msg\": m}}] {{\n  m := sprintf(\"t{i} saw %v\", [input.review.object.metadata.name])\n}}\n")
        };
        let mut t = template(&rego);
        t.value["metadata"]["name"] = format!("t{i}").into();
        t.value["spec"]["crd"]["spec"]["names"]["kind"] = format!("T{i}").into();
        docs.push(t);
        docs.push(constraint_of(&format!("T{i}"), &format!("c{i}")));
    }
    let set = Set::compile(&docs, Limits::default()).unwrap();
    let request = Value::from_json_str(
        r#"{"kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": {"metadata": {"name": "web"}}}"#,
    )
    .unwrap();
    let inventory = Value::from(inventory(std::iter::empty()));
    (set, request, inventory)
}

/// Reviews at the webhook until one is split on this thread (other
/// tests' requests in progress may prevent it for a while): whether one
/// was, within 200 tries.
fn some_review_splits(set: &Set, request: &Value, inventory: &Value, split: bool) -> bool {
    let before = helper::splits_here();
    for _ in 0..200 {
        set.review_at_webhook(request, inventory, Budget::UNLIMITED, split)
            .unwrap();
        if helper::splits_here() > before {
            return true;
        }
    }
    false
}

fn two_cores() -> bool {
    std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
}

#[test]
fn a_webhook_review_split_over_two_threads_decides_as_one_thread_does() {
    // The split review must give the same results, in order.
    let (set, request, inventory) = seven_templates();
    let summary = |r: Reviewed| {
        (
            r.hits
                .into_iter()
                .map(|h| (h.constraint, h.messages))
                .collect::<Vec<_>>(),
            r.checked.len(),
            r.errors
                .into_iter()
                .map(|(c, e)| (c.constraint, e.to_string()))
                .collect::<Vec<_>>(),
        )
    };
    let alone = summary(
        set.review_all(&request, &inventory, WEBHOOK_POINT, Budget::UNLIMITED, true)
            .unwrap(),
    );
    assert_eq!(alone.0.len(), 6, "{alone:?}");
    assert_eq!(
        alone.0[0],
        ("c0".to_string(), vec!["t0 saw web".to_string()])
    );
    // Other tests may run reviews at the same time (then nothing is
    // split): try until one review was split.
    let before = helper::splits_here();
    for _ in 0..200 {
        let split = summary(
            set.review_at_webhook(&request, &inventory, Budget::UNLIMITED, true)
                .unwrap(),
        );
        assert_eq!(split, alone);
        if helper::splits_here() > before {
            return;
        }
    }
    assert!(!two_cores(), "no review was split");
}

#[test]
fn a_review_is_split_only_when_the_caller_says_the_request_is_alone() {
    use crate::compose::Load;
    let (set, request, inventory) = seven_templates();
    // Alone (the server counted no other request in progress): splits.
    assert!(
        some_review_splits(&set, &request, &inventory, Load::Alone.may_split()) || !two_cores(),
        "a lone request was never split"
    );
    // Another request in progress (its body being received, say), or
    // a background evaluation: never.
    for load in [Load::Busy, Load::Background] {
        let before = helper::splits_here();
        for _ in 0..50 {
            set.review_at_webhook(&request, &inventory, Budget::UNLIMITED, load.may_split())
                .unwrap();
        }
        assert_eq!(helper::splits_here(), before);
    }
}
