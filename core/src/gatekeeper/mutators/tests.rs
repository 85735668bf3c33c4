//! Mutator semantics, case by case: Gatekeeper's own unit-test tables where
//! they exist (ModifySet's setter, AssignImage's parser), and our cases for
//! locations, path tests, ordering, convergence and load refusals.

#![allow(clippy::unwrap_used, clippy::panic)]

use serde_json::{json, Value as Json};

use super::*;
use crate::objects::parse_policy_objects;

fn load(yaml: &str) -> Result<Mutators, GatekeeperError> {
    let docs = parse_policy_objects("m.yaml", yaml).unwrap();
    Mutators::load(docs.iter())
}

fn refusal(yaml: &str) -> String {
    load(yaml).unwrap_err().to_string()
}

const POD: &str = r#"applyTo:
  - groups: [""]
    kinds: ["Pod"]
    versions: ["v1"]"#;

fn assign(name: &str, location: &str, parameters: &str) -> String {
    format!(
        "apiVersion: mutations.gatekeeper.sh/v1\nkind: Assign\nmetadata:\n  name: {name}\nspec:\n  {POD}\n  location: {location:?}\n  parameters:\n{}\n",
        indent(parameters, 4)
    )
}

fn modify_set(name: &str, location: &str, parameters: &str) -> String {
    format!(
        "apiVersion: mutations.gatekeeper.sh/v1\nkind: ModifySet\nmetadata:\n  name: {name}\nspec:\n  {POD}\n  location: {location:?}\n  parameters:\n{}\n",
        indent(parameters, 4)
    )
}

fn indent(text: &str, n: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}", " ".repeat(n)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn pod(spec: Json) -> Json {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "namespace": "default"}, "spec": spec})
}

/// Runs the mutators at admission (CREATE in `default`).
fn run(m: &Mutators, mut object: Json) -> Result<(Json, Applied), MutateError> {
    let applied = m.mutate(&mut object, "default", "CREATE", None, None)?;
    Ok((object, applied))
}

fn mutated(m: &Mutators, object: Json) -> Json {
    run(m, object).unwrap().0
}

#[test]
fn modify_set_setter_follows_gatekeepers_table() {
    // (values, existing, expected merge, expected prune); None: absent.
    type Case = (Json, Option<Json>, Option<Json>, Option<Json>);
    let cases: Vec<Case> = vec![
        (
            json!([]),
            Some(json!(["a", "b", "c"])),
            Some(json!(["a", "b", "c"])),
            Some(json!(["a", "b", "c"])),
        ),
        (
            json!(["a", "b"]),
            Some(json!(["a", "b", "c"])),
            Some(json!(["a", "b", "c"])),
            Some(json!(["c"])),
        ),
        (
            json!(["a", "b", "d"]),
            Some(json!(["a", "b", "c"])),
            Some(json!(["a", "b", "c", "d"])),
            Some(json!(["c"])),
        ),
        (
            json!(["a", "b", "d"]),
            None,
            Some(json!(["a", "b", "d"])),
            None,
        ),
        (
            json!(["a", "b", "d"]),
            Some(json!([])),
            Some(json!(["a", "b", "d"])),
            Some(json!([])),
        ),
        (
            json!([["a", "b", "d"], ["z", "y", "q"]]),
            Some(json!([["a", "b", "d"], ["r", "r", "r"]])),
            Some(json!([["a", "b", "d"], ["r", "r", "r"], ["z", "y", "q"]])),
            Some(json!([["r", "r", "r"]])),
        ),
        (
            json!(["a"]),
            Some(json!(["a", "b", "a"])),
            Some(json!(["a", "b", "a"])),
            Some(json!(["b"])),
        ),
    ];
    for (values, existing, merged, pruned) in cases {
        for (op, want) in [("merge", &merged), ("prune", &pruned)] {
            let m = load(&modify_set(
                "s",
                "spec.field",
                &format!("operation: {op}\nvalues:\n  fromList: {values}"),
            ))
            .unwrap();
            let mut spec = json!({});
            if let Some(e) = &existing {
                spec["field"] = e.clone();
            }
            let out = mutated(&m, pod(spec));
            assert_eq!(
                out["spec"].get("field"),
                want.as_ref(),
                "{op} {values} into {existing:?}"
            );
        }
    }
    // A value that is not a list is an error, for both operations.
    for op in ["merge", "prune"] {
        let m = load(&modify_set(
            "s",
            "spec.field",
            &format!("operation: {op}\nvalues:\n  fromList: [a]"),
        ))
        .unwrap();
        let err = run(&m, pod(json!({"field": 7}))).unwrap_err();
        assert!(err.to_string().contains("is not a list of values"), "{err}");
    }
}

#[test]
fn assign_creates_missing_parents_and_keyed_elements() {
    let m = load(&assign(
        "pull",
        "spec.containers[name: foo].imagePullPolicy",
        "assign:\n  value: Always",
    ))
    .unwrap();
    let out = mutated(&m, pod(json!({"containers": [{"name": "bar"}]})));
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "bar"}, {"name": "foo", "imagePullPolicy": "Always"}])
    );
    let out = mutated(&m, pod(json!({})));
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "foo", "imagePullPolicy": "Always"}])
    );
}

#[test]
fn a_glob_visits_every_element_and_never_creates_one() {
    let m = load(&assign(
        "pull",
        "spec.containers[name: *].imagePullPolicy",
        "assign:\n  value: Always",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(json!({"containers": [{"name": "a"}, {"name": "b", "imagePullPolicy": "Never"}]})),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a", "imagePullPolicy": "Always"}, {"name": "b", "imagePullPolicy": "Always"}])
    );
    let (out, applied) = run(&m, pod(json!({"containers": []}))).unwrap();
    assert_eq!(out["spec"]["containers"], json!([]));
    assert!(applied.changed.is_empty());
}

#[test]
fn path_tests_stop_the_walk_where_they_say() {
    // The docs' demo-privileged: only when container foo exists.
    let m = load(&assign(
        "priv",
        "spec.containers[name:foo].securityContext.privileged",
        "assign:\n  value: false\npathTests:\n- subPath: \"spec.containers[name:foo]\"\n  condition: MustExist",
    ))
    .unwrap();
    let untouched = pod(json!({"containers": [{"name": "bar"}]}));
    assert_eq!(mutated(&m, untouched.clone()), untouched);
    let out = mutated(&m, pod(json!({"containers": [{"name": "foo"}]})));
    assert_eq!(
        out["spec"]["containers"][0]["securityContext"],
        json!({"privileged": false})
    );

    // A default: only where the field is absent.
    let m = load(&assign(
        "ro",
        "spec.containers[name:*].securityContext.readOnlyRootFilesystem",
        "assign:\n  value: true\npathTests:\n- subPath: spec.containers[name:*].securityContext.readOnlyRootFilesystem\n  condition: MustNotExist",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(
            json!({"containers": [{"name": "a"}, {"name": "b", "securityContext": {"readOnlyRootFilesystem": false}}]}),
        ),
    );
    assert_eq!(
        out["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(
        out["spec"]["containers"][1]["securityContext"]["readOnlyRootFilesystem"],
        false
    );

    // MustNotExist on a glob can never hold.
    let m = load(&assign(
        "g",
        "spec.containers[name:*].x",
        "assign:\n  value: 1\npathTests:\n- subPath: spec.containers[name:*]\n  condition: MustNotExist",
    ))
    .unwrap();
    let p = pod(json!({"containers": [{"name": "a"}]}));
    assert_eq!(mutated(&m, p.clone()), p);

    // MustNotExist on a keyed element: a sidecar added once, never replaced.
    let m = load(&assign(
        "side",
        "spec.containers[name:proxy]",
        "assign:\n  value: {name: proxy, image: proxy:1}\npathTests:\n- subPath: spec.containers[name:proxy]\n  condition: MustNotExist",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(json!({"containers": [{"name": "proxy", "image": "mine"}]})),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "proxy", "image": "mine"}])
    );
}

#[test]
fn assigning_a_keyed_element_replaces_it_or_appends_it() {
    let m = load(&assign(
        "side",
        "spec.containers[name: networking]",
        "assign:\n  value:\n    name: networking\n    image: quay.io/foo/bar:latest",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(json!({"containers": [{"name": "networking", "image": "old"}, {"name": "app"}]})),
    );
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "networking", "image": "quay.io/foo/bar:latest"}, {"name": "app"}])
    );
    let out = mutated(&m, pod(json!({"containers": [{"name": "app"}]})));
    assert_eq!(out["spec"]["containers"][1]["name"], "networking");
}

#[test]
fn integer_keys_match_numbers_only() {
    let m = load(&assign(
        "port",
        "spec.containers[name: a].ports[containerPort: 80].protocol",
        "assign:\n  value: TCP",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(
            json!({"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": "80"}]}]}),
        ),
    );
    assert_eq!(
        out["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80, "protocol": "TCP"}, {"containerPort": "80"}])
    );
}

#[test]
fn from_metadata_uses_the_requests_namespace_and_leaves_metadata_as_sent() {
    let m = load(&assign(
        "ns",
        "spec.nodeSelector.team",
        "assign:\n  fromMetadata:\n    field: namespace",
    ))
    .unwrap();
    let mut object =
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}});
    m.mutate(&mut object, "payments", "CREATE", None, None)
        .unwrap();
    assert_eq!(object["spec"]["nodeSelector"]["team"], "payments");
    assert_eq!(
        object["metadata"],
        json!({"name": "p"}),
        "the namespace is not patched in"
    );
    let m = load(&assign(
        "n",
        "spec.hostname",
        "assign:\n  fromMetadata:\n    field: name",
    ))
    .unwrap();
    assert_eq!(mutated(&m, pod(json!({})))["spec"]["hostname"], "p");
}

#[test]
fn assign_if_tests_the_current_value() {
    let m = load(&assign(
        "pp",
        "spec.containers[name:*].imagePullPolicy",
        "assign:\n  value: Always\nassignIf:\n  in: [IfNotPresent]",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(
            json!({"containers": [{"name": "a", "imagePullPolicy": "IfNotPresent"}, {"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}]}),
        ),
    );
    let policies: Vec<&Json> = out["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["imagePullPolicy"])
        .collect();
    assert_eq!(
        policies,
        vec![&json!("Always"), &json!("Never"), &Json::Null]
    );
    let m = load(&assign(
        "pp",
        "spec.containers[name:*].imagePullPolicy",
        "assign:\n  value: Always\nassignIf:\n  notIn: [Never]",
    ))
    .unwrap();
    let out = mutated(
        &m,
        pod(json!({"containers": [{"name": "b", "imagePullPolicy": "Never"}, {"name": "c"}]})),
    );
    assert_eq!(out["spec"]["containers"][0]["imagePullPolicy"], "Never");
    assert_eq!(out["spec"]["containers"][1]["imagePullPolicy"], "Always");
}

#[test]
fn assign_metadata_only_adds_what_is_absent() {
    let m = load(
        "apiVersion: mutations.gatekeeper.sh/v1beta1\nkind: AssignMetadata\nmetadata:\n  name: owner\nspec:\n  location: metadata.labels.owner\n  parameters:\n    assign:\n      value: admin\n",
    )
    .unwrap();
    let mut p = pod(json!({}));
    p["metadata"]["labels"] = json!({"owner": "me"});
    assert_eq!(mutated(&m, p.clone()), p);
    let out = mutated(&m, pod(json!({})));
    assert_eq!(out["metadata"]["labels"], json!({"owner": "admin"}));
    // It has no applyTo: every kind its match selects.
    let mut cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    m.mutate(&mut cm, "default", "UPDATE", None, None).unwrap();
    assert_eq!(cm["metadata"]["labels"]["owner"], "admin");
}

#[test]
fn assign_image_changes_only_the_parts_it_names() {
    let m = load(
        "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: mirror\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [Pod]\n    versions: [v1]\n  location: \"spec.containers[name:*].image\"\n  parameters:\n    assignDomain: mirror.example.com\n",
    )
    .unwrap();
    let out = mutated(
        &m,
        pod(
            json!({"containers": [{"name": "a", "image": "nginx:1.25"}, {"name": "b", "image": "docker.io/library/busybox@sha256:0123456789abcdef0123456789abcdef"}]}),
        ),
    );
    assert_eq!(
        out["spec"]["containers"][0]["image"],
        "mirror.example.com/nginx:1.25"
    );
    assert_eq!(
        out["spec"]["containers"][1]["image"],
        "mirror.example.com/library/busybox@sha256:0123456789abcdef0123456789abcdef"
    );
    let err = run(&m, pod(json!({"containers": [{"name": "a", "image": 5}]}))).unwrap_err();
    assert!(err.to_string().contains("to be a string"), "{err}");
}

#[test]
fn mutators_run_in_gatekeepers_order() {
    // Two defaults for one field: the first by kind, then name, wins.
    let yaml = [
        assign(
            "b-second",
            "spec.priority",
            "assign:\n  value: 2\npathTests:\n- subPath: spec.priority\n  condition: MustNotExist",
        ),
        assign(
            "a-first",
            "spec.priority",
            "assign:\n  value: 1\npathTests:\n- subPath: spec.priority\n  condition: MustNotExist",
        ),
    ]
    .join("---\n");
    let m = load(&yaml).unwrap();
    let names: Vec<&str> = m.list().iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a-first", "b-second"]);
    let (out, applied) = run(&m, pod(json!({}))).unwrap();
    assert_eq!(out["spec"]["priority"], 1);
    assert_eq!(applied.changed, ["Assign/a-first"]);
    assert_eq!(applied.matched, ["Assign/a-first", "Assign/b-second"]);
}

#[test]
fn mutators_that_keep_changing_the_object_do_not_converge() {
    let yaml = [
        assign("one", "spec.x", "assign:\n  value: 1"),
        assign("two", "spec.x", "assign:\n  value: 2"),
    ]
    .join("---\n");
    let m = load(&yaml).unwrap();
    match run(&m, pod(json!({}))).unwrap_err() {
        MutateError::NotConverging {
            iterations,
            mutators,
            ..
        } => {
            assert_eq!(iterations, 3, "two mutators: at most three passes");
            assert_eq!(mutators, "Assign/one, Assign/two");
        }
        other => panic!("{other}"),
    }
    // An Assign and a ModifySet that agree settle in two passes.
    let yaml = [
        assign(
            "caps",
            "spec.containers[name:*].securityContext.capabilities.add",
            "assign:\n  value: [NET_BIND]",
        ),
        modify_set(
            "caps",
            "spec.containers[name:*].securityContext.capabilities.add",
            "operation: merge\nvalues:\n  fromList: [NET_BIND]",
        ),
    ]
    .join("---\n");
    let m = load(&yaml).unwrap();
    let out = mutated(&m, pod(json!({"containers": [{"name": "a"}]})));
    assert_eq!(
        out["spec"]["containers"][0]["securityContext"]["capabilities"]["add"],
        json!(["NET_BIND"])
    );
}

#[test]
fn apply_to_binds_kinds_and_operations() {
    let create_only = assign("c", "spec.x", "assign:\n  value: 1").replace(
        "versions: [\"v1\"]",
        "versions: [\"v1\"]\n    operations: [CREATE]",
    );
    let m = load(&create_only).unwrap();
    for (op, applies) in [
        ("CREATE", true),
        ("UPDATE", false),
        ("DELETE", false),
        ("", false),
    ] {
        let mut p = pod(json!({}));
        m.mutate(&mut p, "default", op, None, None).unwrap();
        assert_eq!(p["spec"].get("x").is_some(), applies, "operation {op:?}");
    }
    let m = load(&assign("all", "spec.x", "assign:\n  value: 1")).unwrap();
    for op in ["CREATE", "UPDATE", ""] {
        let mut p = pod(json!({}));
        m.mutate(&mut p, "default", op, None, None).unwrap();
        assert_eq!(p["spec"]["x"], 1, "operation {op:?}");
    }
    let mut deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {}});
    m.mutate(&mut deployment, "default", "CREATE", None, None)
        .unwrap();
    assert!(
        deployment["spec"].get("x").is_none(),
        "applyTo names v1 Pod only"
    );
}

#[test]
fn match_selects_by_namespace_labels_and_source() {
    let base = assign("m", "spec.x", "assign:\n  value: 1");
    let with = |extra: &str| {
        base.replace(
            "  location:",
            &format!("  match:\n{}\n  location:", indent(extra, 4)),
        )
    };
    let m = load(&with("excludedNamespaces: [\"kube-*\"]")).unwrap();
    let mut p = pod(json!({}));
    m.mutate(&mut p, "kube-system", "CREATE", None, None)
        .unwrap();
    assert!(p["spec"].get("x").is_none());
    let m = load(&with("source: Generated")).unwrap();
    let p = pod(json!({}));
    assert_eq!(
        mutated(&m, p.clone()),
        p,
        "admission sees original objects only"
    );
    let m = load(&with("namespaceSelector:\n  matchLabels: {env: prod}")).unwrap();
    let err = run(&m, pod(json!({}))).unwrap_err();
    assert!(matches!(err, MutateError::Match { .. }), "{err}");
    let ns =
        regorus::Value::from(json!({"metadata": {"name": "default", "labels": {"env": "prod"}}}));
    let mut p = pod(json!({}));
    m.mutate(&mut p, "default", "CREATE", Some(&ns), None)
        .unwrap();
    assert_eq!(p["spec"]["x"], 1);
    // A label added by AssignMetadata in the same pass is seen by the next
    // mutator's labelSelector.
    let yaml = format!(
        "{}---\napiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: tag\nspec:\n  location: metadata.labels.tier\n  parameters:\n    assign:\n      value: web\n",
        with("labelSelector:\n  matchLabels: {tier: web}")
    );
    let m = load(&yaml).unwrap();
    let (out, applied) = run(&m, pod(json!({}))).unwrap();
    assert_eq!(out["spec"]["x"], 1);
    assert_eq!(applied.changed, ["AssignMetadata/tag", "Assign/m"]);
}

#[test]
fn invalid_mutators_are_refused_with_file_line_and_field() {
    let cases: Vec<(String, &str, &str)> = vec![
        (assign("meta", "metadata.labels.x", "assign:\n  value: a"), "spec.location", "can't change metadata"),
        (assign("key", "spec.containers[name:foo].name", "assign:\n  value: a"), "spec.location", "changing the item key"),
        (assign("bad", "spec.containers[name:", "assign:\n  value: a"), "spec.location", "invalid location"),
        (assign("glob", "spec.containers[name:*]", "assign:\n  value: {name: a}"), "spec.location", "globbed list"),
        (assign("list", "spec.containers[name:a]", "assign:\n  value: {name: b}"), "spec.parameters.assign.value", "different key"),
        (assign("notobj", "spec.containers[name:a]", "assign:\n  value: a"), "spec.parameters.assign.value", "only objects"),
        (assign("none", "spec.x", "pathTests: []"), "spec.parameters.assign", "must set one of"),
        (assign("two", "spec.x", "assign:\n  value: 1\n  fromMetadata:\n    field: name"), "spec.parameters.assign", "only set one of"),
        (assign("field", "spec.x", "assign:\n  fromMetadata:\n    field: uid"), "spec.parameters.assign.fromMetadata.field", "not recognized"),
        (assign("meta-list", "spec.containers[name:a]", "assign:\n  fromMetadata:\n    field: name"), "spec.parameters.assign.fromMetadata", "metadata field to a list"),
        (assign("prefix", "spec.x.y", "assign:\n  value: 1\npathTests:\n- subPath: spec.z\n  condition: MustExist"), "spec.parameters.pathTests[0].subPath", "prefix"),
        (assign("cond", "spec.x.y", "assign:\n  value: 1\npathTests:\n- subPath: spec.x\n  condition: Maybe"), "spec.parameters.pathTests[0].condition", "not a valid path test condition"),
        (
            assign("both", "spec.x.y", "assign:\n  value: 1\npathTests:\n- subPath: spec.x\n  condition: MustExist\n- subPath: spec.x\n  condition: MustNotExist"),
            "spec.parameters.pathTests[1]",
            "both MustExist and MustNotExist",
        ),
        (
            assign("parent", "spec.x.y", "assign:\n  value: 1\npathTests:\n- subPath: spec.x\n  condition: MustNotExist\n- subPath: spec.x.y\n  condition: MustExist"),
            "spec.parameters.pathTests",
            "parent spec.x MustNotExist",
        ),
        (assign("noapply", "spec.x", "assign:\n  value: 1").replace(POD, "applyTo: []"), "spec.applyTo", "applyTo required"),
        (assign("partial", "spec.x", "assign:\n  value: 1").replace("    versions: [\"v1\"]", ""), "spec.applyTo[0]", "all of group, version and kind"),
        (
            assign("op", "spec.x", "assign:\n  value: 1").replace("versions: [\"v1\"]", "versions: [\"v1\"]\n    operations: [DELETE]"),
            "spec.applyTo[0].operations",
            "invalid operation \"DELETE\"",
        ),
        (
            assign("star", "spec.x", "assign:\n  value: 1").replace("versions: [\"v1\"]", "versions: [\"v1\"]\n    operations: [\"*\", CREATE]"),
            "spec.applyTo[0].operations",
            "must not be combined",
        ),
        (assign(&"n".repeat(64), "spec.x", "assign:\n  value: 1"), "metadata.name", "longer than 63"),
        (modify_set("set", "spec.containers[name:a]", "values:\n  fromList: [a]"), "spec.location", "cannot be a keyed list"),
        (modify_set("op", "spec.args", "operation: replace\nvalues:\n  fromList: [a]"), "spec.parameters.operation", "unrecognized operation"),
        (modify_set("meta", "metadata.finalizers", "values:\n  fromList: [a]"), "spec.location", "can't change metadata"),
        (
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: nm\nspec:\n  location: metadata.name\n  parameters:\n    assign:\n      value: x\n".to_string(),
            "spec.location",
            "only metadata.labels.<key> and metadata.annotations.<key>",
        ),
        (
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignMetadata\nmetadata:\n  name: num\nspec:\n  location: metadata.labels.x\n  parameters:\n    assign:\n      value: 5\n".to_string(),
            "spec.parameters.assign.value",
            "must be a string",
        ),
        (
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignImage\nmetadata:\n  name: img\nspec:\n  location: spec.containers[name:*].image\n  parameters:\n    assignTag: \":v1\"\n".to_string(),
            "apiVersion",
            "mutations.gatekeeper.sh/v1alpha1",
        ),
        (
            format!("apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: img\nspec:\n  {POD}\n  location: spec.containers[name:*].image\n  parameters:\n    assignPath: my.repo.lib/app\n"),
            "spec.parameters",
            "assignDomain must be set",
        ),
        (
            format!("apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: img\nspec:\n  {POD}\n  location: spec.containers[name:*].image\n  parameters:\n    assignTag: latest\n"),
            "spec.parameters",
            "must be a valid docker image tag",
        ),
        (
            "apiVersion: mutations.gatekeeper.sh/v1\nkind: AssignLabels\nmetadata:\n  name: x\nspec: {}\n".to_string(),
            "kind",
            "has no kind \"AssignLabels\"",
        ),
    ];
    for (yaml, field, words) in cases {
        let err = refusal(&yaml);
        assert!(err.contains(&format!(": {field}: ")), "{field}: {err}");
        assert!(err.contains(words), "{words}: {err}");
        let text_line = yaml
            .lines()
            .position(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with(&format!(
                        "{}:",
                        field.rsplit('.').next().unwrap().split('[').next().unwrap()
                    ))
            })
            .map(|i| i + 1);
        if let Some(line) = text_line {
            assert!(
                err.contains(&format!("m.yaml:{line}:")),
                "line {line} of {field}: {err}"
            );
        }
    }
}

#[test]
fn a_name_declared_twice_for_one_kind_is_refused() {
    let yaml = [
        assign("x", "spec.a", "assign:\n  value: 1"),
        assign("x", "spec.b", "assign:\n  value: 1"),
    ]
    .join("---\n");
    assert!(refusal(&yaml).contains("Assign/x is declared twice"));
    // The same name for two kinds is two mutators (the library does it).
    let yaml = [
        assign("x", "spec.a", "assign:\n  value: 1"),
        modify_set("x", "spec.b", "values:\n  fromList: [a]"),
    ]
    .join("---\n");
    assert_eq!(load(&yaml).unwrap().list().len(), 2);
}

#[test]
fn mutators_that_disagree_on_the_schema_refuse_the_bundle() {
    let cases = [
        (
            assign("obj", "spec.containers.image", "assign:\n  value: a"),
            assign("list", "spec.containers[name:a].image", "assign:\n  value: a"),
            "spec.containers",
        ),
        (
            assign("by-name", "spec.containers[name:a].image", "assign:\n  value: a"),
            assign("by-image", "spec.containers[image:b].name", "assign:\n  value: a"),
            "spec.containers",
        ),
        (
            modify_set("set", "spec.x", "values:\n  fromList: [a]"),
            "apiVersion: mutations.gatekeeper.sh/v1alpha1\nkind: AssignImage\nmetadata:\n  name: img\nspec:\n  applyTo:\n  - groups: [\"\"]\n    kinds: [\"Pod\"]\n    versions: [\"v1\"]\n  location: spec.x\n  parameters:\n    assignTag: \":v1\"\n".to_string(),
            "spec.x",
        ),
    ];
    for (a, b, field) in cases {
        let err = refusal(&format!("{a}---\n{b}"));
        assert!(err.contains("conflicting schemas"), "{err}");
        assert!(err.contains(&format!("what {field} is in v1 Pod")), "{err}");
    }
    // Assign takes anything: it agrees with every shape.
    let ok = format!(
        "{}---\n{}",
        assign("any", "spec.x", "assign:\n  value: [a]"),
        modify_set("set", "spec.x", "values:\n  fromList: [a]")
    );
    assert!(load(&ok).is_ok());
    // Different kinds never conflict.
    let other = assign("obj", "spec.containers.image", "assign:\n  value: a")
        .replace("[\"Pod\"]", "[\"Deployment\"]");
    assert!(load(&format!(
        "{other}---\n{}",
        assign(
            "list",
            "spec.containers[name:a].image",
            "assign:\n  value: a"
        )
    ))
    .is_ok());
}

#[test]
fn external_data_is_left_out_with_a_note() {
    let yaml = format!(
        "{}---\n{}",
        assign(
            "ext",
            "spec.containers[name:*].image",
            "assign:\n  externalData:\n    provider: my-provider\n    dataSource: ValueAtLocation"
        ),
        assign("kept", "spec.x", "assign:\n  value: 1"),
    );
    let m = load(&yaml).unwrap();
    assert_eq!(m.list().len(), 1);
    assert_eq!(m.notes().len(), 1);
    assert!(
        m.notes()[0].contains("Assign ext is not enforced"),
        "{}",
        m.notes()[0]
    );
    assert!(m.notes()[0].contains("externalData"), "{}", m.notes()[0]);
}

#[test]
fn mutation_is_idempotent_on_its_own_result() {
    let yaml = [
        // Without its MustNotExist test the sidecar would be replaced every
        // pass, undoing the other two: Gatekeeper's "not converging" too.
        assign(
            "side",
            "spec.containers[name:proxy]",
            "assign:\n  value: {name: proxy, image: proxy:1}\npathTests:\n- subPath: spec.containers[name:proxy]\n  condition: MustNotExist",
        ),
        assign("pull", "spec.containers[name:*].imagePullPolicy", "assign:\n  value: Always"),
        modify_set("args", "spec.containers[name:*].args", "values:\n  fromList: [--verbose]"),
    ]
    .join("---\n");
    let m = load(&yaml).unwrap();
    let once = mutated(
        &m,
        pod(json!({"containers": [{"name": "app", "args": ["--x"]}]})),
    );
    let (twice, applied) = run(&m, once.clone()).unwrap();
    assert_eq!(once, twice);
    assert!(applied.changed.is_empty());
    assert_eq!(once["spec"]["containers"][1]["args"], json!(["--verbose"]));
}

#[test]
fn match_source_separates_admitted_from_generated_objects() {
    let base = assign("s", "spec.x", "assign:\n  value: 1");
    let with = |source: &str| {
        base.replace(
            "  location:",
            &format!("  match:\n    source: {source}\n  location:"),
        )
    };
    for (source, at_admission, generated) in [
        ("All", true, true),
        ("Original", true, false),
        ("Generated", false, true),
    ] {
        let m = load(&with(source)).unwrap();
        let mut admitted = pod(json!({}));
        m.mutate(&mut admitted, "default", "CREATE", None, None)
            .unwrap();
        assert_eq!(
            admitted["spec"].get("x").is_some(),
            at_admission,
            "{source} at admission"
        );
        let mut made = pod(json!({}));
        m.mutate_generated(&mut made, "default", None, None)
            .unwrap();
        assert_eq!(
            made["spec"].get("x").is_some(),
            generated,
            "{source} on a generated object"
        );
    }
    assert!(refusal(&with("Everything")).contains("spec.match.source: invalid source"));
}

#[test]
fn a_bundle_cannot_make_the_walk_unbounded() {
    let deep = format!("spec.{}", vec!["a"; 64].join("."));
    let err = refusal(&assign("deep", &deep, "assign:\n  value: 1"));
    assert!(
        err.contains("65 steps deep; Regent accepts at most 64"),
        "{err}"
    );
    let ok = format!("spec.{}", vec!["a"; 63].join("."));
    assert!(load(&assign("ok", &ok, "assign:\n  value: 1")).is_ok());
    // Past the request's deadline the mutators stop, naming the object.
    let m = load(&assign("x", "spec.x", "assign:\n  value: 1")).unwrap();
    let mut p = pod(json!({}));
    let past = std::time::Instant::now();
    let err = m
        .mutate(&mut p, "default", "CREATE", None, Some(past))
        .unwrap_err();
    assert!(matches!(err, MutateError::Timeout { .. }), "{err}");
    assert_eq!(p, pod(json!({})), "nothing half-applied");
}
