//! Tests of the parent module.

#![allow(clippy::unwrap_used)]
use super::*;
use serde_json::json;

fn doc() -> Json {
    json!({
        "apiVersion": "regent.dev/v1alpha1", "kind": "PolicyException",
        "metadata": {"name": "cni-agent", "namespace": "kube-system", "creationTimestamp": "2027-01-01T00:00:00Z"},
        "spec": {
            "policies": ["privileged", "host_namespaces", "K8sPSPPrivilegedContainer/psp-privileged"],
            "match": {"kinds": ["DaemonSet", "Pod"], "names": ["calico-node*"], "namespaces": ["kube-system"],
                      "labelSelector": {"matchLabels": {"k8s-app": "calico-node"}}},
            "containers": ["calico-node"],
            "owner": "network-team", "reason": "CNI needs host networking",
            "ticket": "https://tracker.example/NET-42", "expires": "2027-01-31T00:00:00Z"
        }
    })
}

fn catalogue() -> Catalogue {
    let mut c = Catalogue::default();
    c.add("privileged", false);
    c.add("host_namespaces", false);
    c.add("host_path", false);
    c.add("K8sPSPPrivilegedContainer/psp-privileged", false);
    c.add("image_tag", true);
    c
}

fn governance() -> Governance {
    Governance {
        admin_namespace: "regent-system".into(),
        ..Governance::default()
    }
}

const NOW: i64 = 1_798_848_000; // 2027-01-02

#[test]
fn the_contracts_example_parses_and_is_valid() {
    let e = parse(&doc(), "f#1").unwrap();
    assert_eq!(e.id(), "kube-system/cni-agent");
    assert_eq!(e.until(), "2027-01-31");
    assert_eq!(validate(&e, &governance(), &catalogue(), NOW), Vec::new());
}

#[test]
fn missing_fields_and_wrong_types_are_each_named() {
    let mut d = doc();
    d["spec"]["owner"] = json!("");
    d["spec"]["match"]["names"] = json!([]);
    d["spec"]["expires"] = json!("next year");
    d["spec"]["policies"] = json!("privileged");
    d["spec"]["reasn"] = json!("x");
    let problems = parse(&d, "f#1").unwrap_err();
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "spec.policies",
            "spec.match.names",
            "spec.owner",
            "spec.expires",
            "spec.reasn"
        ],
        "{problems:?}"
    );
}

#[test]
fn governance_refuses_other_namespaces_long_lives_and_forbidden_policies() {
    let mut d = doc();
    d["metadata"]["namespace"] = json!("team-a");
    d["spec"]["match"]["namespaces"] = json!(["kube-system"]);
    d["spec"]["expires"] = json!("2028-02-05T00:00:00Z");
    d["spec"]["policies"] = json!(["image_tag", "unknown_policy", "privileged"]);
    let e = parse(&d, "f#1").unwrap();
    let text: Vec<String> = validate(&e, &governance(), &catalogue(), NOW)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(text.len(), 4, "{text:?}");
    assert!(
        text[0].starts_with(
            "spec.match.namespaces: \"kube-system\" is not this exception's namespace"
        ),
        "{text:?}"
    );
    assert!(
        text[1].starts_with("spec.policies[0]: image_tag does not allow exceptions"),
        "{text:?}"
    );
    assert!(
        text[2].contains("\"unknown_policy\" is no policy of the live bundle"),
        "{text:?}"
    );
    assert!(
        text[3].starts_with("spec.expires: 2028-02-05 is 400 days away"),
        "{text:?}"
    );
    let mut d = doc();
    d["spec"]["expires"] = json!("2028-02-05T00:00:00Z");
    let e = parse(&d, "f#1").unwrap();
    let p = validate(&e, &governance(), &catalogue(), NOW);
    assert_eq!(
        p[0].to_string(),
        "spec.expires: 2028-02-05 is 400 days away; the maximum is 90d"
    );
}

#[test]
fn a_valid_exception_covers_only_its_policy_objects_and_containers_until_it_ends() {
    let set = ExceptionSet::build(
        vec![parse(&doc(), "f#1").unwrap()],
        Vec::new(),
        &governance(),
        &catalogue(),
        NOW,
    );
    let object = json!({"metadata": {"name": "calico-node", "labels": {"k8s-app": "calico-node"}},
        "spec": {"template": {"spec": {"containers": [{"name": "calico-node"}, {"name": "other"}],
                                         "initContainers": [{"name": "install-cni"}]}}}});
    let t = Target {
        kind: "DaemonSet",
        name: "calico-node",
        namespace: "kube-system",
        object: &object,
    };
    let path0 = "spec.template.spec.containers[0].securityContext.privileged";
    let path1 = "spec.template.spec.containers[1].securityContext.privileged";
    let init = "spec.template.spec.initContainers[0].securityContext.privileged";
    assert!(set.covering("privileged", Some(path0), &t, NOW).is_some());
    assert!(set.covering("privileged", Some(path1), &t, NOW).is_none());
    assert!(set.covering("privileged", Some(init), &t, NOW).is_none());
    assert!(
        set.covering("privileged", None, &t, NOW).is_none(),
        "no path, named containers"
    );
    assert!(set.covering("host_path", Some(path0), &t, NOW).is_none());
    let other_ns = Target {
        namespace: "default",
        ..t
    };
    assert!(set
        .covering("privileged", Some(path0), &other_ns, NOW)
        .is_none());
    let other_name = Target {
        name: "kube-proxy",
        ..t
    };
    assert!(set
        .covering("privileged", Some(path0), &other_name, NOW)
        .is_none());
    let unlabelled = json!({"spec": object["spec"].clone()});
    let t2 = Target {
        object: &unlabelled,
        ..t
    };
    assert!(set.covering("privileged", Some(path0), &t2, NOW).is_none());
    let ends = parse_time("2027-01-31T00:00:00Z").unwrap();
    assert_eq!(
        set.covering("privileged", Some(path0), &t, ends - 9 * 86_400)
            .unwrap()
            .ending_in,
        Some(9 * 86_400)
    );
    assert_eq!(time_left_text(9 * 86_400 + 3600), "9 days");
    assert_eq!(time_left_text(86_400), "1 day");
    assert_eq!(time_left_text(5 * 3600 + 59), "5 hours");
    assert_eq!(time_left_text(61), "1 minute");
    assert_eq!(time_left_text(3), "3 seconds");
    assert_eq!(time_left_text(0), "1 second");
    assert!(set.covering("privileged", Some(path0), &t, ends).is_none());
    assert_eq!(set.next_expiry(NOW), Some(ends));
}

#[test]
fn globs_match_anywhere() {
    assert!(index::glob("calico-node*", "calico-node-abcde"));
    assert!(index::glob("*-node", "calico-node"));
    assert!(index::glob("a*b*c", "axxbyyc"));
    assert!(!index::glob("a*b*c", "axxc"));
    assert!(index::glob("exact", "exact"));
    assert!(!index::glob("exact", "exactly"));
}

#[test]
fn admin_exceptions_cover_namespace_globs_and_cluster_scoped_objects_and_the_first_loaded_wins() {
    let admin = |name: &str, namespaces: Json, owner: &str| {
        let mut d = doc();
        d["metadata"]["name"] = json!(name);
        d["metadata"]["namespace"] = json!("regent-system");
        d["spec"]["match"]["namespaces"] = namespaces;
        d["spec"]["match"]
            .as_object_mut()
            .unwrap()
            .remove("labelSelector");
        d["spec"].as_object_mut().unwrap().remove("containers");
        d["spec"]["owner"] = json!(owner);
        parse(&d, "f").unwrap()
    };
    let set = ExceptionSet::build(
        vec![
            admin("globbed", json!(["team-*"]), "first"),
            admin("exact", json!(["team-a", "kube-system"]), "second"),
            admin("cluster", json!([""]), "third"),
        ],
        Vec::new(),
        &governance(),
        &catalogue(),
        NOW,
    );
    let object = json!({"metadata": {"name": "calico-node"}});
    let at = |namespace: &'static str| Target {
        kind: "Pod",
        name: "calico-node",
        namespace,
        object: &object,
    };
    let owner = |ns: &'static str| {
        set.covering("privileged", None, &at(ns), NOW)
            .map(|c| c.exception.owner.clone())
    };
    // team-a: both the glob and the exact list; the one loaded first wins.
    assert_eq!(owner("team-a").as_deref(), Some("first"));
    assert_eq!(owner("team-b").as_deref(), Some("first"));
    assert_eq!(owner("kube-system").as_deref(), Some("second"));
    assert_eq!(owner("").as_deref(), Some("third"));
    assert_eq!(owner("default"), None);
    // The same exceptions, the other way round: the exact one is first now.
    let mut reversed: Vec<Exception> = set.all().iter().map(|(e, _)| e.clone()).collect();
    reversed.reverse();
    let set = ExceptionSet::build(reversed, Vec::new(), &governance(), &catalogue(), NOW);
    let c = set
        .covering("privileged", None, &at("team-a"), NOW)
        .unwrap();
    assert_eq!(c.exception.owner, "second");
}

#[test]
fn the_engine_view_reads_labels_and_containers_as_the_json_view() {
    let object = json!({"metadata": {"labels": {"k8s-app": "calico-node", "tier": "net"}},
        "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                         "initContainers": [{"name": "init"}]}}}});
    let engine = regorus::Value::from_json_str(&object.to_string()).unwrap();
    assert_eq!(ObjectView::labels(&object), ObjectView::labels(&engine));
    assert_eq!(ObjectView::labels(&engine).len(), 2);
    for (path, name) in [
        (
            "spec.template.spec.containers[1].securityContext.privileged",
            Some("b"),
        ),
        ("spec.template.spec.initContainers[0].image", Some("init")),
        ("spec.template.spec.hostNetwork", None),
        ("spec.template.spec.containers[7].image", None),
    ] {
        assert_eq!(object.container_at(path).as_deref(), name, "{path}");
        assert_eq!(engine.container_at(path).as_deref(), name, "{path}");
    }
}

#[test]
fn names_are_found_by_exact_name_prefix_suffix_and_other_globs_among_many() {
    let with_names = |name: &str, names: Json| {
        let mut d = doc();
        d["metadata"]["name"] = json!(name);
        d["spec"]["match"]["names"] = names;
        d["spec"]["match"]
            .as_object_mut()
            .unwrap()
            .remove("labelSelector");
        d["spec"].as_object_mut().unwrap().remove("containers");
        parse(&d, "f").unwrap()
    };
    let mut list: Vec<Exception> = (0..500)
        .map(|i| with_names(&format!("other-{i}"), json!([format!("svc-{i}-*")])))
        .collect();
    list.push(with_names("exact", json!(["calico-node-abc"])));
    list.push(with_names("prefix", json!(["calico-*"])));
    list.push(with_names("suffix", json!(["*-abc"])));
    list.push(with_names("middle", json!(["cal*abc"])));
    let set = ExceptionSet::build(list, Vec::new(), &governance(), &catalogue(), NOW);
    let object = json!({"metadata": {}});
    let found = |name: &'static str| -> Vec<String> {
        let t = Target {
            kind: "Pod",
            name,
            namespace: "kube-system",
            object: &object,
        };
        let c = set.candidates("privileged", &t, NOW);
        c.exceptions().map(|e| e.name.clone()).collect()
    };
    assert_eq!(
        found("calico-node-abc"),
        ["exact", "prefix", "suffix", "middle"]
    );
    assert_eq!(found("calico-x"), ["prefix"]);
    assert_eq!(found("x-abc"), ["suffix"]);
    assert_eq!(found("svc-42-0"), ["other-42"]);
    assert!(found("svc-42").is_empty());
    assert!(found("").is_empty());
}
